"""Diversity methods, registered by name. Adding one = one module, one line here, a test and a config.

A method decides who plays with whom in an iteration (``pairs``) and turns the resulting trajectories into
one loss per member (``loss``); the training loop in ``adhoc.recipes.train_population`` is shared.

A method's parameters are the fields of its config dataclass, and each numeric field declares its range right
there, ``alpha: float = ranged(0.01, 0, MAX_COEF)`` (``adhoc.params``; ``chosen`` for a string with fixed
values): ``adhoc.config`` checks every config against those before any work, and tests/test_bad_config.py
fails for a numeric field without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from adhoc.methods.advantage_alignment import AdvantageAlignment, AdvantageAlignmentConfig
from adhoc.methods.fcp import FCP, FCPConfig
from adhoc.methods.lipo import LIPO, LIPOConfig
from adhoc.methods.mep import MEP, MEPConfig
from adhoc.methods.otherplay import OtherPlay, OtherPlayConfig
from adhoc.methods.psro import PSRO, PSROConfig
from adhoc.methods.selfplay import SelfPlay, SelfPlayConfig
from adhoc.methods.trajedi import TrajeDi, TrajeDiConfig


@dataclass(frozen=True)
class MethodSpec:
    name: str
    config_cls: type
    build: Callable[..., Any]
    description: str


METHODS: dict[str, MethodSpec] = {
    "selfplay": MethodSpec("selfplay", SelfPlayConfig, SelfPlay, "each member trains with itself (independent seeds)"),
    "fcp": MethodSpec("fcp", FCPConfig, FCP, "self-play seeds + their initial, half-way and final checkpoints (Strouse et al. 2021)"),
    "mep": MethodSpec("mep", MEPConfig, MEP, "self-play + population-entropy bonus -log of the mean policy (Zhao et al. 2023)"),
    "otherplay": MethodSpec("otherplay", OtherPlayConfig, OtherPlay, "self-play with the partner relabelled by a random symmetry (Hu et al. 2020)"),
    "trajedi": MethodSpec("trajedi", TrajeDiConfig, TrajeDi, "self-play + alpha * trajectory Jensen-Shannon divergence of the population (Lupu et al. 2021)"),
    "lipo": MethodSpec("lipo", LIPOConfig, LIPO, "self-play - lambda * cross-play with the most compatible partner (Charakorn et al. 2023)"),
    "psro": MethodSpec("psro", PSROConfig, PSRO, "zero-sum games: each new member a best response to the meta-game's Nash mixture of the others (Lanctot et al. 2017)"),
    "advantage_alignment": MethodSpec("advantage_alignment", AdvantageAlignmentConfig, AdvantageAlignment,
                                      "self-play + opponent shaping: own advantage + beta * past own advantages x the "
                                      "other seat's advantage (Duque et al. 2025)"),
}
