"""Training iterations on repeated CMG-H (528 three-token actions, K rounds): peak memory and seconds per iteration
with the action prefix tree (``Policy.action_scoring="tree"``, the default) and the earlier path that repeats the
prompt's cache once per action (``"repeat"``), in the same run.

    .venv/bin/python benchmarks/bench_repeated_cmgh.py                          # self-play, 2 and 8 members
    .venv/bin/python benchmarks/bench_repeated_cmgh.py --members 8 --episodes 32 --paths tree
    .venv/bin/python benchmarks/bench_repeated_cmgh.py --config configs/repeated-cmg-h-lipo.yaml --paths tree

Each (members, path) runs in its own process (so its peak resident memory is its own): it builds the run of
``--config`` (default configs/repeated-cmg-h-selfplay.yaml) with ``population.size=members`` and
``train.episodes_per_pair=episodes``, then times ``--iterations`` training iterations as ``train_loop`` runs them
(pairs, rollout, the method's loss, backward, optimizer step; no evaluation). Prints the median seconds per
iteration, the process's peak RSS (ru_maxrss: it includes the interpreter and the model, ~0.4 GB) and, per
(members, episodes), the ratios repeat / tree. ``--limit-gb`` caps each child's address space, so a path that
would need more fails with "out of memory" instead of taking the machine's memory. Run from the repository root;
timing, the ratios and ``--json PATH`` come from benchmarks/harness.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402


def child(args: argparse.Namespace) -> None:
    import torch

    from adhoc.config import entropy_coef_at, load_config
    from adhoc.reductions import members_with_data
    from adhoc.engine import build_run

    torch.set_num_threads(args.threads)
    overrides = [f"population.size={args.members[0]}", f"train.episodes_per_pair={args.episodes}",
                 f"game.rounds={args.rounds}", *args.override]
    config = load_config(args.config, overrides)
    run = build_run(config)
    run.policy.action_scoring = args.path
    run.policy.score_budget = None if args.budget == 0 else args.budget
    counter = iter(range(1, args.iterations + 1))

    def step() -> tuple[int, torch.Tensor]:
        iteration = next(counter)
        pairs = run.method.pairs(iteration, run.rng)
        traj = _rollout(run, config, pairs)
        losses, _ = run.method.loss(traj, entropy_coef_at(config.train, iteration))
        run.optimizer.zero_grad()
        losses.sum().backward()
        run.optimizer.step(members_with_data(pairs, run.method.n_members))
        return int(pairs.shape[0]), traj.returns.detach()  # the mean is taken outside the timed iteration

    timing = harness.timeit(step, args.iterations)
    n_pairs, ret = timing.result[0], float(timing.result[1].mean())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(json.dumps({"s_per_it": timing.median, "spread_s": timing.spread, "peak_gb": peak, "pairs": n_pairs,
                      "return": ret}))


def _rollout(run, config, pairs):
    from adhoc.rollout import rollout

    E = config.train.episodes_per_pair
    return rollout(run.game, run.policy, pairs, E, run.rng, mode=config.train.rollout,
                   **run.method.rollout_options(pairs, E, run.rng))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/repeated-cmg-h-selfplay.yaml")
    parser.add_argument("--members", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--episodes", type=int, default=8, help="episodes per pair")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--paths", nargs="+", default=["repeat", "tree"], choices=["repeat", "tree"])
    parser.add_argument("--budget", type=int, default=-1,
                        help="tree path: elements per chunk (Policy.score_budget); 0: one chunk; -1: the default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit-gb", type=float, default=6.0, help="address-space cap of each child (0: none)")
    parser.add_argument("override", nargs="*", help="further config overrides (key=value)")
    harness.add_common_args(parser)
    parser.add_argument("--child", choices=["repeat", "tree"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.path = args.child
        if args.budget == -1:
            from adhoc.lm.policy import DEFAULT_SCORE_BUDGET

            args.budget = DEFAULT_SCORE_BUDGET
        child(args)
        return
    print(f"{args.config}, rounds={args.rounds}, {args.episodes} episodes per pair, median of {args.iterations} "
          f"iterations, {args.threads} thread(s)")
    print(f"{'members':>7}  {'pairs':>5}  {'path':>6}  {'s/it':>8}  {'peak GB':>8}  {'return':>7}")
    record = harness.Record("bench_repeated_cmgh", args)
    for members in args.members:
        results = record[f"members_{members}"] = {}
        for path in args.paths:
            cmd = [sys.executable, __file__, "--child", path, "--config", args.config, "--members", str(members),
                   "--episodes", str(args.episodes), "--rounds", str(args.rounds), "--iterations",
                   str(args.iterations), "--budget", str(args.budget), "--threads", str(args.threads), *args.override]

            def cap() -> None:
                if args.limit_gb > 0:
                    limit = int(args.limit_gb * 2**30)
                    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

            proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=cap)
            line = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else ""
            if not line:
                memory = "can't allocate memory" in proc.stderr or "MemoryError" in proc.stderr
                reason = f"out of memory (over {args.limit_gb:g} GB)" if memory else proc.stderr.strip()[-400:]
                print(f"{members:>7}  {'':>5}  {path:>6}  failed: {reason}")
                results[f"{path}_failed"] = reason
                continue
            r = results[path] = json.loads(line)
            print(f"{members:>7}  {r['pairs']:>5}  {path:>6}  {r['s_per_it']:8.3f}  {r['peak_gb']:8.2f}  "
                  f"{r['return']:7.3f}", flush=True)
        if "repeat" in results and "tree" in results:
            old, new = results["repeat"], results["tree"]
            results["ratio_repeat_over_tree"] = ratios = {
                "time": harness.ratio(old["s_per_it"], new["s_per_it"]),
                "peak_memory": harness.ratio(old["peak_gb"], new["peak_gb"])}
            print(f"{members:>7}  ratio repeat/tree: time {ratios['time']:.1f}x, "
                  f"peak memory {ratios['peak_memory']:.1f}x")
    record.finish(args.json)


if __name__ == "__main__":
    main()
