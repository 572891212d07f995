"""Wall time of the Ray backend against the in-process one on this machine, overhead included (docs/ray.md).

(a) a sweep of 6 runs (lever self-play, 2 configs x 3 seeds, shrunk by --iterations/--size): sequential in this
    process (backend local) against Ray (backend ray, a local cluster started by the sweep, ray.workers trials at
    once, one CPU each): the Ray figure includes starting and stopping the cluster;
(b) one population (the sweep's lever self-play config, seed 0) trained in-process against data-parallel on
    ray.workers Ray Train workers (backend=ray, one CPU each): wall time with start-up, the training loop's time
    per iteration, whether the populations are identical, and the bytes of adapter gradients all-reduced per
    iteration (the scaling model's input in docs/ray.md);
(c) Ray start-up: ray.init of a local cluster, a first task's round trip, ray.shutdown;
(d) cross-play of one population in blocks in this process against the same blocks on Ray workers (identical
    returns), the Ray figure with its cluster start and each worker's model load.

    .venv/bin/python benchmarks/bench_ray.py                       # docs/ray.md: ~5 minutes on 2 cores
    .venv/bin/python benchmarks/bench_ray.py --iterations 30 --size 4   # short runs: start-up dominates
    .venv/bin/python benchmarks/bench_ray.py --skip-sweep --json runs/bench_ray.json

Run from the repository root; timing, flags and ``--json PATH`` come from benchmarks/harness.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    return harness.measure(lambda: fn(*args, **kwargs))


def bench_startup() -> dict:
    import ray

    laps = harness.Laps()
    ray.init(address="local", include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    t_init = laps.lap("init")
    ray.get(ray.remote(lambda: 1).remote())
    t_task = laps.lap("first task")
    t_shutdown, _ = harness.measure(ray.shutdown)
    return {"init_s": t_init, "first_task_s": t_task, "shutdown_s": t_shutdown}


def bench_sweep(tmp: Path, workers: int, overrides: list[str]) -> dict:
    from adhoc.recipes.sweep import run_sweep

    configs = [str(ROOT / "configs" / "lever-selfplay.yaml"), str(ROOT / "configs" / "lever-otherplay.yaml")]
    quiet = lambda line: None  # noqa: E731
    t_local, (rows_local, _, _) = timed(run_sweep, configs, [0, 1, 2], overrides, out=tmp / "local", episodes=16,
                                        echo=quiet)
    ray_overrides = [*overrides, "backend=ray", f"ray.workers={workers}", "ray.cpus_per_worker=1"]
    t_ray, (rows_ray, _, _) = timed(run_sweep, configs, [0, 1, 2], ray_overrides, out=tmp / "ray", episodes=16,
                                    echo=quiet)
    same = [{k: v for k, v in r.items() if k not in ("train_s", "population")} for r in rows_local] == \
        [{k: v for k, v in r.items() if k not in ("train_s", "population")} for r in rows_ray]
    return {"runs": len(rows_local), "sequential_s": t_local, "ray_s": t_ray, "workers": workers,
            "train_s_sum": sum(r["train_s"] for r in rows_local), "same_rows": same}


def bench_population(tmp: Path, workers: int, overrides: list[str]) -> dict:
    """One population in-process and on ``workers`` Ray Train workers, with the overrides' checkpoints and with
    none but the final one: wall and loop seconds, loop time per iteration (and the part spent in all-reduces),
    identical adapters, and the adapter gradient bytes all-reduced per iteration."""
    from adhoc.config import load_config
    from adhoc.lm.adapters import AdapterBank
    from adhoc.lm.base import load_base
    from adhoc.recipes.train_population import train_population

    config = ROOT / "configs" / "lever-selfplay.yaml"
    on_ray = ["backend=ray", f"ray.workers={workers}", "ray.cpus_per_worker=1"]
    t_local, here = timed(train_population, load_config(config, overrides), out=tmp / "one-local", progress=False)
    runs = {"local": (t_local, here)}
    runs["ray"] = timed(train_population, load_config(config, [*overrides, *on_ray]), out=tmp / "one-ray",
                        progress=False)
    runs["ray_no_checkpoints"] = timed(train_population, load_config(config, [*overrides, *on_ray,
                                                                              "train.checkpoint_every=0"]),
                                       out=tmp / "one-ray-0", progress=False)
    files = lambda pop: {p.parent.name: p.read_bytes() for p in Path(pop.path).glob("members/*/adapter_model.safetensors")}  # noqa: E731
    adapter = here.manifest["adapter"]
    bank = AdapterBank(load_base("builtin:tiny", device="cpu", dtype="float32").model, len(here.members),
                       adapter["rank"], adapter["alpha"], adapter["target_modules"])
    iterations = here.manifest["training"]["iterations"]
    out = {"iterations": iterations, "members": len(here.members), "workers": workers,
           "identical": all(files(here) == files(pop) for _, pop in runs.values()),
           "adapter_grad_bytes_per_iteration": sum(p.numel() * 4 for p in bank.member_parameters())}
    for name, (wall, pop) in runs.items():
        out[name] = {"wall_s": wall, "loop_s": pop.manifest["train_s"],
                     "ms_per_iteration": 1000 * pop.manifest["train_s"] / iterations}
        if "data_parallel" in pop.manifest:
            dp = pop.manifest["data_parallel"]
            out[name] |= {"exchange_ms_per_iteration": 1000 * dp["exchange_s"] / iterations,
                          "ray_train_start_s": dp["ray_train_start_s"], "worker_build_s": dp["worker_build_s"]}
    return out


def bench_crossplay(population: Path, workers: int, block: int, episodes: int) -> dict:
    import numpy as np

    from adhoc.config import RayConfig
    from adhoc.crossplay import crossplay
    from adhoc.distributed.blocks import LocalBlocks, RayBlocks

    t_one, one = timed(crossplay, [population], episodes=episodes, seed=0)
    t_local, local = timed(crossplay, [population], episodes=episodes, seed=0, play=LocalBlocks(block))
    t_ray, there = timed(crossplay, [population], episodes=episodes, seed=0,
                         play=RayBlocks(RayConfig(workers=workers, cpus_per_worker=1), block))
    return {"members": len(one.members), "episodes": episodes, "block": block, "one_stream_s": t_one,
            "blocks_local_s": t_local, "blocks_ray_s": t_ray, "identical": bool(np.array_equal(local.matrix, there.matrix))}


def crossplay_population(tmp: Path, members: int) -> Path:
    """A lever population of ``members`` trained for one iteration (setup, not timed: playing costs the same
    whatever the members learnt, and barely trained members make every pair's returns random)."""
    from adhoc.config import load_config
    from adhoc.recipes.train_population import train_population

    config = load_config(ROOT / "configs" / "lever-selfplay.yaml",
                         [f"population.size={members}", "train.iterations=1", "train.episodes_per_pair=4",
                          "train.eval_episodes=4"])
    return train_population(config, out=tmp / "xp-population", progress=False).path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=300, help="training iterations of each sweep run")
    ap.add_argument("--size", type=int, default=8, help="members of each sweep run")
    ap.add_argument("--members", type=int, default=128, help="members of the cross-played population (d)")
    ap.add_argument("--episodes", type=int, default=64, help="cross-play episodes per ordered pair (d)")
    ap.add_argument("--block", type=int, default=32, help="cross-play block side T (d)")
    ap.add_argument("--checkpoint-every", type=int, default=10, help="iterations between checkpoints (a, b)")
    ap.add_argument("--skip-sweep", action="store_true", help="only (b), (c) and (d)")
    harness.add_common_args(ap, json_help="also write the numbers here")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    overrides = [f"population.size={args.size}", f"train.iterations={args.iterations}", "train.episodes_per_pair=256",
                 f"train.eval_every={args.iterations}", "train.eval_episodes=64",
                 f"train.checkpoint_every={args.checkpoint_every}"]
    results = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results["startup"] = bench_startup()
        s = results["startup"]
        print(f"(c) Ray start-up: init {s['init_s']:.1f} s, first task {s['first_task_s']:.2f} s, "
              f"shutdown {s['shutdown_s']:.1f} s", flush=True)
        results["sweep"] = r = None if args.skip_sweep else bench_sweep(tmp, args.workers, overrides)
        if r:
            print(f"(a) sweep of {r['runs']} runs: sequential {r['sequential_s']:.1f} s, Ray ({r['workers']} workers, "
                  f"start-up included) {r['ray_s']:.1f} s, speed-up {r['sequential_s'] / r['ray_s']:.2f}x; "
                  f"same table rows: {r['same_rows']}", flush=True)
        results["population"] = b = bench_population(tmp, args.workers, overrides)
        local, dp, dp0 = b["local"], b["ray"], b["ray_no_checkpoints"]
        print(f"(b) one population, {b['members']} members x {b['iterations']} iterations: in-process "
              f"{local['wall_s']:.1f} s ({local['ms_per_iteration']:.0f} ms per iteration); {b['workers']} Ray Train "
              f"workers {dp['wall_s']:.1f} s with start-up ({dp['ms_per_iteration']:.0f} ms per iteration with a "
              f"checkpoint every {args.checkpoint_every}; {dp0['ms_per_iteration']:.0f} ms without, "
              f"{dp0['exchange_ms_per_iteration']:.1f} ms of it in all-reduces; start: Ray Train "
              f"{dp0['ray_train_start_s']:.1f} s, then a worker's imports and model {dp0['worker_build_s']:.1f} s); "
              f"identical adapters: {b['identical']}; "
              f"adapter gradients all-reduced per iteration {b['adapter_grad_bytes_per_iteration']:,} bytes", flush=True)
        results["crossplay"] = x = bench_crossplay(crossplay_population(tmp, args.members), args.workers, args.block,
                                                   args.episodes)
        print(f"(d) cross-play of {x['members']} members x {x['episodes']} episodes: one stream {x['one_stream_s']:.1f} s, "
              f"{x['block']}x{x['block']} blocks here {x['blocks_local_s']:.1f} s, on Ray ({args.workers} workers, "
              f"start-up included) {x['blocks_ray_s']:.1f} s; identical: {x['identical']}", flush=True)
    record = harness.Record("bench_ray", args)
    record.add(**results)
    record.finish(args.json)


if __name__ == "__main__":
    main()
