"""Benchmark: one population-training iteration, per distinct row vs per episode, split into its parts.

For each game (lever, CMG-H: their shipped self-play configs, ``configs/<game>-selfplay.yaml``) and population
size N (8, 64, 256), one training iteration is exactly what ``adhoc train-population`` runs: the method's pairs
→ ``rollout`` (E = the config's ``train.episodes_per_pair`` episodes per pair) → the method's loss → one
backward → one ``MemberAdam`` step. Both rollout modes (``train.rollout=per_row``, the default, and
``per_episode``, the earlier path) run in the same process on the same members, one iteration of each in turn
(so load from other processes hits both alike); the median of ``--repeats`` iterations after one warm-up.

Parts of an iteration (wall clock, measured by wrapping the functions that do them):

- **LM forward**: inside ``Policy.scores`` / ``Policy.scores_reusing`` (the batched AdapterBank pass and the
  action scores read off it);
- **sampling**: ``adhoc.rollout.sample_rows`` (per row) or ``torch.multinomial`` (per episode);
- **loss**: the method's ``loss`` (per-row sums, or per-episode tensors);
- **backward**: ``loss.sum().backward()``;
- **overhead**: the rest: grouping episodes into rows, stepping the game, bookkeeping, the optimizer step.

**Model cost**: the LM forward + backward over the iteration's distinct rows alone (each member's row in each
seat: 2N rows in a one-shot self-play game), timed in the same run: the least any rollout of this iteration
has to compute. The issue's target: at N = 64 on lever, the per-row iteration costs at most 2x the model cost,
and is at least 5x faster than the per-episode one.

**GFLOP/s**: the matrix-multiply FLOPs of one iteration (``torch.utils.flop_counter.FlopCounterMode``: the
model's forward and backward, the same for both modes) divided by the iteration's time, against the machine's
matmul peak measured in the same run (best of 5 square fp32 ``torch.mm`` of size ``--peak-size``, at the same
thread count).

**Cross-play** (``--crossplay N``): an N-member lever population (trained for 2 iterations: playing costs the
same whatever the members learnt) is cross-played as ``adhoc.crossplay`` does it (N² ordered pairs, 64
episodes each, 500 bootstrap resamples) plus its heatmap, once with each rollout mode, each in a fresh process:
wall time, the part spent playing the episodes (``episode_returns``) and the process's peak RSS.

Torch threads follow adhoc's policy (``model.cpu_threads=0``: one thread for a model under 50M parameters on a
CPU) unless ``--threads`` sets them. Run from the repository root; timing, flags and ``--json PATH`` (every
measurement) come from benchmarks/harness.py.

Run (about 2-4 minutes on 2 CPU cores)::

    .venv/bin/python benchmarks/bench_train.py
    .venv/bin/python benchmarks/bench_train.py --games lever --sizes 64 --threads 2
    .venv/bin/python benchmarks/bench_train.py --crossplay 256 --sizes    # cross-play only (an empty --sizes: no iterations)
    .venv/bin/python benchmarks/bench_train.py --games lever --sizes 64 --repeats 9 --json bench_train.json
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

import adhoc.rollout as rollout_module  # noqa: E402
from adhoc.config import entropy_coef_at, load_config  # noqa: E402
from adhoc.games import build_game  # noqa: E402
from adhoc.lm.adapters import AdapterBank, MemberAdam  # noqa: E402
from adhoc.lm.base import load_base  # noqa: E402
from adhoc.lm.policy import Policy  # noqa: E402
from adhoc.methods import METHODS  # noqa: E402
from adhoc.reductions import members_with_data  # noqa: E402
from adhoc.engine import member_seeds  # noqa: E402
from benchmarks import harness  # noqa: E402

PARTS = ("forward", "sampling", "loss", "backward", "overhead")
# CMG-H's 528 actions are several tokens each: scoring one row runs every action's tokens, so at N = 256 the model
# alone scores 512 rows x 528 actions at once (over 10 GB of activations in fp32): ask for it with --sizes 256
DEFAULT_SIZES = {"lever": [8, 64, 256], "cmg-h": [8, 64]}
MODES = ("per_row", "per_episode")


TIMERS = harness.Parts()  # wall time spent inside the wrapped functions, per part


def instrument() -> None:
    Policy.scores = TIMERS.wrap("forward", Policy.scores)
    Policy.scores_reusing = TIMERS.wrap("forward", Policy.scores_reusing)
    rollout_module.sample_rows = TIMERS.wrap("sampling", rollout_module.sample_rows)
    torch.multinomial = TIMERS.wrap("sampling", torch.multinomial)  # the per-episode path's sampler


class Setup:
    """Game, members, policy, method and optimizer of one (game, N), as ``train_population`` builds them."""

    def __init__(self, game_name: str, n: int, threads: int = 0) -> None:
        config = load_config(ROOT / f"configs/{game_name}-selfplay.yaml",
                             [f"population.size={n}", f"model.cpu_threads={threads}"])
        self.config = config
        self.game = build_game(config.game)
        self.method = METHODS[config.method.name].build(config.method, self.game, n)
        m = config.model
        self.base = load_base(m.base, m.device, m.dtype, m.cpu_threads)
        self.bank = AdapterBank(self.base.model, self.method.n_members, m.lora_rank, m.lora_alpha, m.target_modules)
        self.bank.init_members(member_seeds(config.population.seed, self.method.n_members), b_std=m.lora_init_std)
        self.policy = Policy(self.base, self.bank)
        self.method.policy = self.policy
        self.optimizer = MemberAdam(self.bank.member_parameters(), lr=config.train.lr,
                                    max_grad_norm=config.train.max_grad_norm)
        self.rng = np.random.default_rng(0)
        self.episodes = config.train.episodes_per_pair

    def iteration(self, mode: str) -> dict[str, float]:
        """One training iteration; wall time per part (seconds) and its total."""
        TIMERS.reset()
        laps = harness.Laps()
        pairs = self.method.pairs(1, self.rng)
        traj = rollout_module.rollout(self.game, self.policy, pairs, self.episodes, self.rng, mode=mode,
                                      **self.method.rollout_options(pairs, self.episodes, self.rng))
        laps.lap("rollout")
        losses, _ = self.method.loss(traj, entropy_coef_at(self.config.train, 1))
        laps.lap("loss")
        self.optimizer.zero_grad()
        losses.sum().backward()
        laps.lap("backward")
        self.optimizer.step(members_with_data(pairs, self.method.n_members))
        total = laps.total()
        parts = {"forward": TIMERS["forward"], "sampling": TIMERS["sampling"], "loss": laps.laps["loss"],
                 "backward": laps.laps["backward"]}
        parts["overhead"] = total - sum(parts.values())
        parts["total"] = total
        return parts

    def model_cost(self) -> float:
        """LM forward + backward over the iteration's distinct rows only (one-shot games: a member's seat row)."""
        pairs = self.method.pairs(1, self.rng)
        state = self.game.reset(1, self.rng)
        self.optimizer.zero_grad()

        def forward_backward() -> None:
            total = 0.0
            for s in (0, 1):
                members = pairs[:, s].unique()
                observation = self.game.observe(state, s)[0]
                table = self.policy.actions(self.game.action_names(s))
                scores = self.policy.scores(members, [observation] * len(members), table)
                total = total + scores.sum()
            total.backward()

        return harness.measure(forward_backward)[0]

    def flops(self) -> int:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            self.iteration("per_row")
        return counter.get_total_flops()


def matmul_peak(size: int) -> float:
    """Best of 5 fp32 square matmuls at the current thread count: GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = harness.timeit(lambda: torch.mm(a, b), repeats=5, warmup=1).min
    return 2 * size**3 / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--games", nargs="+", default=["lever", "cmg-h"])
    ap.add_argument("--sizes", nargs="*", type=int, default=None,
                    help="population sizes (default: 8 64 256 on lever, 8 64 on CMG-H, see DEFAULT_SIZES)")
    ap.add_argument("--peak-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (model.cpu_threads; default 0: adhoc's policy, one thread for small models)")
    ap.add_argument("--crossplay", type=int, default=0, metavar="N", help="also time an N-member cross-play per mode")
    harness.add_common_args(ap, repeats=5, json_help="write every measurement here")
    ap.add_argument("--crossplay-run", nargs=2, metavar=("MODE", "POPULATION"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.crossplay_run:
        print(json.dumps(crossplay_run(*args.crossplay_run)))
        return
    instrument()
    results = []
    peak = None
    for game_name in args.games:
        for n in DEFAULT_SIZES.get(game_name, [8, 64]) if args.sizes is None else args.sizes:
            setup = Setup(game_name, n, args.threads)
            if peak is None:  # after load_base: the thread count training uses
                peak = matmul_peak(args.peak_size)
                print(f"torch threads: {torch.get_num_threads()}; matmul peak ({args.peak_size}^3 fp32): {peak:.1f} GFLOP/s")
            for mode in MODES:  # warm-up
                setup.iteration(mode)
            runs = {mode: [] for mode in MODES}
            model = []
            for _ in range(args.repeats):
                for mode in MODES:
                    runs[mode].append(setup.iteration(mode))
                model.append(setup.model_cost())
            flops = setup.flops()
            row = {"game": game_name, "members": n, "episodes_per_pair": setup.episodes,
                   "episodes": n * setup.episodes, "model_s": harness.median(model), "flops": flops,
                   "peak_gflops": peak, "threads": torch.get_num_threads()}
            for mode in MODES:
                row[mode] = {k: harness.median(r[k] for r in runs[mode]) for k in (*PARTS, "total")}
                row[mode]["spread_total"] = harness.spread(r["total"] for r in runs[mode])
            results.append(row)
            _print(row)
            del setup
    if results:
        print_table(results, peak)
    if args.crossplay:
        results.append(crossplay_bench(args.crossplay, args.threads))
    record = harness.Record("bench_train", args)
    record["rows"] = results
    record.finish(args.json)


def print_table(results: list[dict], peak: float) -> None:
    """The iteration table and the target check at N = 64 on lever."""
    print()
    print("| game | N | episodes | mode | iteration (ms) | LM forward | sampling | loss | backward | overhead "
          "| model fwd+bwd (ms) | iteration / model | per_episode / per_row | GFLOP/s (% of peak) |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in results:
        for mode in MODES:
            r = row[mode]
            speedup = harness.ratio(row["per_episode"]["total"], row["per_row"]["total"])
            gflops = row["flops"] / r["total"] / 1e9
            print(f"| {row['game']} | {row['members']} | {row['episodes']:,} | {mode} | {1e3 * r['total']:.1f} | "
                  + " | ".join(f"{1e3 * r[k]:.1f}" for k in PARTS)
                  + f" | {1e3 * row['model_s']:.1f} | {r['total'] / row['model_s']:.1f}x | "
                  + (f"{speedup:.1f}x" if mode == "per_row" else "") + f" | {gflops:.2f} ({100 * gflops / peak:.1f}%) |")
    for row in results:
        if row["game"] == "lever" and row["members"] == 64:
            over = harness.ratio(row["per_row"]["total"], row["model_s"])
            speedup = harness.ratio(row["per_episode"]["total"], row["per_row"]["total"])
            print(f"\ntarget at N = 64 on lever: iteration <= 2x model fwd+bwd: {over:.2f}x "
                  f"({'PASS' if over <= 2 else 'FAIL'}); per_row >= 5x faster than per_episode: {speedup:.1f}x "
                  f"({'PASS' if speedup >= 5 else 'FAIL'})")


def crossplay_run(mode: str, population: str) -> dict:
    """In a fresh process: ``adhoc.crossplay`` of the population with rollouts in ``mode``, then its heatmap."""
    from adhoc.crossplay import crossplay
    from adhoc.report import heatmap_png

    played = {}

    def play(game, policy, pairs, episodes, seed):
        played["s"], out = harness.measure(lambda: rollout_module.episode_returns(
            game, policy, pairs, episodes, np.random.default_rng(seed), mode=mode))
        return out

    def crossplay_and_heatmap():
        result = crossplay([population], episodes=64, play=play)
        heatmap_png(result)
        return result

    total, result = harness.measure(crossplay_and_heatmap)
    return {"mode": mode, "total_s": total, "episodes_s": played["s"], "sp_mean": result.metrics["sp_mean"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def crossplay_bench(members: int, threads: int) -> dict:
    import tempfile

    from adhoc.recipes.train_population import train_population

    folder = Path(tempfile.mkdtemp()) / "population"
    config = load_config(ROOT / "configs/lever-selfplay.yaml", [
        f"population.size={members}", "train.iterations=2", "train.eval_every=2", "train.episodes_per_pair=64",
        "train.eval_episodes=64", f"model.cpu_threads={threads}"])
    train_population(config, out=folder, progress=False)
    rows = {}
    for mode in MODES:  # a launcher in between: a child of this process would inherit its peak RSS
        cmd = [sys.executable, __file__, "--crossplay-run", mode, str(folder)]
        launcher = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
        out = subprocess.run([sys.executable, "-c", launcher, *cmd], capture_output=True, text=True, check=True)
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n{members}-member cross-play ({members * members:,} ordered pairs x 64 episodes, 500 bootstrap "
          "resamples, heatmap), each mode in a fresh process")
    print("| rollout | cross-play + heatmap (s) | playing the episodes (s) | share | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|")
    for mode, r in rows.items():
        print(f"| {mode} | {r['total_s']:.2f} | {r['episodes_s']:.2f} | {100 * r['episodes_s'] / r['total_s']:.0f}% "
              f"| {r['peak_rss_mb']:.0f} |")
    return {"crossplay_members": members, **rows}


def _print(row: dict) -> None:
    parts = lambda r: ", ".join(f"{k} {1e3 * r[k]:.1f}" for k in PARTS)  # noqa: E731
    print(f"{row['game']} N={row['members']} ({row['episodes']:,} episodes): model fwd+bwd {1e3 * row['model_s']:.1f} ms; "
          + "; ".join(f"{mode} {1e3 * row[mode]['total']:.1f} ms ({parts(row[mode])})" for mode in MODES), flush=True)


if __name__ == "__main__":
    main()
