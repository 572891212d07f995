"""PPO's pieces (``train.algorithm: ppo``, docs/reference.md "train.algorithm"): GAE, the clipped surrogate, the
clipped value loss, per-member advantage normalisation, and the replay that re-scores a rollout's episodes under
the current adapters and value heads. The update loop (epochs × minibatches over one rollout) is
``adhoc.engine.ppo_step``.

CleanRL's PPO (Huang et al. 2022, ``ppo.py``), per member m and per seat s of each episode, over the seat's
decision points k (the steps where it had more than one legal action):

    δ_k = r_k + γ V(o_{k+1}) − V(o_k),   Â_k = δ_k + γλ Â_{k+1},   R̂_k = Â_k + V_old(o_k)
    L_clip = E[ max(−Â ρ, −Â clip(ρ, 1 − ε, 1 + ε)) ],   ρ = π_θ(a_k | o_k) / π_old(a_k | o_k)
    L_V = ½ E[ max((V − R̂)², (V_old + clip(V − V_old, −ε_V, ε_V) − R̂)²) ]
    loss_m = L_clip + c_V L_V − c_H E[H(π_θ(· | o_k))]

Symbols → code: γ ``train.ppo_gamma``, λ ``train.ppo_gae_lambda``, ε ``train.ppo_clip``, ε_V
``train.ppo_value_clip`` (null: unclipped), c_V ``train.ppo_value_coef``, c_H ``train.entropy_coef`` (its
schedule); Â is normalised per member within each minibatch when ``train.ppo_normalize_advantages``.

Deviations: r_k is the seat's own reward summed from its decision k up to its next one (a turn-based seat waits
while the other acts; γ discounts per decision, not per step); V after the seat's last decision is 0 (episodes
end, none is cut); the expectations are per member (its entries in the minibatch), since each member is its own
learner; π_old and V_old come from one replay of the rollout before the first update (the rollout's own
log-probabilities up to float rounding), so the first minibatch's ratio is exactly 1.
"""

from __future__ import annotations

import torch

from adhoc.games.core import SEATS
from adhoc.lm.policy import entropy, masked_log_softmax
from adhoc.methods.common import _episode_legal


def gae(rewards: torch.Tensor, values: torch.Tensor, decided: torch.Tensor, gamma: float,
        lam: float) -> torch.Tensor:
    """GAE(γ, λ) advantages [B, T] of B sequences (one seat of one episode each) over T steps; 0 where the
    seat did not decide. rewards, values [B, T]; decided [B, T] bool. A reward counts for the seat's latest
    decision at or before its step (rewards before its first decision are dropped)."""
    B, T = rewards.shape
    adv = torch.zeros_like(values)
    next_adv, next_value, pending = (torch.zeros(B, dtype=values.dtype, device=values.device) for _ in range(3))
    for t in reversed(range(T)):
        pending = pending + rewards[:, t]
        d = decided[:, t]
        a = pending + gamma * next_value - values[:, t] + gamma * lam * next_adv
        adv[:, t] = torch.where(d, a, 0.0)
        next_adv = torch.where(d, a, next_adv)
        next_value = torch.where(d, values[:, t], next_value)
        pending = torch.where(d, 0.0, pending)
    return adv


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      clip: float) -> torch.Tensor:
    """PPO's clipped policy loss per entry: max(−Â ρ, −Â clip(ρ, 1 − ε, 1 + ε)), ρ = exp(logp − old_logp)."""
    ratio = (logp - old_logp).exp()
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip))


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       clip: float | None) -> torch.Tensor:
    """½ max((V − R̂)², (V_old + clip(V − V_old, ±ε_V) − R̂)²) per entry; ``clip`` None: ½ (V − R̂)²."""
    unclipped = (values - returns) ** 2
    if clip is None:
        return 0.5 * unclipped
    clipped = (old_values + (values - old_values).clamp(-clip, clip) - returns) ** 2
    return 0.5 * torch.max(unclipped, clipped)


