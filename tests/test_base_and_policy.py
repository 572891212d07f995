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


# ---------------------------------------------------------------------------- a non-built-in base
def byte_level_tokenizer(eos=None):
    """Byte-level BPE without merges (every text tokenizes, one token per byte), no BOS and no pad token;
    ``eos``: an end-of-text token appended to the vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    if eos is not None:
        vocab[eos] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos)


def save_tiny_qwen2(path):
    """A tiny random Qwen2-architecture causal LM saved like a hub checkpoint: grouped-query attention (2 key/value
    heads for 4 query heads), tied embeddings, and a byte-level BPE tokenizer with an end-of-text token but,
    like Qwen2's, no BOS token (and no pad token)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = byte_level_tokenizer(eos="<|endoftext|>")
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def naive_scores_no_bos(base, bank, member, obs, names):
    """log p(tokens(a) | o) by full-sequence forward passes, one per action (the prompt has no BOS)."""
    tok = base.tokenizer
    prompt = tok(obs).input_ids
    out = []
    for a in names:
        act = tok(" " + a, add_special_tokens=False).input_ids
        with torch.no_grad(), bank.route(torch.tensor([member])):
            logp = torch.log_softmax(base.model(input_ids=torch.tensor([prompt + act])).logits[0], -1)
        out.append(sum(float(logp[len(prompt) - 1 + k, t]) for k, t in enumerate(act)))
    return torch.tensor(out)


def test_qwen2_style_local_base_scores_actions_and_trains(tmp_path):
    import numpy as np
    import yaml

    from adhoc.config import load_config
    from adhoc.games import make_game
    from adhoc.population import Population
    from adhoc.recipes.train_population import train_population
    from adhoc.rollout import rollout

    path = str(save_tiny_qwen2(tmp_path / "qwen2-tiny"))
    base = load_base(path, device="cpu", dtype="float32")
    assert base.tokenizer.bos_token_id is None and base.tokenizer.pad_token_id == base.tokenizer.eos_token_id
    assert base.model.config.num_key_value_heads < base.model.config.num_attention_heads
    assert base.fingerprint == load_base(path, device="cpu", dtype="float32").fingerprint
    bank = AdapterBank(base.model, 3, rank=2, alpha=4, target_modules=["q_proj", "v_proj", "lm_head"],
                       base_model_id=path)
    bank.init_members([1, 2, 3], b_std=0.3)
    policy = Policy(base, bank)
    obs = ["You are player 1 of 2.", "A longer observation. You are player 2 of 2.", "Pick."]
    assert policy.tokens(obs[0]) == base.tokenizer(obs[0]).input_ids  # nothing prepended without a BOS
    members = torch.tensor([2, 0, 1])
    # byte-level actions: " 3" is two tokens, so this is the cached multi-token path (keys/values of 2 heads)
    for names in (["0", "1", "2", "3"], ["001", "017", "3", "hello"]):
        with torch.no_grad():
            scores = policy.scores(members, obs, policy.actions(names))
        for r in range(3):
            expected = naive_scores_no_bos(base, bank, int(members[r]), obs[r], names)
            assert torch.allclose(scores[r], expected, atol=1e-4), (names, r)
    assert not torch.allclose(scores[0], scores[2], atol=1e-3)  # members differ
    # a rollout of the lever game on it: exact log-probabilities with gradients into the members' adapters
    game = make_game("lever", n_levers=4)
    traj = rollout(game, policy, torch.tensor([[0, 1], [2, 2]]), 4, np.random.default_rng(0))
    traj.logp.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in bank.member_parameters())

    # one tiny train-population run on this base, through the config
    cfg = tmp_path / "qwen2-lever.yaml"
    cfg.write_text(yaml.safe_dump({
        "game": {"name": "lever", "n_levers": 4}, "method": "selfplay",
        "model": {"base": path, "device": "cpu", "dtype": "float32", "lora_rank": 2, "lora_alpha": 4,
                  "target_modules": ["q_proj", "v_proj", "lm_head"]},
        "population": {"size": 2, "seed": 0},
        "train": {"iterations": 2, "episodes_per_pair": 4, "eval_every": 2, "eval_episodes": 4}}))
    pop = train_population(load_config(cfg), out=tmp_path / "pop", progress=False)
    assert pop.manifest["base_model"]["id"] == path
    assert pop.manifest["base_model"]["fingerprint"] == base.fingerprint
    assert len(pop.members) == 2 and Population.load(tmp_path / "pop").names == pop.names


def test_tokenizer_without_special_tokens_or_beyond_the_model_is_handled():
    """No EOS, no pad, no BOS: padding uses token 0 and scores stay exact; prefix actions that would need an end
    token are refused in one line; a special token the model cannot embed is refused at load."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from adhoc.lm.base import BaseModel, fit_tokenizer

    tokenizer = byte_level_tokenizer()
    n_vocab = len(tokenizer)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=n_vocab, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2)).eval()
    assert tokenizer.eos_token is None and tokenizer.pad_token is None
    fit_tokenizer(tokenizer, model, "bare")
    assert tokenizer.pad_token_id == 0
    model.requires_grad_(False)
    base = BaseModel(model, tokenizer, "bare", fingerprint(model), torch.device("cpu"), torch.float32)
    bank = AdapterBank(model, 2, rank=2, alpha=4, target_modules=["q_proj", "v_proj"])
    bank.init_members([1, 2], b_std=0.3)
    policy = Policy(base, bank)
    names, obs = ["0", "1", "22"], ["short", "a longer observation"]  # different lengths: left padding
    with torch.no_grad():
        scores = policy.scores(torch.tensor([0, 1]), obs, policy.actions(names))
    for r in range(2):
        assert torch.allclose(scores[r], naive_scores_no_bos(base, bank, r, obs[r], names), atol=1e-4)
    with pytest.raises(UserError, match="no end-of-sequence token"):
        policy.actions(["1", "12"])
    # a tokenizer with a special token beyond the model's embeddings (here: one added to it)
    tokenizer.add_special_tokens({"eos_token": "<|end|>"})
    assert tokenizer.eos_token_id == n_vocab
    with pytest.raises(UserError, match=r"eos token '<\|end\|>' has id 256, outside the model's 256 token embeddings"):
        fit_tokenizer(tokenizer, model, "bare")
