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

The runs are one sweep (``adhoc.recipes.sweep``, the code of ``adhoc sweep``): each population is
``--out/<experiment>-s<seed>`` (kept, so the learner experiments can reuse them as training and held-out partners;
``--learner`` runs scripts/reproduce_learner.py after), a re-run skips the populations already complete, and
``backend=ray`` (with ``ray.*`` settings, docs/ray.md) runs the trials on a Ray cluster.

    .venv/bin/python scripts/reproduce.py                           # everything, seeds 0 1 2
    .venv/bin/python scripts/reproduce.py --only lever-selfplay lever-otherplay --seeds 0 1 2 3 4
    .venv/bin/python scripts/reproduce.py backend=ray ray.workers=4 ray.gpus_per_worker=0.25
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # adhoc from this checkout, also without an install
EXPERIMENTS = ["lever-selfplay", "lever-otherplay", "lever-trajedi", "lever-lipo",
               "cmg-h-selfplay", "cmg-h-trajedi", "cmg-h-lipo",
               "cmg-s-selfplay", "cmg-s-otherplay", "cmg-s-trajedi", "cmg-s-lipo", "cmg-s-mep", "cmg-s-fcp"]


def run_one(experiment: str, seed: int, out_root: Path, episodes: int) -> dict:
    """Train (or find complete in ``out_root``) the population of ``experiment`` at ``seed``; its table row."""
    from adhoc.config import load_config
    from adhoc.errors import UserError
    from adhoc.recipes.sweep import run_trial

    config = load_config(ROOT / "configs" / f"{experiment}.yaml", [f"population.seed={seed}"])
    result = run_trial(f"{experiment}-s{seed}", config, str(out_root), episodes)
    if "error" in result:
        raise UserError(result["error"])
    return result["row"]


def main() -> None:
    from adhoc.progress import shown
    from adhoc.recipes.sweep import run_sweep

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=EXPERIMENTS, default=EXPERIMENTS, metavar="EXPERIMENT")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--episodes", type=int, default=64, help="cross-play episodes per ordered pair")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "reproduce")
    ap.add_argument("--learner", action="store_true", help="then run scripts/reproduce_learner.py on these populations")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="for every run, e.g. backend=ray ray.workers=4")
    args = ap.parse_args()

    rows, md, out = run_sweep([str(ROOT / "configs" / f"{e}.yaml") for e in args.only], args.seeds,
                              args.overrides, out=args.out, episodes=args.episodes, progress=shown())
    (out / "populations.json").write_text(json.dumps(rows, indent=1))
    (out / "populations.md").write_text(md + "\n")
    if args.learner:
        import runpy

        sys.argv = [str(ROOT / "scripts" / "reproduce_learner.py"), "--populations", str(out), "--out", str(out)]
        runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    from adhoc.errors import run_script

    run_script("reproduce", main)  # interrupted: one line; the same command continues (the sweep skips what is complete)
