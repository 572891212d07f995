"""Games: exact payoffs (Hu et al. 2020 lever game, Charakorn et al. 2023 CMG), batched steps, symmetry
groups (orders, invariance, exact uniform sampling), the YAML ``matrix`` game and its errors, the registry."""

import math
import subprocess
import sys
from fractions import Fraction
from itertools import permutations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from adhoc.errors import MissingExtra
from adhoc.games import GAMES, Game, GameError, LeverConfig, build_game, make_game
from adhoc.games.symmetry import PermutationGroup


def _joint(pairs):
    return torch.tensor(pairs, dtype=torch.long)


# ---------------------------------------------------------------------------------------------- payoffs
def test_lever_payoff_and_names():
    game = make_game("lever")
    assert isinstance(game, Game) and game.name == "lever" and game.horizon == 1
    np.testing.assert_array_equal(game.payoff_matrix(), np.diag([0.9] + [1.0] * 9))
    assert game.action_names(0) == game.action_names(1) == [str(i) for i in range(10)]
    assert make_game("lever", n_levers=12).action_names(1) == [f"{i:02d}" for i in range(12)]
    moved = make_game("lever", n_levers=4, unique_lever=2, unique_payoff=0.5, other_payoff=2.0)
    np.testing.assert_array_equal(moved.payoff_matrix(), np.diag([2.0, 2.0, 0.5, 2.0]))
    assert moved.convention_of(3) == 3


@pytest.mark.parametrize("name,sizes", [("cmg-s", [8] * 32), ("cmg-h", list(range(32, 0, -1)))])
def test_cmg_block_structure(name, sizes):
    game = make_game(name)
    m = sum(sizes)
    assert m == {"cmg-s": 256, "cmg-h": 528}[name] and game.n_conventions == 32
    assert game.action_names(0)[0] == "000" and game.action_names(1)[-1] == f"{m - 1:03d}"
    block = np.repeat(np.arange(32), sizes)
    np.testing.assert_array_equal(game.payoff_matrix(), (block[:, None] == block[None, :]).astype(float))
    assert [game.block_of(a) for a in range(m)] == block.tolist()
    assert game.convention_of(m - 1) == 31
    # probability that a uniformly random joint action lands in block c, computed from the matrix
    R = game.payoff_matrix()
    starts = np.cumsum([0] + sizes)
    hit = [Fraction(int(R[starts[c]:starts[c + 1], starts[c]:starts[c + 1]].sum()), m * m) for c in range(32)]
    assert hit == [Fraction(k * k, m * m) for k in sizes]
    if name == "cmg-s":
        assert sum(hit) == Fraction(1, 32) and hit[0] == Fraction(1, 1024)
    else:
        assert math.isclose(float(hit[0]), 3.67e-3, rel_tol=2e-3)
        assert math.isclose(float(hit[-1]), 3.59e-6, rel_tol=2e-3)


def test_cmg_custom_payoffs():
    game = make_game("cmg", block_sizes=[2, 1], block_payoffs=[0.5, 3.0])
    np.testing.assert_array_equal(game.payoff_matrix(), [[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 3.0]])
    assert game.action_names(0) == ["0", "1", "2"]


def test_batched_step_rewards_and_state():
    game = make_game("lever")
    rng = np.random.default_rng(0)
    state = game.reset(4, rng)
    obs = [game.observe(state, s) for s in (0, 1)]
    assert len(obs[0]) == 4 and obs[0][0] != obs[1][0] and "player 1 of 2" in obs[0][0] and "player 2 of 2" in obs[1][0]
    assert all(o.isascii() for o in obs[0] + obs[1])
    mask = game.legal_mask(state, 1)
    assert mask.shape == (4, 10) and mask.dtype == torch.bool and mask.all()
    new, reward, done = game.step(state, _joint([[0, 0], [3, 3], [3, 4], [9, 0]]))
    assert reward.dtype == torch.float32 and reward.tolist() == pytest.approx([0.9, 1.0, 0.0, 0.0])
    assert done.all() and new.done.all() and new.t == 1 and len(new.history) == 1 and state.t == 0
    assert new.history[0].tolist() == [[0, 0], [3, 3], [3, 4], [9, 0]]
    _, again, _ = game.step(new, _joint([[1, 1]] * 4))  # a finished episode pays 0
    assert again.tolist() == [0.0] * 4
    cmg = make_game("cmg-h")
    _, reward, _ = cmg.step(cmg.reset(3, rng), _joint([[0, 31], [0, 32], [527, 527]]))
    assert reward.tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="out of range"):
        game.step(game.reset(1, rng), _joint([[0, 10]]))
    with pytest.raises(ValueError, match=r"\[2, 2\]"):
        game.step(game.reset(2, rng), _joint([[0, 0]]))


