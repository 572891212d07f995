"""Ad hoc adaptation on the repeated lever game (10 levers, lever 0 pays 0.9, the others 1.0; K = 4 rounds with
the same partner) and on repeated CMG-H: does a learner trained against more partner conventions coordinate with
partners it never met? Two parts; every learner is ``configs/repeated-<stage>-learner.yaml`` (solver uniform)
with the partners and seeds below; folders already present under ``--out`` are reused (populations, learners,
evaluations).

**Part 2, partner populations** (the default; ``populations`` may be named first):

- populations: the shipped ``configs/repeated-<stage>-<method>.yaml`` (``--stage`` lever or cmg-h; ``--methods``
  among selfplay, lipo, otherplay, trajedi) for every seed in ``--seeds``, and self-play for every
  ``--heldout-seeds`` seed (never trained with);
- learners, per seed s and with and without ``learner.augment`` (each training episode relabelled by a random
  symmetry of the game, the 9! permutations of levers 1-9): against one self-play member of seed s (the first
  that converged), all 8 self-play members of seed s, the 8 LIPO members, the 8 Other-Play members, the 8
  TrajeDi members;
- evaluated with the held-out self-play members and the other methods' populations of seed s; a held-out
  partner is *covered* when its convention (the lever, or CMG-H block, of its most likely round-1 action) is
  among the training partners' (with augmentation: in the symmetry orbit of one of them; on CMG-H every block
  is its own orbit);
- best possible: the best history-dependent policy with the held-out self-play members
  (``adhoc.adaptation``, the exact value of the Bayes-optimal policy not told which partner it meets; where its
  search is cut, as on CMG-H, an interval);
- writes results.md (the table, mean ± 95% t-interval over seeds), results.json and
  returns_vs_diversity.png (held-out return against the number of distinct training conventions);
- ``--restarts R``: R learners per seed and condition (one batched pass), keeping the one with the best return
  with the stubborn players of levers 1-9 (no held-out partner is used to choose); writes results-r<R>.*.

**Part 1, stubborn partners** (``stubborn``): learners trained against the stubborn scripted players of levers
1..n (n in ``--sizes``), with and without augmentation, evaluated with all ten; the best possible is "open,
then copy" with the best opening; writes to runs/adaptive-stubborn.

    .venv/bin/python scripts/reproduce_adaptive.py                       # part 2, seeds 0 1 2, held-out seed 10
    .venv/bin/python scripts/reproduce_adaptive.py --augment no --seeds 0 1 2 3 4
    .venv/bin/python scripts/reproduce_adaptive.py --augment yes --restarts 2
    .venv/bin/python scripts/reproduce_adaptive.py --stage cmg-h --methods selfplay otherplay \
        --conditions 1-self-play-aug 8-self-play-aug 8-self-play-plain 8-Other-Play-aug
    .venv/bin/python scripts/reproduce_adaptive.py stubborn              # part 1, sizes 1 2 8
    .venv/bin/python scripts/reproduce_adaptive.py stubborn --sizes 1 2 4 8 train.entropy_coef=0.1
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

CONFIG = Path(__file__).resolve().parent.parent / "configs/repeated-lever-learner.yaml"
LEVERS, K = 10, 4
U = np.array([0.9] + [1.0] * (LEVERS - 1))  # u_A: the payoff of coordinating on lever A
T_975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


# part 1's training budget: a constant small entropy bonus, 3 epochs, lr 0.01 (the config's annealed bonus with a
# floor and lr 0.003 are part 2's)
STUBBORN_TRAIN = ["train.epochs=3", "train.lr=0.01", "train.entropy_coef=0.01", "train.entropy_coef_end=0.01"]


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
            *STUBBORN_TRAIN, *overrides])
        train_learner(config, run, progress=False, resume=True)  # resume: an interrupted run continues
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


def stubborn_part(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="part 1: stubborn scripted partners (see the module docstring)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the learner config")
    parser.add_argument("--episodes", type=int, default=256, help="evaluation episodes per partner and seating")
    parser.add_argument("--out", default="runs/adaptive-stubborn")
    args = parser.parse_args(argv)
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


# ---------------------------------------------------------------------------- part 2: partner populations
METHODS = ("selfplay", "lipo", "otherplay", "trajedi")
STAGES = {"lever": f"Repeated lever ({LEVERS} levers, K = {K})",
          "cmg-h": f"Repeated CMG-H (528 actions in blocks of 32, 31, ..., 1; K = {K})"}
NAMES = {"selfplay": "self-play", "trajedi": "TrajeDi", "lipo": "LIPO", "otherplay": "Other-Play"}
# (label, population method, one member only). TrajeDi's trajectory-divergence term re-scores every member's
# transcripts under all members (``population_logp``, with prefix reuse across rounds: benchmarks/bench_population_logp.py)
CONDITIONS = [("1 self-play", "selfplay", True), ("8 self-play", "selfplay", False), ("8 LIPO", "lipo", False),
              ("8 Other-Play", "otherplay", False), ("8 TrajeDi", "trajedi", False)]
CONFIGS = CONFIG.parent


def population(out: Path, stage: str, method: str, seed: int, base: str | None = None) -> Path:
    """The shipped config of ``method`` on repeated ``stage`` with ``population.seed=seed`` (and ``model.base``
    = ``base`` if given; trained unless present)."""
    from adhoc.config import load_config
    from adhoc.population import MANIFEST
    from adhoc.recipes.train_population import train_population

    path = out / "populations" / f"{method}-{seed}"
    if not (path / MANIFEST).is_file():
        print(f"training {path}", flush=True)
        overrides = [f"population.seed={seed}", *([f"model.base={base}"] if base else [])]
        train_population(load_config(CONFIGS / f"repeated-{stage}-{method}.yaml", overrides), path, progress=False,
                         resume=True)  # resume: an interrupted run continues
    return path


def best_member(path: Path) -> str:
    """The first member with the population's best self-play return (a member that converged)."""
    from adhoc.population import Population

    members = Population.load(path).members
    best = max(m["self_play_return"] for m in members)
    return next(m["name"] for m in members if m["self_play_return"] == best)


