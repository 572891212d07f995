"""The benchmarks' shared harness: timing, medians and spreads, ratios, the common flags, and the JSON record.

How to run a benchmark: from the repository root, as a script::

    python benchmarks/bench_NAME.py [--repeats R] [--warmup W] [--json PATH] ...

Every ``benchmarks/bench_*.py`` starts by putting the repository root first on ``sys.path`` (so it imports this
checkout's ``adhoc`` and ``benchmarks.harness``, wherever it is run from), then ``from benchmarks import harness``.
The files keep their ``bench_`` prefix: the script's own folder is also on ``sys.path`` when it runs, and a bare
``ray.py`` there would shadow the ``ray`` package. ``benchmarks/`` is not part of the installed package
(``[tool.setuptools.packages.find]`` includes ``adhoc*`` only).

The API (tests/test_bench_harness.py checks it with a fake clock):

- ``timeit(fn, repeats, warmup, clock=time.perf_counter, sync=None) -> Timing``: ``warmup`` untimed calls, then
  ``repeats`` timed ones; ``Timing`` holds every repeat's seconds, their ``median``, ``min``, ``max``, ``spread``
  (max - min) and the last call's return value (``result``).
- ``interleaved({name: fn}, repeats, warmup, ...) -> {name: Timing}``: several variants timed one call of each in
  turn, so a change in the machine's load falls on all of them alike (``repeats``/``warmup`` may be per name).
- ``measure(fn, clock=..., sync=None) -> (seconds, result)``: one timed call (setup phases, single runs).
- ``Laps``: checkpoints inside one timed interval (``lap(name)``, ``total()``); ``Parts``: wall time spent inside
  wrapped functions, per part (``wrap(part, fn)``, ``reset()``, ``parts[part]``).
- ``ratio(a, b)``: a / b of two timings (``Timing`` medians or seconds) measured in the same run.
- ``median(xs)``, ``spread(xs)``.
- ``cuda_sync(device)``: ``torch.cuda.synchronize`` for a CUDA device, else None (pass it as ``sync=``, so a
  timed interval covers the kernels it launched).
- ``selfplay_bank(members)``: the built-in tiny base on the CPU (one torch thread), an AdapterBank of ``members``
  LoRA members shaped as the shipped configs', and every member paired with itself (self-play ``pairs``).
- ``add_common_args(parser, repeats=..., warmup=...)``: ``--repeats``/``--warmup`` with the benchmark's own
  defaults (left out when the benchmark has none) and ``--json PATH``.
- ``Record(name, args)``: the measured values (``record.add(key=value)`` or ``record[key] = value``);
  ``record.write(path, device=...)`` writes, atomically (temp file + ``os.replace``), a JSON object with the
  benchmark's name, the machine (``machine()``: platform, python, torch version, cpu count, torch threads,
  device), the arguments and every measured value. ``record.finish(args.json)`` writes it when ``--json`` was given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

ROOT = Path(__file__).resolve().parent.parent

Clock = Callable[[], float]


# ----------------------------------------------------------------------------- statistics
def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def spread(values: Iterable[float]) -> float:
    """max - min of the repeats (0 for one)."""
    values = list(values)
    return max(values) - min(values)


def ratio(a: Timing | float, b: Timing | float) -> float:
    """a / b: two timings (their medians) or two numbers measured in the same run; inf when b is 0."""
    a = a.median if isinstance(a, Timing) else float(a)
    b = b.median if isinstance(b, Timing) else float(b)
    return a / b if b else math.inf


@dataclass
class Timing:
    """The seconds of every timed repeat (warm-up calls excluded) and the last call's return value."""

    times: list[float] = field(default_factory=list)
    result: Any = None

    @property
    def median(self) -> float:
        return median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)

    @property
    def spread(self) -> float:
        return spread(self.times)

    @property
    def repeats(self) -> int:
        return len(self.times)

    def as_dict(self) -> dict:
        return {"median_s": self.median, "min_s": self.min, "max_s": self.max, "spread_s": self.spread,
                "repeats": self.repeats, "times_s": list(self.times)}


# ----------------------------------------------------------------------------- timing
def measure(fn: Callable[[], Any], clock: Clock = time.perf_counter,
            sync: Callable[[], None] | None = None) -> tuple[float, Any]:
    """(seconds, return value) of one call of ``fn``; ``sync`` (e.g. ``cuda_sync(device)``) runs before the start
    and before the stop, so queued device work is inside the interval."""
    if sync is not None:
        sync()
    start = clock()
    out = fn()
    if sync is not None:
        sync()
    return clock() - start, out


def timeit(fn: Callable[[], Any], repeats: int, warmup: int = 0, clock: Clock = time.perf_counter,
           sync: Callable[[], None] | None = None) -> Timing:
    """``warmup`` untimed calls, then ``repeats`` timed calls of ``fn``."""
    for _ in range(warmup):
        fn()
    timing = Timing()
    for _ in range(repeats):
        seconds, timing.result = measure(fn, clock, sync)
        timing.times.append(seconds)
    return timing


