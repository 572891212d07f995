"""Known answers for the meta-strategy solvers (adhoc/solvers.py)."""

import math

import numpy as np
import pytest

from adhoc.errors import UserError
from adhoc.solvers import (SOLVERS, _clean, _project_floor_simplex, alpharank, maximin, minimax_regret,
                           nash_zero_sum, prd, prioritized, solve, uniform)

RPS = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=float)
# weighted RPS: unique Nash (1/4, 1/4, 1/2) for both players, value 0
WRPS = np.array([[0, -2, 1], [2, 0, -1], [-1, 1, 0]], dtype=float)
# partner 1 is the one the learner always does worst with (column 1 is the row minimum in every row)
DOMINANT = np.array([[3, 1, 2], [2, 0, 5], [4, -1, 3], [1, 0.5, 2]], dtype=float)
THIRD = np.full(3, 1 / 3)


# ------------------------------------------------------------------------------------ zero-sum Nash (LP)

def test_rps_nash_is_uniform_with_value_zero():
    x, y, v = nash_zero_sum(RPS)
    np.testing.assert_allclose(x, THIRD, atol=1e-9)
    np.testing.assert_allclose(y, THIRD, atol=1e-9)
    assert abs(v) < 1e-9
    np.testing.assert_allclose(maximin(RPS), THIRD, atol=1e-9)


def test_weighted_rps_nash_and_value():
    x, y, v = nash_zero_sum(WRPS)
    np.testing.assert_allclose(x, [0.25, 0.25, 0.5], atol=1e-9)
    np.testing.assert_allclose(y, [0.25, 0.25, 0.5], atol=1e-9)
    assert abs(v) < 1e-9
    # by hand, A = [[2, -1], [-1, 1]]: indifference 2*y1 - y2 = -y1 + y2 -> y = (2/5, 3/5), the same for x;
    # value = 2*0.4 - 0.6 = 0.2
    x, y, v = nash_zero_sum([[2, -1], [-1, 1]])
    np.testing.assert_allclose(x, [0.4, 0.6], atol=1e-9)
    np.testing.assert_allclose(y, [0.4, 0.6], atol=1e-9)
    assert v == pytest.approx(0.2, abs=1e-9)


def test_maximin_puts_all_mass_on_the_worst_partner():
    np.testing.assert_allclose(maximin(DOMINANT), [0, 1, 0], atol=1e-9)


# ------------------------------------------------------------------------------------ minimax regret

def test_minimax_regret_hand_computed_with_explicit_best():
    # M = I, best = (1, 10): R = [[0, 10], [1, 9]]; rows give 10*y2 and 1 + 8*y2, whose minimum increases
    # in y2 -> the regret-maximising adversary puts everything on partner 1 (regret 9).
    # Maximin on the return instead equalises: (1/2, 1/2).
    M = np.eye(2)
    np.testing.assert_allclose(minimax_regret(M, best=[1, 10]), [0, 1], atol=1e-9)
    np.testing.assert_allclose(maximin(M), [0.5, 0.5], atol=1e-9)


def test_minimax_regret_scalar_best_is_the_same_for_every_partner():
    M = [[5.0, 0.0], [0.0, 1.0]]
    np.testing.assert_allclose(minimax_regret(M, best=3.0), minimax_regret(M, best=[3.0, 3.0]), atol=1e-12)
    # a common best is a constant shift: the equilibrium is maximin's, (1/6, 5/6)
    np.testing.assert_allclose(minimax_regret(M, best=3.0), [1 / 6, 5 / 6], atol=1e-9)
    with pytest.raises(UserError, match="minimax_regret: best has NaN or inf entries"):
        minimax_regret(M, best=[1.0, np.inf])
    with pytest.raises(UserError, match=r"best must have one entry per partner \(2\), got shape \(3,\)"):
        minimax_regret(M, best=[1.0, 2.0, 3.0])


