"""Prefix reuse on the repeated lever game: one training rollout (and its backward pass) of a learner batch with
and without reusing each seat's encoded transcript across rounds, in the same run, for K = 2, 4, 8 rounds.

    .venv/bin/python scripts/bench_repeated.py               # 512 episodes, 10 levers, median of 5
    .venv/bin/python scripts/bench_repeated.py --episodes 1024 --repeats 9

Prints the median seconds per rollout (+ backward) with reuse, without, and the ratio. With reuse, round k
encodes only round k's new tokens, so the cost per round stays flat; without it grows with the transcript.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, nargs="+", default=[2, 4, 8])
    args = parser.parse_args()
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
        times = {True: [], False: []}
        for r in range(args.repeats):
            for reuse in (True, False):
                t0 = time.perf_counter()
                traj = rollout(game, policy, pairs, 1, np.random.default_rng(r), prefix_reuse=reuse,
                               keep_distributions=False)
                traj.logp.sum().backward()
                bank.zero_grad()
                times[reuse].append(time.perf_counter() - t0)
        a, b = statistics.median(times[True]), statistics.median(times[False])
        print(f"{K:>6}  {a:8.3f}  {b:10.3f}  {b / a:6.2f}")


if __name__ == "__main__":
    main()
