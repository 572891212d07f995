"""One-shot matrix games, and ``matrix``: any such game given in YAML, no code needed.

Both seats choose simultaneously. A common-payoff game has one table R [A0, A1]: both seats receive R[a0, a1].
A zero-sum or general-sum game (``payoff`` attribute, see ``adhoc.games.core``) has one table per seat,
R_s [A0, A1] (both indexed by seat 0's action, then seat 1's): seat s receives R_s[a0, a1], and ``step`` returns
[E, 2]; zero-sum means R_0 + R_1 == 0 everywhere. Observations name the seat only (there is no hidden
information in a one-shot matrix game). The lever game (Hu et al. 2020, Other-Play) and the CMG (Charakorn et
al. 2023, LIPO) are common-payoff matrix games with a declared symmetry structure.

User parameters of ``matrix``: ``payoff`` (list of rows: a common payoff) or ``payoffs`` (two such tables,
[R0, R1]: seat 0's and seat 1's rewards), exactly one of them; ``kind`` (with ``payoffs``: ``general_sum`` or
``zero_sum``; inferred when absent: zero_sum where R0 + R1 == 0 everywhere, else general_sum); ``actions`` (one
list of names for both seats or one list per seat; default zero-padded "a0".."aK"), ``symmetries`` (generators:
each one permutation used for both seats, or one per seat; they must preserve every table), ``description``
(intro text shown to the players).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from adhoc._torch import torch
from adhoc.errors import GameError
from adhoc.games.core import PAYOFFS, GameState, number
from adhoc.games.symmetry import PermutationGroup, preserves_payoff

MAX_ACTIONS = 4096  # per seat: the payoff matrix and the policy's per-action scores must stay small
MAX_DESCRIPTION = 300  # characters: the intro is fed to a tiny LM on every step
MAX_TABLE = 6  # rules show the whole payoff table up to 6 x 6 actions, else its non-zero entries
MAX_ENTRIES = 12  # ... up to this many, else a summary
MAX_DRAWN = 12  # the browser (adhoc serve) draws the payoff table up to 12 x 12 actions, else the buttons alone


class MatrixGame:
    """A one-shot game given by its payoff matrix R [A0, A1] (``kind`` common), or by one table per seat
    [2, A0, A1] (``kind`` zero_sum or general_sum: seat s gets payoff[s, a0, a1])."""

    horizon = 1

    def __init__(self, name: str, payoff: np.ndarray, actions: list[list[str]], intro: str,
                 symmetry: PermutationGroup | None = None, params: dict[str, Any] | None = None,
                 kind: str = "common") -> None:
        payoff = np.array(payoff, dtype=np.float64)
        if kind not in PAYOFFS:
            raise GameError(f"game '{name}': payoff kind {kind!r} is not one of {', '.join(PAYOFFS)}")
        shape = list(payoff.shape) if kind == "common" else list(payoff.shape[1:]) if payoff.shape[:1] == (2,) else None
        if payoff.ndim != (2 if kind == "common" else 3) or [len(a) for a in actions] != shape:
            raise GameError(f"game '{name}': payoff shape {payoff.shape} does not match the action names")
        if kind == "zero_sum" and not np.array_equal(payoff[0] + payoff[1], np.zeros_like(payoff[0])):
            raise GameError(f"game '{name}': a zero-sum game's two tables must add up to 0 everywhere")
        self.payoff = kind  # payoff_kind(game): common, zero_sum or general_sum
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
        if self.payoff == "common":
            reward = self._payoff_t[actions[:, 0], actions[:, 1]] * (~state.done)  # a finished episode pays 0
        else:  # [E, 2]: column s is seat s's reward
            reward = self._payoff_t[:, actions[:, 0], actions[:, 1]].T * (~state.done)[:, None]
        done = torch.ones(state.n_episodes, dtype=torch.bool)
        new = GameState(state.n_episodes, t=state.t + 1, done=done, history=state.history + [actions.clone()],
                        extra=dict(state.extra))
        return new, reward, done

    def symmetries(self) -> PermutationGroup | None:
        return self._symmetry

    def payoff_matrix(self) -> np.ndarray:
        """R [A0, A1] (float64, read-only) of a common-payoff game; a game with one table per seat has no single
        matrix (GameError: use ``payoff_matrices``)."""
        if self.payoff != "common":
            raise GameError(f"game '{self.name}' is {self.payoff}: it has one payoff table per seat "
                            "(payoff_matrices), not one common payoff matrix")
        return self._payoff

    def payoff_matrices(self) -> np.ndarray:
        """[2, A0, A1] float64: seat s's reward R_s[a0, a1] (for a common payoff both are R; read-only)."""
        if self.payoff == "common":
            both = np.stack([self._payoff, self._payoff])
            both.setflags(write=False)
            return both
        return self._payoff

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    # ---------------------------------------------------------------- for people (play, serve)
    def rules(self, seat: int) -> str:
        return f"{self.stage_rules(seat)}\nOne move: you both choose once, then the game is over."

    def stage_rules(self, seat: int) -> str:
        """The rules of one play of the game (``repeated`` adds its rounds to them)."""
        who = {"common": "you both get the same reward",
               "zero_sum": "each of you gets your own reward, and what one wins the other loses (zero-sum)",
               "general_sum": "each of you gets your own reward"}[self.payoff]
        return (f"{self.intro} You are player {seat + 1} of 2. You and your partner each choose an action at the same "
                f"time, without seeing the other's choice; {who}.\n"
                f"Your actions: {', '.join(self._actions[seat])}.\n{self.payoff_text(seat)}")

    def payoff_text(self, seat: int) -> str:
        """The payoffs from this seat's side: the whole table when small, else its non-zero entries."""
        if self.payoff != "common":
            return self._pairs_text(seat)
        mine, theirs = self._actions[seat], self._actions[1 - seat]
        table = self.seat_tables(seat)[0]
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

    def _pairs_text(self, seat: int) -> str:
        """A game with one table per seat: each entry is "X, Y", you get X and your partner gets Y."""
        mine, theirs = self._actions[seat], self._actions[1 - seat]
        own, other = self.seat_tables(seat)
        cells = np.vectorize(lambda x, y: f"{number(x)}, {number(y)}", otypes=[object])(own, other)
        if max(own.shape) <= MAX_TABLE:
            width = max(len(x) for x in [*theirs, *cells.flat]) + 2
            left = max(len(x) for x in mine) + 2
            head = " " * left + "".join(x.rjust(width) for x in theirs)
            rows = [a.ljust(left) + "".join(c.rjust(width) for c in row) for a, row in zip(mine, cells)]
            return ("Rewards (rows: your action; columns: your partner's; each entry: you get X, your partner gets "
                    "Y):\n" + "\n".join([head, *rows]))
        hits = np.argwhere((own != 0) | (other != 0))
        if len(hits) <= MAX_ENTRIES:
            pairs = "; ".join(f"you {mine[a]} and partner {theirs[b]}: you get {number(own[a, b])}, your partner gets "
                              f"{number(other[a, b])}" for a, b in hits)
            return f"Rewards: {pairs}; any other pair pays you both 0."
        def span(t: np.ndarray) -> str:
            return number(t.min()) if t.min() == t.max() else f"between {number(t.min())} and {number(t.max())}"

        return f"Rewards: you get {span(own)}, your partner {span(other)}, depending on the pair of actions."

    def seat_tables(self, seat: int) -> tuple[np.ndarray, np.ndarray]:
        """(this seat's payoffs, its partner's), each indexed [this seat's action, the partner's]."""
        tables = self.payoff_matrices()
        own, other = tables[seat], tables[1 - seat]
        return (own, other) if seat == 0 else (own.T, other.T)

    def draw(self, state: GameState, seat: int) -> list[dict[str, Any] | None]:
        """What the browser draws for ``seat`` (``adhoc serve``), per episode: the stage game, alike in every one."""
        return [self.stage_drawing(seat)] * state.n_episodes

    def stage_drawing(self, seat: int) -> dict[str, Any] | None:
        """The payoff table from this seat's side: ``rows`` its actions, ``columns`` its partner's, ``you`` the
        seat's payoff in each cell and, unless the payoff is common, ``partner`` its partner's (as the rules write
        numbers); None when either seat has more than ``MAX_DRAWN`` actions."""
        own, other = self.seat_tables(seat)
        if max(own.shape) > MAX_DRAWN:
            return None
        drawing = {"kind": "matrix", "rows": list(self._actions[seat]), "columns": list(self._actions[1 - seat]),
                   "you": [[number(v) for v in row] for row in own]}
        if self.payoff != "common":
            drawing["partner"] = [[number(v) for v in row] for row in other]
        return drawing

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
    payoff: Optional[list[list[float]]] = None  # a common payoff: one table [A0][A1]; or else payoffs
    payoffs: Optional[list[list[list[float]]]] = None  # one table per seat, [R0, R1], each [A0][A1]
    kind: Optional[str] = None  # with payoffs: general_sum or zero_sum (default: inferred from the tables)
    actions: Optional[Any] = None  # one list of names for both seats, or [seat0_names, seat1_names]
    symmetries: Optional[Any] = None  # generators: a permutation (both seats) or [perm0, perm1]
    description: str = "Coordination game."


