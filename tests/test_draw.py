"""What the browser study draws (``Game.draw``, ``adhoc serve``'s ``drawing``): the data of each game on hand-built
states, from the game's own parameters and only what the seat may see (the page's drawing of it:
tests/test_serve.py)."""

import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from adhoc._torch import torch
from adhoc.games import build_game, make_game
from adhoc.play import draw_state

IPD = {"description": "Prisoner's dilemma.", "actions": ["C", "D"],
       "payoffs": [[[3, 0], [5, 1]], [[3, 5], [0, 1]]]}


def played(game, joints: list[list[int]]):
    state = game.reset(1, np.random.default_rng(0))
    for joint in joints:
        state, _, _ = game.step(state, torch.tensor([joint]))
    return state


def drawn(game, state, seat: int):
    """Episode 0's drawing, through JSON as the page receives it."""
    out = game.draw(state, seat)
    assert len(out) == state.n_episodes
    return json.loads(json.dumps(out[0]))


def test_lever_buttons_carry_each_levers_payoff_from_the_parameters():
    game = make_game("lever", n_levers=7, unique_lever=3, unique_payoff=0.5, other_payoff=2)
    state = game.reset(2, np.random.default_rng(0))
    for seat in (0, 1):
        assert drawn(game, state, seat) == {"kind": "lever", "payoffs": ["2.0"] * 3 + ["0.5"] + ["2.0"] * 3}
    assert len(drawn(make_game("lever", n_levers=40), state, 0)["payoffs"]) == 40  # no size limit


def test_a_yaml_matrix_is_its_table_from_each_seats_side():
    game = build_game(OmegaConf.create("name: matrix\npayoff: [[1, 0], [0, 2], [4, 0]]\n"
                                       "actions: [[x, y, z], [p, q]]\ndescription: Pick.\n"))
    state = game.reset(1, np.random.default_rng(0))
    assert drawn(game, state, 0) == {"kind": "matrix", "rows": ["x", "y", "z"], "columns": ["p", "q"],
                                     "you": [["1.0", "0.0"], ["0.0", "2.0"], ["4.0", "0.0"]]}
    assert drawn(game, state, 1) == {"kind": "matrix", "rows": ["p", "q"], "columns": ["x", "y", "z"],
                                     "you": [["1.0", "0.0", "4.0"], ["0.0", "2.0", "0.0"]]}


def test_a_general_sum_matrix_shows_both_payoffs_transposed_for_seat_1():
    game = make_game("matrix", payoffs=[[[3, 0, 1], [5, 1, 2]], [[3, 5, 7], [0, 1, 8]]],
                     actions=[["C", "D"], ["c", "d", "w"]])
    state = game.reset(1, np.random.default_rng(0))
    assert drawn(game, state, 0) == {"kind": "matrix", "rows": ["C", "D"], "columns": ["c", "d", "w"],
                                     "you": [["3.0", "0.0", "1.0"], ["5.0", "1.0", "2.0"]],
                                     "partner": [["3.0", "5.0", "7.0"], ["0.0", "1.0", "8.0"]]}
    assert drawn(game, state, 1) == {"kind": "matrix", "rows": ["c", "d", "w"], "columns": ["C", "D"],
                                     "you": [["3.0", "0.0"], ["5.0", "1.0"], ["7.0", "8.0"]],
                                     "partner": [["3.0", "5.0"], ["0.0", "1.0"], ["1.0", "2.0"]]}


def test_a_large_matrix_draws_no_table():
    state = make_game("cmg", block_sizes=[13]).reset(1, np.random.default_rng(0))
    assert drawn(make_game("cmg", block_sizes=[13]), state, 0) is None
    assert drawn(make_game("cmg", block_sizes=[12]), state, 0)["rows"] == [f"{i:02d}" for i in range(12)]


def test_repeated_lever_history_grows_by_round_from_the_seats_side():
    game = make_game("repeated", stage="lever", rounds=3, stage_params={"n_levers": 7})
    stage = {"kind": "lever", "payoffs": ["0.9"] + ["1.0"] * 6}
    assert drawn(game, played(game, []), 1) == {"kind": "repeated", "rounds": 3, "common": True, "round": 1,
                                                "history": [], "stage": stage}
    two = played(game, [[3, 0], [2, 2]])
    assert drawn(game, two, 1) == {"kind": "repeated", "rounds": 3, "common": True, "round": 3, "stage": stage,
                                   "history": [{"you": "0", "partner": "3", "payoff": "0.0"},
                                               {"you": "2", "partner": "2", "payoff": "1.0"}]}
    assert drawn(game, two, 0)["history"][0] == {"you": "3", "partner": "0", "payoff": "0.0"}
    over = drawn(game, played(game, [[0, 0], [1, 1], [5, 5]]), 0)
    assert over["round"] is None and [h["payoff"] for h in over["history"]] == ["0.9", "1.0", "1.0"]


