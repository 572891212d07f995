"""One-shot common-payoff matrix games, and ``matrix``: any such game given in YAML, no code needed.

Both seats choose simultaneously; both receive R[a0, a1]. Observations name the seat only (there is no
hidden information in a one-shot matrix game). The lever game (Hu et al. 2020, Other-Play) and the CMG
(Charakorn et al. 2023, LIPO) are matrix games with a declared symmetry structure.

User parameters of ``matrix``: ``payoff`` (list of rows), ``actions`` (one list of names for both seats or
one list per seat; default zero-padded "a0".."aK"), ``symmetries`` (generators: each one permutation used
for both seats, or one per seat), ``description`` (intro text shown to the players).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from adhoc._torch import torch
from adhoc.errors import GameError
from adhoc.games.core import GameState, number
from adhoc.games.symmetry import PermutationGroup, preserves_payoff

MAX_ACTIONS = 4096  # per seat: the payoff matrix and the policy's per-action scores must stay small
MAX_DESCRIPTION = 300  # characters: the intro is fed to a tiny LM on every step
MAX_TABLE = 6  # rules show the whole payoff table up to 6 x 6 actions, else its non-zero entries
MAX_ENTRIES = 12  # ... up to this many, else a summary


class MatrixGame:
    """A one-shot common-payoff game given by its payoff matrix R [A0, A1]."""

    horizon = 1

    def __init__(self, name: str, payoff: np.ndarray, actions: list[list[str]], intro: str,
                 symmetry: PermutationGroup | None = None, params: dict[str, Any] | None = None) -> None:
        payoff = np.array(payoff, dtype=np.float64)
        if payoff.ndim != 2 or [len(a) for a in actions] != list(payoff.shape):
            raise GameError(f"game '{name}': payoff shape {payoff.shape} does not match the action names")
        if not intro.isascii():
            raise GameError(f"game '{name}': the intro text must be ASCII")
        payoff.setflags(write=False)  # shared with callers through payoff_matrix()
        self.name, self.intro, self._symmetry = name, intro, symmetry
        self._payoff, self._actions = payoff, [list(a) for a in actions]
        self._params = dict(params or {})
        self._payoff_t = None  # the payoff as a tensor, made on the first step (building a game needs no torch)
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
        actions = torch.as_tensor(actions).cpu().long()
        if actions.shape != (state.n_episodes, 2):
            raise ValueError(f"actions must be [{state.n_episodes}, 2], got {list(actions.shape)}")
        for s in (0, 1):
            if actions[:, s].min() < 0 or actions[:, s].max() >= len(self._actions[s]):
                raise ValueError(f"seat {s} action out of range 0..{len(self._actions[s]) - 1}")
        if self._payoff_t is None:
            self._payoff_t = torch.tensor(self._payoff, dtype=torch.float32)
        reward = self._payoff_t[actions[:, 0], actions[:, 1]] * (~state.done)  # a finished episode pays 0
        done = torch.ones(state.n_episodes, dtype=torch.bool)
        new = GameState(state.n_episodes, t=state.t + 1, done=done, history=state.history + [actions.clone()],
                        extra=dict(state.extra))
        return new, reward, done

    def symmetries(self) -> PermutationGroup | None:
        return self._symmetry

    def payoff_matrix(self) -> np.ndarray:
        """R [A0, A1] (float64, read-only)."""
        return self._payoff

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    # ---------------------------------------------------------------- for people (play, serve)
    def rules(self, seat: int) -> str:
        return f"{self.stage_rules(seat)}\nOne move: you both choose once, then the game is over."

    def stage_rules(self, seat: int) -> str:
        """The rules of one play of the game (``repeated`` adds its rounds to them)."""
        return (f"{self.intro} You are player {seat + 1} of 2. You and your partner each choose an action at the same "
                "time, without seeing the other's choice; you both get the same reward.\n"
                f"Your actions: {', '.join(self._actions[seat])}.\n{self.payoff_text(seat)}")

    def payoff_text(self, seat: int) -> str:
        """The payoffs from this seat's side: the whole table when small, else its non-zero entries."""
        mine, theirs = self._actions[seat], self._actions[1 - seat]
        table = self._payoff if seat == 0 else self._payoff.T  # [mine, theirs]
        if max(table.shape) <= MAX_TABLE:
            width = max(len(x) for x in [*theirs, *(number(v) for v in table.flat)]) + 2
            left = max(len(x) for x in mine) + 2
            head = " " * left + "".join(x.rjust(width) for x in theirs)
            rows = [a.ljust(left) + "".join(number(v).rjust(width) for v in row) for a, row in zip(mine, table)]
            return "Reward (rows: your action; columns: your partner's):\n" + "\n".join([head, *rows])
        hits = np.argwhere(table != 0)
        if len(hits) <= MAX_ENTRIES:
            pairs = "; ".join(f"you {mine[a]} and partner {theirs[b]}: {number(table[a, b])}" for a, b in hits)
            return f"Reward: {pairs}; any other pair pays 0."
        return (f"Reward: {len(hits)} of the {table.size} pairs of actions pay between {number(table[table != 0].min())} "
                f"and {number(table.max())}; any other pair pays 0.")

    def show(self, state: GameState, seat: int) -> list[str]:
        return ["Choose your action." if state.t == 0 else
                f"You chose {self._actions[seat][int(h[seat])]}, your partner {self._actions[1 - seat][int(h[1 - seat])]}."
                for h in (state.history[-1].tolist() if state.history else [None] * state.n_episodes)]

    def describe_action(self, seat: int, action: int) -> str:
        return f"chose {self._actions[seat][action]}"


