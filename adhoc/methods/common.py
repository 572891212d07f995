"""Pure functions shared by the diversity methods: baselines, per-member reductions, the policy-gradient loss.

Sign convention: every function returns a LOSS to minimise (a gradient-descent step on it ascends the
objective). Shapes: P pairs, E episodes, T steps, N members; seat s of pair p is member ``pairs[p, s]``.
"""

from __future__ import annotations

from adhoc._torch import torch
from adhoc.reductions import per_member_mean


def require_common_payoff(game, method: str, why: str) -> None:
    """Refuse, in one line, a game whose seats are paid differently for a method built on a common payoff."""
    from adhoc.errors import UserError
    from adhoc.games.core import payoff_kind

    kind = payoff_kind(game)
    if kind != "common":
        raise UserError(f"method {method} needs a common-payoff game ({why}); game '{game.name}' is "
                        f"{kind.replace('_', '-')}: use selfplay, otherplay, fcp, psro (zero-sum) or advantage_alignment")


def leave_one_out_advantage(returns: torch.Tensor) -> torch.Tensor:
    """A_e = G_e − mean_{e' ≠ e} G_e' within each pair's group of E episodes. returns: [P, E] → [P, E].

    The baseline excludes the episode itself, so the estimator stays unbiased (RLOO, Kool et al. 2019).
    """
    E = returns.shape[-1]
    if E < 2:
        raise ValueError("the leave-one-out baseline needs at least 2 episodes per pair")
    total = returns.sum(-1, keepdim=True)
    return returns - (total - returns) / (E - 1)


def seat_leave_one_out_advantage(returns: torch.Tensor, role_baseline: bool = True) -> torch.Tensor:
    """Advantages of the seats' own returns, for games that pay each seat its own reward. returns [P, E, 2]
    (seat s's return in column s) → [P, E, 2].

    ``role_baseline``: seat s is baselined by the mean of seat s's returns in the pair's other episodes, one
    baseline per role, as SPIRAL's role-conditioned advantage estimation (Liu et al. 2025) keeps one per (game,
    role): a role that wins more often (the first mover) is no longer pushed towards whatever it happened to
    play. Otherwise both roles share one baseline, the mean of both seats' returns in the other episodes (in
    self-play on a zero-sum game that is 0: the advantage is the raw return)."""
    if role_baseline:
        return leave_one_out_advantage(returns.transpose(1, 2)).transpose(1, 2)
    E = returns.shape[1]
    if E < 2:
        raise ValueError("the leave-one-out baseline needs at least 2 episodes per pair")
    own = returns.sum(2, keepdim=True)  # [P, E, 1]
    return returns - (own.sum(1, keepdim=True) - own) / (2 * (E - 1))


