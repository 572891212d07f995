"""The one frozen base causal LM every population member adapts.

Two sources:
- ``builtin:tiny``: a small Llama-architecture model built from a transformers config and filled with
  weights from numpy's PCG64 generator (seeded), so it is identical on every machine and torch version;
  its tokenizer is built in code (WordPiece over the printable ASCII characters plus the games' words),
  so nothing is downloaded. It can be saved with ``save_pretrained`` and loaded back like any HF model.
- any Hugging Face causal LM by hub id or local path (``AutoModelForCausalLM``/``AutoTokenizer``).

Population members are standard peft adapters (``adhoc.lm.adapters``). On a Hugging Face base their
``adapter_config.json`` names it (hub id, or a local folder's absolute path), so
``peft.AutoPeftModelForCausalLM.from_pretrained(member_folder)`` loads base and adapter together. A built-in
base is built in code, not downloaded, so its members name ``builtin:tiny`` there, which only adhoc
understands; build the base first, then load the member onto it::

    base, tokenizer = adhoc.lm.base.build_builtin("tiny")
    model = peft.PeftModel.from_pretrained(base, "runs/<population>/members/member-00")

Every base model has a ``fingerprint``: sha256 of its config and of its weights rounded to bfloat16, so
the same checkpoint gives the same fingerprint whether it is loaded in fp32 on a CPU or bf16 on a GPU.
Populations record it and refuse to load onto a different base.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from adhoc._torch import torch

from adhoc.errors import UserError

BUILTIN_PREFIX = "builtin:"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]

# Words of the games' observations and actions, kept whole so observations stay short.
GAME_WORDS = """
a an the of to at in on is are you your we it its and or with by for from than then as be this that
player players partner seat seats teacher learner robot human ai game games round rounds episode
episodes step steps turn history action actions choose chose choice pick pull pulled lever levers
coordination matrix block blocks convention grid position positions pallet move moved moves stay
up down left right said says label labels utterance reward rewards payoff score prefer preferred
preference ordering order response responses candidate candidates feature features quality best
better worse first second third last rank ranked answer answers wrong correct digit digits carry
times plus minus multiply product sum write wrote feedback none yes no ok
""".split()


def builtin_vocab() -> list[str]:
    chars = [c for c in string.printable if not c.isspace()]
    words = sorted(set(GAME_WORDS) | {w.capitalize() for w in GAME_WORDS})
    vocab = list(SPECIAL_TOKENS) + chars + ["##" + c for c in chars]
    return vocab + [w for w in words if w not in set(vocab)]


def builtin_tokenizer():
    """WordPiece tokenizer covering every printable ASCII string (unknown words fall back to characters)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(builtin_vocab())}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=200))
    # Digits one by one, so numbers of any size tokenize and equal-width action names have equal length.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(), pre_tokenizers.Digits(individual_digits=True)]
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]"
    )


@dataclass(frozen=True)
class BuiltinSpec:
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 2048
    init_std: float = 0.02
    seed: int = 0
    weights: str | None = None  # a pretrained built-in: its folder under adhoc/lm/bases (model.safetensors, card.json)


BUILTIN_MODELS = {
    "tiny": BuiltinSpec(),
    "small": BuiltinSpec(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8),
    # tiny's shape and init, pretrained to copy from its context (scripts/build_copy_base.py; docs/reference.md)
    "copy": BuiltinSpec(weights="copy"),
}
BASES_DIR = Path(__file__).parent / "bases"


