"""Cooperation rates of iterated prisoner's dilemma populations (docs/competitive.md, "Iterated prisoner's
dilemma").

    PYTHONPATH=. python scripts/ipd_cooperation.py POP [POP ...] [--episodes 256] [--seed 0]

For each population folder (a ``repeated`` game with a C/D ``matrix`` stage) and each member i, one line:

- ``sp_coop``: the fraction of C actions in self-play (member i in both seats), over both seats and all rounds;
- ``coop_vs_<partner>``: the fraction of member i's own C actions against each scripted partner
  (always-cooperate, always-defect, tit-for-tat), over both seatings and all rounds;
- ``sp_return``: member i's mean own return per seat in self-play (the mean payoff per round, R=3, P=1).

Episodes are sampled from each member's policy (``adhoc.rollout``), ``--episodes`` per pair and seating.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from adhoc._torch import torch
from adhoc.games import build_game
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.population import Population
from adhoc.rollout import rollout
from adhoc.scripted import load_scripted_population, scripted_ids

PARTNERS = ("always-cooperate", "always-defect", "tit-for-tat")


def cooperation(path: str, episodes: int, seed: int) -> list[dict]:
    pop = Population.load(path)
    game = build_game(dict(pop.game))
    if game.action_names(0)[0] != "C":
        raise SystemExit(f"{path}: not a C/D prisoner's dilemma (actions {game.action_names(0)})")
    base = load_base(pop.base_model["id"], device="cpu", dtype="float32")
    policy = Policy(base, pop.build_bank(base))
    scripted = scripted_ids(policy, load_scripted_population("scripted:repeated:" + ",".join(PARTNERS), game))
    n = len(pop.names)
    members = torch.arange(n)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        sp = rollout(game, policy, torch.stack([members, members], 1), episodes, rng, grad=False)
        rows = []
        for i, name in enumerate(pop.names):
            alive = sp.alive[i]  # [E, T]
            row = {"population": path, "member": name,
                   "sp_coop": float((sp.actions[i] == 0)[alive].float().mean()),
                   "sp_return": float(sp.seat_returns[i].mean())}
            for k, partner in enumerate(PARTNERS):
                pairs = torch.tensor([[i, int(scripted[k])], [int(scripted[k]), i]])
                traj = rollout(game, policy, pairs, episodes, rng, grad=False)
                own = torch.cat([traj.actions[0, :, :, 0][traj.alive[0]], traj.actions[1, :, :, 1][traj.alive[1]]])
                row[f"coop_vs_{partner}"] = float((own == 0).float().mean())
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("populations", nargs="+")
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in args.populations:
        for row in cooperation(path, args.episodes, args.seed):
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))


if __name__ == "__main__":
    main()
