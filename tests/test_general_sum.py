"""Zero-sum and general-sum games: the ``matrix`` game with one payoff table per seat (``payoffs: [R0, R1]``),
the iterated prisoner's dilemma as a ``repeated`` game with such a stage, and its classic scripted partners.
Common-payoff games stay exactly as they were (digest of params, rules, observations and rewards)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from adhoc._torch import torch
from adhoc.config import ConfigError, load_config
from adhoc.errors import GameError, UserError
from adhoc.games import make_game
from adhoc.games.core import payoff_kind
from adhoc.scripted import load_scripted_population, scripted_strategies

CONFIGS = Path(__file__).parent.parent / "configs"

# [seat 0's table, seat 1's table], each indexed [seat 0's action][seat 1's action]; actions C, D (or H, T)
PD = [[[3, 0], [5, 1]], [[3, 5], [0, 1]]]  # R=3, S=0, T=5, P=1
STAG_HUNT = [[[4, 0], [3, 3]], [[4, 3], [0, 3]]]  # actions Stag, Hare
CHICKEN = [[[0, -1], [1, -10]], [[0, 1], [-1, -10]]]  # actions Swerve, Straight
PENNIES = [[[1, -1], [-1, 1]], [[-1, 1], [1, -1]]]  # actions H, T; seat 0 wins on a match


def pd(**kw):
    return make_game("matrix", payoffs=PD, actions=["C", "D"], description="Prisoner's dilemma.", **kw)


def ipd(rounds=4, actions=("C", "D")):
    return make_game("repeated", stage="matrix", rounds=rounds,
                     stage_params={"payoffs": PD, "actions": list(actions), "description": "Prisoner's dilemma."})


def play(game, joint):
    """Step one episode through the joint actions [(a0, a1), ...]; the per-step rewards [T, 2]."""
    state = game.reset(1, np.random.default_rng(0))
    rewards = []
    for a in joint:
        state, r, _ = game.step(state, torch.tensor([list(a)]))
        rewards.append(r[0])
    return torch.stack(rewards), state


def one_line(exc_info):
    text = str(exc_info.value)
    assert text and "\n" not in text, text
    return text


# ---------------------------------------------------------------------------------------------- matrix
def test_prisoners_dilemma_pays_each_seat_its_own_table():
    game = pd()
    assert game.payoff == payoff_kind(game) == "general_sum"
    state = game.reset(4, np.random.default_rng(0))
    _, reward, done = game.step(state, torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]]))  # CC, CD, DC, DD
    assert reward.dtype == torch.float32 and reward.shape == (4, 2) and done.all()
    assert reward.tolist() == [[3, 3], [0, 5], [5, 0], [1, 1]]
    np.testing.assert_array_equal(game.payoff_matrices(), np.array(PD, dtype=np.float64))
    with pytest.raises(GameError) as exc:
        game.payoff_matrix()  # no single matrix
    assert "general_sum" in one_line(exc)


def test_a_finished_episode_pays_both_seats_zero():
    game = pd()
    state = game.reset(2, np.random.default_rng(0))
    state.done = torch.tensor([False, True])
    _, reward, _ = game.step(state, torch.tensor([[1, 0], [1, 0]]))
    assert reward.tolist() == [[5, 0], [0, 0]]


def test_params_round_trip_and_record_the_kind():
    game = pd()
    params = game.params()
    assert params["payoffs"] == [[[3.0, 0.0], [5.0, 1.0]], [[3.0, 5.0], [0.0, 1.0]]]
    assert params["kind"] == "general_sum" and "payoff" not in params
    again = make_game("matrix", **params)
    assert again.params() == params and again.payoff == "general_sum"


def test_matching_pennies_is_zero_sum_inferred_or_declared():
    inferred = make_game("matrix", payoffs=PENNIES, actions=["H", "T"])
    declared = make_game("matrix", payoffs=PENNIES, actions=["H", "T"], kind="zero_sum", symmetries=[[1, 0]])
    assert inferred.payoff == declared.payoff == "zero_sum"
    state = inferred.reset(4, np.random.default_rng(0))
    _, reward, _ = inferred.step(state, torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]]))
    assert reward.tolist() == [[1, -1], [-1, 1], [-1, 1], [1, -1]]
    assert (reward.sum(1) == 0).all()
    # declared general_sum stays general_sum (a zero-sum game is a general-sum one too)
    assert make_game("matrix", payoffs=PENNIES, kind="general_sum").payoff == "general_sum"


@pytest.mark.parametrize("tables,actions,joint,expected", [
    (STAG_HUNT, ["Stag", "Hare"], [[0, 0], [0, 1], [1, 0], [1, 1]], [[4, 4], [0, 3], [3, 0], [3, 3]]),
    (CHICKEN, ["Swerve", "Straight"], [[0, 0], [0, 1], [1, 0], [1, 1]], [[0, 0], [-1, 1], [1, -1], [-10, -10]]),
])
def test_stag_hunt_and_chicken(tables, actions, joint, expected):
    game = make_game("matrix", payoffs=tables, actions=actions)
    assert game.payoff == "general_sum"
    _, reward, _ = game.step(game.reset(4, np.random.default_rng(0)), torch.tensor(joint))
    assert reward.tolist() == expected


@pytest.mark.parametrize("params,message", [
    ({"payoffs": [[[1, 0], [0, 1]], [[1, 0, 0], [0, 1, 0]]]}, "game.payoffs: the two tables differ in shape"),
    ({"payoffs": [[[1, 0]], [[0, 1]]], "actions": ["C", "D", "E"]}, "game.actions: seat 0 has 3 names for 1 actions"),
    ({"payoffs": PD, "kind": "zero_sum"}, r"game.kind=zero_sum but game.payoffs\[0\] \+ game.payoffs\[1\] is not 0"),
    ({"payoff": [[1, 0], [0, 1]], "payoffs": PD}, "game.payoff and game.payoffs are alternatives"),
    ({"payoffs": [*PD, PD[0]]}, r"game.payoffs must be two tables \[R0, R1\].*got 3 tables"),
    ({"payoffs": [PD[0]]}, "game.payoffs must be two tables.*got 1 tables"),
    ({"payoffs": PD, "kind": "common"}, "game.kind must be one of general_sum, zero_sum with game.payoffs"),
    ({"payoff": [[1, 0], [0, 1]], "kind": "zero_sum"}, "game.kind=zero_sum needs game.payoffs"),
    ({"payoffs": [[[1, 0], [0, 1]], [[1, "x"], [0, 1]]]}, r"game.payoffs"),
    ({"payoffs": [[[1, 0], [0, 1]], [[1, 0], [0, float("nan")]]]}, r"game.payoffs\[1\] holds NaN"),
    ({}, "game.payoff is required"),
])
def test_refusals_are_one_line(params, message):
    with pytest.raises(GameError, match=message) as exc:
        make_game("matrix", **params)
    one_line(exc)


def test_a_symmetry_must_preserve_both_tables():
    # swapping C and D for both seats preserves neither PD table; a table pair where only seat 0's is preserved
    with pytest.raises(GameError, match=r"does not preserve seat 0's payoff table") as exc:
        pd(symmetries=[[1, 0]])
    one_line(exc)
    with pytest.raises(GameError, match=r"does not preserve seat 1's payoff table \(game.payoffs\[1\]\)"):
        make_game("matrix", payoffs=[[[1, 0], [0, 1]], [[2, 0], [0, 1]]], symmetries=[[1, 0]])
    assert make_game("matrix", payoffs=[[[1, 0], [0, 1]], [[2, 0], [0, 2]]], symmetries=[[1, 0]]) \
        .symmetries().order() == 2


def test_config_level_refusal_is_one_config_error_line():
    with pytest.raises(ConfigError, match="game.stage_params.kind=zero_sum") as exc:
        load_config(CONFIGS / "ipd-selfplay.yaml", ["game.stage_params.kind=zero_sum"])
    one_line(exc)
    config = load_config(CONFIGS / "ipd-selfplay.yaml")
    assert config.game.stage == "matrix" and config.game.stage_params["payoffs"] == PD


# ---------------------------------------------------------------------------------------------- rules
def test_rules_show_both_payoffs_from_each_seat():
    game = pd()
    text = game.rules(0)
    assert "same reward" not in text and "each of you gets your own reward" in text
    assert text.splitlines()[1:] == [
        "Your actions: C, D.",
        "Rewards (rows: your action; columns: your partner's; each entry: you get X, your partner gets Y):",
        "            C         D",
        "C    3.0, 3.0  0.0, 5.0",
        "D    5.0, 0.0  1.0, 1.0",
        "One move: you both choose once, then the game is over."]
    asym = make_game("matrix", payoffs=[[[1, 2], [3, 4]], [[5, 6], [7, 8]]], actions=[["x", "y"], ["p", "q"]])
    assert asym.rules(1).splitlines()[3:6] == ["            x         y",  # seat 1: rows are its own actions
                                               "p    5.0, 1.0  7.0, 3.0",
                                               "q    6.0, 2.0  8.0, 4.0"]
    pennies = make_game("matrix", payoffs=PENNIES, actions=["H", "T"]).rules(0)
    assert "zero-sum" in pennies and "H    1.0, -1.0" in pennies
    big = make_game("matrix", payoffs=[np.eye(8).tolist(), (-np.eye(8)).tolist()]).rules(1)
    assert "you a0 and partner a0: you get -1.0, your partner gets 1.0" in big
    for text in (game.rules(1), ipd().rules(0), ipd().rules(1)):
        assert text.isascii() and len(text.splitlines()) <= 8 and "same reward" not in text
    assert "Each round pays each of you your own reward divided by 4" in ipd().rules(1)


# ---------------------------------------------------------------------------------------------- repeated
def test_iterated_prisoners_dilemma_pays_each_seat_per_round_over_k():
    game = ipd(rounds=4)
    assert game.payoff == "general_sum" and game.params()["stage_params"]["kind"] == "general_sum"
    joint = [(0, 0), (0, 1), (1, 0), (1, 1)]
    rewards, state = play(game, joint)
    assert rewards.shape == (4, 2) and rewards.dtype == torch.float32
    stage = np.array(PD, dtype=np.float32)
    for k, (a, b) in enumerate(joint):
        assert rewards[k].tolist() == [stage[0, a, b] / 4, stage[1, a, b] / 4]
    assert rewards.sum(0).tolist() == [(3 + 0 + 5 + 1) / 4, (3 + 5 + 0 + 1) / 4]
    np.testing.assert_array_equal(game.episode_payoffs(rewards.numpy()), [[3, 3], [0, 5], [5, 0], [1, 1]])
    np.testing.assert_array_equal(game.episode_seat_payoffs(rewards), [[3, 3], [0, 5], [5, 0], [1, 1]])
    assert game.show(state, 1)[0].splitlines()[1] == ("Round 2: you chose D, your partner chose C (you get 5.0, your "
                                                      "partner 0.0).")


def test_transcripts_are_those_of_the_common_payoff_game():
    general, common = ipd(rounds=3), make_game("repeated", stage="matrix", rounds=3, stage_params={
        "payoff": PD[0], "actions": ["C", "D"], "description": "Prisoner's dilemma."})
    joint = [(1, 0), (0, 1)]
    (_, a), (_, b) = play(general, joint), play(common, joint)
    for seat in (0, 1):
        assert general.observe(a, seat) == common.observe(b, seat)
    assert general.observe(a, 1) == [("Prisoner's dilemma. You are player 2 of 2. Choose an action. 3 rounds with the "
                                      "same partner. Round 1: you C partner D. Round 2: you D partner C. Round 3:")]


def test_episode_seat_payoffs_of_a_common_payoff_game():
    lever = make_game("repeated", stage="lever", rounds=2)
    assert lever.payoff == "common"
    rewards = np.array([[0.5, 0.25], [0.0, 0.45]])  # [E, K]
    np.testing.assert_array_equal(lever.episode_payoffs(rewards), rewards * 2)  # unchanged
    seats = lever.episode_seat_payoffs(rewards)
    assert seats.shape == (2, 2, 2) and (seats[..., 0] == rewards * 2).all() and (seats[..., 1] == rewards * 2).all()
    assert lever.episode_seat_payoffs(torch.tensor(rewards)).shape == (2, 2, 2)


# ---------------------------------------------------------------------------------------------- scripted
def run_scripted(game, name, seat, partner):
    """The actions (names) strategy ``name`` plays in ``seat`` against the partner's sequence ``partner``."""
    strategy = load_scripted_population(f"scripted:repeated:{name}", game).strategies[0]
    assert seat in strategy.seats
    names, other = game.action_names(seat), game.action_names(1 - seat)
    state, played = game.reset(1, np.random.default_rng(0)), []
    for b in partner:
        logp = strategy.log_probs(game, state, seat)
        assert logp.shape == (1, 2) and (logp == 0).sum() == 1 and torch.isinf(logp).sum() == 1
        a = int(logp.argmax(1))
        played.append(names[a])
        joint = [a, other.index(b)] if seat == 0 else [other.index(b), a]
        state, _, _ = game.step(state, torch.tensor([joint]))
    return "".join(played)


