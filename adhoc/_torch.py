"""``torch``, imported on first use.

Game and method modules refer to ``torch`` at module level, but only the functions that step games, sample or
compute losses touch it. Building a game or a method (``adhoc validate``, ``adhoc list``) therefore never loads
torch (about a second of start-up), while everything that plays or trains gets the real module on its first
``torch.X``: ``from adhoc._torch import torch`` instead of ``import torch``.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class _OnUse:
    """A stand-in for a module, importing it on the first attribute read."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        return f"<{self._name}, imported on first use>"


torch = _OnUse("torch")
