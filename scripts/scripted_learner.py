"""Alignment games: an AI trained against scripted teachers (human proxies), evaluated with held-out teachers;
for the warehouse also the per-episode return curve inside an interaction (in-context grounding).

A thin driver over ``adhoc train-learner``'s loop (``adhoc.recipes.train_learner``): every ``--train`` teacher
set is one learner slot (``learners:``, partners ``scripted:<game>:<set>``), all trained in ONE batched pass
in the AI seat (``learner.seat: 0``) by REINFORCE with a leave-one-out baseline per teacher, against a
uniform meta-strategy over its teachers (``solver: uniform``, one epoch of ``--iterations`` iterations).
Every AI plays ``--episodes-per-teacher`` × (the largest set's size) interactions per iteration, each with a
teacher of its set drawn uniformly. The AIs are saved as learner populations, ``--out DIR/ai-<i>`` (``adhoc
evaluate`` reads them). Saved populations can be evaluated in the AI seat too (``--population``: every
member with each scripted teacher).

Report: for every AI and every teacher, the mean interaction return; for the warehouse the mean payoff of
episode 1..K of the interaction (in-context grounding shows as later episodes beating the first) and each
member's label reading.

    python scripts/scripted_learner.py --game warehouse --param moves=3 --param episodes=2 \\
        --train ground,ground-swap,ground-mirror --heldout ground-rotate,direct-rotate \\
        --iterations 1200 --lr 0.01 --episodes-per-teacher 128          # in-context identification, ~5 min
    python scripts/scripted_learner.py --game warehouse --param moves=3 --param episodes=2 \\
        --train ground-0123,ground-1032,ground-0132,ground-3210,ground-2013,ground-1320,ground-0213,ground-0231,\\
ground-1230,ground-2103,ground-3021,ground-3102 --train ground-0123 --heldout ground-2301,ground-3120,ground-1203,\\
ground-0312 --iterations 1500 --lr 0.01 --episodes-per-teacher 24   # 12 conventions vs one, held out, ~10 min
    python scripts/scripted_learner.py --game warehouse --param moves=1 --param episodes=1 \\
        --population POP_SELFPLAY --population POP_OTHERPLAY --train direct,direct-swap,direct-mirror \\
        --train direct --heldout direct-rotate,ground-rotate --iterations 150 --episodes-per-teacher 128 \\
        --eval-episodes 1024                                            # held-out teachers
    python scripts/scripted_learner.py --game preference --train quality,deficiency,noisy --train quality \\
        --train deficiency --iterations 600 --entropy 0.05                     # ~3 min
    python scripts/scripted_learner.py --game corrective --param digits=1 --param credit=digits --train digit \\
        --train point --train wrong --train silent --iterations 1200 --episodes-per-teacher 128  # ~2.5 min
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from adhoc.config import load_learner_config
from adhoc.games import make_game
from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.paths import unique_default
from adhoc.population import Population
from adhoc.recipes.train_learner import train_learner
from adhoc.rollout import rollout
from adhoc.scripted import load_scripted_population, scripted_ids


def per_episode(game, rewards: torch.Tensor) -> torch.Tensor:
    """Payoff of each episode of an interaction (``game.episode_payoffs``): rewards [..., T] → [..., K] (the
    whole return as one entry for games without episodes)."""
    payoffs = getattr(game, "episode_payoffs", None)
    return rewards.sum(-1, keepdim=True) if payoffs is None else payoffs(rewards)


@torch.no_grad()
def evaluate(game, policy, robots: list[int], teacher_ids: dict[str, int], episodes: int, seed: int) -> dict:
    """{robot index: {teacher: {"return": mean, "episodes": [mean payoff of episode 1..K]}}}."""
    names = list(teacher_ids)
    pairs = torch.tensor([[r, teacher_ids[t]] for r in robots for t in names])
    traj = rollout(game, policy, pairs, episodes, np.random.default_rng(seed), grad=False, keep_distributions=False)
    curve = per_episode(game, traj.rewards.cpu()).mean(1)  # [pairs, K]
    ret = traj.returns.cpu().mean(1)
    out, i = {}, 0
    for r in robots:
        out[r] = {}
        for t in names:
            out[r][t] = {"return": round(float(ret[i]), 4), "episodes": [round(float(v), 4) for v in curve[i]]}
            i += 1
    return out


def learner_config(args, game_params: dict, teacher_sets: list[list[str]], adapter: dict) -> dict:
    """The ``adhoc train-learner`` config of the AIs: one learner slot per teacher set, seat 0, one epoch."""
    size = max(len(s) for s in teacher_sets)
    return {
        "game": {"name": args.game, **game_params},
        "partners": [],
        "solver": "uniform",
        "model": {"base": args.base, "device": "cpu", "dtype": "float32", "lora_rank": adapter["rank"],
                  "lora_alpha": float(adapter["alpha"]), "target_modules": list(adapter["target_modules"])},
        "learner": {"name": "ai", "seed": args.seed, "seat": 0},
        "learners": [{"name": f"ai-{i}", "seed": args.seed + i, "partners": [f"scripted:{args.game}:" + ",".join(s)]}
                     for i, s in enumerate(teacher_sets)],
        "train": {"epochs": 1, "iterations_per_epoch": args.iterations, "episodes": args.episodes_per_teacher * size,
                  "eval_episodes": args.train_eval_episodes, "lr": args.lr, "entropy_coef": args.entropy,
                  "max_grad_norm": 1.0, "checkpoint_every": 0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="append", default=[], help="comma-separated teacher names (repeatable)")
    parser.add_argument("--heldout", default="", help="comma-separated teachers only evaluated with")
    parser.add_argument("--population", action="append", default=[], help="saved population: members as robots")
    parser.add_argument("--game", default="warehouse", help="warehouse | preference | corrective")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="game parameter (YAML value)")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--episodes-per-teacher", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--entropy", type=float, default=0.01)
    parser.add_argument("--eval-episodes", type=int, default=512)
    parser.add_argument("--train-eval-episodes", type=int, default=16,
                        help="episodes per entry of the learners' own meta-game rows (the report uses --eval-episodes)")
    parser.add_argument("--target-modules", default="q_proj,v_proj,lm_head")
    parser.add_argument("--base", default="builtin:tiny", help="base model (builtin:tiny, builtin:small, an HF id/path)")
    parser.add_argument("--lora-rank", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="where the trained AIs' populations go (default runs/<game>-learners-...)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    game_params = {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in args.param)}
    game = make_game(args.game, **game_params)
    teacher_sets = [[t for t in spec.split(",") if t] for spec in args.train]
    heldout = [t for t in args.heldout.split(",") if t]
    every = list(dict.fromkeys([t for s in teacher_sets for t in s] + heldout))
    pops = [Population.load(p) for p in args.population]
    adapter = {"rank": args.lora_rank, "alpha": 2.0 * args.lora_rank, "target_modules": args.target_modules.split(",")}
    if pops:
        adapter = pops[0].manifest["adapter"]

    # train one AI per teacher set, all in one batched pass (adhoc train-learner with learners:)
    if teacher_sets:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "learners.yaml"
            path.write_text(yaml.safe_dump(learner_config(args, game_params, teacher_sets, adapter), sort_keys=False))
            config = load_learner_config(path)
        out = args.out or unique_default(args.game, "learners", f"seed{args.seed}")
        trained = train_learner(config, out=out)
        print(f"trained {len(trained)} AIs in one batched pass: {Path(out)}/ai-<i>", flush=True)
        pops = trained + pops

    # evaluate every AI (the trained ones' final members, every member of --population) with every teacher
    base = load_base(args.base, device="cpu", dtype="float32")
    robots = [(pop, m) for k, pop in enumerate(pops) for m in (pop.names[:1] if k < len(teacher_sets) else pop.names)]
    n = len(robots)
    bank = AdapterBank(base.model, max(n, 1), adapter["rank"], adapter["alpha"], adapter["target_modules"],
                       base_model_id=base.model_id)
    for slot, (pop, member) in enumerate(robots):
        pop.check_base(base.model_id, base.fingerprint)
        bank.import_member(slot, pop.member_dir(member))
    policy = Policy(base, bank)
    spec = f"scripted:{game.name}:" + ",".join(every)
    ids = dict(zip(every, scripted_ids(policy, load_scripted_population(spec, game)).tolist()))
    labels = [f"learner[{'+'.join(s)}]" for s in teacher_sets] + [
        f"{pop.path.name}/{m}" for pop, m in robots[len(teacher_sets):]]
    results = evaluate(game, policy, list(range(n)), ids, args.eval_episodes, args.seed + 1)
    table = {labels[r]: v for r, v in results.items()}
    print(f"\nAI (seat 0) x scripted teacher (seat 1): mean interaction return; per-episode payoff")
    for r, (label, row) in enumerate(table.items()):
        print(label)
        own = teacher_sets[r] if r < len(teacher_sets) else []
        for t, v in row.items():
            tag = "held-out" if t in heldout else "train" if t in own else ""
            print(f"  {t:<14} {tag:<8} {v['return']:.3f}   episodes {' '.join(f'{x:.3f}' for x in v['episodes'])}")
        if heldout:
            h = [row[t]["return"] for t in heldout]
            print(f"  {'held-out mean':<23} {np.mean(h):.3f}")
    conventions = {}
    for i, label in enumerate(labels if game.name == "warehouse" else []):  # each robot's reading of each label, and its teacher side if trained in both
        robot_obs = [f"robot . episode at 1 1 : {w}" for w in game.labels]
        probs = torch.softmax(policy.scores(torch.full((len(robot_obs),), i), robot_obs, policy.actions(game.action_names(0))), -1)
        reading = {w: game.action_names(0)[int(p.argmax())] for w, p in zip(game.labels, probs)}
        probes = game.convention_probes()
        probs = torch.softmax(policy.scores(torch.full((len(probes),), i), list(probes.values()),
                                            policy.actions(game.action_names(1))), -1)
        saying = {d: game.labels[int(p.argmax())] for d, p in zip(probes, probs)}
        conventions[label] = {"robot_reads": reading, "teacher_says": saying}
        print(f"{label}: robot reads {reading}; as teacher says {saying}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "heldout": heldout, "results": table, "conventions": conventions}, f, indent=1)


if __name__ == "__main__":
    main()
