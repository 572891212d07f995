"""Symmetry groups of games: relabellings of each seat's actions that leave the payoff unchanged.

An element is a tuple of per-seat permutations (int arrays, ``element[s][a] = φ_s(a)``). Other-Play
(Hu et al. 2020) samples an element uniformly per episode and relabels the partner with it.

Two constructions, both sampled exactly uniformly:
- ``free_blocks``: the same permutation for every seat; any permutation within each block of actions, and
  optionally whole equal-size blocks permuted among themselves (lever game, CMG);
- ``from_generators``: the closure of user-given generators (matrix games), enumerated by breadth-first
  search (at most 100,000 elements).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from adhoc.games.core import GameError

MAX_ELEMENTS = 100_000


class PermutationGroup:
    def __init__(self, action_counts: list[int]) -> None:
        self.action_counts = list(action_counts)
        self._elements: list[tuple[np.ndarray, ...]] | None = None
        self._blocks: list[np.ndarray] | None = None
        self._swappable: list[list[int]] = []

    # ------------------------------------------------------------------ constructors
    @classmethod
    def free_blocks(cls, n_actions: int, blocks: list[list[int]], swappable: list[list[int]] | None = None,
                    n_seats: int = 2) -> "PermutationGroup":
        group = cls([n_actions] * n_seats)
        group._blocks = [np.asarray(b, dtype=np.int64) for b in blocks]
        seen = np.concatenate(group._blocks) if group._blocks else np.zeros(0, dtype=np.int64)
        if len(set(seen.tolist())) != len(seen) or (len(seen) and (seen.min() < 0 or seen.max() >= n_actions)):
            raise GameError("symmetry blocks must be disjoint action indices")
        for swap in swappable or []:
            if len({len(group._blocks[i]) for i in swap}) > 1:
                raise GameError("only blocks of equal size can be swapped")
        group._swappable = [list(s) for s in (swappable or []) if len(s) > 1]
        return group

    @classmethod
    def from_generators(cls, action_counts: list[int], generators: list[list[list[int]]]) -> "PermutationGroup":
        group = cls(action_counts)
        gens = []
        for g in generators:
            if len(g) != len(action_counts):
                raise GameError(f"a symmetry generator needs one permutation per seat ({len(action_counts)})")
            perm = tuple(np.asarray(p, dtype=np.int64) for p in g)
            for p, n in zip(perm, action_counts):
                if sorted(p.tolist()) != list(range(n)):
                    raise GameError(f"symmetry generator {[list(map(int, q)) for q in perm]} is not a permutation of {n} actions")
            gens.append(perm)
        identity = tuple(np.arange(n) for n in action_counts)
        key = lambda e: tuple(tuple(p.tolist()) for p in e)  # noqa: E731
        seen = {key(identity): identity}
        queue = deque([identity])
        while queue:
            e = queue.popleft()
            for g in gens:
                prod = tuple(gp[ep] for gp, ep in zip(g, e))  # g ∘ e
                k = key(prod)
                if k not in seen:
                    if len(seen) >= MAX_ELEMENTS:
                        raise GameError(f"the symmetry group has more than {MAX_ELEMENTS} elements; give fewer generators")
                    seen[k] = prod
                    queue.append(prod)
        group._elements = list(seen.values())
        return group

    # ------------------------------------------------------------------ queries
    def order(self) -> int:
        if self._elements is not None:
            return len(self._elements)
        n = 1
        for b in self._blocks:
            n *= math.factorial(len(b))
        for swap in self._swappable:
            n *= math.factorial(len(swap))
        return n

    def identity(self) -> tuple[np.ndarray, ...]:
        return tuple(np.arange(n) for n in self.action_counts)

    def sample(self, k: int, rng: np.random.Generator) -> list[np.ndarray]:
        """k uniform elements: one array [k, A_s] per seat."""
        if self._elements is not None:
            idx = rng.integers(len(self._elements), size=k)
            return [np.stack([self._elements[i][s] for i in idx]) for s in range(len(self.action_counts))]
        n = self.action_counts[0]
        out = np.tile(np.arange(n), (k, 1))
        for row in range(k):
            # which block lands where (uniform over swaps), then a uniform permutation inside each block
            target = list(range(len(self._blocks)))
            for swap in self._swappable:
                for src, dst in zip(swap, rng.permutation(swap)):
                    target[src] = int(dst)
            for b, block in enumerate(self._blocks):
                out[row, block] = rng.permutation(self._blocks[target[b]])
        return [out.copy() for _ in self.action_counts]

    def contains(self, element) -> bool:
        element = tuple(np.asarray(p) for p in element)
        if self._elements is not None:
            return any(all(np.array_equal(a, b) for a, b in zip(element, e)) for e in self._elements)
        p = element[0]
        if any(not np.array_equal(p, q) for q in element[1:]):
            return False
        moved = np.ones(len(p), dtype=bool)
        for b, block in enumerate(self._blocks):
            moved[block] = False
            images = set(p[block].tolist())
            allowed = [b] + next((s for s in self._swappable if b in s), [])
            if not any(images == set(self._blocks[c].tolist()) for c in allowed):
                return False
        return bool(np.array_equal(p[moved], np.arange(len(p))[moved]))

    def generators(self) -> list[tuple[np.ndarray, ...]]:
        """A generating set (for checks): transpositions within blocks and block swaps."""
        if self._elements is not None:
            return self._elements
        n, gens = self.action_counts[0], []
        for block in self._blocks:
            for a, b in zip(block[:-1], block[1:]):
                p = np.arange(n)
                p[a], p[b] = b, a
                gens.append(p)
        for swap in self._swappable:
            for i, j in zip(swap[:-1], swap[1:]):
                p = np.arange(n)
                p[self._blocks[i]], p[self._blocks[j]] = self._blocks[j], self._blocks[i]
                gens.append(p)
        return [tuple(g for _ in self.action_counts) for g in gens]

    def preserves(self, payoff: np.ndarray) -> bool:
        """payoff[φ0(a), φ1(b)] == payoff[a, b] for all a, b and every element (checked on generators)."""
        payoff = np.asarray(payoff)
        return all(np.array_equal(payoff[np.ix_(g[0], g[1])], payoff) for g in self.generators())
