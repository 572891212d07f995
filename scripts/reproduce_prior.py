"""What a base's prior brings to ad hoc adaptation: the repeated lever game's stubborn grid on random and
pretrained bases (docs/adaptation.md, "A language model's prior").

Every learner is ``configs/repeated-lever-learner.yaml`` as shipped (solver uniform, no augmentation, 400
iterations x 512 episodes) trained against the stubborn players of levers 1-8, with ``model.base`` = each base;
the seeds of a base train in ONE batched pass (``learners:``). Each learner is then evaluated (both seats,
``--episodes`` per partner and seating) with:
- the stubborn players of all ten levers: 1-8 were met in training, 0 (pays 0.9) and 9 never;
- the same under held-out renderings of the history (``--transcript``): ``swapped`` (partner's action before
  one's own) and ``padded`` (0-3 filler words after each action, drawn per episode and round), which move the
  partner's action to other offsets from the decision;
- partners that copy (``copy-A``: open with A, then play the learner's last action), on which following the
  partner goes in circles.

Bases are given as LABEL=BASE (a built-in name or a folder written by ``adhoc pretrain-base``); the controls for
the shipped ``builtin:copy`` are ``builtin:tiny`` (the same init procedure at tiny's shape) and the step-0 folder
of the same command (the same architecture and the same initial weights, no pretraining)::

    adhoc pretrain-base --arch tiny,hidden=128,ffn=256 --steps 0 --out runs/prior/random-h128
    .venv/bin/python scripts/reproduce_prior.py tiny=builtin:tiny random-h128=runs/prior/random-h128 \\
        copy=builtin:copy --seeds 0 1 2

Folders already present under ``--out`` are reused (learners, evaluations); writes ``results.md`` and
``results.json`` there.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

CONFIG = Path(__file__).resolve().parent.parent / "configs/repeated-lever-learner.yaml"
TRAIN_LEVERS = range(1, 9)
T_975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}
PROBES = {"stubborn": ("scripted:repeated", None), "swapped": ("scripted:repeated", "swapped"),
          "padded": ("scripted:repeated", "padded"),
          "copy": ("scripted:repeated:" + ",".join(f"copy-{a}" for a in range(10)), None)}


def ci(values) -> str:
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return f"{v.mean():.3f}"
    return f"{v.mean():.3f} ± {T_975.get(len(v) - 1, 1.96) * v.std(ddof=1) / math.sqrt(len(v)):.3f}"


def train(label: str, base: str, seeds: list[int], out: Path, overrides: list[str]) -> dict[int, Path]:
    """The learners of one base (``out/<label>/s<seed>``); the missing ones in one batched pass."""
    import time

    from adhoc.config import load_learner_config
    from adhoc.population import MANIFEST
    from adhoc.recipes.train_learner import train_learner

    group = out / label
    runs = {seed: group / f"s{seed}" for seed in seeds}
    missing = [seed for seed, run in runs.items() if not (run / MANIFEST).is_file()]
    if missing:
        partners = "scripted:repeated:" + ",".join(f"stubborn-{a}" for a in TRAIN_LEVERS)
        slots = ", ".join(f"{{name: s{seed}, seed: {seed}, partners: '{partners}'}}" for seed in missing)
        batch = out / f"{label}-batch-{'-'.join(map(str, missing))}"
        print(f"training {label} on {base}: seeds {missing} in one batched pass", flush=True)
        start = time.perf_counter()
        train_learner(load_learner_config(CONFIG, [f"learners=[{slots}]", f"model.base={base}", *overrides]),
                      batch, progress=False)
        group.mkdir(parents=True, exist_ok=True)
        (group / f"train-time-{'-'.join(map(str, missing))}.json").write_text(
            json.dumps({"seconds": time.perf_counter() - start, "seeds": missing}))
        for seed in missing:
            (batch / f"s{seed}").rename(runs[seed])
        batch.rmdir()
    return runs


def evaluate_probe(run: Path, probe: str, seed: int, episodes: int) -> dict:
    from adhoc.recipes.evaluate import evaluate

    path = run.parent / f"eval-{run.name}-{probe}-{episodes}.json"
    if not path.is_file():
        spec, transcript = PROBES[probe]
        result = evaluate(str(run), [spec], episodes=episodes, seed=seed, transcript=transcript)
        per = result.metrics["per_partner"]
        path.write_text(json.dumps({"partners": [p["partner"] for p in per], "returns": [p["return"] for p in per],
                                    "rounds": [p["episode_payoffs"] for p in per]}))
    return json.loads(path.read_text())


def table(results: dict, seeds: list[int]) -> str:
    lines = ["| base | probe | levers 1-8 (met) | lever 0 (unseen, 0.9) | lever 9 (unseen) | rounds 2-4, unseen | "
             "per seed: met / 0 / 9 |", "|---|---|---:|---:|---:|---:|---|"]
    for label, by_probe in results.items():
        for probe, per_seed in by_probe.items():
            met, l0, l9, late = [], [], [], []
            for seed in seeds:
                r = np.array(per_seed[seed]["returns"])
                rounds = np.array(per_seed[seed]["rounds"])
                met.append(r[1:9].mean())
                l0.append(r[0])
                l9.append(r[9])
                late.append(rounds[[0, 9], 1:].mean())
            each = ", ".join(f"{m:.2f}/{a:.2f}/{b:.2f}" for m, a, b in zip(met, l0, l9))
            lines.append(f"| {label} | {probe} | {ci(met)} | {ci(l0)} | {ci(l9)} | {ci(late)} | {each} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bases", nargs="+", metavar="LABEL=BASE")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=256, help="evaluation episodes per partner and seating")
    parser.add_argument("--probes", nargs="+", choices=list(PROBES), default=list(PROBES))
    parser.add_argument("--train-only", action="store_true", help="train the learners, evaluate nothing")
    parser.add_argument("--out", default="runs/prior")
    parser.add_argument("--set", nargs="*", default=[], metavar="key=value", help="overrides of the learner config")
    args = parser.parse_args()
    bases = {}
    for item in args.bases:
        label, sep, base = item.partition("=")
        if not sep or not label or not base:
            parser.error(f"bases are LABEL=BASE (got {item!r})")
        bases[label] = base
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for label, base in bases.items():
        runs = train(label, base, args.seeds, out, args.set)
        if args.train_only:
            continue
        results[label] = {probe: {seed: evaluate_probe(runs[seed], probe, seed, args.episodes) for seed in args.seeds}
                          for probe in args.probes}
        print(f"evaluated {label}", flush=True)
    if args.train_only:
        return
    text = (f"# Learners against stubborn levers 1-8 on each base (seeds {args.seeds}, {args.episodes} episodes per "
            f"partner and seating; mean ± 95% t-interval over seeds)\n\n" + table(results, args.seeds) + "\n")
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps({"bases": bases, "seeds": args.seeds, "results": results}))
    print(text)


if __name__ == "__main__":
    sys.exit(main())
