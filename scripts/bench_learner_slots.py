"""Time M learners trained in one batched pass (``learners:``) against M separate ``adhoc train-learner`` runs of
the same config (one per seed), in this process, and print both wall times and their ratio.

    python scripts/bench_learner_slots.py                       # warehouse, scripted teachers, M = 3
    python scripts/bench_learner_slots.py --slots 4 --episodes 256 --iterations 20
    python scripts/bench_learner_slots.py --set game.moves=3 --set game.episodes=2   # a multi-step game
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from adhoc.config import load_learner_config
from adhoc.recipes.train_learner import train_learner

CONFIG = Path(__file__).parent.parent / "configs/warehouse-learner.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG), help="a learner config (its partners are every slot's)")
    parser.add_argument("--slots", type=int, default=3, help="M learners (seeds 0..M-1)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=10, help="train.iterations_per_epoch")
    parser.add_argument("--episodes", type=int, default=128, help="train.episodes (per learner)")
    parser.add_argument("--eval-episodes", type=int, default=64)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    args = parser.parse_args()
    small = [f"train.epochs={args.epochs}", f"train.iterations_per_epoch={args.iterations}",
             f"train.episodes={args.episodes}", f"train.eval_episodes={args.eval_episodes}", *args.set]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = yaml.safe_load(Path(args.config).read_text())
        data["learners"] = [{"name": f"seed{i}", "seed": i} for i in range(args.slots)]
        batched_config = tmp / "slots.yaml"
        batched_config.write_text(yaml.safe_dump(data))
        # warm-up (imports, base model, first passes), not timed
        train_learner(load_learner_config(args.config, [*args.set, "train.epochs=1", "train.iterations_per_epoch=1",
                                                        "train.episodes=8", "train.eval_episodes=2"]),
                      out=tmp / "warm-up", progress=False)
        t0 = time.perf_counter()
        pops = train_learner(load_learner_config(batched_config, small), out=tmp / "batched", progress=False)
        batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        singles = [train_learner(load_learner_config(args.config, [*small, f"learner.seed={i}"]), out=tmp / f"seed{i}",
                                 progress=False) for i in range(args.slots)]
        separate = time.perf_counter() - t0
        for name, group in (("batched", pops), ("separate", singles)):
            finals = [p.manifest["training"]["return_mean"] for p in group]
            print(f"{name:>8}: final mean returns {', '.join(f'{v:.3f}' for v in finals)}")
    print(f"{args.slots} learners, {args.epochs} x {args.iterations} iterations of {args.episodes} episodes, "
          f"{args.eval_episodes} eval episodes ({Path(args.config).name})")
    print(f"one batched pass: {batched:.1f} s; {args.slots} separate runs: {separate:.1f} s; "
          f"ratio separate / batched = {separate / batched:.2f}")


if __name__ == "__main__":
    main()
