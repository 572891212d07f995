"""PPO against REINFORCE on one config (docs/reference.md, "train.algorithm"): the same config, seeds, iterations
and episodes with ``train.algorithm=reinforce`` and ``train.algorithm=ppo`` (``--algorithms``: only some), each
run ending with a cross-play report; prints one markdown row per (seed, algorithm) and the per-algorithm means.

    PYTHONPATH=. python scripts/ppo_vs_reinforce.py configs/repeated-lever-selfplay.yaml --seeds 0 1 2 \\
        --out runs/ppo-vs-reinforce train.iterations=30 population.size=4

Columns: the members' mean self-play return (the final evaluation, ``train.eval_episodes`` each), the cross-play
report's self-play and cross-play means with their 95% intervals, and the mean seconds per training iteration
(TensorBoard's ``time/iteration_s``: rollout and update, not the evaluations). The two algorithms of a seed run
one after the other in this process's machine, so their times compare as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ALGORITHMS = ("reinforce", "ppo")

def iteration_seconds(tb: Path) -> float:
    """Mean of ``time/iteration_s`` over the run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb))
    events.Reload()
    values = [e.value for e in events.Scalars("time/iteration_s")]
    return sum(values) / len(values)


def run(config: str, algorithm: str, seed: int, out: Path, overrides: list[str], episodes: int) -> dict:
    folder = out / f"{algorithm}-seed{seed}"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    subprocess.run([sys.executable, "-m", "adhoc.cli", "train-population", config, *overrides,
                    f"train.algorithm={algorithm}", f"population.seed={seed}", "--out", str(folder), "--overwrite",
                    "--quiet", "--crossplay-episodes", str(episodes)], env=env, check=True, stdout=subprocess.DEVNULL)
    manifest = yaml.safe_load((folder / "population.yaml").read_text())
    xp = json.loads((folder / "crossplay" / "crossplay.json").read_text())
    return {"algorithm": algorithm, "seed": seed, "sp_train": manifest["training"]["self_play_return_mean"],
            "sp": xp["sp_mean"], "sp_ci": xp["ci95"]["sp_mean"], "xp": xp["xp_mean"], "xp_ci": xp["ci95"]["xp_mean"],
            "iteration_s": iteration_seconds(folder / "tb")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="key=value for both algorithms")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--crossplay-episodes", type=int, default=64)
    parser.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    args = parser.parse_intermixed_args()
    rows = [run(args.config, algorithm, seed, args.out, args.overrides, args.crossplay_episodes)
            for seed in args.seeds for algorithm in args.algorithms]
    print("| algorithm | seed | self-play (eval) | self-play (cross-play report) [95% CI] | cross-play [95% CI] | s / iteration |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['algorithm']} | {r['seed']} | {r['sp_train']:.3f} | {r['sp']:.3f} [{r['sp_ci'][0]:.3f}, "
              f"{r['sp_ci'][1]:.3f}] | {r['xp']:.3f} [{r['xp_ci'][0]:.3f}, {r['xp_ci'][1]:.3f}] | {r['iteration_s']:.2f} |")
    mean = {a: {k: sum(r[k] for r in rows if r["algorithm"] == a) / len(args.seeds) for k in ("sp", "xp", "iteration_s")}
            for a in args.algorithms}
    for a, m in mean.items():
        print(f"| {a} | mean | | {m['sp']:.3f} | {m['xp']:.3f} | {m['iteration_s']:.2f} |")
    if len(mean) == 2:
        print(f"\ntime per iteration, ppo / reinforce: {mean['ppo']['iteration_s'] / mean['reinforce']['iteration_s']:.2f}")
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
