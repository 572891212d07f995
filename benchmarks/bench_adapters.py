"""Benchmark: one training step of N LoRA members with ``AdapterBank`` vs. sequential peft vs. the bare base.

What one "step" is, for N members x B sequences of length L (random token ids, fixed seed): forward, backward
and optimizer step, with loss = mean next-token cross-entropy of each member over its own B rows, summed
over the members. Compared in the same process, on the same data and the same base weights:

- **bank**: ``adhoc.lm.adapters.AdapterBank`` with N members. ONE forward/backward over all N*B rows (rows
  grouped by member, contiguous, routed with ``bank.route``), then one ``MemberAdam`` step.
- **peft**: what users do today with peft: ONE ``PeftModel`` holding N adapters (``get_peft_model`` with the
  first, ``add_adapter`` for the rest; same r / alpha / target_modules, lora_dropout=0). For each member:
  ``set_adapter(name)``, forward its B rows, backward, clip, ``torch.optim.Adam`` step over that adapter's
  parameters (one Adam per adapter, created once, outside the timed region).
- **base (floor)**: the base model ALONE, no adapters, on the same N*B rows: forward + backward down to
  the input embeddings (``inputs_embeds`` with requires_grad=True, base weights frozen). This is the least
  work any adapter method has to do (every adapter needs the activation gradients through the whole
  network), so ``bank / base`` is the bank's overhead over the floor.
- **full-FT** (second reference, NOT the floor): the base with all weights trainable + ``torch.optim.Adam``.

Both bank and peft clip gradients per member to ``--max-grad-norm`` (default 1.0, the training default;
0 disables). Timings are the median of ``--repeats`` steps after 2 warm-up steps, the variants interleaved
(one step of each in turn, so load from other processes hits all alike); a variant whose first step is slow
(sequential peft at large N) gets fewer repeats automatically, and the report says so.

Memory (bank vs. N *separate* peft models, i.e. N copies of base+adapter, which is what users get when
each member is its own PeftModel): parameter + optimizer-state bytes, and the peak RSS increase of a fresh
subprocess per variant (``resource.getrusage`` ru_maxrss after one training step, minus the RSS before
building anything; the subprocess is this script with the hidden ``--measure-memory VARIANT N B`` flag).
The base floor's peak RSS is measured the same way, to show which part of the bank's peak is the batch's
activations (the bank runs all N*B rows at once; N separate models only ever hold B rows' activations).

Before timing, a correctness guard checks that the bank's loss (and gradients) for members 0 and N-1 equal
those of the peft model's adapters loaded with the same weights (tolerance 1e-5); it aborts otherwise.

Run (defaults take ~1-3 min on 2 CPU cores)::

    .venv/bin/python benchmarks/bench_adapters.py
    .venv/bin/python benchmarks/bench_adapters.py --model small --configs 64x4 --repeats 3 --json bench.json
    .venv/bin/python benchmarks/bench_adapters.py --no-memory --threads 1
    .venv/bin/python benchmarks/bench_adapters.py --model ~/models/Qwen2.5-0.5B --configs 8x4 --no-memory

``--model``: a built-in base (``tiny``, ``small``) or any local Hugging Face causal-LM folder (loaded as adhoc
loads a base model, ``adhoc.lm.base.load_base``, in fp32). Torch threads follow adhoc's policy for that model
(``model.cpu_threads=0``, ``adhoc.lm.base.set_cpu_threads``: one thread below 50M parameters on a CPU, torch's
default above; docs/performance.md says why) unless ``--threads`` sets them.
    python3 benchmarks/bench_adapters.py --device cuda --configs 64x4    # on a GPU (fp32)

With ``--device cuda`` every variant runs on the GPU, each timed step ends with ``torch.cuda.synchronize()``,
and the memory columns report the peak CUDA memory allocated (``torch.cuda.max_memory_allocated``) over the
allocation before the variant was built, instead of the peak RSS.

Run from the repository root; timing, medians, ratios, the common flags (``--repeats``, ``--warmup``, ``--json``)
and the JSON record come from benchmarks/harness.py.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import resource
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from adhoc.lm.adapters import AdapterBank, MemberAdam  # noqa: E402
from adhoc.lm.base import BUILTIN_MODELS, BUILTIN_PREFIX, load_base  # noqa: E402
from benchmarks import harness  # noqa: E402

warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

TARGET_PEFT_OVER_BANK = 20.0  # at N=64, B=4: the bank must be at least this much faster than sequential peft
TARGET_BANK_OVER_BASE = 1.3  # the bank may cost at most this much more than the base alone (the floor)
TARGET_CONFIG = (64, 4)
DEVICE = torch.device("cpu")  # set from --device in main(); every runner, batch and memory probe uses it
SLOW_VARIANT_BUDGET_S = 12.0  # per variant and config: beyond this, fewer repeats
LR = 1e-3
B_STD = 0.02  # members start apart (B != 0), so the loss check compares adapters that actually do something


def sync() -> None:
    """Wait for queued GPU work, so a wall-clock interval covers the kernels it launched."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


