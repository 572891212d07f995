"""Benchmark: wall time of the README quick start (``adhoc train-population configs/lever-selfplay.yaml``).

Runs the command as a user would (a fresh process, output in a temporary folder), prints its wall time against
the target (<= 60 s on 2 CPU cores) and the members' self-play returns. tests/test_quickstart.py checks the
returns only (``-m slow``); the time is measured here.

    .venv/bin/python scripts/bench_quickstart.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    for k in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "adhoc.cli", "train-population",
                                   str(ROOT / "configs/lever-selfplay.yaml"), "--out", str(Path(tmp) / "pop"),
                                   "--quiet"], capture_output=True, text=True, cwd=tmp)
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                sys.exit(f"quick start failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
            manifest = yaml.safe_load((Path(tmp) / "pop" / "population.yaml").read_text())
            returns = [round(m["self_play_return"], 3) for m in manifest["members"]]
        print(f"run {k}: {wall:.1f} s (target <= {TARGET_S:.0f} s: {'PASS' if wall <= TARGET_S else 'FAIL'}); "
              f"self-play returns {returns}")


if __name__ == "__main__":
    main()
