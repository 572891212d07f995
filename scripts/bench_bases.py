"""Time the repeated-lever learner's iterations on several base models in one run, and print each base's time per
iteration and its ratio to the first base's (what a pretrained base, or a wider one, costs in training).

    python scripts/bench_bases.py builtin:tiny builtin:copy runs/prior/random-h128
    python scripts/bench_bases.py builtin:tiny builtin:small --iterations 5 --repeats 2

Each base trains ``--iterations`` iterations of the config's learner (stubborn partners, 512 episodes) after an
untimed warm-up; the bases take turns ``--repeats`` times, so a change in the machine's load falls on all of
them alike; the median per base is reported.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from adhoc.config import load_learner_config
from adhoc.recipes.train_learner import train_learner

CONFIG = Path(__file__).resolve().parent.parent / "configs/repeated-lever-learner.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bases", nargs="+", metavar="BASE")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=512)
    args = parser.parse_args()
    times: dict[str, list[float]] = {b: [] for b in args.bases}
    with tempfile.TemporaryDirectory() as tmp:
        run = 0

        def train(base: str, iterations: int, episodes: int) -> float:
            nonlocal run
            run += 1
            config = load_learner_config(CONFIG, [f"model.base={base}", "train.epochs=1", "train.eval_episodes=2",
                                                  f"train.iterations_per_epoch={iterations}",
                                                  f"train.episodes={episodes}"])
            t0 = time.perf_counter()
            train_learner(config, out=Path(tmp) / f"run{run}", progress=False)
            return time.perf_counter() - t0

        for base in args.bases:  # warm-up: imports, the base model, first passes
            train(base, 1, 8)
        for _ in range(args.repeats):
            for base in args.bases:
                times[base].append(train(base, args.iterations, args.episodes) / args.iterations)
    first = statistics.median(times[args.bases[0]])
    print(f"{args.iterations} iterations x {args.episodes} episodes, median of {args.repeats}; ratio to {args.bases[0]}")
    for base in args.bases:
        median = statistics.median(times[base])
        print(f"{base:<40} {median:7.3f} s/iteration   ratio {median / first:5.2f}   "
              f"(runs: {', '.join(f'{t:.3f}' for t in times[base])})")


if __name__ == "__main__":
    main()
