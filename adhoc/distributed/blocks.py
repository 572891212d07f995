"""Cross-play and evaluation in blocks of pairs, each with its own seed, so that where a block is played cannot
change its result.

A block is a tile of the cross-play matrix: the pairs (i, j) with i in ``[a·T, (a+1)·T)`` and j in
``[b·T, (b+1)·T)`` for a tile side ``T`` (``block_size``); its episodes are drawn from
``numpy.random.default_rng([seed, a, b])``. The returns therefore depend on the seed and ``T`` only, never on
how many workers there are or which worker plays which block: the same ``T`` in this process
(``LocalBlocks``) and on any number of Ray workers (``RayBlocks``) gives identical returns (on the same device
and dtype). Tiles, not runs of consecutive pairs, because in a one-shot game a block's cost is its distinct
(member, observation) rows: 2·T for the T² pairs of a T x T tile, against T² + 1 for one member's row of T²
pairs.

``RayBlocks``: ``ray.workers`` actors, each loading the base model once (never shipped) and the population's
adapters once from the object store (their weights are a few MB at most), then playing the blocks handed to
it as the others finish. ``block_size=0`` (``LocalBlocks`` only) is the one-stream cross-play of
``adhoc.crossplay`` as it always was.

Any pairs, not only a cross-play matrix: ``adhoc evaluate`` plays its (agent, partner) pairs, both seatings,
and the partners' self-play through the same ``play``, with ``per_step=True`` for the per-round curve of
repeated games ([P, E, T] rewards instead of [P, E] returns). Scripted partners (member ids after the bank,
``policy.scripted``) are small dataclasses: each actor receives them with the game and seats them as this
process does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

DEFAULT_BLOCK_SIZE = 32  # tile side T for backend=ray: 32 x 32 pairs, 64 distinct rows per one-shot step


def tiles(pairs: torch.Tensor, block_size: int) -> list[tuple[tuple[int, int], torch.Tensor]]:
    """((a, b), indices into ``pairs`` of the tile's pairs, in their order) for every non-empty tile, by (a, b)."""
    keys = (pairs[:, 0] // block_size) * (int(pairs[:, 1].max()) // block_size + 1) + pairs[:, 1] // block_size
    out = []
    for key in torch.unique(keys).tolist():
        idx = torch.nonzero(keys == key)[:, 0]
        out.append(((int(pairs[idx[0], 0]) // block_size, int(pairs[idx[0], 1]) // block_size), idx))
    return out


def play_tile(game, policy, pairs: torch.Tensor, episodes: int, seed: int, tile: tuple[int, int],
              per_step: bool = False, seats: bool = False) -> torch.Tensor:
    """Returns [len(pairs), episodes] of one tile's pairs (``per_step``: rewards [len(pairs), episodes, T];
    ``seats``: each seat's, a last axis of 2), from the tile's own generator."""
    from adhoc.rollout import episode_returns

    return episode_returns(game, policy, pairs, episodes, np.random.default_rng([seed, *tile]), per_step=per_step,
                           seats=seats)


def empty_result(game, pairs: torch.Tensor, episodes: int, per_step: bool, seats: bool = False) -> torch.Tensor:
    """The [P, E] (``per_step``: [P, E, T]; ``seats``: [..., 2]) tensor the tiles' results are written into."""
    return torch.empty(pairs.shape[0], episodes, *((game.horizon,) if per_step else ()), *((2,) if seats else ()))


class LocalBlocks:
    """The ``play`` of ``adhoc.crossplay.crossplay`` in this process: tiles of ``block_size`` (0: one stream)."""

    def __init__(self, block_size: int = 0) -> None:
        self.block_size = block_size

    def __call__(self, game, policy, pairs: torch.Tensor, episodes: int, seed: int,
                 per_step: bool = False, seats: bool = False) -> torch.Tensor:
        from adhoc.rollout import episode_returns

        if not self.block_size:
            return episode_returns(game, policy, pairs, episodes, np.random.default_rng(seed), per_step=per_step,
                                   seats=seats)
        out = empty_result(game, pairs, episodes, per_step, seats)
        for tile, idx in tiles(pairs, self.block_size):
            out[idx] = play_tile(game, policy, pairs[idx], episodes, seed, tile, per_step, seats)
        return out


class _Worker:
    """A Ray actor: the base model loaded once, the population's adapters from the object store, blocks on demand.
    ``scripted``: the policy's scripted strategies (member ids after the bank), in the driver's order."""

    def __init__(self, base_id: str, device: str, dtype: str, bank: dict[str, Any], game: Any,
                 scripted: list[Any] | None = None) -> None:
        from adhoc.lm.adapters import AdapterBank
        from adhoc.lm.base import load_base
        from adhoc.lm.policy import Policy

        base = load_base(base_id, device=device, dtype=dtype)
        self.policy = Policy(base, AdapterBank(base.model, **bank), scripted=scripted)
        self.game = game

    @torch.no_grad()
    def load(self, weights: list[torch.Tensor]) -> int:
        params = self.policy.bank.member_parameters()
        for param, value in zip(params, weights, strict=True):
            param.copy_(value.to(param.device, param.dtype))
        return len(params)

    def play(self, pairs: torch.Tensor, episodes: int, seed: int, tile: tuple[int, int],
             per_step: bool = False, seats: bool = False) -> torch.Tensor:
        return play_tile(self.game, self.policy, pairs, episodes, seed, tile, per_step, seats)


class RayBlocks:
    """The ``play`` of ``adhoc.crossplay.crossplay`` (and of ``adhoc.recipes.evaluate.evaluate``) on Ray: the
    tiles of ``block_size`` spread over ``ray_config.workers`` actors (each ``ray.cpus_per_worker`` CPUs and
    ``ray.gpus_per_worker`` of a GPU)."""

    def __init__(self, ray_config: Any, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        if block_size < 1:
            from adhoc.errors import UserError

            raise UserError(f"backend=ray plays blocks of pairs: --block-size must be >= 1 (got {block_size})")
        self.ray_config, self.block_size = ray_config, block_size
        self.workers_used = 0

    def __call__(self, game, policy, pairs: torch.Tensor, episodes: int, seed: int,
                 per_step: bool = False, seats: bool = False) -> torch.Tensor:
        from adhoc.distributed.cluster import cluster, worker_options

        todo = tiles(pairs, self.block_size)
        bank = policy.bank
        spec = {"n_members": bank.n_members, "rank": bank.rank, "alpha": bank.alpha,
                "target_modules": bank.target_modules, "base_model_id": bank.base_model_id}
        dtype = str(policy.base.dtype).removeprefix("torch.")
        device = "cpu" if policy.base.device.type == "cpu" and not self.ray_config.gpus_per_worker else "auto"
        out = empty_result(game, pairs, episodes, per_step, seats)
        with cluster(self.ray_config) as ray:
            actor = ray.remote(_Worker).options(**worker_options(self.ray_config))
            n = min(self.ray_config.workers, len(todo))
            scripted = ray.put(list(policy.scripted))
            workers = [actor.remote(policy.base.model_id, device, dtype, spec, game, scripted) for _ in range(n)]
            weights = ray.put([p.detach().cpu() for p in bank.member_parameters()])  # once, shared by all
            ray.get([w.load.remote(weights) for w in workers])
            self.workers_used = n
            queue, pending = list(todo), {}  # ref -> (worker, indices of its tile's pairs)
            idle = list(workers)
            while queue or pending:
                while queue and idle:
                    w, (tile, idx) = idle.pop(), queue.pop(0)
                    pending[w.play.remote(pairs[idx], episodes, seed, tile, per_step, seats)] = (w, idx)
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    w, idx = pending.pop(ref)
                    out[idx] = ray.get(ref)
                    idle.append(w)
            for w in workers:
                ray.kill(w)
        return out


def player(overrides: list[str], backend: str | None = None, block_size: int | None = None):
    """The ``play`` that ``--backend``, ``--block-size T`` and ``backend=ray ray.workers=N`` overrides ask for:
    ``RayBlocks`` on Ray (T default ``DEFAULT_BLOCK_SIZE``), ``LocalBlocks(T)`` in this process, or None (one
    stream in this process, what a command does without them). Built before any work, so that every mistake
    (a bad key, a negative T, Ray not installed) is one UserError line and nothing has been played."""
    from adhoc.config import load_execution
    from adhoc.errors import UserError

    chosen, ray_config = load_execution([*overrides, *([f"backend={backend}"] if backend else [])])
    if block_size is not None and block_size < 0:
        raise UserError(f"--block-size must be >= 0 (got {block_size})")
    if chosen == "ray":
        from adhoc.distributed.cluster import check_reachable, require_ray

        check_reachable(ray_config)  # first: a cluster that does not answer, whether Ray is installed or not
        require_ray()
        return RayBlocks(ray_config, DEFAULT_BLOCK_SIZE if block_size is None else block_size)
    return LocalBlocks(block_size) if block_size else None
