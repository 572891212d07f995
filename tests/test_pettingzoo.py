"""The PettingZoo adapters. ParallelEnv: the official API test on every registered kind of game, episode
semantics (rewards, termination vs truncation at the horizon, illegal actions) and a multi-step game. AECEnv:
the official API test on the turn-based and simultaneous games, an episode played through it against the
batched game stepped directly, steps no seat has a choice in, and illegal actions."""

import numpy as np
import pytest
import torch
from pettingzoo.test import api_test, parallel_api_test

from adhoc.games import GameState, make_game
from adhoc.games.pettingzoo import AECEnvAdapter, ParallelEnvAdapter, to_aec_env, to_parallel_env


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
    "prisoners-dilemma": lambda: make_game("matrix", payoffs=[[[3, 0], [5, 1]], [[3, 5], [0, 1]]], actions=["C", "D"]),
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


# ---------------------------------------------------------------- the AEC adapter
TURN_BASED = {
    "warehouse": lambda: make_game("warehouse", moves=2, episodes=2),
    "preference": lambda: make_game("preference", rounds=3),
    "corrective": lambda: make_game("corrective", digits=1, attempts=2, credit="digits"),
}
AEC_GAMES = {**TURN_BASED, "lever": GAMES["lever"], "matrix": GAMES["matrix"], "repeated": GAMES["repeated"]}


@pytest.mark.usefixtures("text_observations")
@pytest.mark.filterwarnings("ignore:Observation")  # api_test's advice to use NumPy observations and spaces
@pytest.mark.parametrize("name", list(AEC_GAMES))
def test_aec_api(name):
    game = AEC_GAMES[name]()
    env = to_aec_env(game, seed=0)
    api_test(env, num_cycles=30)
    assert env.metadata["name"] == f"adhoc_{game.name}_v0" and not env.metadata["is_parallelizable"]
    for seat, agent in enumerate(env.possible_agents):
        assert env.action_space(agent).n == len(game.action_names(seat))
        assert env.action_names(agent) == game.action_names(seat)


def direct_episode(game, seed):
    """A fixed action sequence played on the batched game: per step (the seat to move, its action, the
    joint actions, both seats' observations before the step, the reward)."""
    state, steps = game.reset(1, np.random.default_rng(seed)), []
    while not bool(state.done[0]):
        masks = [game.legal_mask(state, s)[0] for s in (0, 1)]
        movers = [s for s in (0, 1) if masks[s].sum() > 1]
        assert len(movers) == 1  # turn-based
        joint = [int(m.int().argmax()) for m in masks]
        legal = masks[movers[0]].nonzero().flatten().tolist()
        joint[movers[0]] = legal[(3 * state.t + 1) % len(legal)]
        obs = [game.observe(state, s)[0] for s in (0, 1)]
        state, r, _ = game.step(state, torch.tensor([joint]))
        steps.append((movers[0], joint[movers[0]], joint, obs, float(r[0])))
    return steps, [game.observe(state, s)[0] for s in (0, 1)]


@pytest.mark.parametrize("name", list(TURN_BASED))
def test_aec_episode_matches_the_batched_game(name):
    game = TURN_BASED[name]()
    for seed in range(20):  # the first episode that pays something, so that the reward accounting is tested
        steps, final_obs = direct_episode(game, seed)
        if sum(s[4] for s in steps) > 0:
            break
    env = AECEnvAdapter(game, render_mode="ansi")
    env.reset(seed=seed)
    for seat, action, joint, obs, reward in steps:
        agent = f"player_{seat}"
        assert env.agent_selection == agent and not env.terminations[agent]
        assert [env.observe(a) for a in env.possible_agents] == obs
        assert env.infos[agent]["action_mask"].sum() > 1 and env.infos[f"player_{1 - seat}"]["action_mask"].sum() == 1
        env.step(action)
        assert env.rewards == {"player_0": reward, "player_1": reward}
    assert [env.observe(a) for a in env.possible_agents] == final_obs
    assert env.terminations == {"player_0": True, "player_1": True} and not any(env.truncations.values())
    moves = [[game.action_names(s)[a] for s, a in enumerate(joint)] for _, _, joint, _, _ in steps]
    assert f"t={len(steps)} history={moves}" in env.render()
    for agent in env.agent_iter():  # the dead steps: each agent collects what it was paid since its last turn
        _, cumulative, term, _, _ = env.last()
        last_turn = max(i for i, (seat, *_) in enumerate(steps) if f"player_{seat}" == agent)
        assert term and cumulative == pytest.approx(sum(s[4] for s in steps[last_turn:]))
        env.step(None)
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def play(env, *actions):
    for action in actions:
        env.step(action)


