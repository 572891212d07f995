"""Pure functions shared by the diversity methods: baselines, per-member reductions, the policy-gradient loss.

Sign convention: every function returns a LOSS to minimise (a gradient-descent step on it ascends the
objective). Shapes: P pairs, E episodes, T steps, N members; seat s of pair p is member ``pairs[p, s]``.
"""

from __future__ import annotations

import torch


def leave_one_out_advantage(returns: torch.Tensor) -> torch.Tensor:
    """A_e = G_e − mean_{e' ≠ e} G_e' within each pair's group of E episodes. returns: [P, E] → [P, E].

    The baseline excludes the episode itself, so the estimator stays unbiased (RLOO, Kool et al. 2019).
    """
    E = returns.shape[-1]
    if E < 2:
        raise ValueError("the leave-one-out baseline needs at least 2 episodes per pair")
    total = returns.sum(-1, keepdim=True)
    return returns - (total - returns) / (E - 1)


def per_member_mean(values: torch.Tensor, weights: torch.Tensor, pairs: torch.Tensor, n_members: int) -> torch.Tensor:
    """Weighted mean over every (pair, episode, step) entry a member played, per member.

    values, weights: [P, E, T, 2] (the last axis is the seat); pairs: [P, 2] → [N] (0 for absent members).
    """
    member = pairs[:, None, None, :].expand_as(values).reshape(-1)
    w = weights.to(values.dtype).reshape(-1)
    num = torch.zeros(n_members, dtype=values.dtype, device=values.device).index_add(0, member, values.reshape(-1) * w)
    den = torch.zeros(n_members, dtype=values.dtype, device=values.device).index_add(0, member, w)
    return num / den.clamp(min=1e-12)


def members_with_data(pairs: torch.Tensor, n_members: int) -> torch.Tensor:
    """[N] bool: members that sit in at least one pair this iteration (the optimizer moves only these)."""
    active = torch.zeros(n_members, dtype=torch.bool, device=pairs.device)
    active[pairs.reshape(-1)] = True
    return active


def policy_gradient_loss(logp: torch.Tensor, advantages: torch.Tensor, alive: torch.Tensor,
                         pairs: torch.Tensor, n_members: int) -> torch.Tensor:
    """REINFORCE loss per member: −mean(A · log π(a_t|o_t)) over the steps it played.

    logp: [P, E, T, 2]; advantages: [P, E] (episode-level, both seats share the common payoff); alive: [P, E, T].
    """
    weights = alive[..., None].expand_as(logp)
    return per_member_mean(-advantages.detach()[:, :, None, None] * logp, weights, pairs, n_members)


def entropy_per_member(entropy: torch.Tensor, alive: torch.Tensor, pairs: torch.Tensor, n_members: int) -> torch.Tensor:
    """Mean policy entropy per member over the steps it played. entropy: [P, E, T, 2] → [N]."""
    return per_member_mean(entropy, alive[..., None].expand_as(entropy), pairs, n_members)