def interleaved(fns: Mapping[str, Callable[[], Any]], repeats: int | Mapping[str, int], warmup: int | Mapping[str, int] = 0,
                clock: Clock = time.perf_counter, sync: Callable[[], None] | None = None) -> dict[str, Timing]:
    """Time several variants in turn (one call of each per round, in the mapping's order): the warm-up calls of
    every variant first, then ``repeats`` rounds. A variant with fewer repeats than others sits out the later
    rounds."""
    reps = {k: repeats[k] if isinstance(repeats, Mapping) else repeats for k in fns}
    warm = {k: warmup[k] if isinstance(warmup, Mapping) else warmup for k in fns}
    for key, fn in fns.items():
        for _ in range(warm[key]):
            fn()
    out = {key: Timing() for key in fns}
    for i in range(max(reps.values(), default=0)):
        for key, fn in fns.items():
            if i < reps[key]:
                seconds, out[key].result = measure(fn, clock, sync)
                out[key].times.append(seconds)
    return out


class Laps:
    """Checkpoints inside one timed interval: ``lap(name)`` records (and returns) the seconds since the previous
    checkpoint (the start for the first); ``total()`` is the seconds since the start."""

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self.clock = clock
        self.start = self.last = clock()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> float:
        now = self.clock()
        self.laps[name] = self.laps.get(name, 0.0) + now - self.last
        self.last = now
        return self.laps[name]

    def total(self) -> float:
        return self.clock() - self.start


class Parts:
    """Wall time spent inside wrapped functions, per part (a function wrapped under an existing part adds to it),
    since the last ``reset``."""

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self.clock = clock
        self.spent: dict[str, float] = defaultdict(float)

    def wrap(self, part: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            t0 = self.clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[part] += self.clock() - t0
        return timed

    def reset(self) -> None:
        self.spent.clear()

    def __getitem__(self, part: str) -> float:
        return self.spent[part]


def cuda_sync(device: Any) -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` bound to ``device`` when it is a CUDA device, else None."""
    if device is None or "cuda" not in str(device):
        return None
    import torch

    return lambda: torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- flags
def selfplay_bank(members: int):
    """(base, bank, pairs [members, 2]): ``members`` LoRA members (rank 4, alpha 8, q/v/lm_head, B drawn with std
    0.1 so that they differ) on the built-in tiny base on the CPU, one torch thread, each paired with itself."""
    import torch

    from adhoc.lm.adapters import AdapterBank
    from adhoc.lm.base import load_base

    torch.set_num_threads(1)
    base = load_base("builtin:tiny", device="cpu")
    bank = AdapterBank(base.model, members, 4, 8, ["q_proj", "v_proj", "lm_head"])
    bank.init_members(list(range(members)), b_std=0.1)
    return base, bank, torch.arange(members)[:, None].repeat(1, 2)


def add_common_args(parser: argparse.ArgumentParser, repeats: int | None = None, warmup: int | None = None,
                    json_help: str = "also write every measurement here (JSON)") -> argparse.ArgumentParser:
    """``--repeats``/``--warmup`` (only those given a default: each benchmark keeps its own) and ``--json PATH``."""
    if repeats is not None:
        parser.add_argument("--repeats", type=int, default=repeats, help=f"timed repeats (default {repeats})")
    if warmup is not None:
        parser.add_argument("--warmup", type=int, default=warmup, help=f"untimed warm-up runs (default {warmup})")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help=json_help)
    return parser


# ----------------------------------------------------------------------------- the JSON record
def machine(device: Any = None) -> dict:
    """The machine a benchmark ran on: platform, python, torch (when importable), cpu count, threads, device."""
    info = {"platform": platform.platform(), "machine": platform.machine(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "torch": None, "torch_threads": None,
            "device": str(device) if device is not None else "cpu"}
    if hasattr(os, "getloadavg"):
        info["loadavg"] = os.getloadavg()[0]
    try:
        import torch
    except ImportError:
        return info
    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    if "cuda" in info["device"] and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(device)
    return info


def jsonable(value: Any) -> Any:
    """``value`` with Timings, paths, numpy and torch scalars/arrays, tuples and namespaces made JSON types."""
    if isinstance(value, Timing):
        return value.as_dict()
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "tolist"):  # numpy / torch
        return jsonable(value.tolist())
    if hasattr(value, "item"):
        return jsonable(value.item())
    return str(value)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``path`` so that it is either the old file or the complete new one: a temp file beside it, then
    ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


class Record:
    """One benchmark run's record: its name, arguments and every measured value."""

    def __init__(self, name: str, args: argparse.Namespace | Mapping | None = None) -> None:
        self.name = name
        self.args = {} if args is None else dict(vars(args) if isinstance(args, argparse.Namespace) else args)
        self.values: dict[str, Any] = {}

    def add(self, **values: Any) -> None:
        self.values.update(values)

    def __setitem__(self, key: str, value: Any) -> None:
        self.values[key] = value

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def as_dict(self, device: Any = None) -> dict:
        return {"benchmark": self.name, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv[1:],
                "machine": machine(device), "args": jsonable(self.args), "results": jsonable(self.values)}

    def write(self, path: str | Path, device: Any = None) -> Path:
        return atomic_write_text(path, json.dumps(self.as_dict(device), indent=2) + "\n")

    def finish(self, path: str | Path | None, device: Any = None) -> Path | None:
        """Write the record to ``path`` (the ``--json`` flag) when given; print where."""
        if path is None:
            return None
        out = self.write(path, device)
        print(f"# wrote {out}")
        return out
