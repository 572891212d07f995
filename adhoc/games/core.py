"""The Game protocol: two seats, text observations, legal action strings; common payoff by default.

Every game is batched: one call steps many independent episodes at once. A game is stateless; the
per-episode state lives in a ``GameState`` object the game creates in ``reset`` and advances in ``step``.

Multi-step games fit the same protocol: ``horizon`` bounds the number of steps, ``observe`` renders the
history a seat is allowed to see (hidden information per seat), ``legal_mask`` may change per step, and
``step`` returns per-episode ``done`` flags (an episode that is done ignores further actions and pays 0).

Payoffs: a game's ``payoff`` attribute (``payoff_kind``) is ``common`` (the default when absent: both seats
get the same reward, and ``step`` returns it as [E]), ``zero_sum`` (the seats' rewards add up to 0 at every
step) or ``general_sum``; the last two return one reward per seat from ``step``, [E, 2] (column s: seat s).

Shapes: E = episodes in the batch, A_s = number of actions of seat s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from adhoc._torch import torch
from adhoc.games.symmetry import PermutationGroup

SEATS = (0, 1)
PAYOFFS = ("common", "zero_sum", "general_sum")
# Game parameters that schedule a training reward without changing the game (Overcooked's shaped rewards): two
# games that differ only in them are the same game, and people always play without them (adhoc play and serve).
TRAINING_SCHEDULE = frozenset({"shaping", "shaping_horizon"})


def payoff_kind(game) -> str:
    """``common``, ``zero_sum`` or ``general_sum`` (a game without a ``payoff`` attribute is common-payoff)."""
    return getattr(game, "payoff", "common")


def seat_rewards(reward: torch.Tensor) -> torch.Tensor:
    """A step's reward as one per seat, [E, 2]: a common payoff [E] is both seats' reward."""
    return reward[:, None].expand(-1, 2) if reward.dim() == 1 else reward


def own_seat(values: torch.Tensor, seat: torch.Tensor) -> torch.Tensor:
    """Each row's value for its own seat: values [B, ..., 2] (one per seat), seat [B] (0 or 1) → [B, ...]."""
    index = seat.to(values.device).long().view(-1, *[1] * (values.dim() - 1))
    return values.gather(-1, index.expand(*values.shape[:-1], 1))[..., 0]


@dataclass
class GameState:
    """Batched episode state. ``t``: steps taken; ``done``: [E] bool; ``history``: per-step joint actions
    as a list of LongTensor [E, 2]; ``extra``: game-specific per-episode data (hidden types, positions)."""

    n_episodes: int
    t: int = 0
    done: torch.Tensor = None  # type: ignore[assignment]  # [E] bool
    history: list[torch.Tensor] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.done is None:
            self.done = torch.zeros(self.n_episodes, dtype=torch.bool)


