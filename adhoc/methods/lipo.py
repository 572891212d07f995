"""LIPO: Learning Incompatible Policies (Charakorn, Manoonpong, Dilokthanakul, "Generating diverse
cooperative agents by learning incompatible policies", ICLR 2023, section 4, eq. 3; authors' code
``51616/marl-lipo``).

Objective of member i (eq. 3, without the local-diversity term):

    max  J_SP(π_i) − λ_XP · J_XP(π_i, π_{j*}),     j* = argmax_{j ≠ i} [ J(π_i, π_j) + J(π_j, π_i) ],

the partner with the HIGHEST cross-play return (home + away), not the mean over partners. The cross-play
term is a policy-gradient loss with its sign flipped, taken with respect to member i's own actions only
(in both seats: home (i, j*) and away (j*, i)).

Symbols → code: λ_XP = ``config.lambda_xp``; every ordered pair (i, j) plays E episodes each iteration
(``pairs`` [N², 2], row-major), whose mean returns estimate X[i, j] = J(π_i, π_j) (``cross_play`` [N, N]);
j* = ``most_compatible_partner(X)`` [N]. Shapes: returns [N², E]; logp [N², E, T, 2].

Deviations: REINFORCE with a leave-one-out baseline per pair instead of MAPPO; X is estimated from the
iteration's own episodes (the authors evaluate it with extra rollouts); the optional local-diversity term
(latent z with a discriminator, weight α_MI) is not implemented — the authors switch it off for CMG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from adhoc.errors import UserError
from adhoc._torch import torch
from adhoc.methods.common import (leave_one_out_advantage, require_common_payoff, rollout_entropy,
                                  rollout_policy_gradient_loss, select_pairs)
from adhoc.methods.selfplay import SelfPlay
from adhoc.params import MAX_COEF, ranged
from adhoc.reductions import member_sum, members_with_data

if TYPE_CHECKING:
    from adhoc.rollout import Trajectories


@dataclass
class LIPOConfig:
    name: str = "lipo"
    lambda_xp: float = ranged(1.0, 0, MAX_COEF)  # weight of the (negated) cross-play term; the released CMG runs use 1.0


def most_compatible_partner(cross_play: torch.Tensor) -> torch.Tensor:
    """j*[i] = argmax_{j ≠ i} X[i, j] + X[j, i] (home + away). cross_play [N, N] → [N]."""
    both = cross_play + cross_play.T
    both = both.masked_fill(torch.eye(both.shape[0], dtype=torch.bool, device=both.device), float("-inf"))
    return both.argmax(1)


def cross_play_weights(returns: torch.Tensor, alive: torch.Tensor, n: int, partner: torch.Tensor,
                       index: torch.Tensor | None = None) -> torch.Tensor:
    """Weights [N², E, T, 2] of the cross-play term on log π: entry (p, e, t, s) of member i's home pair
    (i, j*) in seat 0 and of its away pair (j*, i) in seat 1 weighs A_{p,e} / (2 · i's played steps there);
    every other entry 0. Σ weights · log π per member is ``cross_play_loss``. ``index`` [P]: which of the N²
    pairs ``returns`` [P, E] and ``alive`` [P, E, T] hold (a data-parallel worker's block; default all)."""
    i = torch.arange(n, device=partner.device)
    home, away = i * n + partner, partner * n + i  # pairs (i, j*) with i in seat 0, (j*, i) with i in seat 1
    adv = leave_one_out_advantage(returns).detach()  # [P, E]
    weights = torch.zeros(*alive.shape, 2, dtype=adv.dtype, device=adv.device)
    local = torch.full((n * n,), -1, dtype=torch.long, device=partner.device)  # each pair's row here (-1: elsewhere)
    local[torch.arange(len(returns), device=partner.device) if index is None else index] = \
        torch.arange(len(returns), device=partner.device)
    for pair, seat in ((home, 0), (away, 1)):
        p = local[pair][local[pair] >= 0]
        w = alive[p].to(adv.dtype)  # [members, E, T]
        weights[p, :, :, seat] = adv[p][..., None] * w / w.sum((1, 2), keepdim=True).clamp(min=1) / 2
    return weights


def cross_play_loss(logp: torch.Tensor, returns: torch.Tensor, alive: torch.Tensor, n: int,
                    partner: torch.Tensor) -> torch.Tensor:
    """λ-free cross-play term per member: +mean(A · log π_i) over i's own actions with j* (descent LOWERS
    J_XP). logp [N², E, T, 2], returns [N², E], alive [N², E, T] for row-major pairs; partner [N] → [N].
    (Per episode; training takes the same sum per row, ``Trajectories.logp_dot`` of ``cross_play_weights``.)"""
    m = torch.arange(n, device=partner.device)
    pairs = torch.stack([m.repeat_interleave(n), m.repeat(n)], 1)
    return member_sum(cross_play_weights(returns, alive, n, partner) * logp, pairs, n)


class LIPO(SelfPlay):
    ppo_refusal = "its cross-play term is not combined with the clipped surrogate yet"

    def __init__(self, config: LIPOConfig, game, n_members: int) -> None:
        require_common_payoff(game, "lipo", "its cross-play term rewards members that fail to coordinate")
        super().__init__(config, game, n_members)
        if n_members < 2:
            raise UserError("method lipo needs population.size >= 2 (each member is pushed away from another)")

    def pairs(self, iteration: int, rng: np.random.Generator) -> torch.Tensor:
        m = torch.arange(self.n_members)
        return torch.stack([m.repeat_interleave(self.n_members), m.repeat(self.n_members)], 1)  # [N², 2]

    def loss(self, traj: Trajectories, entropy_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
        n = self.n_members
        sp = select_pairs(traj, torch.nonzero(traj.pairs[:, 0] == traj.pairs[:, 1])[:, 0])  # self-play pairs (i, i)
        pg = rollout_policy_gradient_loss(sp, leave_one_out_advantage(sp.returns), n)
        ent = rollout_entropy(sp, n)
        cross_play = traj.population_returns.detach().mean(1).view(n, n)  # every pair's, also when sharded
        partner = most_compatible_partner(cross_play)
        xp = traj.logp_dot(cross_play_weights(traj.returns, traj.alive, n, partner, traj.pair_index), n)
        off = ~torch.eye(n, dtype=torch.bool, device=cross_play.device)
        return pg - entropy_coef * ent + self.config.lambda_xp * xp, {
            "train/entropy": float(ent.detach()[members_with_data(sp.pairs, n)].mean()),
            "train/self_play_return": float(cross_play.diagonal().mean()),
            "train/cross_play_return": float(cross_play[off].mean()) if n > 1 else 0.0,
            "train/lipo_partner_return": float((cross_play + cross_play.T)[torch.arange(n), partner].mean() / 2),
        }