THREADS = 0  # --threads; 0: adhoc's policy for the model (set_cpu_threads)


def base_id(model_name: str) -> str:
    """``tiny``/``small`` (or ``builtin:tiny``) → a built-in base; anything else: a local Hugging Face folder."""
    return BUILTIN_PREFIX + model_name if model_name in BUILTIN_MODELS else model_name


def model_on_device(model_name: str):
    """A fresh copy of the base model (fp32, on DEVICE) and its tokenizer; sets the torch threads (THREADS, or
    adhoc's policy for this model)."""
    base = load_base(base_id(model_name), device=str(DEVICE), dtype="float32", cpu_threads=THREADS)
    return base.model, base.tokenizer


# ----------------------------------------------------------------------------- data and loss
def make_batch(vocab: int, n: int, b: int, seq_len: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (n * b, seq_len), generator=g)
    member_of_row = torch.arange(n).repeat_interleave(b)  # grouped by member, contiguous
    return ids.to(DEVICE), member_of_row.to(DEVICE)


def member_losses(logits: torch.Tensor, ids: torch.Tensor, n: int) -> torch.Tensor:
    """[n] mean next-token cross-entropy of each member over its own rows (rows grouped by member)."""
    v = logits.shape[-1]
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, v).float(), ids[:, 1:].reshape(-1), reduction="none")
    return ce.view(n, -1).mean(1)


# ----------------------------------------------------------------------------- the variants
class BankRunner:
    def __init__(self, model_name, n, rank, alpha, targets, max_grad_norm):
        self.model, _ = model_on_device(model_name)
        self.model.train()
        self.n = n
        self.bank = AdapterBank(self.model, n, rank=rank, alpha=alpha, target_modules=targets)
        self.bank.init_members(list(range(1000, 1000 + n)), b_std=B_STD)
        self.opt = MemberAdam(self.bank.member_parameters(), lr=LR, max_grad_norm=max_grad_norm or None)

    def losses(self, ids, member_of_row):
        with self.bank.route(member_of_row):
            logits = self.model(input_ids=ids, use_cache=False).logits
        return member_losses(logits, ids, self.n)

    def step(self, ids, member_of_row):
        self.opt.zero_grad()
        self.losses(ids, member_of_row).sum().backward()
        self.opt.step()

    def state_bytes(self) -> dict:
        lora = {id(p) for p in self.bank.member_parameters()}
        base = sum(p.numel() * p.element_size() for p in self.model.parameters() if id(p) not in lora)
        adapters = sum(p.numel() * p.element_size() for p in self.bank.member_parameters())
        opt = sum(t.numel() * t.element_size() for t in self.opt.state_tensors().values())
        return {"base_params": base, "adapter_params": adapters, "optimizer_state": opt}


def lora_config(rank, alpha, targets):
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0, bias="none",
                      task_type="CAUSAL_LM")


def adapter_params(peft_model, name: str) -> list[torch.nn.Parameter]:
    tag = f".{name}."
    return [p for pname, p in peft_model.named_parameters() if tag in pname and ".lora_" in pname]


