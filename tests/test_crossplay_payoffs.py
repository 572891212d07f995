"""Cross-play, evaluate and the reports of games that pay each seat its own reward (zero-sum, general-sum): the
metric functions against hand-computed values, the matrices of deterministic members of a two-table game, and
the common-payoff outputs unchanged."""

import hashlib
import json

import numpy as np
import pytest
from test_crossplay import _result, forced_population
from test_payoffs import DOMINANT, TwoTables

from adhoc.cli import main
from adhoc.crossplay import (
    ZERO_SUM_NOT_APPLICABLE,
    CrossPlayResult,
    bootstrap_ci,
    conventions,
    crossplay,
    member_payoffs,
    normalised,
    outcome_rates,
    score_ci,
    seat_metrics,
    summary,
)
from adhoc.games import make_game
from adhoc.recipes.evaluate import outcome_rates as evaluation_outcomes
from adhoc.recipes.evaluate import with_payoff
from adhoc.report import heatmap_png, html_report, markdown, terminal_table

BOS_R0 = np.array([[3.0, 0.0], [0.0, 1.0]])  # battle of the sexes: seat 0 prefers (a, a), seat 1 (b, b)
BOS_R1 = np.array([[1.0, 0.0], [0.0, 3.0]])


# ------------------------------------------------------------------ pure metrics, by hand
def test_member_payoffs_by_hand():
    x0 = np.array([[1.0, 2.0, -1.0], [0.0, 5.0, 1.0], [3.0, -2.0, 0.0]])
    x1 = -x0
    got = member_payoffs(x0, x1)
    # member 0: seat 0 with 1, 2: (2 - 1)/2 = 0.5; seat 1 (column 0, rows 1, 2): -(0 + 3)/2 = -1.5
    assert got["payoff_seat0"] == pytest.approx([0.5, 0.5, 0.5])
    assert got["payoff_seat1"] == pytest.approx([-1.5, 0.0, 0.0])  # member 2: -(-1 + 1)/2
    assert got["score"] == pytest.approx([-0.5, 0.25, 0.25])
    assert np.isnan(member_payoffs(np.ones((1, 1)), np.ones((1, 1)))["score"][0])


def test_outcome_rates_by_hand():
    seat0 = np.zeros((2, 2, 4))
    seat0[0, 1] = [1.0, 1.0, 0.0, -1.0]  # row member 0 against 1: 2 wins, 1 draw, 1 loss
    seat0[1, 0] = [-1.0, -1.0, -1.0, 0.0]  # row member 1 against 0: 3 losses, 1 draw
    seat0[0, 0] = seat0[1, 1] = 1.0
    returns = np.stack([seat0, -seat0], -1)  # [2, 2, 4, 2]
    r = outcome_rates(returns)
    assert r["win"] == [[1.0, 0.5], [0.0, 1.0]] and r["draw"] == [[0.0, 0.25], [0.25, 0.0]]
    assert r["loss"] == [[0.0, 0.25], [0.75, 0.0]]
    for key in ("win", "draw", "loss"):  # the three rates add up to 1, per cell and per member
        assert np.allclose(np.sum([r[k] for k in ("win", "draw", "loss")], 0), 1.0)
        assert np.allclose(np.sum([r[f"{k}_rate"] for k in ("win", "draw", "loss")], 0), 1.0)
    # member 0: seat 0 vs 1 wins 1/2; seat 1 in (1, 0) its return is +1 three times of 4 → win 3/4
    assert r["win_rate"] == pytest.approx([(0.5 + 0.75) / 2, (0.0 + 0.25) / 2])
    assert r["draw_rate"] == pytest.approx([(0.25 + 0.25) / 2, (0.25 + 0.25) / 2])
    assert r["loss_rate"] == pytest.approx([(0.25 + 0.0) / 2, (0.75 + 0.5) / 2])


def test_score_ci_brackets_the_score_and_is_a_point_for_constant_returns():
    rng = np.random.default_rng(0)
    seat0 = rng.normal(size=(3, 3, 40))
    returns = np.stack([seat0, -seat0], -1)
    score = member_payoffs(returns[..., 0].mean(-1), returns[..., 1].mean(-1))["score"]
    ci = score_ci(returns, n_boot=300)
    assert all(lo <= s <= hi for s, (lo, hi) in zip(score, ci))
    const = np.stack([np.full((2, 2, 8), 0.5), np.full((2, 2, 8), -0.5)], -1)
    assert score_ci(const, n_boot=50) == [[0.0, 0.0], [0.0, 0.0]]