def test_minimax_regret_hand_computed_with_column_max():
    # M = [[5, 0], [0, 1]], best = column max (5, 1): R = [[0, 1], [5, 0]]; the adversary equalises
    # y2 = 5*y1 -> y = (1/6, 5/6) with regret 5/6.
    np.testing.assert_allclose(minimax_regret([[5, 0], [0, 1]]), [1 / 6, 5 / 6], atol=1e-9)
    # best = (5, 3): R = [[0, 3], [5, 2]]; rows 3*y2 and 5 - 3*y2 -> still y2 = 5/6 (an interior 2x2
    # equilibrium only depends on row differences, which a per-column shift leaves alone)
    np.testing.assert_allclose(minimax_regret([[5, 0], [0, 1]], best=[5, 3]), [1 / 6, 5 / 6], atol=1e-9)


# ------------------------------------------------------------------------------------ helpers

def test_floor_simplex_projection_hand_computed():
    # already on the simplex: unchanged; a uniform excess is removed evenly
    np.testing.assert_allclose(_project_floor_simplex(np.array([0.2, 0.3, 0.5]), 0.0), [0.2, 0.3, 0.5], atol=1e-15)
    np.testing.assert_allclose(_project_floor_simplex(np.array([0.5, 0.5, 0.5]), 0.0), THIRD, atol=1e-15)
    np.testing.assert_allclose(_project_floor_simplex(np.array([2.0, 0.0, 0.0]), 0.0), [1, 0, 0], atol=1e-15)
    # floor 0.1: z = x − 0.1 = (0.5, 0.4, −0.5) onto {z >= 0, Σz = 0.7}: θ = (0.5 + 0.4 − 0.7)/2 = 0.1
    # -> (0.4, 0.3, 0) + 0.1 = (0.5, 0.4, 0.1), whatever the order of the entries
    np.testing.assert_allclose(_project_floor_simplex(np.array([0.6, 0.5, -0.4]), 0.1), [0.5, 0.4, 0.1], atol=1e-12)
    np.testing.assert_allclose(_project_floor_simplex(np.array([-0.4, 0.5, 0.6]), 0.1), [0.1, 0.4, 0.5], atol=1e-12)
    # floor 0.3 on 2 entries: (0.1, 0.9) -> (0.3, 0.7); n · floor = 1: only the uniform point is left
    np.testing.assert_allclose(_project_floor_simplex(np.array([0.1, 0.9]), 0.3), [0.3, 0.7], atol=1e-12)
    np.testing.assert_allclose(_project_floor_simplex(np.array([0.9, 0.0, 0.1]), 1 / 3), THIRD, atol=1e-15)


def test_floor_simplex_projection_is_the_nearest_point():
    # against the optimality condition of the projection: every entry above the floor moved by the same θ
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 7))
        lo = float(rng.uniform(0, 1 / n))
        x = rng.normal(size=n)
        p = _project_floor_simplex(x, lo)
        assert p.sum() == pytest.approx(1.0, abs=1e-12) and np.all(p >= lo - 1e-15)
        free = p > lo + 1e-12
        if free.any():
            shift = x[free] - p[free]
            assert np.ptp(shift) < 1e-12  # the same shift θ for every entry above the floor ...
            assert np.all(x[~free] - lo <= shift[0] + 1e-12)  # ... and the clipped ones lie below floor + θ


def test_clean_normalises_and_falls_back_to_uniform():
    np.testing.assert_allclose(_clean([2.0, 6.0]), [0.25, 0.75], atol=1e-15)
    np.testing.assert_allclose(_clean([-1e-17, 3.0, 1.0]), [0.0, 0.75, 0.25], atol=1e-15)  # LP round-off
    np.testing.assert_allclose(_clean(np.zeros(4)), np.full(4, 0.25), atol=1e-15)
    np.testing.assert_allclose(_clean([-0.5, 1.0, 1.0]), [0.0, 0.5, 0.5], atol=1e-15)  # negatives count as 0
    np.testing.assert_allclose(_clean([-1.0, 0.0]), [0.5, 0.5], atol=1e-15)
    assert _clean([1, 3]).dtype == np.float64


# ------------------------------------------------------------------------------------ PRD

def test_prd_rps_average_is_uniform():
    np.testing.assert_allclose(prd(RPS), THIRD, atol=0.02)
    # started off-centre by a non-uniform game the average still converges to the interior Nash
    np.testing.assert_allclose(prd(WRPS), [0.25, 0.25, 0.5], atol=0.03)


