"""Reproduce the diversity-method results: train populations from their configs over several seeds and write
a markdown table (game × method: self-play, cross-play, gap, discovered conventions, wall time).

For each experiment (a config in configs/) and each seed: ``train_population`` with ``population.seed=SEED``
(timed), then a cross-play of the new population (64 episodes per ordered pair). Reported as mean ± standard
deviation over seeds:

- SP / XP / gap: cross-play metrics (adhoc.crossplay);
- conventions: distinct conventions DISCOVERED (docs/reference.md: a convention counts when some member's greedy
  self-play action lies in it: the lever, or the CMG block), among members whose self-play return is at
  least 0.5 (a random initial FCP checkpoint's greedy action discovers nothing), out of the population size;
- lever games also report how many members put ≥ 0.9 of their probability on the unique lever;
- time: training wall time (``wall_time_s`` of the manifest: train_population with the model load; no cross-play).

Populations are kept in ``--out`` (default runs/reproduce/<experiment>-s<seed>), so the learner experiments
can reuse them as training and held-out partners (``--learner`` runs scripts/reproduce_learner.py after).

    .venv/bin/python scripts/reproduce.py                           # everything, seeds 0 1 2
    .venv/bin/python scripts/reproduce.py --only lever-selfplay lever-otherplay --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ["lever-selfplay", "lever-otherplay", "lever-trajedi", "lever-lipo",
               "cmg-h-selfplay", "cmg-h-trajedi", "cmg-h-lipo",
               "cmg-s-selfplay", "cmg-s-otherplay", "cmg-s-trajedi", "cmg-s-lipo", "cmg-s-mep", "cmg-s-fcp"]


def run_one(experiment: str, seed: int, out_root: Path, episodes: int, reuse: bool = False) -> dict:
    """Train (or, with ``reuse``, load) the population of ``experiment`` at ``seed`` and measure it."""
    from adhoc.config import load_config
    from adhoc.population import MANIFEST, Population
    from adhoc.recipes.train_population import train_population

    config = load_config(ROOT / "configs" / f"{experiment}.yaml", [f"population.seed={seed}"])
    out = out_root / f"{experiment}-s{seed}"
    if reuse and (out / MANIFEST).is_file():
        pop = Population.load(out)
    else:
        pop = train_population(config, out=out, overwrite=True, progress=False)
    return measure(experiment, config, pop, episodes, seed)


def measure(experiment: str, config, pop, episodes: int, seed: int) -> dict:
    from adhoc.crossplay import crossplay

    result = crossplay([str(pop.path)], episodes=episodes, seed=seed)
    # a convention is discovered by a member that plays it greedily AND coordinates with itself on it
    plays = {name: v for (name, v), sp in zip(result.member_conventions.items(), result.metrics["self_play"])
             if sp >= 0.5}
    row = {"experiment": experiment, "game": config.game.name, "method": config.method.name, "seed": seed,
           "members": len(pop.members), "sp": result.metrics["sp_mean"], "xp": result.metrics["xp_mean"],
           "gap": result.metrics["gap"], "conventions": len({v["convention"] for v in plays.values()}),
           "train_s": pop.manifest["wall_time_s"], "population": str(pop.path)}
    if config.game.name == "lever":
        unique = int(config.game.unique_lever)
        row["on_unique_lever"] = sum(v["convention"] == unique and v["probability"] >= 0.9
                                     for v in result.member_conventions.values())
    return row


def _ms(values: list[float], digits: int = 3) -> str:
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def table(rows: list[dict]) -> str:
    lines = ["| game | method | seeds | self-play | cross-play | gap | conventions discovered | on unique lever | train time (s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for experiment in dict.fromkeys(r["experiment"] for r in rows):
        rs = [r for r in rows if r["experiment"] == experiment]
        n = rs[0]["members"]
        lever = f"{_ms([r['on_unique_lever'] for r in rs], 1)} / {n}" if "on_unique_lever" in rs[0] else "–"
        lines.append(f"| {rs[0]['game']} | {rs[0]['method']} | {len(rs)} | {_ms([r['sp'] for r in rs])} | "
                     f"{_ms([r['xp'] for r in rs])} | {_ms([r['gap'] for r in rs])} | "
                     f"{_ms([r['conventions'] for r in rs], 1)} / {n} "
                     f"(per seed: {', '.join(str(r['conventions']) for r in rs)}) | {lever} | "
                     f"{_ms([r['train_s'] for r in rs], 1)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=EXPERIMENTS, default=EXPERIMENTS, metavar="EXPERIMENT")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--episodes", type=int, default=64, help="cross-play episodes per ordered pair")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "reproduce")
    ap.add_argument("--reuse", action="store_true", help="measure populations already in --out instead of retraining")
    ap.add_argument("--learner", action="store_true", help="then run scripts/reproduce_learner.py on these populations")
    args = ap.parse_args()

    rows = []
    for experiment in args.only:
        for seed in args.seeds:
            row = run_one(experiment, seed, args.out, args.episodes, args.reuse)
            rows.append(row)
            print(f"{experiment} seed {seed}: SP {row['sp']:.3f} XP {row['xp']:.3f} conventions {row['conventions']}"
                  f" in {row['train_s']:.1f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "populations.json").write_text(json.dumps(rows, indent=1))
    md = table(rows)
    (args.out / "populations.md").write_text(md + "\n")
    print("\n" + md)
    if args.learner:
        import runpy
        import sys

        sys.argv = [str(ROOT / "scripts" / "reproduce_learner.py"), "--populations", str(args.out), "--out", str(args.out)]
        runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
