"""Hugging Face interop: a GPT-2-style base (``Conv1D`` layers) and a Llama-style base, each saved locally with
``save_pretrained``, train a population through ``train_population``; every exported member loads with
``peft.PeftModel.from_pretrained`` (and ``AutoPeftModelForCausalLM``, from the member folder alone) and gives the
AdapterBank's logits. Nothing is downloaded."""

import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from test_base_and_policy import byte_level_tokenizer

from adhoc.errors import UserError
from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import load_base


def save_tiny_gpt2(path: Path) -> Path:
    """A tiny random GPT-2: Conv1D attention and MLP (weights stored [in, out]), learned positions, tied head."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = byte_level_tokenizer(eos="<|endoftext|>")
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=256,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_llama(path: Path) -> Path:
    """A tiny random Llama: nn.Linear projections, rotary positions, an untied head."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_level_tokenizer(eos="</s>")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


BASES = {"gpt2": (save_tiny_gpt2, ["c_attn", "c_proj"]), "llama": (save_tiny_llama, ["q_proj", "v_proj", "lm_head"])}


def bank_logits(base, bank, member: int, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), bank.route(torch.full((ids.shape[0],), member)):
        return base.model(input_ids=ids).logits


@pytest.mark.parametrize("kind", sorted(BASES))
def test_trained_members_load_with_peft_with_identical_logits(tmp_path, kind):
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM

    from adhoc.config import load_config
    from adhoc.population import Population
    from adhoc.recipes.train_population import train_population

    save, targets = BASES[kind]
    path = save(tmp_path / f"{kind}-tiny")
    cfg = tmp_path / f"{kind}-lever.yaml"
    cfg.write_text(yaml.safe_dump({
        "game": {"name": "lever", "n_levers": 4}, "method": "selfplay",
        "model": {"base": str(path), "device": "cpu", "dtype": "float32", "lora_rank": 2, "lora_alpha": 4,
                  "target_modules": targets},
        "population": {"size": 2, "seed": 0},
        "train": {"iterations": 2, "episodes_per_pair": 4, "eval_every": 2, "eval_episodes": 4}}))
    pop = train_population(load_config(cfg), out=tmp_path / "pop", progress=False)
    assert pop.names == ["member-00", "member-01"]

    base = load_base(str(path), device="cpu", dtype="float32")
    bank = Population.load(tmp_path / "pop").build_bank(base)
    assert {name.rpartition(".")[2] for name in bank.layers} == set(targets)
    assert all(layer.conv1d == (kind == "gpt2") for layer in bank.layers.values())
    tokenizer = base.tokenizer
    ids = torch.tensor([tokenizer("You are player 1 of 2. Pick a lever: 0 1 2 3").input_ids])
    expected = [bank_logits(base, bank, m, ids) for m in range(2)]
    assert not torch.allclose(expected[0], expected[1], atol=1e-4)  # the members differ
    for m, name in enumerate(pop.names):
        folder = pop.member_dir(name)
        adapter = json.loads((folder / "adapter_config.json").read_text())
        assert adapter["base_model_name_or_path"] == str(path.resolve())  # loadable from any directory
        assert adapter["fan_in_fan_out"] is (kind == "gpt2")  # peft's flag for Conv1D weights [in, out]
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*fan_in_fan_out.*")  # peft would not correct the flag
            model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path), folder).eval()
        with torch.no_grad():
            assert torch.allclose(model(input_ids=ids).logits, expected[m], atol=1e-5), (kind, name)
    # the member folder alone names its base: one call loads both
    auto = AutoPeftModelForCausalLM.from_pretrained(pop.member_dir("member-01")).eval()
    with torch.no_grad():
        assert torch.allclose(auto(input_ids=ids).logits, expected[1], atol=1e-5)


