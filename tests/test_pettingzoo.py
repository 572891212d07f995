"""The PettingZoo ParallelEnv adapter: the official API test on every registered kind of game, episode
semantics (rewards, termination vs truncation at the horizon, illegal actions) and a multi-step game."""

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test

from adhoc.games import GameState, make_game
from adhoc.games.pettingzoo import ParallelEnvAdapter, to_parallel_env


class Repeated:
    """A toy multi-step game: the lever game played ``horizon`` times, where a seat may not repeat its own
    previous action; each seat sees the joint history. ``stop_at`` > horizon never terminates (truncation)."""

    name = "repeated"

    def __init__(self, horizon: int = 3, stop_at: int = 3) -> None:
        self.horizon, self.stop_at, self.inner = horizon, stop_at, make_game("lever", n_levers=3)

    def action_names(self, seat):
        return self.inner.action_names(seat)

    def reset(self, n_episodes, rng):
        return GameState(n_episodes)

    def observe(self, state, seat):
        moves = " ".join(f"{int(a)}{int(b)}" for a, b in (h[0] for h in state.history))
        return [f"You are player {seat + 1} of 2. Round {state.t}. History: {moves or 'none'}."] * state.n_episodes

    def legal_mask(self, state, seat):
        mask = torch.ones(state.n_episodes, 3, dtype=torch.bool)
        if state.history:
            mask[torch.arange(state.n_episodes), state.history[-1][:, seat]] = False
        return mask

    def step(self, state, actions):
        _, reward, _ = self.inner.step(self.inner.reset(state.n_episodes, None), actions)
        done = torch.full((state.n_episodes,), state.t + 1 >= self.stop_at)
        new = GameState(state.n_episodes, t=state.t + 1, done=done, history=state.history + [actions])
        return new, reward * (~state.done), done

    def symmetries(self):
        return None

    def params(self):
        return {"horizon": self.horizon, "stop_at": self.stop_at}


GAMES = {
    "lever": lambda: make_game("lever"),
    "cmg-s": lambda: make_game("cmg-s"),
    "cmg-h": lambda: make_game("cmg-h"),
    "matrix": lambda: make_game("matrix", payoff=[[1, 0, 0], [0, 1, 0], [0, 0, 0.5]],
                                actions=["left", "middle", "right"], description="Meet somewhere."),
    "repeated": lambda: Repeated(),
}


@pytest.mark.parametrize("name", list(GAMES))
def test_parallel_api(name):
    game = GAMES[name]()
    env = to_parallel_env(game)
    parallel_api_test(env, num_cycles=10)
    assert env.metadata["name"] == f"adhoc_{game.name}_v0" and env.metadata["is_parallelizable"]
    for seat, agent in enumerate(env.possible_agents):
        assert env.observation_space(agent) is env.observation_space(agent)
        assert env.action_space(agent).n == len(game.action_names(seat))
        assert env.action_names(agent) == game.action_names(seat)


def test_one_shot_episode():
    env = ParallelEnvAdapter(make_game("lever"), seed=0)
    obs, infos = env.reset(seed=3)
    assert env.agents == ["player_0", "player_1"]
    assert obs["player_1"].endswith("You are player 2 of 2. Choose an action.")
    assert env.observation_space("player_0").contains(obs["player_0"])
    assert infos["player_0"]["action_mask"].tolist() == [1] * 10
    obs, rew, term, trunc, infos = env.step({"player_0": 0, "player_1": np.int64(0)})
    assert rew == {"player_0": pytest.approx(0.9), "player_1": pytest.approx(0.9)}
    assert term == {"player_0": True, "player_1": True} and not any(trunc.values()) and env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"player_0": 0, "player_1": 0})
    env.reset()
    assert env.step({"player_0": 4, "player_1": 5})[1]["player_0"] == 0.0


def test_bad_actions_raise():
    env = to_parallel_env(make_game("cmg-s"))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside"):
        env.step({"player_0": 256, "player_1": 0})
    with pytest.raises(ValueError, match="no action for live agent player_1"):
        env.step({"player_0": 0})
    assert env.agents == ["player_0", "player_1"]  # a rejected step changes nothing


def test_multi_step_termination_truncation_and_illegal_actions():
    env = ParallelEnvAdapter(Repeated(horizon=3, stop_at=3), render_mode="ansi")
    env.reset(seed=0)
    total = 0.0
    for t, (a, b) in enumerate([(1, 1), (2, 2), (1, 1)]):
        obs, rew, term, trunc, infos = env.step({"player_0": a, "player_1": b})
        total += rew["player_0"]
        assert infos["player_0"]["action_mask"][a] == 0  # cannot repeat next round
        assert f"Round {t + 1}." in obs["player_0"]
        assert term["player_0"] == (t == 2) and not trunc["player_0"]
    assert total == 3.0 and env.agents == [] and "history=[['1', '1'], ['2', '2'], ['1', '1']]" in env.render()

    env = to_parallel_env(Repeated(horizon=2, stop_at=99))  # never done: truncated at the horizon
    env.reset()
    env.step({"player_0": 0, "player_1": 1})
    _, _, term, trunc, _ = env.step({"player_0": 1, "player_1": 0})
    assert trunc == {"player_0": True, "player_1": True} and not any(term.values()) and env.agents == []

    env.reset()
    env.step({"player_0": 1, "player_1": 1})
    _, rew, term, _, infos = env.step({"player_0": 1, "player_1": 2})  # player_0 repeats: illegal
    assert rew["player_0"] == 0.0 and all(term.values()) and env.agents == []
    assert infos["player_0"].get("illegal_action") and "illegal_action" not in infos["player_1"]