# ---------------------------------------------------------------------------------------------- symmetry
def test_group_orders():
    assert make_game("lever").symmetries().order() == math.factorial(9)
    assert make_game("lever", n_levers=4).symmetries().order() == 6
    assert make_game("cmg-s").symmetries().order() == math.factorial(8) ** 32 * math.factorial(32)
    assert make_game("cmg-h").symmetries().order() == math.prod(math.factorial(k) for k in range(1, 33))
    # blocks swap only when size AND payoff agree
    assert make_game("cmg", block_sizes=[2, 2, 3]).symmetries().order() == 2 * 2 * 6 * 2
    assert make_game("cmg", block_sizes=[2, 2, 3], block_payoffs=[1, 2, 1]).symmetries().order() == 2 * 2 * 6


@pytest.mark.parametrize("name", ["lever", "cmg-s", "cmg-h"])
def test_sampled_elements_preserve_payoff(name):
    game = make_game(name)
    group, R = game.symmetries(), game.payoff_matrix()
    assert group.preserves(R)
    phi = group.sample(200, np.random.default_rng(1))
    assert [p.shape for p in phi] == [(200, R.shape[0])] * 2
    for p0, p1 in zip(*phi):
        assert np.array_equal(R[np.ix_(p0, p1)], R) and group.contains((p0, p1))
    if name == "lever":
        assert (phi[0][:, 0] == 0).all() and len(set(phi[0][:, 1])) > 1  # the 0.9 lever never moves
    if name == "cmg-s":  # whole blocks do move
        assert any(game.block_of(int(p[0])) != 0 for p in phi[0])


def _chi_square(rows: np.ndarray, n_cells: int) -> float:
    _, counts = np.unique(rows, axis=0, return_counts=True)
    assert len(counts) == n_cells  # every element is reached
    expected = len(rows) / n_cells
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("group,order", [
    (PermutationGroup.free_blocks(4, [[1, 2, 3]]), 6),                        # lever, 4 levers
    (PermutationGroup.free_blocks(5, [[0, 1], [2, 3]], swappable=[[0, 1]]), 8),  # block swaps
    (PermutationGroup.from_generators([3, 3], [[[1, 2, 0], [1, 2, 0]], [[1, 0, 2], [1, 0, 2]]]), 6),
])
def test_sampling_is_uniform(group, order):
    assert group.order() == order
    k = 1000 * order
    phi = group.sample(k, np.random.default_rng(2))
    # chi-square with order-1 dof: 99.9% quantile is < 25 for these sizes; a biased sampler lands far above
    assert _chi_square(np.concatenate(phi, axis=1), order) < 25


def test_free_blocks_generators_span_exactly_the_group():
    group = PermutationGroup.free_blocks(7, [[0, 1], [2, 3], [4, 5, 6]], swappable=[[0, 1]])
    closure = PermutationGroup.from_generators([7, 7], group.generators())
    assert closure.order() == group.order() == 2 * 2 * 6 * 2
    phi = closure.sample(300, np.random.default_rng(3))
    assert all(group.contains(e) for e in zip(*phi))
    assert group.contains(group.identity())


def test_contains_rejects_non_members():
    lever = make_game("lever", n_levers=4).symmetries()
    assert lever.contains(([0, 2, 1, 3], [0, 2, 1, 3]))
    assert not lever.contains(([1, 0, 2, 3], [1, 0, 2, 3]))  # moves the unique lever
    assert not lever.contains(([0, 2, 1, 3], [0, 1, 2, 3]))  # different relabelling per seat
    assert not lever.contains(([0, 1, 2], [0, 1, 2]))  # wrong length
    swap = PermutationGroup.free_blocks(4, [[0, 1], [2, 3]], swappable=[[0, 1]])
    assert swap.contains(([3, 2, 0, 1],) * 2)
    assert not swap.contains(([2, 3, 2, 3],) * 2)  # not a permutation
    assert not swap.contains(([0, 2, 1, 3],) * 2)  # splits a block
    cmgh = make_game("cmg", block_sizes=[2, 1]).symmetries()
    assert not cmgh.contains(([2, 1, 0],) * 2)  # blocks of different size cannot swap
    gen = PermutationGroup.from_generators([3, 2], [[[1, 0, 2], [1, 0]]])
    assert gen.contains(([1, 0, 2], [1, 0])) and not gen.contains(([1, 0, 2], [0, 1]))


