"""Cross-play: the expected return of every ordered pair of members, and the metrics read off it.

Definitions (X[i, j] = mean return with member i in seat 0 and member j in seat 1, over E episodes;
every ordered pair is played, so each member sits in each seat):

- ``sp_mean``: mean of the diagonal (self-play);        ``xp_mean``: mean off the diagonal (cross-play);
- ``gap`` = sp_mean − xp_mean (LIPO's compatibility gap);
- ``proportional_loss`` = (sp_mean − xp_mean) / sp_mean (joint-policy correlation loss, Lanctot et al. 2017);
- ``row_xp[i]`` = mean_{j≠i} X[i, j] (member i in seat 0 with the others), ``col_xp[j]`` likewise in seat 1;
- ``normalised[i, j]`` = X[i, j] / X[i, i]: the share of its own self-play return member i keeps with j;
- conventions: the connected components of the graph joining i and j when both normalised[i, j] and
  normalised[j, i] reach ``threshold`` (default 0.5) — members that coordinate with each other;
- 95% confidence intervals: percentile bootstrap over episodes (each pair's E episodes resampled);
- across populations A and B (``cross``): X_AB[i, j] = (X[a_i, b_j] + X[b_j, a_i]) / 2, both seatings;
  ``mean`` over all pairs, ``worst_partner`` = min over B's members of A's mean return with that member,
  ``worst_pair`` = the smallest entry.

Games that pay each seat its own reward (``adhoc.games.core.payoff_kind``; the pairs are played with
``seats=True``, returns [N, N, E, 2]): ``matrix`` is X0[i, j], the row member's (seat 0) mean payoff, and
``matrix_seat1`` X1[i, j], the column member's (seat 1). Per member, over the pairs with the others (j ≠ i):
``payoff_seat0[i]`` = mean_j X0[i, j], ``payoff_seat1[i]`` = mean_j X1[j, i], ``score[i]`` = their mean, i.e.
mean_{j≠i} (X0[i, j] + X1[j, i]) / 2, the member's own mean payoff over both seatings. Then per kind:

- ``zero_sum`` (X1 = −X0): ``win``/``draw``/``loss`` [N, N] are the row member's per-cell rates over episodes
  (seat-0 return > 0, == 0, < 0); per member ``win_rate``/``draw_rate``/``loss_rate`` are the rates over both
  seatings with the others (its own seat's return in each seating), and ``ci95["score"]`` [N, 2] a percentile
  bootstrap over episodes. ``cross`` (several populations) is A's mean payoff against B over both seatings
  (``worst_partner``: against its strongest member). The common-payoff notions (sp_mean, xp_mean, gap,
  proportional_loss, row_xp/col_xp, self_play, normalised, conventions) do not apply — self-play measures the
  seat asymmetry and there is nothing to coordinate on — so they are left out, ``conventions`` is null and
  ``not_applicable`` lists them.
- ``general_sum``: ``welfare`` W = X0 + X1 per cell; sp_mean, xp_mean, gap, proportional_loss, row_xp/col_xp,
  self_play, normalised, the conventions and their CIs are the common-payoff definitions applied to the welfare
  per seat W / 2 (the common payoff is the special case X0 = X1 = W / 2): members that coordinate reach high
  welfare together, whoever of the two gains more (``cross`` too); each member's own payoffs are in
  score/payoff_seat0/1 and ``ci95["score"]``.

All pairs run batched through ONE AdapterBank holding the members of every population (same base model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import torch

from adhoc.errors import UserError


# ---------------------------------------------------------------------------- pure metrics
def sp_xp(matrix: np.ndarray) -> tuple[float, float]:
    n = matrix.shape[0]
    off = ~np.eye(n, dtype=bool)
    return float(np.mean(np.diag(matrix))), float(matrix[off].mean()) if n > 1 else float("nan")


def normalised(matrix: np.ndarray) -> np.ndarray:
    sp = np.diag(matrix)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sp > 0, matrix / np.where(sp > 0, sp, 1.0), 0.0)


def conventions(matrix: np.ndarray, names: list[str], threshold: float = 0.5) -> list[list[str]]:
    """Clusters of mutually coordinating members, largest first (ties by first member)."""
    norm = normalised(matrix)
    graph = nx.Graph()
    graph.add_nodes_from(range(len(names)))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if min(norm[i, j], norm[j, i]) >= threshold:
                graph.add_edge(i, j)
    comps = sorted((sorted(c) for c in nx.connected_components(graph)), key=lambda c: (-len(c), c[0]))
    return [[names[i] for i in c] for c in comps]


def summary(matrix: np.ndarray) -> dict[str, Any]:
    sp, xp = sp_xp(matrix)
    n = matrix.shape[0]
    off = ~np.eye(n, dtype=bool)
    return {
        "sp_mean": sp, "xp_mean": xp, "gap": sp - xp,
        "proportional_loss": (sp - xp) / sp if sp else float("nan"),
        "row_xp": [float(matrix[i, off[i]].mean()) if n > 1 else float("nan") for i in range(n)],
        "col_xp": [float(matrix[off[:, j], j].mean()) if n > 1 else float("nan") for j in range(n)],
    }


def resample_indices(n_episodes: int, n_boot: int = 500, seed: int = 0) -> np.ndarray:
    """The bootstrap's resamples: [n_boot, n_episodes] episode indices drawn with replacement, all at once.
    The same draws, in the same order, as ``n_boot`` successive ``rng.integers(E, size=E)`` calls on
    ``np.random.default_rng(seed)`` (numpy's Generator fills a [B, E] request row by row)."""
    return np.random.default_rng(seed).integers(n_episodes, size=(n_boot, n_episodes))


def resample_means(returns: np.ndarray, idx: np.ndarray, chunk_elements: int = 1 << 23) -> np.ndarray:
    """Means over the resampled episodes of every entry of ``returns`` [..., E] for every resample of ``idx``
    [B, E]: [..., B], equal (to rounding) to ``returns[..., idx[b]].mean(-1)`` for each b.

    Written as a product with the resamples' episode counts, (returns − row mean) @ counts.T / E + row mean,
    in chunks of resamples (``chunk_elements`` bounds the [rows, chunk] block); a row holding a NaN or an
    infinity is gathered instead, so that an episode left out of a resample does not reach its mean."""
    returns = np.asarray(returns, dtype=np.float64)
    lead, E = returns.shape[:-1], returns.shape[-1]
    B = idx.shape[0]
    flat = returns.reshape(-1, E)
    counts = np.bincount((np.arange(B)[:, None] * E + idx).ravel(), minlength=B * E).reshape(B, E).astype(np.float64)
    out = np.empty((flat.shape[0], B))
    finite = np.isfinite(flat).all(-1)
    rows = flat[finite]
    if rows.size:
        centre = rows.mean(-1, keepdims=True)
        centred = rows - centre
        step = max(1, chunk_elements // max(1, rows.shape[0]))
        block = np.empty((rows.shape[0], B))
        for s in range(0, B, step):
            block[:, s:s + step] = centred @ counts[s:s + step].T
        out[finite] = block / idx.shape[1] + centre
    for r in np.flatnonzero(~finite):
        out[r] = flat[r][idx].mean(-1)
    return out.reshape(*lead, B)


def bootstrap(returns: np.ndarray, statistic, n_boot: int = 500, seed: int = 0,
              level: float = 0.95, batched: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap over episodes: ``returns`` [..., E] (every pair's E episodes resampled with the
    same indices), ``statistic`` maps mean returns [...] to a vector of statistics; returns (low, high).

    Vectorised: the B resamples' indices are drawn at once (:func:`resample_indices`, the same draws as one
    ``rng.integers(E, size=E)`` per resample) and their means computed as one product
    (:func:`resample_means`). With ``batched=True`` ``statistic`` is called once, on the means [..., B] of
    all resamples, and returns [S, B]; otherwise once per resample, as before."""
    idx = resample_indices(returns.shape[-1], n_boot, seed)
    means = resample_means(returns, idx)
    if batched:
        stats = np.asarray(statistic(means), dtype=np.float64).reshape(-1, n_boot).T
    else:
        stats = np.asarray([np.asarray(statistic(means[..., b]), dtype=np.float64) for b in range(n_boot)])
    lo, hi = np.nanpercentile(stats, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return lo, hi


def bootstrap_ci(returns: np.ndarray, n_boot: int = 500, seed: int = 0, level: float = 0.95) -> dict[str, list[float]]:
    """Percentile bootstrap over episodes for sp_mean, xp_mean and gap. returns: [N, N, E].

    sp_mean and xp_mean are means of the pairs' means, so a resample's sp_mean is the resampled mean of the
    per-episode self-play return averaged over the diagonal (and likewise off it): the bootstrap runs on
    those two [E] series — the same resamples and, to rounding, the same intervals as resampling all N² pairs."""
    returns = np.asarray(returns, dtype=np.float64)
    n = returns.shape[0]
    diag = returns[np.arange(n), np.arange(n)].mean(0)  # [E]
    off = (returns.sum((0, 1)) - returns[np.arange(n), np.arange(n)].sum(0)) / (n * n - n) if n > 1 \
        else np.full(returns.shape[-1], np.nan)
    lo, hi = bootstrap(np.stack([diag, off]), lambda m: np.stack([m[0], m[1], m[0] - m[1]]), n_boot, seed, level,
                       batched=True)
    return {k: [float(lo[i]), float(hi[i])] for i, k in enumerate(("sp_mean", "xp_mean", "gap"))}


def cross_population(matrix: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                     seat1: np.ndarray | None = None) -> dict[str, float]:
    """Population A (member indices ``rows``) against B (``cols``), both seatings averaged. ``seat1``: the
    seat-1 payoffs X1 of a game that pays each seat its own (then A's payoff: (X0[a, b] + X1[b, a]) / 2)."""
    other = matrix if seat1 is None else seat1
    both = (matrix[np.ix_(rows, cols)] + other[np.ix_(cols, rows)].T) / 2  # [|A|, |B|]
    return {"mean": float(both.mean()), "worst_partner": float(both.mean(0).min()), "worst_pair": float(both.min()),
            "per_partner": [float(v) for v in both.mean(0)]}


ZERO_SUM_NOT_APPLICABLE = ("sp_mean", "xp_mean", "gap", "proportional_loss", "row_xp", "col_xp", "self_play",
                           "normalised", "conventions", "threshold")


def member_payoffs(x0: np.ndarray, x1: np.ndarray) -> dict[str, list[float]]:
    """Each member's own mean payoff with the others (j ≠ i) from the seat payoffs X0, X1 [N, N] (row = seat 0):
    ``payoff_seat0[i]`` = mean_j X0[i, j], ``payoff_seat1[i]`` = mean_j X1[j, i] and ``score[i]`` = their mean
    (NaN for a single member)."""
    n = x0.shape[0]
    off = ~np.eye(n, dtype=bool)
    seat0 = np.array([x0[i, off[i]].mean() if n > 1 else np.nan for i in range(n)])
    seat1 = np.array([x1[off[:, i], i].mean() if n > 1 else np.nan for i in range(n)])
    return {"score": [float(v) for v in (seat0 + seat1) / 2], "payoff_seat0": [float(v) for v in seat0],
            "payoff_seat1": [float(v) for v in seat1]}


def outcome_rates(returns: np.ndarray) -> dict[str, Any]:
    """Win/draw/loss rates from seat returns [N, N, E, 2] (pair i, j: member i in seat 0, j in seat 1): per cell,
    the row member's rates over episodes (``win`` [N, N]: seat-0 return > 0, ``draw`` == 0, ``loss`` < 0), and per
    member its rates over both seatings with the others (j ≠ i), each seating's episodes judged by the member's
    own seat's return (``win_rate`` [N], ``draw_rate``, ``loss_rate``; NaN for a single member)."""
    returns = np.asarray(returns, dtype=np.float64)
    n = returns.shape[0]
    off = ~np.eye(n, dtype=bool)
    out: dict[str, Any] = {}
    for key, test in (("win", np.greater), ("draw", np.equal), ("loss", np.less)):
        rate = test(returns, 0.0).mean(2)  # [N, N, 2]: the seat's rate in each pair
        out[key] = rate[..., 0].tolist()
        out[f"{key}_rate"] = [float((rate[i, off[i], 0].mean() + rate[off[:, i], i, 1].mean()) / 2) if n > 1
                              else float("nan") for i in range(n)]
    return out


def score_ci(returns: np.ndarray, n_boot: int = 500, seed: int = 0, level: float = 0.95) -> list[list[float]]:
    """Percentile bootstrap over episodes of each member's ``score`` (:func:`member_payoffs`): returns
    [N, N, E, 2] → [N, 2] (low, high); the same resamples for every pair."""
    seats = np.moveaxis(np.asarray(returns, dtype=np.float64), -1, 0)  # [2, N, N, E]

    def statistic(means: np.ndarray) -> np.ndarray:  # [2, N, N, B] → [N, B]
        n = means.shape[1]
        off = ~np.eye(n, dtype=bool)[..., None]
        seat0 = (means[0] * off).sum(1) / max(1, n - 1)
        seat1 = (means[1] * off).sum(0) / max(1, n - 1)
        return (seat0 + seat1) / 2

    if returns.shape[0] < 2:
        return [[float("nan"), float("nan")]] * returns.shape[0]
    lo, hi = bootstrap(seats, statistic, n_boot, seed, level, batched=True)
    return [[float(a), float(b)] for a, b in zip(lo, hi)]


def seat_metrics(returns: np.ndarray, kind: str, n_boot: int = 500, seed: int = 0) -> tuple[dict[str, Any], np.ndarray]:
    """The metrics of a game that pays each seat its own reward, from seat returns [N, N, E, 2]; (metrics, the
    matrix the convention analysis runs on: W / 2 for ``general_sum``, None for ``zero_sum``). See the module's
    definitions."""
    returns = np.asarray(returns, dtype=np.float64)
    x0, x1 = returns[..., 0].mean(-1), returns[..., 1].mean(-1)
    if kind == "zero_sum":
        metrics = {**member_payoffs(x0, x1), **outcome_rates(returns),
                   "ci95": {"score": score_ci(returns, n_boot, seed)},
                   "not_applicable": list(ZERO_SUM_NOT_APPLICABLE)}
        return metrics, None
    if kind != "general_sum":
        raise ValueError(f"unknown payoff kind {kind!r}")
    per_seat = returns.sum(-1) / 2  # welfare per seat, per episode [N, N, E]
    half = per_seat.mean(-1)
    metrics = {**summary(half), "welfare": (x0 + x1).tolist(), **member_payoffs(x0, x1),
               "ci95": {**bootstrap_ci(per_seat, n_boot=n_boot, seed=seed), "score": score_ci(returns, n_boot, seed)},
               "self_play": [float(v) for v in np.diag(half)], "normalised": normalised(half).tolist()}
    return metrics, half


# ---------------------------------------------------------------------------- result and computation
@dataclass
class CrossPlayResult:
    members: list[str]  # "population/member" when several populations are compared
    populations: dict[str, list[int]]  # population label → member indices
    matrix: np.ndarray  # [N, N]
    episodes: int
    metrics: dict[str, Any]
    conventions: list[list[str]] | None  # None where they do not apply (zero-sum)
    member_conventions: dict[str, Any] = field(default_factory=dict)  # member → lever/block it plays
    game: str = ""
    threshold: float = 0.5
    matrix_seat1: np.ndarray | None = None  # [N, N]: X1, the column member's payoff; None for a common payoff
    payoff: str = "common"  # adhoc.games.core.payoff_kind

    def to_json(self) -> dict[str, Any]:
        """For a common payoff as it always was; otherwise with ``payoff`` and ``matrix_seat1`` after ``game``, and
        for zero-sum ``threshold``, ``n_conventions`` and ``conventions`` null (``not_applicable``)."""
        if self.payoff != "common":
            return {"game": self.game, "payoff": self.payoff, "members": self.members,
                    "populations": self.populations, "episodes": self.episodes, "matrix": self.matrix.tolist(),
                    "matrix_seat1": self.matrix_seat1.tolist(),
                    "threshold": None if self.conventions is None else self.threshold, **self.metrics,
                    "n_conventions": None if self.conventions is None else len(self.conventions),
                    "conventions": self.conventions, "member_conventions": self.member_conventions}
        return {"game": self.game, "members": self.members, "populations": self.populations,
                "episodes": self.episodes, "matrix": self.matrix.tolist(), "threshold": self.threshold,
                **self.metrics, "n_conventions": len(self.conventions), "conventions": self.conventions,
                "member_conventions": self.member_conventions}

    def order(self) -> list[int]:
        """Member indices grouped by convention cluster (for the heatmap); as listed when there are none
        (zero-sum)."""
        if self.conventions is None:
            return list(range(len(self.members)))
        index = {m: i for i, m in enumerate(self.members)}
        return [index[m] for cluster in self.conventions for m in cluster]


def crossplay(populations, episodes: int = 64, seed: int = 0, threshold: float = 0.5,
              n_boot: int = 500, device: str = "auto", dtype: str = "auto", play=None,
              stages=None) -> CrossPlayResult:
    """Cross-play every ordered pair of members of the given populations (paths or Population objects).
    ``play(game, policy, pairs, episodes, seed)`` -> returns [P, E] plays the pairs (default: one stream in this
    process; ``adhoc.distributed.blocks``: seeded blocks, here or on Ray workers); in a game that pays each seat
    its own reward it is called with ``seats=True`` and returns [P, E, 2]. ``stages``: an
    ``adhoc.progress.Stages`` told each of the six stages (None: no progress)."""
    from adhoc.games import build_game
    from adhoc.games.core import payoff_kind
    from adhoc.lm.adapters import AdapterBank
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy
    from adhoc.partners import check_compatible, population_label
    from adhoc.population import Population
    from adhoc.progress import Stages
    from adhoc.rollout import episode_returns

    stage = (stages or Stages("", 0, False)).stage
    if episodes < 2:
        raise UserError(f"--episodes must be >= 2 (got {episodes})")
    stage("reading the populations")
    pops = [p if isinstance(p, Population) else Population.load(p) for p in populations]
    if not pops:
        raise UserError("give at least one population")
    check_compatible(pops, "cross-play")
    first = pops[0]
    game = build_game(first.game)
    stage(f"loading base model {first.base_model['id']}")
    base = load_base(first.base_model["id"], device=device, dtype=dtype)
    first.check_base(base.model_id, base.fingerprint)
    adapter = first.manifest["adapter"]
    total = sum(len(p.members) for p in pops)
    stage(f"loading {total} members")
    bank = AdapterBank(base.model, total, adapter["rank"], adapter["alpha"], adapter["target_modules"],
                       base_model_id=first.base_model["id"])
    names, groups, taken, offset = [], {}, set(), 0
    for pop in pops:
        label = population_label(pop.path, taken)
        slots = list(range(offset, offset + len(pop.members)))
        pop.load_into(bank, slots)
        groups[label] = slots
        names += [f"{label}/{n}" if len(pops) > 1 else n for n in pop.names]
        offset += len(pop.members)
    policy = Policy(base, bank)

    idx = torch.arange(total)
    pairs = torch.stack([idx.repeat_interleave(total), idx.repeat(total)], 1)  # [N·N, 2], row-major (i, j)
    stage(f"playing {total}x{total} pairs, {episodes} episodes each")
    kind = payoff_kind(game)
    if kind != "common":
        return _seat_crossplay(game, policy, pairs, names, groups, episodes, seed, threshold, n_boot, play, stage,
                               kind, first.game["name"])
    played = play(game, policy, pairs, episodes, seed) if play is not None else \
        episode_returns(game, policy, pairs, episodes, np.random.default_rng(seed))
    returns = played.view(total, total, episodes).numpy()
    matrix = returns.mean(-1)
    metrics = summary(matrix)
    stage("bootstrap confidence intervals")
    metrics["ci95"] = bootstrap_ci(returns, n_boot=n_boot, seed=seed)
    metrics["self_play"] = [float(v) for v in np.diag(matrix)]
    metrics["normalised"] = normalised(matrix).tolist()
    if len(pops) > 1:
        metrics["per_population"] = {k: dict(zip(("sp_mean", "xp_mean"), sp_xp(matrix[np.ix_(v, v)])))
                                     for k, v in groups.items()}
        metrics["cross"] = {f"{a} vs {b}": cross_population(matrix, np.array(ra), np.array(rb))
                            for a, ra in groups.items() for b, rb in groups.items() if a != b}
    stage("conventions")
    return CrossPlayResult(members=names, populations=groups, matrix=matrix, episodes=episodes, metrics=metrics,
                           conventions=conventions(matrix, names, threshold),
                           member_conventions=greedy_conventions(game, policy, names), game=first.game["name"],
                           threshold=threshold)


def _seat_crossplay(game, policy, pairs, names, groups, episodes, seed, threshold, n_boot, play, stage, kind,
                    game_name) -> CrossPlayResult:
    """``crossplay`` for a game that pays each seat its own reward: the pairs played with ``seats=True``."""
    from adhoc.rollout import episode_returns

    total = len(names)
    played = play(game, policy, pairs, episodes, seed, seats=True) if play is not None else \
        episode_returns(game, policy, pairs, episodes, np.random.default_rng(seed), seats=True)
    returns = played.reshape(total, total, episodes, 2).numpy().astype(np.float64)  # [N, N, E, 2]
    stage("bootstrap confidence intervals")
    metrics, half = seat_metrics(returns, kind, n_boot=n_boot, seed=seed)
    x0, x1 = returns[..., 0].mean(-1), returns[..., 1].mean(-1)
    if len(groups) > 1:
        if half is not None:
            metrics["per_population"] = {k: dict(zip(("sp_mean", "xp_mean"), sp_xp(half[np.ix_(v, v)])))
                                         for k, v in groups.items()}
        # general-sum: welfare per seat, as sp/xp; zero-sum: A's own payoff against B
        mine = (half, None) if half is not None else (x0, x1)
        metrics["cross"] = {f"{a} vs {b}": cross_population(mine[0], np.array(ra), np.array(rb), seat1=mine[1])
                            for a, ra in groups.items() for b, rb in groups.items() if a != b}
    stage("conventions")
    return CrossPlayResult(members=names, populations=groups, matrix=x0, episodes=episodes, metrics=metrics,
                           conventions=None if half is None else conventions(half, names, threshold),
                           member_conventions=greedy_conventions(game, policy, names), game=game_name,
                           threshold=threshold, matrix_seat1=x1, payoff=kind)


@torch.no_grad()
def greedy_conventions(game, policy, names: list[str]) -> dict[str, Any]:
    """For one-shot games with known conventions (lever, CMG): the convention of each member's most
    probable seat-0 action, and the probability it puts on it."""
    if not hasattr(game, "convention_of") or game.horizon != 1:
        return {}
    obs = game.observe(game.reset(1, np.random.default_rng(0)), 0)[0]
    scores = policy.scores(torch.arange(len(names)), [obs] * len(names), policy.actions(game.action_names(0)))
    probs = torch.softmax(scores, -1)
    best = probs.argmax(-1)
    return {n: {"convention": game.convention_of(int(a)), "action": game.action_names(0)[int(a)],
                "probability": round(float(probs[i, a]), 4)} for i, (n, a) in enumerate(zip(names, best))}


class _CallableModule(__import__("types").ModuleType):
    """So that ``adhoc.crossplay(populations, episodes=...)`` works as well as ``from adhoc.crossplay import
    crossplay``: the submodule attribute would otherwise shadow a function of the same name."""

    def __call__(self, *args, **kwargs) -> CrossPlayResult:
        return crossplay(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
