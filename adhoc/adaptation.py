"""The best any history-dependent policy can do with a set of partners in a repeated game.

An agent that meets a partner drawn from a known set (prior ``w``) but not told which one can at best play the
Bayes-optimal policy of the K-round game: at every history choose the action that maximises this round's
expected payoff plus the value of what it will know next. For partners whose policies are given (population
members, scripted strategies) that value is computed exactly by backward induction over the game tree:

    V(h) = max_a  Σ_b m_h(b) · u(a, b) / K  +  Σ_b V(h + (a, b)),     m_h(b) = Σ_j w_j · P_j(h) · π_j(b | h)

where P_j(h) is the probability that partner j played its actions of h and π_j(b | h) its next action; the
weights stay unnormalised, so V(root) is the expected return of the best policy, averaged over partners
(``w`` uniform: the mean return over the partner set, what ``adhoc evaluate`` reports as the mean).

The tree has (A · B)^k histories after k rounds (A agent actions, B partner actions), so branches the
partners reach with probability below ``prune`` are cut: the result is then an interval
[``lower``, ``upper``]. ``lower`` is the value of an actual policy (cut branches earn their immediate payoff and
nothing after), ``upper`` adds the largest payoff on every remaining round of every cut branch. Partners that
are close to deterministic (the conventions of trained populations, scripted strategies) give an interval of
width ~0; a uniformly random partner is cut after a round or two (its value is 1/A per round whatever the
agent does, so little is lost, but the bound says how much could be). Where many actions force a wide cut
(CMG-H's 528), ``open_then_copy`` plays the scripted "open with A, then copy" for the partners' own openings:
a real policy too, which ``adhoc evaluate --bound`` takes as the lower end when it earns more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from adhoc.errors import UserError
from adhoc.games.core import GameState


CHUNK = 2048  # partner observations scored per forward pass
MAX_CELLS = 250_000_000  # histories x partners x actions of one round (2 GB of float64): past it the search is refused


@dataclass
class BestResponse:
    lower: float  # the value of the policy found (cut branches count nothing after the cut)
    upper: float  # no history-dependent policy can do better
    per_round: list[float]  # that policy's mean payoff in round 1..K (averaged over partners by the prior)
    per_partner: list[float]  # that policy's return with each partner
    histories: int  # tree nodes expanded

    def to_json(self) -> dict:
        r = lambda v: round(float(v), 4)  # noqa: E731
        return {"lower": r(self.lower), "upper": r(self.upper), "per_round": [r(v) for v in self.per_round],
                "per_partner": [r(v) for v in self.per_partner], "histories": self.histories}


def partner_log_probs(game, policy, members: np.ndarray, histories: np.ndarray, seat: int) -> np.ndarray:
    """log π [n, A_seat] of partner ``members[i]`` (a bank slot or a scripted id) in ``seat`` after the joint
    actions ``histories[i]`` [n, k, 2] (game labels, seat order)."""
    n, k = histories.shape[:2]
    state = GameState(n, t=k, history=[torch.as_tensor(histories[:, r], dtype=torch.long) for r in range(k)])
    names = game.action_names(seat)
    out = np.full((n, len(names)), -np.inf)
    n_lm = policy.bank.n_members
    lm = np.nonzero(members < n_lm)[0]
    if len(lm):
        from adhoc.lm.policy import masked_log_softmax

        observations = game.observe(GameState(len(lm), t=k, history=[h[lm] for h in state.history]), seat)
        table = policy.actions(names)
        for start in range(0, len(lm), CHUNK):  # a bounded batch per forward pass
            rows = lm[start:start + CHUNK]
            with torch.no_grad():
                scores = policy.scores(torch.as_tensor(members[rows]), observations[start:start + CHUNK], table)
            out[rows] = masked_log_softmax(scores.float(), None).cpu().double().numpy()
    for m in np.unique(members[members >= n_lm]):
        rows = np.nonzero(members == m)[0]
        sub = GameState(len(rows), t=k, history=[h[rows] for h in state.history])
        out[rows] = policy.scripted[int(m) - n_lm].log_probs(game, sub, seat).double().numpy()
    return out


def best_history_policy(game, policy, partners, agent_seat: int = 0, prior=None, prune: float = 1e-3,
                        max_rows: int = 20_000) -> BestResponse:
    """The Bayes-optimal history-dependent policy of the agent in ``agent_seat`` of a repeated game (``game.rounds``
    rounds of a stage game with payoff matrix ``game.payoff_matrix()``) with partner member ids ``partners`` [P]
    (drawn by ``prior``, default uniform), by backward induction over the pruned tree. ``max_rows`` bounds the
    partner observations scored per round: past it ``prune`` grows tenfold for that round (the interval widens)."""
    partners = np.asarray(partners, dtype=np.int64)
    P, K, s = len(partners), int(game.rounds), agent_seat
    R = np.asarray(game.payoff_matrix(), dtype=np.float64)
    u = R if s == 0 else R.T  # u[a, b]: the agent's action a, the partner's b
    A, B = u.shape
    w0 = np.full(P, 1.0 / P) if prior is None else np.asarray(prior, dtype=np.float64) / np.sum(prior)
    top = float(u.max())
    # level r: the nodes' histories [n, r, 2] (seat order) and partner weights [n, P] (prior times the
    # probability that the partner played its actions of the history)
    hist, weights = np.zeros((1, 0, 2), dtype=np.int64), w0[None, :]
    levels = []
    for r in range(K):
        n = len(hist)
        lost = np.zeros(n)  # the most the cut branches below each node could still have earned
        cut = prune
        while np.count_nonzero(weights) > max_rows:  # too many partner rows to score: cut harder
            cut *= 10
            small = (weights > 0) & (weights < cut * 1e-2)
            lost += (weights * small).sum(1) * (K - r) * top / K
            weights = np.where(small, 0.0, weights)
        node, j = np.nonzero(weights > 0)
        probs = np.zeros((n, P, B))
        probs[node, j] = np.exp(partner_log_probs(game, policy, partners[j], hist[node], 1 - s))
        joint = weights[:, :, None] * probs  # [n, P, B]: partner j reached this node and plays b
        mass = joint.sum(1)  # [n, B]
        level = {"imm": mass @ u.T / K,  # [n, A]: this round's expected reward of each agent action
                 "imm_partner": np.einsum("njb,ab->naj", joint, u) / K, "lost": lost}  # [n, A, P]
        levels.append(level)
        if r == K - 1:
            break
        left = (K - 1 - r) * top / K
        keep = mass >= cut
        lost += (mass * ~keep).sum(1) * left
        kn, kb = np.nonzero(keep)  # kept (node, partner action); each has a child per agent action
        child = joint[kn, :, kb]  # [kept, P]
        small = child < cut * 1e-2  # partners that can hardly be here any more
        np.add.at(lost, kn, (child * small).sum(1) * left)
        level["kn"] = kn
        if len(kn) * A * P * max(A, B) > MAX_CELLS:
            raise UserError(f"the best history-dependent policy needs {len(kn) * A:,} histories after round {r + 1} "
                            f"({A} actions a round): too many to search; use fewer actions or rounds")
        a = np.tile(np.arange(A), len(kn))  # children in (kept pair, agent action) order
        pb = np.repeat(kb, A)
        joint_action = np.stack([a, pb], 1) if s == 0 else np.stack([pb, a], 1)
        hist = np.concatenate([hist[np.repeat(kn, A)], joint_action[:, None, :]], 1)
        weights = np.repeat(np.where(small, 0.0, child), A, axis=0)
    # backward induction: the agent's best action at every node and the values it implies
    nodes_total = sum(len(level["imm"]) for level in levels)
    lo = hi = None
    choices = []
    for r in range(K - 1, -1, -1):
        level = levels[r]
        q_lo, q_hi = level["imm"].copy(), level["imm"].copy()  # [n, A]
        q_partner = level["imm_partner"].copy()  # [n, A, P]
        if lo is not None:
            kn = level["kn"]
            child_lo, child_hi, child_p = lo.reshape(-1, A), hi.reshape(-1, A), lo_partner.reshape(-1, A, P)
            np.add.at(q_lo, kn, child_lo)
            np.add.at(q_hi, kn, child_hi)
            np.add.at(q_partner, kn, child_p)
        best = q_lo.argmax(1)
        rows = np.arange(len(best))
        lo = q_lo[rows, best]
        hi = q_hi.max(1) + level["lost"]
        lo_partner = q_partner[rows, best]
        choices.append(best)
    choices = choices[::-1]
    # per-round payoffs of the chosen policy: follow its actions down the tree
    on_path = np.ones(1, dtype=bool)
    per_round = []
    for r, level in enumerate(levels):
        per_round.append(float((level["imm"][np.arange(len(on_path)), choices[r]] * on_path).sum()) * K)
        if r < K - 1:
            kn = level["kn"]
            chosen = np.zeros((len(kn), A), dtype=bool)
            chosen[np.arange(len(kn)), choices[r][kn]] = True
            on_path = (chosen & on_path[kn][:, None]).ravel()
    return BestResponse(lower=float(lo[0]), upper=float(hi[0]), per_round=per_round,
                        per_partner=list(lo_partner[0] / w0), histories=nodes_total)


def open_then_copy(game, policy, partners, agent_seat: int = 0, episodes: int = 256,
                   seed: int = 0) -> tuple[str, float, list[float], list[float]] | None:
    """The best scripted "open with A, then play the partner's last action" (``copy-A``) of the agent in
    ``agent_seat`` with partner member ids ``partners`` (uniform), over the openings A the partners themselves
    most likely play in round 1: a policy actually played, so a lower bound on the best, where the search above
    is cut (e.g. CMG-H's 528 actions). Sampled, ``episodes`` per partner. (name, return, per-round payoffs,
    per-partner returns), or None for a game without copy strategies (the seats' actions differ)."""
    from adhoc.rollout import episode_returns
    from adhoc.scripted import ScriptedPopulation, scripted_ids

    partners = np.asarray(partners, dtype=np.int64)
    first = partner_log_probs(game, policy, partners, np.zeros((len(partners), 0, 2), dtype=np.int64), 1 - agent_seat)
    names = game.action_names(agent_seat)
    strategy = getattr(game, "scripted_strategy", lambda name: None)
    copies = [strategy(f"copy-{names[a]}") for a in sorted(set(first.argmax(1).tolist()))]
    if not copies or any(c is None for c in copies):
        return None
    ids = scripted_ids(policy, ScriptedPopulation("scripted:repeated", [c.name for c in copies], copies))
    try:
        me, them = ids.repeat_interleave(len(partners)), torch.as_tensor(partners).repeat(len(copies))
        pairs = torch.stack([me, them] if agent_seat == 0 else [them, me], 1)
        steps = episode_returns(game, policy, pairs, episodes, np.random.default_rng(seed), per_step=True)
    finally:
        del policy.scripted[-len(copies):]
    payoffs = steps.double().mean(1).numpy().reshape(len(copies), len(partners), -1) * game.rounds  # [C, P, K]
    returns = payoffs.mean(2)  # [C, P]
    best = int(returns.mean(1).argmax())
    return copies[best].name, float(returns[best].mean()), payoffs[best].mean(0).tolist(), returns[best].tolist()
