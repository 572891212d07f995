"""adhoc pretrain-base and base-card: the synthetic data, determinism, resume, the saved folder, the shipped
builtin:copy base and its card."""

import json
import signal

import numpy as np
import pytest
import torch

from adhoc import checkpoint
from adhoc.cli import main
from adhoc.errors import Interrupted, UserError
from adhoc.lm import pretrain
from adhoc.lm.base import BUILTIN_MODELS, builtin_tokenizer, load_base, read_card
from adhoc.lm.pretrain import (SYNTHETIC, PretrainConfig, Sampler, Source, copy_accuracy, lr_at, parse_arch,
                               parse_data, pretrain_base)

FAST = dict(arch="tiny,hidden=32,ffn=64", steps=6, batch=4, seq_len=32, warmup=2, eval_every=3, checkpoint_every=3)


def test_arch_and_data_specs():
    spec = parse_arch("tiny,hidden=128,ffn=256")
    assert (spec.hidden_size, spec.intermediate_size, spec.num_hidden_layers) == (128, 256, 2)
    assert parse_arch("small") == BUILTIN_MODELS["small"]
    assert parse_arch("hidden=96").hidden_size == 96
    for bad in ("huge", "tiny,width=3", "tiny,hidden=0", "tiny,hidden=100,heads=3", "copy"):
        with pytest.raises(UserError, match="--arch"):
            parse_arch(bad)
    sources = parse_data("repeat=0.5,recall-small")
    assert [(s.name, s.weight) for s in sources] == [("repeat", 0.5), ("recall-small", 1.0)]
    for bad, match in (("copying", "unknown source"), ("repeat=-1", "positive"), ("repeat=nan", "positive"),
                       ("text:/no/such/file", "no such file")):
        with pytest.raises(UserError, match=match):
            parse_data(bad)


@pytest.mark.parametrize("source", SYNTHETIC)
def test_every_predictable_token_completes_an_earlier_bigram(source):
    """What the copy accuracy counts is answerable from context: the token before a predictable one occurred
    earlier followed by it (an induction completion); and the sequences are deterministic for a seed."""
    tokenizer = builtin_tokenizer()
    sampler = Sampler([Source(source, 1.0)], tokenizer, 128)
    ids, attn, pred, _ = sampler.batch(16, np.random.default_rng(0))
    again, *_ = sampler.batch(16, np.random.default_rng(0))
    assert torch.equal(ids, again) and attn.all() and pred.sum() > 16 * 10
    for row, mask in zip(ids.tolist(), pred.tolist()):
        assert row[0] == tokenizer.bos_token_id and not mask[0]
        for i in (i for i, m in enumerate(mask) if m):
            assert any(row[j] == row[i - 1] and row[j + 1] == row[i] for j in range(i - 1)), (source, i)
    if source.endswith("-small"):  # a sub-vocabulary of 4-16 tokens per sequence, half digits
        digits = set(sampler.pools.digits.tolist())
        for row in ids.tolist():
            body = set(row[1:])
            assert 4 <= len(body) <= 16 and len(body & digits) >= len(body) // 2 - 1


def test_text_source_and_schedule(tmp_path):
    (tmp_path / "a.txt").write_text("the partner pulled lever 3 and then the learner pulled lever 3. " * 20)
    sampler = Sampler(parse_data(f"text:{tmp_path}"), builtin_tokenizer(), 32)
    ids, attn, pred, _ = sampler.batch(3, np.random.default_rng(0))
    assert attn.all() and not pred.any()
    config = PretrainConfig(steps=100, warmup=10, lr=1.0)
    assert lr_at(0, config) == pytest.approx(0.1) and lr_at(9, config) == pytest.approx(1.0)
    assert lr_at(100, config) == pytest.approx(0.1) and lr_at(55, config) == pytest.approx(0.55)


def test_random_base_copies_at_chance():
    base = load_base("builtin:tiny", device="cpu", dtype="float32")
    acc = copy_accuracy(base.model, base.tokenizer, n_sequences=16)
    assert acc["repeat"] < 0.05 and acc["recall"] < 0.05 and acc["repeat-small"] < 0.3