@runtime_checkable
class Game(Protocol):
    """What a game provides. ``name`` is its registry name (recorded in saved populations)."""

    name: str
    horizon: int  # maximum number of steps of an episode (1 for one-shot games)

    def action_names(self, seat: int) -> list[str]:
        """Legal action strings of ``seat`` (short, distinct). The policy scores these strings."""

    def reset(self, n_episodes: int, rng: np.random.Generator) -> GameState:
        """Start ``n_episodes`` independent episodes."""

    def observe(self, state: GameState, seat: int) -> list[str]:
        """Text observation of ``seat`` for each episode (only what that seat may see, with its history)."""

    def legal_mask(self, state: GameState, seat: int) -> torch.Tensor:
        """[E, A_seat] bool: which actions are legal now."""

    def step(self, state: GameState, actions: torch.Tensor) -> tuple[GameState, torch.Tensor, torch.Tensor]:
        """Apply joint actions LongTensor [E, 2] → (new state, reward, done [E]); reward: float32 [E] for a
        common-payoff game, [E, 2] (one per seat) for a zero-sum or general-sum one (``payoff_kind``)."""

    def symmetries(self) -> PermutationGroup | None:
        """The game's symmetry group (relabellings of actions and observations) or None if none declared."""

    def params(self) -> dict[str, Any]:
        """The game's parameters as plain YAML-able values (recorded in saved populations)."""

    def rules(self, seat: int) -> str:
        """The rules for a person in ``seat``, in a few lines of plain English, made from the game's own
        parameters: the goal (a common payoff), what this seat's actions mean, the payoffs, what each seat sees
        of the other, and the number of steps or rounds. For people only (``adhoc play``, ``adhoc serve``); a
        policy never reads it."""

    def show(self, state: GameState, seat: int) -> list[str]:
        """What ``seat`` knows now, per episode, in words for a person (may span lines). ``observe`` stays the
        policy's text; this is what ``adhoc play`` and ``adhoc serve`` show a person instead."""

    def describe_action(self, seat: int, action: int) -> str:
        """Action ``action`` of ``seat`` as a past-tense phrase ("pulled lever 3", "said 'Up'", "moved up").
        Optional beside these (not part of the protocol): ``draw(state, seat)``, what ``show`` says as JSON data per
        episode, which ``adhoc serve`` draws (``adhoc.play.draw_state``)."""


def number(x: float) -> str:
    """A payoff as people read it: 0.9, 1.0, 0.333, -2.0."""
    x = float(x)
    return f"{x:.1f}" if x.is_integer() else f"{x:.4g}"


def spans(indices: list[int], names: list[str]) -> str:
    """``[1, 2, 3, 5]`` → "1-3, 5" in the actions' own names (runs of consecutive indices as first-last)."""
    parts, i = [], 0
    while i < len(indices):
        j = i
        while j + 1 < len(indices) and indices[j + 1] == indices[j] + 1:
            j += 1
        a, b = names[indices[i]], names[indices[j]]
        parts.append(a if i == j else f"{a}, {b}" if j == i + 1 else f"{a}-{b}")
        i = j + 1
    return ", ".join(parts)


def checked_actions(game: Game, state: GameState, actions: torch.Tensor) -> torch.Tensor:
    """Joint actions as a CPU LongTensor [E, 2], checked against the batch size and each seat's action count
    (a caller bug, so ValueError rather than GameError)."""
    actions = torch.as_tensor(actions).cpu().long()
    n = state.n_episodes
    if actions.shape != (n, 2):
        raise ValueError(f"actions must be [{n}, 2], got {list(actions.shape)}")
    for s in SEATS:
        if actions[:, s].min() < 0 or actions[:, s].max() >= len(game.action_names(s)):
            raise ValueError(f"seat {s} action out of range 0..{len(game.action_names(s)) - 1}")
    return actions


# ---------------------------------------------------------------- turn-taking, transcript games
def turn_mask(state: GameState, n_actions: int, my_turn: bool, forced: int = 0) -> torch.Tensor:
    """[E, A] legal mask of a seat in a turn-taking game: every action on its own turn (or once the episode
    is over), else only the one ``forced`` action, which the game ignores (the rollout does not score it)."""
    mask = torch.ones(state.n_episodes, n_actions, dtype=torch.bool)
    if not my_turn:
        mask[:] = False
        mask[:, forced] = True
    return mask


def append_text(text: tuple[list[str], ...], words: list[str]) -> tuple[list[str], ...]:
    """Every seat's per-episode transcript with ``words[e]`` appended to episode e (what both seats see)."""
    return tuple([x + w for x, w in zip(texts, words)] for texts in text)


def advance(state: GameState, actions: torch.Tensor, extra: dict[str, Any], horizon: int) -> tuple[GameState, torch.Tensor]:
    """The state after one step: t + 1, the joint actions in the history, done once ``horizon`` steps are taken."""
    done = torch.full((state.n_episodes,), state.t + 1 >= horizon, dtype=torch.bool)
    return GameState(state.n_episodes, t=state.t + 1, done=done, history=state.history + [actions.clone()],
                     extra=extra), done