def test_zero_sum_metrics_leave_the_common_payoff_notions_out():
    seat0 = np.array([[1.0, 2.0], [0.0, 1.0]])[..., None].repeat(4, -1)
    metrics, half = seat_metrics(np.stack([seat0, -seat0], -1), "zero_sum", n_boot=20)
    assert half is None and metrics["not_applicable"] == list(ZERO_SUM_NOT_APPLICABLE)
    assert not {"sp_mean", "xp_mean", "gap", "proportional_loss", "normalised"} & set(metrics)
    assert metrics["score"] == pytest.approx([1.0, -1.0])


def test_general_sum_metrics_are_the_common_ones_on_the_welfare_per_seat():
    rng = np.random.default_rng(1)
    returns = rng.integers(0, 4, size=(3, 3, 16, 2)).astype(float)
    metrics, half = seat_metrics(returns, "general_sum", n_boot=50, seed=2)
    x0, x1 = returns[..., 0].mean(-1), returns[..., 1].mean(-1)
    assert np.allclose(metrics["welfare"], x0 + x1) and np.allclose(half, (x0 + x1) / 2)
    common = summary((x0 + x1) / 2)
    for key in ("sp_mean", "xp_mean", "gap", "proportional_loss", "row_xp", "col_xp"):
        assert metrics[key] == pytest.approx(common[key])
    ci = bootstrap_ci(returns.sum(-1) / 2, n_boot=50, seed=2)
    assert {k: metrics["ci95"][k] for k in ci} == ci
    assert metrics["normalised"] == normalised((x0 + x1) / 2).tolist()
    assert metrics["score"] == member_payoffs(x0, x1)["score"]


# ------------------------------------------------------------------ deterministic members of two-table games
@pytest.fixture
def two_tables(monkeypatch):
    """Saved populations of a two-table game: the manifest names a registered game (``matrix``), and
    ``build_game`` is patched to rebuild the two-table game instead (none is registered here)."""
    import adhoc.games

    games = {}

    def build(config):
        return games["game"]

    monkeypatch.setattr(adhoc.games, "build_game", build)

    def make(path, r0, r1, kind, actions, name="matrix"):
        games["game"] = game = TwoTables(r0, r1, kind)
        return forced_population(path, game, name, actions)

    return make