def test_pretraining_is_deterministic_resumes_bit_for_bit_and_saves_a_loadable_folder(tmp_path, monkeypatch):
    card = pretrain_base(PretrainConfig(**FAST), tmp_path / "a", progress=False)
    again = pretrain_base(PretrainConfig(**FAST), tmp_path / "b", progress=False)
    assert card["fingerprint"] == again["fingerprint"]
    assert card["history"][-1]["step"] == 6 and set(SYNTHETIC) <= set(card["held_out"])
    # the folder is an ordinary HF model folder whose fingerprint is the card's
    base = load_base(str(tmp_path / "a"), device="cpu", dtype="float32")
    assert base.fingerprint == card["fingerprint"] == read_card(str(tmp_path / "a"))["fingerprint"]
    assert not (tmp_path / "a" / pretrain.CHECKPOINT).exists() and (tmp_path / "a" / "tb").is_dir()
    # another seed gives other weights
    assert pretrain_base(PretrainConfig(**{**FAST, "seed": 1}), tmp_path / "c", progress=False)["fingerprint"] != card["fingerprint"]
    # stopped (as by SIGTERM) after its step-3 checkpoint, then resumed: the same weights
    real_due = checkpoint.due

    def stop_at_3(step, every, stop):
        if step == 3:
            stop.requested = signal.SIGTERM
        return real_due(step, every, stop)

    monkeypatch.setattr(checkpoint, "due", stop_at_3)
    with pytest.raises(Interrupted, match="--resume"):
        pretrain_base(PretrainConfig(**FAST), tmp_path / "d", progress=False)
    monkeypatch.setattr(checkpoint, "due", real_due)
    assert (tmp_path / ".d.partial" / pretrain.CHECKPOINT).is_file()
    with pytest.raises(UserError, match="config the run started with"):
        pretrain_base(PretrainConfig(**{**FAST, "lr": 0.01}), tmp_path / "d", resume=True, progress=False)
    resumed = pretrain_base(PretrainConfig(**FAST), tmp_path / "d", resume=True, progress=False)
    assert resumed["fingerprint"] == card["fingerprint"]


def test_cli_refuses_bad_input_and_shows_a_card(tmp_path, capsys):
    assert main(["pretrain-base", "--arch", "tiny,hidden=3", "--out", str(tmp_path / "x")]) == 2
    assert main(["pretrain-base", "--steps", "-1", "--out", str(tmp_path / "x")]) == 2
    assert main(["pretrain-base", "--data", "nothing", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists() and not list(tmp_path.iterdir())
    assert main(["pretrain-base", "--arch", "tiny,hidden=32,ffn=64", "--steps", "0", "--out", str(tmp_path / "r"),
                 "--quiet"]) == 0
    assert main(["pretrain-base", "--steps", "0", "--out", str(tmp_path / "r"), "--quiet"]) == 2  # exists
    capsys.readouterr()
    assert main(["base-card", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "pretrained: 0 steps" in out and "repeat-small" in out and "DIFFERS" not in out
    assert main(["base-card", "builtin:tiny"]) == 0
    assert "no pretraining card" in capsys.readouterr().out


def test_pretrain_runs_sharing_a_logdir_show_in_tensorboard_under_their_names(tmp_path, capsys):
    """The saved line's TensorBoard command names the runs' parent, so each run is ``<its folder>/tb`` there
    (``tensorboard --logdir OUT/tb`` named every run ``.``)."""
    import re

    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    for name in ("a", "b"):
        assert main(["pretrain-base", "--arch", "tiny,hidden=32,ffn=64", "--steps", "0", "--out", str(tmp_path / name),
                     "--quiet"]) == 0
    hints = re.findall(r"tensorboard --logdir (\S+), run (\S+)\)", capsys.readouterr().out)
    assert hints == [(str(tmp_path), "a/tb"), (str(tmp_path), "b/tb")]
    assert all(f.name.startswith("events.out.tfevents.") for f in (tmp_path / "a" / "tb").iterdir())
    runs = EventMultiplexer().AddRunsFromDirectory(str(tmp_path)).Runs()
    assert sorted(runs) == ["a/tb", "b/tb"]


def test_shipped_copy_base_matches_its_card_and_copies():
    """builtin:copy's weights are the ones its card describes, and its held-out copy accuracy is the card's."""
    card = read_card("builtin:copy")
    base = load_base("builtin:copy", device="cpu", dtype="float32")
    assert base.fingerprint == card["fingerprint"]
    assert base.model.config.hidden_size == card["shape"]["hidden_size"] == BUILTIN_MODELS["copy"].hidden_size
    acc = copy_accuracy(base.model, base.tokenizer)
    for name in SYNTHETIC:
        assert acc[name] == pytest.approx(card["held_out"][name], abs=2e-3)
    assert acc["repeat"] > 0.5 and acc["recall"] > 0.5  # against ~0.003 for a random base
    assert json.loads(json.dumps(card))["steps"] > 0


@pytest.mark.slow
def test_rebuilding_the_copy_recipe_is_deterministic(tmp_path):
    """A short version of builtin:copy's recipe (its arch, data and seed), twice: the same fingerprint, the
    fingerprint of the folder it saves; the full recipe is scripts/build_copy_base.py."""
    card = read_card("builtin:copy")
    config = PretrainConfig(arch=card["arch"], data=card["data"], seed=card["seed"], loss=card["loss"], steps=20,
                            eval_every=10)
    first = pretrain_base(config, tmp_path / "a", progress=False)
    second = pretrain_base(config, tmp_path / "b", progress=False)
    assert first["fingerprint"] == second["fingerprint"] == load_base(str(tmp_path / "a"), device="cpu").fingerprint
