"""The robust learner's PSRO math, as pure functions of arrays and tensors (Lanctot et al., NeurIPS 2017;
docs/reference.md, "Meta-strategy solvers"): drawing training partners from the meta-strategy σ, the grouped
leave-one-out baseline and reward-to-go credit of its policy gradient, the learner slots' losses from one
rollout, fresh-oracle seeds, regrets and the learner-side mixture over the rows of the meta-game M.
``adhoc.recipes.train_learner`` runs the loop that calls them."""

from __future__ import annotations

import numpy as np
import torch

from adhoc.games.core import own_seat
from adhoc.methods.common import (grouped_leave_one_out_advantage,  # noqa: F401 (defined there, used here and re-exported)
                                  rollout_entropy, rollout_policy_gradient_loss)
from adhoc.solvers import nash_zero_sum


def reward_to_go(rewards: torch.Tensor) -> torch.Tensor:
    """G_t = Σ_{t' ≥ t} r_t' (undiscounted): [..., T] → [..., T]. With ``learner.credit: reward_to_go`` the
    action of step t is credited with G_t only: rewards earned before it cannot depend on it, so dropping
    them keeps the policy gradient unbiased and removes their variance (in a repeated game, round 1's luck
    no longer blurs what the later rounds' actions earned)."""
    return rewards.flip(-1).cumsum(-1).flip(-1)