def test_zero_sum_crossplay_of_deterministic_members(tmp_path, two_tables, capsys):
    pop = two_tables(tmp_path / "pop", DOMINANT, -DOMINANT, "zero_sum", [0, 1])  # m0 plays a, m1 plays b
    result = crossplay([pop], episodes=8, n_boot=50)
    assert result.payoff == "zero_sum"
    assert np.allclose(result.matrix, DOMINANT, atol=1e-6)  # X0[i, j] = DOMINANT[a_i, a_j]
    assert np.array_equal(result.matrix_seat1, -result.matrix)  # exactly
    mt = result.metrics
    # score_0 = (X0[0, 1] + X1[1, 0]) / 2 = (2 + 0) / 2; score_1 = (X0[1, 0] + X1[0, 1]) / 2 = (0 - 2) / 2
    assert mt["score"] == pytest.approx([1.0, -1.0])
    assert mt["win"] == [[1.0, 1.0], [0.0, 1.0]] and mt["draw"] == [[0.0, 0.0], [1.0, 0.0]]
    # m0: wins as seat 0 against m1, draws as seat 1 (return -0); m1: draws as seat 0, loses as seat 1
    assert mt["win_rate"] == [0.5, 0.0] and mt["draw_rate"] == [0.5, 0.5] and mt["loss_rate"] == [0.0, 0.5]
    assert mt["ci95"]["score"] == [[1.0, 1.0], [-1.0, -1.0]]
    data = result.to_json()
    assert data["payoff"] == "zero_sum" and data["conventions"] is None and data["n_conventions"] is None
    assert data["threshold"] is None and "sp_mean" not in data and "conventions" in data["not_applicable"]
    assert json.loads(json.dumps(data)) == data
    assert result.order() == [0, 1]
    # the blocks player plays the seats too: the same matrices
    from adhoc.distributed.blocks import LocalBlocks

    tiled = crossplay([pop], episodes=8, n_boot=50, play=LocalBlocks(1))
    assert np.array_equal(tiled.matrix, result.matrix) and np.array_equal(tiled.matrix_seat1, result.matrix_seat1)
    # two populations: A's mean payoff against B over both seatings
    other = two_tables(tmp_path / "b", DOMINANT, -DOMINANT, "zero_sum", [1])
    both = crossplay([pop, other], episodes=4, n_boot=20)
    cross = both.metrics["cross"]["pop vs b"]
    # m0 against b's member (plays b): (X0 = 2, X1 = -0) / 2 = 1; m1 against it: (1 - 1) / 2 = 0
    assert cross["per_partner"] == pytest.approx([0.5]) and cross["worst_pair"] == pytest.approx(0.0)
    # the command's outputs
    out = tmp_path / "xp"
    assert main(["crossplay", str(pop), "--episodes", "4", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cross-play on matrix (zero-sum)" in text and "score" in text and "conventions" not in text.split("\n")[1]
    assert np.array_equal(np.load(out / "matrix_seat1.npy"), -np.load(out / "matrix.npy"))
    assert json.loads((out / "crossplay.json").read_text())["payoff"] == "zero_sum"
    md = (out / "report.md").read_text()
    assert "Zero-sum" in md and "## Conventions" not in md and "2.00 (W 1.00 D 0.00 L 0.00)" in md
    assert "Zero-sum" in (out / "report.html").read_text() and (out / "heatmap.png").read_bytes()[:4] == b"\x89PNG"


def test_general_sum_crossplay_of_deterministic_members(tmp_path, two_tables):
    pop = two_tables(tmp_path / "pop", BOS_R0, BOS_R1, "general_sum", [0, 1, 0])
    result = crossplay([pop], episodes=8, n_boot=50)
    acts = [0, 1, 0]
    assert np.allclose(result.matrix, BOS_R0[np.ix_(acts, acts)], atol=1e-6)
    assert np.allclose(result.matrix_seat1, BOS_R1[np.ix_(acts, acts)], atol=1e-6)
    mt = result.metrics
    assert np.allclose(mt["welfare"], result.matrix + result.matrix_seat1)
    half = (result.matrix + result.matrix_seat1) / 2
    assert mt["sp_mean"] == pytest.approx(np.diag(half).mean())
    assert result.conventions == conventions(half, ["m0", "m1", "m2"]) == [["m0", "m2"], ["m1"]]
    data = result.to_json()
    assert data["payoff"] == "general_sum" and data["n_conventions"] == 2 and json.loads(json.dumps(data)) == data
    table = terminal_table(result)
    assert "3.00, 1.00" in table and "1.00, 3.00" in table and "0.00, 0.00" in table
    assert "(welfare per seat)" in table
    md = markdown(result)
    assert "General-sum" in md and "| 3.00, 1.00 |" in md
    assert "welfare" in html_report(result, heatmap_png(result))


# ------------------------------------------------------------------ common payoff unchanged
def test_common_payoff_crossplay_json_is_the_previous_code_paths(tmp_path):
    """to_json of a common game: the keys, in order, and the values the code before per-seat payoffs computed."""
    game = make_game("lever")
    levers = [3, 3, 0]
    result = crossplay([forced_population(tmp_path / "pop", game, "lever", levers)], episodes=8, n_boot=100)
    data = result.to_json()
    matrix = result.matrix
    returns = np.repeat(matrix[..., None], 8, -1)  # deterministic members: every episode the same
    expected = {"game": "lever", "members": ["m0", "m1", "m2"], "populations": {"pop": [0, 1, 2]}, "episodes": 8,
                "matrix": matrix.tolist(), "threshold": 0.5, **summary(matrix),
                "ci95": bootstrap_ci(returns, n_boot=100), "self_play": [float(v) for v in np.diag(matrix)],
                "normalised": normalised(matrix).tolist(), "n_conventions": 2,
                "conventions": [["m0", "m1"], ["m2"]], "member_conventions": data["member_conventions"]}
    assert list(data) == list(expected) and data == expected
    assert result.payoff == "common" and result.matrix_seat1 is None


def test_common_payoff_report_text_is_byte_identical():
    """sha256 of report.md + terminal table + report.html of a hand-made common result, from the code before
    per-seat payoffs."""
    result = _result(["a/m0", "a/m1", "b/m0"])
    result.metrics["self_play"] = [float(v) for v in np.diag(result.matrix)]
    text = markdown(result) + terminal_table(result) + html_report(result, b"PNG")
    assert hashlib.sha256(text.encode()).hexdigest() == \
        "9c195bfa354f71861a2f617a05bf59fb23357c87e024ffb841d085ec7f885c75"
    assert isinstance(result, CrossPlayResult) and "payoff" not in result.to_json()


# ------------------------------------------------------------------ evaluate
def test_evaluation_outcome_rates_by_hand():
    returns = np.array([[[[1.0, -1.0, 0.0, 2.0], [0.0, 0.0, -1.0, -1.0]],  # member 0, partner 0: seat 0, seat 1
                         [[1.0, 1.0, 1.0, 1.0], [np.nan] * 4]]])  # partner 1: seat 1 not played
    r = evaluation_outcomes(returns)
    # partner 0: seat 0 win 1/2 draw 1/4 loss 1/4, seat 1 draw 1/2 loss 1/2 → means over the two seatings
    assert r["win"] == [0.25, 1.0] and r["draw"] == [0.375, 0.0] and r["loss"] == [0.375, 0.0]
    two = np.concatenate([returns, -returns], 0)  # a mixture of it and its negation, weights 0.75 / 0.25
    w = evaluation_outcomes(two, np.array([0.75, 0.25]))
    assert w["win"] == pytest.approx([0.75 * 0.25 + 0.25 * 0.375, 0.75], abs=1e-4)  # rounded to 4 places
    fresh = lambda: {"mean_return": 0.0, "per_partner": [{"partner": "p0"}, {"partner": "p1"}]}
    assert with_payoff(fresh(), "common", returns) == fresh()
    out = with_payoff(fresh(), "zero_sum", returns)
    assert list(out)[:3] == ["payoff", "returns_are", "not_applicable"] and out["payoff"] == "zero_sum"
    assert out["per_partner"][1]["win"] == 1.0 and out["win_rate"] == pytest.approx(0.625)
    assert "win" not in with_payoff(fresh(), "general_sum", returns)["per_partner"][0]


def test_zero_sum_evaluation_reports_own_seat_payoffs_and_outcomes(tmp_path, two_tables):
    from adhoc.recipes.evaluate import evaluate
    from adhoc.report import evaluation_markdown

    pop = two_tables(tmp_path / "pop", DOMINANT, -DOMINANT, "zero_sum", [0, 1])
    result = evaluate(pop, [str(pop)], episodes=4, n_boot=20)  # agent m0 (plays a) with m0 and m1
    data = result.to_json()
    assert data["payoff"] == "zero_sum" and "regret" in data["not_applicable"]
    m0, m1 = data["per_partner"]
    # with m0: seat 0 payoff 1, seat 1 payoff -1; with m1: seat 0 DOMINANT[0, 1] = 2, seat 1 -DOMINANT[1, 0] = 0
    assert (m0["return_seat0"], m0["return_seat1"], m1["return_seat0"], m1["return_seat1"]) == (1.0, -1.0, 2.0, 0.0)
    assert (m0["win"], m0["draw"], m0["loss"]) == (0.5, 0.0, 0.5) and (m1["win"], m1["draw"], m1["loss"]) == (0.5, 0.5, 0.0)
    assert m0["self_play"] is None and m0["regret"] is None and data["mean_regret"] is None
    assert data["win_rate"] == 0.5 and "win / draw / loss" in evaluation_markdown(result)


def test_bound_refuses_a_game_with_per_seat_payoffs(tmp_path, two_tables, capsys):
    pop = two_tables(tmp_path / "pop", DOMINANT, -DOMINANT, "zero_sum", [0], name="repeated")
    assert main(["evaluate", str(pop), "--partners", str(pop), "--bound", "--episodes", "2",
                 "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("adhoc: error: --bound") and "zero-sum" in err and "\n" not in err
    assert not (tmp_path / "ev").exists()
