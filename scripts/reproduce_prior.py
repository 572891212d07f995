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


def train(label: str, base: str, seeds: list[int], out: Path, overrides: list[str], restarts: int = 1) -> dict[int, Path]:
    """The learners of one base (``out/<label>/s<seed>``, and ``s<seed>-r<k>`` with learner seed seed + 1000k for
    k < ``restarts``); the missing ones in one batched pass. Returns, per seed, the one with the best return with
    its training partners (no held-out partner is used to choose)."""
    import time

    import yaml

    from adhoc.config import load_learner_config
    from adhoc.population import MANIFEST
    from adhoc.recipes.train_learner import train_learner

    group = out / label
    runs = {(seed, k): group / (f"s{seed}" if k == 0 else f"s{seed}-r{k}") for seed in seeds for k in range(restarts)}
    missing = [key for key, run in runs.items() if not (run / MANIFEST).is_file()]
    if missing:
        partners = "scripted:repeated:" + ",".join(f"stubborn-{a}" for a in TRAIN_LEVERS)
        slots = ", ".join(f"{{name: {runs[key].name}, seed: {key[0] + 1000 * key[1]}, partners: '{partners}'}}"
                          for key in missing)
        names = "-".join(runs[key].name for key in missing)
        batch = out / f"{label}-batch-{names}"
        print(f"training {label} on {base}: {names} in one batched pass", flush=True)
        start = time.perf_counter()
        train_learner(load_learner_config(CONFIG, [f"learners=[{slots}]", f"model.base={base}", *overrides]),
                      batch, progress=False, resume=True)  # resume: an interrupted batch continues
        group.mkdir(parents=True, exist_ok=True)
        (group / f"train-time-{names}.json").write_text(json.dumps({"seconds": time.perf_counter() - start}))
        for key in missing:
            (batch / runs[key].name).rename(runs[key])
        batch.rmdir()

    def training_return(run: Path) -> float:
        return yaml.safe_load((run / MANIFEST).read_text())["training"]["return_mean"]

    return {seed: max((runs[seed, k] for k in range(restarts)), key=training_return) for seed in seeds}


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
    parser.add_argument("--restarts", type=int, default=1,
                        help="learners per seed (learner seeds s + 1000k); the one with the best return with its "
                             "training partners is evaluated")
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
    results, kept = {}, {}
    for label, base in bases.items():
        runs = train(label, base, args.seeds, out, args.set, args.restarts)
        if args.train_only:
            continue
        kept[label] = {seed: run.name for seed, run in runs.items()}
        results[label] = {probe: {seed: evaluate_probe(runs[seed], probe, seed, args.episodes) for seed in args.seeds}
                          for probe in args.probes}
        print(f"evaluated {label}", flush=True)
    if args.train_only:
        return
    text = (f"# Learners against stubborn levers 1-8 on each base (seeds {args.seeds}, {args.restarts} restart(s) "
            f"each, {args.episodes} episodes per partner and seating; mean ± 95% t-interval over seeds)\n\n"
            + table(results, args.seeds) + "\n\nkept: " + "; ".join(f"{label}: {', '.join(names.values())}"
                                                                for label, names in kept.items()) + "\n")
    stem = "results" if args.restarts == 1 else f"results-r{args.restarts}"
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps({"bases": bases, "seeds": args.seeds, "kept": kept,
                                                  "results": results}))
    print(text)


if __name__ == "__main__":
    from adhoc.errors import run_script

    sys.exit(run_script("reproduce_prior", main))
