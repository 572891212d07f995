"""Checkpoints of training runs, and stopping cleanly on SIGTERM / Ctrl-C.

A checkpoint is ONE safetensors file in the run's staging folder (``.<out>.partial/checkpoint.safetensors``):
the tensors (adapters of every slot, ``MemberAdam`` moments and step counts, torch's RNG state, the method's
own tensors) plus a JSON header in the file's metadata (iteration, the numpy generator's exact state, the
resolved config, the method's own records). It is written to a temporary file, fsynced and renamed over the
previous one, so a kill at any moment leaves either the old or the new checkpoint, never half of one. Only
safetensors and JSON are read back (no pickle).

Every random draw of a run comes from one ``numpy.random.Generator`` (rollouts seed their torch generator
from it) and torch's global generator; both states are stored, so a resumed run continues the exact random
stream and ends bit for bit where an uninterrupted run ends (tested on CPU; on GPU, kernels that are not
deterministic can differ in the last bits whether or not a run was resumed).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adhoc.errors import UserError

VERSION = 1


class StopSignals:
    """Within the ``with`` block, SIGTERM and SIGINT only set ``requested`` (the training loop checks it after
    every iteration, checkpoints and stops); a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signum

    def __enter__(self) -> "StopSignals":
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._old.clear()
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def due(iteration: int, every: int, stop: StopSignals) -> bool:
    """Checkpoint after this iteration: every ``every`` iterations (0: never), or when a stop was requested."""
    return stop.requested is not None or (every > 0 and iteration % every == 0)


def save(path: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Write the checkpoint atomically (temp file, fsync, rename)."""
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(tensors, str(tmp), metadata={"adhoc_checkpoint": json.dumps({"version": VERSION, **state})})
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, state) of a checkpoint; one ``UserError`` line if it is missing or unreadable."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise UserError(f"nothing to resume: {path} holds no checkpoint (the run stopped before its first one)")
    try:
        with safe_open(str(path), framework="pt") as f:
            state = json.loads((f.metadata() or {})["adhoc_checkpoint"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise UserError(f"checkpoint {path} is unreadable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if state.get("version") != VERSION:
        raise UserError(f"checkpoint {path} has version {state.get('version')}; this adhoc reads {VERSION}")
    return tensors, state


def check_same_config(state: dict[str, Any], config_yaml: str, path: Path) -> None:
    """A run resumes only under the config it started with."""
    if state["config"] != config_yaml:
        import difflib

        diff = [line for line in difflib.unified_diff(state["config"].splitlines(), config_yaml.splitlines(), lineterm="", n=0)
                if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        raise UserError(f"--resume needs the config the run started with; it differs in: {'; '.join(diff[:4])}"
                        f" (checkpoint {path})")


def rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def restore_rng(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


def run_tensors(bank, optimizer) -> dict[str, torch.Tensor]:
    """The adapters of every bank slot, the optimizer's state and torch's RNG state."""
    out = {f"bank.{i}": p for i, p in enumerate(bank.member_parameters())}
    out.update({f"adam.{k}": v for k, v in optimizer.state_tensors().items()})
    out["torch_rng"] = torch.get_rng_state()
    return out


@torch.no_grad()
def restore_run_tensors(tensors: dict[str, torch.Tensor], bank, optimizer) -> None:
    for i, p in enumerate(bank.member_parameters()):
        p.copy_(tensors[f"bank.{i}"])
    optimizer.load_state_tensors({k[5:]: v for k, v in tensors.items() if k.startswith("adam.")})
    torch.set_rng_state(tensors["torch_rng"])
