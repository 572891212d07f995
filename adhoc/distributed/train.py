"""One population trained data-parallel on Ray Train workers: ``adhoc train-population CONFIG backend=ray``.

Every worker builds the same run (game, base model, bank of all members, optimizer, generator: the bank is
replicated) and runs the one training loop of ``adhoc.engine`` with a ``Workers`` view:

- the generator is the same on every worker, so all draw the same pairs, partner relabellings and uniforms;
  worker r plays only its block of the pairs (``rollout(shard=(r, W))``), whose episodes get exactly the
  draws the whole rollout would give them;
- before the loss, one all-reduce gives every worker what the methods read of the other workers' pairs: each
  member's played steps (the denominators of its per-step means: ``traj.total_played``) and every pair's
  returns (LIPO's cross-play matrix, TrajeDi's best-response return: ``traj.all_returns``). Everything else a
  loss uses is per pair (baselines, TrajeDi's divergence and MEP's mean policy are computed on a worker's own
  trajectories, re-scored under every member of the replicated bank), so the workers' losses add up to the
  whole loss;
- after the backward pass the adapters' gradients (and the iteration's statistics) are summed over workers
  in one all-reduce of a flat buffer, as DDP's buckets do (gloo on CPU, NCCL on GPU); every worker then takes
  the same optimizer step;
- the self-play evaluation is split the same way and summed, so every worker holds every member's return.

The result equals the in-process run up to the order of floating-point sums (a worker scores fewer rows per
batch, and a gradient is added up over workers in another order); on one-shot games with one pair per member
(self-play, Other-Play) the adapters are the same bit for bit.

Checkpoints go through Ray Train (``ray.train.report(..., checkpoint=...)``, the same safetensors file as an
in-process checkpoint, written by worker 0 every ``train.checkpoint_every`` iterations and at the end);
with ``FailureConfig(max_failures=ray.max_failures)`` a failed worker group is restarted and resumes from
the last checkpoint. The driver reads the final checkpoint, writes the TensorBoard curves the workers
recorded, and saves the population exactly as an in-process run does (``adhoc.engine.export``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from adhoc import checkpoint
from adhoc.engine import build_run, export, train_loop
from adhoc.errors import UserError
from adhoc.paths import atomic_write
from adhoc.population import CHECKPOINT

STORAGE = "ray-train"  # Ray Train's checkpoints, inside the run's staging folder (removed before publishing)


def check_data_parallel(config, resume: bool) -> None:
    """One line for a run that can't train data-parallel, before anything is written."""
    from adhoc.distributed.cluster import INSTALL, require_ray

    require_ray()
    try:
        import ray.train.torch  # noqa: F401
    except ImportError:
        raise UserError(f"train-population backend=ray needs Ray Train, which is not installed here: run "
                        f"{INSTALL}") from None
    if config.train.rollout != "per_row":
        raise UserError("train-population backend=ray needs train.rollout=per_row (it splits rows of episodes)")
    if resume:
        raise UserError("--resume is for in-process runs; a backend=ray run restarts failed workers from its "
                        "checkpoints itself (ray.max_failures): run it again without --resume")


class Workers:
    """The training loop's view of the data-parallel workers (``InProcess`` is its one-worker counterpart)."""

    def __init__(self, rank: int, world: int) -> None:
        import torch
        import torch.distributed as dist

        self.shard = (rank, world)
        self.seconds = 0.0  # spent in all-reduces (waiting for the slowest worker included)
        # NCCL exchanges CUDA tensors only; gloo CPU tensors
        self.device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
            else torch.device("cpu")

    def sum(self, value):
        import torch.distributed as dist

        started = time.perf_counter()
        out = value.detach().to(self.device, copy=True)
        dist.all_reduce(out)
        out = out.to(value.device)
        self.seconds += time.perf_counter() - started
        return out

    def sum_step(self, params, values):
        """One all-reduce of every parameter's gradient and of ``values``, flattened into one buffer (as DDP's
        buckets do): gradients are summed in place, the summed ``values`` returned."""
        import torch
        import torch.distributed as dist

        started = time.perf_counter()
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]  # None: no local episode
        parts = [*grads, *values]
        flat = torch.cat([t.detach().reshape(-1).to(self.device, torch.float32) for t in parts])  # fp32 as the adapters
        dist.all_reduce(flat)
        out, at = [], 0
        for t in parts:
            out.append(flat[at:at + t.numel()].view(t.shape).to(t.device, t.dtype))
            at += t.numel()
        for p, g in zip(params, out):
            p.grad = g
        self.seconds += time.perf_counter() - started
        return out[len(params):]


class _NeverStop:
    requested = None  # workers do not handle signals: Ray Train stops and restarts them