def draw_training_pairs(meta_strategy: np.ndarray, episodes: int, learner: int,
                        rng: np.random.Generator, partner_ids: torch.Tensor | None = None,
                        partner_seats: list[tuple[int, ...]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One episode per row: partner i ~ σ independently per episode; the first ⌈B/2⌉ rows seat the learner
    in seat 0, the rest in seat 1, except that a partner playing one seat only (``partner_seats[i]``, default
    both) gets the learner in the other seat. Rows are sorted by (seating, partner). Returns (pairs [B, 2]
    with partner i as member ``partner_ids[i]`` (default i), group [B]) with group = seating · P + partner."""
    P = meta_strategy.shape[0]
    partner = rng.choice(P, size=episodes, p=meta_strategy)
    seat = (np.arange(episodes) >= (episodes + 1) // 2).astype(np.int64)  # the learner's seat
    if partner_seats is not None:
        # allowed[i, s]: the learner may take seat s with partner i (the partner plays 1 − s)
        allowed = np.array([[1 in s, 0 in s] for s in partner_seats], dtype=bool)  # [P, 2]
        seat = np.where(allowed[partner, seat], seat, 1 - seat)
    order = np.lexsort((partner, seat))
    partner, seat = torch.as_tensor(partner[order]), torch.as_tensor(seat[order])
    groups = seat * P + partner
    if partner_ids is not None:
        partner = torch.as_tensor(partner_ids).long().cpu()[partner]
    learner_col = torch.full_like(partner, learner)
    pairs = torch.where(seat[:, None] == 0, torch.stack([learner_col, partner], 1), torch.stack([partner, learner_col], 1))
    return pairs, groups


def oracle_seed(learner_seed: int, epoch: int) -> int:
    """The LoRA init seed of the learner trained in ``epoch``: epoch 0 (and every epoch with ``oracle:
    continue``) uses the learner's initial seed; ``oracle: fresh`` derives a new one for every epoch k ≥ 1."""
    key = [int(learner_seed), 1 << 20] + ([int(epoch)] if epoch > 0 else [])
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def learner_mixture(matrix: np.ndarray, solver: str, best: np.ndarray | None = None) -> np.ndarray:
    """The learner-side meta-strategy over the rows of M [snapshots, partners]: the row player's maximin
    mixture x = argmax_{x∈Δ} min_j (xᵀA)_j of the zero-sum game A = M, or A = M − best (= −regret) for
    ``minimax_regret`` (x then minimises the worst-case regret). Every other solver uses A = M: the partner
    meta-strategies of uniform / prioritized / prd / alpharank have no learner-side counterpart here."""
    A = np.asarray(matrix, dtype=np.float64)
    if solver == "minimax_regret":
        A = A - np.asarray(best if best is not None else A.max(0), dtype=np.float64)[None, :]
    return nash_zero_sum(A)[0]


def regret_summary(best: np.ndarray, returns: np.ndarray) -> tuple[float | None, float | None]:
    """(mean, max) of best − returns over the partners with a best return (finite ``best``; scripted
    partners have none); (None, None) when no partner has one."""
    regret = np.asarray(best, dtype=np.float64) - np.asarray(returns, dtype=np.float64)
    regret = regret[np.isfinite(regret)]
    if not len(regret):
        return None, None
    return round(float(regret.mean()), 4), round(float(regret.max()), 4)


def best_returns(partner_sp: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Each partner's best achievable return for ``minimax_regret``: its self-play return, or for a partner
    without one (NaN: a scripted partner) the column maximum of M (the best return any snapshot reached)."""
    sp = np.asarray(partner_sp, dtype=np.float64)
    return np.where(np.isfinite(sp), sp, np.asarray(matrix, dtype=np.float64).max(0))


def mixture_record(matrix: np.ndarray, x: np.ndarray, best: np.ndarray, names: list[str],
                   members: list[str], solver: str) -> dict:
    """Σ_k x_k M[k, j] per partner j, its mean / worst case / regrets (over partners with a finite ``best``),
    and the nonzero weights by member."""
    ret = x @ np.asarray(matrix, dtype=np.float64)
    regret_mean, regret_max = regret_summary(best, ret)
    return {"weights": {m: round(float(w), 6) for m, w in zip(members, x) if w > 1e-9},
            "game": "regret" if solver == "minimax_regret" else "return",
            "return_mean": round(float(ret.mean()), 4), "return_worst": round(float(ret.min()), 4),
            "worst_partner": names[int(ret.argmin())], "regret_mean": regret_mean,
            "regret_max": regret_max, "returns": [round(float(v), 4) for v in ret]}


def matrix_markdown(matrix: np.ndarray, names: list[str], sigma: np.ndarray) -> str:
    """M with σ as its last row, as a markdown table (TensorBoard text ``meta_game/matrix``)."""
    head = "| snapshot | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = "".join(f"| {k} | " + " | ".join(f"{v:.3f}" for v in row) + " |\n" for k, row in enumerate(matrix))
    return head + rows + "| **σ** | " + " | ".join(f"{v:.3f}" for v in sigma) + " |\n"


def learner_rewards(traj, members: list[int]) -> torch.Tensor:
    """The learner's own rewards [B, T] in a rollout of one episode per row, the learner (one of ``members``) in
    one seat of each: the common payoff, or, in a game that pays each seat its own reward, its seat's."""
    if not traj.per_seat:
        return traj.rewards[:, 0]
    learners = torch.as_tensor(members, device=traj.pairs.device)
    seat = (~torch.isin(traj.pairs[:, 0], learners)).long()  # [B]: 0 where the learner sits in seat 0
    return own_seat(traj.seat_rewards[:, 0], seat)  # [B, T, 2] → [B, T]


def slot_losses(traj, slot_rows: list[slice], groups: list[torch.Tensor], members: list[int], n_ids: int,
                credit: str, entropy_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The REINFORCE losses [M] of the learner slots ``members`` from one rollout whose rows ``slot_rows[k]``
    (one episode each, partners drawn by ``draw_training_pairs``) are slot k's, and their entropies [M].

    Each slot's loss is the single learner's loss on its own episodes alone: leave-one-out baselines within
    ITS episodes (``groups[k]``: seating and partner; a partner shared by two slots is baselined separately
    in each), and the per-step mean over the steps ITS member played (``rollout_policy_gradient_loss`` and
    ``rollout_entropy`` normalise per member), minus ``entropy_coef`` × its entropy. A slot's LoRA only
    enters its own log-probabilities, so the gradient of the sum is every slot's own gradient."""
    rewards = learner_rewards(traj, members)  # [B, T]
    if credit == "reward_to_go":  # [B, T]: step t credited with G_t
        values = reward_to_go(rewards * traj.alive[:, 0])
    else:  # [B]: every step credited with the episode's return
        values = traj.returns[:, 0] if not traj.per_seat else (rewards * traj.alive[:, 0]).sum(-1)
    advantages = torch.cat([grouped_leave_one_out_advantage(values[rows], g.to(values.device))
                            for rows, g in zip(slot_rows, groups)])[:, None]
    pg = rollout_policy_gradient_loss(traj, advantages, n_ids)[members]
    ent = rollout_entropy(traj, n_ids)[members]
    return pg - entropy_coef * ent, ent