class Partners:
    """Partner specs loaded once onto one bank: each member's round-1 action (its most likely one in seat 0) and
    convention (that action's lever or CMG-H block), and the best history-dependent return with a set of them."""

    def __init__(self, specs: list[str]) -> None:
        from adhoc.adaptation import partner_log_probs
        from adhoc.games import build_game
        from adhoc.lm.adapters import AdapterBank
        from adhoc.lm.base import load_base
        from adhoc.lm.policy import Policy
        from adhoc.partners import load_partners

        self.partners = load_partners(specs)
        base = load_base(self.partners.base_model["id"], device="cpu")
        for pop in self.partners.populations:
            pop.check_base(base.model_id, base.fingerprint)
        a = self.partners.adapter
        bank = AdapterBank(base.model, self.partners.n_lora, a["rank"], a["alpha"], a["target_modules"],
                           base_model_id=base.model_id)
        self.partners.load_into(bank)
        self.policy, self.game = Policy(base, bank), build_game(self.partners.game)
        self.ids = {name: i for i, name in enumerate(self.partners.names)}
        first = partner_log_probs(self.game, self.policy, np.arange(len(self.ids)), np.zeros((len(self.ids), 0, 2),
                                                                                             dtype=np.int64), 0)
        self.action = {name: int(first[i].argmax()) for name, i in self.ids.items()}
        self.convention = {name: self.game.stage.convention_of(a) for name, a in self.action.items()}
        self.orbit = convention_orbits(self.game)
        self._bounds: dict[tuple, dict] = {}

    def covered(self, name: str, training: set[int], augment: bool) -> bool:
        """Partner ``name``'s convention occurs in training (with augmentation: one in its symmetry orbit does)."""
        conv = self.convention[name]
        return conv in training or (augment and bool(self.orbit[conv] & training))

    def bound(self, names: list[str]) -> dict:
        """Best history-dependent return with ``names`` (uniform), both seats averaged: lower, upper, per round
        (where the search is cut, as on CMG-H, the lower end may be the best scripted "open, then copy"); NaN, with
        the reason in ``not_computed``, where the partners' histories are too many to search (stochastic members
        on CMG-H)."""
        from adhoc.errors import UserError
        from adhoc.recipes.evaluate import history_bound

        key = tuple(sorted(names))
        if key not in self._bounds:
            ids = np.array([self.ids[n] for n in key])
            try:
                self._bounds[key] = history_bound(self.game, self.policy, torch.as_tensor(ids), [(0, 1)] * len(ids),
                                                  None)
            except UserError as exc:
                print(f"best possible not computed: {exc}", flush=True)
                self._bounds[key] = {"lower": float("nan"), "upper": float("nan"), "per_round": [],
                                     "not_computed": str(exc)}
        return self._bounds[key]