def test_prd_dominant_column():
    y = prd(DOMINANT)
    assert y[1] >= 0.95


def exploitability(M, y):
    """How much the learner gains over the game's value by best-responding to the partner mixture y."""
    return float((np.asarray(M) @ y).max() - nash_zero_sum(M)[2])


def test_prd_approaches_the_nash_of_a_random_10x10_game():
    # speed is measured by benchmarks/bench_solvers.py; here only the answer counts
    M = np.random.default_rng(0).normal(size=(10, 10))
    span = M.max() - M.min()
    y = prd(M)
    assert y.shape == (10,) and y.sum() == pytest.approx(1.0)
    uniform_gap = exploitability(M, np.full(10, 0.1))
    assert uniform_gap > 0.2 * span  # the uniform mixture is far from equilibrium ...
    assert exploitability(M, y) < 0.025 * span  # ... PRD's average is close
    # integrating longer gets closer (the time average converges to the interior equilibrium)
    assert exploitability(M, prd(M, steps=20_000)) < 0.01 * span


def test_prd_exploration_floor_hand_computed():
    # one snapshot, M = [[1, 0]] (span 1): x = (1), v_y = (1, 0), xᵀMy = 1/2 at y = (1/2, 1/2), so one step of
    # dt = 1.6 gives y − dt·y⊙(v_y − 1/2) = (1/2 − 0.4, 1/2 + 0.4) = (0.1, 0.9).
    # OpenSpiel's floor γ = 0.3 projects that onto (0.3, 0.7); the scaled floor γ/(n+1) = 0.1 leaves it.
    # The result averages the initial uniform mixture and the one iterate.
    M = [[1.0, 0.0]]
    np.testing.assert_allclose(prd(M, gamma=0.3, dt=1.6, steps=1), [0.4, 0.6], atol=1e-12)
    np.testing.assert_allclose(prd(M, gamma=0.3, dt=1.6, steps=1, floor="openspiel"), [0.4, 0.6], atol=1e-12)
    np.testing.assert_allclose(prd(M, gamma=0.3, dt=1.6, steps=1, floor="scaled"), [0.3, 0.7], atol=1e-12)
    # dt = 0.4, no floor: (1/2 − 0.4/4, 1/2 + 0.4/4) = (0.4, 0.6), averaged with the start: (0.45, 0.55); two
    # identical snapshots give the partner the same step (the learner starts uniform over them)
    np.testing.assert_allclose(prd(M, gamma=0.0, dt=0.4, steps=1), [0.45, 0.55], atol=1e-12)
    np.testing.assert_allclose(prd([[1.0, 0.0], [1.0, 0.0]], gamma=0.0, dt=0.4, steps=1), [0.45, 0.55], atol=1e-12)
    # no floor: the same step, unprojected
    np.testing.assert_allclose(prd(M, gamma=0.0, dt=1.6, steps=1), [0.3, 0.7], atol=1e-12)
    # two steps from (0.3, 0.7) with OpenSpiel's floor: xᵀMy = 0.3, y0 − 1.6·0.3·0.7 = −0.036 -> back to (0.3, 0.7)
    np.testing.assert_allclose(prd(M, gamma=0.3, dt=1.6, steps=2), [(0.5 + 0.3 + 0.3) / 3, (0.5 + 0.7 + 0.7) / 3],
                               atol=1e-12)


def test_prd_long_run_sits_on_the_floor():
    # partner 1 is strictly worse for the learner in every row: the minimiser leaves every other partner at
    # the floor, γ with OpenSpiel's definition, γ/(P+1) with the scaled one (P = 3 partners, K = 2 snapshots)
    M = np.array([[3.0, 1.0, 2.0], [2.0, 0.0, 5.0]])
    y = prd(M, gamma=0.2)
    assert y[[0, 2]] == pytest.approx([0.2, 0.2], abs=0.01) and y[1] == pytest.approx(0.6, abs=0.02)
    y = prd(M, gamma=0.2, floor="scaled")
    assert y[[0, 2]] == pytest.approx([0.05, 0.05], abs=0.01) and y[1] == pytest.approx(0.9, abs=0.02)
    # at γ = 1/P OpenSpiel's floor leaves only the uniform mixture
    np.testing.assert_allclose(prd(M, gamma=1 / 3, steps=50), THIRD, atol=1e-12)
    with pytest.raises(UserError, match=r"gamma \(0.4\) times the number of strategies \(3\) must be <= 1"):
        prd(M, gamma=0.4)
    assert prd(M, gamma=0.4, floor="scaled")[0] == pytest.approx(0.1, abs=0.01)
    with pytest.raises(UserError, match="floor must be one of openspiel, scaled"):
        solve("prd", M, floor="paper")


