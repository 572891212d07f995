"""Cross-play: metric definitions on hand-made matrices, exact matrices of deterministic members, reports."""

import json
import math

import numpy as np
import pytest
import torch
import yaml

from adhoc.cli import main
from adhoc.crossplay import bootstrap_ci, conventions, cross_population, crossplay, normalised, sp_xp, summary
from adhoc.games import make_game
from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import load_base
from adhoc.population import PopulationWriter
from test_cli import tree_digest as digest

TARGETS = ["q_proj", "v_proj", "lm_head"]


# ------------------------------------------------------------------ pure metrics
def test_metrics_hand_computed():
    X = np.array([[1.0, 0.0, 1.0], [0.0, 0.9, 0.0], [1.0, 0.0, 1.0]])
    sp, xp = sp_xp(X)
    assert sp == pytest.approx(2.9 / 3) and xp == pytest.approx(2 / 6)
    s = summary(X)
    assert s["gap"] == pytest.approx(2.9 / 3 - 1 / 3)
    assert s["proportional_loss"] == pytest.approx((2.9 / 3 - 1 / 3) / (2.9 / 3))
    assert s["row_xp"] == pytest.approx([0.5, 0.0, 0.5]) and s["col_xp"] == pytest.approx([0.5, 0.0, 0.5])
    assert normalised(X)[1, 1] == pytest.approx(1.0)
    assert conventions(X, ["a", "b", "c"]) == [["a", "c"], ["b"]]
    assert conventions(X, ["a", "b", "c"], threshold=1.01) == [["a"], ["b"], ["c"]]


def test_bootstrap_and_cross_population():
    returns = np.zeros((2, 2, 50))
    returns[0, 0] = returns[1, 1] = 1.0
    returns[0, 1, :25] = 1.0  # a noisy off-diagonal pair
    ci = bootstrap_ci(returns, n_boot=300)
    assert ci["sp_mean"] == [1.0, 1.0]
    lo, hi = ci["xp_mean"]
    assert lo < 0.25 < hi and 0.1 < lo and hi < 0.4
    X = np.array([[1.0, 0.2, 0.6], [0.4, 1.0, 0.0], [0.6, 0.0, 1.0]])
    c = cross_population(X, np.array([0]), np.array([1, 2]))
    assert c["per_partner"] == pytest.approx([0.3, 0.6]) and c["mean"] == pytest.approx(0.45)
    assert c["worst_partner"] == pytest.approx(0.3) and c["worst_pair"] == pytest.approx(0.3)


# ------------------------------------------------------------------ deterministic members, exact matrices
def forced_population(path, game, game_cfg, actions):
    """A population whose member k deterministically plays ``actions[k]`` (single-token actions) in both
    seats: its lm_head adapter adds a large logit to that action's token."""
    base = load_base("builtin:tiny", device="cpu")
    bank = AdapterBank(base.model, len(actions), 4, 8, TARGETS, base_model_id="builtin:tiny")
    tok = base.tokenizer
    states = []
    with torch.no_grad():
        for seat in (0, 1):
            ids = torch.tensor([[tok.bos_token_id] + tok(game.observe(game.reset(1, np.random.default_rng(0)), seat)[0]).input_ids])
            states.append(base.model.model(input_ids=ids).last_hidden_state[0, -1])
        direction = torch.stack(states).mean(0)
        head = bank.layers["lm_head"]
        for k, a in enumerate(actions):
            token = tok(" " + game.action_names(0)[a], add_special_tokens=False).input_ids
            assert len(token) == 1
            head.lora_A[k, 0] = direction / direction.norm()
            head.lora_B[k, token[0], 0] = 60.0 / (head.scaling * float(direction.norm()))
    writer = PopulationWriter(path)
    for k in range(len(actions)):
        bank.export_member(k, writer.staging / "members" / f"m{k}")
    writer.write_manifest({"game": game.params() | {"name": game_cfg}, "method": {"name": "selfplay"},
                           "base_model": {"id": "builtin:tiny", "fingerprint": base.fingerprint},
                           "adapter": {"rank": 4, "alpha": 8.0, "target_modules": TARGETS},
                           "members": [{"name": f"m{k}", "path": f"members/m{k}"} for k in range(len(actions))]})
    return writer.commit()


