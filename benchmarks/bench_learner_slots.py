"""Time M learners trained in one batched pass (``learners:``) against M separate ``adhoc train-learner`` runs of
the same config (one per seed), in this process, and print both wall times and their ratio.

    python benchmarks/bench_learner_slots.py                       # warehouse, scripted teachers, M = 3
    python benchmarks/bench_learner_slots.py --slots 4 --episodes 256 --iterations 20
    python benchmarks/bench_learner_slots.py --set game.moves=3 --set game.episodes=2   # a multi-step game

Run from the repository root; timing, the ratio and ``--json PATH`` come from benchmarks/harness.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from adhoc.config import load_learner_config  # noqa: E402
from adhoc.recipes.train_learner import train_learner  # noqa: E402
from benchmarks import harness  # noqa: E402

CONFIG = ROOT / "configs/warehouse-learner.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG), help="a learner config (its partners are every slot's)")
    parser.add_argument("--slots", type=int, default=3, help="M learners (seeds 0..M-1)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=10, help="train.iterations_per_epoch")
    parser.add_argument("--episodes", type=int, default=128, help="train.episodes (per learner)")
    parser.add_argument("--eval-episodes", type=int, default=64)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    harness.add_common_args(parser)
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
        batched, pops = harness.measure(lambda: train_learner(load_learner_config(batched_config, small),
                                                              out=tmp / "batched", progress=False))
        separate, singles = harness.measure(lambda: [
            train_learner(load_learner_config(args.config, [*small, f"learner.seed={i}"]), out=tmp / f"seed{i}",
                          progress=False) for i in range(args.slots)])
        record = harness.Record("bench_learner_slots", args)
        for name, group in (("batched", pops), ("separate", singles)):
            finals = [p.manifest["training"]["return_mean"] for p in group]
            record[f"{name}_final_return_means"] = finals
            print(f"{name:>8}: final mean returns {', '.join(f'{v:.3f}' for v in finals)}")
    print(f"{args.slots} learners, {args.epochs} x {args.iterations} iterations of {args.episodes} episodes, "
          f"{args.eval_episodes} eval episodes ({Path(args.config).name})")
    print(f"one batched pass: {batched:.1f} s; {args.slots} separate runs: {separate:.1f} s; "
          f"ratio separate / batched = {harness.ratio(separate, batched):.2f}")
    record.add(batched_s=batched, separate_s=separate, separate_over_batched=harness.ratio(separate, batched))
    record.finish(args.json)


if __name__ == "__main__":
    main()
