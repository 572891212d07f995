"""Time the repeated-lever learner's iterations on several base models in one run, and print each base's time per
iteration and its ratio to the first base's (what a pretrained base, or a wider one, costs in training).

    python benchmarks/bench_bases.py builtin:tiny builtin:copy runs/prior/random-h128
    python benchmarks/bench_bases.py builtin:tiny builtin:small --iterations 5 --repeats 2

Each base trains ``--iterations`` iterations of the config's learner (stubborn partners, 512 episodes) after an
untimed warm-up; the bases take turns ``--repeats`` times, so a change in the machine's load falls on all of
them alike; the median per base is reported. Run from the repository root; timing, flags and ``--json`` come
from benchmarks/harness.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adhoc.config import load_learner_config  # noqa: E402
from adhoc.recipes.train_learner import train_learner  # noqa: E402
from benchmarks import harness  # noqa: E402

CONFIG = ROOT / "configs/repeated-lever-learner.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bases", nargs="+", metavar="BASE")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=512)
    harness.add_common_args(parser, repeats=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {b: [] for b in args.bases}
    with tempfile.TemporaryDirectory() as tmp:
        run = 0

        def job(base: str, iterations: int, episodes: int):
            """One training run, configured (untimed) and ready to be called (timed)."""
            nonlocal run
            run += 1
            config = load_learner_config(CONFIG, [f"model.base={base}", "train.epochs=1", "train.eval_episodes=2",
                                                  f"train.iterations_per_epoch={iterations}",
                                                  f"train.episodes={episodes}"])
            out = Path(tmp) / f"run{run}"
            return lambda: train_learner(config, out=out, progress=False)

        for base in args.bases:  # warm-up: imports, the base model, first passes
            job(base, 1, 8)()
        for _ in range(args.repeats):
            for base in args.bases:
                seconds, _ = harness.measure(job(base, args.iterations, args.episodes))
                times[base].append(seconds / args.iterations)
    first = harness.median(times[args.bases[0]])
    record = harness.Record("bench_bases", args)
    print(f"{args.iterations} iterations x {args.episodes} episodes, median of {args.repeats}; ratio to {args.bases[0]}")
    for base in args.bases:
        median = harness.median(times[base])
        record[base] = {"s_per_iteration": median, "spread_s": harness.spread(times[base]),
                        "ratio_to_first": harness.ratio(median, first), "runs_s": times[base]}
        print(f"{base:<40} {median:7.3f} s/iteration   ratio {harness.ratio(median, first):5.2f}   "
              f"(runs: {', '.join(f'{t:.3f}' for t in times[base])})")
    record.finish(args.json)


if __name__ == "__main__":
    main()
