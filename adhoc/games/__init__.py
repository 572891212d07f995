"""Games, registered by name. ``import adhoc.games`` stays light (numpy + torch only)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from adhoc.games.cmg import CMGConfig, CMGHConfig, CMGSConfig, build_cmg
from adhoc.games.core import Game, GameError, GameState
from adhoc.games.lever import LeverConfig, build_lever
from adhoc.games.matrix import MatrixConfig, build_matrix


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
    "matrix": GameSpec("matrix", MatrixConfig, build_matrix, "any common-payoff matrix game given in YAML"),
}


def build_game(config: Any) -> Game:
    """Build a game from its config dataclass, a dict or a DictConfig with ``name``."""
    name = config["name"] if isinstance(config, dict) or hasattr(config, "keys") else config.name
    if name not in GAMES:
        raise GameError(f"unknown game '{name}' (allowed: {', '.join(sorted(GAMES))})")
    spec = GAMES[name]
    if not isinstance(config, spec.config_cls):
        values = dict(config)
        known = {f.name for f in dataclasses.fields(spec.config_cls)}
        unknown = set(values) - known
        if unknown:
            raise GameError(f"unknown parameter(s) {sorted(unknown)} for game '{name}' (allowed: {', '.join(sorted(known))})")
        config = spec.config_cls(**values)
    return spec.build(config)


def make_game(name: str, **params: Any) -> Game:
    return build_game({"name": name, **params})


__all__ = ["GAMES", "Game", "GameError", "GameSpec", "GameState", "build_game", "make_game"]
