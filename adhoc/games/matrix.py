"""One-shot common-payoff matrix games, and ``matrix``: any such game given in YAML, no code needed.

Both seats choose simultaneously; both receive R[a0, a1]. Observations name the seat only (there is no
hidden information in a one-shot matrix game). The lever game and CMG are matrix games with a structure.

User parameters of ``matrix``: ``payoff`` (list of rows), ``actions`` (one list of names for both seats or
one list per seat; default zero-padded "a0".."aK"), ``symmetries`` (generators: each one permutation used
for both seats, or one per seat), ``description`` (intro text shown to the players).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from adhoc.games.core import GameError, GameState
from adhoc.games.symmetry import PermutationGroup


class MatrixGame:
    horizon = 1

    def __init__(self, name: str, payoff: np.ndarray, actions: list[list[str]], intro: str,
                 symmetry: PermutationGroup | None, params: dict[str, Any]) -> None:
        self.name, self.intro, self._symmetry, self._params = name, intro, symmetry, params
        self.payoff = np.asarray(payoff, dtype=np.float64)
        self._payoff_t = torch.tensor(self.payoff, dtype=torch.float32)
        self._actions = actions
        self._obs = [f"{intro} You are player {s + 1} of 2. Choose an action." for s in (0, 1)]

    def action_names(self, seat: int) -> list[str]:
        return self._actions[seat]

    def reset(self, n_episodes: int, rng: np.random.Generator) -> GameState:
        return GameState(n_episodes)

    def observe(self, state: GameState, seat: int) -> list[str]:
        return [self._obs[seat]] * state.n_episodes

    def legal_mask(self, state: GameState, seat: int) -> torch.Tensor:
        return torch.ones(state.n_episodes, len(self._actions[seat]), dtype=torch.bool)

    def step(self, state: GameState, actions: torch.Tensor) -> tuple[GameState, torch.Tensor, torch.Tensor]:
        actions = actions.cpu().long()
        reward = self._payoff_t[actions[:, 0], actions[:, 1]] * (~state.done)
        done = torch.ones(state.n_episodes, dtype=torch.bool)
        new = GameState(state.n_episodes, t=state.t + 1, done=done, history=state.history + [actions], extra=state.extra)
        return new, reward, done

    def symmetries(self) -> PermutationGroup | None:
        return self._symmetry

    def payoff_matrix(self) -> np.ndarray:
        return self.payoff

    def params(self) -> dict[str, Any]:
        return dict(self._params)


def numbered(n: int, prefix: str = "") -> list[str]:
    """Zero-padded names of equal width ("0".."9", "00".."11"): equal token counts, no prefix of another."""
    width = len(str(n - 1))
    return [f"{prefix}{i:0{width}d}" for i in range(n)]


@dataclass
class MatrixConfig:
    name: str = "matrix"
    payoff: list[list[float]] = None  # type: ignore[assignment]
    actions: Optional[Any] = None
    symmetries: Optional[Any] = None
    description: str = "Coordination game."


def build_matrix(cfg: MatrixConfig) -> MatrixGame:
    rows = cfg.payoff
    if not rows or not isinstance(rows, (list, tuple)) or not all(isinstance(r, (list, tuple)) and r for r in rows):
        raise GameError("game.payoff must be a non-empty list of non-empty rows")
    if len({len(r) for r in rows}) != 1:
        raise GameError("game.payoff must be rectangular (every row the same length)")
    payoff = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(payoff).all():
        raise GameError("game.payoff holds NaN or inf")
    counts = list(payoff.shape)
    actions = cfg.actions
    if actions is None:
        names = [numbered(n, "a") for n in counts]
    elif all(isinstance(a, str) for a in actions):
        names = [list(actions), list(actions)]
    elif len(actions) == 2 and all(isinstance(a, (list, tuple)) for a in actions):
        names = [list(map(str, a)) for a in actions]
    else:
        raise GameError("game.actions must be one list of names or a list of two lists (one per seat)")
    for seat, (n, seat_names) in enumerate(zip(counts, names)):
        if len(seat_names) != n:
            raise GameError(f"game.actions: seat {seat} has {len(seat_names)} names for {n} actions")
        if any(not s.strip() for s in seat_names) or len(set(seat_names)) != n:
            raise GameError(f"game.actions: seat {seat} names must be distinct and non-empty")
        if any(not s.isascii() or not s.isprintable() for s in seat_names):
            raise GameError(f"game.actions: seat {seat} names must be printable ASCII")
    group = None
    if cfg.symmetries:
        gens = []
        for g in cfg.symmetries:
            g = list(g)
            gens.append([list(g[0]), list(g[1])] if g and isinstance(g[0], (list, tuple)) else [g, g])
        group = PermutationGroup.from_generators(counts, gens)
        if not group.preserves(payoff):
            raise GameError("game.symmetries: a generator does not preserve the payoff matrix")
    params = {"payoff": payoff.tolist(), "actions": names, "description": cfg.description,
              "symmetries": [[list(map(int, p)) for p in g] for g in gens] if cfg.symmetries else None}
    return MatrixGame(cfg.name, payoff, names, cfg.description, group, params)