def test_prd_is_invariant_to_payoff_units_when_normalised():
    np.testing.assert_allclose(prd(WRPS * 100.0 + 7.0), prd(WRPS), atol=1e-9)
    np.testing.assert_allclose(prd(WRPS * 0.01, steps=2_000), prd(WRPS, steps=2_000), atol=1e-9)  # range < 1
    # without normalisation the units change the dynamics (dt multiplies the payoffs)
    assert np.abs(prd(WRPS * 0.01, steps=2_000, normalize=False) - prd(WRPS, steps=2_000, normalize=False)).max() > 0.01
    # a constant matrix (range 0): nothing to prefer, no division by zero
    np.testing.assert_allclose(prd(np.full((2, 3), 5.0), steps=100), THIRD, atol=1e-12)
    np.testing.assert_allclose(alpharank(np.full((2, 3), 5.0)), THIRD, atol=1e-12)


def test_prd_parameter_checks():
    for bad, match in [({"gamma": 1.0}, r"gamma must be in \[0, 1\) \(got 1.0\)"),
                       ({"gamma": -0.1}, r"gamma must be in \[0, 1\)"),
                       ({"gamma": float("nan")}, r"gamma must be in \[0, 1\)"),
                       ({"steps": 0}, r"steps must be a positive integer \(got 0\)"),
                       ({"steps": 1.5}, r"steps must be a positive integer \(got 1.5\)"),
                       ({"dt": -1.0}, r"dt must be > 0 \(got -1.0\)")]:
        with pytest.raises(UserError, match=match):
            prd(RPS, **bad)
    assert prd(RPS, steps=1).shape == (3,)  # one step is allowed


# ------------------------------------------------------------------------------------ alpha-rank

def test_alpharank_rps_is_uniform_single_and_two_population():
    np.testing.assert_allclose(alpharank(RPS), THIRD, atol=1e-6)
    np.testing.assert_allclose(alpharank(RPS, population="single"), THIRD, atol=1e-6)
    np.testing.assert_allclose(alpharank(RPS, population="two"), THIRD, atol=1e-6)


def test_alpharank_single_population_two_strategies_closed_form():
    # G = [[0, a], [-a, 0]]: pi0 / pi1 = rho(s=1 -> r=0) / rho(s=0 -> r=1) = exp(alpha * m * a)
    a, alpha, m = 1.0, 0.1, 5
    pi = alpharank([[0, a], [-a, 0]], alpha=alpha, m=m, normalize=False)
    assert pi[0] / pi[1] == pytest.approx(math.exp(alpha * m * a), rel=1e-9)


def test_alpharank_closed_forms_at_other_scales():
    # single population, G = [[0, a], [-a, 0]]: pi0 / pi1 = exp(alpha · m/(m−1) · a · (m − 1)) = exp(alpha · m · a),
    # here with a ≠ 1 and the smallest population m = 2
    for a, alpha, m in [(0.5, 0.3, 2), (2.0, 0.2, 7)]:
        pi = alpharank([[0, a], [-a, 0]], alpha=alpha, m=m, normalize=False)
        assert pi[0] / pi[1] == pytest.approx(math.exp(alpha * m * a), rel=1e-9)
    # two populations, one snapshot and two partners: the partner chain alone, fitness −M;
    # pi0 / pi1 = rho(1 -> 0) / rho(0 -> 1) with u = α (M[0, 1] − M[0, 0]) for the move 1 -> 0
    M = np.array([[1.0, 3.0]])
    alpha, m = 0.4, 5

    def rho(u):
        return (1 - math.exp(-u)) / (1 - math.exp(-m * u))

    pi = alpharank(M, alpha=alpha, m=m, normalize=False)
    assert pi[0] / pi[1] == pytest.approx(rho(alpha * 2.0) / rho(-alpha * 2.0), rel=1e-9)
    # a tie (u = 0): neutral drift, fixation 1/m both ways -> equal mass
    np.testing.assert_allclose(alpharank([[2.0, 2.0]], normalize=False), [0.5, 0.5], atol=1e-12)
    # normalised by default: the units of the return do not matter
    np.testing.assert_allclose(alpharank(DOMINANT * 0.01), alpharank(DOMINANT), atol=1e-9)
    np.testing.assert_allclose(alpharank(DOMINANT * 0.01), alpharank(DOMINANT, normalize=True), atol=1e-12)
    assert np.abs(alpharank(DOMINANT * 0.01, normalize=False) - alpharank(DOMINANT)).max() > 1e-3
    # one strategy of a symmetric game
    np.testing.assert_allclose(alpharank([[0.0]]), [1.0])


