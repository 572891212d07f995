"""Rollout throughput on a multi-step game, with and without prefix reuse, in the same run.

Plays a batch of warehouse interactions (every member with itself) and reports interaction-steps per second
(game steps × interactions / wall time) when each seat's observation is encoded whole at every step
(``prefix_reuse=False``) and when only what was appended since the seat's last turn is encoded, reusing
the key/value cache of the prefix (``prefix_reuse=True``), and the ratio. Both modes play the same
episodes (same seed) and must give the same actions; the script checks that.

    python scripts/bench_rollout.py                    # builtin:tiny, 8 members x 64 interactions
    python scripts/bench_rollout.py --episodes 6 --moves 3 --grad
    python scripts/bench_rollout.py --grad --mode per_episode     # the per-episode rollout path (train.rollout)
    python3 scripts/bench_rollout.py --device cuda --dtype bfloat16   # on a GPU (auto picks bf16 there)

In float32 both modes must give identical actions (the check aborts otherwise). In bf16/fp16 the two modes
round differently, so an action sampled near a probability boundary can flip (and the rest of that
interaction then differs): there the script reports the fraction of differing actions instead of aborting.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from adhoc.games import make_game
from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.rollout import rollout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="builtin:tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--interactions", type=int, default=64, help="interactions per member")
    parser.add_argument("--episodes", type=int, default=4, help="warehouse episodes per interaction")
    parser.add_argument("--moves", type=int, default=3, help="robot moves per episode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grad", action="store_true", help="time a training rollout (with autograd) + backward")
    parser.add_argument("--mode", default="per_row", choices=["per_row", "per_episode"], help="rollout mode")
    args = parser.parse_args()

    game = make_game("warehouse", episodes=args.episodes, moves=args.moves)
    base = load_base(args.base, device=args.device, dtype=args.dtype)
    bank = AdapterBank(base.model, args.members, 4, 8.0, ["q_proj", "v_proj", "lm_head"], base_model_id=base.model_id)
    bank.init_members(list(range(args.members)), b_std=0.1)
    policy = Policy(base, bank)
    members = torch.arange(args.members)
    pairs = torch.stack([members, members], 1)
    steps = game.horizon * args.members * args.interactions
    print(f"warehouse {game.width}x{game.height}, {args.episodes} episodes x {args.moves} moves = {game.horizon} steps; "
          f"{args.members} members x {args.interactions} interactions; base {base.model_id} on {base.device} "
          f"({str(base.dtype).removeprefix('torch.')}); "
          f"{'with' if args.grad else 'without'} autograd; {args.mode} rollout")

    def run(reuse: bool, seed: int) -> tuple[float, torch.Tensor]:
        if base.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        traj = rollout(game, policy, pairs, args.interactions, np.random.default_rng(seed), grad=args.grad,
                       keep_distributions=False, prefix_reuse=reuse, mode=args.mode)
        if args.grad:
            bank.zero_grad()
            (traj.logp.sum(-1).sum(-1) * traj.returns).sum().backward()
        if base.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, traj.actions

    run(True, 0), run(False, 0)  # warm-up (tokenizer caches, kernels)
    times = {True: [], False: []}
    differing = []
    for r in range(args.repeats):
        for reuse in (False, True):
            seconds, actions = run(reuse, 100 + r)
            times[reuse].append(seconds)
            if reuse:
                if base.dtype == torch.float32:
                    assert torch.equal(actions, reference), "prefix reuse changed the sampled actions"
                differing.append(float((actions != reference).float().mean()))
            else:
                reference = actions
    rate = {k: steps / float(np.median(v)) for k, v in times.items()}
    print(f"  full re-encoding : {rate[False]:10.0f} interaction-steps/s  (median of {args.repeats})")
    print(f"  prefix reuse     : {rate[True]:10.0f} interaction-steps/s")
    print(f"  ratio reuse/full : {rate[True] / rate[False]:.2f}x")
    print(f"  actions differing between the modes: {max(differing):.2%} (worst repeat; 0 required in float32)")


if __name__ == "__main__":
    main()
