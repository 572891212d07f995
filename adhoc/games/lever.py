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
from typing import Any

import numpy as np

from adhoc.errors import GameError
from adhoc.games.core import number, spans
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

    def stage_rules(self, seat: int) -> str:
        p, names = self._params, self._actions[0]
        n, unique = p["n_levers"], p["unique_lever"]
        others = [i for i in range(n) if i != unique]
        other = f"lever {names[others[0]]} pays" if len(others) == 1 else \
            f"levers {spans(others, names)} pay {number(p['other_payoff'])} if you both pull the same one"
        if len(others) == 1:
            other += f" {number(p['other_payoff'])} if you both pull it"
        return (f"Lever game with {n} levers. You are player {seat + 1} of 2. You and your partner each pull one of "
                f"the levers {spans(list(range(n)), names)} at the same time, without seeing the other's choice; you "
                f"both get the same reward.\nLever {names[unique]} pays {number(p['unique_payoff'])} if you both pull "
                f"it; {other}; different levers pay 0.")

    def describe_action(self, seat: int, action: int) -> str:
        return f"pulled lever {self._actions[seat][action]}"

    def stage_drawing(self, seat: int) -> dict[str, Any]:
        """For the browser: what each lever pays if both pull it (``payoffs``, by action index), any number of
        levers."""
        return {"kind": "lever", "payoffs": [number(v) for v in np.diag(self.payoff_matrix())]}

    def show(self, state, seat: int) -> list[str]:
        return ["Pull a lever." if not state.history else
                f"You pulled lever {self._actions[seat][h[seat]]}, your partner lever {self._actions[1 - seat][h[1 - seat]]}."
                for h in (state.history[-1].tolist() if state.history else [None] * state.n_episodes)]


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