def test_gpt2_conv1d_bank_equals_peft_on_padded_batches_and_gradients_flow(tmp_path):
    """Conv1D layers banked next to an nn.Linear one (GPT-2's head): peft flips its fan_in_fan_out flag at the
    head and the outputs still agree; left-padded rows of different members; gradients reach every adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    path = save_tiny_gpt2(tmp_path / "gpt2")
    base = load_base(str(path), device="cpu", dtype="float32")
    targets = ["c_attn", "c_fc", "c_proj", "lm_head"]
    bank = AdapterBank(base.model, 2, rank=2, alpha=4, target_modules=targets, base_model_id=str(path))
    bank.init_members([5, 6], b_std=0.3)
    tok = base.tokenizer
    enc = tok(["short", "a longer observation"], return_tensors="pt", padding=True, padding_side="left")
    with bank.route(torch.tensor([1, 0])):
        logits = base.model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).logits
    logits.sum().backward()
    assert all(p.grad is not None and p.grad[m].abs().sum() > 0 for p in bank.member_parameters() for m in (0, 1))
    for row, member in ((0, 1), (1, 0)):
        bank.export_member(member, tmp_path / f"m{member}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the flag flip at lm_head
            model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path), tmp_path / f"m{member}")
        with torch.no_grad():
            ref = model.eval()(input_ids=enc.input_ids[row:row + 1], attention_mask=enc.attention_mask[row:row + 1])
        real = enc.attention_mask[row].bool()
        assert torch.allclose(logits[row][real].detach(), ref.logits[0][real], atol=1e-5)
    # the bank imports its own export back (Conv1D shapes: A [r, in], B [out, r] as for nn.Linear)
    other = AdapterBank(load_base(str(path), device="cpu").model, 1, rank=2, alpha=4, target_modules=targets)
    other.import_member(0, tmp_path / "m1")
    for a, b in zip(bank.layers.values(), other.layers.values()):
        assert torch.equal(a.lora_A[1], b.lora_A[0]) and torch.equal(a.lora_B[1], b.lora_B[0])


def test_unknown_target_module_lists_the_models_linear_layers(tmp_path):
    path = save_tiny_gpt2(tmp_path / "gpt2")
    base = load_base(str(path), device="cpu", dtype="float32")
    with pytest.raises(UserError, match=r"q_proj, v_proj not found among the base model's linear layers "
                                        r"\(c_attn, c_proj, c_fc, lm_head\)"):
        AdapterBank(base.model, 2, target_modules=["q_proj", "c_attn", "v_proj"])
    AdapterBank(base.model, 1, target_modules=["c_attn"])
    with pytest.raises(UserError, match="already carries an adapter bank"):
        AdapterBank(base.model, 1, target_modules=["c_attn"])


def test_cache_keyword_follows_the_installed_transformers(tmp_path):
    """The key/value cache goes in under the name the model's forward takes (``cache`` in transformers 5.x,
    ``past_key_values`` before) and no deprecation warning is raised on the multi-token path."""
    import inspect

    from adhoc.lm.policy import Policy, cache_argument

    base = load_base(str(save_tiny_llama(tmp_path / "llama")), device="cpu", dtype="float32")
    params = inspect.signature(base.model.forward).parameters
    assert cache_argument(base.model) == ("cache" if "cache" in params else "past_key_values")

    class Old(torch.nn.Module):
        def forward(self, input_ids=None, past_key_values=None, use_cache=None):
            pass

    assert cache_argument(Old()) == "past_key_values"
    bank = AdapterBank(base.model, 1, rank=2, alpha=4, target_modules=["q_proj"])
    policy = Policy(base, bank)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = policy.scores(torch.tensor([0]), ["pick one"], policy.actions(["001", "017", "3"]))  # multi-token
    assert scores.shape == (1, 3) and torch.isfinite(scores).all()


def test_fingerprint_config_is_the_same_under_transformers_4_and_5():
    """transformers 4.x writes rope_theta + rope_scaling and leaves unset values out; 5.x writes rope_parameters
    and some None or default values: the fingerprint hashes one canonical form (the built-in base's, unchanged)."""
    from adhoc.lm.base import build_builtin, canonical_config, fingerprint

    v4 = {"hidden_size": 8, "rope_scaling": None, "rope_theta": 10000.0, "transformers_version": "4.56.2"}
    v5 = {"hidden_size": 8, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "pad_token_id": None,
          "tie_word_embeddings": True, "add_cross_attention": False, "transformers_version": "5.24.0"}
    assert canonical_config(v4) == canonical_config(v5) == {"hidden_size": 8, "rope_parameters": v5["rope_parameters"]}
    scaled4 = {"rope_theta": 5e5, "rope_scaling": {"type": "llama3", "factor": 8.0}, "tie_word_embeddings": False}
    scaled5 = {"rope_parameters": {"rope_type": "llama3", "factor": 8.0, "rope_theta": 5e5}, "tie_word_embeddings": False}
    assert canonical_config(scaled4) == canonical_config(scaled5) == scaled5
    model, _ = build_builtin()
    assert canonical_config(model.config.to_diff_dict())["rope_parameters"]["rope_theta"] == 10000.0
    assert fingerprint(model) == "2e49d33b6196b9d8"  # what the shipped populations record
