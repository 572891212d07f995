"""train.algorithm=ppo: GAE and the clipped losses against hand-computed values and a straightforward reference,
the replay against the rollout's own log-probabilities, the value heads' export and import, and the config's
one-line refusals, and scripts/ppo_vs_reinforce.py."""

import json
import re
import sys

import numpy as np
import pytest
import torch
from conftest import load_script

from adhoc.config import load_config
from adhoc.errors import UserError
from adhoc.games import make_game
from adhoc.lm.adapters import VALUE_HEAD, AdapterBank
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.methods.ppo import (clipped_surrogate, clipped_value_loss, gae, group_mean, member_losses,
                               normalize_per_group, replay)
from adhoc.rollout import rollout


# ---------------------------------------------------------------------------------------------- GAE
def test_gae_hand_computed():
    # every step a decision: δ2 = 2 − 0.1, A2 = 1.9; δ1 = 0 + 0.9·0.1 − 0.2, A1 = −0.11 + 0.72·1.9 = 1.258;
    # δ0 = 1 + 0.9·0.2 − 0.5 = 0.68, A0 = 0.68 + 0.72·1.258 = 1.58576
    adv = gae(torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([[0.5, 0.2, 0.1]]), torch.ones(1, 3, dtype=torch.bool),
              0.9, 0.8)
    assert torch.allclose(adv, torch.tensor([[1.58576, 1.258, 1.9]]))
    # a turn-based seat waits at step 1: decision 0 collects the rewards of steps 0 and 1 (1 + 3 = 4)
    adv = gae(torch.tensor([[1.0, 3.0, 2.0]]), torch.tensor([[0.5, 7.0, 0.1]]), torch.tensor([[True, False, True]]),
              0.9, 0.8)
    assert torch.allclose(adv, torch.tensor([[4 + 0.9 * 0.1 - 0.5 + 0.72 * 1.9, 0.0, 1.9]]))
    # a reward before the seat's first decision is dropped; an ended episode's steps are no decisions
    adv = gae(torch.tensor([[5.0, 1.0, 0.0]]), torch.tensor([[9.0, 0.3, 0.0]]), torch.tensor([[False, True, False]]),
              0.9, 0.8)
    assert torch.allclose(adv, torch.tensor([[0.0, 0.7, 0.0]]))


def reference_gae(rewards, values, decided, gamma, lam):
    """Per sequence: compact its decisions (each collecting the rewards up to the next), then CleanRL's loop."""
    out = torch.zeros_like(values)
    for b in range(rewards.shape[0]):
        steps = [t for t in range(rewards.shape[1]) if decided[b, t]]
        r = [float(rewards[b, t:(steps[k + 1] if k + 1 < len(steps) else rewards.shape[1])].sum())
             for k, t in enumerate(steps)]
        v = [float(values[b, t]) for t in steps]
        last = 0.0
        for k in reversed(range(len(steps))):
            nonterminal = 1.0 if k + 1 < len(steps) else 0.0
            next_value = v[k + 1] if nonterminal else 0.0
            delta = r[k] + gamma * next_value * nonterminal - v[k]
            last = delta + gamma * lam * nonterminal * last
            out[b, steps[k]] = last
    return out


def test_gae_matches_a_reference_on_random_turns():
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(20, 9, generator=g), torch.randn(20, 9, generator=g)
    decided = torch.rand(20, 9, generator=g) < 0.6
    for gamma, lam in ((0.99, 0.95), (1.0, 1.0), (0.5, 0.0)):
        assert torch.allclose(gae(rewards, values, decided, gamma, lam),
                              reference_gae(rewards, values, decided, gamma, lam), atol=1e-5)


def test_gae_with_lambda_one_and_gamma_one_is_return_to_go_minus_value():
    rewards, values = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.5, 0.5, 0.5]])
    adv = gae(rewards, values, torch.ones(1, 3, dtype=torch.bool), 1.0, 1.0)
    assert torch.allclose(adv, torch.tensor([[5.5, 4.5, 2.5]]))


# ---------------------------------------------------------------------------------------------- the losses
def test_clipped_surrogate_hand_computed():
    logp = torch.tensor([0.5, 0.5, -0.5, -0.5])
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss = clipped_surrogate(logp, torch.zeros(4), adv, 0.2)
    # ρ = e^0.5 ≈ 1.6487: A > 0 is capped at 1.2, A < 0 keeps ρ; ρ = e^-0.5 ≈ 0.6065: A > 0 keeps ρ, A < 0 takes 0.8
    assert torch.allclose(loss, torch.tensor([-1.2, np.exp(0.5), -np.exp(-0.5), 0.8], dtype=torch.float32))
    # the clipped side passes no gradient
    logp = torch.tensor([0.5, -0.5], requires_grad=True)
    clipped_surrogate(logp, torch.zeros(2), torch.tensor([1.0, 1.0]), 0.2).sum().backward()
    assert logp.grad[0] == 0 and torch.isclose(logp.grad[1], -torch.tensor(np.exp(-0.5), dtype=torch.float32))


