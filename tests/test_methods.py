"""Known-answer tests for the shared policy-gradient math."""

import pytest
import torch

from adhoc.methods.common import (entropy_per_member, leave_one_out_advantage, members_with_data,
                                  per_member_mean, policy_gradient_loss)


def test_leave_one_out_advantage_hand_computed():
    returns = torch.tensor([[1.0, 0.0, 0.0, 1.0], [3.0, 3.0, 3.0, 3.0]])
    # episode 0: 1 − mean(0, 0, 1) = 2/3; episode 1: 0 − mean(1, 0, 1) = −2/3
    expected = torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3], [0.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(leave_one_out_advantage(returns), expected)
    with pytest.raises(ValueError):
        leave_one_out_advantage(torch.ones(1, 1))


def test_per_member_mean_scatters_by_seat():
    # 2 pairs: (0, 1) and (1, 1); E = 1, T = 1; values per seat
    pairs = torch.tensor([[0, 1], [1, 1]])
    values = torch.tensor([[[[1.0, 2.0]]], [[[4.0, 6.0]]]])
    weights = torch.ones_like(values)
    out = per_member_mean(values, weights, pairs, 3)
    assert torch.allclose(out, torch.tensor([1.0, (2 + 4 + 6) / 3, 0.0]))
    assert members_with_data(pairs, 3).tolist() == [True, True, False]


def test_policy_gradient_loss_sign_and_gradient():
    # One member, one pair (0, 0), 2 episodes: the rewarded action's log-prob must go UP under descent.
    logits = torch.zeros(2, requires_grad=True)
    logp_all = torch.log_softmax(logits, 0)
    logp = torch.stack([logp_all[0], logp_all[1]]).view(1, 2, 1, 1).expand(1, 2, 1, 2)
    returns = torch.tensor([[1.0, 0.0]])
    loss = policy_gradient_loss(logp, leave_one_out_advantage(returns), torch.ones(1, 2, 1, dtype=torch.bool),
                                torch.tensor([[0, 0]]), 1)
    loss.sum().backward()
    # loss = −mean over 4 entries of A·logp = −(1·logp0 − 1·logp1)/2 → d/dlogit0 = −(1 − 0.5 + 0.5)/2 ... < 0
    assert logits.grad[0] < 0 < logits.grad[1]
    assert torch.allclose(loss, -(logp_all[0] - logp_all[1]).detach() / 2)


def test_entropy_per_member_ignores_dead_steps():
    ent = torch.tensor([[[[1.0, 1.0], [5.0, 5.0]]]])  # [P=1, E=1, T=2, 2]
    alive = torch.tensor([[[True, False]]])
    assert torch.allclose(entropy_per_member(ent, alive, torch.tensor([[0, 0]]), 1), torch.tensor([1.0]))