def test_repeated_prisoners_dilemma_history_pays_each_seat_its_own():
    game = make_game("repeated", stage="matrix", rounds=4, stage_params=IPD)
    d = drawn(game, played(game, [[0, 1], [1, 1]]), 1)  # seat 0 C, seat 1 D; then both D
    assert d["common"] is False and d["round"] == 3
    assert d["history"] == [{"you": "D", "partner": "C", "payoff": "5.0", "partner_payoff": "0.0"},
                            {"you": "D", "partner": "D", "payoff": "1.0", "partner_payoff": "1.0"}]
    assert d["stage"]["you"] == [["3.0", "0.0"], ["5.0", "1.0"]] and d["stage"]["partner"][1] == ["0.0", "1.0"]


def test_warehouse_grid_shows_the_robot_to_both_and_the_goal_to_the_teacher_only():
    game = make_game("warehouse", width=4, height=3, moves=2, episodes=2)
    state = game.reset(1, np.random.default_rng(0))
    state.extra["goal"] = torch.tensor([[3, 2]])
    state.extra["starts"] = torch.tensor([[[1, 0], [0, 2]]])
    state.extra["pos"] = torch.tensor([[1, 0]])
    common = {"kind": "grid", "width": 4, "height": 3, "episodes": 2, "moves": 2}
    assert drawn(game, state, 1) == {**common, "robot": [1, 0], "path": [[1, 0]], "said": None, "episode": 1,
                                     "move": 1, "goal": [3, 2]}
    for joint, said, robot, path, move in (([4, 3], "Right", [1, 0], [[1, 0]], 1),
                                           ([3, 0], None, [2, 0], [[1, 0], [2, 0]], 2),
                                           ([4, 0], "Up", [2, 0], [[1, 0], [2, 0]], 2),
                                           ([1, 0], None, [0, 2], [[0, 2]], 1)):  # down into the wall; episode 2
        state, _, _ = game.step(state, torch.tensor([joint]))
        robot_sees = drawn(game, state, 0)
        assert robot_sees == {**common, "robot": robot, "path": path, "said": said, "episode": 1 + (path == [[0, 2]]),
                              "move": move}  # no goal: the robot's observation never holds it
        assert robot_sees["robot"] == state.extra["pos"][0].tolist()
        assert drawn(game, state, 1) == {**robot_sees, "goal": [3, 2]}


def test_draw_state_is_none_for_a_game_that_draws_nothing():
    class Bare:
        name = "bare"

    assert draw_state(Bare(), None, 0) is None
    game = make_game("lever", n_levers=3)
    assert draw_state(game, game.reset(1, np.random.default_rng(0)), 0)["payoffs"] == ["0.9", "1.0", "1.0"]


@pytest.mark.parametrize("game, partner, seat, kind", [
    ({"name": "repeated", "stage": "lever", "rounds": 2}, "scripted:repeated:stubborn-2", 1, "repeated"),
    ({"name": "warehouse"}, "scripted:warehouse:direct", 0, "grid"),
    ({"name": "preference"}, "scripted:preference:quality", 0, None),
])
def test_the_served_state_carries_the_drawing(tmp_path, game, partner, seat, kind):
    """``Study.view``, what the page receives: ``drawing`` beside the state in words (null: the page draws
    nothing), and a repeated game's history after a move."""
    from adhoc.serve import Study

    study = Study(build_game(game), [partner], tmp_path / "study.sqlite", seat=seat, seed=0)
    try:
        token = study.start("P1", True)
        s = study.view(token)
        assert (s["drawing"] or {}).get("kind") == kind and s["view"]
        json.dumps(s)
        if kind == "repeated":
            study.act(token, s["episode"], s["t"], s["actions"][0]["index"])
            assert study.view(token)["drawing"]["history"] == [{"you": "0", "partner": "2", "payoff": "0.0"}]
    finally:
        study.close()
