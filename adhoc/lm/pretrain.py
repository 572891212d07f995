"""Pretraining a base causal LM on task-agnostic data, so that its policies start with a prior for in-context
copying, and measuring that prior.

Why: a randomly initialised base knows nothing, so a learner trained on it follows only the conventions its
training partners showed (a lookup "after partner 7, play 7" per lever). A base that can already copy a token
from its context (the induction heads of a pretrained LM) lets a learner turn that lookup into "play what the
partner played", for conventions it never met (docs/adaptation.md).

Data (``--data SPEC``): comma-separated sources ``NAME[=WEIGHT]``; each sequence of a batch is drawn from one
source with probability proportional to its weight. No source contains game text.
- ``repeat``: random segments (2-16 tokens) each followed, after a random gap of 0-8 tokens, by a copy of
  itself; the copy's tokens after its first are predictable from context.
- ``recall``: associative recall (as in the multi-query associative-recall task of Arora et al. 2023,
  "Zoology"): 2-8 key-value pairs with random fillers between them, then the keys asked again in a random
  order; each value after its key is predictable.
- ``repeat-small`` / ``recall-small``: the same over a sub-vocabulary of 4-16 tokens drawn per sequence, half
  of them digits, so that tokens repeat by chance and a copy must use more than the last token.
- ``text:PATH``: plain text from a UTF-8 file, or every ``*.txt`` / ``*.md`` file under a folder, cut into
  windows (not counted in the copy accuracies).
Token pools come from the tokenizer: every non-special token, and the ten digit tokens. Every random draw comes
from one numpy ``Generator`` seeded by ``--seed`` (the weights from numpy's PCG64 as for the built-in bases),
so a run is deterministic for a seed on one machine, and ``--resume`` ends bit for bit where an uninterrupted
run ends.

The prior (``prior_report``): next-token accuracy (argmax) at the predictable positions of held-out sequences
of each synthetic source, drawn from a fixed seed that no training run uses; chance is about 1/|pool| for
``repeat``/``recall`` and 1/(4-16) for the small variants.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from adhoc import checkpoint
from adhoc.errors import Interrupted, UserError
from adhoc._torch import torch
from adhoc.lm.base import BUILTIN_MODELS, BuiltinSpec, builtin_model, fingerprint

SYNTHETIC = ("repeat", "recall", "repeat-small", "recall-small")
HELD_OUT_SEED = 2**62 + 7  # the held-out evaluation sequences: a seed no run is given by default
CARD = "card.json"
CHECKPOINT = "checkpoint.safetensors"
ARCH_KEYS = {"hidden": "hidden_size", "ffn": "intermediate_size", "layers": "num_hidden_layers",
             "heads": "num_attention_heads"}


# ---------------------------------------------------------------------------------------------- specs
def parse_arch(text: str) -> BuiltinSpec:
    """``tiny`` / ``small`` (a built-in base's shape), optionally followed by ``,key=value`` (hidden, ffn,
    layers, heads), e.g. ``tiny,hidden=128,ffn=256``."""
    name, *pairs = [p.strip() for p in str(text).split(",")]
    if "=" in name:
        name, pairs = "tiny", [name, *pairs]
    if name not in BUILTIN_MODELS or BUILTIN_MODELS[name].weights:
        shapes = ", ".join(k for k, s in BUILTIN_MODELS.items() if not s.weights)
        raise UserError(f"--arch {text!r}: starts with a built-in shape ({shapes}), then key=value ({', '.join(ARCH_KEYS)})")
    spec = BUILTIN_MODELS[name]
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in ARCH_KEYS or not value.isdigit() or not 1 <= int(value) <= 4096:
            raise UserError(f"--arch {text!r}: {pair!r} is not key=N with key one of {', '.join(ARCH_KEYS)} "
                            f"and N in 1..4096")
        spec = replace(spec, **{ARCH_KEYS[key]: int(value)})
    if spec.hidden_size % spec.num_attention_heads:
        raise UserError(f"--arch {text!r}: hidden ({spec.hidden_size}) must be a multiple of heads "
                        f"({spec.num_attention_heads})")
    return spec


@dataclass(frozen=True)
class Source:
    name: str  # one of SYNTHETIC, or "text"
    weight: float
    path: str | None = None


def parse_data(text: str) -> list[Source]:
    """``repeat=0.3,recall=0.3,repeat-small=0.2,recall-small=0.2,text:notes/=0.1`` (weights default to 1)."""
    sources = []
    for item in (i.strip() for i in str(text).split(",")):
        body, sep, weight = item.rpartition("=") if "=" in item else (item, "", "1")
        try:
            w = float(weight)
        except ValueError:
            w = float("nan")
        if not math.isfinite(w) or w <= 0:
            raise UserError(f"--data: the weight of {item!r} must be a positive number")
        if body.startswith("text:"):
            path = Path(body[5:]).expanduser()
            if not path.exists():
                raise UserError(f"--data: {body!r}: no such file or folder")
            sources.append(Source("text", w, str(path)))
        elif body in SYNTHETIC:
            sources.append(Source(body, w))
        else:
            raise UserError(f"--data: unknown source {body!r} (allowed: {', '.join(SYNTHETIC)}, text:PATH)")
    return sources


# ---------------------------------------------------------------------------------------------- data
@dataclass
class Pools:
    """Token ids the synthetic sources draw from: every ordinary token, and the ten digits."""

    tokens: np.ndarray
    digits: np.ndarray
    bos: int | None
    pad: int

    @classmethod
    def of(cls, tokenizer) -> "Pools":
        special = set(tokenizer.all_special_ids)
        tokens = np.array([i for i in range(len(tokenizer)) if i not in special], dtype=np.int64)
        digits = []
        for d in "0123456789":
            ids = tokenizer.encode(d, add_special_tokens=False)
            if len(ids) == 1:
                digits.append(ids[0])
        if len(digits) < 4:
            raise UserError("the tokenizer has no single-token digits; the small-vocabulary sources need them")
        return cls(tokens, np.array(digits, dtype=np.int64), tokenizer.bos_token_id, tokenizer.pad_token_id)


def _small_pool(pools: Pools, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(4, 17))
    n_digits = min(n // 2, len(pools.digits))
    others = pools.tokens[~np.isin(pools.tokens, pools.digits)]
    return np.concatenate([rng.choice(pools.digits, n_digits, replace=False), rng.choice(others, n - n_digits, replace=False)])


def _repeat(pool: np.ndarray, length: int, rng: np.random.Generator) -> tuple[list[int], list[bool]]:
    ids, mask = [], []
    while len(ids) < length:
        segment = rng.choice(pool, int(rng.integers(2, 17))).tolist()
        gap = rng.choice(pool, int(rng.integers(0, 9))).tolist()
        ids += segment + gap + segment
        mask += [False] * (len(segment) + len(gap) + 1) + [True] * (len(segment) - 1)
    return ids[:length], mask[:length]


def _recall(pool: np.ndarray, length: int, rng: np.random.Generator) -> tuple[list[int], list[bool]]:
    ids, mask = [], []
    while len(ids) < length:
        n = int(min(rng.integers(2, 9), len(pool) // 2))
        chosen = rng.choice(pool, 2 * n, replace=False)
        keys, fill = chosen[:n], chosen[n:]  # fillers never hold a key, so each key names one value
        values = rng.choice(pool, n)
        for k, v in zip(keys, values):
            filler = rng.choice(fill, int(rng.integers(0, 4))).tolist()
            ids += filler + [int(k), int(v)]
            mask += [False] * (len(filler) + 2)
        for q in rng.permutation(n):
            filler = rng.choice(fill, int(rng.integers(0, 3))).tolist()
            ids += filler + [int(keys[q]), int(values[q])]
            mask += [False] * (len(filler) + 1) + [True]
    return ids[:length], mask[:length]


class TextStream:
    """Plain text tokenized once into one stream of ids; windows are drawn at random offsets."""

    def __init__(self, path: str, tokenizer) -> None:
        p = Path(path)
        files = sorted(f for f in p.rglob("*") if f.suffix in (".txt", ".md") and f.is_file()) if p.is_dir() else [p]
        text = "\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
        self.ids = np.array(tokenizer.encode(text, add_special_tokens=False), dtype=np.int64)
        if len(self.ids) < 2:
            raise UserError(f"--data text:{path}: holds no text")

    def window(self, length: int, rng: np.random.Generator) -> tuple[list[int], list[bool]]:
        start = int(rng.integers(0, max(1, len(self.ids) - length)))
        ids = self.ids[start:start + length].tolist()
        return ids, [False] * len(ids)


class Sampler:
    """Batches [B, L] of (ids, attention mask, predictable-position mask, source index) from the sources."""

    def __init__(self, sources: list[Source], tokenizer, seq_len: int) -> None:
        self.sources, self.seq_len, self.pools = sources, seq_len, Pools.of(tokenizer)
        self.texts = {s.path: TextStream(s.path, tokenizer) for s in sources if s.name == "text"}
        w = np.array([s.weight for s in sources], dtype=np.float64)
        self.p = w / w.sum()
        self.is_text = torch.tensor([s.name == "text" for s in sources])  # [S]

    def sequence(self, source: Source, rng: np.random.Generator) -> tuple[list[int], list[bool]]:
        body = self.seq_len - (self.pools.bos is not None)
        if source.name == "text":
            ids, mask = self.texts[source.path].window(body, rng)
        else:
            pool = _small_pool(self.pools, rng) if source.name.endswith("-small") else self.pools.tokens
            ids, mask = (_repeat if source.name.startswith("repeat") else _recall)(pool, body, rng)
        if self.pools.bos is not None:
            ids, mask = [self.pools.bos] + ids, [False] + mask
        return ids, mask

    def batch(self, size: int, rng: np.random.Generator, source: int | None = None):
        which = rng.choice(len(self.sources), size, p=self.p) if source is None else np.full(size, source)
        ids = torch.full((size, self.seq_len), self.pools.pad, dtype=torch.long)
        attn = torch.zeros(size, self.seq_len, dtype=torch.long)
        pred = torch.zeros(size, self.seq_len, dtype=torch.bool)
        for b, s in enumerate(which.tolist()):
            seq, mask = self.sequence(self.sources[s], rng)
            ids[b, :len(seq)] = torch.tensor(seq)
            attn[b, :len(seq)] = 1
            pred[b, :len(mask)] = torch.tensor(mask)
        return ids, attn, pred, torch.as_tensor(which)


# ---------------------------------------------------------------------------------------------- the prior
@torch.no_grad()
def copy_accuracy(model, tokenizer, n_sequences: int = 128, seq_len: int = 128, seed: int = HELD_OUT_SEED,
                  batch: int = 32) -> dict[str, float]:
    """Held-out next-token accuracy (argmax) at the predictable positions of each synthetic source, and the
    mean log-likelihood there (``{source}`` and ``{source}/logp``)."""
    sampler = Sampler([Source(name, 1.0) for name in SYNTHETIC], tokenizer, seq_len)
    device = next(model.parameters()).device
    out = {}
    for i, name in enumerate(SYNTHETIC):
        rng = np.random.default_rng([seed, i])
        hits = logp = count = 0.0
        for start in range(0, n_sequences, batch):
            ids, attn, pred, _ = sampler.batch(min(batch, n_sequences - start), rng, source=i)
            logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits.float()
            target, where = ids[:, 1:].to(device), pred[:, 1:].to(device)
            logits = logits[:, :-1]
            hits += ((logits.argmax(-1) == target) & where).sum().item()
            logp += (logits.log_softmax(-1).gather(-1, target[..., None])[..., 0] * where).sum().item()
            count += where.sum().item()
        out[name] = hits / max(count, 1)
        out[f"{name}/logp"] = logp / max(count, 1)
    return out


def prior_report(model_id: str) -> dict:
    """What a base brings: its fingerprint, size, held-out copy/recall accuracies and (for a pretrained base)
    the card it was saved with."""
    from adhoc.lm.base import load_base, read_card

    base = load_base(model_id, device="cpu", dtype="float32")
    card = read_card(model_id)
    acc = copy_accuracy(base.model, base.tokenizer)
    return {"model": model_id, "fingerprint": base.fingerprint, "vocab": len(base.tokenizer),
            "parameters": sum(p.numel() for p in base.model.parameters()), "held_out": acc, "card": card}


def report_text(report: dict) -> str:
    lines = [f"base {report['model']}  fingerprint {report['fingerprint']}  {report['parameters']:,} parameters"]
    card = report.get("card")
    if card:
        lines.append(f"pretrained: {card['steps']} steps on {card['data']} (seed {card['seed']}, "
                     f"{card['train_time_s'] / 60:.1f} min); card fingerprint {card['fingerprint']}"
                     + ("" if card["fingerprint"] == report["fingerprint"] else "  (DIFFERS from the weights)"))
    else:
        lines.append("no pretraining card (randomly initialised, or not pretrained by adhoc)")
    lines.append("held-out next-token accuracy where the context predicts the token, and the mean log-likelihood there:")
    for name in SYNTHETIC:
        lines.append(f"  {name:<13} {report['held_out'][name]:.3f}   log-lik {report['held_out'][name + '/logp']:7.3f}")
    lines.append(f"(a guess: 1/{report['vocab']} = {1 / report['vocab']:.4f}; on the small variants, one that only knows "
                 f"which 4-16 tokens a sequence uses: about 0.1)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- training
@dataclass
class PretrainConfig:
    arch: str = "tiny"
    data: str = "repeat"
    steps: int = 1500
    batch: int = 32
    seq_len: int = 128
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    seed: int = 0
    eval_every: int = 250
    checkpoint_every: int = 250
    threads: int = 1
    loss: str = "predictable"  # predictable: only where the context determines the token (and all of text); all

    def check(self) -> None:
        for key, low in (("steps", 0), ("batch", 1), ("seq_len", 16), ("warmup", 0), ("eval_every", 1),
                         ("checkpoint_every", 0), ("threads", 1), ("seed", 0)):
            value = getattr(self, key)
            if not isinstance(value, int) or value < low:
                raise UserError(f"--{key.replace('_', '-')} must be an integer >= {low} (got {value})")
        if self.loss not in ("all", "predictable"):
            raise UserError(f"--loss must be all or predictable (got {self.loss!r})")
        if self.seq_len > 2048:
            raise UserError(f"--seq-len must be at most 2048, the built-in bases' positions (got {self.seq_len})")
        if not (math.isfinite(self.lr) and self.lr > 0) or not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise UserError("--lr must be > 0 and --weight-decay >= 0")


def lr_at(step: int, config: PretrainConfig) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to a tenth of ``lr`` at ``steps``."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _optimizer_tensors(optimizer, params) -> dict[str, torch.Tensor]:
    out = {}
    for i, p in enumerate(params):
        for key, value in optimizer.state.get(p, {}).items():
            out[f"opt.{i}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return out


def _restore_optimizer(optimizer, params, tensors: dict[str, torch.Tensor]) -> None:
    for i, p in enumerate(params):
        state = {k.split(".", 2)[2]: v.clone() for k, v in tensors.items() if k.startswith(f"opt.{i}.")}
        if state:
            optimizer.state[p] = state


def pretrain_base(config: PretrainConfig, out: str | Path, overwrite: bool = False, resume: bool = False,
                  progress: bool = True) -> dict:
    """Pretrain by next-token prediction and save an ordinary Hugging Face folder (safetensors, config,
    tokenizer) with ``card.json`` / ``README.md`` (recipe, steps, seed, held-out copy accuracies, fingerprint)
    and ``tb/``. Checkpoints every ``checkpoint_every`` steps and on SIGTERM / Ctrl-C; ``resume`` continues."""
    from adhoc.paths import OutputFolder

    config.check()
    spec, sources = parse_arch(config.arch), parse_data(config.data)
    model, tokenizer = builtin_model(spec, name="pretrained")
    sampler = Sampler(sources, tokenizer, config.seq_len)  # reads text sources before anything is written
    writer = OutputFolder(out, "base", overwrite=overwrite, resume=resume)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _pretrain(config, spec, model, tokenizer, sampler, writer, progress)
    except BaseException as exc:
        writer.abandon(keep=(writer.staging / CHECKPOINT).exists() and not isinstance(exc, UserError))
        raise
    finally:
        torch.set_num_threads(threads)


def _pretrain(config, spec, model, tokenizer, sampler, writer, progress) -> dict:
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from adhoc.paths import atomic_write

    params = [p for _, p in sorted(model.named_parameters())]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.98))
    rng = np.random.default_rng(config.seed)
    step, elapsed, history = 0, 0.0, []
    config_json = json.dumps(asdict(config), sort_keys=True)
    ckpt = writer.staging / CHECKPOINT
    if ckpt.exists():
        tensors, state = checkpoint.load(ckpt)
        checkpoint.check_same_config(state, config_json, ckpt)
        with torch.no_grad():
            for i, p in enumerate(params):
                p.copy_(tensors[f"param.{i}"])
        _restore_optimizer(optimizer, params, tensors)
        checkpoint.restore_rng(rng, state["rng"])
        step, elapsed, history = state["step"], state["train_time_s"], state["history"]
    tb = SummaryWriter(str(writer.staging / "tb"), purge_step=step + 1 if step else None)
    started = time.perf_counter() - elapsed

    def save() -> None:
        tensors = {f"param.{i}": p for i, p in enumerate(params)}
        tensors.update(_optimizer_tensors(optimizer, params))
        checkpoint.save(ckpt, tensors, {"config": config_json, "step": step, "rng": checkpoint.rng_state(rng),
                                        "train_time_s": time.perf_counter() - started, "history": history})

    def evaluate() -> dict:
        model.eval()
        acc = copy_accuracy(model, tokenizer, n_sequences=64, seq_len=min(config.seq_len, 128))
        model.train()
        for k, v in acc.items():
            if "/" not in k:
                tb.add_scalar(f"pretrain/copy_accuracy/{k}", v, step)
        history.append({"step": step, "train_time_s": round(time.perf_counter() - started, 1),
                        **{k: round(v, 4) for k, v in acc.items() if "/" not in k}})
        return acc

    model.train()
    bar = tqdm(total=config.steps, initial=step, desc="pretrain-base", unit="step", disable=not progress)
    with checkpoint.StopSignals() as stop:
        while step < config.steps:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, config)
            ids, attn, pred, which = sampler.batch(config.batch, rng)
            labels = ids.masked_fill(attn == 0, -100)
            if config.loss == "predictable":  # text windows keep every position
                labels = labels.masked_fill(~(pred | sampler.is_text[which][:, None]), -100)
            loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            step += 1
            tb.add_scalar("pretrain/loss", loss.item(), step)
            bar.update(1)
            if step % config.eval_every == 0 or step == config.steps:
                acc = evaluate()
                bar.set_postfix(loss=f"{loss.item():.3f}", repeat=f"{acc['repeat']:.2f}", recall=f"{acc['recall']:.2f}")
            if checkpoint.due(step, config.checkpoint_every, stop) and step < config.steps:
                save()
                if stop.requested is not None:
                    tb.close()
                    bar.close()
                    raise Interrupted(writer.out, step, stop.requested)
    bar.close()
    tb.close()
    train_time = time.perf_counter() - started
    model.eval()
    model.config.architectures = [type(model).__name__]  # as save_pretrained writes it: the fingerprint of the folder
    final = copy_accuracy(model, tokenizer)
    card = {"shape": {f.name: getattr(spec, f.name) for f in fields(spec) if f.name != "weights"},
            "parameters": sum(p.numel() for p in model.parameters()), **asdict(config),
            "train_time_s": round(train_time, 1), "held_out": {k: round(v, 4) for k, v in final.items()},
            "history": history, "fingerprint": fingerprint(model), "versions": _versions()}
    model.config.name_or_path = str(writer.out)
    model.save_pretrained(writer.staging, safe_serialization=True)
    tokenizer.save_pretrained(writer.staging)
    atomic_write(writer.staging / CARD, json.dumps(card, indent=1) + "\n")
    atomic_write(writer.staging / "README.md", card_markdown(card))
    ckpt.unlink(missing_ok=True)
    writer.commit()
    return card


def _versions() -> dict:
    import transformers

    import adhoc

    return {"adhoc": adhoc.__version__, "torch": torch.__version__, "transformers": transformers.__version__}


def card_markdown(card: dict) -> str:
    arch = card["shape"]
    acc = card["held_out"]
    rows = "\n".join(f"| {name} | {acc[name]:.3f} | {acc[name + '/logp']:.3f} |" for name in SYNTHETIC)
    return f"""# A base pretrained by `adhoc pretrain-base`

- architecture (`--arch {card['arch']}`): Llama, {arch['num_hidden_layers']} layers, hidden {arch['hidden_size']}, {arch['num_attention_heads']} heads,
  MLP {arch['intermediate_size']}; {card['parameters']:,} parameters; the built-in tokenizer
- data: `{card['data']}` (synthetic in-context tasks and plain text, no game text), sequences of {card['seq_len']} tokens
- {card['steps']} steps of {card['batch']} sequences, AdamW lr {card['lr']} (warm-up {card['warmup']}, cosine to a
  tenth), weight decay {card['weight_decay']}, seed {card['seed']}; {card['train_time_s'] / 60:.1f} min on
  {card['threads']} CPU thread(s)
- fingerprint `{card['fingerprint']}`

Held-out next-token accuracy (argmax) where the context predicts the token, and the mean log-likelihood there:

| source | accuracy | log-likelihood |
|---|---:|---:|
{rows}

Use it as a base: `model.base=<this folder>`; see what it brings: `adhoc base-card <this folder>`.
"""
