"""Advantage Alignment (adhoc/methods/advantage_alignment.py): the weight A*^s_t = γ^t (A^s_t + β γ P^s_t A^{1−s}_t)
against a hand computation, its reductions (β = 0: per-seat REINFORCE on the reward-to-go; one-step games:
self-play's per-seat loss), the sharded loss adding up, the config's ranges and a short run on the IPD."""

from pathlib import Path

import numpy as np
import pytest

from adhoc._torch import torch
from adhoc.config import ConfigError, load_config
from adhoc.methods import METHODS
from adhoc.methods.advantage_alignment import (AdvantageAlignmentConfig, advantage_alignment_weights,
                                               past_discounted_sum, seat_reward_to_go, step_leave_one_out)
from adhoc.methods.common import played_steps

CONFIGS = Path(__file__).parent.parent / "configs"
PD = [[[3, 0], [5, 1]], [[3, 5], [0, 1]]]

# [P=1, E=2, T=3, 2]: episode 0 plays CC, CD, DD; episode 1 DC, DD, CC (seat 0's, seat 1's reward per step)
REWARDS = torch.tensor([[[[3.0, 3.0], [0.0, 5.0], [1.0, 1.0]],
                         [[5.0, 0.0], [1.0, 1.0], [3.0, 3.0]]]])
ALIVE = torch.ones(1, 2, 3, dtype=torch.bool)


def test_weights_hand_computed():
    gamma, beta = 0.5, 2.0  # β γ = 1
    rtg = seat_reward_to_go(REWARDS, ALIVE, gamma)
    # G_t = r_t + γ G_{t+1}: episode 0 seat 0: 1, 0 + .5, 3 + .25; seat 1: 1, 5 + .5, 3 + 2.75
    assert rtg[0, 0].tolist() == [[3.25, 5.75], [0.5, 5.5], [1.0, 1.0]]
    assert rtg[0, 1].tolist() == [[6.25, 1.25], [2.5, 2.5], [3.0, 3.0]]
    adv = step_leave_one_out(rtg, ALIVE)  # E = 2: minus the other episode
    assert adv[0, 0].tolist() == [[-3.0, 4.5], [-2.0, 3.0], [-2.0, -2.0]]
    assert torch.equal(adv[0, 1], -adv[0, 0])
    past = past_discounted_sum(adv, gamma)  # P_1 = γ A_0, P_2 = γ² A_0 + γ A_1
    assert past[0, 0].tolist() == [[0.0, 0.0], [-1.5, 2.25], [-1.75, 2.625]]
    w = advantage_alignment_weights(adv, beta, gamma)
    # γ^t (A^s_t + P^s_t A^{1−s}_t), e.g. episode 0 seat 0 at t=1: .5 · (−2 + (−1.5)(3)) = −3.25
    expected = torch.tensor([[[-3.0, 4.5], [-3.25, -0.75], [0.375, -1.8125]],
                             [[3.0, -4.5], [-1.25, -3.75], [1.375, -0.8125]]])
    assert torch.allclose(w[0], expected)
    # β = 0: the discounted own advantage only
    assert torch.allclose(advantage_alignment_weights(adv, 0.0, gamma),
                          adv * torch.tensor([1.0, 0.5, 0.25])[None, None, :, None])


def test_common_payoff_reduces_to_a_rescaled_advantage():
    """A¹ = A² = A: A*_t = γ^t A_t (1 + β γ P_t)."""
    adv = torch.tensor([[[1.0], [-2.0], [0.5]], [[-1.0], [2.0], [-0.5]]])[None].expand(1, 2, 3, 2)
    gamma, beta = 0.9, 3.0
    past = past_discounted_sum(adv, gamma)
    discount = gamma ** torch.arange(3.0)[None, None, :, None]
    assert torch.allclose(advantage_alignment_weights(adv, beta, gamma), discount * adv * (1 + beta * gamma * past))


def test_leave_one_out_skips_episodes_that_ended():
    values = torch.tensor([[[[1.0, 0.0], [4.0, 0.0]], [[3.0, 0.0], [9.0, 0.0]], [[5.0, 0.0], [2.0, 0.0]]]])  # [1, 3, 2, 2]
    alive = torch.tensor([[[True, True], [True, False], [True, True]]])
    out = step_leave_one_out(values, alive)[..., 0]
    assert out[0, :, 0].tolist() == [1 - 4, 3 - 3, 5 - 2]
    assert out[0, :, 1].tolist() == [4 - 2, 0, 2 - 4]  # episode 1 ended: neither advantaged nor a baseline
    with pytest.raises(ValueError):
        step_leave_one_out(values[:, :1], alive[:, :1])