def test_preserves_detects_broken_symmetry():
    lever = make_game("lever", n_levers=4).symmetries()
    assert not lever.preserves(np.diag([0.9, 1.0, 1.1, 1.0]))
    assert not lever.preserves(np.diag([0.9, 1.0, 1.0, 1.0]) + np.eye(4, k=1) * 0.01)
    cmg = make_game("cmg", block_sizes=[2, 2]).symmetries()
    assert cmg.preserves(make_game("cmg", block_sizes=[2, 2]).payoff_matrix())
    assert not cmg.preserves(make_game("cmg", block_sizes=[2, 2], block_payoffs=[1, 2]).payoff_matrix())
    assert not cmg.preserves(np.ones((3, 3)))  # wrong shape


def test_from_generators_errors():
    with pytest.raises(GameError, match="not a permutation"):
        PermutationGroup.from_generators([3, 3], [[[0, 0, 1], [0, 1, 2]]])
    with pytest.raises(GameError, match="not a permutation"):
        PermutationGroup.from_generators([3, 3], [[[1, 0], [1, 0]]])
    with pytest.raises(GameError, match="one permutation per seat"):
        PermutationGroup.from_generators([2, 2], [[[1, 0]]])
    big = [list(range(1, 9)) + [0], [1, 0] + list(range(2, 9))]  # 9-cycle and a transposition: S_9, 362880
    with pytest.raises(GameError, match="more than 100,000"):
        PermutationGroup.from_generators([9, 9], [[g, g] for g in big])


# ---------------------------------------------------------------------------------------------- matrix
def test_matrix_game_from_params_round_trips():
    params = {"payoff": [[1, 0, 0], [0, 1, 0], [0, 0, 0.5]], "actions": ["rock", "paper", "scissors"],
              "symmetries": [[1, 0, 2]], "description": "Pick a hand."}
    game = make_game("matrix", **params)
    assert game.action_names(0) == game.action_names(1) == ["rock", "paper", "scissors"]
    assert game.observe(game.reset(1, None), 0) == ["Pick a hand. You are player 1 of 2. Choose an action."]
    assert game.symmetries().order() == 2 and game.symmetries().contains(([1, 0, 2], [1, 0, 2]))
    again = make_game("matrix", **game.params())
    np.testing.assert_array_equal(again.payoff_matrix(), game.payoff_matrix())
    assert again.params() == game.params() and again.symmetries().order() == 2
    _, reward, _ = game.step(game.reset(2, None), _joint([[2, 2], [0, 1]]))
    assert reward.tolist() == [0.5, 0.0]


def test_matrix_defaults_and_per_seat_options():
    game = make_game("matrix", payoff=[[1, 0, 2], [0, 1, 2]])  # 2x3, no symmetry
    assert game.action_names(0) == ["a0", "a1"] and game.action_names(1) == ["a0", "a1", "a2"]
    assert game.symmetries() is None and game.legal_mask(game.reset(2, None), 1).shape == (2, 3)
    assert make_game("matrix", payoff=np.eye(12).tolist()).action_names(0)[-1] == "a11"
    per_seat = make_game("matrix", payoff=[[1, 0], [0, 2], [0, 2]], actions=[["x", "y", "z"], [1, 2]],
                         symmetries=[[[0, 2, 1], [0, 1]]])
    assert per_seat.action_names(1) == ["1", "2"] and per_seat.symmetries().order() == 2


