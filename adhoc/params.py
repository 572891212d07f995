"""Parameter ranges, declared where each parameter lives; the bottom floor of ``adhoc`` (standard library and
``adhoc.errors`` only).

A method's, game's or learner section's parameter is a dataclass field; its range goes right next to it::

    @dataclass
    class MEPConfig:
        name: str = "mep"
        alpha: float = ranged(0.01, 0, MAX_COEF)  # weight of the population-entropy bonus

and a string parameter with a fixed set of values uses ``chosen(default, (...))``. ``field_ranges(cls)`` and
``field_choices(cls)`` read them back; ``adhoc.config`` checks every config against them before any work.

A solver is a plain function (``adhoc.solvers``); its ranges and choices are declared by the ``declare``
decorator on the function (``@declare(beta=Range(0, 100))``, ``@declare(floor=("openspiel", "scaled"))``) and
read back by ``param_ranges(fn)`` and ``param_choices(fn)``.

A value outside its range is one ``ConfigError`` line naming the key, the range and the value.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from adhoc.errors import UserError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ConfigError(UserError):
    """A bad config; its message is always one line (control characters in user values are escaped)."""

    def __init__(self, message: object = "") -> None:
        super().__init__(_CONTROL.sub(lambda m: repr(m.group())[1:-1], str(message)))


# Limits the methods and solvers declare their ranges with (``adhoc.config`` re-exports them with the others).
MAX_COEF = 1000.0  # entropy coefficients and the methods' loss weights
MAX_RESTARTS = 64  # Other-Play restarts per member
MAX_SOLVER_STEPS = 1_000_000
MAX_SEED = 2**63  # seeds are in [0, 2**63)
MAX_POPULATION = 4096  # members: each is one adapter (weights, gradients and Adam moments)
MAX_LORA_RANK = 1024
MAX_LORA_ALPHA = 4096.0  # LoRA deltas are scaled by alpha / rank
# the run limits the CLI's options share with the config (adhoc.config): here, so that checking an option
# imports no config machinery (games, methods, solvers)
MAX_LR = 10.0
MAX_ITERATIONS = 1_000_000  # also eval_every, checkpoint_every, entropy_anneal_iterations
MAX_ROLLOUT_ROWS = 1 << 20  # episodes played in one batched training rollout (episodes x pairs)
MAX_EVAL_EPISODES = 1 << 20
MAX_CPU_THREADS = 1024


def _bytes(n: float) -> str:
    if n >= 1 << 80:
        return "more than a billion TiB"
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"~{n / size:.3g} {unit}"
    return f"~{int(n)} bytes"
MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")  # a linear layer's attribute name (AdapterBank matches the last dotted part)


def _num(x: float | None) -> str:
    if x == MAX_SEED:
        return "2**63"
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


@dataclass(frozen=True)
class Range:
    """``lo <= value <= hi`` (``lo_open``/``hi_open``: strict); None: unbounded on that side. ``why`` explains it."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    why: str = ""

    def text(self) -> str:
        parts = [f"{'>' if self.lo_open else '>='} {_num(self.lo)}" if self.lo is not None else "",
                 f"{'<' if self.hi_open else '<='} {_num(self.hi)}" if self.hi is not None else ""]
        return " and ".join(p for p in parts if p) or "finite"

    def check(self, key: str, value: Any, note: str = "") -> None:
        """One-line ConfigError unless ``value`` (None: unset, allowed) lies in the range; ``note`` says what a
        value above the upper bound would take."""
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        why = f" ({self.why})" if self.why else ""
        shown = f"<an integer of {value.bit_length()} bits>" if isinstance(value, int) and value.bit_length() > 64 \
            else value
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            raise ConfigError(f"config error: {key} must be {self.text()} (got {shown}){why}")
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            raise ConfigError(f"config error: {key}={shown} is {'not below' if self.hi_open else 'above'} the limit "
                              f"{_num(self.hi)}{note or why}")


COEF = Range(0, MAX_COEF)  # a loss weight or entropy coefficient


# ---------------------------------------------------------------------------- dataclass fields
def ranged(default: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, why: str = "") -> Any:
    """A dataclass field with ``default`` whose value must lie in ``Range(lo, hi, lo_open, hi_open, why)``."""
    return field(default=default, metadata={"range": Range(lo, hi, lo_open, hi_open, why)})


def chosen(default: str, choices: tuple[str, ...]) -> Any:
    """A dataclass field with ``default`` whose value must be one of ``choices``."""
    if default not in choices:
        raise ValueError(f"default {default!r} is not one of {choices}")
    return field(default=default, metadata={"choices": tuple(choices)})


def field_ranges(cls: Any) -> dict[str, Range]:
    """Field name -> declared Range, in field order, of a dataclass (class or instance)."""
    return {f.name: f.metadata["range"] for f in dataclasses.fields(cls) if "range" in f.metadata}


def field_choices(cls: Any) -> dict[str, tuple[str, ...]]:
    """Field name -> declared choices, in field order, of a dataclass (class or instance)."""
    return {f.name: f.metadata["choices"] for f in dataclasses.fields(cls) if "choices" in f.metadata}


# ---------------------------------------------------------------------------- function parameters
F = TypeVar("F", bound=Callable[..., Any])


def declare(**params: Range | tuple[str, ...]) -> Callable[[F], F]:
    """Declare the ranges (a Range) and choices (a tuple of strings) of a function's keyword parameters:
    ``@declare(gamma=Range(0, 1, hi_open=True), floor=("openspiel", "scaled"))``."""

    def mark(fn: F) -> F:
        fn.param_ranges = {k: v for k, v in params.items() if isinstance(v, Range)}  # type: ignore[attr-defined]
        fn.param_choices = {k: tuple(v) for k, v in params.items()  # type: ignore[attr-defined]
                            if not isinstance(v, Range)}
        return fn

    return mark


def param_ranges(fn: Callable[..., Any]) -> dict[str, Range]:
    """Parameter name -> Range declared by ``declare`` on ``fn`` (empty if none)."""
    return dict(getattr(fn, "param_ranges", {}))


def param_choices(fn: Callable[..., Any]) -> dict[str, tuple[str, ...]]:
    """Parameter name -> choices declared by ``declare`` on ``fn`` (empty if none)."""
    return dict(getattr(fn, "param_choices", {}))
