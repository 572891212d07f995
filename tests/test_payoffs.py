"""Games that pay each seat its own reward (zero-sum, general-sum): per-seat rewards through the rollout, the
role-conditioned baseline of self-play, and the methods that refuse such games."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adhoc.errors import UserError
from adhoc.games import build_game
from adhoc.games.core import payoff_kind, seat_rewards
from adhoc.games.matrix import MatrixGame
from adhoc.lm.adapters import AdapterBank, MemberAdam
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.methods import METHODS
from adhoc.methods.common import leave_one_out_advantage, seat_leave_one_out_advantage
from adhoc.rollout import episode_returns, rollout

# seat 0's payoff; seat 1 gets its negative. Action 0 dominates for both seats: seat 0 maximises (1 > 0, 2 > 1),
# seat 1 minimises (1 < 2, 0 < 1), so the unique equilibrium is (0, 0), value 1 for seat 0.
DOMINANT = np.array([[1.0, 2.0], [0.0, 1.0]])


class TwoTables(MatrixGame):
    """A one-shot matrix game whose seats get R0[a0, a1] and R1[a0, a1]."""

    def __init__(self, r0: np.ndarray, r1: np.ndarray, kind: str) -> None:
        super().__init__("two-tables", np.stack([r0, r1]), [["a", "b"], ["a", "b"]], "A test game.", kind=kind)


def zero_sum() -> TwoTables:
    return TwoTables(DOMINANT, -DOMINANT, "zero_sum")


@pytest.fixture
def base():
    return load_base("builtin:tiny", device="cpu", dtype="float32")  # one adapter bank per loaded base


def policy_of(base, n: int, seed: int = 0) -> Policy:
    bank = AdapterBank(base.model, n, 4, 8.0, ["q_proj", "v_proj", "lm_head"])
    torch.manual_seed(seed)
    bank.init_members(list(range(n)), b_std=0.1)
    return Policy(base, bank)


def test_payoff_kind_defaults_to_common_and_seat_rewards_broadcast():
    assert payoff_kind(build_game({"name": "lever"})) == "common"
    assert payoff_kind(zero_sum()) == "zero_sum"
    assert torch.equal(seat_rewards(torch.tensor([1.0, 2.0])), torch.tensor([[1.0, 1.0], [2.0, 2.0]]))
    both = torch.tensor([[1.0, -1.0]])
    assert seat_rewards(both) is both


def test_seat_leave_one_out_advantage_by_hand():
    G = torch.tensor([[[1.0, -1.0], [3.0, -3.0], [2.0, -2.0]]])  # [P=1, E=3, 2]
    per_role = seat_leave_one_out_advantage(G)
    # seat 0, episode 0: 1 - (3 + 2) / 2 = -1.5; seat 1, episode 0: -1 - (-3 - 2) / 2 = 1.5
    assert torch.allclose(per_role[0, :, 0], torch.tensor([-1.5, 1.5, 0.0]))
    assert torch.allclose(per_role[0, :, 1], -per_role[0, :, 0])
    # one baseline for both roles: the mean of both seats' returns in the other episodes, 0 in zero-sum self-play
    assert torch.allclose(seat_leave_one_out_advantage(G, role_baseline=False), G)
    G2 = torch.tensor([[[1.0, 0.0], [3.0, 1.0]]])
    # episode 0: baseline (3 + 1) / 2 = 2 → (-1, -2); episode 1: (1 + 0) / 2 = 0.5 → (2.5, 0.5)
    assert torch.allclose(seat_leave_one_out_advantage(G2, role_baseline=False),
                          torch.tensor([[[-1.0, -2.0], [2.5, 0.5]]]))
    # a common payoff in both columns gives the one-seat advantage in both columns
    common = torch.tensor([[1.0, 3.0, 2.0, 6.0]])
    both = seat_leave_one_out_advantage(common[..., None].expand(-1, -1, 2))
    assert torch.allclose(both, leave_one_out_advantage(common)[..., None].expand(-1, -1, 2))


def test_rollout_keeps_each_seats_reward(base):
    game, policy = zero_sum(), policy_of(base, 2)
    pairs = torch.tensor([[0, 1], [1, 0]])
    traj = rollout(game, policy, pairs, 16, np.random.default_rng(0), grad=False)
    assert traj.per_seat and traj.seat_rewards.shape == (2, 16, 1, 2)
    acts = traj.actions[:, :, 0]
    expected = torch.tensor(DOMINANT, dtype=torch.float32)[acts[..., 0], acts[..., 1]]
    assert torch.equal(traj.seat_returns[..., 0], expected) and torch.equal(traj.seat_returns[..., 1], -expected)
    assert torch.equal(traj.returns, expected)  # ``returns`` is seat 0's
    again = episode_returns(game, policy, pairs, 16, np.random.default_rng(0), seats=True)
    assert torch.equal(again, traj.seat_returns)
    assert torch.equal(episode_returns(game, policy, pairs, 16, np.random.default_rng(0)), expected)
    steps = episode_returns(game, policy, pairs, 16, np.random.default_rng(0), seats=True, per_step=True)
    assert steps.shape == (2, 16, 1, 2) and torch.equal(steps.sum(2), again)
    # a selection of pairs keeps its seats' rewards
    assert torch.equal(traj.select(torch.tensor([1])).seat_returns, traj.seat_returns[1:])


def test_common_payoff_trajectories_have_no_seat_rewards_of_their_own(base):
    game, policy = build_game({"name": "lever"}), policy_of(base, 1)
    traj = rollout(game, policy, torch.tensor([[0, 0]]), 8, np.random.default_rng(0), grad=False)
    assert not traj.per_seat
    assert torch.equal(traj.seat_returns, torch.stack([traj.returns, traj.returns], -1))


def test_selfplay_loss_weights_each_seat_by_its_own_return(base):
    """The per-row loss equals the per-episode definition with per-seat advantages [P, E, T, 2]."""
    game, policy = zero_sum(), policy_of(base, 2)
    method = METHODS["selfplay"].build(METHODS["selfplay"].config_cls(), game, 2)
    method.policy = policy
    pairs = method.pairs(1, np.random.default_rng(0))
    traj = rollout(game, policy, pairs, 8, np.random.default_rng(1))
    loss, _ = method.loss(traj, entropy_coef=0.0)
    adv = seat_leave_one_out_advantage(traj.seat_returns)  # [P, E, 2]
    # per episode: -mean over (e, seat) of A[e, s] · log π(a_s)
    manual = torch.stack([-(adv[p] * traj.logp[p, :, 0]).mean() for p in range(2)])
    assert torch.allclose(loss, manual, atol=1e-6)


def train_self_play(base, game, role_baseline: bool, iterations: int = 40, seed: int = 0, lr: float = 0.01) -> torch.Tensor:
    """Self-play of one member on ``game``; its probabilities of action 0 in seats 0 and 1 afterwards."""
    config = METHODS["selfplay"].config_cls(role_baseline=role_baseline)
    method = METHODS["selfplay"].build(config, game, 1)
    policy = policy_of(base, 1, seed)
    method.policy = policy
    optimizer, rng = MemberAdam(policy.bank.member_parameters(), lr=lr, max_grad_norm=1.0), np.random.default_rng(seed)
    for it in range(iterations):
        pairs = method.pairs(it, rng)
        traj = rollout(game, policy, pairs, 32, rng)
        loss, _ = method.loss(traj, 0.0)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step(torch.tensor([True]))
    with torch.no_grad():
        state = game.reset(1, rng)
        out = []
        for s in (0, 1):
            scores = policy.scores(torch.tensor([0]), game.observe(state, s), policy.actions(game.action_names(s)))
            out.append(float(torch.softmax(scores, -1)[0, 0]))
    return torch.tensor(out)


def test_zero_sum_self_play_learns_each_roles_dominant_action(base):
    """Seat 1 minimises seat 0's payoff: trained on the common return (seat 0's) it would learn column b."""
    p = train_self_play(base, zero_sum(), role_baseline=True, iterations=20)
    assert p[0] > 0.9 and p[1] > 0.9, p


@pytest.mark.parametrize("name", ["lipo", "trajedi", "mep"])
def test_common_payoff_methods_refuse_other_games(name):
    spec = METHODS[name]
    with pytest.raises(UserError, match="needs a common-payoff game .*is zero-sum"):
        spec.build(spec.config_cls(), zero_sum(), 4)


@pytest.mark.parametrize("name", ["selfplay", "fcp"])
def test_methods_for_any_game_accept_zero_sum(name):
    spec = METHODS[name]
    assert spec.build(spec.config_cls(), zero_sum(), 2).n_members == 2


def test_a_sweep_table_says_na_where_self_play_does_not_apply():
    from types import SimpleNamespace as NS

    from adhoc.recipes.sweep import measure, table

    config = NS(game=NS(name="openspiel"), method=NS(name="selfplay"), population=NS(seed=0))
    pop = NS(members=[1, 2], manifest={"wall_time_s": 3.0}, path="p")
    row = measure("ttt", config, pop, {"payoff": "zero_sum", "score": [0.1, -0.1]})
    assert row["sp"] is None and row["conventions"] is None
    line = table([row, dict(row, seed=1)]).splitlines()[-1]
    assert line == "| openspiel | selfplay | 2 | n/a | n/a | n/a | n/a | – | 3.0 ± 0.0 |"


@pytest.mark.parametrize("overrides, message", [
    (["method=lipo"], "method lipo needs a common-payoff game"),
    (["game=matrix", "game.payoffs=[[[1,0]],[[0,1],[1,0]]]"], "payoff"),
    (["game.game=kuhn_poker(players=3)"], "3 players"),
])
def test_bad_competitive_configs_are_one_line_and_write_nothing(tmp_path, capsys, overrides, message):
    pytest.importorskip("pyspiel")
    from adhoc.cli import main

    root = __import__("pathlib").Path(__file__).parent.parent
    code = main(["train-population", str(root / "configs/kuhn-poker-psro.yaml"), *overrides, "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_own_seat_picks_each_rows_seat():
    from adhoc.games.core import own_seat

    values = torch.tensor([[[1.0, -1.0], [2.0, -2.0]], [[3.0, -3.0], [4.0, -4.0]]])  # [B=2, T=2, 2]
    assert own_seat(values, torch.tensor([0, 1])).tolist() == [[1.0, 2.0], [-3.0, -4.0]]