def grouped_leave_one_out_advantage(returns: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """A_e = G_e − mean of the OTHER episodes of e's group. returns [B] (or [B, T]: per step, each column
    baselined alike), groups [B] → the shape of returns.

    An episode alone in its group is baselined by the mean of all other episodes of the batch (still
    independent of its own actions, so still unbiased); a batch of one episode gets no baseline.
    """
    B = returns.shape[0]
    _, inverse = torch.unique(groups, return_inverse=True)
    G = int(inverse.max()) + 1 if B else 0
    total = torch.zeros((G, *returns.shape[1:]), dtype=returns.dtype, device=returns.device).index_add(0, inverse, returns)
    count = torch.zeros(G, dtype=returns.dtype, device=returns.device).index_add(0, inverse, torch.ones(B, dtype=returns.dtype, device=returns.device))
    own_total, own_count = total[inverse], count[inverse].view(-1, *[1] * (returns.dim() - 1))
    in_group = (own_total - returns) / (own_count - 1).clamp(min=1)
    batch = (returns.sum(0) - returns) / max(B - 1, 1)
    return returns - torch.where(own_count > 1, in_group, batch if B > 1 else torch.zeros_like(returns))


def policy_gradient_loss(logp: torch.Tensor, advantages: torch.Tensor, alive: torch.Tensor,
                         pairs: torch.Tensor, n_members: int) -> torch.Tensor:
    """REINFORCE loss per member: −mean(A · log π(a_t|o_t)) over the steps it played.

    logp: [P, E, T, 2]; advantages: [P, E] (episode-level, both seats share the common payoff) or [P, E, T]
    (per step); alive: [P, E, T]. The per-episode definition; training computes the same value per row with
    ``rollout_policy_gradient_loss``.
    """
    adv = advantages.detach()
    adv = adv[..., None] if adv.dim() == 3 else adv[:, :, None, None]
    return per_member_mean(-adv * logp, alive[..., None].expand_as(logp), pairs, n_members)


def entropy_per_member(entropy: torch.Tensor, alive: torch.Tensor, pairs: torch.Tensor, n_members: int) -> torch.Tensor:
    """Mean policy entropy per member over the steps it played. entropy: [P, E, T, 2] → [N]."""
    return per_member_mean(entropy, alive[..., None].expand_as(entropy), pairs, n_members)


def played_steps(traj, n_members: int) -> torch.Tensor:
    """Steps each member played over the rollout, both seats: [N] (the denominators of the per-member means).
    A sharded rollout (data-parallel training) counts the steps of every worker's pairs: ``traj.total_played``."""
    if traj.total_played is not None:
        return traj.total_played
    per_pair = traj.alive.sum((1, 2)).float()  # [P]
    zeros = torch.zeros(n_members, dtype=per_pair.dtype, device=per_pair.device)
    return zeros.index_add(0, traj.pairs[:, 0], per_pair).index_add(0, traj.pairs[:, 1], per_pair)


def rollout_policy_gradient_loss(traj, advantages: torch.Tensor, n_members: int, seats: bool = False) -> torch.Tensor:
    """``policy_gradient_loss`` of a rollout [N], computed per distinct row when the rollout kept its rows
    (``Trajectories.logp_dot``: per-row action weights Σ A_e, the same sum as per episode). advantages: [P, E]
    (one per episode) or [P, E, T] (one per step: the learner's ``credit: reward_to_go``), both seats alike;
    ``seats``: one per episode and seat, [P, E, 2] (games that pay each seat its own reward)."""
    adv = advantages.detach()
    if seats:
        weights = -adv[:, :, None, :] * traj.alive[..., None]  # [P, E, T, 2]
        return traj.logp_dot(weights, n_members) / played_steps(traj, n_members).clamp(min=1e-12)
    weights = -(adv if adv.dim() == 3 else adv[:, :, None]) * traj.alive  # [P, E, T], both seats
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

    The same values and gradients as ``population_logp_reference`` (up to float rounding), at the cost of a
    rollout's scoring times N rather than of re-reading every transcript N times per step:

    - each distinct observation of a (step, seat) is scored once per member, all members in ONE batched pass
      (rows (member j, text u), member-major);
    - multi-step games reuse each member's encoded prefixes across steps as the rollout does (``_PrefixCache``
      over (member, episode) slots, ``Policy.scores_reusing``): step t encodes only what was appended to each
      observation since the seat's last scored step, under each member's own adapter;
    - the legal mask of each episode is read off its rollout row (``traj.rows``: log π [U, A] with -inf for
      illegal actions, one mask per row) instead of the per-episode [P, E, T, 2, A] ``traj.logp_all``
      (per-episode rollouts, which have no rows, still use it); the normaliser is taken once per distinct
      (text, legal mask);
    - entries that are not played (dead steps) or forced (a single legal action, log π = 0 exactly: the
      other seat's turn) are not scored; they are 0, as the reference gives them.
    """
    from adhoc.rollout import _PrefixCache

    P, E, T = traj.rewards.shape
    n, device = P * E, traj.rewards.device
    alive = traj.alive.reshape(n, T).cpu()
    caches = [_PrefixCache(n_members * n, game) if game.horizon > 1 else None for _ in range(2)]
    steps = []
    for t in range(T):
        per_seat = []
        for s in range(2):
            per_seat.append(torch.zeros(n_members, n, device=device) if t >= len(traj.observations) else
                            _seat_population_logp(policy, game, traj, t, s, alive[:, t], caches[s], n_members))
        steps.append(torch.stack(per_seat, -1))  # [N, n, 2]
    return torch.stack(steps, 2).view(n_members, P, E, T, 2)


def _episode_legal(traj, t: int, s: int, n_actions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct legal masks of step t, seat s (patterns [K, A] bool) and each episode's [n], on the CPU:
    per row when the rollout kept rows (a row has one mask), else off ``traj.logp_all``."""
    if traj.rows is not None:
        r = traj.rows[t][s]
        patterns, of_row = torch.unique(torch.isfinite(r.logp.detach()).cpu(), dim=0, return_inverse=True)
        return patterns, of_row[r.row_of.cpu()]
    legal = torch.isfinite(traj.logp_all[:, :, t, s, :n_actions].detach()).reshape(-1, n_actions).cpu()
    return torch.unique(legal, dim=0, return_inverse=True)


def _seat_population_logp(policy, game, traj, t: int, s: int, alive: torch.Tensor, cache, n_members: int
                          ) -> torch.Tensor:
    """[N, n]: log π_j of the taken action of every episode at step t, seat s (0 where dead or forced)."""
    n = alive.shape[0]
    device = traj.rewards.device
    names = game.action_names(s)
    patterns, pattern = _episode_legal(traj, t, s, len(names))  # [K, A], [n]
    scored = torch.nonzero(alive & (patterns.sum(1) > 1)[pattern])[:, 0]  # [m] episodes that chose
    out = torch.zeros(n_members, n, device=device)
    if len(scored) == 0:
        return out
    observations = traj.observations[t][s]
    index: dict[str, int] = {}
    text_of = torch.tensor([index.setdefault(observations[e], len(index)) for e in scored.tolist()])  # [m]
    texts = list(index)
    U = len(texts)
    members = torch.arange(n_members).repeat_interleave(U)  # rows (j, u), member-major
    if cache is None:
        scores = policy.scores(members, texts * n_members, policy.actions(names))
    else:  # slot j·n + e: member j's encoding of episode e
        first = torch.full((U,), n, dtype=torch.long).scatter_reduce(0, text_of, scored, "amin")
        slots = torch.arange(n_members)[:, None] * n
        scores = cache.score_rows(policy, members, texts * n_members, (slots + first).reshape(-1),
                                  (slots + scored).reshape(-1), (torch.arange(n_members)[:, None] * U + text_of).reshape(-1),
                                  names)
    scores = scores.view(n_members, U, -1)  # [N, U, A]
    # one normaliser per distinct (text, legal mask)
    query, query_of = torch.unique(text_of * len(patterns) + pattern[scored], return_inverse=True)  # [Q], [m]
    q_text, q_legal = query // len(patterns), patterns[query % len(patterns)].to(device)
    if bool(q_legal.all()):
        norm = torch.logsumexp(scores, -1)[:, q_text.to(device)]  # [N, Q]
    else:
        norm = torch.logsumexp(scores[:, q_text.to(device)].masked_fill(~q_legal, float("-inf")), -1)
    taken = traj.actions[:, :, t, s].reshape(-1)[scored.to(device)]
    text_d = text_of.to(device)
    logp = scores[:, text_d, taken] - norm[:, query_of.to(device)]  # [N, m]
    return out.index_copy(1, scored.to(device), logp)


def population_logp_reference(policy, game, traj, n_members: int) -> torch.Tensor:
    """``population_logp`` computed the straightforward way, kept as its reference (tests) and baseline
    (``benchmarks/bench_population_logp.py``): at every (step, seat) each distinct observation is encoded WHOLE
    under every member (no prefix reuse across steps), and the legal masks are read off the per-episode
    ``traj.logp_all`` [P, E, T, 2, A]. On a multi-step game with transcripts as observations this re-encodes
    the whole history at every step (about 80 s per TrajeDi iteration of 8 members on the repeated lever game).
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