def builtin_model(spec: BuiltinSpec, name: str):
    """A Llama model of ``spec``'s shape with the built-in tokenizer, its weights drawn from numpy's PCG64
    (seeded by ``spec.seed``: the same on every machine and torch version)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = builtin_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_attention_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        name_or_path=BUILTIN_PREFIX + name,
    )
    model = LlamaForCausalLM(config)
    rng = np.random.Generator(np.random.PCG64(spec.seed))
    with torch.no_grad():
        for pname, p in sorted(model.named_parameters()):
            if pname.endswith("norm.weight"):
                p.fill_(1.0)
                continue
            # A small output head keeps the untrained base near-uniform over tokens, so no action is favoured
            # before training; adapters on lm_head give members the range to become decisive.
            std = spec.init_std * (0.1 if pname.startswith("lm_head") else 1.0)
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape), dtype=np.float32) * std))
    model.config.name_or_path = BUILTIN_PREFIX + name
    return model, tokenizer


def build_builtin(name: str = "tiny"):
    """Build a built-in base model and its tokenizer: random weights from numpy's PCG64 (portable), or, for a
    pretrained built-in (``builtin:copy``), the weights shipped in the package."""
    if name not in BUILTIN_MODELS:
        raise UserError(f"unknown built-in model '{name}' (allowed: {', '.join(BUILTIN_PREFIX + k for k in BUILTIN_MODELS)})")
    spec = BUILTIN_MODELS[name]
    model, tokenizer = builtin_model(spec, name)
    if spec.weights:
        from safetensors.torch import load_file

        state = load_file(str(BASES_DIR / spec.weights / "model.safetensors"))
        model.load_state_dict(state, strict=True)
        model.config.architectures = [type(model).__name__]  # as in the folder it was saved from: one fingerprint
    return model, tokenizer


def read_card(model_id: str) -> dict | None:
    """The pretraining card (``card.json``) of a pretrained built-in or of a folder written by
    ``adhoc pretrain-base``; None for any other base."""
    if model_id.startswith(BUILTIN_PREFIX):
        spec = BUILTIN_MODELS.get(model_id[len(BUILTIN_PREFIX):])
        path = BASES_DIR / spec.weights / "card.json" if spec is not None and spec.weights else None
    else:
        path = Path(model_id).expanduser() / "card.json"
    if path is None or not path.is_file():
        return None
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable card ({type(exc).__name__})") from None
    return card if isinstance(card, dict) else None


# config keys that say nothing about the architecture, and values that transformers versions differ in writing
_VOLATILE_KEYS = ("_name_or_path", "name_or_path", "torch_dtype", "dtype", "transformers_version", "_commit_hash",
                  "use_cache")
_VERSION_DEFAULTS = {"tie_word_embeddings": True, "add_cross_attention": False}


def canonical_config(cfg: dict) -> dict:
    """A model config (``to_diff_dict``) as the fingerprint hashes it, the same under every transformers version
    of the supported range: without the keys of ``_VOLATILE_KEYS``, unset (None) values and keys at the default
    that only some versions write out; ``rope_theta`` + ``rope_scaling`` (transformers 4.x) as 5.x's
    ``rope_parameters``. A config already in 5.x form without those keys is unchanged (its fingerprint too)."""
    cfg = {k: v for k, v in cfg.items() if k not in _VOLATILE_KEYS and v is not None
           and not (k in _VERSION_DEFAULTS and v == _VERSION_DEFAULTS[k])}
    if "rope_theta" in cfg and "rope_parameters" not in cfg:
        rope = dict(cfg.pop("rope_scaling", None) or {})
        rope.setdefault("rope_type", rope.pop("type", "default"))
        cfg["rope_parameters"] = {**rope, "rope_theta": cfg.pop("rope_theta")}
    return cfg


def fingerprint(model) -> str:
    """sha256 over the model config (architecture fields, ``canonical_config``) and its weights rounded to
    bfloat16."""
    h = hashlib.sha256()
    cfg = model.config.to_diff_dict() if hasattr(model.config, "to_diff_dict") else model.config.to_dict()
    h.update(json.dumps(canonical_config(cfg), sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode())
            h.update(tensor.detach().to("cpu", torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes())
    return h.hexdigest()[:16]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"model.device={device} but no CUDA device is available (use model.device=cpu or auto)")
    if device != "cpu" and not device.startswith("cuda"):
        raise UserError(f"model.device={device!r} is not one of: auto, cpu, cuda, cuda:N")
    return torch.device(device)


DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}  # name -> torch dtype


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    if dtype not in DTYPES:
        raise UserError(f"model.dtype={dtype!r} is not one of: auto, {', '.join(DTYPES)}")
    return getattr(torch, DTYPES[dtype])


@dataclass
class BaseModel:
    """The frozen base: model (eval mode, requires_grad False), tokenizer, id and fingerprint."""

    model: torch.nn.Module
    tokenizer: object
    model_id: str
    fingerprint: str
    device: torch.device
    dtype: torch.dtype


def set_cpu_threads(model: torch.nn.Module, device: torch.device, threads: int = 0) -> None:
    """0 = auto: one thread for small models on CPU (measured ~1.5x faster for builtin:tiny on 2 cores)."""
    if device.type != "cpu":
        return
    if threads > 0:
        torch.set_num_threads(threads)
    elif sum(p.numel() for p in model.parameters()) < 50_000_000:
        torch.set_num_threads(1)


def fit_tokenizer(tokenizer, model, model_id: str) -> None:
    """Give a loaded tokenizer a pad token if it has none and check its special tokens against the model.

    Padding only fills masked positions, so any id the model can embed will do: the end-of-sequence token
    when there is one (as usual for causal LMs), else token 0. A BOS token is optional (Qwen2 has none: prompts
    then start with the observation's first token). A special token whose id the model cannot embed (a
    tokenizer that adds a default special token beyond the model's vocabulary) is refused here with one line,
    not later as an index error inside the model."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else \
            tokenizer.convert_ids_to_tokens(0)
    n_embed = model.get_input_embeddings().num_embeddings
    for kind in ("pad", "eos", "bos"):
        token_id = getattr(tokenizer, f"{kind}_token_id")
        if token_id is not None and not 0 <= token_id < n_embed:
            raise UserError(f"base model {model_id!r}: the tokenizer's {kind} token {getattr(tokenizer, f'{kind}_token')!r} "
                            f"has id {token_id}, outside the model's {n_embed} token embeddings (tokenizer and model "
                            f"do not belong together)")


PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def check_safetensors(folder: Path, model_id: str) -> None:
    """One UserError line for a model folder whose weights are only pickled (never unpickled: loading a pickle
    can run any code), naming the file and how to convert it."""
    if any(folder.glob("*.safetensors")):
        return
    pickled = sorted(f.name for pattern in PICKLED for f in folder.glob(pattern))
    if pickled:
        raise UserError(f"base model {model_id}: its weights are only in the pickled {pickled[0]}, and adhoc loads "
                        f"safetensors only; convert it where you trust the file: load it with transformers and "
                        f"save_pretrained(folder, safe_serialization=True)")


def load_base(model_id: str = "builtin:tiny", device: str = "auto", dtype: str = "auto", cpu_threads: int = 0) -> BaseModel:
    """Load the base model by built-in name, Hugging Face hub id or local path; freeze it."""
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if model_id.startswith(BUILTIN_PREFIX):
        model, tokenizer = build_builtin(model_id[len(BUILTIN_PREFIX):])
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        local = Path(model_id).expanduser()
        if (model_id.startswith((".", "/", "~")) or local.exists()) and not (local / "config.json").is_file():
            raise UserError(f"base model path {model_id} has no config.json (expected a saved Hugging Face causal LM)")
        if local.is_dir():
            check_safetensors(local, model_id)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(local) if local.exists() else model_id)
            # safetensors only: a pickled checkpoint (pytorch_model.bin) can run code when loaded
            model = AutoModelForCausalLM.from_pretrained(str(local) if local.exists() else model_id, dtype=torch.float32,
                                                         use_safetensors=True)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot load base model {model_id!r}: {str(exc).splitlines()[0]}") from exc
        fit_tokenizer(tokenizer, model, model_id)
    fp = fingerprint(model)
    set_cpu_threads(model, dev, cpu_threads)
    model = model.to(device=dev, dtype=dt).eval()
    model.requires_grad_(False)
    return BaseModel(model=model, tokenizer=tokenizer, model_id=model_id, fingerprint=fp, device=dev, dtype=dt)