class PeftRunner:
    """One PeftModel with N adapters m0..m{N-1}, trained one after the other (one Adam per adapter)."""

    def __init__(self, model_name, n, b, rank, alpha, targets, max_grad_norm):
        from peft import get_peft_model

        base, _ = model_on_device(model_name)
        cfg = lora_config(rank, alpha, targets)
        self.names = [f"m{i}" for i in range(n)]
        self.model = get_peft_model(base, cfg, adapter_name=self.names[0])
        for name in self.names[1:]:
            self.model.add_adapter(name, cfg)
        self.model.train()
        self.n, self.b, self.max_grad_norm = n, b, max_grad_norm
        self.params = {name: adapter_params(self.model, name) for name in self.names}
        self.opts = {name: torch.optim.Adam(self.params[name], lr=LR) for name in self.names}

    def load_from_bank(self, bank: AdapterBank) -> None:
        """Copy the bank's member weights into the peft adapters, mapping peft's saved key names
        ("base_model.model.X.lora_A.weight") to its parameter names ("base_model.model.X.lora_A.<name>.weight")."""
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for i, name in enumerate(self.names):
                for key, value in bank.peft_state_dict(i).items():
                    stem, _, last = key.rpartition(".")
                    params[f"{stem}.{name}.{last}"].copy_(value)

    def member_loss(self, i, ids):
        self.model.set_adapter(self.names[i])
        rows = ids[i * self.b:(i + 1) * self.b]
        logits = self.model(input_ids=rows, use_cache=False).logits
        return member_losses(logits, rows, 1)[0]

    def step(self, ids, member_of_row=None):
        for i, name in enumerate(self.names):
            opt = self.opts[name]
            opt.zero_grad(set_to_none=True)
            self.member_loss(i, ids).backward()
            if self.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.params[name], self.max_grad_norm)
            opt.step()


class BaseFloorRunner:
    """The base alone (frozen) on all N*B rows: forward + backward to the input embeddings. The floor."""

    def __init__(self, model_name, n):
        self.model, _ = model_on_device(model_name)
        self.model.train()
        self.model.requires_grad_(False)
        self.embed = self.model.get_input_embeddings()
        self.n = n

    def step(self, ids, member_of_row=None):
        emb = self.embed(ids).detach().requires_grad_(True)
        logits = self.model(inputs_embeds=emb, use_cache=False).logits
        member_losses(logits, ids, self.n).sum().backward()


class FullFTRunner:
    """Second reference (not the floor): the base fully trainable, one torch Adam over all its weights."""

    def __init__(self, model_name, n):
        self.model, _ = model_on_device(model_name)
        self.model.train()
        self.model.requires_grad_(True)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.n = n

    def step(self, ids, member_of_row=None):
        self.opt.zero_grad(set_to_none=True)
        logits = self.model(input_ids=ids, use_cache=False).logits
        member_losses(logits, ids, self.n).sum().backward()
        self.opt.step()


# ----------------------------------------------------------------------------- correctness guard
def check_equivalence(bank_r: BankRunner, peft_r: PeftRunner, ids, member_of_row, tol=1e-5) -> str:
    """The bank's loss and gradients for members 0 and N-1 must equal the peft adapters' (same weights)."""
    peft_r.load_from_bank(bank_r.bank)
    bank_r.opt.zero_grad()
    bank_losses = bank_r.losses(ids, member_of_row)
    bank_losses.sum().backward()
    lines = []
    for i in sorted({0, bank_r.n - 1}):
        for p in peft_r.params[peft_r.names[i]]:
            p.grad = None
        peft_loss = peft_r.member_loss(i, ids)
        peft_loss.backward()
        bl, pl = float(bank_losses[i].detach()), float(peft_loss.detach())
        diff = abs(bl - pl)
        if not diff <= tol:
            sys.exit(f"ABORT: member {i}: bank loss {bl:.8f} != peft loss {pl:.8f} "
                     f"(|diff| {diff:.2e} > {tol:g}); the benchmark would compare different computations")
        peft_grads = dict(peft_r.model.named_parameters())
        gdiff = 0.0
        for name, layer in bank_r.bank.layers.items():
            for part in ("lora_A", "lora_B"):
                pg = peft_grads[f"base_model.model.{name}.{part}.{peft_r.names[i]}.weight"].grad
                bg = getattr(layer, part).grad[i]
                scale = max(1.0, float(pg.abs().max()))
                gdiff = max(gdiff, float((pg - bg).abs().max()) / scale)
        if not gdiff <= tol:
            sys.exit(f"ABORT: member {i}: bank and peft gradients differ (max rel diff {gdiff:.2e} > {tol:g})")
        lines.append(f"member {i}: loss bank {bl:.6f} peft {pl:.6f} "
                     f"|diff| {diff:.1e}, grad max diff {gdiff:.1e}")
    bank_r.opt.zero_grad()
    return "; ".join(lines)


