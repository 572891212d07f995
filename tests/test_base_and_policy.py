"""Base model loading and fingerprints; the policy's exact action distributions."""

import pytest
import torch

from adhoc.errors import UserError
from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import build_builtin, fingerprint, load_base
from adhoc.lm.policy import Policy, entropy, masked_log_softmax


def test_builtin_is_deterministic_and_covers_printable_text():
    a, tok = build_builtin()
    b, _ = build_builtin()
    assert fingerprint(a) == fingerprint(b)
    ids = tok("Weird action_name #42 ~ok", add_special_tokens=False).input_ids
    assert tok.unk_token_id not in ids
    assert tok.tokenize("517") == ["5", "1", "7"]  # digits one by one: equal-width names, equal length


def test_load_local_hf_model_and_fingerprint(tmp_path):
    model, tok = build_builtin()
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded = load_base(str(tmp_path / "m"), device="cpu", dtype="float32")
    assert loaded.fingerprint == fingerprint(model)
    assert loaded.model_id == str(tmp_path / "m")
    assert all(not p.requires_grad for p in loaded.model.parameters())
    # a bf16 load of the same weights has the same fingerprint (weights are hashed at bf16)
    assert load_base(str(tmp_path / "m"), device="cpu", dtype="bfloat16").fingerprint == loaded.fingerprint
    # a changed weight changes it
    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1.0
    assert fingerprint(model) != loaded.fingerprint


def test_bad_base_model_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="config.json"):
        load_base(str(tmp_path / "nothing-here"))
    with pytest.raises(UserError, match="unknown built-in"):
        load_base("builtin:huge")
    with pytest.raises(UserError, match="dtype"):
        load_base("builtin:tiny", dtype="float8")


def naive_scores(base, bank, member, obs, names):
    tok = base.tokenizer
    out = []
    for a in names:
        prompt = [tok.bos_token_id] + tok(obs).input_ids
        act = tok(" " + a, add_special_tokens=False).input_ids
        with torch.no_grad(), bank.route(torch.tensor([member])):
            logp = torch.log_softmax(base.model(input_ids=torch.tensor([prompt + act])).logits[0], -1)
        out.append(sum(float(logp[len(prompt) - 1 + k, t]) for k, t in enumerate(act)))
    return torch.tensor(out)


@pytest.mark.parametrize("names", [["0", "1", "2", "3"], ["001", "017", "3", "hello"]])
def test_policy_scores_equal_full_sequence_likelihood(names):
    base = load_base("builtin:tiny", device="cpu")
    bank = AdapterBank(base.model, 3, target_modules=["q_proj", "v_proj", "lm_head"])
    bank.init_members([1, 2, 3], b_std=0.3)
    policy = Policy(base, bank)
    obs = ["You are player 1 of 2.", "A longer observation. You are player 2 of 2.", "You are player 1 of 2."]
    members = torch.tensor([2, 0, 1])
    with torch.no_grad():
        scores = policy.scores(members, obs, policy.actions(names))
    for r in range(3):
        assert torch.allclose(scores[r], naive_scores(base, bank, int(members[r]), obs[r], names), atol=1e-4)


def test_prefix_actions_get_an_end_token_and_sum_to_one():
    base = load_base("builtin:tiny", device="cpu")
    bank = AdapterBank(base.model, 1, target_modules=["lm_head"])
    policy = Policy(base, bank)
    table = policy.actions(["1", "12", "123"])
    assert (table.ids[table.mask] == base.tokenizer.eos_token_id).sum() == 3
    logp = masked_log_softmax(policy.scores(torch.tensor([0]), ["pick"], table), None)
    assert torch.allclose(logp.exp().sum(), torch.tensor(1.0))


def test_masked_log_softmax_and_entropy_known_values():
    scores = torch.tensor([[0.0, 0.0, 5.0, 0.0]])
    legal = torch.tensor([[True, True, False, False]])
    logp = masked_log_softmax(scores, legal)
    assert torch.allclose(logp[0, :2].exp(), torch.tensor([0.5, 0.5]))
    assert logp[0, 2] == float("-inf")
    assert torch.allclose(entropy(logp), torch.log(torch.tensor([2.0])))
    assert torch.allclose(entropy(torch.log(torch.tensor([[1.0, 0.0]]))), torch.tensor([0.0]))
