"""Trajectory Diversity, TrajeDi (Lupu, Cui, Hu, Foerster, "Trajectory diversity for zero-shot
coordination", ICML 2021, section 4, eqs. 5–9).

Population objective: every member maximises its self-play return, and the population maximises the
generalised Jensen–Shannon divergence of the members' trajectory distributions,

    JSD = H(π̂) − (1/N) Σ_i H(π_i) = (1/N) Σ_i E_{τ∼π_i}[ log π_i(τ) − log π̂(τ) ],   π̂ = (1/N) Σ_j π_j,

with the local approximation of eq. 8 (action discount γ): at step t of trajectory τ,

    δ_{i,t}(τ) = Π_{t'} π_i(a_{t'} | τ_{t'})^{γ^{|t−t'|}},     δ̂_t(τ) = (1/N) Σ_j δ_{j,t}(τ),
    JSD_γ = (1/N) Σ_i E_{τ∼π_i}[ (1/T) Σ_t log δ_{i,t}(τ) − log δ̂_t(τ) ].

The weight at t' = t is γ⁰ = 1 (one public re-implementation uses γ^{|t−t'|+1}, making it γ: a bug we
avoid and test). γ = 0 is an action-level divergence at visited states (kernel π_i(a_t|s_t)); γ = 1 the
full trajectory divergence.

Symbols → code: N = ``n_members``; π_j(a_{t'}|τ_{t'}) = ``step_logp`` [N, P, E, T] (the JOINT action of a
step: both seats' log-probabilities summed, every member j re-scoring pair p's observations, WITH gradient);
log δ_{j,t} = ``log_delta`` [N, P, E, T]; the owner i of pair p is ``pairs[p, 0]`` (self-play pairs (i, i));
f_i(τ) = (1/T) Σ_t (log δ_{i,t} − log δ̂_t) = ``divergence`` [P, E]. α = ``config.alpha``.

Gradient. f depends on the policies twice: through the sampling of τ ∼ π_i and through the δ's. The loss
uses the surrogate (score function + pathwise)
    S_i = mean_e[ (f_i(τ_e) − b_e) · log π_i(τ_e) + f_i(τ_e) ],   b = leave-one-out baseline of f,
whose gradient is an unbiased estimate of ∇ E_{τ∼π_i}[f_i(τ)]; δ̂ carries gradients into EVERY member
(each member is pushed away from the others' trajectories). Loss of member i: self-play REINFORCE loss −
entropy bonus − α·S_i, so the population's total loss is −Σ_i J_i − α·N·JSD_γ.

Common best response (``config.best_response``, paper section 4.3): one extra adapter, the BR, trains
jointly with the population. Each iteration adds the pairs (i, BR) and (BR, i) for every member i; the BR
maximises its return with every member, and each member maximises its self-play AND its return with the
BR (REINFORCE over all of its entries, each pair with its own leave-one-out baseline), which keeps the
members compatible with one common partner while the JSD pushes their trajectories apart. The BR is not
saved as a member (it is not a partner strategy); its mean return with the members is logged
(``train/best_response_return``).

Deviations from the paper: REINFORCE with a leave-one-out baseline instead of PPO; the JSD is estimated
from the same self-play episodes as the return; members weigh self-play and best-response entries equally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from adhoc._torch import torch
from adhoc.methods.common import require_common_payoff, leave_one_out_advantage, population_logp, select_pairs
from adhoc.methods.selfplay import SelfPlay
from adhoc.params import MAX_COEF, ranged

if TYPE_CHECKING:
    from adhoc.rollout import Trajectories


@dataclass
class TrajeDiConfig:
    name: str = "trajedi"
    alpha: float = ranged(1.0, 0, MAX_COEF)  # weight of the JSD term (the paper's toy runs use a high weight)
    # action discount of the local approximation (1: whole trajectory, 0: per action)
    gamma: float = ranged(1.0, 0, 1, why="the action discount: 0 per action, 1 the whole trajectory")
    best_response: bool = False  # train a common best response to the population jointly (paper section 4.3)


def discount_kernel(T: int, gamma: float) -> torch.Tensor:
    """W[t, t'] = γ^{|t−t'|}, with W[t, t] = 1 for every γ (0⁰ = 1). [T, T]."""
    distance = (torch.arange(T)[:, None] - torch.arange(T)[None, :]).abs().double()
    return torch.where(distance == 0, torch.ones_like(distance), torch.tensor(float(gamma), dtype=torch.float64) ** distance)


def local_log_delta(step_logp: torch.Tensor, gamma: float) -> torch.Tensor:
    """log δ_t = Σ_{t'} γ^{|t−t'|} log π(a_{t'}|τ_{t'}). step_logp [..., T] → [..., T]."""
    W = discount_kernel(step_logp.shape[-1], gamma).to(step_logp)
    return step_logp @ W.T


def divergence(log_delta: torch.Tensor, owner: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """f(τ) = mean over played steps of log δ_{owner,t}(τ) − log δ̂_t(τ).

    log_delta [N, P, E, T] (every member on pair p's trajectories), owner [P] (who generated pair p),
    alive [P, E, T] → [P, E]. Its expectation over τ ∼ π_owner, averaged over owners, is the JSD."""
    N = log_delta.shape[0]
    log_mix = torch.logsumexp(log_delta, 0) - math.log(N)  # [P, E, T]
    own = log_delta[owner, torch.arange(owner.shape[0])]  # [P, E, T]
    w = alive.to(log_delta.dtype)
    return ((own - log_mix) * w).sum(-1) / w.sum(-1).clamp(min=1)


def jsd(probs: torch.Tensor) -> torch.Tensor:
    """Exact generalised JSD of N distributions over the same outcomes: H(mean) − mean H. probs [N, K]."""
    def H(p: torch.Tensor) -> torch.Tensor:
        return -(p * torch.log(p.clamp(min=1e-30))).sum(-1)
    return H(probs.mean(0)) - H(probs).mean()


class TrajeDi(SelfPlay):
    ppo_refusal = "its trajectory-divergence term is not combined with the clipped surrogate yet"

    def __init__(self, config: TrajeDiConfig, game, n_members: int) -> None:
        require_common_payoff(game, "trajedi", "diverse trajectories are diverse conventions only when both seats share one reward")
        super().__init__(config, game, n_members + int(config.best_response))  # the BR is slot N
        self.population_size = n_members

    def pairs(self, iteration: int, rng: np.random.Generator) -> torch.Tensor:
        members = torch.arange(self.population_size)
        pairs = [torch.stack([members, members], 1)]  # [N, 2] self-play, first
        if self.config.best_response:
            br = torch.full_like(members, self.population_size)
            pairs += [torch.stack([members, br], 1), torch.stack([br, members], 1)]
        return torch.cat(pairs)

    def loss(self, traj: Trajectories, entropy_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
        N = self.population_size
        loss, metrics = self.reinforce_loss(traj, traj.returns, entropy_coef)  # self-play (+ BR pairs)
        own = torch.nonzero(traj.pairs[:, 0] == traj.pairs[:, 1])[:, 0]  # the self-play pairs (i, i) held here
        sp = select_pairs(traj, own) if self.config.best_response else traj
        step_logp = population_logp(self.policy, self.game, sp, N).sum(-1)  # [N, N, E, T]
        f = divergence(local_log_delta(step_logp, self.config.gamma), sp.pairs[:, 0], sp.alive)  # [N, E]
        # Σ_e b_e log π_i(τ_e) / E, b the leave-one-out advantage of f: log π_i(τ) = Σ_{t,s} log π_i(a_t^s), taken
        # per row (``logp_dot``; both seats of the self-play pair (i, i) are member i)
        weights = (leave_one_out_advantage(f.detach()) / f.shape[1])[:, :, None] * sp.alive  # [N, E, T], both seats
        score = sp.logp_dot(weights, self.n_members)  # [n_members]
        pathwise = torch.zeros(self.n_members, device=f.device, dtype=f.dtype).index_add(0, sp.pairs[:, 0], f.mean(1))
        per_member = score + pathwise
        metrics["train/trajedi_jsd"] = float(f.detach().mean())
        if self.config.best_response:
            metrics["train/best_response_return"] = float(traj.population_returns[N:].mean())
        return loss - self.config.alpha * per_member, metrics

    def slot_name(self, slot: int, names: list[str]) -> str:
        return "best-response"

    def select(self, episodes: int, rng: np.random.Generator) -> tuple[list[int], torch.Tensor | None]:
        return list(range(self.population_size)), None  # the members, never the BR
