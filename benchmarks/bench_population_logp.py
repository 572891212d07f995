"""Benchmark: one TrajeDi training iteration on the repeated lever game with the per-step re-scoring
(``population_logp_reference``: every member re-encodes every step's whole observation texts) against
``population_logp`` (prefix reuse across steps, all members in one pass, legal masks read off the rows).

An iteration is what ``adhoc train-population configs/repeated-lever-trajedi.yaml`` runs: the method's pairs →
``rollout`` → the method's loss (TrajeDi's self-play REINFORCE and its trajectory-divergence term, which calls
the re-scoring) → one backward over the summed losses → one ``MemberAdam`` step. Both implementations run in
the same process, one iteration of each in turn on the same members and the same rollout seed (so both score
the same trajectories, and load from other processes hits both alike; the order alternates between repeats,
after one untimed warm-up iteration of each); the members are the config's fresh ones
(random policies, the costly case: every episode's transcript is its own text from round 2 on). Prints the
median seconds per iteration, its CPU time, its parts (rollout, re-scoring, the rest of the loss, backward),
and the ratio.

    .venv/bin/python benchmarks/bench_population_logp.py                         # the shipped config, 2 repeats
    .venv/bin/python benchmarks/bench_population_logp.py --episodes 32 --repeats 3
    .venv/bin/python benchmarks/bench_population_logp.py --size 4 game.rounds=8  # any config override

Torch threads follow adhoc's policy (``model.cpu_threads=0``: one thread for builtin:tiny on a CPU). Run from the
repository root; timing, flags and ``--json PATH`` come from benchmarks/harness.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import adhoc.methods.trajedi as trajedi_module  # noqa: E402
from adhoc.config import entropy_coef_at, load_config  # noqa: E402
from adhoc.games import build_game  # noqa: E402
from adhoc.lm.adapters import AdapterBank, MemberAdam  # noqa: E402
from adhoc.lm.base import load_base  # noqa: E402
from adhoc.lm.policy import Policy  # noqa: E402
from adhoc.methods import METHODS  # noqa: E402
from adhoc.methods.common import population_logp, population_logp_reference  # noqa: E402
from adhoc.reductions import members_with_data  # noqa: E402
from adhoc.engine import member_seeds  # noqa: E402
from adhoc.rollout import rollout  # noqa: E402
from benchmarks import harness  # noqa: E402

IMPLEMENTATIONS = {"old": population_logp_reference, "new": population_logp}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs/repeated-lever-trajedi.yaml"))
    ap.add_argument("--size", type=int, default=8, help="population.size")
    ap.add_argument("--episodes", type=int, default=None, help="train.episodes_per_pair (default: the config's)")
    ap.add_argument("--only", choices=list(IMPLEMENTATIONS), help="time one implementation only")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    harness.add_common_args(ap, repeats=2)
    args = ap.parse_args()
    overrides = [f"population.size={args.size}", *args.overrides]
    if args.episodes is not None:
        overrides.append(f"train.episodes_per_pair={args.episodes}")
    config = load_config(args.config, overrides)
    game = build_game(config.game)
    method = METHODS[config.method.name].build(config.method, game, config.population.size)
    m = config.model
    base = load_base(m.base, m.device, m.dtype, m.cpu_threads)
    bank = AdapterBank(base.model, method.n_members, m.lora_rank, m.lora_alpha, m.target_modules)
    bank.init_members(member_seeds(config.population.seed, method.n_members), b_std=m.lora_init_std)
    policy = Policy(base, bank)
    method.policy = policy
    # lr 0: the members stay as initialised, so every iteration (old or new) costs the same
    optimizer = MemberAdam(bank.member_parameters(), lr=0.0, max_grad_norm=config.train.max_grad_norm)
    episodes = config.train.episodes_per_pair
    print(f"{config.method.name} on {config.game.name} ({game.horizon} steps), N = {config.population.size}, "
          f"{episodes} episodes per pair, torch threads {torch.get_num_threads()}")

    def iteration(name: str, seed: int) -> dict[str, float]:
        spent = harness.Parts()
        trajedi_module.population_logp = spent.wrap("rescore", IMPLEMENTATIONS[name])
        rng = np.random.default_rng(seed)
        cpu0 = time.process_time()
        laps = harness.Laps()
        pairs = method.pairs(1, rng)
        traj = rollout(game, policy, pairs, episodes, rng, mode=config.train.rollout,
                       **method.rollout_options(pairs, episodes, rng))
        laps.lap("rollout")
        losses, metrics = method.loss(traj, entropy_coef_at(config.train, 1))
        laps.lap("loss")
        optimizer.zero_grad()
        losses.sum().backward()
        laps.lap("backward")
        optimizer.step(members_with_data(pairs, method.n_members))
        total = laps.total()
        return {"total": total, "cpu": time.process_time() - cpu0, "rollout": laps.laps["rollout"],
                "rescore": spent["rescore"], "loss rest": laps.laps["loss"] - spent["rescore"],
                "backward": laps.laps["backward"], "jsd": metrics["train/trajedi_jsd"],
                "loss": float(losses.detach().sum())}

    names = [args.only] if args.only else list(IMPLEMENTATIONS)
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for name in names:  # warm-up (first allocations), untimed
        iteration(name, 10_000)
    for r in range(args.repeats):
        # the first of a repeat tokenizes the rollout's new texts for both (``Policy.tokens`` caches them): alternate
        for name in (names if r % 2 == 0 else names[::-1]):
            runs[name].append(iteration(name, r))
            last = runs[name][-1]
            print(f"  repeat {r} {name}: {last['total']:.2f} s, CPU {last['cpu']:.2f} s (loss {last['loss']:.6f}, JSD {last['jsd']:.6f})",
                  flush=True)
    parts = ("total", "cpu", "rollout", "rescore", "loss rest", "backward")
    print(f"\nmedian seconds per iteration over {args.repeats} repeats (cpu: the process's CPU time, less sensitive "
          "to other processes' load than the wall-clock parts)")
    print(f"{'':>4}  " + "  ".join(f"{p:>9}" for p in parts))
    median = {n: {p: harness.median(x[p] for x in runs[n]) for p in parts} for n in names}
    for name in names:
        print(f"{name:>4}  " + "  ".join(f"{median[name][p]:9.3f}" for p in parts))
    record = harness.Record("bench_population_logp", args)
    record.add(method=config.method.name, game=config.game.name, members=config.population.size,
               episodes_per_pair=episodes, torch_threads=torch.get_num_threads(), runs=runs, median=median)
    if len(names) == 2:
        total, rescore = (harness.ratio(median["old"][p], median["new"][p]) for p in ("total", "rescore"))
        record.add(old_over_new=total, old_over_new_rescore=rescore)
        print(f"\nold / new per iteration: {total:.1f}x (re-scoring alone {rescore:.1f}x)")
    record.finish(args.json)


if __name__ == "__main__":
    main()
