"""Train a population of LoRA members on one shared base LM with a diversity method: ``adhoc train-population``.

1. Check everything a user can get wrong before anything is written: the game and method (``build_game_and_
   method``: a method refuses, in one line, a game it can't serve), the data-parallel settings, ``--out``.
2. Build the run (``adhoc.engine.build_run``: game, base model, bank, policy, optimizer, generator) and open
   the staging folder (``PopulationWriter``: ``.<out>.partial``, locked).
3. Train: in this process (``adhoc.engine.train_in_process``: the loop, checkpoints, resume, signals), or with
   ``backend: ray`` on Ray Train workers, data-parallel (``adhoc.distributed.train``), the same loop.
4. The engine exports the population (``adhoc.engine.export``) and publishes it atomically; a failure keeps
   the staging folder only when it holds a checkpoint to resume from.

The loop itself, its TensorBoard keys and the checkpoint format are described in ``adhoc.engine``.
"""

from __future__ import annotations

import time
from pathlib import Path

from adhoc.config import RunConfig
from adhoc.engine import build_game_and_method, build_run, train_in_process
from adhoc.errors import UserError
from adhoc.paths import check_out, unique_default
from adhoc.population import CHECKPOINT, Population, PopulationWriter


def default_out(config: RunConfig) -> Path:
    return unique_default(config.game.name, config.method.name, f"seed{config.population.seed}")


def train_population(config: RunConfig, out: str | Path | None = None, overwrite: bool = False,
                     progress: bool = True, resume: bool = False) -> Population:
    """Train, checkpointing every ``train.checkpoint_every`` iterations and on SIGTERM / Ctrl-C; with
    ``resume`` continue the interrupted run of the same ``out`` from its checkpoint (bit for bit on CPU).
    ``backend: ray`` trains data-parallel on Ray Train workers (``adhoc.distributed.train``)."""
    start = time.perf_counter()
    if resume and out is None:
        raise UserError("--resume needs the --out of the run to continue")
    out = Path(out) if out is not None else default_out(config)
    game_and_method = build_game_and_method(config)  # before anything is written
    if config.backend == "ray":
        from adhoc.distributed.train import check_data_parallel

        check_data_parallel(config, resume)
    if not resume:
        check_out(out, "population", overwrite)  # before the base is loaded
    run = build_run(config, game_and_method)
    writer = PopulationWriter(out, overwrite=overwrite, resume=resume)  # locked staging folder
    try:
        if config.backend == "ray":
            from adhoc.distributed.train import train_data_parallel

            return train_data_parallel(run, writer, start)
        return train_in_process(run, writer, start, progress, resume)
    except BaseException as exc:
        writer.abandon(keep=(writer.staging / CHECKPOINT).exists() and not isinstance(exc, UserError))
        raise
