"""Reproduce the robust-learner results (issue 5): learners trained against partner populations, evaluated
with held-out populations. Prints the markdown tables and writes them to OUT/learner_results.md.

Experiments:

- lever (Other-Play lever game, 10 levers, lever 0 pays 0.9): a learner (solver ``uniform``) trained against
  a ``selfplay`` population of 8 (seed 1) and one trained against an ``otherplay`` population of 8 (seed 1),
  each evaluated with its training partners and with held-out ``selfplay`` and ``otherplay`` populations
  (seed 2: other seeds, so other conventions).
- cmg-h (LIPO's CMG-H): learners trained against the ``selfplay``, ``trajedi`` and ``lipo`` populations
  (seed 0), with each solver (uniform, prioritized, maximin, minimax_regret), evaluated with the held-out
  union of the OTHER methods' members, taken from populations trained with another seed (seed 1) so that no
  held-out member shares its initialisation with a training partner.
  Second table (PSRO agents): for the solvers in ``--fresh-solvers`` (maximin, minimax_regret) also a
  learner with ``learner.oracle=fresh`` (a fresh best response to σ every epoch); for both oracles the
  final learner and the mixture agent (``learner_mixture``: the maximin mixture over the snapshots stored in
  the manifest, evaluated with ``adhoc evaluate --mixture``), with the training partners and held out.
  Every fresh oracle learns about one new convention, and snapshot 0 is the untrained learner, so the
  mixture can reach the best worst case 1/k only with at least k + 1 epochs: ``--cmg-set train.epochs=10``
  for the 7-8 conventions of the trajedi and lipo populations (6 epochs, the config's, suffice for selfplay).

- warehouse (one move, one episode): robots in seat 0 with held-out teachers: the robots of ``selfplay`` and
  ``otherplay`` populations (8 members, seeds 0-2) and a learner (``learner.seat=0``) trained against the
  selfplay population's teachers, each with the teachers of the next seed's selfplay population and with the
  scripted teachers (``warehouse_experiment``).

Populations are read from ``--populations DIR`` as ``DIR/<game>-<method>-s<seed>`` when they exist there and
trained from ``configs/<game>-<method>.yaml`` (``population.seed=<seed>``) into that folder when not, so a
second run reuses them. Learners and evaluations go to ``OUT``.

    python scripts/reproduce_learner.py                       # both experiments (~25 min on 2 CPU cores)
    python scripts/reproduce_learner.py --only lever          # ~1 min
    python scripts/reproduce_learner.py --only warehouse      # ~15 min
    python scripts/reproduce_learner.py --populations runs/reproduce/populations --out runs/reproduce/learner
    python scripts/reproduce_learner.py --only cmg-h --populations runs/reproduce --out runs/reproduce-learner-e10 \
        --solvers maximin minimax_regret --cmg-set train.epochs=10     # PSRO agents, ~9 min
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLVERS = ("uniform", "prioritized", "maximin", "minimax_regret")
CMG_METHODS = ("selfplay", "trajedi", "lipo")


def population(populations: Path, game: str, method: str, seed: int, overrides: list[str] = ()) -> Path:
    """DIR/<game>-<method>-s<seed>: reused when present, else trained from configs/<game>-<method>.yaml."""
    from adhoc.config import load_config
    from adhoc.population import Population
    from adhoc.recipes.train_population import train_population

    out = populations / f"{game}-{method}-s{seed}"
    if (out / "population.yaml").is_file():
        return Population.load(out).path
    t0 = time.perf_counter()
    config = load_config(ROOT / "configs" / f"{game}-{method}.yaml", [f"population.seed={seed}", *overrides])
    train_population(config, out=out, progress=False, resume=True)  # resume: an interrupted run continues
    print(f"  trained {out} in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def learner(out: Path, config_name: str, partners: list[Path], solver: str, overrides: list[str]) -> Path:
    """OUT/<name>: reused when present, else trained with ``configs/<config_name>``."""
    from adhoc.config import load_learner_config
    from adhoc.population import Population
    from adhoc.recipes.train_learner import train_learner

    if (out / "population.yaml").is_file():
        return Population.load(out).path
    t0 = time.perf_counter()
    config = load_learner_config(ROOT / "configs" / config_name,
                                 [*(f"partners={p}" for p in partners), f"solver={solver}", *overrides])
    train_learner(config, out=out, progress=False, resume=True)  # resume: an interrupted run continues
    print(f"  trained {out} in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def evaluation(agent: Path, partners: list[Path | str], episodes: int, name: str, mixture: bool = False,
               member: str | None = None, seat: int | None = None, result: bool = False):
    """The agent's evaluation with the partners (report written to AGENT/evaluation/<name>); ``mixture``:
    the manifest's mixture over the learner's snapshots instead of the final learner. The metrics, or with
    ``result`` the whole EvaluationResult (its ``returns`` [P, 3, E])."""
    from adhoc.recipes.evaluate import evaluate, write_outputs

    out = evaluate(agent, [str(p) for p in partners], episodes=episodes, mixture=mixture, member=member, seat=seat)
    write_outputs(out, agent / "evaluation" / name, overwrite=True)  # this script's own report of an earlier run
    return out if result else out.metrics


def one_shot_bounds(partners: list[Path]) -> tuple[float, float]:
    """For a one-shot matrix game, the best any single policy can do with these partners (both seatings
    averaged): the best mean return over partners (a best response to the uniform mixture) and the best
    worst-case return (maximin over the policy's mixtures, by linear program). Exact, from the partners'
    action distributions and the payoff matrix."""
    import numpy as np
    import torch

    from adhoc.games import build_game
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy
    from adhoc.partners import load_partners
    from scipy.optimize import linprog

    group = load_partners([str(p) for p in partners])
    game = build_game(group.game)
    base = load_base(group.base_model["id"], device="cpu", dtype="float32")
    from adhoc.lm.adapters import AdapterBank

    a = group.adapter
    bank = AdapterBank(base.model, len(group), a["rank"], a["alpha"], a["target_modules"], base_model_id=base.model_id)
    group.load_into(bank)
    policy = Policy(base, bank)
    R = game.payoff_matrix()  # [A0, A1]
    state = game.reset(1, np.random.default_rng(0))
    with torch.no_grad():
        probs = [torch.softmax(policy.scores(torch.arange(len(group)), game.observe(state, s) * len(group),
                                             policy.actions(game.action_names(s))), -1).double().numpy()
                 for s in (0, 1)]  # [P, A_s]
    # returns[a, i] of the learner's action a with partner i, learner in seat 0 / in seat 1; the learner sees
    # its seat, so it may choose a different distribution x_s in each seat
    seat0, seat1 = R @ probs[1].T, R.T @ probs[0].T  # [A0, P], [A1, P]
    best_mean = (seat0.mean(1).max() + seat1.mean(1).max()) / 2
    # best worst case: max v s.t. (x0ᵀ seat0 + x1ᵀ seat1)_i / 2 >= v for every partner i, x0, x1 in simplices
    A0, A1, P = seat0.shape[0], seat1.shape[0], seat0.shape[1]
    c = np.zeros(A0 + A1 + 1)
    c[-1] = -1.0
    a_ub = np.hstack([-seat0.T / 2, -seat1.T / 2, np.ones((P, 1))])
    a_eq = np.zeros((2, A0 + A1 + 1))
    a_eq[0, :A0], a_eq[1, A0:A0 + A1] = 1.0, 1.0
    lp = linprog(c, A_ub=a_ub, b_ub=np.zeros(P), A_eq=a_eq, b_eq=[1.0, 1.0],
                 bounds=[(0, None)] * (A0 + A1) + [(None, None)], method="highs")
    return float(best_mean), float(lp.x[-1])


def fmt(metrics: dict, key: str) -> str:
    lo, hi = metrics["ci95"][key]
    return f"{metrics[key]:.3f} [{lo:.2f}, {hi:.2f}]"


def lever_experiment(populations: Path, out: Path, episodes: int, overrides: list[str]) -> str:
    pops = {(m, s): population(populations, "lever", m, s) for m in ("selfplay", "otherplay") for s in (1, 2)}
    lines = ["| training partners (8, seed 1) | with training partners | best possible | held-out selfplay (seed 2) | "
             "held-out otherplay (seed 2) | learner plays |", "|---|---:|---:|---:|---:|---|"]
    for method in ("selfplay", "otherplay"):
        agent = learner(out / f"lever-learner-{method}", "lever-learner.yaml", [pops[method, 1]], "uniform", overrides)
        own = evaluation(agent, [pops[method, 1]], episodes, "training")
        sp = evaluation(agent, [pops["selfplay", 2]], episodes, "held-out-selfplay")
        op = evaluation(agent, [pops["otherplay", 2]], episodes, "held-out-otherplay")
        bound = one_shot_bounds([pops[method, 1]])[0]
        lines.append(f"| `{method}` | {fmt(own, 'mean_return')} | {bound:.3f} | {fmt(sp, 'mean_return')} | "
                     f"{fmt(op, 'mean_return')} | {greedy_action(agent)} |")
    return "\n".join(lines)


def greedy_action(agent: Path) -> str:
    """'lever k (p=0.98)': the learner's most probable seat-0 action."""
    from adhoc.crossplay import greedy_conventions
    from adhoc.games import build_game
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy
    from adhoc.population import Population

    pop = Population.load(agent)
    base = load_base(pop.base_model["id"], device="cpu", dtype="float32")
    conv = greedy_conventions(build_game(pop.game), Policy(base, pop.build_bank(base)), pop.names)[pop.names[0]]
    kind = "lever" if pop.game["name"] == "lever" else "block"
    return f"{kind} {conv['convention']} (p={conv['probability']:.2f})"


def cmg_experiment(populations: Path, out: Path, episodes: int, solvers: tuple[str, ...],
                   methods: tuple[str, ...], overrides: list[str], fresh_solvers: tuple[str, ...] = (),
                   fresh_overrides: list[str] = ()) -> str:
    from adhoc.population import Population

    train = {m: population(populations, "cmg-h", m, 0) for m in methods}
    held = {m: population(populations, "cmg-h", m, 1) for m in methods}
    lines = ["| training population (seed 0) | solver | with training partners: mean | worst | "
             "held-out (other methods, seed 1): mean [95% CI] | worst [95% CI] | learner plays |",
             "|---|---|---:|---:|---:|---:|---|"]
    bounds, psro = [], []
    for method in methods:
        others = [held[m] for m in methods if m != method]
        n_held = sum(len(Population.load(p).members) for p in others)
        own_bound, held_bound = one_shot_bounds([train[method]]), one_shot_bounds(others)
        bounds.append(f"| `{method}` | {own_bound[0]:.3f} | {own_bound[1]:.3f} | "
                      f"{' + '.join(m for m in methods if m != method)} ({n_held}) | {held_bound[0]:.3f} | "
                      f"{held_bound[1]:.3f} |")
        for solver in solvers:
            agent = learner(out / f"cmg-h-learner-{method}-{solver}", "cmg-h-learner.yaml", [train[method]], solver,
                            overrides)
            own = evaluation(agent, [train[method]], episodes, "training")
            ho = evaluation(agent, others, episodes, "held-out")
            lines.append(f"| `{method}` | `{solver}` | {own['mean_return']:.3f} | {own['worst_return']:.3f} | "
                         f"{fmt(ho, 'mean_return')} | {fmt(ho, 'worst_return')} | {greedy_action(agent)} |")
            if solver not in fresh_solvers:
                continue
            fresh = learner(out / f"cmg-h-learner-{method}-{solver}-fresh", "cmg-h-learner.yaml", [train[method]],
                            solver, [*overrides, *fresh_overrides, "learner.oracle=fresh"])
            for oracle, path in (("continue", agent), ("fresh", fresh)):
                if oracle == "fresh":
                    own = evaluation(path, [train[method]], episodes, "training")
                    ho = evaluation(path, others, episodes, "held-out")
                    psro.append(psro_row(method, solver, oracle, "final learner", own, ho, "1"))
                own = evaluation(path, [train[method]], episodes, "training-mixture", mixture=True)
                ho = evaluation(path, others, episodes, "held-out-mixture", mixture=True)
                n_rows = len(Population.load(path).manifest["learner"]["matrix"])
                psro.append(psro_row(method, solver, oracle, "mixture", own, ho,
                                     f"{len(own['mixture'])} of {n_rows}"))
    lines += ["", "The best any single policy can do (exact, from the partners' action distributions: best mean = "
              "best response to the uniform mixture, best worst = maximin over mixtures, per seat):", "",
              "| training population | best mean | best worst | held-out partners (members) | best mean | best worst |",
              "|---|---:|---:|---|---:|---:|", *bounds]
    if psro:
        used = [s for s in solvers if s in fresh_solvers]
        lines += ["", "PSRO agents (solvers " + ", ".join(f"`{s}`" for s in used) + "): oracle `continue` = "
                  "the learner above, `fresh` = re-initialised every epoch (`learner.oracle=fresh`"
                  + (", " + " ".join(f"`{o}`" for o in fresh_overrides) if fresh_overrides else "") + "); agent "
                  "`mixture` = the learner-side maximin mixture over all snapshots (rows of M; on the regret "
                  "matrix for minimax_regret), evaluated per snapshot and weighted (`adhoc evaluate --mixture`):",
                  "", "| training population | solver | oracle | agent | snapshots used | with training partners: "
                  "mean | worst [95% CI] | held-out: mean [95% CI] | worst [95% CI] |",
                  "|---|---|---|---|---:|---:|---:|---:|---:|", *psro]
    return "\n".join(lines)


def psro_row(method: str, solver: str, oracle: str, agent: str, own: dict, ho: dict, used: str) -> str:
    return (f"| `{method}` | `{solver}` | {oracle} | {agent} | {used} | {own['mean_return']:.3f} | "
            f"{fmt(own, 'worst_return')} | {fmt(ho, 'mean_return')} | {fmt(ho, 'worst_return')} |")


def warehouse_experiment(populations: Path, out: Path, episodes: int, overrides: list[str],
                         seeds: tuple[int, ...] = (0, 1, 2), size: int = 8) -> str:
    """Robots (seat 0) with held-out teachers on the one-move warehouse: for every seed s, the robots of a
    ``selfplay`` population, of an ``otherplay`` population and a learner (``learner.seat=0``) trained against
    the selfplay population's teachers, all evaluated in the robot seat with the teachers of the selfplay
    population of the next seed (held out: other seeds, other conventions) and with the scripted teachers.
    Returns are pooled over seeds and members (every episode of every robot), 95% bootstrap CI."""
    import numpy as np

    from adhoc.crossplay import bootstrap
    from adhoc.population import Population

    sized = [f"population.size={size}"]
    sp = {s: population(populations, "warehouse", "selfplay", s, sized) for s in seeds}
    op = {s: population(populations, "warehouse", "otherplay", s, sized) for s in seeds}
    rows: dict[str, dict[str, list[np.ndarray]]] = {}
    for i, s in enumerate(seeds):
        held = sp[seeds[(i + 1) % len(seeds)]]
        agent = learner(out / f"warehouse-learner-selfplay-s{s}", "warehouse-learner.yaml", [sp[s]], "uniform",
                        [f"learner.seed={s}", "learner.seat=0", *overrides])
        robots = [("self-play robots (their own teacher only)", sp[s], m) for m in Population.load(sp[s]).names]
        robots += [("Other-Play robots", op[s], m) for m in Population.load(op[s]).names]
        robots += [("learner against the 8 self-play teachers", agent, None)]
        for kind, pop, member in robots:
            tag = member or "learner"
            for column, partners in (("training", [sp[s]]), ("held-out", [held]), ("scripted", ["scripted:warehouse"])):
                res = evaluation(pop, partners, episodes, f"robot-{tag}-{column}", member=member, seat=0, result=True)
                returns = res.returns[:, 0]  # [partners, episodes]: the robot in seat 0
                if column == "training" and pop == sp[s]:  # a self-play robot trained with its own teacher only
                    returns = returns[Population.load(pop).names.index(member)]
                rows.setdefault(kind, {}).setdefault(column, []).append(returns.reshape(-1))
    lines = ["| robot (seat 0), seeds " + ", ".join(map(str, seeds)) + " | with its training teachers | with held-out "
             "self-play teachers (next seed) | with the 8 scripted teachers |", "|---|---:|---:|---:|"]
    for kind, columns in rows.items():
        cells = []
        for column in ("training", "held-out", "scripted"):
            values = np.concatenate(columns[column])[None, :]
            lo, hi = bootstrap(values[:, None, :], lambda m: m.reshape(-1), n_boot=500, seed=0)
            cells.append(f"{values.mean():.3f} [{lo[0]:.3f}, {hi[0]:.3f}]")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/reproduce-learner", help="learners, evaluations and the results table")
    parser.add_argument("--populations", help="where partner populations are found / trained (default OUT/populations)")
    parser.add_argument("--only", choices=("lever", "cmg-h", "warehouse"), help="run one experiment")
    parser.add_argument("--solvers", nargs="+", default=list(SOLVERS), help="CMG-H solvers")
    parser.add_argument("--methods", nargs="+", default=list(CMG_METHODS), help="CMG-H training populations")
    parser.add_argument("--episodes", type=int, default=256, help="evaluation episodes per partner and seating")
    parser.add_argument("--lever-set", nargs="*", default=[], metavar="key=value", help="learner overrides (lever)")
    parser.add_argument("--cmg-set", nargs="*", default=[], metavar="key=value", help="learner overrides (cmg-h)")
    parser.add_argument("--warehouse-set", nargs="*", default=[], metavar="key=value",
                        help="learner overrides (warehouse)")
    parser.add_argument("--fresh-solvers", nargs="*", default=["maximin", "minimax_regret"],
                        help="CMG-H solvers that also get a learner.oracle=fresh run and the mixture agents")
    parser.add_argument("--fresh-set", nargs="*", default=[], metavar="key=value",
                        help="extra learner overrides for the oracle=fresh runs (after --cmg-set)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    populations = Path(args.populations) if args.populations else out / "populations"
    out.mkdir(parents=True, exist_ok=True)
    populations.mkdir(parents=True, exist_ok=True)
    sections, t0 = [], time.perf_counter()
    if args.only in (None, "lever"):
        print("lever: learners against selfplay / otherplay populations", flush=True)
        table = lever_experiment(populations, out, args.episodes, args.lever_set)
        sections.append("### Robust learner on the lever game\n\nLearner (`configs/lever-learner.yaml`, solver "
                        "`uniform`) trained against 8 partners of one population; mean return over partners "
                        "(both seatings), 95% bootstrap CI.\n\n" + table)
    if args.only in (None, "cmg-h"):
        print("cmg-h: learners against selfplay / trajedi / lipo populations", flush=True)
        table = cmg_experiment(populations, out, args.episodes, tuple(args.solvers), tuple(args.methods), args.cmg_set,
                               tuple(args.fresh_solvers), args.fresh_set)
        sections.append("### Robust learner on CMG-H\n\nLearner (`configs/cmg-h-learner.yaml`) trained against one "
                        "population (8 members, seed 0) with each meta-solver; evaluated with the union of the other "
                        "methods' populations trained with seed 1; worst = the partner the learner does worst with."
                        "\n\n" + table)
    if args.only in (None, "warehouse"):
        print("warehouse: robots with held-out teachers", flush=True)
        table = warehouse_experiment(populations, out, args.episodes, args.warehouse_set)
        sections.append("### Robots with held-out teachers on the warehouse\n\nOne move, one episode (3×3; "
                        "`configs/warehouse-selfplay.yaml`, `-otherplay.yaml` with 8 members, `-learner.yaml` with "
                        "`learner.seat=0` and the self-play population as partners); the robot (seat 0) with each "
                        "teacher, returns pooled over seeds, members and episodes, 95% bootstrap CI. Random play "
                        "0.56; a robot that follows the `direct` teacher 0.77.\n\n" + table)
    text = "\n\n".join(sections) + "\n"
    print(f"(this run: {time.perf_counter() - t0:.0f} s; populations and learners found under --populations / --out "
          f"were reused)")
    (out / "learner_results.md").write_text(text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    from adhoc.errors import run_script

    sys.exit(run_script("reproduce_learner", main))
