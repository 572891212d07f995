"""Hanabi-small through OpenSpiel: where one training iteration's time goes, and what the prefix cache saves.

    .venv/bin/python benchmarks/bench_openspiel.py                 # 8 members, 32 episodes per pair, median of 3
    .venv/bin/python benchmarks/bench_openspiel.py --members 8 --episodes 64 --repeats 5

Actions are numbered (``game.actions: numbered``, as the shipped configs), so untrained members play long games.
One iteration = a self-play rollout of every member with itself (``members`` pairs x ``episodes``) and its
backward pass, as ``train-population`` runs it. Three variants, timed in turn in the same run:

- ``transcript``: append-only observations (``game.transcript: true``) with the prefix cache (the default);
- ``transcript, no reuse``: the same observations, every one encoded whole (``prefix_reuse=False``);
- ``view``: OpenSpiel's current card view only (``game.transcript: false``; nothing to reuse).

For the first, the time inside OpenSpiel stepping (``game.step``: moves, chance, clones), rendering
(``game.observe``/``legal_mask``) and LM scoring (``Policy.scores_reusing``/``scores``) is shown as shares of
the iteration. Needs the extra: pip install -e ".[openspiel]".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks import harness  # noqa: E402

GAME = "hanabi(players=2,colors=2,ranks=2,hand_size=2,max_information_tokens=3,max_life_tokens=1)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=32)
    harness.add_common_args(parser, repeats=3, warmup=1)
    args = parser.parse_args()
    record = harness.Record("bench_openspiel", args)
    from adhoc.games import make_game
    from adhoc.lm.policy import Policy
    from adhoc.rollout import rollout

    base, bank, pairs = harness.selfplay_bank(args.members)
    parts = harness.Parts()
    variants = {}
    for name, transcript, reuse in (("transcript", True, True), ("transcript, no reuse", True, False),
                                    ("view", False, False)):
        game = make_game("openspiel", game=GAME, transcript=transcript, actions="numbered")
        policy = Policy(base, bank)
        if name == "transcript":  # the parts of the default variant
            game.step = parts.wrap("openspiel step", game.step)
            game.observe = parts.wrap("render", game.observe)
            game.legal_mask = parts.wrap("render", game.legal_mask)
            policy.scores_reusing = parts.wrap("lm scoring", policy.scores_reusing)
            policy.scores = parts.wrap("lm scoring", policy.scores)
        seeds = iter(range(10**6))

        def iteration(game=game, policy=policy, reuse=reuse, name=name) -> None:
            traj = rollout(game, policy, pairs, args.episodes, np.random.default_rng(next(seeds)), prefix_reuse=reuse)
            (-(traj.returns.detach()[..., None, None] * traj.logp).sum()).backward()
            bank.zero_grad()

        variants[name] = iteration
    parts.reset()
    times = harness.interleaved(variants, args.repeats, args.warmup)
    base_s = times["transcript"].median
    print(f"Hanabi-small, {args.members} members x {args.episodes} episodes of self-play per iteration, "
          f"median of {args.repeats}")
    print(f"{'variant':<22} {'s/iteration':>11} {'vs transcript':>13}")
    for name, t in times.items():
        print(f"{name:<22} {t.median:11.2f} {harness.ratio(t.median, base_s):13.2f}")
        record[name] = {"timing": t, "ratio_to_transcript": harness.ratio(t.median, base_s)}
    total = sum(times["transcript"].times) + args.warmup * base_s
    print("where the transcript variant's time goes (share of its iterations, warm-up included):")
    for part in ("openspiel step", "render", "lm scoring"):
        share = parts[part] / total
        print(f"  {part:<16} {share:6.1%}")
        record[f"share_{part.replace(' ', '_')}"] = share
    print(f"  {'rest (backward, sampling)':<16} {1 - sum(parts[p] for p in ('openspiel step', 'render', 'lm scoring')) / total:6.1%}")
    record.finish(args.json)


if __name__ == "__main__":
    main()
