"""Pure functions shared by the diversity methods: baselines, per-member reductions, the policy-gradient loss.

Sign convention: every function returns a LOSS to minimise (a gradient-descent step on it ascends the
objective). Shapes: P pairs, E episodes, T steps, N members; seat s of pair p is member ``pairs[p, s]``.
"""

from __future__ import annotations

from adhoc.games._torch import torch


def leave_one_out_advantage(returns: torch.Tensor) -> torch.Tensor:
    """A_e = G_e − mean_{e' ≠ e} G_e' within each pair's group of E episodes. returns: [P, E] → [P, E].

    The baseline excludes the episode itself, so the estimator stays unbiased (RLOO, Kool et al. 2019).
    """
    E = returns.shape[-1]
    if E < 2:
        raise ValueError("the leave-one-out baseline needs at least 2 episodes per pair")
    total = returns.sum(-1, keepdim=True)
    return returns - (total - returns) / (E - 1)


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


def policy_gradient_loss(logp: torch.Tensor, advantages: torch.Tensor, alive: torch.Tensor,
                         pairs: torch.Tensor, n_members: int) -> torch.Tensor:
    """REINFORCE loss per member: −mean(A · log π(a_t|o_t)) over the steps it played.

    logp: [P, E, T, 2]; advantages: [P, E] (episode-level, both seats share the common payoff); alive: [P, E, T].
    The per-episode definition; training computes the same value per row with ``rollout_policy_gradient_loss``.
    """
    weights = alive[..., None].expand_as(logp)
    return per_member_mean(-advantages.detach()[:, :, None, None] * logp, weights, pairs, n_members)


def entropy_per_member(entropy: torch.Tensor, alive: torch.Tensor, pairs: torch.Tensor, n_members: int) -> torch.Tensor:
    """Mean policy entropy per member over the steps it played. entropy: [P, E, T, 2] → [N]."""
    return per_member_mean(entropy, alive[..., None].expand_as(entropy), pairs, n_members)


def played_steps(traj, n_members: int) -> torch.Tensor:
    """Steps each member played over the rollout, both seats: [N] (the denominators of the per-member means)."""
    per_pair = traj.alive.sum((1, 2)).float()  # [P]
    zeros = torch.zeros(n_members, dtype=per_pair.dtype, device=per_pair.device)
    return zeros.index_add(0, traj.pairs[:, 0], per_pair).index_add(0, traj.pairs[:, 1], per_pair)


def rollout_policy_gradient_loss(traj, advantages: torch.Tensor, n_members: int) -> torch.Tensor:
    """``policy_gradient_loss`` of a rollout [N], computed per distinct row when the rollout kept its rows
    (``Trajectories.logp_dot``: per-row action weights Σ A_e, the same sum as per episode)."""
    weights = -advantages.detach()[:, :, None] * traj.alive  # [P, E, T], both seats
    return traj.logp_dot(weights, n_members) / played_steps(traj, n_members).clamp(min=1e-12)


def rollout_entropy(traj, n_members: int) -> torch.Tensor:
    """``entropy_per_member`` of a rollout [N], per distinct row (each row's entropy × its played episodes)."""
    return traj.entropy_dot(traj.alive.float(), n_members) / played_steps(traj, n_members).clamp(min=1e-12)


def select_pairs(traj, index: torch.Tensor):
    """The trajectories of the pairs ``index`` [K] only (tensors, pairs, rows and the pair-major observation texts)."""
    return traj.select(index)


def self_play_returns(game, policy, n_members: int, episodes: int, rng) -> torch.Tensor:
    """Each member's mean self-play return (member i in both seats) from ``episodes`` episodes: [N] on CPU."""
    from adhoc.rollout import expected_returns

    members = torch.arange(n_members)
    return expected_returns(game, policy, torch.stack([members, members], 1), episodes, rng).cpu()


def population_logp(policy, game, traj, n_members: int) -> torch.Tensor:
    """log π_j(a_t^s | o_t^s) of the TAKEN actions under EVERY member j: [N, P, E, T, 2] (0 where the step
    was not played). Differentiable when grad is enabled (TrajeDi), detached under ``torch.no_grad`` (MEP).

    Each distinct observation of a (step, seat) is scored once per member; the legal mask of a row is read
    off the rollout's own distribution (``traj.logp_all``), so it is exact per row.
    """
    P, E, T = traj.rewards.shape
    members = torch.arange(n_members)
    out = []
    for t, seats in enumerate(traj.observations):
        per_seat = []
        for s, observations in enumerate(seats):
            uniq = sorted(set(observations))
            where = {o: k for k, o in enumerate(uniq)}
            table = policy.actions(game.action_names(s))
            rows = torch.tensor([where[o] for o in observations], device=traj.rewards.device)
            scores = policy.scores(members.repeat_interleave(len(uniq)), uniq * n_members, table)
            scores = scores.view(n_members, len(uniq), -1)  # [N, U, A]
            legal = torch.isfinite(traj.logp_all[:, :, t, s, : scores.shape[-1]]).reshape(P * E, -1)
            # gather the taken action per row before the softmax's normaliser is broadcast: [N, R]
            norm = torch.logsumexp(scores[:, rows].masked_fill(~legal, float("-inf")), -1) if not bool(legal.all()) \
                else torch.logsumexp(scores, -1)[:, rows]
            taken = traj.actions[:, :, t, s].reshape(-1)
            logp = scores[:, rows, taken] - norm  # [N, P·E]
            per_seat.append(logp * traj.alive[:, :, t].reshape(1, -1))
        out.append(torch.stack(per_seat, -1).view(n_members, P, E, 2))
    for _ in range(len(out), T):  # steps no episode reached
        out.append(torch.zeros(n_members, P, E, 2, device=traj.rewards.device))
    return torch.stack(out, 3)  # [N, P, E, T, 2]
