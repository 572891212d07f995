"""PettingZoo views of any adhoc ``Game``, one episode at a time: a ``ParallelEnv`` and an ``AECEnv``.

PettingZoo (Terry et al., NeurIPS 2021) is the common multi-agent API; these adapters let outside RL code
play the games (Other-Play's lever game, LIPO's CMG, user matrix games, multi-step games) without adhoc's
batched protocol. Agents are "player_0" and "player_1"; observations are the seat's text observation
(gymnasium ``Text``), actions are indices into ``action_names(agent)``, and ``infos[agent]["action_mask"]``
(int8) marks the legal ones.

``to_parallel_env`` asks both seats at every step. ``to_aec_env`` (agent-environment cycle) asks only the seat
to move, for turn-based games (warehouse, preference, corrective): the seat with more than one legal action;
the other seat plays its single (forced, ignored) legal action by itself. Where both seats have a choice (a
simultaneous step), player_0 is asked first and its action held until player_1's is in; where neither has,
the adapter plays the step itself. Each game step's common payoff goes to both agents (PettingZoo's
``_cumulative_rewards`` sums it until an agent's next turn).

Illegal actions: an index outside the action space is a caller bug (ValueError); a legal index that the
game's mask forbids ends the episode for both agents with reward 0 and ``infos[agent]["illegal_action"]``.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium.spaces import Discrete, Text
from pettingzoo import AECEnv, ParallelEnv

from adhoc.games.core import SEATS, Game, seat_rewards

AGENTS = [f"player_{s}" for s in SEATS]


class _EpisodeAdapter:
    """What both adapters share: the spaces, one episode's state and its legal masks, observations, infos and
    playing one joint action."""

    metadata: dict[str, Any]

    def __init__(self, game: Game, seed: int | None = None, render_mode: str | None = None,
                 max_obs_length: int = 4096) -> None:
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi' (got {render_mode!r})")
        self.game, self.render_mode = game, render_mode
        self.metadata = {**type(self).metadata, "name": f"adhoc_{game.name}_v0"}
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        # Built once: PettingZoo requires the same space object on every call (space seeding relies on it).
        self.action_spaces = {a: Discrete(len(game.action_names(s))) for a, s in zip(AGENTS, SEATS)}
        self.observation_spaces = {a: Text(max_length=max_obs_length, charset=string.printable) for a in AGENTS}
        self._rng = np.random.default_rng(seed)
        self._state = None
        self._masks: list[np.ndarray] = []  # per seat, [A_s] bool: the legal actions of the current state

    def observation_space(self, agent: str) -> Text:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> Discrete:
        return self.action_spaces[agent]

    def action_names(self, agent: str) -> list[str]:
        """What each action index means (the game's action strings)."""
        return list(self.game.action_names(AGENTS.index(agent)))

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._state is None:
            return None
        moves = [[self.game.action_names(s)[int(a)] for s, a in zip(SEATS, joint[0])] for joint in self._state.history]
        return f"{self.game.name} t={self._state.t} history={moves}"

    def close(self) -> None:
        self._state = None

    def _start(self, seed: int | None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            for i, agent in enumerate(AGENTS):
                self.action_spaces[agent].seed(seed + i)
        self._set_state(self.game.reset(1, self._rng))

    def _set_state(self, state) -> None:
        self._state = state
        self._masks = [self.game.legal_mask(state, s)[0].numpy().astype(bool) for s in SEATS]

    def _checked_action(self, agent: str, a: Any) -> int:
        if not self.action_spaces[agent].contains(a):
            raise ValueError(f"action {a!r} of {agent} is outside {self.action_spaces[agent]}")
        return int(a)

    def _play(self, joint: list[int]) -> tuple[list[float], bool, bool, list[str]]:
        """One game step with ``joint`` (an action per seat) → (each seat's reward, done, truncated, agents that
        played an illegal action). An illegal action ends the episode with reward 0 and leaves the state as it
        was. A common payoff is both seats' reward."""
        illegal = [agent for agent, s, a in zip(AGENTS, SEATS, joint) if not self._masks[s][a]]
        if illegal:
            return [0.0, 0.0], True, False, illegal
        state, r, d = self.game.step(self._state, torch.tensor([joint], dtype=torch.long))
        self._set_state(state)
        done = bool(d[0])
        return seat_rewards(r)[0].tolist(), done, not done and state.t >= self.game.horizon, []

    def _observe_seat(self, agent: str) -> str:
        text = self.game.observe(self._state, AGENTS.index(agent))[0]
        if not self.observation_spaces[agent].contains(text):
            raise ValueError(f"{self.game.name} observation of {agent} is empty, longer than "
                             f"{self.observation_spaces[agent].max_length} or not printable ASCII: {text[:80]!r}")
        return text

    def _infos(self, illegal: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
        infos = {agent: {"action_mask": mask.astype(np.int8)} for agent, mask in zip(AGENTS, self._masks)}
        for agent in illegal:
            infos[agent]["illegal_action"] = True
        return infos


class ParallelEnvAdapter(_EpisodeAdapter, ParallelEnv):
    """One episode of ``game`` as a PettingZoo parallel environment."""

    metadata = {"name": "adhoc_game_v0", "is_parallelizable": True, "render_modes": ["ansi"]}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        self._start(seed)
        self.agents = list(AGENTS)
        return self._observe(), self._infos()

    def step(self, actions: dict[str, int]) -> tuple[dict[str, str], dict[str, float], dict[str, bool],
                                                     dict[str, bool], dict[str, dict[str, Any]]]:
        if not self.agents:
            raise RuntimeError("the episode is over: call reset() first")
        joint = []
        for agent in self.agents:
            if agent not in actions:
                raise ValueError(f"no action for live agent {agent}")
            joint.append(self._checked_action(agent, actions[agent]))
        reward, done, truncated, illegal = self._play(joint)
        agents = list(self.agents)
        if done or truncated:
            self.agents = []
        return (self._observe(), {a: reward[AGENTS.index(a)] for a in agents}, {a: done for a in agents},
                {a: truncated for a in agents}, self._infos(illegal))

    def _observe(self) -> dict[str, str]:
        return {agent: self._observe_seat(agent) for agent in AGENTS}


class AECEnvAdapter(_EpisodeAdapter, AECEnv):
    """One episode of ``game`` as a PettingZoo AEC environment: only the seat to move is asked (see the
    module docstring)."""

    # Not parallelizable: in a turn-based game an agent may move several times in a row.
    metadata = {"name": "adhoc_game_v0", "is_parallelizable": False, "render_modes": ["ansi"]}

    def __init__(self, game: Game, seed: int | None = None, render_mode: str | None = None,
                 max_obs_length: int = 4096) -> None:
        super().__init__(game, seed=seed, render_mode=render_mode, max_obs_length=max_obs_length)
        self.rewards: dict[str, float] = {}
        self._cumulative_rewards: dict[str, float] = {}
        self.terminations: dict[str, bool] = {}
        self.truncations: dict[str, bool] = {}
        self.infos: dict[str, dict[str, Any]] = {}
        self.agent_selection = AGENTS[0]
        self._held: dict[str, int] = {}  # actions given in the current simultaneous step

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self._start(seed)
        self.agents = list(AGENTS)
        self._cumulative_rewards = {a: 0.0 for a in AGENTS}
        self._skip_agent_selection = None
        self._held = {}
        self._settle([0.0, 0.0], False, False)

    def observe(self, agent: str) -> str:
        return self._observe_seat(agent)

    def step(self, action: int | None) -> None:
        if not self.agents:
            raise RuntimeError("the episode is over: call reset() first")
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        a = self._checked_action(agent, action)
        self._cumulative_rewards[agent] = 0.0
        self._held[agent] = a
        waiting = [m for m in self._movers() if m not in self._held]
        if waiting and self._masks[AGENTS.index(agent)][a]:  # the other seat's action is still to come
            self.agent_selection = waiting[0]
            self._clear_rewards()
            return
        joint = [self._held.get(agent, self._forced(s)) for agent, s in zip(AGENTS, SEATS)]
        self._held = {}
        self._settle(*self._play(joint))

    def _movers(self) -> list[str]:
        """The agents with a choice now (more than one legal action)."""
        return [agent for agent, mask in zip(AGENTS, self._masks) if mask.sum() > 1]

    def _forced(self, seat: int) -> int:
        return int(np.argmax(self._masks[seat]))

    def _settle(self, reward: list[float], done: bool, truncated: bool, illegal: Sequence[str] = ()) -> None:
        """After a game step (or the reset): play the steps where no seat has a choice, then pay both agents,
        set the flags and infos and select the next agent to move."""
        while not (done or truncated or illegal) and not self._movers():
            r, done, truncated, illegal = self._play([self._forced(s) for s in SEATS])
            reward = [x + y for x, y in zip(reward, r)]
        done = done or bool(illegal)
        self.rewards = {a: reward[AGENTS.index(a)] for a in self.agents}
        self._accumulate_rewards()
        self.terminations = {a: done for a in self.agents}
        self.truncations = {a: truncated for a in self.agents}
        self.infos = self._infos(illegal)
        movers = self._movers()
        self.agent_selection = AGENTS[0] if done or truncated else movers[0]


def to_parallel_env(game: Game, seed: int | None = None) -> ParallelEnvAdapter:
    """``game`` as a PettingZoo ParallelEnv (one episode at a time)."""
    return ParallelEnvAdapter(game, seed=seed)


def to_aec_env(game: Game, seed: int | None = None) -> AECEnvAdapter:
    """``game`` as a PettingZoo AECEnv (one episode at a time; only the seat to move is asked)."""
    return AECEnvAdapter(game, seed=seed)