def numbered(n: int, prefix: str = "") -> list[str]:
    """Zero-padded names of equal width ("0".."9", "00".."11"): equal token counts, none a prefix of another."""
    width = len(str(n - 1))
    return [f"{prefix}{i:0{width}d}" for i in range(n)]


def check_action_count(n: int, key: str) -> None:
    if n > MAX_ACTIONS:
        raise GameError(f"{key}: {n} actions is more than the limit of {MAX_ACTIONS}")


@dataclass
class MatrixConfig:
    name: str = "matrix"
    payoff: Optional[list[list[float]]] = None  # required
    actions: Optional[Any] = None  # one list of names for both seats, or [seat0_names, seat1_names]
    symmetries: Optional[Any] = None  # generators: a permutation (both seats) or [perm0, perm1]
    description: str = "Coordination game."


def _is_list(x: Any) -> bool:
    # OmegaConf's ListConfig is a Sequence too; a string is not a list here
    return isinstance(x, Sequence) and not isinstance(x, (str, bytes))


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _payoff(rows: Any) -> np.ndarray:
    if rows is None:
        raise GameError("game.payoff is required: a list of rows, e.g. [[1, 0], [0, 1]]")
    if not _is_list(rows) or not rows or not all(_is_list(r) and len(r) > 0 for r in rows):
        raise GameError("game.payoff must be a non-empty list of non-empty rows, e.g. [[1, 0], [0, 1]]")
    if len({len(r) for r in rows}) != 1:
        raise GameError(f"game.payoff must be rectangular (row lengths {[len(r) for r in rows]})")
    if any(isinstance(v, (bool, str, bytes)) or not isinstance(v, (int, float, np.number)) for r in rows for v in r):
        raise GameError("game.payoff entries must be numbers")
    payoff = np.array([list(r) for r in rows], dtype=np.float64)
    if not np.isfinite(payoff).all():
        raise GameError("game.payoff holds NaN or infinite entries")
    for n in payoff.shape:
        check_action_count(n, "game.payoff")
    return payoff


def _names(actions: Any, counts: list[int]) -> list[list[str]]:
    if actions is None:
        return [numbered(n, "a") for n in counts]
    if not _is_list(actions) or not actions:
        raise GameError("game.actions must be one list of names (both seats) or a list of two lists (one per seat)")
    if all(_is_list(a) for a in actions) and len(actions) == 2:
        per_seat = [list(a) for a in actions]
    elif not any(_is_list(a) for a in actions):
        per_seat = [list(actions), list(actions)]
    else:
        raise GameError("game.actions must be one list of names (both seats) or a list of two lists (one per seat)")
    names = []
    for seat, (n, seat_names) in enumerate(zip(counts, per_seat)):
        if len(seat_names) != n:
            raise GameError(f"game.actions: seat {seat} has {len(seat_names)} names for {n} actions (payoff is "
                            f"{counts[0]}x{counts[1]})")
        if not all(isinstance(x, str) or _is_int(x) for x in seat_names):
            raise GameError(f"game.actions: seat {seat} names must be strings")
        seat_names = [str(x) for x in seat_names]
        for x in seat_names:
            if not x.strip() or x != x.strip() or not x.isascii() or not x.isprintable():
                raise GameError(f"game.actions: seat {seat} name {x!r} must be non-empty printable ASCII without "
                                "leading or trailing spaces")
        if len(set(seat_names)) != n:
            dup = sorted({x for x in seat_names if seat_names.count(x) > 1})
            raise GameError(f"game.actions: seat {seat} has duplicate names {dup}")
        names.append(seat_names)
    return names


def _generators(symmetries: Any) -> list[list[list[int]]]:
    if not _is_list(symmetries):
        raise GameError("game.symmetries must be a list of generators (each a permutation, or one per seat)")
    gens = []
    for i, g in enumerate(symmetries):
        if _is_list(g) and len(g) == 2 and all(_is_list(p) for p in g):
            perms = [list(g[0]), list(g[1])]
        elif _is_list(g) and len(g) > 0 and not any(_is_list(p) for p in g):
            perms = [list(g), list(g)]
        else:
            raise GameError(f"game.symmetries[{i}] must be a permutation like [1, 0, 2] "
                            "or a pair of them (one per seat)")
        if not all(_is_int(a) for p in perms for a in p):
            raise GameError(f"game.symmetries[{i}] must hold integer action indices")
        gens.append([[int(a) for a in p] for p in perms])
    return gens


def build_matrix(cfg: MatrixConfig) -> MatrixGame:
    payoff = _payoff(cfg.payoff)
    counts = list(payoff.shape)
    names = _names(cfg.actions, counts)
    description = cfg.description
    if not isinstance(description, str) or not description.strip() or not description.isascii() \
            or not description.isprintable() or len(description) > MAX_DESCRIPTION:
        raise GameError(f"game.description must be non-empty printable ASCII of at most {MAX_DESCRIPTION} characters "
                        "on one line")
    group, gens = None, None
    if cfg.symmetries is not None:
        gens = _generators(cfg.symmetries)
        try:
            group = PermutationGroup.from_generators(counts, gens)
        except GameError as exc:
            raise GameError(f"game.symmetries: {exc}") from None
        for i, g in enumerate(group.generators()):
            if not preserves_payoff(g, payoff):
                raise GameError(f"game.symmetries[{i}] {gens[i]} does not preserve the payoff matrix")
    params = {"payoff": payoff.tolist(), "actions": names, "symmetries": gens, "description": description}
    return MatrixGame(cfg.name, payoff, names, description, group, params)
