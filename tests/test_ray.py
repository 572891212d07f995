"""The Ray backend on a real local Ray cluster: two nodes on this machine (``ray.cluster_utils.Cluster``), the
second declaring a custom resource ``fake_gpu`` that stands in for a GPU. Started once for this file.

Sweeps on Ray equal sweeps run locally and skip complete trials; a trial whose worker process is killed is
retried and resumes from its checkpoint; fractional GPU shares pack trials onto one GPU; cross-play blocks on Ray
workers equal the same blocks played in this process; one population trained data-parallel on two Ray Train
workers equals the in-process run, also when a worker is SIGKILLed mid-run; an unreachable ``ray.address`` is one
line, exit 2."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason='the Ray backend needs ray: pip install -e ".[ray]"')

from ray.cluster_utils import Cluster  # noqa: E402

from adhoc.config import RayConfig  # noqa: E402
from adhoc.distributed.cluster import worker_options  # noqa: E402
from adhoc.recipes import sweep as S  # noqa: E402

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the tasks below run in Ray's worker processes

ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "configs" / "lever-selfplay.yaml")
TINY = ["population.size=2", "game.n_levers=3", "train.iterations=4", "train.episodes_per_pair=8",
        "train.eval_every=2", "train.eval_episodes=8", "train.checkpoint_every=1"]


def strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("train_s", "population")}


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    gpu_node = c.add_node(num_cpus=2, resources={"fake_gpu": 1})
    ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
    c.wait_for_nodes()
    try:
        yield c, gpu_node.node_id
    finally:
        ray.shutdown()
        c.shutdown()


def test_a_sweep_on_ray_equals_the_local_sweep_and_skips_complete_trials(cluster, tmp_path, capsys):
    on_ray, _, _ = S.run_sweep([CONFIG], [0, 1], [*TINY, "backend=ray", "ray.workers=2"], out=tmp_path / "r",
                               episodes=8)
    local, _, _ = S.run_sweep([CONFIG], [0, 1], TINY, out=tmp_path / "l", episodes=8)
    assert [strip(r) for r in on_ray] == [strip(r) for r in local]
    capsys.readouterr()
    S.run_sweep([CONFIG], [0, 1], [*TINY, "backend=ray"], out=tmp_path / "r", episodes=8)
    assert "2 trials, 2 complete, 0 to run" in capsys.readouterr().out


def killed_once_after_a_checkpoint(name, config, out, episodes):
    """A trial whose first attempt SIGKILLs its own worker process right after its 2nd checkpoint."""
    from adhoc import checkpoint

    marker = Path(out) / f".{name}.killed"
    real_save = checkpoint.save

    def save(path, tensors, state):
        real_save(path, tensors, state)
        if state["iteration"] == 2 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoint.save = save
    try:
        result = S.run_trial(name, config, out, episodes)
    finally:
        checkpoint.save = real_save
    return result | {"resumed": marker.exists()}


def test_a_trial_whose_worker_is_killed_is_retried_from_its_checkpoint(cluster, tmp_path):
    out = tmp_path / "r"
    rows, _, _ = S.run_sweep([CONFIG], [0], [*TINY, "backend=ray"], out=out, episodes=8, retries=1,
                             trial_fn=killed_once_after_a_checkpoint)
    killed_pid = int((out / ".lever-selfplay-s0.killed").read_text())
    record = json.loads((out / S.SWEEP_FILE).read_text())["trials"]["lever-selfplay-s0"]
    assert record["status"] == "complete" and killed_pid > 0
    plain, _, _ = S.run_sweep([CONFIG], [0], TINY, out=tmp_path / "l", episodes=8)
    assert strip(rows[0]) == strip(plain[0])  # resumed bit for bit from the checkpoint of iteration 2


@ray.remote(num_cpus=0)
class Meter:
    """How many tasks run at once (the peak) and on which nodes."""

    def __init__(self) -> None:
        self.now, self.peak, self.arrived = 0, 0, 0

    def enter(self) -> None:
        self.now += 1
        self.arrived += 1
        self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        self.now -= 1

    def stats(self) -> tuple[int, int]:
        return self.arrived, self.peak


def share_of_the_gpu(meter, wait_for: int, hold_s: float):
    meter.enter.remote()
    deadline = time.monotonic() + hold_s
    while time.monotonic() < deadline and ray.get(meter.stats.remote())[0] < wait_for:
        time.sleep(0.05)
    ctx = ray.get_runtime_context()
    ray.get(meter.leave.remote())
    return ctx.get_node_id(), ctx.get_assigned_resources()


@pytest.mark.parametrize("fraction, most_at_once", [(0.25, 4), (0.5, 2)])
def test_fractional_gpu_shares_pack_trials_onto_the_gpu_node(cluster, fraction, most_at_once):
    """gpus_per_worker=0.25: four workers run at once on the one fake GPU (each waits until all four arrived);
    0.5: never more than two. Every one runs on the node that has the GPU."""
    _, gpu_node = cluster
    options = worker_options(RayConfig(cpus_per_worker=0, gpus_per_worker=fraction, gpu_resource="fake_gpu"), 0)
    meter = Meter.remote()
    task = ray.remote(share_of_the_gpu).options(**options)
    hold = 60.0 if most_at_once == 4 else 1.0  # 4: released as soon as all four are in (60 s: a hang guard)
    placed = ray.get([task.remote(meter, 4, hold) for _ in range(4)])
    arrived, peak = ray.get(meter.stats.remote())
    assert arrived == 4 and {node for node, _ in placed} == {gpu_node}
    assert all(resources.get("fake_gpu") == fraction for _, resources in placed)
    assert peak == 4 if most_at_once == 4 else 1 <= peak <= 2


def test_crossplay_blocks_on_ray_workers_equal_the_same_blocks_in_process(cluster, tmp_path):
    from adhoc.config import load_config
    from adhoc.crossplay import crossplay
    from adhoc.distributed.blocks import LocalBlocks, RayBlocks
    from adhoc.recipes.train_population import train_population

    # 5 barely trained members: stochastic policies, so every seed gives other returns
    config = load_config(CONFIG, ["population.size=5", "game.n_levers=3", "train.iterations=1",
                                  "train.episodes_per_pair=4", "train.eval_episodes=4"])
    pop = train_population(config, out=tmp_path / "pop", progress=False)
    here = crossplay([pop.path], episodes=6, seed=7, play=LocalBlocks(2))
    on_ray = RayBlocks(RayConfig(workers=2, cpus_per_worker=1), 2)
    there = crossplay([pop.path], episodes=6, seed=7, play=on_ray)
    assert on_ray.workers_used == 2
    assert np.array_equal(here.matrix, there.matrix) and here.metrics["ci95"] == there.metrics["ci95"]
    other = crossplay([pop.path], episodes=6, seed=8, play=LocalBlocks(2))
    assert not np.array_equal(here.matrix, other.matrix)  # the comparison above could fail


def test_an_unreachable_address_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        run = subprocess.run([sys.executable, "-m", "adhoc.cli", "sweep", CONFIG, "--seeds", "0", *TINY, "backend=ray",
                              f"ray.address={address}", "--out", str(tmp_path / "s")],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert run.stderr.startswith(f"adhoc: error: cannot reach the Ray cluster at ray.address={address}")


def adapters(pop) -> dict[str, dict]:
    from safetensors.torch import load_file

    return {p.parent.name: load_file(str(p)) for p in sorted(Path(pop.path).glob("members/*/adapter_model.safetensors"))}


def same_population(a, b, atol: float = 0.0) -> None:
    """The same adapters within ``atol`` and the same manifest, but for the clock. A worker scores fewer rows
    per batch, so where observations differ in length (multi-step games) its padded batches round differently in
    the last bits, and Adam, which divides by the gradient's scale, carries that into the weights' last digits."""
    import torch

    here, there = adapters(a), adapters(b)
    assert sorted(here) == sorted(there) and len(here) > 0
    for name in here:
        assert sorted(here[name]) == sorted(there[name])
        for key in here[name]:
            torch.testing.assert_close(here[name][key], there[name][key], atol=atol, rtol=0)
    clock = ("created", "wall_time_s", "startup_s", "train_s", "data_parallel")
    assert {k: v for k, v in a.manifest.items() if k not in clock} == {k: v for k, v in b.manifest.items() if k not in clock}


DATA_PARALLEL = {  # (config, overrides, atol): odd sizes, so the two workers' blocks of pairs differ in size
    "repeated-lever-selfplay": ("repeated-lever-selfplay.yaml", 1e-3, ["population.size=3", "game.rounds=3",
                                "game.stage_params.n_levers=4", "train.iterations=4", "train.episodes_per_pair=8",
                                "train.eval_every=2", "train.eval_episodes=8", "train.checkpoint_every=2"]),
    "lever-lipo": ("lever-lipo.yaml", 1e-3, ["population.size=3", "game.n_levers=4", "train.iterations=4",
                   "train.episodes_per_pair=8", "train.eval_every=2", "train.eval_episodes=8"]),
    "lever-otherplay-restarts": ("lever-otherplay.yaml", 0.0, ["population.size=3", "method.restarts=2", "game.n_levers=4",
                                 "train.iterations=4", "train.episodes_per_pair=8", "train.eval_every=2",
                                 "train.eval_episodes=8"]),
}


@pytest.mark.parametrize("case", list(DATA_PARALLEL))
def test_one_population_on_two_ray_train_workers_equals_the_in_process_run(cluster, tmp_path, case):
    from adhoc.config import load_config
    from adhoc.recipes.train_population import train_population

    name, atol, overrides = DATA_PARALLEL[case]
    config = load_config(str(ROOT / "configs" / name), overrides)
    here = train_population(config, out=tmp_path / "here", progress=False)
    there = train_population(load_config(str(ROOT / "configs" / name), [*overrides, "backend=ray", "ray.workers=2"]),
                             out=tmp_path / "there", progress=False)
    same_population(here, there, atol)  # one-shot games: bit for bit
    assert there.manifest["data_parallel"]["workers"] == 2 and "data_parallel" not in here.manifest
    assert "trained on  2 Ray Train workers" in there.summary() and "Ray Train" not in here.summary()
    if atol == 0:  # the same adapters: the same cross-play matrix
        from adhoc.crossplay import crossplay

        assert np.array_equal(crossplay([here.path], episodes=8, seed=3).matrix,
                              crossplay([there.path], episodes=8, seed=3).matrix)
    assert sorted(p.name for p in Path(there.path).iterdir()) == ["config.yaml", "members", "population.yaml", "tb"]
    assert not any(tmp_path.glob(".*.partial"))


def ray_train_workers() -> list[int]:
    """Pids of this machine's Ray Train worker processes (their title is ``ray::RayTrainWorker...``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_a_sigkilled_ray_train_worker_is_restarted_and_the_run_ends_as_an_uninterrupted_one(cluster, tmp_path):
    """SIGKILL one of the two workers after the first checkpoint: Ray Train restarts the worker group from the
    last checkpoint (``ray.max_failures``), and the population equals the in-process run bit for bit."""
    from adhoc.config import load_config
    from adhoc.recipes.train_population import train_population

    overrides = ["population.size=4", "game.n_levers=5", "train.iterations=300", "train.episodes_per_pair=16",
                 "train.eval_every=100", "train.eval_episodes=16", "train.checkpoint_every=10"]
    checkpoints = tmp_path / ".there.partial" / "ray-train" / "train"
    seen: dict[str, object] = {}

    earlier = set(ray_train_workers())  # an earlier run's workers may still be exiting

    def kill_one_worker_after_a_checkpoint() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not list(checkpoints.glob("checkpoint_*")):
            time.sleep(0.05)
        workers = set(ray_train_workers()) - earlier
        if workers:
            seen["killed"] = min(workers)
            os.kill(seen["killed"], signal.SIGKILL)
        while time.monotonic() < deadline and "killed" in seen and "restarted" not in seen:
            if set(ray_train_workers()) - earlier - workers:  # a worker of the restarted group
                seen["restarted"] = True
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker_after_a_checkpoint, daemon=True)
    killer.start()
    there = train_population(load_config(CONFIG, [*overrides, "backend=ray", "ray.workers=2", "ray.max_failures=1"]),
                             out=tmp_path / "there", progress=False)
    killer.join(timeout=5)
    assert "killed" in seen and seen.get("restarted"), seen
    assert there.manifest["training"]["iterations"] == 300 and len(there.members) == 4
    same_population(train_population(load_config(CONFIG, overrides), out=tmp_path / "here", progress=False), there)


