"""Batched episodes for many (seat-0 member, seat-1 member) pairs at once.

One call plays E episodes for each of P pairs. At every step, each seat's episodes are grouped into distinct
ROWS (member, observation, legal actions); all rows of all members are scored in one batched pass of the
AdapterBank and the exact policy over the legal actions is computed once per row. For a one-shot game that
is 2·P distinct rows whatever E is.

Two modes (``mode``, config key ``train.rollout``), with the same law:

- ``per_row`` (default): everything after the LM stays per row too. All episodes of a row are sampled at
  once (inverse-CDF sampling of i.i.d. uniforms against the row's cumulative distribution: each episode's
  action is an independent draw from its row's policy), and the trajectories keep the rows (``SeatRows``:
  log π [U, A] per row, each episode's row and action). The policy-gradient loss and the entropy bonus are
  computed from per-row sums (``Trajectories.logp_dot``/``entropy_dot``): Σ_e w_e log π(a_e | row_e) =
  Σ_{u,a} (Σ_{e in u, a_e = a} w_e) log π_u(a), the same sum, so the same loss and gradients, without any
  [episodes, actions] tensor. The per-episode views ``logp``, ``entropy`` and ``logp_all`` are gathered
  from the rows on first use, for the methods that need them (TrajeDi's trajectory log-probabilities).
- ``per_episode``: the earlier path, kept for comparison (``benchmarks/bench_train.py``): rows are scored once,
  then every episode gets its own copy of its row's distribution, is sampled on its own (``multinomial``
  over [episodes, actions]) and keeps per-episode log-probabilities for the loss.

Multi-step games: a seat with a single legal action in a row (the other seat's turn) is not scored; each
seat's encoded observations are kept (the key/value cache) and the next step encodes only what was
appended to each episode's observation (``prefix_reuse``, ``Policy.scores_reusing``), so a step costs the
new tokens, not the whole history. Episodes whose observations coincide share a row at every step (the
first step of every game); once they diverge each has its own. Member ids beyond the AdapterBank are
scripted strategies (``policy.scripted``, see ``adhoc.scripted``); their rows are grouped by identical
distributions.

Shapes (P pairs, E episodes per pair, T = game horizon, A = max actions over seats):
    actions [P, E, T, 2]   logp [P, E, T, 2]   entropy [P, E, T, 2]   logp_all [P, E, T, 2, A]
    rewards [P, E, T]      alive [P, E, T] (the step was played)      returns [P, E]
    seat_rewards [P, E, T, 2]                                         seat_returns [P, E, 2]
Zero-sum and general-sum games (``payoff_kind``) pay each seat its own reward: ``seat_rewards`` holds both, and
``rewards``/``returns`` are then seat 0's (the row member's, as in a cross-play matrix). For a common-payoff
game ``seat_rewards`` is ``rewards`` in both columns.
``logp``/``entropy``/``logp_all`` carry gradients when ``grad=True`` (on-policy policy gradient).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from adhoc.games.core import SEATS, Game, payoff_kind
from adhoc.lm.policy import Policy, entropy, masked_log_softmax
from adhoc.reductions import member_sum


@dataclass
class SeatRows:
    """One (step, seat) of a per-row rollout: log π [U, A_s] of its U distinct rows (with gradient when the
    rollout has one), each row's member [U], and each of the n episodes' row ``row_of`` [n] and sampled action
    ``choice`` [n] (in the seat's own labels: what the policy chose, before any Other-Play relabelling)."""

    logp: torch.Tensor
    member: torch.Tensor
    row_of: torch.Tensor
    choice: torch.Tensor

    def episode_logp(self) -> torch.Tensor:
        """log π of each episode's action [n] (a gather from the rows)."""
        return self.logp.reshape(-1)[self.row_of * self.logp.shape[1] + self.choice]


class Trajectories:
    """A batch of episodes. ``rows`` (per-row rollouts): ``rows[t][s]`` is the ``SeatRows`` of step t, seat s;
    the per-episode tensors ``logp``, ``entropy`` and ``logp_all`` are then gathered from the rows on first
    use. Per-episode rollouts give those tensors directly (``rows`` is None)."""

    def __init__(self, pairs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, alive: torch.Tensor,
                 logp: torch.Tensor | None = None, entropy: torch.Tensor | None = None,
                 logp_all: torch.Tensor | None = None, observations: list[list[list[str]]] | None = None,
                 rows: list[list[SeatRows]] | None = None, seat_rewards: torch.Tensor | None = None) -> None:
        if rows is None and (logp is None or entropy is None or logp_all is None):
            raise ValueError("Trajectories need either rows or logp, entropy and logp_all")
        self.pairs, self.actions, self.rewards, self.alive = pairs, actions, rewards, alive  # [P, 2], [P, E, T, 2], [P, E, T]
        self._seat_rewards = seat_rewards  # [P, E, T, 2] of a zero-sum or general-sum game; None: common payoff
        # observations[t][s]: the E·P texts seat s saw at step t (pair-major), so methods can re-score them
        # with other members (population-level objectives such as MEP's mean policy)
        self.observations = observations if observations is not None else []
        self.rows = rows
        self._logp, self._entropy, self._logp_all = logp, entropy, logp_all
        # a sharded rollout (data-parallel training) holds a block of the iteration's pairs: their indices among
        # all pairs, and what the training loop gathers from every worker before the loss (None: not sharded)
        self.pair_index = torch.arange(pairs.shape[0], device=pairs.device)
        self.all_returns: torch.Tensor | None = None  # [all pairs, E]
        self.total_played: torch.Tensor | None = None  # [N] every worker's played steps per member

    @property
    def returns(self) -> torch.Tensor:
        return (self.rewards * self.alive).sum(-1)  # [P, E]

    @property
    def per_seat(self) -> bool:
        """Whether the seats have rewards of their own (a zero-sum or general-sum game)."""
        return self._seat_rewards is not None

    @property
    def seat_rewards(self) -> torch.Tensor:
        """Each seat's reward [P, E, T, 2] (a common payoff in both columns)."""
        return self.rewards[..., None].expand(*self.rewards.shape, 2) if self._seat_rewards is None \
            else self._seat_rewards

    @property
    def seat_returns(self) -> torch.Tensor:
        """Each seat's return [P, E, 2]."""
        return (self.seat_rewards * self.alive[..., None]).sum(2)

    def _per_episode(self, value) -> torch.Tensor:
        """Stack ``value(SeatRows)`` [n, ...] over seats and steps into [P, E, T, 2, ...]."""
        P, E, T = self.rewards.shape
        steps = [torch.stack([value(r) for r in seats], 1) for seats in self.rows]  # [n, 2, ...] each
        out = torch.stack(steps, 1)  # [n, T, 2, ...]
        return out.view(P, E, T, *out.shape[2:])

    @property
    def logp(self) -> torch.Tensor:
        """log π of the sampled action [P, E, T, 2] (own labels)."""
        if self._logp is None:
            self._logp = self._per_episode(SeatRows.episode_logp)
        return self._logp

    @property
    def entropy(self) -> torch.Tensor:
        """Entropy of the policy at each step [P, E, T, 2]."""
        if self._entropy is None:
            self._entropy = self._per_episode(lambda r: entropy(r.logp)[r.row_of])
        return self._entropy

    @property
    def logp_all(self) -> torch.Tensor:
        """log π over every action [P, E, T, 2, A] (-inf: illegal; padded to the larger seat's A)."""
        if self._logp_all is None:
            A = max(r.logp.shape[1] for seats in self.rows for r in seats)
            self._logp_all = self._per_episode(lambda r: torch.nn.functional.pad(
                r.logp, (0, A - r.logp.shape[1]), value=float("-inf"))[r.row_of])
        return self._logp_all

    def logp_dot(self, weights: torch.Tensor, n_members: int) -> torch.Tensor:
        """Σ over entries (p, e, t, s) of weights · log π(a | o), per member in that seat: [N].

        weights [P, E, T, 2], or [P, E, T] for both seats alike, are constants (detached). Per row this is
        Σ_{u, a} W[u, a] log π_u(a) with W[u, a] the summed weights of the row's episodes that took a: the same
        sum as per episode."""
        def per_row(r: SeatRows, w: torch.Tensor) -> torch.Tensor:
            U, A = r.logp.shape
            summed = torch.bincount(r.row_of * A + r.choice, weights=w, minlength=U * A).view(U, A)
            return (summed * r.logp.masked_fill(summed == 0, 0.0)).sum(-1)  # -inf never meets a weight

        return self._row_sum(weights, n_members, per_row, lambda: self.logp)

    def entropy_dot(self, weights: torch.Tensor, n_members: int) -> torch.Tensor:
        """Σ over entries of weights · H(π(· | o)), per member: [N]; per row, the row's summed weights × H."""
        def per_row(r: SeatRows, w: torch.Tensor) -> torch.Tensor:
            return torch.bincount(r.row_of, weights=w, minlength=r.logp.shape[0]) * entropy(r.logp)

        return self._row_sum(weights, n_members, per_row, lambda: self.entropy)

    def _row_sum(self, weights: torch.Tensor, n_members: int, per_row, dense) -> torch.Tensor:
        """Σ over steps and seats of ``per_row(rows, episode weights [n])`` [U], added up per row member: [N];
        without rows, Σ weights · ``dense()`` per member."""
        weights = weights.detach()
        if self.rows is None:
            seats = weights if weights.dim() == 4 else weights[..., None]  # [P, E, T, 2 or 1]
            return member_sum(seats * dense(), self.pairs, n_members)
        out = torch.zeros(n_members, dtype=weights.dtype, device=weights.device)
        for t, seats in enumerate(self.rows):
            for s, r in enumerate(seats):
                w = weights[:, :, t, s] if weights.dim() == 4 else weights[:, :, t]
                out = out.index_add(0, r.member, per_row(r, w.reshape(-1).to(r.logp.dtype)))
        return out

    def select(self, index: torch.Tensor) -> "Trajectories":
        """The trajectories of the pairs ``index`` [K] only (rows are shared; their episodes are selected). Of a
        sharded rollout, ``index`` counts this worker's pairs; the selection's ``pair_index`` says which they are."""
        E = self.rewards.shape[1]
        device = self.pairs.device
        index = index.to(device)
        episodes = (index[:, None] * E + torch.arange(E, device=device)[None]).reshape(-1)
        ep_list = episodes.tolist()
        observations = [[[seat[r] for r in ep_list] for seat in step] for step in self.observations]
        dense = {}
        if self.rows is None:
            dense = {k: getattr(self, k)[index] for k in ("logp", "entropy", "logp_all")}
        rows = None if self.rows is None else [
            [SeatRows(r.logp, r.member, r.row_of[episodes], r.choice[episodes]) for r in seats] for seats in self.rows]
        seat = None if self._seat_rewards is None else self._seat_rewards[index]
        out = Trajectories(self.pairs[index], self.actions[index], self.rewards[index], self.alive[index],
                           observations=observations, rows=rows, seat_rewards=seat, **dense)
        out.pair_index = self.pair_index[index]  # a selection counts its own played steps (total_played None)
        return out

    @property
    def population_returns(self) -> torch.Tensor:
        """Returns [all pairs, E] of the iteration's every pair: this rollout's own, or, sharded, every worker's."""
        return self.returns if self.all_returns is None else self.all_returns


def _distinct_rows(members: torch.Tensor, observations: list[str]
                   ) -> tuple[torch.Tensor, list[str], list[int], list[int]]:
    """The distinct (member, observation) rows: (members [U], observations [U], ``row_of`` [n]: each row's
    distinct row, ``first`` [U]: the first row showing each distinct row)."""
    index: dict[tuple[int, str], int] = {}
    row_of, first = [], []
    for i, key in enumerate(zip(members.tolist(), observations)):
        u = index.setdefault(key, len(index))
        row_of.append(u)
        if u == len(first):
            first.append(i)
    return torch.tensor([m for m, _ in index], dtype=torch.long), [o for _, o in index], row_of, first


def _score_rows(policy: Policy, members: torch.Tensor, observations: list[str], names: list[str]) -> torch.Tensor:
    """Action scores [len(observations), A], computing each distinct (member, observation) once."""
    uniq_members, uniq_obs, row_of, _ = _distinct_rows(members, observations)
    scores = policy.scores(uniq_members, uniq_obs, policy.actions(names))  # [U, A]
    return scores[torch.tensor(row_of, device=scores.device)]


class _PrefixCache:
    """One seat's encoded prompts from its last scored step, and which encoded row each episode last used
    (``row`` [n], -1: none), so the next step encodes only each observation's new suffix."""

    def __init__(self, n: int, game=None) -> None:
        self.encoded = None
        self.row = torch.full((n,), -1, dtype=torch.long)
        # a game whose observations keep a fixed start (Overcooked's layout) but are not append-only declares
        # ``static_prefix``: then the shared start is reused too; other games reuse only whole earlier prompts
        self.partial = bool(getattr(game, "static_prefix", False))

    def score(self, policy: Policy, members: torch.Tensor, observations: list[str], episodes: list[int],
              names: list[str], hidden: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Scores [len(episodes), A] of per-episode rows (``episodes``: each row's episode); ``hidden``: and
        their last hidden states [len(episodes), H] (``Policy.scores``)."""
        uniq_members, uniq_obs, row_of, first = _distinct_rows(members, observations)
        episodes_t = torch.tensor(episodes, dtype=torch.long)
        out = self.score_rows(policy, uniq_members, uniq_obs, episodes_t[first], episodes_t,
                              torch.tensor(row_of, dtype=torch.long), names, hidden)
        if hidden:
            return tuple(x[torch.tensor(row_of, device=x.device)] for x in out)
        return out[torch.tensor(row_of, device=out.device)]

    def score_rows(self, policy: Policy, members: torch.Tensor, observations: list[str], first: torch.Tensor,
                   episodes: torch.Tensor, row_of: torch.Tensor, names: list[str], hidden: bool = False):
        """Scores [U, A] of U distinct rows; ``first`` [U]: an episode of each row (its encoding at the last
        step is the row's prefix); ``episodes`` [k] the episodes scored now and ``row_of`` [k] their rows;
        ``hidden``: (scores, last hidden states [U, H])."""
        previous = self.row[first].tolist()  # each distinct row's encoding at the last step
        scores, self.encoded, encoded_row = policy.scores_reusing(
            members, observations, policy.actions(names), self.encoded, previous, hidden, partial=self.partial)
        self.row = torch.full_like(self.row, -1)  # rows of older encodings are gone
        self.row[episodes] = encoded_row.long()[row_of]
        return scores


def _seat_log_probs(game: Game, policy: Policy, state, seat: int, members: torch.Tensor, observations: list[str],
                    legal: torch.Tensor, cache: _PrefixCache | None) -> torch.Tensor:
    """log π [n, A_seat] over the seat's legal actions, in the seat's own labels.

    Rows with a single legal action are not scored (log π = 0 there). LoRA members (id < bank size) are
    scored by the LM in one batched pass; ids beyond the bank are scripted strategies
    (``policy.scripted[id - bank size]``), which read the game state; their choice is taken as the seat's own
    label, so under Other-Play a scripted partner is relabelled exactly like a member."""
    n, A = legal.shape
    device = policy.base.device
    legal = legal.to(device)
    out = torch.where(legal, 0.0, float("-inf"))  # forced rows: the one legal action has log π = 0
    choose = legal.sum(1) > 1
    n_lm = policy.bank.n_members
    is_lm = members.to(device) < n_lm
    lm_rows = torch.nonzero(choose & is_lm)[:, 0]
    scripted_rows = torch.nonzero(choose & ~is_lm)[:, 0]
    names = game.action_names(seat)
    if len(lm_rows):
        idx = lm_rows.tolist()
        rows_members = members[lm_rows.cpu()]
        rows_obs = [observations[i] for i in idx]
        if cache is not None:
            scores = cache.score(policy, rows_members, rows_obs, idx, names)
        else:
            scores = _score_rows(policy, rows_members, rows_obs, names)
        out = out.index_copy(0, lm_rows, masked_log_softmax(scores, legal[lm_rows]))
    if len(scripted_rows):
        scripted = torch.full((n, A), float("-inf"), device=device)
        for m in members[scripted_rows.cpu()].unique().tolist():
            strategy = _scripted_strategy(policy, m, seat)
            rows = torch.nonzero(members.to(device) == m)[:, 0]
            scripted[rows] = strategy.log_probs(game, state, seat).to(device)[rows]  # [n, A]
        out = out.index_copy(0, scripted_rows, masked_log_softmax(scripted[scripted_rows], legal[scripted_rows]))
    return out


def _text_ids(texts: list[str]) -> tuple[list[str], torch.Tensor]:
    """The distinct texts (first seen first) and each text's index among them [n]."""
    n = len(texts)
    if n and texts.count(texts[0]) == n:  # one-shot games: one text for every episode
        return [texts[0]], torch.zeros(n, dtype=torch.long)
    distinct = list(dict.fromkeys(texts))
    where = {t: i for i, t in enumerate(distinct)}
    return distinct, torch.from_numpy(np.fromiter(map(where.__getitem__, texts), dtype=np.int64, count=n))


def shard_bounds(n_pairs: int, rank: int, world: int) -> tuple[int, int]:
    """The pairs [lo, hi) worker ``rank`` of ``world`` plays in a sharded rollout: contiguous blocks whose sizes
    differ by at most one (the first ``n_pairs % world`` workers take one more)."""
    size, extra = divmod(n_pairs, world)
    lo = rank * size + min(rank, extra)
    return lo, lo + size + (rank < extra)


def slice_state(state, lo: int, hi: int):
    """Episodes [lo, hi) of a freshly reset ``GameState``: every per-episode entry of ``extra`` (a tensor, list
    or tuple whose first axis has one entry per episode, nested in tuples) cut to that range."""
    from adhoc.games.core import GameState

    n = state.n_episodes
    if state.t != 0 or state.history:
        raise ValueError("slice_state cuts a state fresh from game.reset")

    def cut(value):
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
            return value[lo:hi]
        if isinstance(value, list) and len(value) == n:
            return value[lo:hi]
        if isinstance(value, tuple):
            return tuple(cut(v) for v in value)
        return value

    return GameState(hi - lo, done=state.done[lo:hi], extra={k: cut(v) for k, v in state.extra.items()})


def sample_rows(probs: torch.Tensor, row_of: torch.Tensor, generator: torch.Generator, repeat: int = 1,
                draws: tuple[int, int] | None = None) -> torch.Tensor:
    """Independent draws from each episode's row: probs [U, A] (each row sums to 1 over its support),
    row_of [m] → actions [m · repeat] on the CPU; ``repeat`` > 1: entry i of ``row_of`` stands for ``repeat``
    consecutive episodes of row ``row_of[i]`` (the E episodes of a pair, at a step where the pair's episodes
    share a row).

    Inverse-CDF sampling: each episode draws u ~ U[0, 1) and takes the first action whose cumulative
    probability in its row exceeds u, which is exactly a draw from that row (the law of ``multinomial``).
    With ``repeat`` a block's draws are searched in its row's CDF at once; without, the rows' CDFs are laid end
    to end (row u's shifted by u), so one sorted search serves every episode without an [episodes, actions]
    tensor. Zero-probability actions are never drawn.

    ``draws`` = (offset, total) (sharded rollouts): ``total`` uniforms are drawn, as the whole rollout would,
    and these episodes use the ``offset``-th on (a CPU generator fills a tensor in order, so a [P, E] draw is
    the same sequence as a flat one): every worker's episodes get exactly the draws of the unsharded run."""

    def uniforms(count: int) -> torch.Tensor:
        if draws is None:
            return torch.rand(count, generator=generator, dtype=torch.float64)
        offset, total = draws
        return torch.rand(total, generator=generator, dtype=torch.float64)[offset:offset + count]

    probs = probs.detach().cpu().double()
    U, A = probs.shape
    row_of = row_of.cpu()
    last = A - 1 - (probs > 0).flip(1).long().argmax(1)  # each row's last action with positive probability
    cdf = probs.cumsum(1)
    cdf = torch.where(torch.arange(A)[None] >= last[:, None], 1.0, cdf / cdf[:, -1:])  # nondecreasing, ends at 1
    if repeat > 1:  # u < 1 = the CDF from the last positive action on: never beyond it
        u = uniforms(len(row_of) * repeat).view(len(row_of), repeat)
        return torch.searchsorted(cdf[row_of], u, right=True).reshape(-1)
    key = row_of.double() + uniforms(len(row_of))
    action = torch.searchsorted((cdf + torch.arange(U, dtype=torch.float64)[:, None]).reshape(-1), key, right=True)
    return torch.minimum(action - row_of * A, last[row_of])  # u + rand can round up to u + 1 at large u


def _seat_rows(game: Game, policy: Policy, state, seat: int, pair_members: torch.Tensor, episodes: int,
               observations: list[str], legal: torch.Tensor, cache: _PrefixCache | None,
               generator: torch.Generator, draws: tuple[int, int] | None = None) -> SeatRows:
    """The distinct rows of one seat at one step, their exact log π [U, A_seat] and one sampled action per
    episode (``per_row`` mode; the per-episode counterpart is ``_seat_log_probs``). ``pair_members`` [P]: the
    seat's member in each pair, whose ``episodes`` episodes are consecutive (pair-major).

    A row is (member, observation, legal mask) for LoRA members: rows with a single legal action are not
    scored (log π = 0 there); the others are scored in one batched pass. Where every episode sees the same
    observation and legal mask (every one-shot game, the first step of most games) the rows are the distinct
    members and each pair's episodes are sampled as a block. Scripted members (ids beyond the bank) read the
    game state, so each episode gets its strategy's distribution, and episodes with the same member and
    distribution share a row."""
    n, A = legal.shape
    device = policy.base.device
    n_lm = policy.bank.n_members
    legal = legal.cpu()
    pair_members = pair_members.cpu()
    if bool(legal.all()):
        patterns, pattern = legal[:1], torch.zeros(n, dtype=torch.long)
    else:
        patterns, pattern = torch.unique(legal.to(torch.uint8), dim=0, return_inverse=True)
        patterns = patterns.bool()
    row_of = torch.empty(n, dtype=torch.long)
    tables, row_members = [], []
    all_lm = bool((pair_members < n_lm).all())
    members = None if all_lm else pair_members.repeat_interleave(episodes)
    lm_episodes = torch.arange(n) if all_lm else torch.nonzero(members < n_lm)[:, 0]
    texts, text = _text_ids(observations) if len(lm_episodes) else ([], None)
    pair_rows = None  # [P]: each pair's row, when all its episodes share one
    if len(lm_episodes):
        n_pat = len(patterns)
        if all_lm and len(texts) == 1 and n_pat == 1:
            u_member, pair_rows = torch.unique(pair_members, return_inverse=True)
            inverse = pair_rows.repeat_interleave(episodes)
            u_pattern = u_text = torch.zeros(len(u_member), dtype=torch.long)
        else:
            m = pair_members.repeat_interleave(episodes) if all_lm else members[lm_episodes]
            key = (text[lm_episodes] * n_pat + pattern[lm_episodes]) * n_lm + m
            uniq, inverse = torch.unique(key, return_inverse=True)
            u_member, u_pattern, u_text = uniq % n_lm, (uniq // n_lm) % n_pat, uniq // (n_lm * n_pat)
        u_legal = patterns[u_pattern]  # [U, A]
        logp = torch.where(u_legal, 0.0, float("-inf")).to(device)  # forced rows: the one legal action has log π = 0
        choose = u_legal.sum(1) > 1
        chosen = torch.nonzero(choose)[:, 0]
        if len(chosen):
            names = game.action_names(seat)
            obs = [texts[i] for i in u_text[chosen].tolist()]
            if cache is not None:
                index_in_chosen = torch.cumsum(choose.long(), 0) - 1
                scored = choose[inverse]
                first = torch.full((len(u_member),), n, dtype=torch.long).scatter_reduce(
                    0, inverse, lm_episodes, "amin", include_self=True)
                scores = cache.score_rows(policy, u_member[chosen], obs, first[chosen], lm_episodes[scored],
                                          index_in_chosen[inverse[scored]], names)
            else:
                scores = policy.scores(u_member[chosen], obs, policy.actions(names))
            chosen_d = chosen.to(device)
            logp = logp.index_copy(0, chosen_d, masked_log_softmax(scores, u_legal.to(device)[chosen_d]))
        row_of[lm_episodes] = inverse
        tables.append(logp)
        row_members.append(u_member)
    if len(lm_episodes) < n:
        scripted_episodes = torch.nonzero(members >= n_lm)[:, 0]
        sc_legal = legal[scripted_episodes]
        sc_members = members[scripted_episodes]
        logp = torch.where(sc_legal, 0.0, float("-inf"))
        choosing = sc_legal.sum(1) > 1
        for m in sc_members.unique().tolist():
            strategy = _scripted_strategy(policy, m, seat)
            take = torch.nonzero((sc_members == m) & choosing)[:, 0]
            if len(take):
                full = strategy.log_probs(game, state, seat).detach().cpu().float()  # [n, A]
                logp[take] = masked_log_softmax(full[scripted_episodes[take]], sc_legal[take])
        # episodes with the same member and the same distribution share a row
        uniq, inverse = torch.unique(torch.cat([sc_members[:, None].to(logp.dtype), logp], 1), dim=0, return_inverse=True)
        row_of[scripted_episodes] = inverse + sum(len(t) for t in tables)
        tables.append(uniq[:, 1:].to(device))
        row_members.append(uniq[:, 0].long())
    table = torch.cat(tables) if len(tables) > 1 else tables[0]
    probs = table.detach().exp()
    choice = sample_rows(probs, pair_rows, generator, episodes, draws) if pair_rows is not None and episodes > 1 \
        else sample_rows(probs, row_of, generator, draws=draws)
    return SeatRows(logp=table, member=torch.cat(row_members).to(device), row_of=row_of.to(device),
                    choice=choice.to(device))


def _scripted_strategy(policy: Policy, member: int, seat: int):
    """The scripted strategy of member id ``member`` (beyond the bank), checked to play ``seat``."""
    n_lm = policy.bank.n_members
    if member - n_lm >= len(policy.scripted):
        raise IndexError(f"member id {member} is beyond the bank ({n_lm}) and the scripted strategies "
                         f"({len(policy.scripted)})")
    strategy = policy.scripted[member - n_lm]
    if seat not in strategy.seats:
        from adhoc.errors import UserError

        raise UserError(f"scripted strategy '{strategy.name}' plays seat {list(strategy.seats)}, not seat {seat}")
    return strategy


def rollout(game: Game, policy: Policy, pairs: torch.Tensor, episodes: int, rng: np.random.Generator,
            grad: bool = True, keep_distributions: bool = True,
            partner_maps: torch.Tensor | None = None, prefix_reuse: bool = True,
            seat0_maps: torch.Tensor | None = None, mode: str = "per_row",
            shard: tuple[int, int] | None = None) -> Trajectories:
    """Play ``episodes`` episodes for each row of ``pairs`` [P, 2]. ``mode``: ``per_row`` (default) or
    ``per_episode`` (see the module docstring; the same law, different random draws).
    ``keep_distributions=False`` (per_episode mode) leaves ``logp_all`` empty (evaluation needs only returns;
    [P, E, T, 2, A] can be large); per-row trajectories gather it from their rows when it is read.

    ``partner_maps`` [P·E, A_1] (Other-Play): seat 1 acts in its own labels and the game sees the relabelled
    action ``partner_maps[e, a]``; ``actions`` records what the game saw, ``logp`` the policy's own choice.
    Multi-step games that name actions in their observations relabel seat 1's observations too
    (``game.relabel_observation``), and seat 1's legal mask is read in its own labels. ``seat0_maps``
    [P·E, A_0], with ``partner_maps``: the same symmetries' seat-0 components, for games whose symmetries also
    move what seat 1 sees of the world (the warehouse's grid reflections); they reach only
    ``game.relabel_observation(..., seat0_maps=...)``: seat 0 is not relabelled. Scripted strategies read the
    game state, not the observation: where one sits in seat 1 its seat-0 component is the identity (only its own
    labels are relabelled, through ``partner_maps``).

    Member ids beyond the AdapterBank are scripted strategies (``policy.scripted``, e.g. human-proxy
    teachers). ``prefix_reuse`` (multi-step games): each seat's observation is encoded once and later steps
    encode only what was appended (``Policy.scores_reusing``); False re-encodes every observation whole.

    ``shard`` = (rank, world), per-row mode only (data-parallel training): play only this worker's block of the
    pairs (``shard_bounds``) with exactly the random draws the whole rollout gives those pairs (the game is reset
    for every episode and cut, ``partner_maps``/``seat0_maps`` are given for every episode and cut, each step's
    uniforms are drawn for every episode): the workers' trajectories together are the unsharded rollout's.
    The result holds this worker's pairs only."""
    E = episodes
    device = policy.base.device
    gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**63 - 1)))
    A = max(len(game.action_names(s)) for s in SEATS)
    state = game.reset(pairs.shape[0] * E, rng)
    draws = None
    if shard is not None:
        if mode != "per_row":
            raise ValueError("a sharded rollout needs mode='per_row'")
        lo, hi = shard_bounds(pairs.shape[0], *shard)
        draws = (lo * E, pairs.shape[0] * E)
        state = slice_state(state, lo * E, hi * E)
        pairs = pairs[lo:hi]
        partner_maps = None if partner_maps is None else torch.as_tensor(partner_maps)[lo * E:hi * E]
        seat0_maps = None if seat0_maps is None else torch.as_tensor(seat0_maps)[lo * E:hi * E]
    P = pairs.shape[0]
    n = P * E
    seat_members = [pairs[:, s].cpu().repeat_interleave(E) for s in SEATS]  # [n] each, pair-major
    steps = {k: [] for k in ("actions", "logp", "entropy", "logp_all", "rewards", "alive")}
    observations: list[list[list[str]]] = []
    caches = [_PrefixCache(n, game) if prefix_reuse and game.horizon > 1 else None for _ in SEATS]
    maps = None if partner_maps is None else torch.as_tensor(partner_maps).long().cpu()
    relabel = maps is not None and hasattr(game, "relabel_observation")
    world = {}
    if seat0_maps is not None:
        if maps is None:
            raise ValueError("seat0_maps needs partner_maps")
        seat0_maps = torch.as_tensor(seat0_maps).long().cpu().clone()
        # a scripted seat 1 reads the untransformed game state, so only its own labels are relabelled
        seat0_maps[seat_members[1] >= policy.bank.n_members] = torch.arange(seat0_maps.shape[1])
        world = {"seat0_maps": seat0_maps}
    if mode not in ("per_row", "per_episode"):
        raise ValueError(f"rollout mode must be one of per_row, per_episode (got {mode!r})")
    per_row = mode == "per_row"
    rows: list[list[SeatRows]] = []
    with torch.set_grad_enabled(grad):
        for _ in range(game.horizon):
            alive = ~state.done
            if not bool(alive.any()):
                break
            joint, logp_seats, ent_seats, all_seats, seat_rows = [], [], [], [], []
            seen = [game.observe(state, s) for s in SEATS]
            observations.append(seen)
            for s in SEATS:
                names = game.action_names(s)
                legal = game.legal_mask(state, s)
                if s == 1 and maps is not None:
                    legal = legal.gather(1, maps)  # legal in the seat's own labels
                obs = game.relabel_observation(state, s, maps, **world) if s == 1 and relabel else seen[s]
                if per_row:
                    r = _seat_rows(game, policy, state, s, pairs[:, s], E, obs, legal, caches[s], gen, draws)
                    seat_rows.append(r)
                    joint.append(r.choice.cpu())
                    continue
                logp_all = _seat_log_probs(game, policy, state, s, seat_members[s], obs, legal, caches[s])  # [n, A_s]
                a = torch.multinomial(logp_all.detach().exp().cpu(), 1, generator=gen)[:, 0]
                joint.append(a)
                logp_seats.append(logp_all.gather(1, a.to(device)[:, None])[:, 0])
                ent_seats.append(entropy(logp_all))
                if keep_distributions:
                    all_seats.append(torch.nn.functional.pad(logp_all, (0, A - len(names)), value=float("-inf")))
            if maps is not None:
                joint[1] = maps[torch.arange(n), joint[1]]
            actions = torch.stack(joint, 1)  # [n, 2]
            state, reward, _ = game.step(state, actions)
            steps["actions"].append(actions)
            reward = reward.float()
            steps["rewards"].append(reward * (alive if reward.dim() == 1 else alive[:, None]))  # [n] or [n, 2]
            steps["alive"].append(alive)
            if per_row:
                rows.append(seat_rows)
                continue
            steps["logp"].append(torch.stack(logp_seats, 1))
            steps["entropy"].append(torch.stack(ent_seats, 1))
            steps["logp_all"].append(torch.stack(all_seats, 1) if keep_distributions else torch.zeros(n, 2, 0))
    if not steps["actions"] and per_row:  # an empty shard: no episode, no step
        out = {"actions": torch.zeros(n, 0, 2, dtype=torch.long), "alive": torch.zeros(n, 0, dtype=torch.bool),
               "rewards": torch.zeros(n, 0) if payoff_kind(game) == "common" else torch.zeros(n, 0, 2)}
    else:
        out = {k: torch.stack([x.to(device) for x in v], 1) for k, v in steps.items() if v}  # [n, T, ...]
    out = {k: v.view(P, E, *v.shape[1:]) for k, v in out.items()}
    if out["rewards"].dim() == 4:  # [P, E, T, 2]: a reward per seat; ``rewards`` is seat 0's
        out["seat_rewards"] = out["rewards"]
        out["rewards"] = out["rewards"][..., 0]
    traj = Trajectories(pairs=pairs.to(device), observations=observations, rows=rows if per_row else None, **out)
    if shard is not None:
        traj.pair_index = traj.pair_index + lo
    return traj


@torch.no_grad()
def episode_returns(game: Game, policy: Policy, pairs: torch.Tensor, episodes: int, rng: np.random.Generator,
                    max_episodes_per_call: int = 1 << 18, per_step: bool = False, mode: str = "per_row",
                    shard: tuple[int, int] | None = None, seats: bool = False) -> torch.Tensor:
    """Returns of ``episodes`` sampled episodes for every pair: [P, E], in chunks of pairs; ``per_step``: the
    rewards of every step instead, [P, E, T] (0 after an episode ends), whose sum over T is the return;
    ``seats``: each seat's, [P, E, 2] (or [P, E, T, 2]); otherwise, of a zero-sum or general-sum game, seat 0's.
    Per-step rewards always span the game's horizon (games that end early, such as Hanabi, pad with 0).
    ``mode``: the rollout's (``per_row`` or ``per_episode``). ``shard`` = (rank, world): each chunk's rollout is
    sharded (see ``rollout``) and the pairs other workers play are 0 here, so the workers' results add up to
    the unsharded one."""
    chunk = max(1, max_episodes_per_call // episodes)
    out = []
    for i in range(0, pairs.shape[0], chunk):
        traj = rollout(game, policy, pairs[i:i + chunk], episodes, rng, grad=False, keep_distributions=False,
                       mode=mode, shard=shard)
        if seats:
            part = (traj.seat_rewards * traj.alive[..., None]).cpu() if per_step else traj.seat_returns.cpu()
        else:
            part = (traj.rewards * traj.alive).cpu() if per_step else traj.returns.cpu()
        if per_step:  # a chunk (or shard) whose episodes all end early has fewer steps
            pad = game.horizon - part.shape[2]
            part = torch.nn.functional.pad(part, (0, 0, 0, pad) if seats else (0, pad))
        if shard is not None:
            lo, hi = shard_bounds(len(pairs[i:i + chunk]), *shard)
            full = torch.zeros(len(pairs[i:i + chunk]), *part.shape[1:], dtype=part.dtype)
            full[lo:hi] = part
            part = full
        out.append(part)
    return torch.cat(out)


def expected_returns(game: Game, policy: Policy, pairs: torch.Tensor, episodes: int,
                     rng: np.random.Generator, shard: tuple[int, int] | None = None) -> torch.Tensor:
    """Monte-Carlo mean return of each pair [P] from ``episodes`` sampled episodes (``shard``: see
    ``episode_returns``; 0 for the pairs other workers play)."""
    return episode_returns(game, policy, pairs, episodes, rng, shard=shard).mean(1)