def test_two_population_alpharank_on_a_2x2_meta_game_by_hand():
    """The 4 profiles (k, i) and their moves written out one by one, the stationary distribution as the left
    eigenvector of eigenvalue 1: an independent construction of the chain α-Rank's docstring describes."""
    M = np.array([[0.3, 1.0], [0.8, -0.5]])
    alpha, m = 1.5, 4

    def rho(u):
        return (1 - math.exp(-u)) / (1 - math.exp(-m * u))

    states = [(0, 0), (0, 1), (1, 0), (1, 1)]
    C = np.zeros((4, 4))
    for a, (k, i) in enumerate(states):
        for b, (k2, i2) in enumerate(states):
            if k2 != k and i2 == i:  # the learner switches snapshot: its return goes up by M[k2, i] − M[k, i]
                C[a, b] = 0.5 * rho(alpha * (M[k2, i] - M[k, i]))
            elif i2 != i and k2 == k:  # the partner switches: its fitness is minus the learner's return
                C[a, b] = 0.5 * rho(-alpha * (M[k, i2] - M[k, i]))
        C[a, a] = 1 - C[a].sum()
    w, v = np.linalg.eig(C.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1))])
    pi = pi / pi.sum()
    np.testing.assert_allclose(alpharank(M, alpha=alpha, m=m, normalize=False), [pi[0] + pi[2], pi[1] + pi[3]],
                               atol=1e-12)
    assert abs(pi[0] + pi[2] - 0.5) > 0.02  # not a symmetric answer that a broken chain could also give


def test_alpharank_parameter_checks():
    for bad, match in [({"alpha": 0.0}, r"alpha must be > 0 \(got 0.0\)"),
                       ({"m": 1}, r"m \(population size\) must be an integer >= 2 \(got 1\)"),
                       ({"m": 2.5}, r"must be an integer >= 2 \(got 2.5\)"),
                       ({"population": "three"}, r"population must be 'auto', 'single' or 'two' \(got 'three'\)")]:
        with pytest.raises(UserError, match=match):
            alpharank(RPS, **bad)
    # nearly antisymmetric (1e-9 off) is not antisymmetric: "auto" runs two populations, "single" refuses
    near = RPS + 1e-9 * np.eye(3)
    np.testing.assert_allclose(alpharank(near), alpharank(near, population="two"), atol=1e-15)
    with pytest.raises(UserError, match=r"^alpharank: population='single' needs a square antisymmetric M \(symmetric "
                                        r"zero-sum meta-game\); use population='two'$"):
        alpharank(near, population="single")


def test_alpharank_concentrates_on_the_worst_partner():
    # antisymmetric, column 0 is where the learner does worst -> partner 0 beats every other partner
    T = np.array([[0, 1, 1], [-1, 0, 1], [-1, -1, 0]], dtype=float)
    assert alpharank(T, alpha=100.0)[0] > 0.99
    assert alpharank(DOMINANT, alpha=100.0)[1] > 0.99
    with pytest.raises(UserError):
        alpharank(DOMINANT, population="single")


def test_alpharank_extreme_alpha_does_not_overflow():
    M = np.random.default_rng(1).normal(size=(4, 5))
    p = alpharank(M, alpha=1e6, m=1000)
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0)