def test_a_user_error_on_a_worker_comes_back_as_its_one_line():
    """A run that diverges on a worker raises UserError there; Ray Train wraps it (WorkerGroupError, the worker's
    exception as it arrived: the error itself or a RayTaskError holding its traceback)."""
    from ray.train import WorkerGroupError

    from adhoc.distributed.train import _fit
    from adhoc.errors import UserError

    line = "training diverged at iteration 3: NaN or inf loss or gradient for member-01 (try a smaller train.lr)"

    class Failing:
        def __init__(self, failure):
            self.failure = failure

        def fit(self):
            raise WorkerGroupError("worker 0 failed", {0: self.failure})

    wrapped = RuntimeError(f"ray::RayTrainWorker.run_train_fn()\nTraceback ...\nadhoc.errors.UserError: {line}")
    for failure in (UserError(line), wrapped):
        with pytest.raises(UserError) as caught:
            _fit(Failing(failure))
        assert str(caught.value) == line
    with pytest.raises(WorkerGroupError):  # anything else is not the user's: it stays Ray's error
        _fit(Failing(RuntimeError("worker died")))


@pytest.mark.parametrize("argv, fragment", [
    (["backend=ray", "--resume"], "--resume is for in-process runs"),
    (["backend=ray", "train.rollout=per_episode"], "needs train.rollout=per_row"),
])
def test_what_data_parallel_training_refuses_is_one_line_and_exit_2(cluster, tmp_path, capsys, argv, fragment):
    from adhoc.cli import main

    code = main(["train-population", CONFIG, *TINY, *argv, "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and fragment in err, err
    assert list(tmp_path.iterdir()) == []