@pytest.mark.parametrize("seat", [0, 1])
@pytest.mark.parametrize("actions", [("C", "D"), ("D", "C")])  # cooperate and defect found by name
@pytest.mark.parametrize("name,partner,expected", [
    ("always-cooperate", "DDCD", "CCCC"),
    ("always-defect", "CCDC", "DDDD"),
    ("tit-for-tat", "DCDC", "CDCD"),
    ("tit-for-tat", "CCCD", "CCCC"),
    ("grim", "CDCC", "CCDD"),
    ("grim", "CCCD", "CCCC"),
    ("grim", "DCCC", "CDDD"),
])
def test_dilemma_strategies_against_a_written_partner(name, partner, expected, seat, actions):
    assert run_scripted(ipd(rounds=4, actions=actions), name, seat, partner) == expected


def test_dilemma_strategies_are_offered_only_on_a_c_d_stage():
    names = set(scripted_strategies(ipd()))
    assert {"always-cooperate", "always-defect", "tit-for-tat", "grim", "stubborn-C", "stubborn-D"} == names
    assert "tit-for-tat" in ipd().scripted_pattern
    lever = make_game("repeated", stage="lever", rounds=2, stage_params={"n_levers": 3})
    assert set(scripted_strategies(lever)) == {"stubborn-0", "stubborn-1", "stubborn-2"}
    assert "tit-for-tat" not in lever.scripted_pattern
    for name in ("tit-for-tat", "grim", "always-cooperate", "always-defect"):
        with pytest.raises(UserError, match=f"scripted strategy '{name}' needs a stage game whose actions are C "
                                            r"\(cooperate\) and D \(defect\)") as exc:
            load_scripted_population(f"scripted:repeated:{name}", lever)
        one_line(exc)
    assert lever.scripted_strategy("copy-1") is not None and lever.scripted_strategy("nothing") is None