def convention_orbits(game) -> dict[int, set[int]]:
    """Each convention's orbit under the game's symmetry group (seat 0's action permutations): the conventions
    a relabelled training episode can show in its place. Lever: levers 1-9 are one orbit, lever 0 its own;
    CMG-H: every block its own (its symmetries permute actions inside a block)."""
    n = len(game.action_names(0))
    parent = list(range(n))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    group = game.symmetries()
    for g in group.generators() if group is not None else []:
        for a, b in enumerate(g[0]):
            parent[root(a)] = root(int(b))
    classes: dict[int, set[int]] = {}
    for a in range(n):
        classes.setdefault(root(a), set()).add(game.stage.convention_of(a))
    return {c: orbit for orbit in classes.values() for c in orbit}


def populations_part(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="part 2: learners trained against partner populations")
    parser.add_argument("--stage", choices=list(STAGES), default="lever", help="the repeated game's stage game")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="the population methods trained with and evaluated with (self-play always)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--heldout-seeds", type=int, nargs="+", default=[10], help="self-play seeds never trained with")
    parser.add_argument("--augment", choices=["no", "yes", "both"], default="both")
    groups = [f"{c[0].replace(' ', '-')}-{a}" for c in CONDITIONS for a in ("plain", "aug")]
    parser.add_argument("--conditions", nargs="+", choices=groups, metavar="CONDITION",
                        help=f"only these learner groups of --methods ({', '.join(groups)}; default: every one "
                             "--methods and --augment give; given, --augment is ignored)")
    parser.add_argument("--episodes", type=int, default=128, help="evaluation episodes per partner and seating")
    parser.add_argument("--restarts", type=int, default=1,
                        help="learners per seed and condition (learner seeds s + 1000·k), the one with the best return "
                             "with the stubborn players of levers 1-9 kept (writes results-r<R>.*)")
    parser.add_argument("--out", help="default runs/adaptive (lever), runs/adaptive-<stage> (others)")
    parser.add_argument("--base", help="the base model of every population (model.base; the learners take their "
                                       "partners'), e.g. builtin:copy (default: the configs', builtin:tiny)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the learner config")
    args = parser.parse_args(argv)
    if args.restarts < 1:
        parser.error(f"--restarts must be at least 1 (got {args.restarts})")
    if args.restarts > 1 and args.stage != "lever":
        parser.error("--restarts: the validation partners (stubborn levers 1-9) exist for --stage lever only")
    methods = ["selfplay", *(m for m in METHODS if m in args.methods and m != "selfplay")]
    from adhoc.population import MANIFEST
    from adhoc.recipes.evaluate import evaluate

    out = Path(args.out or ("runs/adaptive" if args.stage == "lever" else f"runs/adaptive-{args.stage}"))
    config = CONFIGS / f"repeated-{args.stage}-learner.yaml"
    pops = {(m, s): population(out, args.stage, m, s, args.base) for s in [*args.seeds, *args.heldout_seeds] for m in methods
            if m == "selfplay" or s in args.seeds}
    augments = [False, True] if args.conditions else {"no": [False], "yes": [True], "both": [False, True]}[args.augment]
    heldout_sp = [str(pops[("selfplay", h)]) for h in args.heldout_seeds]
    known = Partners([str(p) for p in pops.values()])  # every population's conventions, on one bank
    results = []
    for label, method, one in [c for c in CONDITIONS if c[1] in methods]:
        for augment in augments:
            group = f"{label.replace(' ', '-')}-{'aug' if augment else 'plain'}"
            if args.conditions and group not in args.conditions:
                continue
            specs = {}
            for seed in args.seeds:
                pop = pops[(method, seed)]
                specs[seed] = f"{pop}:{best_member(pop)}" if one else str(pop)
            runs = learners(out / "learners" / group, specs,
                            [f"learner.augment={str(augment).lower()}", *args.overrides], config, args.restarts)
            for seed in args.seeds:
                run = runs[seed, 0]
                if args.restarts > 1:  # the seed's learner with the best validation return (no held-out partner)
                    run = max((runs[seed, k] for k in range(args.restarts)),
                              key=lambda r: validation(r, seed, out / "evaluations"))
                pop, spec = pops[(method, seed)], specs[seed]
                held = [row for p in heldout_sp + [str(pops[(m, seed)]) for m in methods if m != method]
                        for row in cached_json(out / "evaluations" / f"{run.parent.name}-{run.name}-{Path(p).name}-"
                                                                     f"{args.episodes}.json",
                                               lambda: evaluate(str(run), [p], episodes=args.episodes,
                                                                seed=seed).metrics["per_partner"])]
                train = {f"{pop.name}/{n}" for n in ([best_member(pop)] if one else
                                                     [m["name"] for m in __import__("yaml").safe_load(
                                                         (pop / MANIFEST).read_text())["members"]])}
                training_conventions = {known.convention[n] for n in train}
                rows = []
                for p in held:
                    rows.append({"partner": p["partner"], "return": p["return"], "rounds": p["episode_payoffs"],
                                 "heldout_sp": p["partner"].split("/")[0] in {Path(h).name for h in heldout_sp},
                                 "covered": known.covered(p["partner"], training_conventions, augment)})
                sp_names = [r["partner"] for r in rows if r["heldout_sp"]]
                results.append({"condition": label, "augment": augment, "seed": seed, "partners": spec,
                                "learner": run.name, "conventions": len(training_conventions), "partner_rows": rows,
                                "training_return": training_return(run),
                                "bound_sp": known.bound(sp_names)})
                r = results[-1]
                print(f"{label} augment={augment} seed={seed}: conventions {r['conventions']}, held-out self-play "
                      f"{np.mean([x['return'] for x in rows if x['heldout_sp']]):.3f} (best {r['bound_sp']['lower']:.3f})",
                      flush=True)
    stem = "results" if args.restarts == 1 else f"results-r{args.restarts}"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1))
    table = populations_table(results, args, config)
    print("\n" + table)
    (out / f"{stem}.md").write_text(table + "\n")
    plot = "returns_vs_diversity.png" if args.restarts == 1 else f"returns_vs_diversity-r{args.restarts}.png"
    diversity_plot(results, out / plot, f"{STAGES[args.stage].split(' (')[0]}, K = {K}")
    print(f"\nwrote {out}/{stem}.md, {stem}.json, {plot}")