def worker_loop(payload: dict) -> None:
    """The function every Ray Train worker runs: the training loop from the last checkpoint (or the start),
    reporting a checkpoint every ``train.checkpoint_every`` iterations and once at the end."""
    import ray.train
    import torch

    entered = time.time()  # wall clock: compared with the driver's
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    run = build_run(payload["config"])
    workers = Workers(rank, world)
    times = {"entered": entered, "built": time.time()}  # this attempt's start (a restart has its own)
    iteration, sp, scalars, loop_s = 0, None, [], 0.0
    restored = ray.train.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            tensors, state = checkpoint.load(Path(folder) / CHECKPOINT)
        iteration, sp = run.restore(tensors, state, Path(folder) / CHECKPOINT)
        scalars, loop_s = state["scalars"], state["loop_s"]  # the curves up to the checkpoint's iteration
        workers.seconds = state["exchange_s"]
    started = time.perf_counter() - loop_s

    def save(iteration: int, sp: torch.Tensor | None) -> None:
        tensors, state = run.checkpoint(iteration, sp, {"scalars": scalars, "exchange_s": workers.seconds,
                                                        "loop_s": time.perf_counter() - started, **times})
        if rank != 0:
            ray.train.report({"iteration": iteration})
            return
        with tempfile.TemporaryDirectory() as folder:
            checkpoint.save(Path(folder) / CHECKPOINT, tensors, state)
            ray.train.report({"iteration": iteration}, checkpoint=ray.train.Checkpoint.from_directory(folder))

    def log(key: str, value: float, iteration: int) -> None:
        scalars.append([key, value, iteration])

    iteration, sp = train_loop(run, workers, iteration, sp, log, save, _NeverStop(), progress=False)
    save(iteration, sp)


def train_data_parallel(run, writer, start: float):
    """Train ``run.config`` on ``ray.workers`` Ray Train workers, then save the population from the final
    checkpoint in this process (``train_population`` calls this for ``backend: ray``)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from adhoc.distributed.cluster import cluster

    config = run.config
    atomic_write(writer.staging / "config.yaml", config.to_yaml())
    storage = writer.staging / STORAGE
    resources = {"CPU": config.ray.cpus_per_worker}
    if config.ray.gpus_per_worker:
        resources[config.ray.gpu_resource] = config.ray.gpus_per_worker
    with cluster(config.ray):
        trainer = TorchTrainer(
            worker_loop, train_loop_config={"config": config},
            scaling_config=ScalingConfig(num_workers=config.ray.workers, resources_per_worker=resources,
                                         use_gpu=bool(config.ray.gpus_per_worker) and config.ray.gpu_resource == "GPU"),
            run_config=RunConfig(name="train", storage_path=str(storage.resolve()),
                                 failure_config=FailureConfig(max_failures=config.ray.max_failures),
                                 checkpoint_config=CheckpointConfig(num_to_keep=2)))
        fit_started = time.time()
        result = _fit(trainer)
    with result.checkpoint.as_directory() as folder:
        tensors, state = checkpoint.load(Path(folder) / CHECKPOINT)
    iteration, sp = run.restore(tensors, state, Path(folder) / CHECKPOINT)
    shutil.rmtree(storage)  # this run's own Ray Train folder: the population holds what it needs
    _write_curves(writer.staging / "tb", config, state["scalars"])
    elapsed = time.perf_counter() - start
    return export(run, writer, iteration, sp, elapsed, elapsed - state["loop_s"], {"data_parallel": {
        "workers": config.ray.workers, "exchange_s": round(state["exchange_s"], 2),
        # from the fit's start to worker 0's function (Ray Train's controller, worker group and process group;
        # for a restarted run, up to its last attempt), then that worker's imports, base model and bank
        "ray_train_start_s": round(state["entered"] - fit_started, 1),
        "worker_build_s": round(state["built"] - state["entered"], 1)}})


def _fit(trainer):
    """``trainer.fit()``; a ``UserError`` raised on a worker (a diverged run) comes back as that one line."""
    from ray.train import TrainingFailedError

    try:
        return trainer.fit()
    except TrainingFailedError as exc:
        for failure in getattr(exc, "worker_failures", {}).values():
            if isinstance(failure, UserError) or "UserError" in str(failure):
                line = str(failure).strip().splitlines()[-1]
                raise UserError(line.split("UserError: ", 1)[-1]) from None
        raise


def _write_curves(folder: Path, config, scalars: list) -> None:
    """The TensorBoard events of the run from the scalars the workers recorded (key, value, iteration)."""
    from torch.utils.tensorboard import SummaryWriter

    tb = SummaryWriter(str(folder))
    tb.add_text("config", "```\n" + config.to_yaml() + "\n```")
    for key, value, iteration in scalars:
        tb.add_scalar(key, value, iteration)
    tb.close()