def test_deterministic_lever_members_give_exact_matrix(tmp_path):
    game = make_game("lever")
    levers = [3, 3, 0, 5, 0, 8]
    pop = forced_population(tmp_path / "pop", game, "lever", levers)
    result = crossplay([pop], episodes=16)
    expected = game.payoff_matrix()[np.ix_(levers, levers)]
    assert np.allclose(result.matrix, expected, atol=1e-6)
    assert len(result.conventions) == len(set(levers))
    assert sorted(map(sorted, result.conventions)) == sorted([["m0", "m1"], ["m2", "m4"], ["m3"], ["m5"]])
    assert [result.member_conventions[f"m{k}"]["convention"] for k in range(6)] == levers
    assert result.metrics["sp_mean"] == pytest.approx(np.diag(expected).mean())


def test_deterministic_cmg_members_give_block_indicator(tmp_path):
    game = make_game("cmg", block_sizes=[2, 2, 3])  # actions "0".."6": single tokens
    actions = [0, 1, 2, 4, 6]  # blocks 0, 0, 1, 2, 2
    blocks = [game.block_of(a) for a in actions]
    pop = forced_population(tmp_path / "pop", game, "cmg", actions)
    result = crossplay([pop], episodes=8)
    assert np.allclose(result.matrix, np.equal.outer(blocks, blocks).astype(float), atol=1e-6)
    assert len(result.conventions) == 3
    assert [result.member_conventions[f"m{k}"]["convention"] for k in range(5)] == blocks