def learners(group: Path, specs: dict[int, str], overrides: list[str], config: Path = CONFIG,
             restarts: int = 1) -> dict[tuple, Path]:
    """The learners of one condition, ``group/s<seed>`` for each seed, and with ``restarts`` R > 1 also
    ``group/s<seed>-r<k>`` (learner seed seed + 1000·k, k < R): those not present are trained in ONE batched pass
    (``learners:`` slots, partners = that seed's spec), then moved into ``group``. Returns {(seed, k): folder}."""
    from adhoc.config import load_learner_config
    from adhoc.population import MANIFEST
    from adhoc.recipes.train_learner import train_learner

    runs = {(seed, k): group / (f"s{seed}" if k == 0 else f"s{seed}-r{k}") for seed in specs for k in range(restarts)}
    missing = [key for key, run in runs.items() if not (run / MANIFEST).is_file()]
    if missing:
        batch = group.parent / f"{group.name}-batch-{'-'.join(runs[key].name for key in missing)}"
        slots = ", ".join(f"{{name: {runs[seed, k].name}, seed: {seed + 1000 * k}, partners: '{specs[seed]}'}}"
                          for seed, k in missing)
        print(f"training {group} ({', '.join(runs[key].name for key in missing)}, one batched pass)", flush=True)
        train_learner(load_learner_config(config, [f"learners=[{slots}]", *overrides]), batch, progress=False,
                      resume=True)  # resume: an interrupted batch continues
        group.mkdir(parents=True, exist_ok=True)
        for key in missing:
            (batch / runs[key].name).rename(runs[key])
        batch.rmdir()
    return runs


def cached_json(path: Path, compute):
    """``compute()``'s JSON value, stored at ``path`` the first time (reruns only rebuild the tables)."""
    if not path.is_file():
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    return json.loads(path.read_text())


def validation(run: Path, seed: int, evaluations: Path, episodes: int = 64) -> float:
    """Return with the stubborn players of levers 1-9 (cached in ``evaluations``): the symmetry orbit of every
    training convention but lever 0, so it shows a lever the learner never learnt to follow without using any
    held-out partner."""
    from adhoc.recipes.evaluate import evaluate

    partners = "scripted:repeated:" + ",".join(f"stubborn-{a}" for a in range(1, LEVERS))
    return float(cached_json(evaluations / f"{run.parent.name}-{run.name}-validation-{episodes}.json",
                             lambda: evaluate(str(run), [partners], episodes=episodes, seed=seed).metrics["mean_return"]))


def training_return(run: Path) -> float:
    """The learner's mean return with its training partners (its manifest's last evaluation)."""
    import yaml

    from adhoc.population import MANIFEST

    return float(yaml.safe_load((run / MANIFEST).read_text())["training"]["return_mean"])


