"""Per-member reductions over batched episodes, shared by the rollout, the diversity methods and the engine.

Shapes: P pairs, E episodes, T steps, N members; seat s of pair p is member ``pairs[p, s]``.
"""

from __future__ import annotations

from adhoc._torch import torch


def member_sum(values: torch.Tensor, pairs: torch.Tensor, n_members: int) -> torch.Tensor:
    """Σ of values [P, E, T, 2] over every entry a member played (the last axis is the seat): [N]."""
    member = pairs[:, None, None, :].expand_as(values).reshape(-1)
    return torch.zeros(n_members, dtype=values.dtype, device=values.device).index_add(0, member, values.reshape(-1))


def per_member_mean(values: torch.Tensor, weights: torch.Tensor, pairs: torch.Tensor, n_members: int) -> torch.Tensor:
    """Weighted mean over every (pair, episode, step) entry a member played, per member.

    values, weights: [P, E, T, 2] (the last axis is the seat); pairs: [P, 2] → [N] (0 for absent members).
    """
    w = weights.to(values.dtype)
    return member_sum(values * w, pairs, n_members) / member_sum(w, pairs, n_members).clamp(min=1e-12)


def members_with_data(pairs: torch.Tensor, n_members: int) -> torch.Tensor:
    """[N] bool: members that sit in at least one pair this iteration (the optimizer moves only these)."""
    active = torch.zeros(n_members, dtype=torch.bool, device=pairs.device)
    active[pairs.reshape(-1)] = True
    return active
