"""The coordination matrix game (CMG) of LIPO (Charakorn, Manoonpong, Dilokthanakul, "Generating diverse
cooperative agents by learning incompatible policies", ICLR 2023; authors' code ``51616/marl-lipo``).

One step, two players. Convention c owns a contiguous block of k_c actions; R[a1, a2] = payoff_c when both
actions lie in block c, else 0. Presets: ``cmg-s`` (32 blocks of 8: 256 actions) and ``cmg-h`` (blocks of
32, 31, ..., 1: 528 actions). A convention counts as discovered when some member's greedy self-play joint
action lies in its block. Symmetries: any permutation inside a block, and permuting blocks of equal size
and equal payoff among themselves. Actions are equal-width numbers ("000".."527").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from adhoc.errors import GameError
from adhoc.games.core import number, spans
from adhoc.games.matrix import MatrixGame, check_action_count, numbered
from adhoc.games.symmetry import PermutationGroup


@dataclass
class CMGConfig:
    name: str = "cmg"
    block_sizes: list[int] = field(default_factory=lambda: [8] * 32)
    block_payoffs: Optional[list[float]] = None  # default 1.0 for every block (the released runs)


@dataclass
class CMGSConfig(CMGConfig):
    name: str = "cmg-s"


@dataclass
class CMGHConfig(CMGConfig):
    name: str = "cmg-h"
    block_sizes: list[int] = field(default_factory=lambda: list(range(32, 0, -1)))


class CMGGame(MatrixGame):
    """A CMG: a block-diagonal matrix game whose conventions are the blocks."""

    def __init__(self, *args, block_sizes: list[int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.block_sizes = list(block_sizes)
        self._block_of = np.repeat(np.arange(len(block_sizes)), block_sizes)

    @property
    def n_conventions(self) -> int:
        return len(self.block_sizes)

    def block_of(self, action: int) -> int:
        return int(self._block_of[action])

    def convention_of(self, action: int) -> int:
        return self.block_of(action)

    def stage_rules(self, seat: int) -> str:
        names, sizes = self._actions[0], self.block_sizes
        payoffs = self._params["block_payoffs"]
        starts = np.cumsum([0] + sizes)
        block = [spans(list(range(starts[c], starts[c + 1])), names) for c in range(len(sizes))]
        if len(sizes) <= 8:
            groups = "; ".join(f"{b} ({number(u)})" for b, u in zip(block, payoffs))
            layout = f"The actions form {len(sizes)} block{'s' * (len(sizes) > 1)} (with what each pays): {groups}."
        else:
            same = len(set(sizes)) == 1
            layout = (f"The actions form {len(sizes)} blocks of " +
                      (f"{sizes[0]} actions each" if same else f"sizes {', '.join(map(str, sizes[:3]))}, ..., {sizes[-1]}")
                      + f", in order: {block[0]}, {block[1]}, ..., {block[-1]}.")
            layout += (f" Every block pays {number(payoffs[0])}." if len(set(payoffs)) == 1 else
                       f" Block payoffs, in order: {', '.join(number(u) for u in payoffs)}.")
        return (f"Coordination game with {len(names)} actions ({spans(list(range(len(names))), names)}). You are player "
                f"{seat + 1} of 2. You and your partner each choose an action at the same time, without seeing the "
                f"other's choice; you both get the same reward.\n{layout}\nIf both actions lie in the same block, you "
                "both get that block's payoff (the same action or not); otherwise 0.")


def build_cmg(cfg: CMGConfig) -> CMGGame:
    sizes = list(cfg.block_sizes)
    if not sizes or any(k < 1 for k in sizes):
        raise GameError(f"game.block_sizes must be a non-empty list of positive sizes (got {sizes})")
    n = sum(sizes)
    check_action_count(n, "game.block_sizes")
    payoffs = [1.0] * len(sizes) if cfg.block_payoffs is None else [float(u) for u in cfg.block_payoffs]
    if len(payoffs) != len(sizes):
        raise GameError(f"game.block_payoffs has {len(payoffs)} entries for {len(sizes)} blocks (game.block_sizes)")
    if not all(math.isfinite(u) for u in payoffs):
        raise GameError("game.block_payoffs must be finite numbers")
    block_of = np.repeat(np.arange(len(sizes)), sizes)
    payoff = np.where(block_of[:, None] == block_of[None, :], np.asarray(payoffs)[block_of][:, None], 0.0)
    starts = np.cumsum([0] + sizes)
    blocks = [list(range(starts[c], starts[c + 1])) for c in range(len(sizes))]
    # blocks of equal size and payoff are interchangeable: they may be permuted among themselves
    classes: dict[tuple[int, float], list[int]] = {}
    for c, key in enumerate(zip(sizes, payoffs)):
        classes.setdefault(key, []).append(c)
    group = PermutationGroup.free_blocks(n, blocks, swappable=list(classes.values()))
    names = numbered(n)
    params = {"block_sizes": sizes, "block_payoffs": payoffs}
    return CMGGame(cfg.name, payoff, [names, names], f"Coordination game with {n} actions.", group, params,
                   block_sizes=sizes)
