"""Games, registered by name. ``import adhoc.games`` stays light: numpy (omegaconf when building a game); torch is
imported when a game is first reset or stepped (``adhoc._torch``), so ``adhoc validate`` never loads it for a game.

Lever game: Hu et al. 2020 (Other-Play). CMG, CMG-S, CMG-H: Charakorn et al. 2023 (LIPO). ``matrix``: any
matrix game given in YAML (one common payoff table, or one per seat: zero-sum or general-sum). ``warehouse``, ``preference`` and ``corrective``: the seed paper's
alignment games (multi-step, with scripted teachers). ``repeated``: any one-shot game for K rounds with the same
partner (adaptation to a partner from the history). ``openspiel``: any two-player common-payoff game of
OpenSpiel (Hanabi), pyspiel imported only when one is built. ``overcooked``: Overcooked-AI's layouts, the
package imported only when one is built. The PettingZoo adapters live in
``adhoc.games.pettingzoo``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from adhoc.games.cmg import CMGConfig, CMGGame, CMGHConfig, CMGSConfig, build_cmg
from adhoc.games.corrective import CorrectiveConfig, CorrectiveGame, build_corrective
from adhoc.errors import GameError
from adhoc.games.core import SEATS, Game, GameState
from adhoc.games.lever import LeverConfig, LeverGame, build_lever
from adhoc.games.matrix import MatrixConfig, MatrixGame, build_matrix
from adhoc.games.openspiel import OpenSpielConfig, build_openspiel
from adhoc.games.overcooked import OvercookedConfig, build_overcooked
from adhoc.games.preference import PreferenceConfig, PreferenceGame, build_preference
from adhoc.games.repeated import RepeatedConfig, RepeatedGame, build_repeated
from adhoc.games.symmetry import PermutationGroup
from adhoc.games.warehouse import WarehouseConfig, WarehouseGame, build_warehouse


@dataclass(frozen=True)
class GameSpec:
    name: str
    config_cls: type
    build: Callable[[Any], Game]
    description: str


GAMES: dict[str, GameSpec] = {
    "lever": GameSpec("lever", LeverConfig, build_lever, "Other-Play lever game (Hu et al. 2020)"),
    "cmg": GameSpec("cmg", CMGConfig, build_cmg, "LIPO coordination matrix game, any block sizes"),
    "cmg-s": GameSpec("cmg-s", CMGSConfig, build_cmg, "CMG-S: 32 blocks of 8 (Charakorn et al. 2023)"),
    "cmg-h": GameSpec("cmg-h", CMGHConfig, build_cmg, "CMG-H: blocks of 32, 31, ..., 1 (Charakorn et al. 2023)"),
    "matrix": GameSpec("matrix", MatrixConfig, build_matrix, "any matrix game given in YAML (game.payoff: common; game.payoffs: one table per seat)"),
    "warehouse": GameSpec("warehouse", WarehouseConfig, build_warehouse,
                          "grounding linguistic feedback: a robot guided by a teacher's labels (seed paper, CIRL)"),
    "preference": GameSpec("preference", PreferenceConfig, build_preference,
                           "RLHF as a cooperative game: preference orderings, then a final choice (seed paper, CIRL)"),
    "corrective": GameSpec("corrective", CorrectiveConfig, build_corrective,
                           "interpreting corrective feedback: digit-by-digit arithmetic with corrections (seed paper)"),
    "repeated": GameSpec("repeated", RepeatedConfig, build_repeated,
                         "a one-shot game (game.stage) played for game.rounds rounds with the same partner"),
    "openspiel": GameSpec("openspiel", OpenSpielConfig, build_openspiel,
                          "any two-player common-payoff OpenSpiel game (game.game: tiny_hanabi, hanabi(...)); "
                          "extra [openspiel]"),
    "overcooked": GameSpec("overcooked", OvercookedConfig, build_overcooked,
                           "Overcooked-AI (Carroll et al. 2019), any two-player layout (game.layout); extra [overcooked]"),
}


def _allowed() -> str:
    return ", ".join(sorted(GAMES))


def build_game(config: Any) -> Game:
    """Build a game from its config dataclass, a dict or a DictConfig with ``name``. Values are validated
    against the game's config dataclass (types by OmegaConf, values by the builder): errors are GameError."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    elif isinstance(config, Mapping):  # dict or DictConfig
        values = dict(config)
    else:
        raise GameError(f"a game config must be a mapping with a name (allowed: {_allowed()})")
    if "name" not in values:
        raise GameError(f"game.name is required (allowed: {_allowed()})")
    name = values["name"]
    if name not in GAMES:
        raise GameError(f"unknown game '{name}' (allowed: {_allowed()})")
    spec = GAMES[name]
    known = [f.name for f in dataclasses.fields(spec.config_cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise GameError(f"unknown parameter game.{unknown[0]} for game '{name}' (allowed: {', '.join(known)})")
    try:
        typed = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(spec.config_cls), values))
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        raise GameError(f"game.{key}: {str(exc).splitlines()[0]}") from None
    return spec.build(typed)


def make_game(name: str, **params: Any) -> Game:
    """``make_game("lever", n_levers=4)``: build a registered game from keyword parameters."""
    return build_game({"name": name, **params})


__all__ = ["GAMES", "SEATS", "CMGConfig", "CorrectiveConfig", "CorrectiveGame", "CMGGame", "CMGHConfig", "CMGSConfig", "Game", "GameError", "GameSpec",
           "GameState", "LeverConfig", "LeverGame", "MatrixConfig", "MatrixGame", "PermutationGroup", "PreferenceConfig",
           "PreferenceGame", "RepeatedConfig", "RepeatedGame", "WarehouseConfig",
           "WarehouseGame", "build_game", "make_game"]
