"""The lever game of Other-Play (Hu, Lerer, Peysakhovich, Foerster, "Other-Play for zero-shot
coordination", ICML 2020), generalised.

Two players each pull one of ``n_levers`` levers; both get u_k if both pull lever k, else 0. The unique
lever ``unique_lever`` pays ``unique_payoff`` (0.9), every other lever ``other_payoff`` (1.0). Its symmetry
group is every permutation of the other levers (the unique lever is fixed by all of them), so independent
self-play agents cross-play at 1/(n-1) in expectation while Other-Play picks the unique lever (value u*).
Actions are the lever numbers as equal-width digit strings ("0".."9", "00".."11").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from adhoc.errors import GameError
from adhoc.games.matrix import MatrixGame, check_action_count, numbered
from adhoc.games.symmetry import PermutationGroup


@dataclass
class LeverConfig:
    name: str = "lever"
    n_levers: int = 10
    unique_lever: int = 0
    unique_payoff: float = 0.9
    other_payoff: float = 1.0


class LeverGame(MatrixGame):
    def convention_of(self, action: int) -> int:
        """The convention a deterministic member plays is simply its lever."""
        return int(action)


def build_lever(cfg: LeverConfig) -> LeverGame:
    n = cfg.n_levers
    if n < 2:
        raise GameError(f"game.n_levers must be >= 2 (got {n})")
    check_action_count(n, "game.n_levers")
    if not 0 <= cfg.unique_lever < n:
        raise GameError(f"game.unique_lever must be in 0..{n - 1} (got {cfg.unique_lever})")
    for key in ("unique_payoff", "other_payoff"):
        if not math.isfinite(getattr(cfg, key)):
            raise GameError(f"game.{key} must be a finite number (got {getattr(cfg, key)})")
    u = np.full(n, float(cfg.other_payoff))
    u[cfg.unique_lever] = cfg.unique_payoff
    others = [i for i in range(n) if i != cfg.unique_lever]
    params = {"n_levers": n, "unique_lever": cfg.unique_lever, "unique_payoff": float(cfg.unique_payoff),
              "other_payoff": float(cfg.other_payoff)}
    names = numbered(n)
    return LeverGame(cfg.name, np.diag(u), [names, names], f"Lever game with {n} levers.",
                     PermutationGroup.free_blocks(n, [others]), params)