# ---------------------------------------------------------------------------------------------- unchanged
COMMON = [  # common-payoff games: what they were before per-seat payoffs existed
    ("matrix", {"payoff": [[1, 0, 0], [0, 2, 0], [0, 0, 3.5]], "actions": [["x", "y", "z"], ["p", "q", "r"]],
                "description": "Pick a colour."}),
    ("matrix", {"payoff": [[1, 0], [0, 1]], "symmetries": [[1, 0]]}),
    ("matrix", {"payoff": np.arange(64).reshape(8, 8).tolist()}),
    ("lever", {}), ("cmg-s", {}),
    ("repeated", {"stage": "lever", "rounds": 4}),
    ("repeated", {"stage": "matrix", "rounds": 3, "stage_params": {"payoff": [[1, 0], [0, 2]], "actions": ["C", "D"]}}),
    ("repeated", {"stage": "cmg", "rounds": 2, "transcript": "padded"}),
]
# sha256 of common_record() for COMMON, computed with the code of commit 9670d8a (before per-seat tables)
COMMON_DIGEST = "7ae19c57ba1bbd4a5b335c57943059f23267de202f0f8c76c6ef3e2e809485f2"


def common_record(name, params):
    game = make_game(name, **params)
    rng = np.random.default_rng(0)
    state = game.reset(5, rng)
    record = {"params": game.params(), "rules": [game.rules(s) for s in (0, 1)], "steps": []}
    for _ in range(game.horizon):
        actions = torch.stack([torch.from_numpy(rng.integers(0, len(game.action_names(s)), 5)) for s in (0, 1)], 1)
        observed = [game.observe(state, s) for s in (0, 1)]
        state, reward, done = game.step(state, actions)
        record["steps"].append({"observe": observed, "reward": [str(reward.dtype), list(reward.shape), reward.tolist()],
                                "done": done.tolist(), "show": [game.show(state, s) for s in (0, 1)]})
    return record


def test_common_payoff_games_are_unchanged():
    records = [common_record(name, params) for name, params in COMMON]
    digest = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()
    assert digest == COMMON_DIGEST
    for name, params in COMMON:
        game = make_game(name, **params)
        assert payoff_kind(game) == "common"
        assert all("same reward" in game.rules(s) for s in (0, 1))
        if hasattr(game, "payoff_matrix"):
            both = game.payoff_matrices()
            assert both.shape == (2, *game.payoff_matrix().shape)
            assert (both[0] == game.payoff_matrix()).all() and (both[1] == game.payoff_matrix()).all()


def test_shipped_ipd_config_builds_the_iterated_prisoners_dilemma():
    config = load_config(CONFIGS / "ipd-selfplay.yaml")
    game = make_game(config.game.name, **{k: v for k, v in vars(config.game).items() if k != "name"})
    assert game.payoff == "general_sum" and game.action_names(0) == ["C", "D"] and game.rounds == 4
    np.testing.assert_array_equal(game.payoff_matrices(), np.array(PD, dtype=np.float64))
