"""PSRO populations on an OpenSpiel game: exploitability per epoch, and how far each best response fell short.

    python scripts/psro_report.py runs/kuhn-psro-s0 runs/kuhn-psro-s1 runs/kuhn-psro-s2

For each population (trained by ``method: psro``), per epoch k: the exploitability of σ_k (the mixture member k
was trained against, from the manifest), and the oracle's gap: OpenSpiel's best-response value against σ_k
minus member k's own value against σ_k, averaged over the two seats (0 for an exact best response; both
values computed exactly over the game tree by OpenSpiel). Then the mean and 95% t-interval over the
populations of the exploitability after every epoch, as a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def ci(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    half = T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5
    return f"{statistics.fmean(values):.3f} ± {half:.3f}"


def oracle_gaps(path: Path) -> tuple[list[float], list[float]]:
    """(exploitability of σ_k per epoch, best-response gap of member k per epoch k ≥ 1)."""
    from open_spiel.python.algorithms import best_response, expected_game_score

    from adhoc.exploitability import openspiel_game, tabular_policy
    from adhoc.games import build_game
    from adhoc.lm.adapters import AdapterBank
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy
    from adhoc.population import Population

    pop = Population.load(path)
    history = pop.manifest["psro"]["history"]
    game = build_game(pop.game)
    base = load_base(pop.base_model["id"], device="cpu", dtype="float32")
    adapter = pop.manifest["adapter"]
    bank = AdapterBank(base.model, len(pop.members), adapter["rank"], adapter["alpha"], adapter["target_modules"])
    pop.load_into(bank, list(range(len(pop.members))))
    policy = Policy(base, bank)
    spiel = openspiel_game(game)._game
    root = spiel.new_initial_state()
    gaps = []
    for k in range(1, len(pop.members)):
        sigma = history[k - 1]["meta_strategy"]
        mix = tabular_policy(game, policy, {j: w for j, w in enumerate(sigma) if w > 0})
        me = tabular_policy(game, policy, {k: 1.0})
        mine = [expected_game_score.policy_value(root, [me, mix])[0],
                expected_game_score.policy_value(root, [mix, me])[1]]
        best = [best_response.BestResponsePolicy(spiel, p, mix).value(root) for p in (0, 1)]
        gaps.append(float(np.mean(np.subtract(best, mine))))
    return [h["exploitability"] for h in history], gaps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("populations", nargs="+", type=Path)
    args = parser.parse_args()
    runs = {}
    for path in args.populations:
        expl, gaps = oracle_gaps(path)
        runs[path.name] = expl
        print(f"{path}: exploitability per epoch {', '.join(f'{v:.3f}' for v in expl)}")
        print(f"{'':{len(str(path))}}  best-response gap of members 1-{len(gaps)}: {', '.join(f'{g:.3f}' for g in gaps)}")
    epochs = min(len(v) for v in runs.values())
    print("\n| epoch (members) | " + " | ".join(runs) + " | mean ± 95% CI |")
    print("|---|" + "---:|" * (len(runs) + 1))
    for k in range(epochs):
        values = [v[k] for v in runs.values()]
        print(f"| {k + 1} ({k + 1}) | " + " | ".join(f"{v:.3f}" for v in values) + f" | {ci(values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
