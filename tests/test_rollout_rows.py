"""Per-row rollouts (``rollout(mode="per_row")``, the default): episodes that share a (member, observation,
legal mask) row are scored once and sampled at once, and the loss is taken from per-row sums. On the same
samples, the losses and gradients equal the per-episode computation; sampling has the policy's law."""

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from adhoc.games import make_game
from adhoc.games.core import SEATS
from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy, entropy
from adhoc.methods import METHODS
from adhoc.methods.common import (entropy_per_member, leave_one_out_advantage, policy_gradient_loss,
                                  rollout_entropy, rollout_policy_gradient_loss)
from adhoc.methods.lipo import cross_play_loss, cross_play_weights
from adhoc.rollout import Trajectories, _seat_log_probs, rollout, sample_rows
from adhoc.scripted import load_scripted_population, scripted_ids

N = 3


def make_policy(n: int = N) -> Policy:
    base = load_base("builtin:tiny", device="cpu", dtype="float32")  # a bank per base model
    bank = AdapterBank(base.model, n, 2, 4.0, ["q_proj", "v_proj", "lm_head"])
    bank.init_members(list(range(10, 10 + n)), b_std=0.3)
    return Policy(base, bank)


def replay_per_episode(game, policy, traj, pairs, episodes, seed, options):
    """log π of the rollout's own actions and the entropies [P, E, T, 2], recomputed independently: the game
    is replayed from the rollout's seed with its actions, and every episode is scored on its own
    (``_seat_log_probs`` without prefix reuse, a full log-softmax per episode)."""
    P, E, T = traj.rewards.shape
    n = P * E
    rng = np.random.default_rng(seed)
    rng.integers(2**63 - 1)  # the rollout's torch seed, drawn before the game's reset
    state = game.reset(n, rng)
    members = [pairs[:, s].repeat_interleave(episodes) for s in SEATS]
    maps = options.get("partner_maps")
    logp, ent = torch.zeros(n, T, 2), torch.zeros(n, T, 2)
    for t in range(T):
        for s in SEATS:
            legal = game.legal_mask(state, s)
            obs = game.observe(state, s)
            if s == 1 and maps is not None:
                legal = legal.gather(1, maps)
                if game.horizon > 1:
                    obs = game.relabel_observation(state, s, maps)
            logp_all = _seat_log_probs(game, policy, state, s, members[s], obs, legal, None)  # [n, A]
            own = traj.rows[t][s].choice
            logp[:, t, s] = logp_all.gather(1, own[:, None])[:, 0]
            ent[:, t, s] = entropy(logp_all)
        state, _, _ = game.step(state, traj.actions[:, :, t].reshape(n, 2))
    return logp.view(P, E, T, 2), ent.view(P, E, T, 2)


def member_grads(policy, loss: torch.Tensor) -> list[torch.Tensor]:
    policy.bank.zero_grad()
    loss.sum().backward()
    return [p.grad.clone() for p in policy.bank.member_parameters()]


CASES = {
    "lever": ("lever", {"n_levers": 5}, [[0, 0], [1, 2], [2, 1], [1, 1]], 64, {}),
    "lever-otherplay": ("lever", {"n_levers": 5}, [[0, 0], [1, 1], [2, 2]], 64, {"otherplay": True}),
    "cmg-h": ("cmg-h", {}, [[0, 1], [2, 2]], 32, {}),
    "warehouse": ("warehouse", {"moves": 2, "episodes": 2}, [[0, 0], [1, 2], [2, 1]], 8, {}),
    "warehouse-scripted": ("warehouse", {"moves": 2, "episodes": 2, "reward": "goal"}, [[0, -1], [1, -1], [2, 2]], 8, {}),
    "corrective": ("corrective", {}, [[0, 1], [2, 2]], 6, {}),
    "repeated-lever": ("repeated", {"stage": "lever", "rounds": 3, "stage_params": {"n_levers": 4}},
                       [[0, 0], [1, 2]], 16, {}),
    "repeated-partner-last": ("repeated", {"stage": "lever", "rounds": 3, "stage_params": {"n_levers": 4},
                                           "transcript": "partner_last"}, [[0, 0], [1, 2]], 16, {}),
}


