"""Bounded readers of the YAML and JSON that adhoc reads back (manifests, adapter configs, sweep state, recorded
games, JSONL exports): a file above its size limit, a value nested deeper than ``MAX_DEPTH`` or holding more than
``MAX_VALUES`` values is one ``UserError`` line naming it, never a RecursionError or a memory blow-up. Configs
have their own limits (``adhoc.config``: ``MAX_CONFIG_BYTES``, ``MAX_CONFIG_VALUES``)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from adhoc.errors import UserError

MAX_DEPTH = 64  # nesting of mappings and lists: adhoc writes at most ~6
MAX_VALUES = 1_000_000  # values in one document (a population of 4096 members has ~20,000)
MAX_FILE_BYTES = 64 << 20  # a manifest, sweep.json or adapter_config.json
MAX_LINE_BYTES = 1 << 20  # one JSONL record or one recorded JSON column


def _size(n: int) -> str:
    return f"{n / (1 << 20):.3g} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def check_shape(value: Any, what: str) -> Any:
    """``value`` if it nests at most ``MAX_DEPTH`` deep and holds at most ``MAX_VALUES`` values (iteratively: no
    recursion, and a YAML alias counted at every place it appears)."""
    stack, count = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise UserError(f"{what} holds more than {MAX_VALUES:,} values (the limit)")
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise UserError(f"{what} is nested deeper than {MAX_DEPTH} levels (the limit)")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children)
    return value


def read_text(path: str | Path, what: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of ``path``; one line if it is above ``max_bytes``, not text, or cannot be read."""
    path = Path(path)
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise UserError(f"{what} is {_size(size)}, above the limit of {_size(max_bytes)}")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{what} does not parse (not UTF-8 text)") from None
    except OSError as exc:
        raise UserError(f"{what} cannot be read ({exc.strerror or type(exc).__name__})") from None


def parse_yaml(text: str, what: str) -> Any:
    import yaml

    if len(text) > MAX_FILE_BYTES:
        raise UserError(f"{what} is {_size(len(text))}, above the limit of {_size(MAX_FILE_BYTES)}")
    try:
        value = yaml.safe_load(text)
    except RecursionError:
        raise UserError(f"{what} is nested deeper than {MAX_DEPTH} levels (the limit)") from None
    except (yaml.YAMLError, ValueError) as exc:
        raise UserError(f"{what} does not parse ({(str(exc).splitlines() or [type(exc).__name__])[0]})") from None
    return check_shape(value, what)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(text: str | bytes, what: str, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """JSON as the standard says it: NaN, Infinity and -Infinity are refused, as are too deep or too large
    documents."""
    if len(text) > max_bytes:
        raise UserError(f"{what} is {_size(len(text))}, above the limit of {_size(max_bytes)}")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise UserError(f"{what} is nested deeper than {MAX_DEPTH} levels (the limit)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} is not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} is not valid JSON ({exc})") from None
    return check_shape(value, what)


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
