"""``adhoc train-proxy DB_OR_JSONL --out DIR``: behaviour cloning of recorded play into LoRA members.

Each participant of the recording (``adhoc play`` / ``adhoc serve``; a database or its JSONL export) becomes one
member ``proxy-<participant>`` (``--pooled``: one member ``proxy-pooled`` from everyone's play), trained on one
base LM in ONE AdapterBank with ``MemberAdam``, as populations are. The data are the person's decisions: the steps
where they had more than one legal action. The loss of member m is the mean, over its decisions, of

    − log π_m(a | o) = − log softmax_{legal a'}( log p_m(tokens(a') | o) )[a],

the exact policy of ``adhoc.lm.policy.Policy`` (the one rollouts sample from) over the seat's legal actions, so
the proxy plays wherever a population member plays: ``adhoc crossplay``, ``adhoc evaluate --partners``,
``train-learner partners=``.

Held-out evaluation, split by episode (a held-out episode's decisions are never trained on): per member, a
``holdout`` fraction of its episodes (at least one when it has two or more) is held out; ``accuracy`` is the
fraction of held-out decisions whose most likely legal action under the proxy is the recorded one,
``loglik`` the mean log π_m(recorded action | o) per held-out decision, beside ``uniform_loglik`` (a uniformly
random player's, − mean log |legal|). The same on the training decisions. All of it goes into the manifest
(``proxy:`` and every member's entry) and is printed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adhoc.diagnostics import proxy_warning
from adhoc.errors import UserError
from adhoc.paths import check_name, check_out, unique_default
from adhoc.population import warning_lines

TARGET_MODULES = ["q_proj", "v_proj", "lm_head"]  # the shipped configs' adapter shape


def _decisions(steps: list[dict[str, Any]], game_name: str | None) -> tuple[dict, list[dict]]:
    """(the one game of the recording, its decision steps); UserError when there is none or several games."""
    from adhoc.partners import _plain

    if game_name is not None:
        steps = [s for s in steps if s["game"].get("name") == game_name]
    games = {}
    for s in steps:
        games.setdefault(repr(sorted(_plain(s["game"]).items())), _plain(s["game"]))
    if not games:
        raise UserError("the recording holds no steps" + (f" of game {game_name}" if game_name else ""))
    if len(games) > 1:
        names = sorted({g["name"] for g in games.values()})
        raise UserError(f"the recording holds several games ({', '.join(names)}"
                        f"{' with different parameters' if len(names) == 1 else ''}); "
                        + ("choose one with --game NAME" if len(names) > 1 else "export one game's steps to JSONL"))
    decisions = [s for s in steps if len(s["legal_index"]) > 1]
    if not decisions:
        raise UserError("the recording holds no decisions (steps with more than one legal action)")
    return next(iter(games.values())), decisions


def member_name(participant: str) -> str:
    name = f"proxy-{participant}"
    return check_name(name, f"participant {participant!r} gives the member name")


def split_by_episode(rows: list[dict], holdout: float, rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """(train, held-out) decisions: a ``holdout`` fraction of the episodes (at least one of two or more) held out."""
    episodes = sorted({(r["session"], r["episode"]) for r in rows})
    n_out = min(len(episodes) - 1, max(1, round(holdout * len(episodes)))) if holdout > 0 and len(episodes) > 1 else 0
    held = {episodes[i] for i in rng.permutation(len(episodes))[:n_out]}
    return ([r for r in rows if (r["session"], r["episode"]) not in held],
            [r for r in rows if (r["session"], r["episode"]) in held])


def _seat_batch(game, rows: list[dict], members: list[int]):
    """Per seat: (member ids [n], observations, legal masks [n, A_seat], actions [n])."""
    out = {}
    for seat in (0, 1):
        idx = [i for i, r in enumerate(rows) if r["seat"] == seat]
        if not idx:
            continue
        A = len(game.action_names(seat))
        legal = torch.zeros(len(idx), A, dtype=torch.bool)
        for k, i in enumerate(idx):
            if not all(0 <= a < A for a in [*rows[i]["legal_index"], rows[i]["action"]]):
                raise UserError(f"a recorded step of seat {seat} names action {rows[i]['action']} of "
                                f"{rows[i]['legal_index']}, beyond the game's {A} actions")
            legal[k, rows[i]["legal_index"]] = True
        out[seat] = (torch.tensor([members[i] for i in idx]), [rows[i]["observation"] for i in idx], legal,
                     torch.tensor([rows[i]["action"] for i in idx]))
    return out


def action_log_probs(policy, game, batch) -> dict[int, torch.Tensor]:
    """log π(recorded action | o) [n] per seat, and the argmax-hit [n] (the proxy's most likely legal action is the
    recorded one), for a ``_seat_batch``."""
    from adhoc.lm.policy import masked_log_softmax

    out = {}
    for seat, (members, observations, legal, actions) in batch.items():
        scores = policy.scores(members, observations, policy.actions(game.action_names(seat)))
        logp = masked_log_softmax(scores, legal.to(scores.device))
        chosen = logp.gather(1, actions.to(scores.device)[:, None])[:, 0]
        out[seat] = (chosen, (logp.argmax(1).cpu() == actions))
    return out


@torch.no_grad()
def prediction_metrics(policy, game, rows: list[dict], members: list[int]) -> dict[str, Any] | None:
    """accuracy, loglik, uniform_loglik and decisions of ``rows`` (each scored by member ``members[i]``)."""
    if not rows:
        return None
    logps, hits = [], []
    for i in range(0, len(rows), 512):
        batch = _seat_batch(game, rows[i:i + 512], members[i:i + 512])
        for chosen, hit in action_log_probs(policy, game, batch).values():
            logps.append(chosen.float().cpu())
            hits.append(hit)
    logp, hit = torch.cat(logps), torch.cat(hits)
    uniform = -float(np.mean([math.log(len(r["legal_index"])) for r in rows]))
    return {"decisions": len(rows), "accuracy": round(float(hit.float().mean()), 4),
            "loglik": round(float(logp.mean()), 4), "uniform_loglik": round(uniform, 4)}


def train_proxy(source: str | Path, out: str | Path | None = None, game_name: str | None = None,
                pooled: bool = False, base_model: str = "builtin:tiny", iterations: int = 300, lr: float = 0.01,
                batch: int = 256, holdout: float = 0.2, seed: int = 0, lora_rank: int = 4, lora_alpha: float = 8.0,
                overwrite: bool = False, progress: bool = True, heldout_source: str | Path | None = None,
                min_decisions: int = 1):
    """Clone the recording ``source`` into a population at ``out``; returns the loaded Population.

    ``heldout_source``: another recording of the same game (other people: the published test split of a
    dataset) whose decisions every member is scored on, instead of holding out episodes of ``source``.
    ``min_decisions``: per-participant members only for participants with at least that many decisions (the
    others' play still counts in a pooled member)."""
    from adhoc.games import build_game
    from adhoc.lm.adapters import AdapterBank, MemberAdam
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy
    from adhoc.population import Member, Population, PopulationWriter
    from adhoc.recording import read_steps
    from adhoc.engine import check_finite, member_seeds

    start = time.perf_counter()
    for key, value, lo in (("--iterations", iterations, 1), ("--batch", batch, 1), ("--lora-rank", lora_rank, 1)):
        if value < lo:
            raise UserError(f"{key} must be >= {lo} (got {value})")
    if not 0 <= holdout < 1:
        raise UserError(f"--holdout must be in [0, 1) (got {holdout})")
    if not lr > 0:
        raise UserError(f"--lr must be > 0 (got {lr})")
    from adhoc.paths import input_label

    out = Path(out) if out is not None else unique_default("proxy", input_label(Path(source).stem))
    inputs = (source,) if heldout_source is None else (source, heldout_source)
    check_out(out, "population", overwrite, inputs=inputs)
    if min_decisions < 1:
        raise UserError(f"--min-decisions must be >= 1 (got {min_decisions})")
    game_dict, rows = _decisions(read_steps(source), game_name)
    other = None
    if heldout_source is not None:
        other_game, other = _decisions(read_steps(heldout_source), game_name)
        if other_game != game_dict:
            raise UserError(f"--heldout {heldout_source} holds another game ({other_game}) than {source} ({game_dict})")
        holdout = 0.0
    game = build_game(game_dict)
    counts = {}
    for r in rows:
        counts[str(r["participant"])] = counts.get(str(r["participant"]), 0) + 1
    participants = ["pooled"] if pooled else sorted(p for p, n in counts.items() if n >= min_decisions)
    if not participants:
        raise UserError(f"no participant has {min_decisions} decisions (the most: {max(counts.values())})")
    rows = rows if pooled else [r for r in rows if str(r["participant"]) in participants]
    names = [member_name(p) for p in participants]
    if len(set(names)) != len(names):
        raise UserError("two participants give the same member name")
    member_of = (lambda r: 0) if pooled else (lambda r: participants.index(str(r["participant"])))
    rng = np.random.default_rng(seed)
    train, held = [], []
    for m in range(len(names)):
        tr, ho = split_by_episode([r for r in rows if member_of(r) == m], holdout, rng)
        train += tr
        held += ho
    train_members, held_members = [member_of(r) for r in train], [member_of(r) for r in held]
    if other is not None:  # every member scored on all of the other recording's decisions
        held, held_members = other * len(names), [k for k in range(len(names)) for _ in other]

    torch.manual_seed(seed)
    base = load_base(base_model, device="auto", dtype="auto")
    modules = TARGET_MODULES if base_model.startswith("builtin:") else ["q_proj", "v_proj"]
    bank = AdapterBank(base.model, len(names), lora_rank, lora_alpha, modules, base_model_id=base.model_id)
    seeds = member_seeds(seed, len(names))
    bank.init_members(seeds, b_std=0.0)  # every proxy starts as the base model (peft's B = 0)
    policy = Policy(base, bank)
    optimizer = MemberAdam(bank.member_parameters(), lr=lr, max_grad_norm=1.0)
    by_member = [np.array([i for i, m in enumerate(train_members) if m == k]) for k in range(len(names))]
    if any(len(ix) == 0 for ix in by_member):
        who = names[next(k for k, ix in enumerate(by_member) if len(ix) == 0)]
        raise UserError(f"{who} has no training decisions")
    from tqdm import tqdm

    for iteration in tqdm(range(1, iterations + 1), desc="behaviour cloning", disable=not progress, unit="it"):
        pick = np.concatenate([ix if len(ix) <= batch else rng.choice(ix, batch, replace=False) for ix in by_member])
        rows_now = [train[i] for i in pick]
        members_now = [train_members[i] for i in pick]
        losses = torch.zeros(len(names), device=base.device)
        counts = torch.bincount(torch.tensor(members_now), minlength=len(names)).to(base.device)
        for seat, (chosen, _) in action_log_probs(policy, game, _seat_batch(game, rows_now, members_now)).items():
            seat_members = torch.tensor([m for r, m in zip(rows_now, members_now) if r["seat"] == seat],
                                        device=base.device)
            losses = losses.index_add(0, seat_members, -chosen.float())
        losses = losses / counts.clamp(min=1)
        optimizer.zero_grad()
        losses.sum().backward()
        check_finite(losses, optimizer, iteration, names)
        optimizer.step(counts > 0)

    policy_metrics = {"train": prediction_metrics(policy, game, train, train_members),
                      "heldout": prediction_metrics(policy, game, held, held_members)}
    writer = PopulationWriter(out, overwrite=overwrite, inputs=inputs)
    try:
        members = []
        for k, name in enumerate(names):
            bank.export_member(k, writer.staging / "members" / name)
            mine = lambda rs, ms: [r for r, m in zip(rs, ms) if m == k]  # noqa: E731
            per = {"train": prediction_metrics(policy, game, mine(train, train_members), [k] * len(mine(train, train_members))),
                   "heldout": prediction_metrics(policy, game, mine(held, held_members), [k] * len(mine(held, held_members)))}
            members.append(Member(name, seeds[k], None, {"participant": participants[k], **per}))
        heldout = [(m.name, m.extra["heldout"]) for m in members if m.extra["heldout"]]
        warnings = [w for name, r in heldout if (w := proxy_warning(name, r["loglik"], r["uniform_loglik"]))]
        writer.write_manifest({
            "game": game_dict,
            "method": {"name": "behaviour-cloning", "pooled": pooled, "source": str(source),
                       **({"heldout_source": str(heldout_source)} if other is not None else {}),
                       **({"min_decisions": min_decisions} if min_decisions > 1 else {}),
                       "iterations": iterations, "lr": lr, "batch": batch, "holdout": holdout, "seed": seed},
            "base_model": {"id": base.model_id, "fingerprint": base.fingerprint},
            "adapter": {"rank": bank.rank, "alpha": bank.alpha, "target_modules": bank.target_modules},
            "members": [m.to_dict() for m in members],
            "proxy": {"participants": participants if not pooled else sorted({str(r["participant"]) for r in rows}),
                      "episodes": len({(r["session"], r["episode"]) for r in rows}), **policy_metrics},
            "wall_time_s": round(time.perf_counter() - start, 1),
        } | ({"warnings": warnings} if warnings else {}))
        return Population.load(writer.commit())
    except BaseException:
        writer.abandon(keep=False)
        raise


def proxy_summary(pop) -> str:
    """Held-out and training action prediction of a train-proxy population, one line per member."""
    proxy = pop.manifest["proxy"]
    lines = [f"behaviour-cloned proxies of {', '.join(proxy['participants'])} ({proxy['episodes']} episodes)",
             f"  {'member':<24} {'split':<8} {'decisions':>9} {'accuracy':>9} {'loglik':>8} {'uniform':>8}"]
    for m in pop.members:
        for split in ("heldout", "train"):
            r = m.get(split)
            if r:
                lines.append(f"  {m['name']:<24} {split:<8} {r['decisions']:>9} {r['accuracy']:>9.3f} "
                             f"{r['loglik']:>8.3f} {r['uniform_loglik']:>8.3f}")
            elif split == "heldout":
                lines.append(f"  {m['name']:<24} {split:<8} {'-':>9}  (one episode only: nothing held out)")
    return "\n".join(lines + warning_lines(pop.manifest))
