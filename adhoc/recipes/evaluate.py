"""``adhoc evaluate AGENT --partners POP``: an agent's returns with a (held-out) partner population.

The agent is one member of a population folder (by default its first member: the final learner of a
``train-learner`` population). It plays ``episodes`` episodes with every partner in both seatings, and every
partner plays the same number with itself, all in ONE AdapterBank. Definitions (P partners, E episodes):

- ``return[i]`` = (G(agent, i) + G(i, agent)) / 2, the mean return with partner i over both seatings;
  ``return_seat0[i]``/``return_seat1[i]`` each seating alone;
- ``self_play[i]`` = G(i, i): partner i's own return, the best it is known to achieve;
- ``regret[i]`` = self_play[i] − return[i];
- ``mean_return`` = mean_i return[i], ``worst_return`` = min_i return[i] (and ``worst_partner``),
  ``mean_regret``, ``max_regret``;
- ``ci95``: percentile bootstrap over episodes (each pair's E episodes resampled, the same indices for every
  pair), for the four summaries and per partner.
- ``episode_payoffs`` (per partner; games whose interaction is several episodes, e.g. the warehouse with
  ``episodes`` > 1): the mean payoff of episode 1..K of the interaction, over the seatings played; later
  episodes beating the first is in-context adaptation to the partner.

Scripted partners (``--partners scripted:<game>[:a,b]``, the game the agent plays) sit only in their
declared seats: ``return[i]`` is then the seating they can play (the other seat's entry is None), and they
have no self-play return, so their ``self_play`` and ``regret`` are None and the regret summaries cover the
partners that have one (None when none does). ``--seat 0`` (or 1) plays the agent in that seat only
(``return[i]`` is then that seating); the default is the seat a ``train-learner`` agent was trained in
(``learner.seat``), else both (``--seat both`` forces both).

``--mixture``: the agent is the mixture over members stored in AGENT's manifest (``mixture: {member:
weight}``, written by ``train-learner``: the learner-side maximin mixture over its snapshots, the PSRO
agent, which per episode plays member k with probability x_k). Every member with nonzero weight plays E
episodes with every partner in both seatings (one AdapterBank, partners' self-play once), and

- ``return[j]`` = Σ_k x_k G(k, j), the mixture's expected return with partner j (exact in expectation);
  mean, worst case and regrets as above, and ``snapshots``: each member's own mean / worst return;
- ``ci95``: the same bootstrap on the x-weighted per-episode returns Σ_k x_k r_k,e (episode e of every
  member resampled together; the members' episodes are independent, so this estimates the variance of the
  stratified estimator Σ_k x_k mean_e r_k,e, which is smaller than that of E episodes of the mixture that
  draws one member per episode).

Where the episodes are played (``play``, the hook of ``adhoc.crossplay``): by default in this process, from
one generator seeded with ``seed`` (as always). With ``play`` a ``adhoc.distributed.blocks`` player
(``--block-size T``, ``--backend ray``), every pair the evaluation needs (each agent member with every partner
in both seatings, and each partner with itself) is played in ONE call, in seeded tiles of T x T pairs: the
same returns in this process (``LocalBlocks(T)``) and on any number of Ray workers (``RayBlocks``), which
load the base model once each and receive the adapters (and any scripted partners) through the object store.

Games that pay each seat its own reward (``adhoc.games.core.payoff_kind``): every return above is the agent's
own seat's payoff (``adhoc.partners.play_playable``'s ``seat_of``) and a partner's ``self_play`` its seat-0
payoff; ``evaluation.json`` says so (``payoff``: the kind, ``returns_are``). Zero-sum: a partner's self-play
payoff is the seat asymmetry, not what the agent could reach, so ``self_play`` and the regrets are None (listed
in ``not_applicable``), and per partner ``win``/``draw``/``loss`` are the agent's rates (its own return > 0,
== 0, < 0 per episode; the mean over the seatings played, x-weighted over a mixture's members), with
``win_rate``/``draw_rate``/``loss_rate`` their means over partners. ``--bound`` (a common-payoff bound) refuses
such games.

Outputs (``--out``, default ``runs/evaluate-<AGENT>[-mixture]-<time>-<id>``), written into a locked staging folder
and renamed into place (an existing ``--out`` is replaced only with ``overwrite`` and only if it is an evaluation): ``evaluation.json``, ``returns.png``,
``report.md``, ``report.html``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adhoc.crossplay import bootstrap
from adhoc.errors import UserError
from adhoc.paths import check_out, input_label, unique_default, write_folder


# ---------------------------------------------------------------------------- pure metrics
def evaluation_metrics(returns: np.ndarray, names: list[str], n_boot: int = 500, seed: int = 0) -> dict[str, Any]:
    """returns [P, 3, E]: axis 1 = (agent in seat 0, agent in seat 1, partner self-play)."""
    P = returns.shape[0]

    returns = np.asarray(returns, dtype=np.float64)
    has_best = bool(np.isfinite(returns[:, 2]).any())  # NaN: not played (a scripted partner's seat/self-play)

    def statistic(means: np.ndarray) -> np.ndarray:  # means [P, 3]
        ret = np.nanmean(means[:, :2], 1)
        regret = means[:, 2] - ret
        summary = [np.nanmean(regret), np.nanmax(regret)] if has_best else [np.nan, np.nan]
        return np.concatenate([[ret.mean(), ret.min(), *summary], ret, regret])

    point = statistic(returns.mean(-1))
    with warnings.catch_warnings():  # columns that are NaN throughout (a scripted partner's regret)
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = bootstrap(returns, statistic, n_boot=n_boot, seed=seed)
    ci = lambda k: [_num(lo[k]), _num(hi[k])] if np.isfinite(point[k]) else None  # noqa: E731
    means = returns.mean(-1)
    per_partner = [{"partner": name, "return": _num(point[4 + i]),
                    "return_seat0": _num(means[i, 0]), "return_seat1": _num(means[i, 1]),
                    "self_play": _num(means[i, 2]), "regret": _num(point[4 + P + i]),
                    "ci95": {"return": ci(4 + i), "regret": ci(4 + P + i)}} for i, name in enumerate(names)]
    keys = ("mean_return", "worst_return", "mean_regret", "max_regret")
    return {**{k: _num(point[j]) for j, k in enumerate(keys)},
            "worst_partner": names[int(np.argmin(point[4:4 + P]))],
            "ci95": {k: ci(j) for j, k in enumerate(keys)}, "per_partner": per_partner}


def outcome_rates(returns: np.ndarray, weights: np.ndarray | None = None) -> dict[str, Any]:
    """The agent's win/draw/loss rates with each partner in a zero-sum game: ``returns`` [K, P, 2, E], the agent's
    own seat's returns (K agent members; axis 2: the agent in seat 0, in seat 1; a seating not played is NaN
    throughout). Per member and partner, the rate of episodes with return > 0 (== 0, < 0) in each seating played,
    averaged over those seatings (as ``return`` is); then weighted over the members by ``weights`` [K] (default:
    the one member). Returns {"win": [P], "draw": [P], "loss": [P]} (None where no seating was played)."""
    returns = np.asarray(returns, dtype=np.float64)
    weights = np.ones(1) if weights is None else np.asarray(weights, dtype=np.float64)
    played = np.isfinite(returns).all(-1)  # [K, P, 2]
    out = {}
    for key, test in (("win", np.greater), ("draw", np.equal), ("loss", np.less)):
        rate = np.where(played, test(np.nan_to_num(returns), 0.0).mean(-1), np.nan)  # [K, P, 2]
        with warnings.catch_warnings():  # a partner with no seating played
            warnings.simplefilter("ignore", RuntimeWarning)
            per_member = np.nanmean(rate, -1)  # [K, P]
        out[key] = [_num(v) for v in np.einsum("k,kp->p", weights, per_member)]
    return out


def _num(value: float) -> float | None:
    """Rounded for JSON; None for NaN (an entry that was not played)."""
    return round(float(value), 4) if np.isfinite(value) else None


@dataclass
class EvaluationResult:
    agent: str  # "population folder:member"
    game: str
    partners: list[dict[str, Any]]  # where the partners came from (adhoc.partners.Partners.describe)
    episodes: int
    metrics: dict[str, Any]
    returns: np.ndarray = field(repr=False, default=None)  # [P, 3, E]

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "game": self.game, "partner_populations": self.partners,
                "episodes": self.episodes, **self.metrics}


# ---------------------------------------------------------------------------- the recipe
def agent_mixture(agent_pop) -> dict[str, float]:
    """The manifest's ``mixture`` (train-learner's) or ``psro.mixture`` (the psro method's final meta-strategy) as
    {member: weight}, weights > 0 and normalised; UserError when absent/bad."""
    from adhoc.population import stored_mixture

    weights = stored_mixture(agent_pop.manifest)
    if not weights or not isinstance(weights, dict):
        raise UserError(f"{agent_pop.path} has no mixture in its manifest (--mixture needs a population from "
                        f"adhoc train-learner or method psro; ones written before mixtures existed have none: retrain)")
    unknown = sorted(set(weights) - set(agent_pop.names))
    if unknown:
        raise UserError(f"{agent_pop.path}: mixture names members it does not have: {', '.join(unknown)}")
    try:
        w = {str(k): float(v) for k, v in weights.items()}
    except (TypeError, ValueError):
        raise UserError(f"{agent_pop.path}: mixture weights must be numbers") from None
    total = sum(w.values())
    if not all(np.isfinite(v) and v >= 0 for v in w.values()) or total <= 0:
        raise UserError(f"{agent_pop.path}: mixture weights must be >= 0 with a positive sum")
    return {k: v / total for k, v in w.items() if v > 0}


def played_with_partners(game, policy, agents: list[int], ids, episodes: int, seed: int, play,
                         seats: list[tuple[int, ...]], agent_seat: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-step rewards of every agent (bank slots ``agents``) with the partners (member ids ``ids``) and of
    the partners' self-play, all from ONE ``play(game, policy, pairs, episodes, seed, per_step=True)``:
    ([K, P, 2, E, T] (axis 2: the agent in seat 0, in seat 1), [P, E, T]); NaN where not played, as in
    ``adhoc.partners.returns_with_partners``. One call, so that no two pairs share a seeded block's stream.
    The pairs come in that function's order (agent 0's seat-0 pairs, its seat-1 pairs, ..., then self-play),
    so a one-stream ``play`` gives its numbers for a single agent."""
    from adhoc.partners import agent_seats, partner_pairs, play_playable

    K, P = len(agents), len(ids)
    pairs, mask = partner_pairs(agents, ids, seats, agent_seat, self_play=True)
    out = play_playable(game, policy, pairs, mask, episodes, seed, per_step=True, play=play,
                        seat_of=agent_seats(K, P, self_play=True))
    out = out.reshape(2 * K + 1, P, episodes, game.horizon)
    return np.swapaxes(out[:-1].reshape(K, 2, P, episodes, game.horizon), 1, 2), out[-1]


def member_rewards(game, policy, N: int, n_members: int, ids, episodes: int, seed: int, play,
                   seats: list[tuple[int, ...]], agent_seat: int | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """(per-step rewards [P, 3, E, T] of the first member (bank slot N; axis 1: seat 0, seat 1, the partner's
    self-play), the returns [P, 2, E] of each further member): with ``play`` None from one generator seeded
    with ``seed`` in this process, the first member and then each further one, as evaluate always did."""
    from adhoc.partners import returns_with_partners

    if play is not None:
        agents, self_play = played_with_partners(game, policy, list(range(N, N + n_members)), ids, episodes, seed,
                                                 play, seats, agent_seat)
        first = np.concatenate([agents[0], self_play[:, None]], axis=1)
        return first, [a.sum(-1) for a in agents[1:]]
    rng = np.random.default_rng(seed)
    first = returns_with_partners(game, policy, N, ids, episodes, rng, self_play=True, seats=seats,
                                  agent_seat=agent_seat, per_step=True)
    return first, [returns_with_partners(game, policy, N + k, ids, episodes, rng, seats=seats, agent_seat=agent_seat)
                   for k in range(1, n_members)]


def evaluate(agent: str | Path, partner_specs: list[str], member: str | None = None, episodes: int = 256,
             seed: int = 0, n_boot: int = 500, device: str = "auto", dtype: str = "auto",
             mixture: bool = False, seat: int | str | None = None, bound: bool = False,
             play=None, transcript: str | None = None, stages=None, exploitability: bool = False
             ) -> EvaluationResult:
    """``exploitability``: on an OpenSpiel game, also OpenSpiel's NashConv of the agent (its member, or the
    mixture) playing both seats, and on a zero-sum one its exploitability (``openspiel_measures``).
    ``bound``: in a repeated game, also the best any history-dependent policy can do with the partners
    (``metrics["best_history_policy"]``, see ``history_bound``). ``transcript``: in a repeated game, play it
    rendered another way (``game.transcript``: a probe of what the agent reads; the payoffs are the same). ``play``: where the episodes are played
    (None: in this process, one stream; ``adhoc.distributed.blocks``: seeded blocks, here or on Ray).
    ``stages``: an ``adhoc.progress.Stages`` told each of the five stages (None: no progress)."""
    from adhoc.games import build_game
    from adhoc.games.core import payoff_kind
    from adhoc.lm.adapters import AdapterBank
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy
    from adhoc.partners import check_compatible, load_partners, seats_beside
    from adhoc.population import Population
    from adhoc.progress import Stages

    stage = (stages or Stages("", 0, False)).stage
    if episodes < 2:
        raise UserError(f"--episodes must be >= 2 (got {episodes})")
    stage("reading the agent and partners")
    if seat not in (None, 0, 1, "both"):
        raise UserError(f"--seat must be 0, 1 or both (got {seat!r})")
    if mixture and member is not None:
        raise UserError("--mixture and --member exclude each other (the mixture names its own members)")
    if bound and transcript is not None:
        raise UserError("--bound and --transcript exclude each other (the bound is the game's as trained)")
    agent_pop = Population.load(agent)
    if bound and agent_pop.game.get("name") != "repeated":
        raise UserError(f"--bound needs a repeated game (game.name=repeated); {agent_pop.path} plays "
                        f"{agent_pop.game.get('name')}")
    game_spec = dict(agent_pop.game)
    if bound and (kind := payoff_kind(build_game(game_spec))) != "common":
        raise UserError(f"--bound is the best return of a common-payoff game; {agent_pop.path} plays a "
                        f"{kind.replace('_', '-')} game (each seat its own payoff): leave --bound out")
    if transcript is not None:
        if game_spec.get("name") != "repeated":
            raise UserError(f"--transcript needs a repeated game; {agent_pop.path} plays {game_spec.get('name')}")
        game_spec["transcript"] = transcript
        build_game(game_spec)  # an unknown rendering is refused before anything is loaded
    if exploitability and game_spec.get("name") != "openspiel":
        raise UserError(f"--exploitability needs an OpenSpiel game (game.name=openspiel), whose tree OpenSpiel "
                        f"can search; {agent_pop.path} plays {game_spec.get('name')}")
    if mixture:
        weights = agent_mixture(agent_pop)
    else:
        name = member or agent_pop.names[0]
        if name not in agent_pop.names:
            raise UserError(f"{agent_pop.path} has no member {name!r} (members: {', '.join(agent_pop.names)})")
        weights = {name: 1.0}
    partners = load_partners(partner_specs, scripted_game=agent_pop.game)  # scripted: the agent's game
    if seat is None:  # the seat the learner was trained in (train-learner's learner.seat), else both
        seat = (agent_pop.manifest.get("learner") or {}).get("seat")
    seat = None if seat == "both" else seat
    seats_beside(partners.seats(), seat, partners.names)  # a partner that cannot sit beside the agent: refused
    check_compatible([agent_pop, *partners.populations], "evaluating an agent with partners")
    stage(f"loading base model {agent_pop.base_model['id']}")
    base = load_base(agent_pop.base_model["id"], device=device, dtype=dtype)
    agent_pop.check_base(base.model_id, base.fingerprint)
    adapter = agent_pop.manifest["adapter"]
    N = partners.n_lora  # LoRA partners in slots 0..N-1, the agent's member(s) after them
    members = list(weights)
    stage(f"loading {N + len(members)} members")
    bank = AdapterBank(base.model, N + len(members), adapter["rank"], adapter["alpha"], adapter["target_modules"],
                       base_model_id=base.model_id)
    partners.load_into(bank, 0)
    for k, name in enumerate(members):
        bank.import_member(N + k, agent_pop.member_dir(name))
    game = build_game(game_spec)
    policy = Policy(base, bank)
    ids, seats = partners.member_ids(policy), partners.seats()  # scripted partners: ids after the bank
    stage(f"playing {len(members)} x {len(partners.names)} partners, {episodes} episodes each")
    rewards, others = member_rewards(game, policy, N, len(members), ids, episodes, seed, play, seats, seat)
    returns = rewards.sum(-1)  # [P, 3, E]; NaN where not played
    kind = payoff_kind(game)
    if kind == "zero_sum":  # a partner's self-play payoff is the seat asymmetry: no self-play, no regret
        returns[:, 2] = np.nan
    stage("bootstrap confidence intervals" + (" and the history bound" if bound else "")
          + (" and OpenSpiel's exploitability" if exploitability else ""))
    measures = openspiel_measures(game, policy, {N + k: weights[m] for k, m in enumerate(members)}, kind) \
        if exploitability else {}
    if not mixture:
        metrics = with_payoff(evaluation_metrics(returns, partners.names, n_boot=n_boot, seed=seed), kind,
                              returns[None, :, :2])
        payoffs = getattr(game, "episode_payoffs", None)  # interactions of several episodes: the curve
        curve = None if payoffs is None else payoffs(rewards[:, :2])  # [P, 2, E, K]
        if curve is not None and curve.shape[-1] > 1:
            with warnings.catch_warnings():  # a seating not played is NaN throughout
                warnings.simplefilter("ignore", RuntimeWarning)
                means = np.nanmean(curve, axis=(1, 2))  # [P, K]: over the seatings played and the episodes
            for row, values in zip(metrics["per_partner"], means):
                row["episode_payoffs"] = [round(float(v), 4) for v in values]
            metrics["episode_payoffs"] = [round(float(v), 4) for v in means.mean(0)]  # over partners
        if bound and (best := history_bound(game, policy, ids, seats, seat)) is not None:
            metrics["best_history_policy"] = best
        metrics.update(measures)
        return EvaluationResult(agent=f"{agent_pop.path}:{members[0]}", game=agent_pop.game["name"],
                                partners=partners.describe(), episodes=episodes, metrics=metrics, returns=returns)
    per_member = [returns[:, :2], *others]  # each [P, 2, E]
    x = np.array([weights[m] for m in members])
    combined = np.concatenate([np.einsum("k,kpse->pse", x, np.stack(per_member)), returns[:, 2:]], axis=1)
    metrics = with_payoff(evaluation_metrics(combined, partners.names, n_boot=n_boot, seed=seed), kind,
                          np.stack(per_member), x)
    own = [np.nanmean(r.mean(-1), -1) for r in per_member]  # [P] per member, both seatings
    metrics = {"mixture": {m: round(float(w), 6) for m, w in weights.items()}, **metrics,
               "snapshots": {m: {"weight": round(float(weights[m]), 6), "mean_return": round(float(r.mean()), 4),
                                 "worst_return": round(float(r.min()), 4)} for m, r in zip(members, own)}}
    if bound and (best := history_bound(game, policy, ids, seats, seat)) is not None:
        metrics["best_history_policy"] = best
    metrics.update(measures)
    label = ", ".join(f"{m} {w:.2f}" for m, w in weights.items())
    return EvaluationResult(agent=f"{agent_pop.path}:mixture({label})", game=agent_pop.game["name"],
                            partners=partners.describe(), episodes=episodes, metrics=metrics, returns=combined)


def with_payoff(metrics: dict[str, Any], kind: str, returns: np.ndarray, weights: np.ndarray | None = None
                ) -> dict[str, Any]:
    """``metrics`` as they are for a common payoff; otherwise led by ``payoff`` and ``returns_are``, and for zero-sum
    with ``not_applicable`` and the agent's win/draw/loss rates (:func:`outcome_rates` of ``returns``
    [K, P, 2, E], ``weights`` [K]) per partner and, averaged over partners, ``win_rate``/``draw_rate``/``loss_rate``."""
    if kind == "common":
        return metrics
    head = {"payoff": kind, "returns_are": "the agent's own seat's payoff (a partner's self_play: its seat-0 payoff)"}
    if kind != "zero_sum":
        return {**head, **metrics}
    rates = outcome_rates(returns, weights)
    for i, row in enumerate(metrics["per_partner"]):
        row.update({key: rates[key][i] for key in ("win", "draw", "loss")})
    means = {f"{key}_rate": _num(np.mean([np.nan if v is None else v for v in rates[key]])) for key in rates}
    head["not_applicable"] = ["self_play", "regret", "mean_regret", "max_regret"]
    return {**head, **metrics, **means}


def openspiel_measures(game, policy, member_weights: dict[int, float], kind: str) -> dict[str, float]:
    """OpenSpiel's ``nash_conv`` of the profile in which both players play the agent (its bank slots mixed by
    ``member_weights``, each member drawn once per game: ``adhoc.exploitability``), and on a zero-sum game its
    ``exploitability`` (NashConv / 2). The best responses are OpenSpiel's; a game with too many information
    states is refused in one line."""
    from adhoc.exploitability import exploitability, nash_conv

    out = {"nash_conv": round(nash_conv(game, policy, member_weights), 6)}
    if kind == "zero_sum":
        out["exploitability"] = round(exploitability(game, policy, member_weights), 6)
    return out


def history_bound(game, policy, ids, seats, agent_seat) -> dict | None:
    """For a repeated game: the best any history-dependent policy can do with these partners, not told which
    one it meets (``adhoc.adaptation``), averaged over the seatings the agent plays; None for other games (and for
    a zero-sum or general-sum stage: the bound is of a common payoff)."""
    from adhoc.games.core import payoff_kind

    if not hasattr(game, "rounds") or not hasattr(game, "payoff_matrix") or payoff_kind(game) != "common":
        return None
    from adhoc.adaptation import best_history_policy, open_then_copy

    found, used, members = [], [], ids.cpu().numpy()
    for s in (0, 1) if agent_seat is None else (agent_seat,):
        if all(1 - s in partner_seats for partner_seats in seats):  # the bound is over the whole partner set
            best = best_history_policy(game, policy, members, agent_seat=s).to_json()
            best["policy"] = "search"
            # a search cut wide open: the best scripted "open, then copy" may be a better policy (sampled, so
            # kept at most the exact upper end)
            if best["upper"] - best["lower"] > 0.01 and (copy := open_then_copy(game, policy, members, s)):
                name, value, per_round, per_partner = copy
                if value > best["lower"]:
                    best.update(lower=min(value, best["upper"]), per_round=per_round, per_partner=per_partner,
                                policy=name)
            found.append(best)
            used.append(s)
    if not found:
        return None
    mean = lambda key: np.mean([f[key] for f in found], 0)  # noqa: E731
    r = lambda v: np.round(v, 4).tolist()  # noqa: E731
    return {"lower": r(mean("lower")), "upper": r(mean("upper")), "per_round": r(mean("per_round")),
            "per_partner": r(mean("per_partner")), "seats": used, "policies": [f["policy"] for f in found]}


def write_outputs(result: EvaluationResult, out: str | Path, overwrite: bool = False) -> Path:
    from adhoc.report import evaluation_html, evaluation_markdown, evaluation_png

    png = evaluation_png(result)
    files = {"evaluation.json": json.dumps(result.to_json(), indent=1), "returns.png": png,
             "report.md": evaluation_markdown(result), "report.html": evaluation_html(result, png)}
    return write_folder(out, "evaluation", files, overwrite=overwrite)


def run_evaluate(agent: str, partner_specs: list[str], member: str | None = None, episodes: int = 256,
                 out: str | None = None, seed: int = 0, mixture: bool = False,
                 seat: int | str | None = None, overwrite: bool = False, bound: bool = False, play=None,
                 transcript: str | None = None, progress: bool = False, exploitability: bool = False
                 ) -> tuple[EvaluationResult, Path]:
    """Evaluate and write the report to ``out`` (default ``runs/evaluate-<agent>-<time>-<id>``), checked
    before any episode is played. ``play``: as in ``evaluate``. ``progress``: its stages on stderr
    (``adhoc.progress``)."""
    from adhoc.progress import Stages

    out = Path(out) if out is not None else unique_default("evaluate", input_label(agent), "mixture" if mixture else "")
    check_out(out, "evaluation", overwrite, inputs=(agent, *partner_specs))
    with Stages("evaluate", 6, progress) as stages:
        result = evaluate(agent, partner_specs, member=member, episodes=episodes, seed=seed, mixture=mixture,
                          seat=seat, bound=bound, play=play, transcript=transcript, stages=stages,
                          exploitability=exploitability)
        stages.stage("writing the report")
        return result, write_outputs(result, out, overwrite)
