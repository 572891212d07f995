"""Scripted strategies: hand-written human proxies (e.g. the teachers of the alignment games) that sit in a
seat wherever a population member can.

A game that ships scripted strategies has ``scripted_strategies() -> {name: strategy}``; a strategy has a
``name``, the ``seats`` it can play, and ``log_probs(game, state, seat) -> [E, A_seat]``, its log-policy
over the game's action labels for every episode of a batched state (it may read hidden state such as θ:
it stands for the human, who knows θ — Hadfield-Menell et al. 2016, CIRL).

In a rollout, scripted strategies are members too: ``Policy(base, bank, scripted=[...])`` gives scripted
strategy j the member id ``bank.n_members + j``, so any ``pairs`` tensor can seat them and ``rollout``,
``episode_returns``, cross-play and the learner's loops work unchanged (scripted rows carry no gradient).

Population specs: ``scripted:<game>`` is every registered strategy of the game, ``scripted:<game>:a,b``
the named ones; a game may also build strategies from parametric names (``scripted_strategy(name)``, None
for a name it does not know), e.g. the warehouse's ``ground-3201`` (a teacher of any label convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from adhoc.errors import UserError

PREFIX = "scripted:"


class ScriptedStrategy(Protocol):
    name: str
    seats: tuple[int, ...]

    def log_probs(self, game: Any, state: Any, seat: int) -> torch.Tensor:
        """log π [E, A_seat] over the game's action labels (-inf = never)."""


@dataclass
class ScriptedPopulation:
    """Named scripted strategies, in order (strategy j gets member id bank size + j in a rollout)."""

    spec: str
    names: list[str]
    strategies: list[Any]

    def __len__(self) -> int:
        return len(self.strategies)


def is_scripted_spec(spec: str) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def scripted_strategies(game: Any) -> dict[str, Any]:
    """Every scripted strategy ``game`` registers ({} for games without any)."""
    registry = getattr(game, "scripted_strategies", None)
    return dict(registry()) if registry is not None else {}


def load_scripted_population(spec: str, game: Any) -> ScriptedPopulation:
    """``scripted:warehouse`` (all of the game's strategies) or ``scripted:warehouse:ground,direct-swap``
    (those, in that order) → a ScriptedPopulation. The spec's game must be ``game`` (one UserError line)."""
    if not is_scripted_spec(spec):
        raise UserError(f"{spec!r} is not a scripted population spec (write scripted:<game>[:name,name])")
    game_name, _, wanted = spec[len(PREFIX):].partition(":")
    if game_name != game.name:
        raise UserError(f"{spec}: scripted strategies of game '{game_name}' cannot play game '{game.name}'")
    available = scripted_strategies(game)
    if not available:
        raise UserError(f"{spec}: game '{game.name}' has no scripted strategies")
    names = [w.strip() for w in wanted.split(",") if w.strip()] if wanted else list(available)
    by_name = getattr(game, "scripted_strategy", lambda name: None)  # parametric names (e.g. a convention)
    for w in names:
        if w not in available and (found := by_name(w)) is not None:
            available[w] = found
    unknown = [w for w in names if w not in available]
    if unknown:
        more = getattr(game, "scripted_pattern", "")  # how the parametric names are written
        raise UserError(f"{spec}: unknown scripted strategy '{unknown[0]}' (allowed: {', '.join(available)}"
                        f"{'; or ' + more if more else ''})")
    if len(set(names)) != len(names):
        raise UserError(f"{spec}: a strategy is named twice")
    return ScriptedPopulation(spec, names, [available[w] for w in names])


def scripted_ids(policy: Any, population: ScriptedPopulation) -> torch.Tensor:
    """Append ``population``'s strategies to ``policy.scripted``; their member ids for ``pairs`` [K]."""
    first = policy.bank.n_members + len(policy.scripted)
    policy.scripted.extend(population.strategies)
    return torch.arange(first, first + len(population))
