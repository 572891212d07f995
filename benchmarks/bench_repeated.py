"""Prefix reuse on the repeated lever game: one training rollout (and its backward pass) of a learner batch with
and without reusing each seat's encoded transcript across rounds, in the same run, for K = 2, 4, 8 rounds.

    .venv/bin/python benchmarks/bench_repeated.py               # 512 episodes, 10 levers, median of 5
    .venv/bin/python benchmarks/bench_repeated.py --episodes 1024 --repeats 9

Prints the median seconds per rollout (+ backward) with reuse, without, and the ratio. With reuse, round k
encodes only round k's new tokens, so the cost per round stays flat; without it grows with the transcript.
Run from the repository root; timing, flags and ``--json PATH`` come from benchmarks/harness.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks import harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--rounds", type=int, nargs="+", default=[2, 4, 8])
    harness.add_common_args(parser, repeats=5)
    args = parser.parse_args()
    record = harness.Record("bench_repeated", args)
    from adhoc.games import make_game
    from adhoc.lm.adapters import AdapterBank
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy
    from adhoc.rollout import rollout
    from adhoc.scripted import load_scripted_population, scripted_ids

    torch.set_num_threads(1)
    base = load_base("builtin:tiny", device="cpu")
    bank = AdapterBank(base.model, 1, 4, 8, ["q_proj", "v_proj", "lm_head"])
    bank.init_members([0], b_std=0.1)
    print(f"{args.episodes} episodes (learner vs 8 stubborn partners, both seats), median of {args.repeats}")
    print(f"{'rounds':>6}  {'reuse s':>8}  {'no reuse s':>10}  {'ratio':>6}")
    for K in args.rounds:
        game = make_game("repeated", stage="lever", rounds=K, stage_params={"n_levers": 10})
        policy = Policy(base, bank)
        ids = scripted_ids(policy, load_scripted_population(
            "scripted:repeated:" + ",".join(f"stubborn-{a}" for a in range(1, 9)), game))
        partner = ids[torch.arange(args.episodes) % 8]
        learner = torch.zeros(args.episodes, dtype=torch.long)
        half = args.episodes // 2
        pairs = torch.cat([torch.stack([learner[:half], partner[:half]], 1),
                           torch.stack([partner[half:], learner[half:]], 1)])
        seeds = {True: iter(range(args.repeats)), False: iter(range(args.repeats))}

        def step(reuse: bool) -> None:
            traj = rollout(game, policy, pairs, 1, np.random.default_rng(next(seeds[reuse])), prefix_reuse=reuse,
                           keep_distributions=False)
            traj.logp.sum().backward()
            bank.zero_grad()

        times = harness.interleaved({"reuse": lambda: step(True), "no_reuse": lambda: step(False)}, args.repeats)
        a, b = times["reuse"].median, times["no_reuse"].median
        record[f"rounds_{K}"] = {**times, "ratio_no_reuse_over_reuse": harness.ratio(b, a)}
        print(f"{K:>6}  {a:8.3f}  {b:10.3f}  {harness.ratio(b, a):6.2f}")
    record.finish(args.json)


if __name__ == "__main__":
    main()