def _is_list(x: Any) -> bool:
    # OmegaConf's ListConfig is a Sequence too; a string is not a list here
    return isinstance(x, Sequence) and not isinstance(x, (str, bytes))


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _payoff(rows: Any, key: str = "game.payoff") -> np.ndarray:
    if rows is None:
        raise GameError(f"{key} is required: a list of rows, e.g. [[1, 0], [0, 1]]")
    if not _is_list(rows) or not rows or not all(_is_list(r) and len(r) > 0 for r in rows):
        raise GameError(f"{key} must be a non-empty list of non-empty rows, e.g. [[1, 0], [0, 1]]")
    if len({len(r) for r in rows}) != 1:
        raise GameError(f"{key} must be rectangular (row lengths {[len(r) for r in rows]})")
    if any(isinstance(v, (bool, str, bytes)) or not isinstance(v, (int, float, np.number)) for r in rows for v in r):
        raise GameError(f"{key} entries must be numbers")
    payoff = np.array([list(r) for r in rows], dtype=np.float64)
    if not np.isfinite(payoff).all():
        raise GameError(f"{key} holds NaN or infinite entries")
    for n in payoff.shape:
        check_action_count(n, key)
    return payoff


SEAT_KINDS = ("general_sum", "zero_sum")  # the kinds of a game given by payoffs (one table per seat)


