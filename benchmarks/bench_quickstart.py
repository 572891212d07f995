"""Benchmark: wall time of the README quick start (``adhoc train-population configs/lever-selfplay.yaml``).

Runs the command as a user would (a fresh process, output in a temporary folder), prints its wall time against
the target (<= 60 s on 2 CPU cores) and the members' self-play returns. tests/test_quickstart.py checks the
returns only (``-m slow``); the time is measured here.

    .venv/bin/python benchmarks/bench_quickstart.py [--repeats 1] [--json PATH]

Run from the repository root; timing, flags and ``--json`` come from benchmarks/harness.py (no warm-up: the
fresh process's start-up is part of what a user waits for).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from benchmarks import harness  # noqa: E402

TARGET_S = 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_args(ap, repeats=1)
    args = ap.parse_args()
    record = harness.Record("bench_quickstart", args)
    record["runs"] = runs = []
    for k in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            wall, proc = harness.measure(lambda: subprocess.run(
                [sys.executable, "-m", "adhoc.cli", "train-population", str(ROOT / "configs/lever-selfplay.yaml"),
                 "--out", str(Path(tmp) / "pop"), "--quiet"], capture_output=True, text=True, cwd=tmp))
            if proc.returncode != 0:
                sys.exit(f"quick start failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
            manifest = yaml.safe_load((Path(tmp) / "pop" / "population.yaml").read_text())
            returns = [round(m["self_play_return"], 3) for m in manifest["members"]]
        print(f"run {k}: {wall:.1f} s (target <= {TARGET_S:.0f} s: {'PASS' if wall <= TARGET_S else 'FAIL'}); "
              f"self-play returns {returns}")
        runs.append({"wall_s": wall, "pass": wall <= TARGET_S, "self_play_returns": returns})
    record.add(target_s=TARGET_S, median_wall_s=harness.median(r["wall_s"] for r in runs))
    record.finish(args.json)


if __name__ == "__main__":
    main()