@pytest.mark.parametrize("params,key", [
    ({}, "game.payoff"),
    ({"payoff": []}, "game.payoff"),
    ({"payoff": [[1, 0], [0]]}, "game.payoff"),
    ({"payoff": [[1, float("nan")], [0, 1]]}, "game.payoff"),
    ({"payoff": [[1, "x"], [0, 1]]}, "game.payoff"),
    ({"payoff": [[1, 0], [0, 1]], "actions": ["go", "go"]}, "game.actions"),
    ({"payoff": [[1, 0], [0, 1]], "actions": ["go", ""]}, "game.actions"),
    ({"payoff": [[1, 0], [0, 1]], "actions": ["go"]}, "game.actions"),
    ({"payoff": [[1, 0], [0, 1]], "actions": [["a", "b"], ["c"]]}, "game.actions"),
    ({"payoff": [[1, 0], [0, 1]], "actions": "ab"}, "game.actions"),
    ({"payoff": [[1, 0], [0, 1]], "actions": ["caf\u00e9", "tea"]}, "game.actions"),
    ({"payoff": [[1, 0], [0, 1]], "symmetries": [[0, 0]]}, "game.symmetries"),
    ({"payoff": [[1, 0], [0, 1]], "symmetries": [[0, 1, 2]]}, "game.symmetries"),
    ({"payoff": [[1, 0], [0, 1]], "symmetries": [[1.5, 0]]}, "game.symmetries"),
    ({"payoff": [[1, 0], [0, 1]], "symmetries": 3}, "game.symmetries"),
    ({"payoff": [[1, 0], [0, 2]], "symmetries": [[1, 0]]}, r"game.symmetries\[0\].*does not preserve"),
    ({"payoff": [[1, 0], [0, 1]], "description": ""}, "game.description"),
    ({"payoff": [[1, 0], [0, 1]], "description": "two\nlines"}, "game.description"),
    ({"payoff": [[1, 0], [0, 1]], "colour": "red"}, "game.colour"),
])
def test_matrix_errors_name_the_parameter(params, key):
    with pytest.raises(GameError, match=key):
        make_game("matrix", **params)


# ---------------------------------------------------------------------------------------------- registry
def test_registry_configs_and_round_trip():
    assert sorted(GAMES) == ["cmg", "cmg-h", "cmg-s", "corrective", "lever", "matrix", "openspiel", "overcooked",
                            "preference", "repeated", "warehouse"]
    for name, spec in GAMES.items():
        assert spec.name == name and spec.description
        cfg = OmegaConf.to_object(OmegaConf.structured(spec.config_cls))  # schemas usable by the config loader
        assert cfg.name == name
        if name == "matrix":
            continue  # payoff is required
        try:
            game = build_game(cfg)
        except MissingExtra:  # an optional extra not installed here (CI installs them all)
            continue
        assert game.name == name
        rebuilt = make_game(name, **game.params())
        assert rebuilt.params() == game.params()
        if hasattr(game, "payoff_matrix"):  # one-shot matrix games
            np.testing.assert_array_equal(rebuilt.payoff_matrix(), game.payoff_matrix())
        if game.symmetries() is not None:
            assert rebuilt.symmetries().order() == game.symmetries().order()


def test_build_game_accepts_dataclass_dict_and_dictconfig():
    assert build_game(LeverConfig(n_levers=4)).payoff_matrix().shape == (4, 4)
    assert build_game({"name": "lever", "n_levers": 5}).payoff_matrix().shape == (5, 5)
    assert build_game(OmegaConf.create({"name": "matrix", "payoff": [[1, 0], [0, 1]], "symmetries": [[1, 0]]})) \
        .symmetries().order() == 2


@pytest.mark.parametrize("call,message", [
    (lambda: make_game("chess"), r"^unknown game 'chess' \(allowed: cmg, cmg-h, cmg-s, corrective, lever, matrix, openspiel, overcooked, preference, repeated, warehouse\)$"),
    (lambda: build_game({"n_levers": 3}), "game.name is required"),
    (lambda: make_game("lever", n_leverz=3), "game.n_leverz"),
    (lambda: make_game("lever", n_levers="many"), "game.n_levers"),
    (lambda: make_game("lever", n_levers=1), "game.n_levers"),
    (lambda: make_game("lever", unique_lever=10), "game.unique_lever"),
    (lambda: make_game("lever", other_payoff=float("inf")), "game.other_payoff"),
    (lambda: make_game("cmg", block_sizes=[]), "game.block_sizes"),
    (lambda: make_game("cmg", block_sizes=[3, 0]), "game.block_sizes"),
    (lambda: make_game("cmg", block_sizes=[5000]), "game.block_sizes"),
    (lambda: make_game("cmg-s", block_payoffs=[1.0, 2.0]), "game.block_payoffs"),
])
def test_registry_errors(call, message):
    with pytest.raises(GameError, match=message):
        call()


def test_import_is_light():
    code = "import sys, adhoc.games; print('transformers' in sys.modules, 'pettingzoo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_all_permutations_of_lever_levers_are_reachable():
    group = make_game("lever", n_levers=4).symmetries()
    members = {(0,) + p for p in permutations([1, 2, 3])}
    assert all(group.contains((list(m), list(m))) for m in members)
    rows = group.sample(500, np.random.default_rng(4))[0]
    assert {tuple(r) for r in rows.tolist()} == members
