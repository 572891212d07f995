"""``adhoc evaluate AGENT --partners POP``: an agent's returns with a (held-out) partner population.

The agent is one member of a population folder (by default its first member: the final learner of a
``train-learner`` population). It plays ``episodes`` episodes with every partner in both seatings, and every
partner plays the same number with itself, all in ONE AdapterBank. Definitions (P partners, E episodes):

- ``return[i]`` = (G(agent, i) + G(i, agent)) / 2, the mean return with partner i over both seatings;
  ``return_seat0[i]``/``return_seat1[i]`` each seating alone;
- ``self_play[i]`` = G(i, i): partner i's own return, the best it is known to achieve;
- ``regret[i]`` = self_play[i] − return[i];
- ``mean_return`` = mean_i return[i], ``worst_return`` = min_i return[i] (and ``worst_partner``),
  ``mean_regret``, ``max_regret``;
- ``ci95``: percentile bootstrap over episodes (each pair's E episodes resampled, the same indices for every
  pair), for the four summaries and per partner.

Outputs (``--out``, default ``AGENT/evaluation/<partner populations>``), written into a staging folder and
renamed into place: ``evaluation.json``, ``returns.png``, ``report.md``, ``report.html``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adhoc.crossplay import bootstrap
from adhoc.errors import UserError


# ---------------------------------------------------------------------------- pure metrics
def evaluation_metrics(returns: np.ndarray, names: list[str], n_boot: int = 500, seed: int = 0) -> dict[str, Any]:
    """returns [P, 3, E]: axis 1 = (agent in seat 0, agent in seat 1, partner self-play)."""
    P = returns.shape[0]

    def statistic(means: np.ndarray) -> np.ndarray:  # means [P, 3]
        ret = means[:, :2].mean(1)
        regret = means[:, 2] - ret
        return np.concatenate([[ret.mean(), ret.min(), regret.mean(), regret.max()], ret, regret])

    point = statistic(returns.mean(-1))
    lo, hi = bootstrap(returns, statistic, n_boot=n_boot, seed=seed)
    ci = lambda k: [round(float(lo[k]), 4), round(float(hi[k]), 4)]  # noqa: E731
    means = returns.mean(-1)
    per_partner = [{"partner": name, "return": round(float(point[4 + i]), 4),
                    "return_seat0": round(float(means[i, 0]), 4), "return_seat1": round(float(means[i, 1]), 4),
                    "self_play": round(float(means[i, 2]), 4), "regret": round(float(point[4 + P + i]), 4),
                    "ci95": {"return": ci(4 + i), "regret": ci(4 + P + i)}} for i, name in enumerate(names)]
    keys = ("mean_return", "worst_return", "mean_regret", "max_regret")
    return {**{k: round(float(point[j]), 4) for j, k in enumerate(keys)},
            "worst_partner": names[int(np.argmin(point[4:4 + P]))],
            "ci95": {k: ci(j) for j, k in enumerate(keys)}, "per_partner": per_partner}


@dataclass
class EvaluationResult:
    agent: str  # "population folder:member"
    game: str
    partners: list[dict[str, Any]]  # where the partners came from (adhoc.partners.Partners.describe)
    episodes: int
    metrics: dict[str, Any]
    returns: np.ndarray = field(repr=False, default=None)  # [P, 3, E]

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "game": self.game, "partner_populations": self.partners,
                "episodes": self.episodes, **self.metrics}


# ---------------------------------------------------------------------------- the recipe
def evaluate(agent: str | Path, partner_specs: list[str], member: str | None = None, episodes: int = 256,
             seed: int = 0, n_boot: int = 500, device: str = "auto", dtype: str = "auto") -> EvaluationResult:
    from adhoc.games import build_game
    from adhoc.lm.adapters import AdapterBank
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy
    from adhoc.partners import check_compatible, load_partners, returns_with_partners
    from adhoc.population import Population

    if episodes < 2:
        raise UserError(f"--episodes must be >= 2 (got {episodes})")
    agent_pop = Population.load(agent)
    name = member or agent_pop.names[0]
    if name not in agent_pop.names:
        raise UserError(f"{agent_pop.path} has no member {name!r} (members: {', '.join(agent_pop.names)})")
    partners = load_partners(partner_specs)
    check_compatible([agent_pop, *partners.populations], "evaluating an agent with partners")
    base = load_base(agent_pop.base_model["id"], device=device, dtype=dtype)
    agent_pop.check_base(base.model_id, base.fingerprint)
    adapter = agent_pop.manifest["adapter"]
    P = len(partners)
    bank = AdapterBank(base.model, P + 1, adapter["rank"], adapter["alpha"], adapter["target_modules"],
                       base_model_id=base.model_id)
    partners.load_into(bank, 0)
    bank.import_member(P, agent_pop.member_dir(name))
    game = build_game(agent_pop.game)
    returns = returns_with_partners(game, Policy(base, bank), P, P, episodes, np.random.default_rng(seed),
                                    self_play=True)
    return EvaluationResult(agent=f"{agent_pop.path}:{name}", game=agent_pop.game["name"],
                            partners=partners.describe(), episodes=episodes,
                            metrics=evaluation_metrics(returns, partners.names, n_boot=n_boot, seed=seed),
                            returns=returns)


def write_outputs(result: EvaluationResult, out: str | Path) -> Path:
    from adhoc.recipes.crossplay import publish, staging_for
    from adhoc.report import evaluation_html, evaluation_markdown, evaluation_png

    staging = staging_for(out)
    (staging / "evaluation.json").write_text(json.dumps(result.to_json(), indent=1))
    png = evaluation_png(result)
    (staging / "returns.png").write_bytes(png)
    (staging / "report.md").write_text(evaluation_markdown(result))
    (staging / "report.html").write_text(evaluation_html(result, png))
    return publish(staging, out)


def run_evaluate(agent: str, partner_specs: list[str], member: str | None = None, episodes: int = 256,
                 out: str | None = None, seed: int = 0) -> tuple[EvaluationResult, Path]:
    result = evaluate(agent, partner_specs, member=member, episodes=episodes, seed=seed)
    if out is None:
        out = Path(agent) / "evaluation" / "+".join(p["label"] for p in result.partners)
    return result, write_outputs(result, out)
