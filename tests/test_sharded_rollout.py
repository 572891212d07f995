"""Sharded rollouts (``rollout(..., shard=(rank, world))``), the data-parallel trainer's building block: each
worker plays a contiguous block of the pairs with exactly the random draws the whole rollout gives those
pairs, so the workers' trajectories together ARE the unsharded rollout (same actions, rewards, log π)."""

import numpy as np
import pytest
import torch

from adhoc.games import make_game
from adhoc.games.core import SEATS
from adhoc.rollout import episode_returns, rollout, shard_bounds
from test_rollout_rows import case_setup, make_policy

CASES = {
    "lever": ("lever", {"n_levers": 5}, [[0, 0], [1, 2], [2, 1], [1, 1], [0, 2]], 16, False),
    "lever-otherplay": ("lever", {"n_levers": 5}, [[0, 0], [1, 1], [2, 2]], 16, True),
    "repeated-lever": ("repeated", {"stage": "lever", "rounds": 3, "stage_params": {"n_levers": 4}},
                       [[0, 0], [1, 2], [2, 1], [1, 1]], 8, False),
    "repeated-otherplay": ("repeated", {"stage": "lever", "rounds": 3, "stage_params": {"n_levers": 4}},
                           [[0, 0], [1, 1], [2, 2]], 8, True),
    "cmg-h": ("cmg-h", {}, [[0, 1], [2, 2], [1, 0]], 8, False),
    "warehouse-scripted": ("warehouse", {"moves": 2, "episodes": 2, "reward": "goal"}, [[0, -1], [1, -1], [2, 2]],
                           4, False),
    "corrective": ("corrective", {}, [[0, 1], [2, 2], [1, 1]], 4, False),
}


def test_shard_bounds_cover_the_pairs_once_in_order():
    for n in range(0, 12):
        for world in range(1, 5):
            bounds = [shard_bounds(n, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_the_shards_together_are_the_unsharded_rollout(case, world):
    game_name, params, pair_list, episodes, otherplay = CASES[case]
    game, policy, pairs, options = case_setup(game_name, params, pair_list, episodes, otherplay)
    rng = np.random.default_rng(3)
    whole = rollout(game, policy, pairs, episodes, rng, **options)
    after = rng.random()
    parts = []
    for rank in range(world):
        rng = np.random.default_rng(3)
        parts.append(rollout(game, policy, pairs, episodes, rng, shard=(rank, world), **options))
        assert rng.random() == after  # every worker's generator moves on exactly as the unsharded run's
    played = [p for p in parts if len(p.pairs)]
    assert torch.equal(torch.cat([p.pairs for p in played]), pairs)
    T = whole.rewards.shape[2]

    def cat(name):  # shards whose episodes all ended early have fewer steps: pad them with "not played"
        return torch.cat([torch.nn.functional.pad(getattr(p, name).detach(), (0, 0) * (getattr(p, name).dim() - 3)
                                                  + (0, T - p.rewards.shape[2])) for p in played])

    assert torch.equal(cat("alive"), whole.alive)
    assert torch.equal(cat("rewards"), whole.rewards)
    assert torch.equal(cat("actions") * cat("alive")[..., None], whole.actions * whole.alive[..., None])
    torch.testing.assert_close(cat("logp") * cat("alive")[..., None],
                               whole.logp.detach() * whole.alive[..., None], atol=1e-5, rtol=1e-5)
    assert len(torch.cat([p.returns for p in played]).unique()) >= 1
    for s in SEATS:  # the observations each seat saw, episode by episode
        assert sum((p.observations[0][s] for p in played), []) == whole.observations[0][s]
    policy.scripted = []


def test_sharded_returns_add_up_to_the_unsharded_ones():
    game = make_game("repeated", stage="lever", rounds=3, stage_params={"n_levers": 4})
    policy = make_policy()
    pairs = torch.tensor([[0, 0], [1, 1], [2, 2], [0, 1], [2, 0]])
    whole = episode_returns(game, policy, pairs, 16, np.random.default_rng(5), per_step=True, max_episodes_per_call=32)
    summed = sum(episode_returns(game, policy, pairs, 16, np.random.default_rng(5), per_step=True,
                                 max_episodes_per_call=32, shard=(r, 2)) for r in range(2))
    torch.testing.assert_close(summed, whole)
    with pytest.raises(ValueError, match="per_row"):
        rollout(game, policy, pairs, 4, np.random.default_rng(0), mode="per_episode", shard=(0, 2))


REPEATED = {"stage": "lever", "rounds": 3, "stage_params": {"n_levers": 4}}


@pytest.mark.parametrize("method_name, options, pair_list", [
    ("selfplay", {}, None),
    ("otherplay", {}, None),
    ("fcp", {}, None),
    ("mep", {}, None),
    ("trajedi", {}, None),
    ("trajedi", {"best_response": True}, None),
    ("lipo", {}, None),
    # members 0 and 3 play pairs that fall on different workers: their losses' denominators span workers
    ("selfplay", {}, [[0, 0], [0, 1], [1, 1], [0, 3], [2, 2], [3, 3], [3, 0]]),
])
def test_the_workers_losses_with_the_gathered_counts_and_returns_sum_to_the_whole_gradient(method_name, options,
                                                                                           pair_list):
    """What the data-parallel trainer does (``train_loop`` with ``Workers``), here with the W workers played one
    after another: each plays its block of the pairs, reads every worker's played steps per member and returns
    (``traj.total_played``, ``traj.all_returns``), and the gradients of the workers' losses, summed, equal the
    gradient of the unsharded iteration."""
    from adhoc.methods import METHODS
    from adhoc.methods.common import played_steps

    game = make_game("repeated", **REPEATED)
    spec = METHODS[method_name]
    method = spec.build(spec.config_cls(**options), game, 4)
    n = method.n_members
    policy = make_policy(n)
    method.policy = policy
    pairs = method.pairs(1, np.random.default_rng(0)) if pair_list is None else torch.tensor(pair_list)

    def play(shard):
        rng = np.random.default_rng(11)
        return rollout(game, policy, pairs, 6, rng, shard=shard, **method.rollout_options(pairs, 6, rng))

    def gradients(traj):
        losses, metrics = method.loss(traj, 0.3)
        policy.bank.zero_grad()
        losses.sum().backward()
        return [p.grad.clone() for p in policy.bank.member_parameters()]

    whole = gradients(play(None))
    world = 3
    parts = [play((r, world)) for r in range(world)]
    total_played = sum(played_steps(t, n) for t in parts)
    all_returns = torch.cat([t.returns for t in parts])
    for t in parts:
        t.total_played, t.all_returns = total_played, all_returns
    summed = [sum(g) for g in zip(*(gradients(t) for t in parts))]
    assert any(g.abs().sum() > 0 for g in whole)
    for a, b in zip(summed, whole):
        torch.testing.assert_close(a, b, atol=1e-6 * float(b.abs().max()), rtol=1e-5)
