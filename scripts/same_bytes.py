"""Does a change keep training bit for bit? Train the same short runs with two checkouts of adhoc and compare
every member's adapter bytes and each population's cross-play matrix.

    git worktree add --detach ../adhoc-before REV
    python scripts/same_bytes.py ../adhoc-before . --out runs/same-bytes

Each checkout trains in its own subprocess (``PYTHONPATH`` = that checkout) into OUT/<side>/<run>; the runs are
short versions of shipped configs covering one-shot, repeated and OpenSpiel games, the diversity methods and
the learner. Prints one line per run (identical or not, and which files differ) and exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

SHORT = ["train.iterations=6", "train.eval_every=3", "train.eval_episodes=16", "--crossplay-episodes", "8"]
RUNS = {  # name -> the train-population or train-learner command after ``adhoc``
    "lever-selfplay": ["train-population", "configs/lever-selfplay.yaml", *SHORT],
    "lever-otherplay": ["train-population", "configs/lever-otherplay.yaml", *SHORT],
    "cmg-h-lipo": ["train-population", "configs/cmg-h-lipo.yaml", *SHORT],
    "lever-trajedi": ["train-population", "configs/lever-trajedi.yaml", *SHORT],
    "lever-mep": ["train-population", "configs/lever-mep.yaml", *SHORT],
    "lever-fcp": ["train-population", "configs/lever-fcp.yaml", *SHORT],
    "repeated-lever-selfplay": ["train-population", "configs/repeated-lever-selfplay.yaml", *SHORT,
                                "train.episodes_per_pair=32"],
    "tiny-hanabi-selfplay": ["train-population", "configs/tiny-hanabi-selfplay.yaml", *SHORT,
                             "train.episodes_per_pair=32"],
}
LEARNER = ["train-learner", "configs/lever-learner.yaml", "partners=[{side}/lever-selfplay]", "train.epochs=2",
           "train.iterations_per_epoch=3", "train.eval_episodes=16", "train.episodes=32"]


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every adapter file and cross-play matrix under ``folder``."""
    files = sorted(folder.rglob("adapter_model.safetensors")) + sorted(folder.rglob("matrix.npy"))
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def train(checkout: Path, out: Path, name: str, command: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(checkout.resolve()))
    subprocess.run([sys.executable, "-m", "adhoc.cli", *command, "--out", str(out / name), "--quiet"],
                   cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    differ = 0
    for side, checkout in (("before", args.before), ("after", args.after)):
        for name, command in RUNS.items():
            train(checkout, (args.out / side).resolve(), name, command)
        learner = [c.format(side=(args.out / side).resolve()) for c in LEARNER]
        train(checkout, (args.out / side).resolve(), "lever-learner", learner)
    for name in [*RUNS, "lever-learner"]:
        a, b = digest(args.out / "before" / name), digest(args.out / "after" / name)
        same = a == b and bool(a)
        differ += not same
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        print(f"{name:28s} {'identical' if same else 'DIFFERS: ' + ', '.join(changed)} ({len(a)} files)")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