def populations_table(results: list[dict], args, config: Path) -> str:
    lines = [f"{STAGES[args.stage]}. Learners of configs/{config.name} "
             f"{' '.join(args.overrides)} (solver uniform) trained against each partner set, seeds {args.seeds} "
             f"(population seed = learner seed). Held-out partners: the self-play members of seeds "
             f"{args.heldout_seeds} (never trained with) and the other methods' populations of the same seed; "
             f"{args.episodes} episodes per partner and seating, both seatings. Mean ± 95% t-interval over seeds. "
             "Covered: the partner's convention (its round-1 lever or block) is in the training set (with "
             "augmentation: in the symmetry orbit of one). Best possible: the best history-dependent policy with "
             "that held-out set (exact up to the pruning interval, both seats)." + (
                 f" Each seed's learner is the best of {args.restarts} restarts (learner seeds s + 1000·k) by its "
                 "return with the stubborn players of levers 1-9." if args.restarts > 1 else ""), "",
             "| training partners | augment | conventions | with training partners | held-out self-play | "
             "worst | round 1 → K | best possible | all held-out | covered | uncovered |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, _, _ in CONDITIONS:
        for augment in (False, True):
            rs = [r for r in results if r["condition"] == label and r["augment"] == augment]
            if not rs:
                continue
            sp = [[x for x in r["partner_rows"] if x["heldout_sp"]] for r in rs]
            pick = lambda rows, f: [x["return"] for x in rows if f(x)]  # noqa: E731
            cov = [np.mean(pick(r["partner_rows"], lambda x: x["covered"])) for r in rs
                   if pick(r["partner_rows"], lambda x: x["covered"])]
            unc = [np.mean(pick(r["partner_rows"], lambda x: not x["covered"])) for r in rs
                   if pick(r["partner_rows"], lambda x: not x["covered"])]
            r1 = np.mean([np.mean([x["rounds"][0] for x in s]) for s in sp])
            rk = np.mean([np.mean([x["rounds"][-1] for x in s]) for s in sp])
            b = rs[0]["bound_sp"]
            best = "–" if "not_computed" in b else f"{b['lower']:.3f}" if b["upper"] - b["lower"] < 5e-4 else \
                f"{b['lower']:.3f}–{b['upper']:.3f}"
            lines.append(
                f"| {label} | {'yes' if augment else 'no'} | {np.mean([r['conventions'] for r in rs]):.1f} | "
                f"{ci([r['training_return'] for r in rs])} | {ci([np.mean([x['return'] for x in s]) for s in sp])} | "
                f"{ci([min(x['return'] for x in s) for s in sp])} | {r1:.3f} → {rk:.3f} | {best} | "
                f"{ci([np.mean([x['return'] for x in r['partner_rows']]) for r in rs])} | "
                f"{ci(cov) if cov else '–'} ({sum(len(pick(r['partner_rows'], lambda x: x['covered'])) for r in rs)}) | "
                f"{ci(unc) if unc else '–'} ({sum(len(pick(r['partner_rows'], lambda x: not x['covered'])) for r in rs)}) |")
    return "\n".join(lines)


def diversity_plot(results: list[dict], path: Path, title: str) -> None:
    """Held-out self-play return against the number of distinct conventions among the training partners."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    colours = dict(zip([c[0] for c in CONDITIONS], ["#c44e52", "#4c72b0", "#55a868", "#8172b2", "#ccb974"]))
    for r in results:
        y = np.mean([x["return"] for x in r["partner_rows"] if x["heldout_sp"]])
        ax.scatter(r["conventions"] + (0.12 if r["augment"] else -0.12), y, color=colours[r["condition"]],
                   marker="s" if r["augment"] else "o", s=28, alpha=0.85)
    for label, colour in colours.items():
        if any(r["condition"] == label for r in results):
            ax.scatter([], [], color=colour, label=label)
    ax.scatter([], [], color="#777", marker="o", label="no augmentation")
    ax.scatter([], [], color="#777", marker="s", label="augmentation")
    bound = results[0]["bound_sp"]["lower"]
    if math.isfinite(bound):
        ax.axhline(bound, color="#333", ls="--", lw=1, label="best possible")
    ax.set_xlabel("distinct conventions among the training partners")
    ax.set_ylabel("return with held-out self-play partners")
    ax.set_ylim(-0.02, 1.0)
    ax.set_title(f"{title}: one point per learner", fontsize=10)
    ax.legend(fontsize=6.5, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    import sys

    argv = sys.argv[1:]
    if argv[:1] == ["stubborn"]:
        stubborn_part(argv[1:])
    else:
        populations_part(argv[1:] if argv[:1] == ["populations"] else argv)


if __name__ == "__main__":
    from adhoc.errors import run_script

    run_script("reproduce_adaptive", main)