def test_cross_population_and_report_files(tmp_path, capsys, monkeypatch):
    game = make_game("lever")
    a = forced_population(tmp_path / "a", game, "lever", [1, 2])
    b = forced_population(tmp_path / "b", game, "lever", [1, 1, 4])
    out = tmp_path / "xp"
    assert main(["crossplay", str(a), str(b), "--episodes", "8", "--out", str(out)]) == 0
    data = json.loads((out / "crossplay.json").read_text())
    for key in ("members", "matrix", "sp_mean", "xp_mean", "gap", "conventions", "ci95", "cross", "proportional_loss"):
        assert key in data
    assert data["members"][0] == "a/m0" and len(data["matrix"]) == 5
    assert data["cross"]["a vs b"]["per_partner"] == pytest.approx([0.5, 0.5, 0.0])
    assert data["cross"]["a vs b"]["worst_partner"] == 0.0 and data["cross"]["b vs a"]["mean"] == pytest.approx(2 / 6)
    assert np.load(out / "matrix.npy").shape == (5, 5)
    assert (out / "heatmap.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "cross-play" in html.lower()
    assert "| self-play mean (SP) |" in (out / "report.md").read_text()
    assert "cross-play on lever" in capsys.readouterr().out
    # the default output folder is runs/crossplay-<POP>-<time>-<id>, never inside the population
    monkeypatch.chdir(tmp_path)
    before = digest(a)
    assert main(["crossplay", str(a), "--episodes", "4"]) == 0 and digest(a) == before
    [default] = (tmp_path / "runs").glob("crossplay-a-*")
    assert (default / "crossplay.json").is_file()


def test_bad_crossplay_input(tmp_path, capsys):
    lever = forced_population(tmp_path / "lever", make_game("lever"), "lever", [1])
    small = forced_population(tmp_path / "lever4", make_game("lever", n_levers=4), "lever", [1])
    other_base = tmp_path / "other"
    forced_population(other_base, make_game("lever"), "lever", [2])
    manifest = yaml.safe_load((other_base / "population.yaml").read_text())
    manifest["base_model"]["fingerprint"] = "0" * 16
    (other_base / "population.yaml").write_text(yaml.safe_dump(manifest))
    for argv, match in [
        (["crossplay", str(tmp_path / "missing")], "population not found"),
        (["crossplay", str(lever), str(small)], "needs the same game"),
        (["crossplay", str(lever), str(other_base)], "different base models"),
        (["crossplay", str(lever), "--episodes", "0"], "--episodes must be >= 2"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("adhoc: error:") and match in err and "\n" not in err, err
    assert not (lever / "crossplay").exists()


def test_python_api_and_light_import(tmp_path):
    import subprocess
    import sys

    import adhoc

    pop = forced_population(tmp_path / "pop", make_game("lever", n_levers=4), "lever", [1, 2])
    result = adhoc.crossplay([pop], episodes=4)
    assert result.matrix.shape == (2, 2) and np.allclose(result.matrix, np.eye(2), atol=1e-6)
    code = "import sys, adhoc, adhoc.games; print(any(m in sys.modules for m in ('transformers', 'ray', 'peft')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_otherplay_relabelled_episodes_have_the_known_value(tmp_path):
    """J_OP of a deterministic member: 0.9 on the unique lever, 1/9 on any 1.0 lever (docs/reference.md)."""
    from adhoc.config import load_config
    from adhoc.errors import UserError
    from adhoc.methods import METHODS
    from adhoc.population import Population
    from adhoc.rollout import rollout

    game = make_game("lever")
    pop = Population.load(forced_population(tmp_path / "pop", game, "lever", [0, 4]))
    base = load_base("builtin:tiny", device="cpu")
    from adhoc.lm.policy import Policy

    policy = Policy(base, pop.build_bank(base))
    method = METHODS["otherplay"].build(METHODS["otherplay"].config_cls(), game, 2)
    rng = np.random.default_rng(0)
    pairs = method.pairs(0, rng)
    traj = rollout(game, policy, pairs, 4000, rng, grad=False, **method.rollout_options(pairs, 4000, rng))
    op_value = traj.returns.mean(1)
    assert op_value[0] == pytest.approx(0.9, abs=1e-6)
    assert op_value[1] == pytest.approx(1 / 9, abs=0.02)
    with pytest.raises(UserError, match="declares none"):
        METHODS["otherplay"].build(None, make_game("matrix", payoff=[[1, 0], [0, 1]]), 2)


# ------------------------------------------------------------------ report tables and figures name what they show
def _result(names, game="lever"):
    from adhoc.crossplay import CrossPlayResult

    n = len(names)
    X = np.eye(n) + 0.1 * np.arange(n)[None, :]  # column j has 0.1 j off the diagonal: columns tell apart
    metrics = summary(X)
    metrics["ci95"] = {k: [0.0, 1.0] for k in ("sp_mean", "xp_mean", "gap")}
    return CrossPlayResult(members=names, populations={}, matrix=X, episodes=8, metrics=metrics,
                           conventions=conventions(X, names), game=game)


def test_terminal_table_columns_name_their_members():
    from adhoc.report import terminal_table

    names = ["a/m0", "a/m1", "b/m0"]
    lines = terminal_table(_result(names)).splitlines()
    header = next(line for line in lines if "seat 0 \\ seat 1" in line)
    assert header.split()[5:8] == names and "row member in seat 0" in lines[lines.index(header) - 1]
    row = next(line for line in lines if line.strip().startswith("b/m0"))
    assert row.split()[1:4] == ["0.00", "0.10", "1.20"]  # the b/m0 column is the third
    # names too long for columns: the columns are numbered as the rows, and the table says so
    long = [f"population-{k}/member-{k:02d}" for k in range(6)]
    lines = terminal_table(_result(long)).splitlines()
    assert any("columns numbered as the rows" in line for line in lines)
    header = next(line for line in lines if "seat 0 \\ seat 1" in line)
    assert header.split()[5:11] == [str(k) for k in range(6)]
    assert [line.split()[:2] for line in lines[-6:]] == [[str(k), long[k]] for k in range(6)]
    assert max(len(line) for line in lines) <= 120
    assert "matrix is in the report" in terminal_table(_result(long), max_members=4)


def test_figure_titles_fit_in_the_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adhoc.report import fit_title, heatmap_png

    fig, ax = plt.subplots(figsize=(5, 4))
    agent = "runs/lever-learner-maximin-seed0-20250101-120000-abcd/learner:learner-epoch-03"
    fit_title(fig, ax, f"{agent} on lever: mean 0.500, worst 0.500\nsecond line")
    fig.tight_layout()
    fig.canvas.draw()
    box = ax.title.get_window_extent(fig.canvas.get_renderer())
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
    assert ax.title.get_text().count("\n") >= 2 and ax.title.get_text().endswith("second line")
    plt.close(fig)
    assert heatmap_png(_result(["a", "b"], game="x" * 200))[:4] == b"\x89PNG"


# ------------------------------------------------------------------ vectorised bootstrap and heatmaps at scale
def _loop_bootstrap(returns, statistic, idx, level=0.95):
    """The reference: one resample at a time, the statistic on each resample's gathered means."""
    stats = [np.asarray(statistic(returns[..., i].mean(-1)), dtype=np.float64) for i in idx]
    return np.nanpercentile(np.asarray(stats), [50 * (1 - level), 50 * (1 + level)], axis=0)


def test_vectorised_bootstrap_equals_the_loop_on_the_same_resamples():
    import warnings

    from adhoc.crossplay import bootstrap, resample_indices, resample_means

    E, B = 37, 300
    idx = resample_indices(E, B, seed=5)
    rng = np.random.default_rng(5)  # the same draws as one rng.integers(E, size=E) per resample
    assert (idx == np.stack([rng.integers(E, size=E) for _ in range(B)])).all()
    returns = np.random.default_rng(1).random((6, 6, E)) * (np.random.default_rng(2).random((6, 6, 1)) < 0.7)
    gathered = np.stack([returns[..., i].mean(-1) for i in idx], -1)  # [6, 6, B]
    assert resample_means(returns, idx, chunk_elements=7) == pytest.approx(gathered, abs=1e-12)

    def statistic(matrix):
        sp, xp = sp_xp(matrix)
        return sp, xp, sp - xp

    lo, hi = _loop_bootstrap(returns, statistic, idx)
    ci = bootstrap_ci(returns, n_boot=B, seed=5)
    assert [ci[k][0] for k in ("sp_mean", "xp_mean", "gap")] == pytest.approx(lo, abs=1e-12)
    assert [ci[k][1] for k in ("sp_mean", "xp_mean", "gap")] == pytest.approx(hi, abs=1e-12)
    assert lo[1] < hi[1]
    # any statistic, one resample at a time or batched; a NaN row (not played) stays NaN, the others do not
    returns[2, 3] = np.nan
    flat = lambda m: m.reshape(-1)  # noqa: E731
    with warnings.catch_warnings():  # the NaN column's percentile
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = _loop_bootstrap(returns, flat, idx, level=0.9)
        got = bootstrap(returns, flat, n_boot=B, seed=5, level=0.9)
        batched = bootstrap(returns, lambda m: m.reshape(-1, m.shape[-1]), n_boot=B, seed=5, level=0.9, batched=True)
    for a in (got, batched):
        assert np.isnan(a[0][2 * 6 + 3]) and np.isfinite(np.delete(a[0], 2 * 6 + 3)).all()
        assert np.asarray(a) == pytest.approx(ref, abs=1e-12, nan_ok=True)


def test_bootstrap_of_constant_returns_is_a_point():
    returns = np.full((4, 4, 16), 0.75)
    returns[np.arange(4), np.arange(4)] = 1.0
    ci = bootstrap_ci(returns, n_boot=200, seed=3)
    assert ci["sp_mean"] == [1.0, 1.0] and ci["xp_mean"] == [0.75, 0.75] and ci["gap"] == [0.25, 0.25]


def test_heatmap_cell_text_only_for_small_populations_and_256_renders():
    import matplotlib.pyplot as plt

    from adhoc.report import CELL_TEXT_MAX, heatmap_figure, heatmap_png

    for n, texts in ((3, 9), (CELL_TEXT_MAX, CELL_TEXT_MAX ** 2), (CELL_TEXT_MAX + 1, 0), (64, 0), (256, 0)):
        result = _result([f"m{k:03d}" for k in range(n)])
        fig = heatmap_figure(result)
        ax = fig.axes[0]
        assert len(ax.texts) == texts, n
        step = 4 if n == 256 else 1  # 256 members: every 4th labelled (64 labels)
        ordered = [result.members[i] for i in result.order()]
        assert [t.get_text() for t in ax.get_xticklabels()] == ordered[::step], n
        assert [t.get_text() for t in ax.get_yticklabels()] == ordered[::step], n
        assert ("every 4th member labelled" in ax.get_xlabel()) == (n == 256)
        plt.close(fig)
    assert heatmap_png(_result([f"m{k:03d}" for k in range(256)]))[:4] == b"\x89PNG"
