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


def test_mep_bonus_known_answers():
    from adhoc.methods.mep import population_entropy_bonus

    # identical members: −log π(a|s)
    pi = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])  # 2 rows (observations)
    same = torch.log(pi).expand(4, 2, 3)
    actions = torch.tensor([1, 2])
    assert torch.allclose(population_entropy_bonus(same, actions), -torch.log(torch.tensor([0.5, 0.1])))
    # two different members, hand-computed per row: row 0 action 1: mean(0.5, 0.1) = 0.3; row 1 action 0: mean(0.9, 0.2)
    logp = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1]], [[0.9, 0.1], [0.2, 0.8]]]))  # [N=2, R=2, A=2]
    out = population_entropy_bonus(logp, torch.tensor([1, 0]))
    assert torch.allclose(out, -torch.log(torch.tensor([0.3, 0.55])))
    # the released code's bug would read row 0's probabilities for every row; ours differs per row
    assert not torch.isclose(out[1], -torch.log(torch.tensor(0.5 * (0.5 + 0.9))))


def test_mep_trains_through_the_shared_loop(tmp_path):
    from adhoc.config import load_config
    from adhoc.recipes.train_population import train_population

    from pathlib import Path

    config = load_config(Path(__file__).parent.parent / "configs/lever-mep.yaml", ["population.size=2", "train.iterations=3", "train.eval_every=3",
                                                    "train.episodes_per_pair=8", "train.eval_episodes=8"])
    pop = train_population(config, out=tmp_path / "pop", progress=False)
    assert pop.manifest["method"] == {"name": "mep", "alpha": 0.01}


def test_fcp_half_return_checkpoint_known_answer():
    from adhoc.methods.fcp import half_return_checkpoint

    history = torch.tensor([[0.1, 0.1], [0.3, 0.8], [0.55, 1.0], [1.0, 1.0]])  # [C=4, N=2]
    assert half_return_checkpoint(history, torch.tensor([1.0, 1.0])).tolist() == [2, 1]


def test_fcp_population_holds_init_half_and_final_checkpoints(tmp_path):
    from pathlib import Path

    from adhoc.config import load_config
    from adhoc.lm.adapters import AdapterBank, read_adapter_folder
    from adhoc.lm.base import build_builtin
    from adhoc.recipes.train_population import train_population

    config = load_config(Path(__file__).parent.parent / "configs/lever-fcp.yaml",
                         ["population.size=2", "train.iterations=4", "train.eval_every=2",
                          "train.episodes_per_pair=8", "train.eval_episodes=8"])
    pop = train_population(config, out=tmp_path / "pop", progress=False)
    assert sorted(pop.names) == sorted(["member-00", "member-01", "member-00-init", "member-00-half",
                                        "member-01-init", "member-01-half"])
    entry = next(m for m in pop.members if m["name"] == "member-01-init")
    assert entry["checkpoint_of"] == "member-01" and entry["checkpoint"] == "init"
    # the initial checkpoint is exactly the member's seeded initialisation
    model, _ = build_builtin()
    fresh = AdapterBank(model, 2, config.model.lora_rank, config.model.lora_alpha, config.model.target_modules)
    fresh.init_members([m["seed"] for m in pop.members[:2]], b_std=config.model.lora_init_std)
    _, saved = read_adapter_folder(pop.member_dir("member-01-init"))
    for key, value in fresh.peft_state_dict(1).items():
        assert torch.equal(saved[key], value), key
    _, final = read_adapter_folder(pop.member_dir("member-01"))
    assert any(not torch.equal(final[k], saved[k]) for k in saved)
