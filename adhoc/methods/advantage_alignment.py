"""Advantage Alignment (Duque, Aghajohari, Cooijmans, Ciuca, Zhang, Gidel, Courville, "Advantage Alignment
Algorithms", ICLR 2025): self-play whose policy gradient carries the opponent-shaping term of the paper.

Paper's estimator, for agent 1 (policy π¹) against agent 2, both with advantages of the joint action:

    ∇J¹ ≈ E_τ[ Σ_t γ^t · A*_t · ∇ log π¹(a_t | s_t) ],
    A*_t = A¹_t + β · γ · (Σ_{k<t} γ^{t−k} A¹_k) · A²_t,

agent 1's own advantage plus the product of its discounted sum of PAST own advantages and the opponent's
CURRENT advantage: an action that is good for the opponent is made more likely after an interaction that
went well for agent 1, and less likely after one that went badly (the reciprocity of tit-for-tat).

Self-play: one member plays both seats, and each seat is "agent 1" for its own actions, the other seat being
its opponent (agent 2). Per pair p, episode e, step t and seat s (``advantage_alignment_weights``):

- G^s_t = Σ_{t' ≥ t} γ^{t'−t} r^s_t' (``seat_reward_to_go``; r^s = ``traj.seat_rewards[..., s]``);
- A^s_t = G^s_t − mean of G^s_t over the pair's OTHER episodes alive at step t (``step_leave_one_out``):
  a leave-one-out baseline per (step, seat), so per role as self-play's ``role_baseline``;
- A*^s_t = γ^t · (A^s_t + β γ P^s_t A^{1−s}_t), P^s_t = Σ_{k<t} γ^{t−k} A^s_k;
- loss of member i = −Σ A*^s_t log π_i(a^s_t | o^s_t) over the steps and seats it played, divided by those
  steps (as every method's per-member mean), − entropy bonus (``train.entropy_coef``).

Symbols → code: β = ``config.beta``, γ = ``config.gamma``, A¹/A² = ``advantages[..., s]`` / ``[..., 1 − s]``
[P, E, T, 2], A* = ``advantage_alignment_weights(...)`` [P, E, T, 2].

Common-payoff games: A¹ = A² = A, so A*_t = γ^t A_t (1 + β γ P_t): REINFORCE with each step's advantage
scaled by 1 + β γ (discounted sum of the episode's earlier advantages) — amplified after a good start, damped
or reversed after a bad one; no game is refused. One-step games (T = 1): P = 0, so the method is self-play's
per-seat REINFORCE with a per-role baseline exactly. β = 0, γ = 1: per-seat REINFORCE on the reward-to-go
with a per-step, per-role baseline (the same expected gradient as self-play's, lower variance).

Data-parallel training: everything is per pair (baselines over the pair's own episodes), and the per-member
denominators come from ``played_steps`` (``traj.total_played`` on a sharded rollout), so the workers' losses
add up to the whole loss.

Deviations: no value function (the paper's A¹, A² come from learned critics; here the Monte-Carlo
reward-to-go minus a leave-one-out baseline over the pair's episodes at the same step); REINFORCE rather than
the paper's PPO-style proximal variant; the two agents are one member in self-play (gradients of both seats'
terms reach the same adapter), not two separately trained agents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from adhoc._torch import torch
from adhoc.methods.common import played_steps, rollout_entropy
from adhoc.methods.selfplay import SelfPlay
from adhoc.params import MAX_COEF, ranged
from adhoc.reductions import members_with_data

if TYPE_CHECKING:
    from adhoc.rollout import Trajectories


@dataclass
class AdvantageAlignmentConfig:
    name: str = "advantage_alignment"
    beta: float = ranged(1.0, 0, MAX_COEF)  # β: weight of the opponent-shaping term (0: per-step self-play)
    gamma: float = ranged(0.96, 0, 1)  # γ: discount of the reward-to-go, of the past advantages and of γ^t


def seat_reward_to_go(seat_rewards: torch.Tensor, alive: torch.Tensor, gamma: float) -> torch.Tensor:
    """G^s_t = Σ_{t' ≥ t} γ^{t'−t} r^s_t' over the steps played: seat_rewards [P, E, T, 2], alive [P, E, T] →
    [P, E, T, 2] (0 where the step was not played)."""
    r = seat_rewards * alive[..., None]
    out = torch.zeros_like(r)
    running = torch.zeros_like(r[:, :, 0])
    for t in range(r.shape[2] - 1, -1, -1):
        running = r[:, :, t] + gamma * running
        out[:, :, t] = running
    return out * alive[..., None]


def step_leave_one_out(values: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """values [P, E, T, 2] minus, per (pair, step, seat), the mean over the pair's OTHER episodes alive at that
    step (0 where no other episode is): [P, E, T, 2], 0 where not played."""
    if values.shape[1] < 2:
        raise ValueError("the leave-one-out baseline needs at least 2 episodes per pair")
    mask = alive[..., None].to(values.dtype)  # [P, E, T, 1]
    v = values * mask
    others = (mask.sum(1, keepdim=True) - mask).clamp(min=1)
    return (v - (v.sum(1, keepdim=True) - v) / others) * mask


def past_discounted_sum(advantages: torch.Tensor, gamma: float) -> torch.Tensor:
    """P_t = Σ_{k<t} γ^{t−k} A_k along dim 2 (steps): [P, E, T, 2] → [P, E, T, 2] (P_0 = 0)."""
    out = torch.zeros_like(advantages)
    for t in range(1, advantages.shape[2]):
        out[:, :, t] = gamma * (out[:, :, t - 1] + advantages[:, :, t - 1])
    return out


def advantage_alignment_weights(advantages: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """A*^s_t = γ^t (A^s_t + β γ P^s_t A^{1−s}_t), the weight of seat s's log π at step t: advantages
    [P, E, T, 2] (seat s's own advantage in column s) → [P, E, T, 2]."""
    T = advantages.shape[2]
    discount = gamma ** torch.arange(T, dtype=advantages.dtype, device=advantages.device)
    opponent = advantages.flip(-1)
    shaped = advantages + beta * gamma * past_discounted_sum(advantages, gamma) * opponent
    return discount[None, None, :, None] * shaped


class AdvantageAlignment(SelfPlay):
    """Self-play pairs (i, i); the loss weighs each seat's actions by the advantage-alignment weight A*."""
    ppo_refusal = "its opponent-shaping term is built on REINFORCE's advantages, not ported to PPO yet"

    def advantages(self, traj: Trajectories) -> torch.Tensor:
        """A^s_t [P, E, T, 2]: each seat's reward-to-go minus the per-step, per-seat leave-one-out baseline."""
        rtg = seat_reward_to_go(traj.seat_rewards, traj.alive, self.config.gamma)
        return step_leave_one_out(rtg, traj.alive)

    def loss(self, traj: Trajectories, entropy_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
        adv = self.advantages(traj).detach()
        weights = advantage_alignment_weights(adv, self.config.beta, self.config.gamma) * traj.alive[..., None]
        pg = -traj.logp_dot(weights, self.n_members) / played_steps(traj, self.n_members).clamp(min=1e-12)
        ent = rollout_entropy(traj, self.n_members)
        played = members_with_data(traj.pairs, self.n_members)
        shaping = weights - advantage_alignment_weights(adv, 0.0, self.config.gamma) * traj.alive[..., None]
        n = traj.alive.sum().clamp(min=1) * 2
        return pg - entropy_coef * ent, {"train/entropy": float(ent.detach()[played].mean()),
                                         "train/alignment_term": float(shaping.abs().sum() / n)}