def test_clipped_value_loss_hand_computed():
    v, old, ret = torch.tensor([1.0, 0.6]), torch.tensor([0.5, 0.5]), torch.tensor([2.0, 2.0])
    # entry 0: unclipped (1 − 2)² = 1, clipped (0.5 + 0.2 − 2)² = 1.69 → ½·1.69; entry 1: inside the clip → ½·1.96
    assert torch.allclose(clipped_value_loss(v, old, ret, 0.2), torch.tensor([0.845, 0.98]))
    assert torch.allclose(clipped_value_loss(v, old, ret, None), torch.tensor([0.5, 0.98]))


def test_normalize_per_group_and_group_mean():
    g = torch.Generator().manual_seed(1)
    x, group = torch.randn(30, generator=g), torch.randint(0, 3, (30,), generator=g)
    out = normalize_per_group(x, group, 4)
    for k in range(3):
        sel = x[group == k]
        assert torch.allclose(out[group == k], (sel - sel.mean()) / (sel.std() + 1e-8), atol=1e-5)
        assert torch.isclose(group_mean(x, group, 4)[k], sel.mean())
    assert group_mean(x, group, 4)[3] == 0  # an empty group
    assert normalize_per_group(torch.tensor([3.0]), torch.tensor([0]), 1) == 0  # one entry: std 0


def test_member_losses_average_each_members_own_entries():
    new = {"logp": torch.zeros(4), "entropy": torch.tensor([1.0, 2.0, 3.0, 4.0]), "values": torch.zeros(4)}
    old = {"logp": torch.zeros(4), "values": torch.zeros(4), "advantages": torch.tensor([1.0, 3.0, -2.0, 0.0]),
           "returns": torch.tensor([1.0, 1.0, 2.0, 0.0]), "member": torch.tensor([0, 0, 1, 1])}
    entries = torch.tensor([True, True, True, False])
    losses, parts = member_losses(new, old, entries, 2, 0.2, None, 0.5, 0.1, normalize=False)
    # ρ = 1: member 0: −(1 + 3)/2 + 0.5·½(1 + 1)/2 − 0.1·(1 + 2)/2; member 1 (one entry): 2 + 0.5·½·4 − 0.1·3
    assert torch.allclose(losses, torch.tensor([-2 + 0.25 - 0.15, 2 + 1 - 0.3]))
    assert torch.allclose(parts["entropy"], torch.tensor([1.5, 3.0]))


# ---------------------------------------------------------------------------------------------- replay, heads
def _policy(n: int) -> Policy:
    base = load_base("builtin:tiny", device="cpu", dtype="float32")
    bank = AdapterBank(base.model, n, 2, 4.0, ["q_proj", "v_proj", "lm_head"])
    bank.init_members(list(range(n)), b_std=0.3)
    bank.add_value_heads(base.model.config.hidden_size)
    with torch.no_grad():
        bank.value_weight.copy_(torch.randn(bank.value_weight.shape, generator=torch.Generator().manual_seed(2)))
        bank.value_bias.copy_(torch.tensor([0.5, -1.0, 2.0][:n]))
    return Policy(base, bank)


@pytest.mark.parametrize("game_name, params, episodes", [("lever", {"n_levers": 5}, 4),
                                                         ("repeated", {"stage": "lever", "rounds": 3}, 3),
                                                         ("warehouse", {"moves": 2, "episodes": 1}, 2)])