# ------------------------------------------------------------------------------------ MEP / FCP

def test_prioritized_known_answer():
    np.testing.assert_allclose(prioritized([[1, 2, 3]], beta=1), np.array([3, 2, 1]) / 6, atol=1e-12)
    # the latest snapshot (last row) is the one that counts
    np.testing.assert_allclose(prioritized([[9, 0, 5], [1, 2, 3]], beta=1), np.array([3, 2, 1]) / 6)
    # beta = 3: (27, 8, 1) / 36
    np.testing.assert_allclose(prioritized([[1, 2, 3]], beta=3), np.array([27, 8, 1]) / 36, atol=1e-12)
    np.testing.assert_allclose(prioritized([[1, 2, 3]], beta=0), THIRD)


def test_prioritized_dense_rank_ties():
    # returns (1, 1, 3): dense ranks (2, 2, 1) -> (2, 2, 1) / 5 (an ordinal rank would give 3, 2, 1)
    np.testing.assert_allclose(prioritized([[1, 1, 3]], beta=1), np.array([2, 2, 1]) / 5, atol=1e-12)
    # returns (5, 0, 5, 2): dense ranks (1, 3, 1, 2)
    np.testing.assert_allclose(prioritized([[5, 0, 5, 2]], beta=1), np.array([1, 3, 1, 2]) / 7, atol=1e-12)


def test_prioritized_negative_returns_still_favour_the_worst_partner():
    p = prioritized([[-3, -1, 2]], beta=1)
    np.testing.assert_allclose(p, np.array([3, 2, 1]) / 6)


def test_uniform():
    np.testing.assert_allclose(uniform(np.zeros((2, 4))), np.full(4, 0.25))


# ------------------------------------------------------------------------------------ all solvers