def case_setup(game_name: str, params: dict, pair_list: list, episodes: int, otherplay: bool):
    """(game, policy, pairs, rollout options) of a case: pair ids < 0 are a scripted warehouse teacher in seat 1;
    ``otherplay``: one random symmetry per episode relabels seat 1."""
    game = make_game(game_name, **params)
    policy = make_policy()
    pairs = torch.tensor(pair_list)
    if (pairs < 0).any():  # a scripted teacher in seat 1
        teacher = scripted_ids(policy, load_scripted_population("scripted:warehouse:direct", game))
        pairs[pairs < 0] = int(teacher[0])
    options = {}
    if otherplay:
        element = game.symmetries().sample(len(pairs) * episodes, np.random.default_rng(7))
        options["partner_maps"] = torch.as_tensor(element[1], dtype=torch.long)
    return game, policy, pairs, options


@pytest.mark.parametrize("case", list(CASES))
def test_per_row_losses_and_gradients_equal_the_per_episode_computation(case):
    game_name, params, pair_list, episodes, flags = CASES[case]
    game, policy, pairs, options = case_setup(game_name, params, pair_list, episodes, flags.get("otherplay", False))
    traj = rollout(game, policy, pairs, episodes, np.random.default_rng(3), **options)
    assert traj.rows is not None and len(traj.rows) == traj.rewards.shape[2]
    if game.horizon == 1:  # one row per member and seat, whatever the number of episodes
        for s in SEATS:
            assert traj.rows[0][s].logp.shape[0] == len(pairs[:, s].unique())
    ref_logp, ref_ent = replay_per_episode(game, policy, traj, pairs, episodes, 3, options)
    torch.testing.assert_close(traj.logp.detach(), ref_logp.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(traj.entropy.detach(), ref_ent.detach(), atol=1e-5, rtol=1e-5)

    n_ids = int(pairs.max()) + 1
    adv = leave_one_out_advantage(traj.returns + torch.linspace(0, 1, episodes))  # distinct per episode
    pg_rows = rollout_policy_gradient_loss(traj, adv, n_ids)
    ent_rows = rollout_entropy(traj, n_ids)
    pg_ref = policy_gradient_loss(ref_logp, adv, traj.alive, traj.pairs, n_ids)
    ent_ref = entropy_per_member(ref_ent, traj.alive, traj.pairs, n_ids)
    torch.testing.assert_close(pg_rows, pg_ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ent_rows, ent_ref, atol=1e-5, rtol=1e-4)
    assert pg_rows[:N].abs().sum() > 0
    # per-step advantages (the learner's credit: reward_to_go): a different weight for every step
    adv_steps = adv[:, :, None] * torch.linspace(1, -0.5, traj.rewards.shape[2]) + 0.1
    torch.testing.assert_close(rollout_policy_gradient_loss(traj, adv_steps, n_ids),
                               policy_gradient_loss(ref_logp, adv_steps, traj.alive, traj.pairs, n_ids),
                               atol=1e-5, rtol=1e-4)
    grads_rows = member_grads(policy, (pg_rows - 0.3 * ent_rows)[:N])
    grads_ref = member_grads(policy, (pg_ref - 0.3 * ent_ref)[:N])
    assert any(g.abs().sum() > 0 for g in grads_rows)
    for a, b in zip(grads_rows, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    policy.scripted = []


def dense_copy(traj: Trajectories) -> Trajectories:
    """The same samples as per-episode trajectories (no rows): losses then take the per-episode path."""
    return Trajectories(traj.pairs, traj.actions, traj.rewards, traj.alive, logp=traj.logp, entropy=traj.entropy,
                        logp_all=traj.logp_all, observations=traj.observations)


@pytest.mark.parametrize("method,params,game_name", [
    ("selfplay", {}, "lever"), ("otherplay", {}, "lever"), ("mep", {"alpha": 0.5}, "lever"),
    ("trajedi", {"alpha": 1.0, "gamma": 0.5}, "warehouse"), ("trajedi", {"best_response": True}, "lever"),
    ("lipo", {"lambda_xp": 0.7}, "lever"), ("fcp", {}, "lever")])
def test_every_method_loss_is_the_same_per_row_and_per_episode(method, params, game_name):
    game = make_game(game_name, **({"n_levers": 5} if game_name == "lever" else {"moves": 2, "episodes": 1}))
    spec = METHODS[method]
    m = spec.build(spec.config_cls(**params), game, N)
    policy = make_policy(m.n_members)
    m.policy = policy

    def play() -> Trajectories:
        rng = np.random.default_rng(1)
        pairs = m.pairs(1, rng)
        return rollout(game, policy, pairs, 8, rng, **m.rollout_options(pairs, 8, rng))

    rows, dense = play(), dense_copy(play())  # the same samples (same seeds), two graphs
    assert torch.equal(rows.actions, dense.actions) and dense.rows is None
    loss_rows, metrics_rows = m.loss(rows, 0.2)
    loss_dense, metrics_dense = m.loss(dense, 0.2)
    torch.testing.assert_close(loss_rows, loss_dense, atol=1e-5, rtol=1e-4)
    assert metrics_rows == pytest.approx(metrics_dense, abs=1e-5)
    grads_rows, grads_dense = member_grads(policy, loss_rows), member_grads(policy, loss_dense)
    assert any(g.abs().sum() > 0 for g in grads_rows)
    for a, b in zip(grads_rows, grads_dense):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_lipo_cross_play_weights_give_the_per_episode_term():
    torch.manual_seed(0)
    n, E, T = 3, 4, 2
    logp = torch.randn(n * n, E, T, 2, requires_grad=True)
    returns, alive = torch.rand(n * n, E), torch.rand(n * n, E, T) > 0.2
    partner = torch.tensor([1, 2, 0])
    xp = cross_play_loss(logp, returns, alive, n, partner)
    adv = leave_one_out_advantage(returns)
    for i in range(n):  # home: i in seat 0 with j*, away: i in seat 1 with j*
        home, away = i * n + int(partner[i]), int(partner[i]) * n + i
        terms = [(adv[p][:, None] * logp[p, :, :, s] * alive[p]).sum() / alive[p].sum().clamp(min=1)
                 for p, s in ((home, 0), (away, 1))]
        assert torch.allclose(xp[i], (terms[0] + terms[1]) / 2, atol=1e-6)
    assert cross_play_weights(returns, alive, n, partner)[0, :, :, 0].abs().sum() == 0  # (0, 0): self-play


def chi_square(counts: np.ndarray, probs: np.ndarray) -> tuple[float, int]:
    keep = probs > 0
    expected = probs * counts.sum()
    return float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum()), int(keep.sum()) - 1


def test_sample_rows_has_each_rows_law():
    """Interleaved rows with very different counts (one row has a single episode, one many), zero-probability
    actions never drawn, and each row's counts pass a chi-square test against its probabilities."""
    probs = torch.tensor([[0.5, 0.0, 0.25, 0.25, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0], [0.01, 0.09, 0.3, 0.3, 0.3],
                          [0.2, 0.2, 0.2, 0.2, 0.2]])
    sizes = [40_000, 5_000, 60_000, 1]
    row_of = torch.cat([torch.full((k,), u) for u, k in enumerate(sizes)])
    row_of = row_of[torch.randperm(len(row_of), generator=torch.Generator().manual_seed(0))]
    action = sample_rows(probs, row_of, torch.Generator().manual_seed(1))
    assert action.shape == row_of.shape and action.min() >= 0 and action.max() < 5
    assert (probs[row_of, action] > 0).all()
    for u in range(3):
        counts = np.bincount(action[row_of == u].numpy(), minlength=5)
        stat, dof = chi_square(counts, probs[u].numpy())
        if dof:
            assert stat < chi2.ppf(0.999, dof), (u, counts)
        else:
            assert counts[4] == sizes[1]
    # blocks: entry i of row_of stands for 3,000 consecutive episodes of its row
    blocks = torch.tensor([2, 0, 2, 1, 3])
    drawn = sample_rows(probs, blocks, torch.Generator().manual_seed(3), repeat=3000).view(5, 3000)
    assert (probs[blocks[:, None], drawn] > 0).all()
    for u in (0, 2):
        counts = np.bincount(drawn[blocks == u].reshape(-1).numpy(), minlength=5)
        stat, dof = chi_square(counts, probs[u].numpy())
        assert stat < chi2.ppf(0.999, dof), (u, counts)
    assert not torch.equal(drawn[0], drawn[2])  # two blocks of one row: independent draws
    # same seed, same draws; another seed, other draws
    assert torch.equal(action, sample_rows(probs, row_of, torch.Generator().manual_seed(1)))
    assert not torch.equal(action, sample_rows(probs, row_of, torch.Generator().manual_seed(2)))


def test_per_row_rollout_samples_the_policy_with_independent_seats():
    """4,000 episodes of one pair: each seat's actions follow its policy, and the two seats' actions are
    independent within an episode (the joint counts pass a chi-square independence test), as per episode."""
    game = make_game("lever", n_levers=4)
    policy = make_policy()
    traj = rollout(game, policy, torch.tensor([[1, 2]]), 4000, np.random.default_rng(0), grad=False)
    actions = traj.actions[0, :, 0]  # [E, 2]
    for s in SEATS:
        probs = traj.rows[0][s].logp[0].exp().numpy()
        stat, dof = chi_square(np.bincount(actions[:, s].numpy(), minlength=4), probs)
        assert stat < chi2.ppf(0.999, dof)
    joint = np.zeros((4, 4))
    np.add.at(joint, (actions[:, 0].numpy(), actions[:, 1].numpy()), 1)
    expected = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True) / joint.sum()
    assert ((joint - expected) ** 2 / expected).sum() < chi2.ppf(0.999, 9)