def test_replay_gives_the_rollouts_log_probs_and_each_members_value(game_name, params, episodes):
    """The replay re-scores a subset of episodes: the taken actions' log-probs are the rollout's own where the seat
    decided (0 elsewhere: dead steps, the other seat's turn in the warehouse), and each value is the member's head
    on the base's last hidden state of the observation encoded whole (the replay reuses prefixes)."""
    game, policy = make_game(game_name, **params), _policy(3)
    pairs = torch.tensor([[0, 0], [1, 2], [2, 1]])
    traj = rollout(game, policy, pairs, episodes, np.random.default_rng(0), grad=False)
    E, T = episodes, traj.rewards.shape[2]
    index = torch.tensor([1, E + 1, 2 * E])  # some episodes of every pair, in their flat pair-major order
    with torch.no_grad():
        out = replay(policy, game, traj, index)
    logp = traj.logp.reshape(-1, T, 2)[index]
    decided = out["decided"]
    assert decided.any() and (game_name != "warehouse" or not decided.all())
    assert torch.allclose(out["logp"][decided], logp[decided], atol=1e-5)
    assert torch.equal(out["logp"][~decided], torch.zeros(int((~decided).sum())))
    for i, e in enumerate(index.tolist()):
        for t in range(T):
            for s in range(2):
                if decided[i, t, s]:
                    member = pairs[e // E, s]
                    _, hidden = policy.scores(member[None], [traj.observations[t][s][e]],
                                              policy.actions(game.action_names(s)), hidden=True)
                    expect = policy.bank.values(hidden, member[None])[0]
                    assert torch.isclose(out["values"][i, t, s], expect, atol=1e-4)


def test_replay_of_a_per_episode_rollout_reads_its_legal_masks_off_logp_all():
    game, policy = make_game("warehouse", moves=2, episodes=1), _policy(2)
    traj = rollout(game, policy, torch.tensor([[0, 1]]), 2, np.random.default_rng(1), grad=False, mode="per_episode")
    with torch.no_grad():
        out = replay(policy, game, traj, torch.arange(2))
    decided = out["decided"]
    assert decided.any() and not decided.all()
    assert torch.allclose(out["logp"][decided], traj.logp.reshape(2, -1, 2)[decided], atol=1e-5)


def test_value_heads_export_beside_the_peft_adapter_and_load_back(tmp_path):
    policy = _policy(3)
    bank = policy.bank
    bank.export_member(1, tmp_path / "m")
    assert (tmp_path / "m" / VALUE_HEAD).is_file()
    other = AdapterBank(load_base("builtin:tiny", device="cpu", dtype="float32").model, 2, 2, 4.0,
                        ["q_proj", "v_proj", "lm_head"])
    other.add_value_heads(bank.value_weight.shape[1])
    other.import_member(0, tmp_path / "m")
    assert torch.equal(other.value_weight[0], bank.value_weight[1]) and other.value_bias[0] == bank.value_bias[1]
    assert len(bank.member_parameters()) == len(other.member_parameters()) == 2 * len(bank.layers) + 2
    # a REINFORCE bank (no heads) exports exactly the peft folder; a PPO bank reads such a folder with a zero head
    plain = AdapterBank(load_base("builtin:tiny", device="cpu", dtype="float32").model, 1, 2, 4.0,
                        ["q_proj", "v_proj", "lm_head"])
    plain.export_member(0, tmp_path / "plain")
    assert sorted(f.name for f in (tmp_path / "plain").iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    other.import_member(1, tmp_path / "plain")
    assert not other.value_weight[1].any() and other.value_bias[1] == 0
    (tmp_path / "m" / VALUE_HEAD).write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="value_head.safetensors is corrupt"):
        other.import_member(0, tmp_path / "m")


# ---------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("overrides, message", [
    (["train.algorithm=a2c"], "train.algorithm must be one of reinforce, ppo (got 'a2c')"),
    (["method.name=otherplay", "train.algorithm=ppo"], "not available for method otherplay: its relabelled"),
    (["method.name=lipo", "train.algorithm=ppo"], "not available for method lipo: its cross-play term"),
    (["train.algorithm=ppo", "train.episodes_per_pair=4", "train.ppo_minibatches=8"],
     "train.ppo_minibatches=8 is more than train.episodes_per_pair=4"),
    (["train.algorithm=ppo", "train.ppo_clip=0"], "train.ppo_clip"),
    (["train.algorithm=ppo", "train.ppo_gamma=1.5"], "train.ppo_gamma"),
    (["train.algorithm=ppo", "backend=ray"], "backend: local only"),
])
def test_config_refuses_in_one_line(overrides, message):
    with pytest.raises(UserError, match=re.escape(message)) as info:
        load_config(None, ["game.name=lever", "method.name=selfplay", *overrides])
    assert "\n" not in str(info.value)


def test_ppo_self_play_learns_the_lever_game(tmp_path):
    """A few PPO iterations of self-play on the one-shot lever game beat chance (1/4·1/4·… of matching levers)."""
    from adhoc.recipes.train_population import train_population

    config = load_config(None, ["game.name=lever", "game.n_levers=4", "method.name=selfplay", "population.size=2", "train.iterations=8",
                                "train.episodes_per_pair=16", "train.eval_every=8", "train.eval_episodes=64",
                                "train.entropy_coef=0.0", "train.lr=0.05", "train.algorithm=ppo"])
    pop = train_population(config, tmp_path / "ppo", progress=False)
    assert min(m["self_play_return"] for m in pop.manifest["members"]) > 0.6
    assert all((pop.member_dir(name) / VALUE_HEAD).is_file() for name in pop.names)


