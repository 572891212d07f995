"""The lever game of Other-Play (Hu, Lerer, Peysakhovich, Foerster, ICML 2020), generalised.

Two players each pull one of ``n_levers`` levers; both get u_k if both pull lever k, else 0. The unique
lever ``unique_lever`` pays ``unique_payoff`` (0.9), every other lever ``other_payoff`` (1.0). Its symmetry
group is every permutation of the other levers (the unique lever is fixed by all of them), so independent
self-play agents cross-play at 1/(n−1) in expectation while Other-Play picks the unique lever (value u*).
Actions are the lever numbers as equal-width digit strings ("0".."9").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adhoc.games.core import GameError
from adhoc.games.matrix import MatrixGame, numbered
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
    if cfg.n_levers < 2:
        raise GameError(f"game.n_levers must be >= 2 (got {cfg.n_levers})")
    if not 0 <= cfg.unique_lever < cfg.n_levers:
        raise GameError(f"game.unique_lever must be in 0..{cfg.n_levers - 1} (got {cfg.unique_lever})")
    u = np.full(cfg.n_levers, float(cfg.other_payoff))
    u[cfg.unique_lever] = cfg.unique_payoff
    others = [i for i in range(cfg.n_levers) if i != cfg.unique_lever]
    params = {"n_levers": cfg.n_levers, "unique_lever": cfg.unique_lever, "unique_payoff": cfg.unique_payoff,
              "other_payoff": cfg.other_payoff}
    names = numbered(cfg.n_levers)
    return LeverGame(cfg.name, np.diag(u), [names, names], f"Lever game with {cfg.n_levers} levers.",
                     PermutationGroup.free_blocks(cfg.n_levers, [others]), params)
