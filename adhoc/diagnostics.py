"""Warnings where a result is suspect: said in the terminal summary, stored in the manifest (``warnings``), and
repeated by ``adhoc populations show``. Each rule is a pure function of numbers the run already has, so a test
can fire it by hand; the thresholds are written here once.

- A member **near chance**: its self-play return is within 10% of the game's reward scale of what two
  uniformly random players get (``chance_return``). The scale is the largest episode return random play
  reached, so the rule means the same on every game (a lever game pays 1.0, a repeated one averages rounds).
- A member **far below the population's best**: less than halfway from chance to the best member's return
  (only when the best member itself is clear of chance).
- A proxy that **predicts held-out play worse than uniform**: its held-out log-likelihood per decision is
  below that of picking uniformly among the legal actions.
- A learner mixture that **rests on the untrained snapshot** (weight >= 0.5 on ``<name>-epoch-00``): maximin
  found no trained snapshot with a better worst case, which is right when partners disagree (a one-shot
  coordination game with partners on several conventions: the best worst case is a uniformly random policy),
  but the user must be told rather than handed a random policy as "the robust agent".
"""

from __future__ import annotations

import numpy as np

from adhoc._torch import torch
from adhoc.games.core import SEATS, seat_rewards

NEAR_CHANCE = 0.1  # of the reward scale
FAR_BELOW = 0.5  # of the way from chance to the best member
UNTRAINED_WEIGHT = 0.5


def chance_return(game, episodes: int = 4096, seed: int = 0) -> tuple[float, float]:
    """(mean, max) episode return (seat 0's, where the seats are paid differently) of two players who pick
    uniformly among their legal actions, from
    ``episodes`` episodes with their own generator (the caller's random state is untouched)."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    state = game.reset(episodes, rng)
    total = torch.zeros(episodes)
    for _ in range(game.horizon):
        if bool(state.done.all()):
            break
        alive = ~state.done
        actions = torch.stack([torch.multinomial(game.legal_mask(state, s).float(), 1, generator=gen)[:, 0]
                               for s in SEATS], 1)
        state, reward, _ = game.step(state, actions)
        total += torch.where(alive, seat_rewards(reward.float().cpu())[:, 0], torch.zeros(()))  # seat 0's
    return float(total.mean()), float(total.max())


def member_warnings(names: list[str], self_play: list[float], chance: float, scale: float) -> list[str]:
    """At most two lines: the members whose self-play return is near chance, and those far below the
    population's best."""
    sp = np.asarray(self_play, dtype=np.float64)
    near = chance + NEAR_CHANCE * max(abs(scale), 1e-9)
    best = float(sp.max()) if len(sp) else chance
    low = [(n, v) for n, v in zip(names, sp.tolist()) if v <= near]
    far = [(n, v) for n, v in zip(names, sp.tolist())
           if near < v < chance + FAR_BELOW * (best - chance)] if best > near else []

    def listed(items: list[tuple[str, float]]) -> str:
        return f"{len(items)} of {len(sp)} members (" + ", ".join(f"{n} {v:.3f}" for n, v in items) + ")"

    out = []
    if low:
        out.append(f"{listed(low)} play near chance in self-play ({chance:.3f} for two uniformly random players): "
                   f"they learnt no convention; train longer or check train.lr")
    if far:
        out.append(f"{listed(far)} are far below the population's best self-play return ({best:.3f}; "
                   f"chance {chance:.3f})")
    return out


def proxy_warning(name: str, loglik: float, uniform_loglik: float) -> str | None:
    """A proxy whose held-out log-likelihood per decision is below uniform play's."""
    if loglik < uniform_loglik:
        return (f"{name}: predicts held-out play worse than uniform (log-likelihood {loglik:.3f} per decision "
                f"against {uniform_loglik:.3f}): too little data or too many iterations; do not use it as a proxy")
    return None


def mixture_warning(weights: dict[str, float], untrained: str, matrix: np.ndarray) -> str | None:
    """A learner mixture with weight >= 0.5 on the untrained snapshot ``untrained`` (row 0 of M)."""
    w = float(weights.get(untrained, 0.0))
    if w < UNTRAINED_WEIGHT:
        return None
    M = np.asarray(matrix, dtype=np.float64)
    trained = f"{M[1:].min(1).max():.3f}" if len(M) > 1 else "none"
    return (f"the mixture puts {w:.3f} on {untrained}, the untrained snapshot: its worst-case return with the "
            f"partners ({M[0].min():.3f}) is as good as any trained snapshot's (best {trained}). Maximin prefers "
            f"a policy that is equally (un)coordinated with every partner when the partners disagree, as on a "
            f"one-shot game with partners on several conventions; judge the final learner by its mean, or train "
            f"with partners that share a convention")