def test_mep_shapes_ppos_rewards_step_by_step_as_its_reinforce_return(tmp_path):
    """MEP's PPO rewards: r_t + α Σ_seats −log π̄ at every step, for both seats; summed over the steps they are the
    shaped return REINFORCE trains on. And MEP trains with PPO through the shared loop."""
    from adhoc.methods.mep import MEP, MEPConfig
    from adhoc.recipes.train_population import train_population

    game, policy = make_game("repeated", stage="lever", rounds=3), _policy(3)
    mep = MEP(MEPConfig(alpha=0.5), game, 3)
    mep.policy = policy
    traj = rollout(game, policy, torch.tensor([[0, 0], [1, 1], [2, 2]]), 4, np.random.default_rng(3), grad=False)
    rewards, metrics = mep.ppo_rewards(traj)
    assert rewards.shape == (3, 4, traj.rewards.shape[2], 2) and torch.equal(rewards[..., 0], rewards[..., 1])
    assert torch.allclose(rewards[..., 0].sum(2), traj.returns + 0.5 * mep.bonus(traj), atol=1e-5)
    assert metrics["train/population_entropy_bonus"] == pytest.approx(float(mep.bonus(traj).mean()), rel=1e-5)
    config = load_config(None, ["game.name=lever", "game.n_levers=4", "method.name=mep", "population.size=2",
                                "train.iterations=2", "train.episodes_per_pair=4", "train.eval_every=2",
                                "train.eval_episodes=8", "train.algorithm=ppo", "train.ppo_minibatches=2"])
    pop = train_population(config, tmp_path / "mep", progress=False)
    assert all((pop.member_dir(name) / VALUE_HEAD).is_file() for name in pop.names)


def test_fcp_with_ppo_keeps_each_checkpoints_value_head(tmp_path):
    """FCP trained by PPO: its initial checkpoints carry the untrained value heads (0) and its final members the
    trained ones, each beside its checkpoint's adapter, and a bank loads every one back."""
    from safetensors.torch import load_file

    from adhoc.recipes.train_population import train_population

    config = load_config(None, ["game.name=lever", "game.n_levers=4", "method.name=fcp", "population.size=2",
                                "train.iterations=4", "train.episodes_per_pair=8", "train.eval_every=2",
                                "train.eval_episodes=16", "train.algorithm=ppo", "train.ppo_minibatches=2"])
    pop = train_population(config, tmp_path / "fcp", progress=False)
    assert pop.names == ["member-00", "member-01", "member-00-init", "member-00-half", "member-01-init",
                         "member-01-half"]
    heads = {name: load_file(str(pop.member_dir(name) / VALUE_HEAD)) for name in pop.names}
    for i in ("00", "01"):
        assert not heads[f"member-{i}-init"]["weight"].any() and heads[f"member-{i}-init"]["bias"].item() == 0
        assert heads[f"member-{i}"]["weight"].abs().sum() > 0
    a, base = pop.manifest["adapter"], load_base("builtin:tiny", device="cpu", dtype="float32")
    bank = AdapterBank(base.model, 6, a["rank"], a["alpha"], a["target_modules"])
    bank.add_value_heads(base.model.config.hidden_size)
    for k, name in enumerate(pop.names):
        bank.import_member(k, pop.member_dir(name))
        assert torch.equal(bank.value_weight[k].detach(), heads[name]["weight"])


def test_ppo_vs_reinforce_script_trains_both_and_prints_the_table(tmp_path, monkeypatch, capsys):
    script = load_script("ppo_vs_reinforce")
    monkeypatch.setattr(sys, "argv", ["ppo_vs_reinforce.py", "configs/lever-selfplay.yaml", "--seeds", "0", "--out",
                                      str(tmp_path), "--crossplay-episodes", "4", "population.size=2",
                                      "train.iterations=2", "train.episodes_per_pair=4", "train.eval_every=2",
                                      "train.eval_episodes=4"])
    assert script.main() == 0
    out = capsys.readouterr().out
    assert "| reinforce | 0 |" in out and "| ppo | 0 |" in out and "time per iteration, ppo / reinforce" in out
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["algorithm"] for r in rows] == ["reinforce", "ppo"] and all(r["iteration_s"] > 0 for r in rows)
    assert (tmp_path / "ppo-seed0" / "members" / "member-00" / VALUE_HEAD).is_file()
    assert not (tmp_path / "reinforce-seed0" / "members" / "member-00" / VALUE_HEAD).exists()