def _tables(cfg: MatrixConfig) -> tuple[np.ndarray, str]:
    """The payoff and its kind from ``payoff`` or ``payoffs`` (exactly one): R [A0, A1] and "common", or the
    seats' tables [2, A0, A1] and "zero_sum" / "general_sum" (declared by ``kind``, else inferred)."""
    if cfg.payoff is not None and cfg.payoffs is not None:
        raise GameError("game.payoff and game.payoffs are alternatives: give game.payoff (one common table) or "
                        "game.payoffs (one table per seat), not both")
    if cfg.payoffs is None:
        if cfg.payoff is None:
            raise GameError("game.payoff is required: a list of rows, e.g. [[1, 0], [0, 1]] (or game.payoffs: one "
                            "table per seat)")
        if cfg.kind not in (None, "common"):
            raise GameError(f"game.kind={cfg.kind} needs game.payoffs (one table per seat); game.payoff is a common "
                            "payoff")
        return _payoff(cfg.payoff), "common"
    tables = cfg.payoffs
    if not _is_list(tables) or len(tables) != 2:
        n = f"{len(tables)} tables" if _is_list(tables) else repr(tables)
        raise GameError(f"game.payoffs must be two tables [R0, R1] (seat 0's and seat 1's rewards, each a list of "
                        f"rows indexed [a0][a1]), got {n}")
    r0, r1 = (_payoff(t, f"game.payoffs[{s}]") for s, t in enumerate(tables))
    if r0.shape != r1.shape:
        raise GameError(f"game.payoffs: the two tables differ in shape ({r0.shape[0]}x{r0.shape[1]} and "
                        f"{r1.shape[0]}x{r1.shape[1]}); both are indexed [seat 0's action][seat 1's action]")
    both = np.stack([r0, r1])
    zero = bool(np.array_equal(r0 + r1, np.zeros_like(r0)))
    kind = cfg.kind
    if kind is None:
        kind = "zero_sum" if zero else "general_sum"
    elif kind not in SEAT_KINDS:
        raise GameError(f"game.kind must be one of {', '.join(SEAT_KINDS)} with game.payoffs (got {kind!r}; a common "
                        "payoff is game.payoff)")
    elif kind == "zero_sum" and not zero:
        a, b = (int(x) for x in np.argwhere(r0 + r1 != 0)[0])
        raise GameError(f"game.kind=zero_sum but game.payoffs[0] + game.payoffs[1] is not 0 everywhere (at "
                        f"[{a}][{b}]: {number(r0[a, b])} + {number(r1[a, b])})")
    return both, kind


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
    payoff, kind = _tables(cfg)
    counts = list(payoff.shape[-2:])
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
        tables = [payoff] if kind == "common" else list(payoff)  # a symmetry must preserve every seat's table
        for i, g in enumerate(group.generators()):
            for s, table in enumerate(tables):
                if not preserves_payoff(g, table):
                    what = "the payoff matrix" if kind == "common" else f"seat {s}'s payoff table (game.payoffs[{s}])"
                    raise GameError(f"game.symmetries[{i}] {gens[i]} does not preserve {what}")
    if kind == "common":
        params = {"payoff": payoff.tolist(), "actions": names, "symmetries": gens, "description": description}
    else:
        params = {"payoffs": payoff.tolist(), "kind": kind, "actions": names, "symmetries": gens,
                  "description": description}
    return MatrixGame(cfg.name, payoff, names, description, group, params, kind=kind)
