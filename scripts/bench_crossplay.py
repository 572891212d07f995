"""Benchmark: a 64 x 64 cross-play of a lever population, 64 episodes per ordered pair.

Compared in the same run, on the same population:
- **adhoc**: ``adhoc.crossplay`` — every ordered pair batched through one AdapterBank (each member's
  policy scored once per seat, all episodes of all 4,096 pairs sampled and stepped as one batch);
- **peft, pair by pair**: what users do today — one PeftModel holding the 64 adapters; for each ordered pair
  (i, j): ``set_adapter(i)``, score seat 0's observation, ``set_adapter(j)``, score seat 1's, sample the 64
  episodes, step the game. Timed on a random sample of pairs and extrapolated to all 4,096 (printed as such).

The population is trained first with configs/lever-selfplay.yaml at 64 members (setup, not timed).
Target: adhoc ≤ 10 s on 2 CPU cores.

    .venv/bin/python scripts/bench_crossplay.py [--members 64] [--episodes 64] [--sample-pairs 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=64)
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--sample-pairs", type=int, default=256, help="pairs timed for the peft baseline")
    args = ap.parse_args()

    from adhoc.config import load_config
    from adhoc.crossplay import crossplay
    from adhoc.games import build_game
    from adhoc.lm.base import load_base
    from adhoc.recipes.train_population import train_population

    tmp = Path(tempfile.mkdtemp())
    config = load_config(ROOT / "configs/lever-selfplay.yaml", [f"population.size={args.members}",
                                                                "train.eval_every=80"])
    t0 = time.perf_counter()
    pop = train_population(config, out=tmp / "pop", progress=False)
    print(f"trained {args.members} members in {time.perf_counter() - t0:.1f} s (setup, not timed)")

    # --- adhoc: all ordered pairs batched through one bank (model load + bank build included)
    t0 = time.perf_counter()
    result = crossplay([pop.path], episodes=args.episodes, n_boot=200)
    t_adhoc = time.perf_counter() - t0
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
    t0 = time.perf_counter()
    with torch.no_grad():
        for k in sample:
            i, j = divmod(int(k), args.members)
            acts = []
            for seat, member in ((0, i), (1, j)):
                model.set_adapter(names[member])
                logits = model(input_ids=prompts[seat]).logits[0, -1, action_tokens]
                acts.append(torch.multinomial(torch.softmax(logits, -1), args.episodes, replacement=True, generator=gen))
            peft_matrix[(i, j)] = float(payoff[acts[0], acts[1]].mean())
    t_sample = time.perf_counter() - t0
    t_peft = t_sample * n_pairs / len(sample)
    err = max(abs(peft_matrix[(i, j)] - result.matrix[i, j]) for i, j in peft_matrix)
    print(f"peft pair by pair: {len(sample)} pairs in {t_sample:.2f} s -> {t_peft:.1f} s extrapolated to {n_pairs} pairs")
    print(f"max |difference| of sampled entries between the two (Monte-Carlo noise): {err:.3f}")
    print()
    print("| cross-play | time (s) | ratio |")
    print("|---|---:|---:|")
    print(f"| adhoc, batched ({args.members}x{args.members}, {args.episodes} episodes/pair) | {t_adhoc:.2f} | 1.0x |")
    print(f"| peft, pair by pair (extrapolated) | {t_peft:.1f} | {t_peft / t_adhoc:.1f}x slower |")
    print(f"target adhoc <= 10 s: {'PASS' if t_adhoc <= 10 else 'FAIL'}")


if __name__ == "__main__":
    main()
