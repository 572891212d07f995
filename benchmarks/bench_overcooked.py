"""Overcooked (cramped_room): environment steps per second of self-play training, and where the time goes.

    .venv/bin/python benchmarks/bench_overcooked.py                      # 8 members x 8 episodes x 20 steps
    .venv/bin/python benchmarks/bench_overcooked.py --episodes 16 --horizon 40 --repeats 5

One iteration = a self-play rollout of every member with itself (``members`` pairs x ``episodes`` episodes of
``horizon`` joint steps) and the REINFORCE backward pass, as ``train-population`` runs it. Two variants, timed in
turn: the prefix cache on (the default: the layout, the observation's static part, is encoded once) and off
(every observation encoded whole). For the first, the time is split into stepping (``game.step``, the package's
``get_state_transition``), rendering (``game.observe``/``legal_mask``), LM scoring (``Policy.scores_reusing``/
``scores``) and the backward pass. Needs the extra: pip install -e ".[overcooked]".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from adhoc.games import make_game  # noqa: E402
from adhoc.lm.policy import Policy  # noqa: E402
from adhoc.rollout import rollout  # noqa: E402
from benchmarks import harness  # noqa: E402

PARTS = ("stepping", "rendering", "scoring", "backward")


def training_iteration(args, base, bank, pairs, parts, reuse: bool):
    """One self-play iteration as ``train-population`` runs it: a rollout of every member with itself and the
    REINFORCE backward pass. ``parts`` (or None): the clock of its stepping, rendering, scoring and backward."""
    game = make_game("overcooked", layout=args.layout, horizon=args.horizon)
    policy = Policy(base, bank)
    backward = torch.Tensor.backward
    if parts is not None:
        game.step = parts.wrap("stepping", game.step)
        game.observe = parts.wrap("rendering", game.observe)
        game.legal_mask = parts.wrap("rendering", game.legal_mask)
        policy.scores_reusing = parts.wrap("scoring", policy.scores_reusing)
        policy.scores = parts.wrap("scoring", policy.scores)
        backward = parts.wrap("backward", backward)
    seeds = iter(range(10**6))

    def iteration() -> None:
        traj = rollout(game, policy, pairs, args.episodes, np.random.default_rng(next(seeds)), prefix_reuse=reuse)
        backward(-(traj.returns.detach()[..., None, None] * traj.logp).sum())
        bank.zero_grad()

    return iteration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, default in (("--members", 8), ("--episodes", 8), ("--horizon", 20)):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--layout", default="cramped_room")
    harness.add_common_args(parser, repeats=3, warmup=1)
    args = parser.parse_args()
    record = harness.Record("bench_overcooked", args)
    parts = harness.Parts()
    setup = harness.selfplay_bank(args.members)
    variants = {name: training_iteration(args, *setup, parts if reuse else None, reuse)
                for name, reuse in (("prefix cache", True), ("no reuse", False))}
    for _ in range(args.warmup):  # outside the parts' clock, so that the shares are of the timed calls alone
        for iteration in variants.values():
            iteration()
    parts.reset()
    times = harness.interleaved(variants, args.repeats, 0)
    steps = args.members * args.episodes * args.horizon
    print(f"Overcooked {args.layout}, {args.members} members x {args.episodes} episodes x {args.horizon} steps of "
          f"self-play per iteration ({steps} joint steps), median of {args.repeats}")
    print(f"{'variant':<14} {'s/iteration':>11} {'steps/s':>9}")
    for name, t in times.items():
        print(f"{name:<14} {t.median:11.2f} {steps / t.median:9.1f}")
        record[name] = {"timing": t, "steps_per_s": steps / t.median}
    total = sum(times["prefix cache"].times)
    print("where the prefix-cache variant's time goes (share of its timed iterations):")
    for part in PARTS:
        print(f"  {part:<10} {parts[part] / total:6.1%}")
        record[f"share_{part}"] = parts[part] / total
    print(f"  {'rest':<10} {1 - sum(parts[p] for p in PARTS) / total:6.1%}  (sampling, bookkeeping)")
    record.finish(args.json)


if __name__ == "__main__":
    main()
