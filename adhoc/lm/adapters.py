"""AdapterBank: N LoRA adapters stacked over one frozen base model, all members in ONE batched pass.

Each targeted linear layer of the base (``nn.Linear``, or GPT-2's ``Conv1D``, whose weight is stored
transposed: y = x W + b with W [d_in, d_out]) is wrapped by a ``BankedLoRALinear`` holding the stacked adapter
weights of every member::

    lora_A: [N, r, d_in]     (peft's ``lora_A.weight`` of member n is lora_A[n])
    lora_B: [N, d_out, r]    (peft's ``lora_B.weight`` of member n is lora_B[n])
    y = W x + (alpha / r) · B[m] A[m] x        with m the member of x's row

Rows are routed to members with ``bank.route(member_of_row)``. When the rows come in equal contiguous
groups (the usual layout: members × sequences) the adapter path is two ``bmm`` over [groups, rows·L, ·]
without copying any weight; otherwise each row gathers its member's weights (``A[m]``) and runs a
batched ``bmm`` over rows. Forward and backward of all members therefore run together, and each member's
gradient is exactly what training that adapter alone would give (the bank sums per-member losses).

Why not peft's mixed-adapter batches: ``adapter_names=`` refuses training mode and loops over adapters in
Python, and ``set_adapter`` freezes every other adapter. peft stays the on-disk format: every member
exports to and imports from a standard peft folder (``adapter_config.json`` + ``adapter_model.safetensors``)
that ``peft.PeftModel.from_pretrained(base, path)`` loads.

Exports name their base model in ``adapter_config.json`` (``base_model_name_or_path``): the hub id, or the
absolute path of a local folder, so ``peft.AutoPeftModelForCausalLM.from_pretrained(member_folder)`` loads
base and adapter in one call; a built-in base is named ``builtin:NAME`` (``adhoc.lm.base`` shows the two lines
that load such a member with peft).

Value heads (``train.algorithm: ppo``, ``add_value_heads``): per member a linear head on the base's last hidden
state at the decision point, V_m(o) = w[m] · h(o) + b[m], stacked as ``value_weight`` [N, H] and ``value_bias``
[N] and gathered per row by member id like the adapters; they train with the LoRA weights (in
``member_parameters``) and export beside each peft folder as ``value_head.safetensors`` (``weight`` [H],
``bias`` [1]). A bank without heads (REINFORCE) exports exactly the peft folder.

``MemberAdam`` keeps Adam state per member and updates only the members that had data in a step, so a
member with no data never moves (plain Adam would keep moving it on momentum).
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import torch
from torch import nn

from adhoc.errors import UserError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
VALUE_HEAD = "value_head.safetensors"  # a PPO member's value head, beside its peft adapter (not peft's)


class _Routing:
    """Shared by every banked layer of one bank: which member each row of the current batch belongs to."""

    def __init__(self) -> None:
        self.member_of_row: torch.Tensor | None = None  # [rows]
        self.groups: torch.Tensor | None = None  # [G] members, when rows are G equal contiguous groups
        self.all_members = False  # groups == arange(N): use the stacked weights without a copy


def _conv1d_type() -> type | None:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is a dependency
        return None
    return Conv1D


def _linear_types() -> tuple[type, ...]:
    conv1d = _conv1d_type()
    return (nn.Linear,) if conv1d is None else (nn.Linear, conv1d)


def _in_out(layer: nn.Module) -> tuple[int, int]:
    """(d_in, d_out) of an ``nn.Linear`` (weight [out, in]) or a GPT-2 ``Conv1D`` (weight [in, out])."""
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    d_in, d_out = layer.weight.shape
    return int(d_in), int(d_out)


class BankedLoRALinear(nn.Module):
    """A linear layer (``nn.Linear`` or GPT-2's ``Conv1D``) plus the stacked LoRA weights of every member.
    The LoRA path is the same for both kinds (peft's: B A x), only the frozen base layer stores W differently."""

    def __init__(self, base: nn.Module, n_members: int, rank: int, alpha: float, routing: _Routing) -> None:
        super().__init__()
        self.base = base
        self.routing = routing
        self.scaling = alpha / rank
        self.conv1d = not isinstance(base, nn.Linear)
        d_in, d_out = _in_out(base)
        self.lora_A = nn.Parameter(torch.zeros(n_members, rank, d_in, device=base.weight.device))
        self.lora_B = nn.Parameter(torch.zeros(n_members, d_out, rank, device=base.weight.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        r = self.routing
        if r.member_of_row is None:
            return y
        rows = x.shape[0]
        lead = x.shape[1:-1]
        A = self.lora_A.to(x.dtype)
        B = self.lora_B.to(x.dtype)
        if r.groups is not None:
            G = r.groups.shape[0]
            if not r.all_members:
                A, B = A.index_select(0, r.groups), B.index_select(0, r.groups)
            xg = x.reshape(G, -1, x.shape[-1])  # [G, rows/G · L, d_in]
            yg = y.reshape(G, -1, y.shape[-1])  # [G, rows/G · L, d_out]
        else:
            xg = x.reshape(rows, -1, x.shape[-1])  # [rows, L, d_in]
            yg = y.reshape(rows, -1, y.shape[-1])
            A, B = A.index_select(0, r.member_of_row), B.index_select(0, r.member_of_row)
        # y + scaling · (x Aᵀ) Bᵀ in one fused call: no extra full-size temporaries
        out = torch.baddbmm(yg, torch.bmm(xg, A.transpose(1, 2)), B.transpose(1, 2), alpha=self.scaling)
        return out.reshape(rows, *lead, -1)


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child


class AdapterBank(nn.Module):
    """N LoRA members over one frozen base model. Install once; route rows with ``bank.route(...)``."""

    def __init__(self, model: nn.Module, n_members: int, rank: int = 4, alpha: float = 8.0,
                 target_modules: list[str] | tuple[str, ...] = ("q_proj", "v_proj"), base_model_id: str = "") -> None:
        super().__init__()
        if n_members < 1 or rank < 1:
            raise UserError(f"adapter bank needs n_members >= 1 and rank >= 1 (got {n_members}, {rank})")
        self.n_members, self.rank, self.alpha = n_members, rank, float(alpha)
        self.target_modules = list(target_modules)
        self.base_model_id = base_model_id
        self._routing = _Routing()
        if any(isinstance(m, BankedLoRALinear) for m in model.modules()):
            raise UserError("this base model already carries an adapter bank (load the base model again)")
        model.requires_grad_(False)  # the base is frozen; only the members' adapters train
        names = [n for n, m in model.named_modules()
                 if isinstance(m, _linear_types()) and n.rpartition(".")[2] in self.target_modules]
        missing = [t for t in self.target_modules if t not in {n.rpartition(".")[2] for n in names}]
        if missing:
            raise UserError(f"model.target_modules: {', '.join(missing)} not found among the base model's linear "
                            f"layers ({', '.join(linear_layer_names(model)) or 'none'})")
        self.layers: dict[str, BankedLoRALinear] = {}
        for name in names:
            parent, child = _parent(model, name)
            layer = BankedLoRALinear(getattr(parent, child), n_members, rank, alpha, self._routing)
            setattr(parent, child, layer)
            self.layers[name] = layer
        self._modules_list = nn.ModuleList(self.layers.values())  # registers the parameters
        self.model = [model]  # a list, so the base is not registered as a submodule of the bank
        self.value_weight: nn.Parameter | None = None  # [N, H] (add_value_heads)
        self.value_bias: nn.Parameter | None = None  # [N]

    def add_value_heads(self, hidden_size: int) -> None:
        """One value head per member, V_m(h) = w[m] · h + b[m], initialised to 0 (every value starts at 0)."""
        self.value_weight = nn.Parameter(torch.zeros(self.n_members, hidden_size, device=self.device))
        self.value_bias = nn.Parameter(torch.zeros(self.n_members, device=self.device))

    def values(self, hidden: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
        """V [R] of rows whose last hidden states are ``hidden`` [R, H], row r under member ``members[r]``."""
        members = members.to(self.device)
        return (hidden.float() * self.value_weight[members]).sum(-1) + self.value_bias[members]

    # ---------------------------------------------------------------- init, routing
    def init_members(self, seeds: list[int], b_std: float = 0.0) -> None:
        """peft's default init per member: A ~ kaiming-uniform(a=√5) from the member's seed, B = 0
        (or N(0, b_std) to start members apart)."""
        for n, seed in enumerate(seeds):
            self.init_member(n, seed, b_std)

    @torch.no_grad()
    def init_member(self, member: int, seed: int, b_std: float = 0.0) -> None:
        """(Re-)initialise one member as ``init_members`` would with ``seeds[member] = seed``."""
        g = torch.Generator().manual_seed(int(seed))
        for layer in self.layers.values():
            d_in = layer.lora_A.shape[-1]
            bound = 1.0 / math.sqrt(d_in)  # kaiming_uniform_(a=sqrt(5)) on [r, d_in]
            layer.lora_A[member].copy_(torch.rand(layer.lora_A.shape[1:], generator=g) * 2 * bound - bound)
            layer.lora_B[member].copy_(torch.randn(layer.lora_B.shape[1:], generator=g) * b_std if b_std else 0.0)

    @contextlib.contextmanager
    def route(self, member_of_row: torch.Tensor):
        """Run the base with row i using member ``member_of_row[i]``; [rows] long tensor."""
        r = self._routing
        member_of_row = member_of_row.to(self.device)
        groups, counts = torch.unique_consecutive(member_of_row, return_counts=True)
        equal = bool((counts == counts[0]).all())
        r.member_of_row = member_of_row
        r.groups = groups if equal else None
        r.all_members = equal and groups.shape[0] == self.n_members and bool(
            (groups == torch.arange(self.n_members, device=groups.device)).all())
        try:
            yield
        finally:
            r.member_of_row, r.groups = None, None

    @property
    def device(self) -> torch.device:
        return next(iter(self.layers.values())).lora_A.device

    def member_parameters(self) -> list[nn.Parameter]:
        """The stacked per-member tensors [N, ...]: every layer's lora_A, lora_B, then the value heads if any."""
        heads = [] if self.value_weight is None else [self.value_weight, self.value_bias]
        return [p for layer in self.layers.values() for p in (layer.lora_A, layer.lora_B)] + heads

    # ---------------------------------------------------------------- peft format
    def peft_state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """The member's weights under peft's saved key names."""
        out = {}
        for name, layer in self.layers.items():
            out[f"base_model.model.{name}.lora_A.weight"] = layer.lora_A[member].detach().float().cpu().contiguous()
            out[f"base_model.model.{name}.lora_B.weight"] = layer.lora_B[member].detach().float().cpu().contiguous()
        return out

    def peft_config(self) -> dict:
        """The adapter_config.json of every member. ``fan_in_fan_out`` is peft's flag for layers storing their
        weight as [in, out] (GPT-2's ``Conv1D``): set when the first adapted layer is one, as peft would set it
        itself (peft keeps one flag and flips it, with a warning, at a layer of the other kind; the LoRA weights
        and outputs are the same either way, the flag only matters for merging)."""
        from peft import LoraConfig

        first = next(iter(self.layers.values()))
        cfg = LoraConfig(r=self.rank, lora_alpha=self.alpha, target_modules=self.target_modules, lora_dropout=0.0,
                         bias="none", task_type="CAUSAL_LM", fan_in_fan_out=first.conv1d,
                         base_model_name_or_path=peft_base_id(self.base_model_id))
        d = cfg.to_dict()
        return {k: (sorted(v) if isinstance(v, set) else v) for k, v in d.items()}

    def export_member(self, member: int, path: str | Path) -> Path:
        """Write member ``member`` as a standard peft adapter folder."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / ADAPTER_CONFIG).write_text(json.dumps(self.peft_config(), indent=2, sort_keys=True))
        save_file(self.peft_state_dict(member), str(path / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        if self.value_weight is not None:
            head = {"weight": self.value_weight[member], "bias": self.value_bias[member:member + 1]}
            save_file({k: v.detach().float().cpu().contiguous() for k, v in head.items()}, str(path / VALUE_HEAD))
        return path

    def export_snapshot(self, member: int, weights: list[torch.Tensor], path: str | Path) -> Path:
        """Export slot ``member`` of an earlier snapshot of ``member_parameters()`` as a peft folder."""
        params = self.member_parameters()
        with torch.no_grad():
            current = [p[member].clone() for p in params]
            for p, w in zip(params, weights):
                p[member].copy_(w[member])
            try:
                return self.export_member(member, path)
            finally:
                for p, c in zip(params, current):
                    p[member].copy_(c)

    def import_member(self, member: int, path: str | Path) -> None:
        """Load a peft LoRA adapter folder into slot ``member``; refuse anything that does not fit the bank."""
        tensors = read_peft_adapter(path, self)
        with torch.no_grad():
            for name, layer in self.layers.items():
                layer.lora_A[member].copy_(tensors[f"base_model.model.{name}.lora_A.weight"])
                layer.lora_B[member].copy_(tensors[f"base_model.model.{name}.lora_B.weight"])
            if self.value_weight is not None:  # a bank with value heads reads the folder's (0 if it has none)
                head = read_value_head(path, self.value_weight.shape[1])
                self.value_weight[member].copy_(head["weight"])
                self.value_bias[member].copy_(head["bias"][0])


def linear_layer_names(model: nn.Module) -> list[str]:
    """The distinct names (last dotted part, as ``target_modules`` names them) of the model's linear layers
    (``nn.Linear`` and GPT-2's ``Conv1D``; already banked layers count as theirs), in model order."""
    inner = {id(m.base) for m in model.modules() if isinstance(m, BankedLoRALinear)}
    names: dict[str, None] = {}
    for name, module in model.named_modules():
        if name and isinstance(module, (*_linear_types(), BankedLoRALinear)) and id(module) not in inner:
            names.setdefault(name.rpartition(".")[2], None)
    return list(names)


def peft_base_id(model_id: str) -> str:
    """``base_model_name_or_path`` for adapter_config.json: a local folder as its absolute path (so the folder
    loads from any working directory), a hub id or ``builtin:NAME`` as it is."""
    from adhoc.lm.base import BUILTIN_PREFIX

    if not model_id or model_id.startswith(BUILTIN_PREFIX):
        return model_id
    local = Path(model_id).expanduser()
    if local.is_dir():
        return str(local.resolve())
    return model_id


def read_adapter_folder(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a peft LoRA adapter folder: (adapter_config dict, tensors); one-line ``UserError`` if it is
    missing, unparseable, truncated or not LoRA. Only JSON and safetensors are read."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"adapter folder missing: {path}")
    cfg_file, weights = path / ADAPTER_CONFIG, path / ADAPTER_WEIGHTS
    for f in (cfg_file, weights):
        if not f.is_file():
            raise UserError(f"adapter {path}: {f.name} is missing")
    from adhoc.readers import is_number, parse_json, read_text

    cfg = parse_json(read_text(cfg_file, f"adapter {path}: {ADAPTER_CONFIG}"), f"adapter {path}: {ADAPTER_CONFIG}")
    if not isinstance(cfg, dict) or cfg.get("peft_type") != "LORA":
        raise UserError(f"adapter {path}: peft_type is {cfg.get('peft_type') if isinstance(cfg, dict) else None!r}, only LORA adapters are supported")
    if not isinstance(cfg.get("r"), int) or isinstance(cfg.get("r"), bool) or cfg["r"] < 1:
        raise UserError(f"adapter {path}: {ADAPTER_CONFIG} r must be an integer >= 1 (got {cfg.get('r')!r})")
    if not is_number(cfg.get("lora_alpha")) or not cfg["lora_alpha"] > 0:
        raise UserError(f"adapter {path}: {ADAPTER_CONFIG} lora_alpha must be a finite number > 0 "
                        f"(got {cfg.get('lora_alpha')!r})")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"adapter {path}: {ADAPTER_WEIGHTS} is corrupt or truncated "
                        f"({weights.stat().st_size} bytes; {str(exc).splitlines()[0]})") from None
    for key, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise UserError(f"adapter {path}: {ADAPTER_WEIGHTS} tensor {key} is {str(tensor.dtype).removeprefix('torch.')}, "
                            f"not floating point (LoRA weights are float32, float16 or bfloat16)")
    return cfg, tensors


def read_value_head(path: str | Path, hidden_size: int) -> dict[str, torch.Tensor]:
    """A member folder's ``value_head.safetensors`` (weight [H], bias [1]), checked; zeros if the folder has none
    (a REINFORCE member: its value head starts at 0, as a new one does)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = Path(path) / VALUE_HEAD
    if not file.is_file():
        return {"weight": torch.zeros(hidden_size), "bias": torch.zeros(1)}
    try:
        head = load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"adapter {path}: {VALUE_HEAD} is corrupt or truncated ({str(exc).splitlines()[0]})") from None
    for key, shape in (("weight", (hidden_size,)), ("bias", (1,))):
        if key not in head or tuple(head[key].shape) != shape or not head[key].is_floating_point() \
                or not bool(torch.isfinite(head[key]).all()):
            raise UserError(f"adapter {path}: {VALUE_HEAD} needs a finite float tensor {key} of shape {shape}")
    return head


def read_peft_adapter(path: str | Path, bank: AdapterBank) -> dict[str, torch.Tensor]:
    """Read a peft adapter folder and check it against the bank's rank, alpha, targets and shapes."""
    cfg, tensors = read_adapter_folder(path)
    if int(cfg.get("r", -1)) != bank.rank or float(cfg.get("lora_alpha", -1)) != bank.alpha:
        raise UserError(f"adapter {path}: rank/alpha {cfg.get('r')}/{cfg.get('lora_alpha')} differ from the bank's {bank.rank}/{bank.alpha:g}")
    if sorted(cfg.get("target_modules") or []) != sorted(bank.target_modules):
        raise UserError(f"adapter {path}: target_modules {cfg.get('target_modules')} differ from the bank's {bank.target_modules}")
    for name, layer in bank.layers.items():
        for part, expect in (("lora_A", layer.lora_A.shape[1:]), ("lora_B", layer.lora_B.shape[1:])):
            key = f"base_model.model.{name}.{part}.weight"
            if key not in tensors:
                raise UserError(f"adapter {path}: missing tensor {key}")
            if tuple(tensors[key].shape) != tuple(expect):
                raise UserError(f"adapter {path}: {key} has shape {tuple(tensors[key].shape)}, the base model needs {tuple(expect)}")
            if not torch.isfinite(tensors[key]).all():
                raise UserError(f"adapter {path}: {key} holds NaN or inf")
    return tensors


class MemberAdam:
    """Adam over stacked member parameters [N, ...] with per-member state and step counts.

    ``step(active)`` updates only members whose ``active`` flag is set: the others keep their weights,
    moments and step counts exactly. Optional per-member gradient-norm clipping (over all of a member's
    tensors together).
    """

    def __init__(self, params: list[nn.Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, max_grad_norm: float | None = None) -> None:
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay, self.max_grad_norm = lr, betas, eps, weight_decay, max_grad_norm
        n = self.params[0].shape[0]
        self.steps = torch.zeros(n, dtype=torch.float32, device=self.params[0].device)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def grad_norms(self) -> torch.Tensor:
        """[N] per-member global gradient norm."""
        sq = sum((p.grad.reshape(p.shape[0], -1).pow(2).sum(1) for p in self.params if p.grad is not None),
                 torch.zeros_like(self.steps))
        return sq.sqrt()

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None) -> None:
        n = self.steps.shape[0]
        active = torch.ones(n, dtype=torch.bool, device=self.steps.device) if active is None else active.to(self.steps.device)
        scale = torch.ones_like(self.steps)
        if self.max_grad_norm is not None:
            scale = (self.max_grad_norm / (self.grad_norms() + 1e-6)).clamp(max=1.0)
        self.steps += active.float()
        b1, b2 = self.betas
        t = self.steps.clamp(min=1)
        bias1, bias2 = 1 - b1 ** t, 1 - b2 ** t  # [N]
        everyone = bool(active.all())
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            shape = (n,) + (1,) * (p.dim() - 1)
            g = p.grad * scale.view(shape)
            if self.weight_decay:
                g = g + self.weight_decay * p
            if everyone:  # the usual case: in place, no masks
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v / bias2.view(shape)).sqrt_().add_(self.eps)
                p.addcdiv_(m / bias1.view(shape), denom, value=-self.lr)
                continue
            act = active.view(shape)
            m.copy_(torch.where(act, b1 * m + (1 - b1) * g, m))
            v.copy_(torch.where(act, b2 * v + (1 - b2) * g * g, v))
            update = (m / bias1.view(shape)) / ((v / bias2.view(shape)).sqrt() + self.eps)
            p.sub_(torch.where(act, self.lr * update, torch.zeros_like(update)))

    @torch.no_grad()
    def reset(self, member: int) -> None:
        """Forget one member's moments and step count (as for a newly created optimizer); others untouched."""
        self.steps[member] = 0
        for m, v in zip(self.exp_avg, self.exp_avg_sq):
            m[member].zero_()
            v[member].zero_()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {"steps": self.steps}
        for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq)):
            out[f"exp_avg.{i}"], out[f"exp_avg_sq.{i}"] = m, v
        return out

    @torch.no_grad()
    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what ``state_tensors`` returned (a checkpoint), in place."""
        for key, value in self.state_tensors().items():
            value.copy_(tensors[key])