def _population(n: int, game):
    from adhoc.lm.adapters import AdapterBank
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy

    base = load_base("builtin:tiny", device="cpu", dtype="float32")
    bank = AdapterBank(base.model, n, 2, 4.0, ["q_proj", "v_proj", "lm_head"])
    bank.init_members(list(range(n)), b_std=0.3)
    return Policy(base, bank)


def _ipd():
    from adhoc.games import make_game

    return make_game("repeated", stage="matrix", rounds=3,
                     stage_params={"payoffs": PD, "actions": ["C", "D"], "description": "Prisoner's dilemma."})


def _method(n, game, **params):
    spec = METHODS["advantage_alignment"]
    return spec.build(spec.config_cls(**params), game, n)


def test_beta_zero_is_per_seat_reinforce_on_the_reward_to_go():
    """β = 0, γ = 1: −Σ (G^s_t − LOO baseline of G^s_t at step t) log π(a^s_t) / steps played, by hand; β > 0 moves
    the loss."""
    from adhoc.rollout import rollout

    n, E = 2, 12
    game = _ipd()
    policy = _population(n, game)
    method = _method(n, game, beta=0.0, gamma=1.0)
    traj = rollout(game, policy, method.pairs(0, np.random.default_rng(0)), E, np.random.default_rng(1))
    assert traj.per_seat and traj.rewards.shape[2] == 3
    G = traj.seat_rewards.flip(2).cumsum(2).flip(2)  # [P, E, T, 2]
    adv = G - (G.sum(1, keepdim=True) - G) / (E - 1)
    reference = torch.stack([-(adv[i] * traj.logp[i]).sum() / (2 * traj.alive[i].sum()) for i in range(n)])
    loss, metrics = method.loss(traj, 0.0)
    assert torch.allclose(loss, reference, atol=1e-5)
    assert metrics["train/alignment_term"] == 0.0
    shaped, metrics = _method(n, game, beta=5.0, gamma=1.0).loss(traj, 0.0)
    assert (shaped - loss).abs().max() > 1e-3 and metrics["train/alignment_term"] > 0


def test_one_step_game_is_self_play_with_the_role_baseline():
    """T = 1: no past advantages, so any β gives self-play's per-seat loss (``role_baseline``)."""
    from adhoc.games import make_game
    from adhoc.rollout import rollout

    n = 3
    game = make_game("matrix", payoffs=PD, actions=["C", "D"])
    policy = _population(n, game)
    method = _method(n, game, beta=7.0, gamma=0.9)
    traj = rollout(game, policy, method.pairs(0, np.random.default_rng(0)), 16, np.random.default_rng(1))
    selfplay = METHODS["selfplay"].build(METHODS["selfplay"].config_cls(), game, n)
    aa, _ = method.loss(traj, 0.5)
    sp, _ = selfplay.loss(traj, 0.5)
    assert torch.allclose(aa, sp, atol=1e-6)


def test_sharded_losses_add_up():
    """Data-parallel training: each worker's loss over its own pairs, with every worker's played steps
    (``total_played``), adds up to the whole loss."""
    from adhoc.rollout import rollout

    n = 4
    game = _ipd()
    policy = _population(n, game)
    method = _method(n, game, beta=3.0)
    traj = rollout(game, policy, method.pairs(0, np.random.default_rng(0)), 6, np.random.default_rng(2))
    whole, _ = method.loss(traj, 0.1)
    parts = []
    for index in (torch.tensor([0, 1]), torch.tensor([2, 3])):
        shard = traj.select(index)
        shard.total_played = played_steps(traj, n)
        parts.append(method.loss(shard, 0.1)[0])
    assert torch.allclose(parts[0] + parts[1], whole, atol=1e-6)


def test_registered_with_ranged_config():
    spec = METHODS["advantage_alignment"]
    assert spec.config_cls is AdvantageAlignmentConfig
    config = load_config(CONFIGS / "ipd-advantage-alignment.yaml")
    assert config.method.name == "advantage_alignment" and config.game.stage == "matrix"
    for override, message in (("method.beta=-1", "method.beta must be >= 0"),
                              ("method.gamma=1.5", "method.gamma=1.5 is above the limit 1"),
                              ("method.gamma=-0.1", "method.gamma must be >= 0")):
        with pytest.raises(ConfigError, match=message) as exc:
            load_config(CONFIGS / "ipd-advantage-alignment.yaml", [override])
        assert "\n" not in str(exc.value)


def test_short_training_run_on_the_ipd(tmp_path):
    from adhoc.recipes.train_population import train_population

    config = load_config(CONFIGS / "ipd-advantage-alignment.yaml",
                         ["population.size=2", "train.iterations=3", "train.eval_every=3", "train.episodes_per_pair=8",
                          "train.eval_episodes=8", "train.entropy_anneal_iterations=3"])
    pop = train_population(config, out=tmp_path / "pop", progress=False)
    assert pop.manifest["method"]["name"] == "advantage_alignment"
    assert pop.names == ["member-00", "member-01"]
