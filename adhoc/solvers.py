"""Meta-strategy solvers: which partners a robust learner should train against.

Framework: PSRO (Lanctot et al., "A unified game-theoretic approach to multiagent reinforcement learning",
NeurIPS 2017). One PSRO iteration is:

1. fill the empirical payoff matrix ``M`` by playing every policy against every other;
2. compute a meta-strategy (a mixture over policies) with a *meta-strategy solver* (this module);
3. train an oracle: a best response to opponents drawn from that mixture;
4. add the new policy to the policy set and go back to 1.

Here the payoff matrix is ``M[k, i]``: the learner's (expected) return when its snapshot ``k`` plays with
partner ``i`` (K learner snapshots x P partners; the last row is the latest snapshot). Every solver returns a
float64 probability vector of length P: the mixture over PARTNERS that the learner trains with next.

Cooperative -> adversarial framing. In a cooperative (common-payoff) game the Nash equilibria of the
meta-game are degenerate (the single best pairing) and say nothing about robustness. To get a learner that
does well with *every* partner, treat the choice of partner as an adversary: the two-player ZERO-SUM game in
which the learner (row player, mixture x over snapshots) maximises ``M`` and the partner (column player,
mixture y over partners) minimises it. Its Nash equilibrium is the maximin pair

    max_x min_y xᵀ M y  =  min_y max_x xᵀ M y,

and the partner mixture y* concentrates on the partners the learner is worst with. Replacing the return by the
regret ``R[k, i] = best[i] - M[k, i]`` (the partner's best achievable return, e.g. its self-play return, minus
the learner's) gives minimax regret, which does not punish partners with whom no one can do well.

Solvers (``SOLVERS`` maps the name to the function; ``solve(name, M, **params)`` validates and dispatches):

- ``uniform``       FCP (Strouse et al., NeurIPS 2021): partners drawn uniformly.
- ``prioritized``   MEP stage 2 (Zhao et al., AAAI 2023): p_i ∝ rank(1/(J_i + 1e-6))^β with J_i the latest
                    snapshot's return with partner i, DENSE rank in ascending order of 1/(J+1e-6), so the
                    partner with the lowest return gets the highest rank (returns (1, 2, 3), β = 1 ->
                    (3, 2, 1)/6). For returns ≤ -1e-6 the reciprocal is not monotone; there we rank by -J,
                    which is the same order as MEP's wherever MEP's is defined.
- ``prd``           projected replicator dynamics on the zero-sum game; average of the partner's iterates;
                    exploration floor γ as OpenSpiel (``floor="scaled"``: γ/(n+1)).
- ``alpharank``     α-Rank (Omidshafiei et al., Sci. Rep. 2019) on the zero-sum game; partner marginal.
- ``maximin``       Nash of the zero-sum game by linear program (HiGHS): argmin_y max_k (M y)_k.
- ``minimax_regret`` the same LP on the regret matrix: the adversary's regret-maximising partner mixture.

A solver's parameters are its keyword arguments; their ranges and choices are declared right above it with
``@declare`` (``adhoc.params``), which ``adhoc.config`` checks before any run (a new numeric or string
parameter needs one: tests/test_bad_config.py fails without it). The solvers also re-check them when run.

``nash_zero_sum(A) -> (x, y, value)`` solves a general matrix game with a row maximiser.

Scale: replicator dynamics and α-Rank are NOT invariant to the scale of the payoffs (dt and α multiply them).
With ``normalize=True`` (default) ``prd`` and ``alpharank`` divide ``M`` by its range max(M) - min(M) first,
so their output does not depend on the units of the return; ``normalize=False`` reproduces OpenSpiel.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np
from scipy.optimize import linprog
from scipy.stats import rankdata

from adhoc.errors import UserError
from adhoc.params import MAX_SOLVER_STEPS, Range, declare

__all__ = ["SOLVERS", "solve", "uniform", "prioritized", "prd", "alpharank", "maximin", "minimax_regret",
           "nash_zero_sum"]


# ----------------------------------------------------------------------------------------------- helpers

def _as_matrix(M: Any, what: str = "payoff matrix") -> np.ndarray:
    try:
        A = np.asarray(M, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise UserError(f"{what} must be a numeric 2-D array ({e})") from None
    if A.ndim != 2:
        raise UserError(f"{what} must be 2-D [learner snapshots, partners], got shape {A.shape}")
    if A.size == 0:
        raise UserError(f"{what} is empty (shape {A.shape})")
    if not np.all(np.isfinite(A)):
        raise UserError(f"{what} has NaN or inf entries")
    return A


def _normalised(A: np.ndarray, normalize: bool) -> np.ndarray:
    if not normalize:
        return A
    span = float(A.max() - A.min())
    return A / span if span > 0 else A


def _clean(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, None)
    s = p.sum()
    return p / s if s > 0 else np.full(p.shape, 1.0 / p.size)


def _project_floor_simplex(x: np.ndarray, lo: float) -> np.ndarray:
    """Euclidean projection onto {x : x_j >= lo, sum x = 1} (requires n * lo <= 1)."""
    n = x.size
    total = 1.0 - n * lo
    if total <= 0.0:                    # n * lo = 1: the floor leaves only the uniform mixture
        return np.full(n, 1.0 / n)
    z = x - lo
    u = np.sort(z)[::-1]
    css = np.cumsum(u) - total
    idx = np.arange(1, n + 1)
    r = np.nonzero(u - css / idx > 0)[0][-1]
    theta = css[r] / (r + 1)
    return np.maximum(z - theta, 0.0) + lo


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise UserError(msg)


# ----------------------------------------------------------------------------------------------- solvers

def uniform(M: Any) -> np.ndarray:
    """FCP (Strouse et al. 2021): every partner with the same probability."""
    A = _as_matrix(M)
    return np.full(A.shape[1], 1.0 / A.shape[1])


@declare(beta=Range(0, 100))
def prioritized(M: Any, beta: float = 3.0) -> np.ndarray:
    """MEP (Zhao et al. 2023): p_i ∝ rank(1/(J_i + 1e-6))^β, J = last row of M, dense rank (ties share one).

    Rank 1 goes to the smallest 1/(J + 1e-6), i.e. the partner the learner does BEST with; the partner with
    the lowest return gets the largest rank and is drawn most. β = 0 is uniform.
    """
    A = _as_matrix(M)
    _check(np.isfinite(beta) and beta >= 0, f"prioritized: beta must be >= 0 (got {beta})")
    J = A[-1]
    if np.all(J + 1e-6 > 0):
        key = 1.0 / (J + 1e-6)          # MEP's formula, exactly
    else:
        key = -J                        # same order where MEP's is defined; monotone for negative returns
    ranks = rankdata(key, method="dense").astype(np.float64)
    w = ranks ** float(beta)
    return w / w.sum()


PRD_FLOORS = ("openspiel", "scaled")


@declare(gamma=Range(0, 1, hi_open=True), dt=Range(0, 1, lo_open=True), steps=Range(1, MAX_SOLVER_STEPS),
         floor=PRD_FLOORS)
def prd(M: Any, gamma: float = 1e-6, dt: float = 1e-2, steps: int = 10_000,
        normalize: bool = True, floor: str = "openspiel") -> np.ndarray:
    """Projected replicator dynamics (Lanctot et al. 2017) on the zero-sum game (learner max, partner min).

    Both players start uniform and update simultaneously, x ← P_Δ(x + dt · x ⊙ (v − xᵀv)) with v the
    payoff of each pure strategy against the other's current mixture (learner: M y; partner: −Mᵀ x) and
    P_Δ the Euclidean projection onto the simplex with every entry ≥ the exploration floor:

    - ``floor="openspiel"`` (default): γ itself, as OpenSpiel's ``projected_replicator_dynamics``
      (``prd_gamma``); needs γ · n ≤ 1 (n = that player's number of strategies; γ · n = 1 pins it uniform);
    - ``floor="scaled"``: γ/(n+1), which stays feasible for every γ < 1 (this module's earlier definition).

    At γ = 0 (or the default 1e-6, far below any mixture weight that matters) the two agree.
    Returns the average of the partner's strategies over the initial one and all ``steps`` iterates, as
    OpenSpiel does.

    Defaults: OpenSpiel uses 1e5 steps with dt = 1e-3 (integration time 100, ~2 s in numpy); we integrate the
    same time with 1e4 steps of dt = 1e-2 (~0.1 s). Pass ``steps=100_000, dt=1e-3, normalize=False`` for
    OpenSpiel's settings.
    """
    A = _normalised(_as_matrix(M), normalize)
    _check(np.isfinite(gamma) and 0 <= gamma < 1, f"prd: gamma must be in [0, 1) (got {gamma})")
    _check(np.isfinite(dt) and dt > 0, f"prd: dt must be > 0 (got {dt})")
    _check(int(steps) == steps and steps >= 1, f"prd: steps must be a positive integer (got {steps})")
    _check(floor in PRD_FLOORS, f"prd: floor must be one of {', '.join(PRD_FLOORS)} (got {floor!r})")
    K, P = A.shape
    if floor == "openspiel":
        _check(gamma * max(K, P) <= 1.0, f"prd: gamma ({gamma}) times the number of strategies ({max(K, P)}) "
                                         f"must be <= 1 with floor=openspiel (or use floor=scaled)")
        lo_x, lo_y = gamma, gamma
    else:
        lo_x, lo_y = gamma / (K + 1), gamma / (P + 1)
    x = np.full(K, 1.0 / K)
    y = np.full(P, 1.0 / P)
    At = np.ascontiguousarray(A.T)
    y_sum = y.copy()
    for _ in range(int(steps)):
        vx = A @ y                      # learner's payoff per snapshot
        vy = At @ x                     # learner's payoff per partner (partner's payoff is the negative)
        avg = x @ vx                    # = xᵀ M y, the same for both players (zero-sum)
        nx_ = x + dt * x * (vx - avg)
        ny_ = y - dt * y * (vy - avg)
        # project every step, even from inside: it also renormalises, and without that the sum drifts off 1
        # (the deviation grows by (1 + dt·|xᵀMy|) per step: after 1e5 steps the mixture is garbage)
        x = _project_floor_simplex(nx_, lo_x)
        y = _project_floor_simplex(ny_, lo_y)
        y_sum += y
    return _clean(y_sum / (int(steps) + 1))


def _fixation(u: np.ndarray, m: int) -> np.ndarray:
    """ρ = (1 − e^{−u}) / (1 − e^{−m·u}), 1/m at u ≈ 0; overflow-free for any u."""
    u = np.asarray(u, dtype=np.float64)
    rho = np.full(u.shape, 1.0 / m)
    pos = u > 1e-14
    neg = u < -1e-14
    up = u[pos]
    rho[pos] = np.expm1(-up) / np.expm1(-m * up)
    a = -u[neg]                         # u < 0: ρ = e^{−(m−1)a} (1 − e^{−a}) / (1 − e^{−m a})
    rho[neg] = np.exp(-(m - 1) * a) * np.expm1(-a) / np.expm1(-m * a)
    return rho


def _stationary(C: np.ndarray) -> np.ndarray:
    """Stationary distribution π of the row-stochastic C: πᵀ C = πᵀ, Σ π = 1 (least squares, exact)."""
    n = C.shape[0]
    lhs = np.vstack([C.T - np.eye(n), np.ones((1, n))])
    rhs = np.zeros(n + 1)
    rhs[-1] = 1.0
    pi = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    return _clean(pi)


@declare(alpha=Range(0, 1e6, lo_open=True), m=Range(2, 1_000_000), population=("auto", "single", "two"))
def alpharank(M: Any, alpha: float = 10.0, m: int = 50, population: str = "auto",
              normalize: bool = True) -> np.ndarray:
    """α-Rank (Omidshafiei et al. 2019) of the zero-sum game (learner maximises M, partner minimises it).

    Fixation probability of a mutant r in a population of residents s: ρ = (1 − e^{−u})/(1 − e^{−m·u}),
    u = α (f_r − f_s) (ρ = 1/m at u ≈ 0). The stationary distribution of the Markov chain is solved exactly.

    ``population``:

    - ``"two"``: two-population α-Rank (the standard form for an asymmetric game, as in OpenSpiel's
      multi-population α-Rank). States are the K·P profiles (k, i). From (k, i) the learner mutates to k'
      with f_r − f_s = M[k', i] − M[k, i], or the partner mutates to i' with f_r − f_s = −(M[k, i'] − M[k, i])
      (the partner's fitness is minus the learner's return); each move has probability ρ / ((K−1) + (P−1)),
      the self-loop the rest. Returns the stationary distribution's marginal over partners.
    - ``"single"``: single-population α-Rank over the partners, defined only for a symmetric zero-sum
      meta-game (K = P, snapshot j and partner j the same policy, M = −Mᵀ). A partner r meeting a partner s
      sits in the partner seat against s in the learner seat, fitness G[r, s] = −M[s, r] = M[r, s]. In a
      monomorphic population of s with m individuals the Moran fitness difference of a mutant r is the
      constant m/(m−1) · G[r, s] (zero-sum), so u = α · m/(m−1) · G[r, s] (OpenSpiel's constant-sum closed
      form); transition s→r = ρ/(n−1), self-loop the rest.
    - ``"auto"`` (default): ``"single"`` when M is square and antisymmetric, else ``"two"``.

    Rock-paper-scissors gives the uniform distribution under both (cyclic symmetry).
    """
    A = _normalised(_as_matrix(M), normalize)
    _check(np.isfinite(alpha) and alpha > 0, f"alpharank: alpha must be > 0 (got {alpha})")
    _check(int(m) == m and m >= 2, f"alpharank: m (population size) must be an integer >= 2 (got {m})")
    m = int(m)
    K, P = A.shape
    antisym = K == P and np.allclose(A, -A.T, atol=1e-12 * max(1.0, float(np.abs(A).max())))
    if population == "auto":
        population = "single" if antisym else "two"
    if population == "single":
        _check(antisym, "alpharank: population='single' needs a square antisymmetric M (symmetric zero-sum "
                        "meta-game); use population='two'")
        if P == 1:
            return np.ones(1)
        G = A                                        # G[r, s] = −M[s, r] = M[r, s]
        rho = _fixation(alpha * m / (m - 1) * G.T, m)  # rho[s, r]: mutant r invading residents s
        C = rho / (P - 1)
        np.fill_diagonal(C, 0.0)
        np.fill_diagonal(C, 1.0 - C.sum(axis=1))
        return _stationary(C)
    _check(population == "two", f"alpharank: population must be 'auto', 'single' or 'two' (got {population!r})")
    if K + P - 2 == 0:
        return np.ones(1)
    eta = 1.0 / ((K - 1) + (P - 1))
    n = K * P
    C = np.zeros((n, n))
    idx = np.arange(n).reshape(K, P)                 # state (k, i) -> k * P + i
    # learner mutations k -> k' at fixed partner i
    du = alpha * (A[None, :, :] - A[:, None, :])     # du[k, k', i] = α (M[k', i] − M[k, i])
    rho_l = _fixation(du, m) * eta
    for k in range(K):
        for k2 in range(K):
            if k2 != k:
                C[idx[k], idx[k2]] = rho_l[k, k2]
    # partner mutations i -> i' at fixed snapshot k
    dp = -alpha * (A[:, None, :] - A[:, :, None])    # dp[k, i, i'] = −α (M[k, i'] − M[k, i])
    rho_p = _fixation(dp, m) * eta
    for k in range(K):
        block = rho_p[k].copy()
        np.fill_diagonal(block, 0.0)
        C[np.ix_(idx[k], idx[k])] = block
    C[np.arange(n), np.arange(n)] = 1.0 - C.sum(axis=1)
    pi = _stationary(C).reshape(K, P)
    return _clean(pi.sum(axis=0))


def nash_zero_sum(A: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """Nash equilibrium of the matrix game A (row player maximises xᵀ A y, column player minimises it).

    Two linear programs (HiGHS): x = argmax_{x∈Δ} min_j (xᵀA)_j and y = argmin_{y∈Δ} max_i (A y)_i.
    Returns (x, y, value) with value = max_x min_y xᵀ A y.
    """
    A = _as_matrix(A, "game matrix")
    K, P = A.shape
    # x: maximise v s.t. (xᵀA)_j >= v  <=>  minimise -v s.t. -Aᵀx + v <= 0
    c = np.zeros(K + 1)
    c[-1] = -1.0
    res_x = linprog(c, A_ub=np.hstack([-A.T, np.ones((P, 1))]), b_ub=np.zeros(P),
                    A_eq=np.hstack([np.ones((1, K)), np.zeros((1, 1))]), b_eq=[1.0],
                    bounds=[(0, None)] * K + [(None, None)], method="highs")
    # y: minimise w s.t. (A y)_i <= w
    c = np.zeros(P + 1)
    c[-1] = 1.0
    res_y = linprog(c, A_ub=np.hstack([A, -np.ones((K, 1))]), b_ub=np.zeros(K),
                    A_eq=np.hstack([np.ones((1, P)), np.zeros((1, 1))]), b_eq=[1.0],
                    bounds=[(0, None)] * P + [(None, None)], method="highs")
    if res_x.status != 0 or res_y.status != 0:   # cannot happen for a finite matrix; keep it loud
        raise RuntimeError(f"linprog failed: {res_x.message} / {res_y.message}")
    return _clean(res_x.x[:K]), _clean(res_y.x[:P]), float(res_x.x[-1]) + 0.0


def maximin(M: Any) -> np.ndarray:
    """Adversarial partner mixture: the zero-sum Nash y = argmin_{y∈Δ} max_k (M y)_k."""
    return nash_zero_sum(M)[1]


def minimax_regret(M: Any, best: Any = None) -> np.ndarray:
    """Minimax-regret partner mixture on R[k, i] = best[i] − M[k, i].

    The adversary (partner mixture y) maximises the regret, the learner (snapshot mixture x) minimises it:
    y = argmax_{y∈Δ} min_k (R y)_k, the column player's equilibrium strategy in the zero-sum game where the
    learner maximises −R = M − best. ``best[i]`` is partner i's best achievable return (e.g. its self-play
    return); None uses the column maximum of M (the best snapshot's return with that partner).
    """
    A = _as_matrix(M)
    if best is None:
        b = A.max(axis=0)
    else:
        b = np.asarray(best, dtype=np.float64) if np.ndim(best) else np.full(A.shape[1], float(best))
        _check(b.shape == (A.shape[1],), f"minimax_regret: best must have one entry per partner "
                                         f"({A.shape[1]}), got shape {b.shape}")
        _check(bool(np.all(np.isfinite(b))), "minimax_regret: best has NaN or inf entries")
    return nash_zero_sum(A - b[None, :])[1]


SOLVERS: dict[str, Callable[..., np.ndarray]] = {
    "uniform": uniform,
    "prioritized": prioritized,
    "prd": prd,
    "alpharank": alpharank,
    "maximin": maximin,
    "minimax_regret": minimax_regret,
}


def solve(name: str, M: Any, **params: Any) -> np.ndarray:
    """Run the solver ``name`` on M [learner snapshots, partners]; returns a mixture over partners."""
    if name not in SOLVERS:
        raise UserError(f"unknown solver {name!r} (allowed: {', '.join(sorted(SOLVERS))})")
    fn = SOLVERS[name]
    allowed = [p for p in inspect.signature(fn).parameters if p != "M"]
    bad = sorted(set(params) - set(allowed))
    if bad:
        raise UserError(f"solver {name!r} has no parameter(s) {', '.join(bad)} "
                        f"(allowed: {', '.join(allowed) if allowed else 'none'})")
    return fn(_as_matrix(M), **params)
