"""Ad hoc adaptation on the repeated lever game: does a learner trained against more partner conventions
coordinate with partners it never met, and does symmetry augmentation make it learn the general rule
("open with a lever, then do what the partner did") instead of a lookup per lever?

Setting: repeated lever (10 levers, lever 0 pays 0.9, the others 1.0), K = 4 rounds. Partners are stubborn
scripted players (``stubborn-A``: lever A every round). A learner (``configs/repeated-lever-learner.yaml``, solver uniform)
is trained against the stubborn players of levers 1..n, for n in ``--sizes``, without and with
``learner.augment`` (each training episode relabelled by a random symmetry of the game: the 9! permutations
of levers 1-9), for every seed; then evaluated against all ten stubborn players.

- covered: partners whose lever the training population covers (levers 1..n; with augmentation every lever
  of the symmetry orbit of 1..n, i.e. 1-9); uncovered: the others (always lever 0, which every symmetry fixes);
  held-out: partners not in training (levers n+1..9 and 0);
- bound: the best any policy can do with a stubborn partner, per partner, "open, then copy" with the best
  opening for the evaluated partner set: rounds 2..K always coordinate, round 1 only by luck, so
  ((K−1) + P(opening = partner's lever)) / K · u;
- reported per arm (mean over seeds, 95% t-interval over seeds): held-out mean and worst case, covered and
  uncovered means, the round-1 and round-K payoffs with held-out partners.

    .venv/bin/python scripts/reproduce_adaptive.py                          # sizes 1 2 8, seeds 0 1 2
    .venv/bin/python scripts/reproduce_adaptive.py --sizes 1 2 4 8 --seeds 0 1 2 3 4 train.entropy_coef=0.1

Writes ``--out``/results.md and ``--out``/returns_vs_diversity.png (default runs/adaptive); learners already
trained under ``--out`` are reused.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

CONFIG = Path(__file__).resolve().parent.parent / "configs/repeated-lever-learner.yaml"
LEVERS, K = 10, 4
U = np.array([0.9] + [1.0] * (LEVERS - 1))  # u_A: the payoff of coordinating on lever A
T_975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def train_and_evaluate(size: int, augment: bool, seed: int, out: Path, overrides: list[str], episodes: int) -> dict:
    """Train (or reuse) one learner and evaluate it with all ten stubborn partners: per-partner return and
    per-round payoffs."""
    from adhoc.config import load_learner_config
    from adhoc.population import MANIFEST
    from adhoc.recipes.evaluate import evaluate
    from adhoc.recipes.train_learner import train_learner

    run = out / f"n{size}-{'aug' if augment else 'plain'}-s{seed}"
    if not (run / MANIFEST).is_file():
        partners = ",".join(f"stubborn-{a}" for a in range(1, size + 1))
        config = load_learner_config(CONFIG, [
            f"partners=scripted:repeated:{partners}", f"learner.seed={seed}", f"learner.augment={str(augment).lower()}",
            *overrides])
        train_learner(config, run, progress=False)
    result = evaluate(str(run), ["scripted:repeated"], episodes=episodes, seed=seed)
    per = result.metrics["per_partner"]
    return {"returns": [p["return"] for p in per], "rounds": [p["episode_payoffs"] for p in per]}


def bound(levers: list[int]) -> float:
    """Mean over the partners ``levers`` of the best history-dependent return: open with the lever that is most
    often right (by u), then copy."""
    levers = np.array(levers)
    best_opening = max(U[a] * np.mean(levers == a) for a in range(LEVERS))
    return float((K - 1) / K * U[levers].mean() + best_opening / K)


def ci(values: list[float]) -> str:
    v = np.array(values, dtype=float)
    if len(v) < 2:
        return f"{v.mean():.3f}"
    half = T_975.get(len(v) - 1, 1.96) * v.std(ddof=1) / math.sqrt(len(v))
    return f"{v.mean():.3f} ± {half:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the learner config")
    parser.add_argument("--episodes", type=int, default=256, help="evaluation episodes per partner and seating")
    parser.add_argument("--out", default="runs/adaptive")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, curves = [], {}
    for augment in (False, True):
        for size in args.sizes:
            trained = set(range(1, size + 1))
            covered = set(range(1, LEVERS)) if augment else trained
            held_out = [a for a in range(LEVERS) if a not in trained]
            stats = {k: [] for k in ("held", "worst", "covered", "uncovered", "r1", "rK", "train")}
            for seed in args.seeds:
                r = train_and_evaluate(size, augment, seed, out, args.overrides, args.episodes)
                ret, rounds = np.array(r["returns"]), np.array(r["rounds"])
                stats["train"].append(ret[sorted(trained)].mean())
                stats["held"].append(ret[held_out].mean())
                stats["worst"].append(ret[held_out].min())
                cov = [a for a in held_out if a in covered]
                unc = [a for a in held_out if a not in covered]
                stats["covered"].append(ret[cov].mean() if cov else float("nan"))
                stats["uncovered"].append(ret[unc].mean() if unc else float("nan"))
                stats["r1"].append(rounds[held_out, 0].mean())
                stats["rK"].append(rounds[held_out, -1].mean())
                print(f"n={size} augment={augment} seed={seed}: held-out {stats['held'][-1]:.3f}", flush=True)
            curves[(augment, size)] = (np.mean(stats["held"]), np.mean(stats["uncovered"]))
            rows.append((size, augment, len(held_out), stats, bound(held_out)))
    lines = [f"Repeated lever ({LEVERS} levers, K = {K}), learners of configs/repeated-lever-learner.yaml "
             f"{' '.join(args.overrides)} trained against the stubborn players of levers 1..n, evaluated with all ten "
             f"({args.episodes} episodes per partner and seating); mean ± 95% t-interval over seeds {args.seeds}.", "",
             "| n | augment | training | held-out mean | held-out worst | covered held-out | uncovered held-out | "
             "round 1 → K (held-out) | best possible (held-out) |", "|---|---|---|---|---|---|---|---|---|"]
    for size, augment, n_held, s, best in rows:
        cov = ci(s["covered"]) if not np.isnan(s["covered"]).any() else "–"
        lines.append(f"| {size} | {'yes' if augment else 'no'} | {ci(s['train'])} | {ci(s['held'])} | "
                     f"{ci(s['worst'])} | {cov} | {ci(s['uncovered'])} | {np.mean(s['r1']):.3f} → "
                     f"{np.mean(s['rK']):.3f} | {best:.3f} |")
    table = "\n".join(lines)
    print("\n" + table)
    (out / "results.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps([{"n": n, "augment": a, "stats": {k: list(map(float, v))
                                                   for k, v in s.items()}, "bound": b} for n, a, _, s, b in rows]))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for augment, style in ((False, "o-"), (True, "s-")):
        xs = [n for n in args.sizes]
        ax.plot(xs, [curves[(augment, n)][0] for n in xs], style, label=f"held-out mean, augment={augment}")
        ax.plot(xs, [curves[(augment, n)][1] for n in xs], style, alpha=0.4, label=f"uncovered, augment={augment}")
    ax.set_xlabel("distinct conventions in training (n)")
    ax.set_ylabel("return with held-out partners")
    ax.set_title("Repeated lever, K = 4", fontsize=10)
    ax.set_ylim(-0.02, 1.0)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "returns_vs_diversity.png", dpi=120)
    print(f"\nwrote {out}/results.md, results.json, returns_vs_diversity.png")


if __name__ == "__main__":
    main()
