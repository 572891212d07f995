"""PettingZoo ``ParallelEnv`` view of any adhoc ``Game``, one episode at a time.

PettingZoo (Terry et al., NeurIPS 2021) is the common multi-agent API; this adapter lets outside RL code
play the games (Other-Play's lever game, LIPO's CMG, user matrix games, multi-step games) without adhoc's
batched protocol. Agents are "player_0" and "player_1"; observations are the seat's text observation
(gymnasium ``Text``), actions are indices into ``action_names(agent)``, and ``infos[agent]["action_mask"]``
(int8) marks the legal ones.

Illegal actions: an index outside the action space is a caller bug (ValueError); a legal index that the
game's mask forbids ends the episode for both agents with reward 0 and ``infos[agent]["illegal_action"]``.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
import torch
from gymnasium.spaces import Discrete, Text
from pettingzoo import ParallelEnv

from adhoc.games.core import SEATS, Game

AGENTS = [f"player_{s}" for s in SEATS]


class ParallelEnvAdapter(ParallelEnv):
    """One episode of ``game`` as a PettingZoo parallel environment."""

    metadata = {"name": "adhoc_game_v0", "is_parallelizable": True, "render_modes": ["ansi"]}

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
        self._last_obs: dict[str, str] = {}

    def observation_space(self, agent: str) -> Text:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> Discrete:
        return self.action_spaces[agent]

    def action_names(self, agent: str) -> list[str]:
        """What each action index means (the game's action strings)."""
        return list(self.game.action_names(AGENTS.index(agent)))

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            for i, agent in enumerate(AGENTS):
                self.action_spaces[agent].seed(seed + i)
        self._state = self.game.reset(1, self._rng)
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
            a = actions[agent]
            if not self.action_spaces[agent].contains(a):
                raise ValueError(f"action {a!r} of {agent} is outside {self.action_spaces[agent]}")
            joint.append(int(a))
        masks = [self.game.legal_mask(self._state, s)[0] for s in SEATS]
        illegal = [agent for agent, s, a in zip(AGENTS, SEATS, joint) if not masks[s][a]]
        if illegal:
            reward, done = 0.0, True
        else:
            self._state, r, d = self.game.step(self._state, torch.tensor([joint], dtype=torch.long))
            reward, done = float(r[0]), bool(d[0])
        truncated = not done and self._state.t >= self.game.horizon
        obs = self._observe()
        infos = self._infos()
        for agent in illegal:
            infos[agent]["illegal_action"] = True
        agents = list(self.agents)
        if done or truncated:
            self.agents = []
        return (obs, {a: reward for a in agents}, {a: done for a in agents}, {a: truncated for a in agents}, infos)

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._state is None:
            return None
        moves = [[self.game.action_names(s)[int(a)] for s, a in zip(SEATS, joint[0])] for joint in self._state.history]
        return f"{self.game.name} t={self._state.t} history={moves}"

    def close(self) -> None:
        self._state = None

    def _observe(self) -> dict[str, str]:
        obs = {}
        for agent, s in zip(AGENTS, SEATS):
            text = self.game.observe(self._state, s)[0]
            if not self.observation_spaces[agent].contains(text):
                raise ValueError(f"{self.game.name} observation of {agent} is empty, longer than "
                                 f"{self.observation_spaces[agent].max_length} or not printable ASCII: {text[:80]!r}")
            obs[agent] = text
        return obs

    def _infos(self) -> dict[str, dict[str, Any]]:
        return {agent: {"action_mask": self.game.legal_mask(self._state, s)[0].numpy().astype(np.int8)}
                for agent, s in zip(AGENTS, SEATS)}


def to_parallel_env(game: Game, seed: int | None = None) -> ParallelEnvAdapter:
    """``game`` as a PettingZoo ParallelEnv (one episode at a time)."""
    return ParallelEnvAdapter(game, seed=seed)