def test_modes():
    game = make_game("lever", n_levers=4)
    policy = make_policy()
    pairs = torch.tensor([[0, 1], [2, 2]])
    per_episode = rollout(game, policy, pairs, 8, np.random.default_rng(0), mode="per_episode")
    assert per_episode.rows is None and per_episode.logp.shape == (2, 8, 1, 2)
    per_row = rollout(game, policy, pairs, 8, np.random.default_rng(0))
    assert per_row.logp.shape == per_episode.logp.shape and per_row.logp_all.shape == per_episode.logp_all.shape
    with pytest.raises(ValueError, match="per_row, per_episode"):
        rollout(game, policy, pairs, 8, np.random.default_rng(0), mode="rows")


def test_train_rollout_key_selects_the_path(tmp_path, monkeypatch):
    import adhoc.engine as engine
    from adhoc.config import ROLLOUT_MODES, ConfigError, load_config
    from adhoc.recipes.train_population import train_population

    base = ["game.name=lever", "game.n_levers=4", "method.name=selfplay", "population.size=2", "train.iterations=2",
            "train.episodes_per_pair=8", "train.eval_every=2", "train.eval_episodes=8"]
    modes, real = [], engine.rollout
    monkeypatch.setattr(engine, "rollout", lambda *a, **k: modes.append(k["mode"]) or real(*a, **k))
    for mode in ROLLOUT_MODES:
        pop = train_population(load_config(None, [*base, f"train.rollout={mode}"]), out=tmp_path / mode,
                                      progress=False)
        assert len(pop.names) == 2
    assert modes == ["per_row", "per_row", "per_episode", "per_episode"]
    assert load_config(None, base).train.rollout == "per_row"
    with pytest.raises(ConfigError, match="train.rollout must be one of per_row, per_episode"):
        load_config(None, [*base, "train.rollout=rows"])
