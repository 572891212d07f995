"""OpenSpiel's bots as scripted partners of the bridge (``scripted:openspiel:uniform``, ``mcts-N``): the uniform bot
puts equal mass on the legal actions, MCTS takes an immediate TicTacToe win and blocks an immediate loss
(hand-made positions), its moves are reproducible for a run seed, and refusals are one line."""

import numpy as np
import pytest
import torch

pytest.importorskip("pyspiel")

from adhoc.errors import UserError  # noqa: E402
from adhoc.games import make_game  # noqa: E402
from adhoc.rollout import rollout  # noqa: E402
from adhoc.scripted import load_scripted_population, scripted_ids  # noqa: E402
from test_rollout_rows import make_policy  # noqa: E402

# TicTacToe cells: 0 1 2 / 3 4 5 / 6 7 8; player 0 is x, player 1 is o


@pytest.fixture(scope="module")
def ttt():
    return make_game("openspiel", game="tic_tac_toe", actions="numbered")


def bot(game, name):
    return load_scripted_population(f"scripted:openspiel:{name}", game).strategies[0]


def after(game, moves, episodes=8, seed=0):
    """The batched state after ``moves`` (cells, alternating from player 0) in every one of ``episodes`` episodes."""
    state = game.reset(episodes, np.random.default_rng(seed))
    for t, cell in enumerate(moves):
        joint = torch.zeros(episodes, 2, dtype=torch.long)
        joint[:, t % 2] = cell  # the seat not to move plays its forced action 0
        state, _, _ = game.step(state, joint)
    return state


def test_uniform_puts_equal_mass_on_the_legal_actions(ttt):
    state = after(ttt, [4, 0, 8])  # o (seat 1) to move, 6 free cells
    logp = bot(ttt, "uniform").log_probs(ttt, state, 1)
    assert logp.shape == (8, 9)
    free = [1, 2, 3, 5, 6, 7]
    assert torch.allclose(logp[:, free].exp(), torch.full((8, 6), 1 / 6))
    assert torch.isinf(logp[:, [0, 4, 8]]).all()
    forced = bot(ttt, "uniform").log_probs(ttt, state, 0)  # not seat 0's move: its one forced action
    assert torch.equal(forced.exp(), torch.nn.functional.one_hot(torch.zeros(8, dtype=torch.long), 9).float())
    kuhn = make_game("openspiel", game="kuhn_poker")  # imperfect information: the uniform bot still plays
    probs = bot(kuhn, "uniform").log_probs(kuhn, kuhn.reset(4, np.random.default_rng(0)), 0).exp()
    assert torch.allclose(probs, torch.full((4, 2), 0.5))


def test_mcts_takes_an_immediate_win_and_blocks_an_immediate_loss(ttt):
    mcts = bot(ttt, "mcts-200")
    # x: 0, 1; o: 4 -> o must block at 2
    block = mcts.log_probs(ttt, after(ttt, [0, 4, 1]), 1)
    assert torch.equal(block.argmax(1), torch.full((8,), 2)) and (block.exp().sum(1) == 1).all()  # one-hot
    # x: 0, 1; o: 3, 4 -> x wins at 2 (blocking at 5 would not)
    win = mcts.log_probs(ttt, after(ttt, [0, 3, 1, 4]), 0)
    assert torch.equal(win.argmax(1), torch.full((8,), 2))
    # o: 6, 7 threatens 8, x: 0, 4 threatens 8 too; x to move takes it
    both = mcts.log_probs(ttt, after(ttt, [0, 6, 4, 7]), 0)
    assert torch.equal(both.argmax(1), torch.full((8,), 8))


def test_mcts_is_reproducible_for_a_seed_and_seeded_per_episode(ttt):
    weak = bot(ttt, "mcts-2")  # two simulations: the first move is close to random
    first = [weak.log_probs(ttt, after(ttt, [], episodes=64, seed=s), 0).argmax(1) for s in (0, 0, 1)]
    assert torch.equal(first[0], first[1])  # the same run seed: the same moves
    assert not torch.equal(first[0], first[2])
    assert len(first[0].unique()) > 3  # each episode searches with its own seed


def test_bots_play_through_a_rollout(ttt):
    policy = make_policy(1)
    ids = scripted_ids(policy, load_scripted_population("scripted:openspiel:mcts-50,uniform", ttt))
    pairs = torch.stack([ids, ids.flip(0)], 1)  # (mcts, uniform), (uniform, mcts)
    traj = rollout(ttt, policy, pairs, 16, np.random.default_rng(0), grad=False)
    mcts_return = torch.stack([traj.seat_returns[0, :, 0], traj.seat_returns[1, :, 1]])
    assert float(mcts_return.mean()) > 0.6  # uniform against uniform: 0 averaged over seats
    assert float((mcts_return < 0).float().mean()) < 0.1  # MCTS rarely loses to random play


@pytest.mark.parametrize("game_string, name, why", [
    ("kuhn_poker", "mcts-25", "it has imperfect information (MCTS would search the true state"),
    ("matrix_rps", "mcts-25", "its moves are simultaneous"),
    ("tic_tac_toe", "mcts-0", "N must be 1..100000 simulations"),
    ("tic_tac_toe", "random", "unknown scripted strategy 'random' (allowed: uniform, mcts-100; or mcts-N"),
])
def test_refusals_are_one_line(game_string, name, why):
    game = make_game("openspiel", game=game_string)
    with pytest.raises(UserError) as info:
        load_scripted_population(f"scripted:openspiel:{name}", game)
    assert "\n" not in str(info.value) and why in str(info.value)


def test_listed_strategies(ttt):
    assert load_scripted_population("scripted:openspiel", ttt).names == ["uniform", "mcts-100"]
    assert load_scripted_population("scripted:openspiel", make_game("openspiel", game="kuhn_poker")).names == \
        ["uniform"]