# ----------------------------------------------------------------------------- timing
def time_steps(steps: dict, ids, member_of_row, repeats, warmup, budget_s=SLOW_VARIANT_BUDGET_S):
    """Median seconds per step of each variant in ``steps``; returns {key: (median, repeats used, note)}.

    Variants are timed interleaved (one step of each in turn), so a load change on a shared machine hits all
    of them alike and the ratios stay meaningful. The first warm-up step estimates a variant's cost: one
    slower than ``budget_s`` over warm-up + repeats gets 1 warm-up and fewer repeats (at least 2)."""
    plan, notes = {}, {}
    sync_fn = harness.cuda_sync(DEVICE)
    for key, step in steps.items():
        first, _ = harness.measure(lambda: step(ids, member_of_row), sync=sync_fn)  # first warm-up step
        w, r = warmup, repeats
        if first * (warmup - 1 + repeats) > budget_s:
            r = max(2, min(repeats, int(budget_s / max(first, 1e-9))))
            w = 1
            notes[key] = f"slow ({first:.1f} s/step): 1 warm-up, {r} repeats instead of {warmup}/{repeats}"
        for _ in range(w - 1):
            step(ids, member_of_row)
        plan[key] = r
    times = harness.interleaved({key: (lambda step=step: step(ids, member_of_row)) for key, step in steps.items()},
                                plan, sync=sync_fn)
    return {key: (times[key].median, plan[key], notes.get(key, "")) for key in steps}


def parse_configs(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        n, _, b = part.strip().lower().partition("x")
        out.append((int(n), int(b)))
    return out


# ----------------------------------------------------------------------------- memory (subprocess side)
def _rss_now_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return _maxrss_bytes()


def _maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024  # Linux reports KiB, macOS bytes


def _warm_up_process() -> None:
    """Trigger every lazy import and one-time kernel setup on a throwaway micro model (same code paths)."""
    from peft import get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, tie_word_embeddings=False)
    for use_bank in (True, False):
        m = LlamaForCausalLM(cfg).to(DEVICE).train()
        ids = torch.randint(0, 32, (2, 8), device=DEVICE)
        if use_bank:
            bank = AdapterBank(m, 2, rank=2, alpha=4.0, target_modules=["q_proj", "v_proj"])
            opt = MemberAdam(bank.member_parameters(), lr=LR, max_grad_norm=1.0)
            with bank.route(torch.tensor([0, 1], device=DEVICE)):
                logits = m(input_ids=ids, use_cache=False).logits
        else:
            m = get_peft_model(m, lora_config(2, 4.0, ["q_proj", "v_proj"]))
            params = adapter_params(m, "default")
            opt = torch.optim.Adam(params, lr=LR)
            logits = m(input_ids=ids, use_cache=False).logits
        member_losses(logits, ids, 2).sum().backward()
        if not use_bank:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    model_on_device("tiny")


def measure_memory(args, variant: str, n: int, b: int) -> dict:
    """Runs in a fresh subprocess: build the variant, one training step, report bytes and peak RSS increase."""
    targets = [t for t in args.targets.split(",") if t]
    _warm_up_process()  # lazy imports and kernel init are not the variant's memory
    gc.collect()
    cuda = DEVICE.type == "cuda"
    if cuda:  # on a GPU the memory that matters is the device's: peak CUDA allocation, not the host's RSS
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(DEVICE)
        rss0 = torch.cuda.memory_allocated(DEVICE)
    else:
        rss0 = _rss_now_bytes()
    vocab = build_vocab_size(args.model)
    ids, member_of_row = make_batch(vocab, n, b, args.seq_len)
    if variant == "bank":
        r = BankRunner(args.model, n, args.rank, args.alpha, targets, args.max_grad_norm)
        r.step(ids, member_of_row)
        sb = r.state_bytes()
    elif variant == "peft-separate":
        from peft import get_peft_model

        base, _ = model_on_device(args.model)
        cfg = lora_config(args.rank, args.alpha, targets)
        models, opts = [], []
        sb = {"base_params": 0, "adapter_params": 0, "optimizer_state": 0}
        for i in range(n):
            m = get_peft_model(copy.deepcopy(base), cfg, adapter_name="default")
            m.train()
            params = adapter_params(m, "default")
            opt = torch.optim.Adam(params, lr=LR)
            rows = ids[i * b:(i + 1) * b]
            member_losses(m(input_ids=rows, use_cache=False).logits, rows, 1).sum().backward()
            if args.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            ids_ = {id(p) for p in params}
            sb["base_params"] += sum(p.numel() * p.element_size() for p in m.parameters() if id(p) not in ids_)
            sb["adapter_params"] += sum(p.numel() * p.element_size() for p in params)
            sb["optimizer_state"] += sum(t.numel() * t.element_size() for st in opt.state.values()
                                         for t in st.values() if torch.is_tensor(t))
            models.append(m)
            opts.append(opt)
        del base
    elif variant == "base":  # the floor: the base alone, fwd + bwd to the input embeddings on all N*B rows
        r = BaseFloorRunner(args.model, n)
        r.step(ids, member_of_row)
        sb = {"base_params": sum(p.numel() * p.element_size() for p in r.model.parameters()),
              "adapter_params": 0, "optimizer_state": 0}
    else:
        raise SystemExit(f"unknown memory variant {variant!r}")
    if cuda:
        sync()
        peak = torch.cuda.max_memory_allocated(DEVICE)
        return {"variant": variant, "N": n, "B": b, "rss_before": rss0, "peak_rss": peak, "vmhwm": None,
                "memory_kind": "peak CUDA allocation", "peak_rss_increase": peak - rss0, **sb,
                "params_plus_opt": sum(sb.values())}
    peak = _maxrss_bytes()
    vmhwm = None  # cross-check: the kernel's own peak RSS of this process image
    try:
        with open("/proc/self/status") as f:
            vmhwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        pass
    return {"variant": variant, "N": n, "B": b, "rss_before": rss0, "peak_rss": peak, "vmhwm": vmhwm,
            "peak_rss_increase": peak - rss0, **sb, "params_plus_opt": sum(sb.values())}


