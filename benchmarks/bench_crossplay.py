"""Benchmark: a 64 x 64 cross-play of a lever population, 64 episodes per ordered pair.

Compared in the same run, on the same population:
- **adhoc**: ``adhoc.crossplay`` — every ordered pair batched through one AdapterBank (each member's
  policy scored once per seat, all episodes of all 4,096 pairs sampled and stepped as one batch);
- **peft, pair by pair**: what users do today — one PeftModel holding the 64 adapters; for each ordered pair
  (i, j): ``set_adapter(i)``, score seat 0's observation, ``set_adapter(j)``, score seat 1's, sample the 64
  episodes, step the game. Timed on a random sample of pairs and extrapolated to all 4,096 (printed as such).

The population is trained first with configs/lever-selfplay.yaml at 64 members (setup, not timed).
Target: adhoc ≤ 10 s on 2 CPU cores.

    .venv/bin/python benchmarks/bench_crossplay.py [--members 64] [--episodes 64] [--sample-pairs 256]

``--report-parts`` times instead what a cross-play adds to playing the episodes, at 256 members by default
(members trained for 2 iterations only: the cost of playing does not depend on what they learnt):
- the bootstrap CIs (500 resamples) as ``adhoc.crossplay.bootstrap_ci`` computes them now (vectorised) and
  as the loop it replaced (one resample at a time, every pair's means gathered; kept below as the reference),
  on the same returns, with the largest difference between the two intervals;
- the heatmap (``adhoc.report.heatmap_png``).

    .venv/bin/python benchmarks/bench_crossplay.py --report-parts [--members 256] [--episodes 64]

Run from the repository root; timing and ``--json PATH`` come from benchmarks/harness.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks import harness  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=64)
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--sample-pairs", type=int, default=256, help="pairs timed for the peft baseline")
    ap.add_argument("--report-parts", action="store_true",
                    help="time the bootstrap (vectorised vs the old loop) and the heatmap against playing the episodes")
    ap.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples (--report-parts)")
    harness.add_common_args(ap)
    args = ap.parse_args()
    record = harness.Record("bench_crossplay", args)
    if args.report_parts:
        report_parts(args.members if args.members != 64 else 256, args.episodes, args.n_boot, record)
    else:
        compare(args, record)
    record.finish(args.json)


def compare(args: argparse.Namespace, record: harness.Record) -> None:
    """adhoc's batched cross-play against peft pair by pair (extrapolated from a sample of pairs)."""
    from adhoc.config import load_config
    from adhoc.crossplay import crossplay
    from adhoc.games import build_game
    from adhoc.lm.base import load_base
    from adhoc.recipes.train_population import train_population

    tmp = Path(tempfile.mkdtemp())
    config = load_config(ROOT / "configs/lever-selfplay.yaml", [f"population.size={args.members}",
                                                                "train.eval_every=80"])
    t_setup, pop = harness.measure(lambda: train_population(config, out=tmp / "pop", progress=False))
    print(f"trained {args.members} members in {t_setup:.1f} s (setup, not timed)")

    # --- adhoc: all ordered pairs batched through one bank (model load + bank build included)
    t_adhoc, result = harness.measure(lambda: crossplay([pop.path], episodes=args.episodes, n_boot=200))
    n_pairs = args.members ** 2
    print(f"adhoc crossplay: {n_pairs} pairs x {args.episodes} episodes in {t_adhoc:.2f} s "
          f"(SP {result.metrics['sp_mean']:.3f}, XP {result.metrics['xp_mean']:.3f}, {len(result.conventions)} conventions)")

    # --- peft, pair by pair with adapters swapped
    from peft import PeftModel

    game = build_game(pop.game)
    base = load_base(pop.base_model["id"], device="cpu")
    names = pop.names
    model = PeftModel.from_pretrained(base.model, pop.member_dir(names[0]), adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(pop.member_dir(name), adapter_name=name)
    model.eval()
    tok = base.tokenizer
    prompts = [torch.tensor([[tok.bos_token_id] + tok(game.observe(game.reset(1, None), s)[0]).input_ids]) for s in (0, 1)]
    action_tokens = torch.tensor([tok(" " + a, add_special_tokens=False).input_ids[0] for a in game.action_names(0)])
    payoff = torch.tensor(game.payoff_matrix(), dtype=torch.float32)
    rng = np.random.default_rng(0)
    sample = rng.choice(n_pairs, size=min(args.sample_pairs, n_pairs), replace=False)
    gen = torch.Generator().manual_seed(0)
    peft_matrix = {}

    @torch.no_grad()
    def pair_by_pair() -> None:
        for k in sample:
            i, j = divmod(int(k), args.members)
            acts = []
            for seat, member in ((0, i), (1, j)):
                model.set_adapter(names[member])
                logits = model(input_ids=prompts[seat]).logits[0, -1, action_tokens]
                acts.append(torch.multinomial(torch.softmax(logits, -1), args.episodes, replacement=True, generator=gen))
            peft_matrix[(i, j)] = float(payoff[acts[0], acts[1]].mean())

    t_sample, _ = harness.measure(pair_by_pair)
    t_peft = t_sample * n_pairs / len(sample)
    err = max(abs(peft_matrix[(i, j)] - result.matrix[i, j]) for i, j in peft_matrix)
    print(f"peft pair by pair: {len(sample)} pairs in {t_sample:.2f} s -> {t_peft:.1f} s extrapolated to {n_pairs} pairs")
    print(f"max |difference| of sampled entries between the two (Monte-Carlo noise): {err:.3f}")
    print()
    print("| cross-play | time (s) | ratio |")
    print("|---|---:|---:|")
    print(f"| adhoc, batched ({args.members}x{args.members}, {args.episodes} episodes/pair) | {t_adhoc:.2f} | 1.0x |")
    print(f"| peft, pair by pair (extrapolated) | {t_peft:.1f} | {harness.ratio(t_peft, t_adhoc):.1f}x slower |")
    print(f"target adhoc <= 10 s: {'PASS' if t_adhoc <= 10 else 'FAIL'}")
    record.add(setup_s=t_setup, adhoc_s=t_adhoc, pairs=n_pairs, sp_mean=result.metrics["sp_mean"],
               xp_mean=result.metrics["xp_mean"], conventions=len(result.conventions), peft_sample_pairs=len(sample),
               peft_sample_s=t_sample, peft_extrapolated_s=t_peft, peft_over_adhoc=harness.ratio(t_peft, t_adhoc),
               max_sampled_difference=err, target_adhoc_s=10, target_pass=t_adhoc <= 10)


def loop_bootstrap_ci(returns: np.ndarray, n_boot: int = 500, seed: int = 0, level: float = 0.95) -> dict:
    """``bootstrap_ci`` as it was before it was vectorised: one resample at a time."""
    from adhoc.crossplay import sp_xp

    rng = np.random.default_rng(seed)
    E = returns.shape[-1]
    stats = []
    for _ in range(n_boot):
        sp, xp = sp_xp(returns[..., rng.integers(E, size=E)].mean(-1))
        stats.append((sp, xp, sp - xp))
    lo, hi = np.nanpercentile(np.asarray(stats), [50 * (1 - level), 50 * (1 + level)], axis=0)
    return {k: [float(lo[i]), float(hi[i])] for i, k in enumerate(("sp_mean", "xp_mean", "gap"))}


def report_parts(members: int, episodes: int, n_boot: int, record: harness.Record) -> None:
    import adhoc.crossplay as cp
    from adhoc.config import load_config
    from adhoc.recipes.train_population import train_population
    from adhoc.report import heatmap_png

    tmp = Path(tempfile.mkdtemp())
    config = load_config(ROOT / "configs/lever-selfplay.yaml", [f"population.size={members}", "train.iterations=2",
                                                                "train.eval_every=2", "train.episodes_per_pair=64",
                                                                "train.eval_episodes=64"])
    t_setup, pop = harness.measure(lambda: train_population(config, out=tmp / "pop", progress=False))
    print(f"trained {members} members for 2 iterations in {t_setup:.1f} s (setup, not timed)")

    seen = {}
    vectorised = cp.bootstrap_ci

    def timed_bootstrap_ci(returns, **kwargs):  # the returns crossplay computes, and the time the CIs take
        t, out = harness.measure(lambda: vectorised(returns, **kwargs))
        seen.update(returns=returns, t=t, ci=out)
        return out

    cp.bootstrap_ci = timed_bootstrap_ci
    t_total, result = harness.measure(lambda: cp.crossplay([pop.path], episodes=episodes, n_boot=n_boot))
    cp.bootstrap_ci = vectorised
    t_new, returns = seen["t"], seen["returns"]
    t_play = t_total - t_new
    t_old, old = harness.measure(lambda: loop_bootstrap_ci(returns, n_boot=n_boot))
    diff = max(abs(a - b) for k in old for a, b in zip(old[k], seen["ci"][k]))
    t_heat, png = harness.measure(lambda: heatmap_png(result))
    print(f"{members}x{members} cross-play, {episodes} episodes per ordered pair, {n_boot} bootstrap resamples")
    print(f"max |difference| between the old and the vectorised intervals: {diff:.2e}")
    print()
    print("| part | time (s) | share of cross-play + heatmap |")
    print("|---|---:|---:|")
    for label, t, total in (("crossplay without the CIs (load, play, metrics)", t_play, t_play + t_new + t_heat),
                            ("bootstrap CIs, old loop", t_old, t_play + t_old + t_heat),
                            ("bootstrap CIs, vectorised", t_new, t_play + t_new + t_heat),
                            (f"heatmap PNG ({len(png) // 1024} KiB)", t_heat, t_play + t_new + t_heat)):
        print(f"| {label} | {t:.3f} | {100 * t / total:.1f}% |")
    print(f"bootstrap: vectorised {harness.ratio(t_old, t_new):.0f}x faster than the loop")
    record.add(members=members, episodes=episodes, n_boot=n_boot, setup_s=t_setup, crossplay_without_cis_s=t_play,
               bootstrap_loop_s=t_old, bootstrap_vectorised_s=t_new, heatmap_s=t_heat, heatmap_bytes=len(png),
               max_interval_difference=diff, loop_over_vectorised=harness.ratio(t_old, t_new))


if __name__ == "__main__":
    main()