@pytest.mark.parametrize("name", sorted(SOLVERS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_solver_returns_a_probability_vector(name, seed):
    M = np.random.default_rng(seed).normal(size=(5, 7)) * 10
    p = solve(name, M)
    assert isinstance(p, np.ndarray) and p.dtype == np.float64 and p.shape == (7,)
    assert np.all(p >= 0) and p.sum() == pytest.approx(1.0, abs=1e-12)


def test_documented_defaults():
    # README / docstrings: prioritized beta 3; alpha-rank alpha 10, m 50; prd gamma 1e-6 with OpenSpiel's floor,
    # 1e4 steps of dt 1e-2; prd and alpha-rank normalise the payoffs
    M = np.random.default_rng(7).normal(size=(3, 4))
    np.testing.assert_array_equal(prioritized(M), prioritized(M, beta=3.0))
    np.testing.assert_array_equal(alpharank(M), alpharank(M, alpha=10.0, m=50, population="auto", normalize=True))
    np.testing.assert_array_equal(prd(M), prd(M, gamma=1e-6, dt=1e-2, steps=10_000, normalize=True, floor="openspiel"))


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_every_solver_handles_one_partner_and_one_snapshot(name):
    np.testing.assert_allclose(solve(name, [[1.0], [2.0]]), [1.0])
    np.testing.assert_array_equal(solve(name, [[3.0]]), [1.0])
    p = solve(name, [[1.0, 2.0, 3.0]])
    assert p.shape == (3,) and p.sum() == pytest.approx(1.0)


def test_errors():
    with pytest.raises(UserError, match=r"unknown solver 'x' \(allowed: alpharank, maximin"):
        solve("x", RPS)
    with pytest.raises(UserError, match="empty"):
        solve("maximin", np.zeros((0, 3)))
    with pytest.raises(UserError, match="NaN or inf"):
        solve("prd", [[1.0, np.nan]])
    with pytest.raises(UserError, match="NaN or inf"):
        solve("uniform", [[1.0, np.inf]])
    with pytest.raises(UserError, match="2-D"):
        solve("maximin", [1.0, 2.0])
    with pytest.raises(UserError, match="2-D"):
        solve("maximin", np.zeros((2, 2, 2)))
    with pytest.raises(UserError, match="numeric"):
        solve("maximin", [["a", "b"]])
    with pytest.raises(UserError, match=r"solver 'prd' has no parameter\(s\) betta, x \(allowed: gamma, dt, steps, "
                                        r"normalize, floor\)"):
        solve("prd", RPS, betta=2, x=1)
    with pytest.raises(UserError, match=r"solver 'uniform' has no parameter\(s\) beta \(allowed: none\)"):
        solve("uniform", RPS, beta=2)
    with pytest.raises(UserError, match="game matrix has NaN or inf entries"):
        nash_zero_sum([[1.0, np.nan]])
    with pytest.raises(UserError, match="best"):
        solve("minimax_regret", RPS, best=[1.0, 2.0])
    with pytest.raises(UserError, match="beta"):
        solve("prioritized", RPS, beta=-1)
    with pytest.raises(UserError, match="dt"):
        solve("prd", RPS, dt=0)
    with pytest.raises(UserError, match="alpha"):
        solve("alpharank", RPS, alpha=-1)
    for fn in SOLVERS.values():               # the functions validate too, not only the dispatcher
        with pytest.raises(UserError):
            fn(np.zeros((0, 0)))


# ------------------------------------------------------------------------------------ OpenSpiel (optional)

@pytest.mark.parametrize("gamma", [1e-6, 0.05, 0.2])
def test_prd_matches_open_spiel(gamma):
    pytest.importorskip("open_spiel")
    from open_spiel.python.algorithms.projected_replicator_dynamics import projected_replicator_dynamics
    rng = np.random.default_rng(3)
    for shape in ((3, 3), (3, 4), (4, 2)):
        M = rng.normal(size=shape)
        # the same algorithm (floor γ, average over the initial strategy and every iterate): equal to rounding
        ref = projected_replicator_dynamics([M, -M], prd_gamma=gamma, prd_iterations=2_000, prd_dt=1e-2)
        ours = prd(M, gamma=gamma, steps=2_000, dt=1e-2, normalize=False)
        np.testing.assert_allclose(ours, ref[1], atol=1e-10)
        if gamma >= 0.05:  # the scaled floor γ/(n+1) is another algorithm
            scaled = prd(M, gamma=gamma, steps=2_000, dt=1e-2, normalize=False, floor="scaled")
            assert np.abs(scaled - ref[1]).max() > 1e-3


def test_single_population_alpharank_matches_open_spiel():
    pytest.importorskip("open_spiel")
    from open_spiel.python.egt import alpharank as os_alpharank
    rng = np.random.default_rng(5)
    for n in (3, 4):
        B = rng.normal(size=(n, n))
        G = B - B.T  # a symmetric zero-sum meta-game
        # OpenSpiel's constant-sum closed form u = α·m/(m−1)·G[r, s] (its default, the local selection model,
        # uses u = α·(G[r, s] − G[s, r]) instead)
        _, _, pi, _, _ = os_alpharank.compute([G], m=20, alpha=0.7, use_local_selection_model=False)
        np.testing.assert_allclose(alpharank(G, alpha=0.7, m=20, normalize=False, population="single"), pi,
                                   atol=1e-10)


def test_alpharank_matches_open_spiel():
    pytest.importorskip("open_spiel")
    from open_spiel.python.egt import alpharank as os_alpharank
    rng = np.random.default_rng(4)
    for _ in range(3):
        M = rng.normal(size=(3, 4))
        _, _, pi, _, _ = os_alpharank.compute([M, -M], m=20, alpha=1.0)
        ref = np.asarray(pi).reshape(3, 4).sum(axis=0)
        np.testing.assert_allclose(alpharank(M, alpha=1.0, m=20, normalize=False), ref, atol=1e-6)
    # ties (fixation 1/m, neutral drift) next to selection: the learner is indifferent between its snapshots
    # with partner 0, and partners 1 and 2 tie against snapshot 0
    M = np.array([[0.0, 1.0, 1.0], [0.0, 2.0, -1.0]])
    _, _, pi, _, _ = os_alpharank.compute([M, -M], m=5, alpha=0.5)
    np.testing.assert_allclose(alpharank(M, alpha=0.5, m=5, normalize=False),
                               np.asarray(pi).reshape(2, 3).sum(axis=0), atol=1e-10)
