"""Rollout throughput on a multi-step game, with and without prefix reuse, in the same run.

Plays a batch of warehouse interactions (every member with itself) and reports interaction-steps per second
(game steps × interactions / wall time) when each seat's observation is encoded whole at every step
(``prefix_reuse=False``) and when only what was appended since the seat's last turn is encoded, reusing
the key/value cache of the prefix (``prefix_reuse=True``), and the ratio. Both modes play the same
episodes (same seed) and must give the same actions; the script checks that.

    python benchmarks/bench_rollout.py                    # builtin:tiny, 8 members x 64 interactions
    python benchmarks/bench_rollout.py --episodes 6 --moves 3 --grad
    python benchmarks/bench_rollout.py --grad --mode per_episode     # the per-episode rollout path (train.rollout)
    python3 benchmarks/bench_rollout.py --device cuda --dtype bfloat16   # on a GPU (auto picks bf16 there)

In float32 both modes must give identical actions (the check aborts otherwise). In bf16/fp16 the two modes
round differently, so an action sampled near a probability boundary can flip (and the rest of that
interaction then differs): there the script reports the fraction of differing actions instead of aborting.
Run from the repository root; timing (with ``torch.cuda.synchronize`` on a GPU), flags and ``--json PATH`` come
from benchmarks/harness.py.
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
from adhoc.lm.adapters import AdapterBank  # noqa: E402
from adhoc.lm.base import load_base  # noqa: E402
from adhoc.lm.policy import Policy  # noqa: E402
from adhoc.rollout import rollout  # noqa: E402
from benchmarks import harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="builtin:tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--interactions", type=int, default=64, help="interactions per member")
    parser.add_argument("--episodes", type=int, default=4, help="warehouse episodes per interaction")
    parser.add_argument("--moves", type=int, default=3, help="robot moves per episode")
    parser.add_argument("--grad", action="store_true", help="time a training rollout (with autograd) + backward")
    parser.add_argument("--mode", default="per_row", choices=["per_row", "per_episode"], help="rollout mode")
    harness.add_common_args(parser, repeats=3)
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

    sync = harness.cuda_sync(base.device)

    def run(reuse: bool, seed: int) -> tuple[float, torch.Tensor]:
        def play() -> torch.Tensor:
            traj = rollout(game, policy, pairs, args.interactions, np.random.default_rng(seed), grad=args.grad,
                           keep_distributions=False, prefix_reuse=reuse, mode=args.mode)
            if args.grad:
                bank.zero_grad()
                (traj.logp.sum(-1).sum(-1) * traj.returns).sum().backward()
            return traj.actions

        return harness.measure(play, sync=sync)

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
    rate = {k: steps / harness.median(v) for k, v in times.items()}
    print(f"  full re-encoding : {rate[False]:10.0f} interaction-steps/s  (median of {args.repeats})")
    print(f"  prefix reuse     : {rate[True]:10.0f} interaction-steps/s")
    print(f"  ratio reuse/full : {harness.ratio(rate[True], rate[False]):.2f}x")
    print(f"  actions differing between the modes: {max(differing):.2%} (worst repeat; 0 required in float32)")
    record = harness.Record("bench_rollout", args)
    record.add(base=base.model_id, dtype=str(base.dtype), steps=steps, full_s=times[False], reuse_s=times[True],
               full_steps_per_s=rate[False], reuse_steps_per_s=rate[True],
               ratio_reuse_over_full=harness.ratio(rate[True], rate[False]), actions_differing=max(differing))
    record.finish(args.json, device=base.device)


if __name__ == "__main__":
    main()