def test_aec_simultaneous_step_and_illegal_actions():
    env = to_aec_env(make_game("lever"))
    env.reset(seed=0)
    assert env.agent_selection == "player_0"
    env.step(0)  # held until player_1's action is in
    assert env.agent_selection == "player_1" and env.rewards == {"player_0": 0.0, "player_1": 0.0}
    env.step(np.int64(0))
    assert env.rewards == {"player_0": pytest.approx(0.9), "player_1": pytest.approx(0.9)}
    assert all(env.terminations.values()) and env.agent_selection == "player_0"
    with pytest.raises(ValueError, match="only valid action is None"):
        env.step(0)

    env = to_aec_env(make_game("corrective", digits=1, attempts=2))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside"):
        env.step(10)
    with pytest.raises(ValueError, match="outside"):
        env.step(None)
    assert env.agent_selection == "player_0" and env._state.t == 0  # a rejected step changes nothing

    env = to_aec_env(Repeated(horizon=3, stop_at=3))
    env.reset()
    play(env, 1, 2, 1)  # player_0 repeats: illegal, the episode ends before player_1 is asked
    assert env.rewards == {"player_0": 0.0, "player_1": 0.0} and all(env.terminations.values())
    assert env.infos["player_0"]["illegal_action"] and "illegal_action" not in env.infos["player_1"]
    for _ in env.agent_iter():
        env.step(None)
    assert env.agents == []
    env.reset()
    play(env, 1, 2, 0, 2)  # now player_1 repeats
    assert env.infos["player_1"]["illegal_action"] and "illegal_action" not in env.infos["player_0"]
    assert all(env.terminations.values()) and env._state.t == 1


class Pause(Repeated):
    """``Repeated`` where at step 1 neither seat has a choice (both must pull lever 0)."""

    def legal_mask(self, state, seat):
        mask = super().legal_mask(state, seat)
        if state.t == 1:
            mask[:] = False
            mask[:, 0] = True
        return mask


def test_aec_plays_steps_without_a_choice_and_truncates():
    env = to_aec_env(Pause(horizon=3, stop_at=99))
    env.reset(seed=0)
    play(env, 1, 1)  # step 0 pays 1, then the adapter plays step 1 (0, 0) itself: 0.9 more
    assert env.rewards["player_0"] == pytest.approx(1.9) and env._state.t == 2 and env.agent_selection == "player_0"
    assert env.last()[1] == pytest.approx(1.9)
    play(env, 2, 2)
    assert env.truncations == {"player_0": True, "player_1": True} and not any(env.terminations.values())


def test_each_agent_gets_its_own_reward_in_a_general_sum_game():
    game = make_game("matrix", payoffs=[[[3, 0], [5, 1]], [[3, 5], [0, 1]]], actions=["C", "D"])
    env = to_parallel_env(game, seed=0)
    env.reset(seed=0)
    _, rewards, *_ = env.step({"player_0": 0, "player_1": 1})  # C against D: 0 and 5
    assert rewards == {"player_0": 0.0, "player_1": 5.0}
    aec = to_aec_env(game, seed=0)
    aec.reset(seed=0)
    aec.step(1)  # player_0 defects
    aec.step(0)  # player_1 cooperates: 5 and 0
    assert aec.rewards == {"player_0": 5.0, "player_1": 0.0}
