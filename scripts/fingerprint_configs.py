"""Train every shipped config through the CLI and print a SHA-256 of each adapter and cross-play matrix.

A refactor that must not change behaviour is checked by running this before and after it (on two checkouts) and
comparing the two JSON files: every member's ``adapter_model.safetensors`` and every ``crossplay/matrix.npy``
must be byte-identical. It uses only the command line (``adhoc train-population``, ``adhoc crossplay``), so the
same file runs on any checkout. Budgets can be cut with overrides that apply to every config (the same ones
on both sides), e.g. ``train.iterations=4``.

    .venv/bin/python scripts/fingerprint_configs.py --work runs/fp-after --json after.json
    .venv/bin/python scripts/fingerprint_configs.py --only lever-selfplay --json a.json train.iterations=4
    .venv/bin/python scripts/fingerprint_configs.py --only lever-learner --learner train.epochs=2 --json b.json
    .venv/bin/python scripts/fingerprint_configs.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


# the learner configs that name no partners get the shipped population of their game
LEARNER_PARTNERS = {"lever-learner": "populations/lever-selfplay", "cmg-h-learner": "populations/cmg-h-lipo"}


def shipped_configs() -> list[str]:
    """Every shipped config, by name: populations first, then learners."""
    names = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    return [n for n in names if not n.endswith("-learner")] + [n for n in names if n.endswith("-learner")]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(name: str, work: Path, overrides: list[str], learner_overrides: list[str], episodes: int) -> dict:
    """Train config ``name`` into ``work/name`` (a folder this run creates); the hashes of its adapters and
    of its matrix: a population's cross-play matrix, a learner's meta-game matrix M (from its manifest)."""
    pop, xp = work / name, work / f"{name}-crossplay"
    adhoc = [sys.executable, "-m", "adhoc.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's adhoc, whatever is installed
    start = time.perf_counter()
    config = str(ROOT / "configs" / f"{name}.yaml")
    if name.endswith("-learner"):
        partners = [f"partners=[{ROOT / LEARNER_PARTNERS[name]}]"] if name in LEARNER_PARTNERS else []
        subprocess.run(adhoc + ["train-learner", config, *partners, *learner_overrides, "--out", str(pop), "--quiet"],
                       check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
        manifest = yaml.safe_load((pop / "population.yaml").read_text())
        matrix = hashlib.sha256(json.dumps(manifest["learner"]["matrix"]).encode()).hexdigest()
    else:
        subprocess.run(adhoc + ["train-population", config, *overrides, "--out", str(pop), "--quiet",
                                "--crossplay-episodes", "0"], check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
        subprocess.run(adhoc + ["crossplay", str(pop), "--episodes", str(episodes), "--out", str(xp)],
                       check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
        matrix = sha(xp / "matrix.npy")
    adapters = {p.parent.name: sha(p) for p in sorted((pop / "members").glob("*/adapter_model.safetensors"))}
    return {"adapters": adapters, "matrix": matrix, "seconds": round(time.perf_counter() - start, 1)}


def compare(before: dict, after: dict) -> int:
    """Print one line per config; the number of configs that differ."""
    differ = 0
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        same = a is not None and b is not None and a["adapters"] == b["adapters"] and a["matrix"] == b["matrix"]
        differ += not same
        n = len(a["adapters"]) if a else 0
        print(f"{name:28s} {'identical' if same else 'DIFFERENT'} ({n} adapters + cross-play matrix)")
    return differ


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="key=value applied to every population config")
    ap.add_argument("--learner", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of every learner config")
    ap.add_argument("--only", nargs="+", metavar="CONFIG")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "fingerprints", help="a new folder")
    ap.add_argument("--json", type=Path, help="write the hashes here")
    ap.add_argument("--episodes", type=int, default=64, help="cross-play episodes per ordered pair")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = ap.parse_args()
    if args.compare:
        before, after = (json.loads(p.read_text()) for p in args.compare)
        sys.exit(1 if compare(before, after) else 0)
    if args.work.exists():
        sys.exit(f"error: --work {args.work} exists; name a new folder")
    args.work.mkdir(parents=True)
    result = {}
    for name in args.only or shipped_configs():
        result[name] = fingerprint(name, args.work, args.overrides, args.learner, args.episodes)
        print(f"{name:28s} {result[name]['seconds']:8.1f} s  matrix {result[name]['matrix'][:16]}", flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