_SHAPE: dict[str, tuple[int, int, int]] = {}


def model_shape(model_name: str) -> tuple[int, int, int]:
    """(vocabulary, hidden size, layers) of the base model, read without loading its weights (the memory
    subprocesses measure from an empty process)."""
    if model_name not in _SHAPE:
        from adhoc.errors import UserError
        from adhoc.lm.base import builtin_vocab

        if base_id(model_name).startswith(BUILTIN_PREFIX):
            spec = BUILTIN_MODELS[base_id(model_name)[len(BUILTIN_PREFIX):]]
            _SHAPE[model_name] = (len(builtin_vocab()), spec.hidden_size, spec.num_hidden_layers)
        else:
            config = Path(model_name).expanduser() / "config.json"
            if not config.is_file():
                raise UserError(f"--model {model_name}: neither a built-in base ({', '.join(BUILTIN_MODELS)}) nor a "
                                "folder with a config.json (a saved Hugging Face causal LM)")
            c = json.loads(config.read_text())
            _SHAPE[model_name] = (c["vocab_size"], c["hidden_size"], c["num_hidden_layers"])
    return _SHAPE[model_name]


def build_vocab_size(model_name: str) -> int:
    return model_shape(model_name)[0]


def run_memory_subprocess(args, variant: str, n: int, b: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--model", args.model, "--seq-len", str(args.seq_len),
           "--rank", str(args.rank), "--alpha", str(args.alpha), "--targets", args.targets,
           "--max-grad-norm", str(args.max_grad_norm), "--device", str(DEVICE),
           "--measure-memory", variant, str(n), str(b)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    # Linux carries the parent's RSS high-water mark into ru_maxrss across fork+exec, so a child of this (big)
    # process would report the parent's peak. A tiny launcher in between gives the measuring process a clean
    # ru_maxrss (its own fork copies only the launcher's few MB).
    launcher = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", launcher, *cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"variant": variant, "N": n, "B": b, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mem_available_bytes() -> int | None:
    if DEVICE.type == "cuda":
        return torch.cuda.mem_get_info(DEVICE)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# ----------------------------------------------------------------------------- report
def fmt_ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.1f}"


def fmt_mb(x: float | None) -> str:
    return "-" if x is None else f"{x / 2**20:.1f}"