def group_mean(x: torch.Tensor, group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Mean of ``x`` [K] per group (``group`` [K] in [0, n_groups)): [n_groups], 0 for an empty group."""
    total = torch.zeros(n_groups, dtype=x.dtype, device=x.device).index_add(0, group, x)
    count = torch.zeros(n_groups, dtype=x.dtype, device=x.device).index_add(0, group, torch.ones_like(x))
    return total / count.clamp(min=1)


def normalize_per_group(x: torch.Tensor, group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """(x − mean) / (std + 1e-8) within each group (CleanRL's advantage normalisation, per member): the
    unbiased std, taken as 0 for a group of one entry."""
    mean = group_mean(x, group, n_groups)
    count = torch.zeros(n_groups, dtype=x.dtype, device=x.device).index_add(0, group, torch.ones_like(x))
    sq = torch.zeros(n_groups, dtype=x.dtype, device=x.device).index_add(0, group, (x - mean[group]) ** 2)
    std = (sq / (count - 1).clamp(min=1)).sqrt()
    return (x - mean[group]) / (std[group] + 1e-8)


def member_losses(new: dict, old: dict, entries: torch.Tensor, n_members: int, clip: float,
                  value_clip: float | None, value_coef: float, entropy_coef: float,
                  normalize: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """loss_m [N] of one minibatch, and per-member means of its parts. ``new``: this replay's ``logp``,
    ``entropy``, ``values``; ``old``: ``logp``, ``values``, ``advantages``, ``returns`` of the same entries,
    and each entry's ``member``; all [K] over the K decision entries ``entries`` selects (a bool mask)."""
    member = old["member"][entries]
    adv = old["advantages"][entries]
    if normalize:
        adv = normalize_per_group(adv, member, n_members)
    logp, old_logp = new["logp"][entries], old["logp"][entries]
    policy = clipped_surrogate(logp, old_logp, adv, clip)
    value = clipped_value_loss(new["values"][entries], old["values"][entries], old["returns"][entries], value_clip)
    ent = new["entropy"][entries]
    parts = {"entropy": ent, "value_loss": value,
             "clip_fraction": ((logp - old_logp).exp().sub(1).abs() > clip).to(logp.dtype)}
    losses = group_mean(policy + value_coef * value - entropy_coef * ent, member, n_members)
    return losses, {k: group_mean(v.detach(), member, n_members) for k, v in parts.items()}


def replay(policy, game, traj, episodes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Re-score the episodes ``episodes`` [m] (flat, pair-major indices of ``traj``) under the current adapters
    and value heads: ``logp`` of the taken actions, ``entropy``, ``values`` and ``decided`` (the seat had more
    than one legal action), each [m, T, 2] (0 where not decided); differentiable when grad is enabled. Each
    seat's observations reuse their encoded prefixes across steps (``_PrefixCache``), as the rollout does;
    the legal masks are the rollout's. Actions are the game's (methods that relabel a seat refuse PPO)."""
    from adhoc.rollout import _PrefixCache

    P, E, T = traj.rewards.shape
    device = traj.rewards.device
    m = len(episodes)
    alive = traj.alive.reshape(P * E, T)[episodes.to(device)].cpu()
    actions = traj.actions.reshape(P * E, T, 2)[episodes.to(device)]
    caches = [_PrefixCache(m, game) for _ in SEATS]
    out = {k: [] for k in ("logp", "entropy", "values", "decided")}
    for t in range(len(traj.observations)):
        steps = {k: [] for k in out}
        for s in SEATS:
            names = game.action_names(s)
            patterns, pattern = _episode_legal(traj, t, s, len(names))
            legal = patterns[pattern[episodes]]  # [m, A]
            decided = alive[:, t] & (legal.sum(1) > 1)
            idx = torch.nonzero(decided)[:, 0]
            zeros = torch.zeros(m, device=device)
            steps["decided"].append(decided.to(device))
            if len(idx) == 0:
                for k in ("logp", "entropy", "values"):
                    steps[k].append(zeros)
                continue
            members = traj.pairs[:, s].cpu().repeat_interleave(E)[episodes[idx]]
            observations = [traj.observations[t][s][e] for e in episodes[idx].tolist()]
            scores, hidden = caches[s].score(policy, members, observations, idx.tolist(), names, hidden=True)
            logp_all = masked_log_softmax(scores, legal[idx].to(device))
            idx_d = idx.to(device)
            steps["logp"].append(zeros.index_copy(0, idx_d, logp_all.gather(1, actions[idx_d, t, s, None])[:, 0]))
            steps["entropy"].append(zeros.index_copy(0, idx_d, entropy(logp_all)))
            steps["values"].append(zeros.index_copy(0, idx_d, policy.bank.values(hidden, members)))
        for k in out:
            out[k].append(torch.stack(steps[k], 1))  # [m, 2]
    return {k: torch.stack(v, 1) for k, v in out.items()}  # [m, T, 2]
