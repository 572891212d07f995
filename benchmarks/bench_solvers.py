"""Benchmark: wall time of the meta-strategy solvers (adhoc/solvers.py) on random meta-games.

Times ``prd`` (defaults: 1e4 steps of dt = 1e-2, and OpenSpiel's 1e5 steps of dt = 1e-3), ``alpharank`` and
``maximin`` on K x P Gaussian payoff matrices (K learner snapshots = P partners), the median of ``--repeats``
runs, and prints how far PRD's average is from the zero-sum equilibrium (exploitability over the payoff range)
so that a faster setting can be judged by its answer too. With ``open_spiel`` installed it also times
OpenSpiel's ``projected_replicator_dynamics`` on the same matrices.

Speed lives here, never in the tests (tests/test_solvers.py checks the answers only).

    .venv/bin/python benchmarks/bench_solvers.py [--sizes 4 10 32] [--repeats 5] [--json PATH]

Run from the repository root; timing, flags and ``--json`` come from benchmarks/harness.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks import harness  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 10, 32], help="K = P of the square meta-games")
    ap.add_argument("--seed", type=int, default=0)
    harness.add_common_args(ap, repeats=5)
    args = ap.parse_args()
    record = harness.Record("bench_solvers", args)

    from adhoc.solvers import alpharank, maximin, nash_zero_sum, prd

    try:
        from open_spiel.python.algorithms.projected_replicator_dynamics import projected_replicator_dynamics
    except ImportError:
        projected_replicator_dynamics = None

    print("| K x P | solver | median time (s) | exploitability / range |")
    print("|---|---|---:|---:|")
    for n in args.sizes:
        M = np.random.default_rng(args.seed).normal(size=(n, n))
        value, span = nash_zero_sum(M)[2], float(M.max() - M.min())

        def gap(y: np.ndarray) -> str:
            return f"{(float((M @ y).max()) - value) / span:.4f}"

        runs = [("prd (defaults: normalized, 1e4 x 1e-2)", lambda: prd(M)),
                ("prd (1e4 x 1e-2, not normalized)", lambda: prd(M, normalize=False)),
                ("prd (1e5 x 1e-3, OpenSpiel's)", lambda: prd(M, steps=100_000, dt=1e-3, normalize=False)),
                ("alpharank", lambda: alpharank(M)),
                ("maximin (LP)", lambda: maximin(M))]
        if projected_replicator_dynamics is not None:
            runs.append(("open_spiel prd (1e4 x 1e-2, not normalized)", lambda: projected_replicator_dynamics(
                [M, -M], prd_iterations=10_000, prd_dt=1e-2)[1]))
        for name, fn in runs:
            repeats = 1 if "1e5" in name else args.repeats
            timing = harness.timeit(fn, repeats)
            shown = "-" if name == "alpharank" else gap(timing.result)  # alpha-rank is no equilibrium solver
            record[f"{n}x{n} {name}"] = {**timing.as_dict(), "exploitability_over_range": shown}
            print(f"| {n} x {n} | {name} | {timing.median:.3f} | {shown} |")
    record.finish(args.json)


if __name__ == "__main__":
    main()