def markdown_tables(args, rows, mem_rows) -> str:
    _, hidden, layers = model_shape(args.model)
    lines = [f"{base_id(args.model)} (hidden {hidden}, {layers} layers), L={args.seq_len}, "
             f"LoRA r={args.rank} alpha={args.alpha:g} on {args.targets}, torch {torch.__version__}, "
             f"{device_label()}; median ms per training step (fwd+bwd+optimizer).",
             "",
             "| N members | B seqs/member | bank ms | peft (sequential) ms | base floor ms | full-FT ms "
             "| peft / bank | bank / base floor |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['N']} | {r['B']} | {fmt_ms(r['bank_s'])} | {fmt_ms(r['peft_s'])} | {fmt_ms(r['base_s'])} "
                     f"| {fmt_ms(r['full_ft_s'])} | {r['peft_over_bank']:.1f}x | {r['bank_over_base']:.2f}x |")
    if mem_rows:
        peak = ("peak RSS columns = peak CUDA allocation over the allocation before building (fresh process)"
                if DEVICE.type == "cuda" else "peak RSS = increase over a fresh process")
        lines += ["", "Memory: bank vs N separate peft models (N copies of base + adapter). "
                      f"params+opt = parameter + optimizer-state bytes; {peak}.",
                  "The base floor's peak RSS (base alone, fwd+bwd on all N*B rows) shows how much of the bank's "
                  "peak is the batch's activations, which any one-pass method holds.",
                  "", "| N | B | bank params+opt MB | N x peft params+opt MB | bank peak RSS MB | N x peft peak RSS MB "
                      "| base floor peak RSS MB |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for m in mem_rows:
            lines.append(f"| {m['N']} | {m['B']} | {fmt_mb(m['bank'].get('params_plus_opt'))} "
                         f"| {fmt_mb(m['peft-separate'].get('params_plus_opt'))} "
                         f"| {fmt_mb(m['bank'].get('peak_rss_increase'))} "
                         f"| {fmt_mb(m['peft-separate'].get('peak_rss_increase'))} "
                         f"| {fmt_mb(m['base'].get('peak_rss_increase'))} |")
    return "\n".join(lines)


def device_label() -> str:
    if DEVICE.type == "cuda":
        return f"{torch.cuda.get_device_name(DEVICE)} (fp32)"
    return f"{torch.get_num_threads()} CPU threads"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help=f"a built-in base ({', '.join(BUILTIN_MODELS)}) or a local Hugging "
                                                   "Face causal-LM folder")
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=None, help="LoRA alpha (default 2 x rank)")
    p.add_argument("--targets", default="q_proj,v_proj", help='comma list, e.g. "q_proj,k_proj,v_proj,o_proj,lm_head"')
    p.add_argument("--configs", default="64x4,8x32,256x1", help="comma list of NxB (members x sequences per member)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: adhoc's policy for the model, as model.cpu_threads=0)")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="per-member clipping in bank and peft (0: off)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (cuda when available); default cpu")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    harness.add_common_args(p, repeats=5, warmup=2, json_help="also write the results and the markdown table here")
    p.add_argument("--measure-memory", nargs=3, metavar=("VARIANT", "N", "B"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.alpha is None:
        args.alpha = 2.0 * args.rank
    torch.manual_seed(0)
    global DEVICE, THREADS
    from adhoc.errors import UserError
    from adhoc.lm.base import resolve_device

    DEVICE = resolve_device(args.device)
    THREADS = args.threads or 0

    if args.measure_memory:  # a fresh process: nothing is loaded before the variant
        variant, n, b = args.measure_memory
        print(json.dumps(measure_memory(args, variant, int(n), int(b))))
        return
    try:
        model_shape(args.model)
        model_on_device(args.model)  # a model that does not load stops here; sets the threads
    except UserError as exc:
        sys.exit(f"bench_adapters: error: {exc}")

    clock = harness.Laps()
    targets = [t for t in args.targets.split(",") if t]
    configs = parse_configs(args.configs)
    vocab = build_vocab_size(args.model)
    print(f"# bench_adapters: {base_id(args.model)}, L={args.seq_len}, r={args.rank}, alpha={args.alpha:g}, "
          f"targets={targets}, {device_label()}, repeats={args.repeats} (median), warmup={args.warmup}")
    print("# floor = the base model alone (no adapters): fwd + bwd to the input embeddings on all N*B rows")
    if hasattr(os, "getloadavg"):
        print(f"# load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
              "(other processes' load inflates all timings; the variants are interleaved, so ratios hold up better)")

    rows, notes = [], []
    head = (f"{'N':>4} {'B':>4} | {'bank ms':>9} {'peft ms':>10} {'base ms':>9} {'fullFT ms':>9} | "
            f"{'peft/bank':>9} {'bank/base':>9} | check")
    print(head)
    print("-" * len(head))
    for n, b in configs:
        ids, member_of_row = make_batch(vocab, n, b, args.seq_len, seed=n * 1000 + b)
        bank_r = BankRunner(args.model, n, args.rank, args.alpha, targets, args.max_grad_norm)
        peft_r = PeftRunner(args.model, n, b, args.rank, args.alpha, targets, args.max_grad_norm)
        check = check_equivalence(bank_r, peft_r, ids, member_of_row)
        notes.append(f"{n}x{b} correctness: {check}")
        res = {"N": n, "B": b}
        runners = {"bank": bank_r, "peft": peft_r, "base": BaseFloorRunner(args.model, n),
                   "full_ft": FullFTRunner(args.model, n)}
        timed = time_steps({k: r.step for k, r in runners.items()}, ids, member_of_row, args.repeats, args.warmup)
        for key, (sec, reps, note) in timed.items():
            res[f"{key}_s"], res[f"{key}_repeats"] = sec, reps
            if note:
                notes.append(f"{n}x{b} {key}: {note}")
        del runners, bank_r, peft_r
        gc.collect()
        res["peft_over_bank"] = harness.ratio(res["peft_s"], res["bank_s"])
        res["bank_over_base"] = harness.ratio(res["bank_s"], res["base_s"])
        mark = ""
        if (n, b) == TARGET_CONFIG:
            ok1 = res["peft_over_bank"] >= TARGET_PEFT_OVER_BANK
            ok2 = res["bank_over_base"] <= TARGET_BANK_OVER_BASE
            res["pass_peft_over_bank"], res["pass_bank_over_base"] = ok1, ok2
            mark = (f"peft/bank>={TARGET_PEFT_OVER_BANK:g}x {'PASS' if ok1 else 'FAIL'}, "
                    f"bank/base<={TARGET_BANK_OVER_BASE:g}x {'PASS' if ok2 else 'FAIL'}")
        rows.append(res)
        print(f"{n:>4} {b:>4} | {fmt_ms(res['bank_s']):>9} {fmt_ms(res['peft_s']):>10} {fmt_ms(res['base_s']):>9} "
              f"{fmt_ms(res['full_ft_s']):>9} | {res['peft_over_bank']:>8.1f}x {res['bank_over_base']:>8.2f}x | "
              f"{mark}", flush=True)
    for note in notes:
        print(f"  note: {note}")
    t_timing = clock.lap("timing")

    mem_rows = []
    if not args.no_memory:
        print("\n# memory: bank vs N separate peft models (fresh subprocess per variant, one training step)")
        avail = mem_available_bytes()
        one_base = sum(p.numel() * p.element_size() for p in model_on_device(args.model)[0].parameters())
        mem_label = "peak CUDA" if DEVICE.type == "cuda" else "peak RSS"
        for n, b in configs:
            row = {"N": n, "B": b}
            for variant in ("bank", "peft-separate", "base"):
                need = one_base * (3 * n if variant == "peft-separate" else 3)
                if avail is not None and need > 0.6 * avail:
                    row[variant] = {"error": f"skipped: would need ~{need / 2**30:.1f} GiB"}
                else:
                    row[variant] = run_memory_subprocess(args, variant, n, b)
                m = row[variant]
                if "error" in m:
                    print(f"  {n}x{b} {variant}: {m['error']}")
                else:
                    print(f"  {n}x{b} {variant:>13}: params+opt {fmt_mb(m['params_plus_opt']):>8} MB "
                          f"(base {fmt_mb(m['base_params'])}, adapters {fmt_mb(m['adapter_params'])}, "
                          f"opt {fmt_mb(m['optimizer_state'])}), {mem_label} +{fmt_mb(m['peak_rss_increase'])} MB",
                          flush=True)
            mem_rows.append(row)

    md = markdown_tables(args, rows, mem_rows)
    total = clock.total()
    print("\n" + md)
    print(f"\n# total {total:.0f} s (timing {t_timing:.0f} s, memory {total - t_timing:.0f} s)")
    record = harness.Record("bench_adapters", {k: v for k, v in vars(args).items() if k != "measure_memory"})
    record.add(device_label=device_label(),
               targets={"config": list(TARGET_CONFIG), "peft_over_bank_min": TARGET_PEFT_OVER_BANK,
                        "bank_over_base_max": TARGET_BANK_OVER_BASE},
               timing=rows, memory=mem_rows, notes=notes, markdown=md, total_s=total,
               loadavg_end=os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
    record.finish(args.json, device=DEVICE)


if __name__ == "__main__":
    main()
