"""Robust learner (train-learner) and evaluation: the baseline and partner draws on hand-computed values,
a learner trained against deterministic partners, the meta-solvers inside the loop, exact evaluation values,
reports, and bad input refused with one line and exit code 2 without writing anything."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_cli import tree_digest as digest
from test_crossplay import forced_population

from adhoc.cli import main
from adhoc.config import ConfigError, LearnerRunConfig, load_config, load_learner_config
from adhoc.errors import UserError
from adhoc.partners import seats_beside
from adhoc.games import make_game
from adhoc.population import Population
from adhoc.lm.adapters import AdapterBank, MemberAdam, read_adapter_folder
from adhoc.lm.base import load_base
from adhoc.recipes.evaluate import evaluate, evaluation_metrics
from adhoc.psro import (draw_training_pairs, grouped_leave_one_out_advantage, learner_mixture, mixture_record,
                        oracle_seed, reward_to_go)
from adhoc.recipes.train_learner import train_learner

ROOT = Path(__file__).parent.parent
CONFIG = ROOT / "configs/lever-learner.yaml"
FAST = ["train.epochs=3", "train.iterations_per_epoch=6", "train.episodes=256", "train.eval_episodes=64",
        "train.lr=0.05", "train.entropy_coef=0.01"]


# ------------------------------------------------------------------ pure helpers
def test_grouped_leave_one_out_advantage_hand_computed():
    returns = torch.tensor([1.0, 0.0, 0.5, 3.0, 2.0])
    groups = torch.tensor([0, 0, 0, 1, 7])
    adv = grouped_leave_one_out_advantage(returns, groups)
    # group 0: baselines (0+0.5)/2, (1+0.5)/2, (1+0)/2; singletons: mean of the other 4 episodes
    expected = [1 - 0.25, 0 - 0.75, 0.5 - 0.5, 3 - (1 + 0 + 0.5 + 2) / 4, 2 - (1 + 0 + 0.5 + 3) / 4]
    assert adv.tolist() == pytest.approx(expected)
    assert grouped_leave_one_out_advantage(torch.tensor([2.0]), torch.tensor([0])).tolist() == [2.0]


def test_reward_to_go_and_per_step_baselines_hand_computed():
    rewards = torch.tensor([[0.25, 0.0, 0.25, 0.25], [0.0, 0.25, 0.25, 0.0], [0.0, 0.0, 0.0, 0.25]])
    togo = reward_to_go(rewards)
    assert togo.tolist() == [[0.75, 0.5, 0.5, 0.25], [0.5, 0.5, 0.25, 0.0], [0.25, 0.25, 0.25, 0.25]]
    # per step, the same leave-one-out baseline as for returns: column t of [B, T] alone gives column t
    groups = torch.tensor([3, 3, 1])
    adv = grouped_leave_one_out_advantage(togo, groups)
    for t in range(4):
        assert adv[:, t].tolist() == pytest.approx(grouped_leave_one_out_advantage(togo[:, t], groups).tolist())
    assert adv[:, 0].tolist() == pytest.approx([0.25, -0.25, 0.25 - 0.625])  # singleton: mean of the other two


def test_partner_draws_follow_the_meta_strategy_and_cover_both_seats():
    sigma = np.array([0.0, 0.75, 0.25])
    pairs, groups = draw_training_pairs(sigma, 4001, learner=3, rng=np.random.default_rng(0))
    assert pairs.shape == (4001, 2)
    seat0 = pairs[:, 0] == 3
    assert int(seat0.sum()) == 2001 and bool(((pairs[:, 1] == 3) == ~seat0).all())  # learner in exactly one seat
    partner = torch.where(seat0, pairs[:, 1], pairs[:, 0])
    counts = torch.bincount(partner, minlength=3).float() / 4001
    assert counts[0] == 0 and abs(float(counts[1]) - 0.75) < 0.03
    assert torch.equal(groups, (~seat0).long() * 3 + partner)


def test_learner_mixture_known_answers():
    # two snapshots, each coordinating with one partner: the maximin mixture is (1/2, 1/2), worst case 1/2
    M = np.array([[1.0, 0.0], [0.0, 1.0]])
    x = learner_mixture(M, "maximin")
    assert x == pytest.approx([0.5, 0.5], abs=1e-9)
    rec = mixture_record(M, x, np.ones(2), ["a", "b"], ["s0", "s1"], "maximin")
    assert rec["weights"] == {"s0": 0.5, "s1": 0.5} and rec["return_worst"] == 0.5 and rec["return_mean"] == 0.5
    assert rec["regret_max"] == 0.5 and rec["game"] == "return"
    # a dominated snapshot gets no weight; three conventions: 1/3 each
    M3 = np.vstack([np.eye(3), [[0.1, 0.1, 0.1]]])
    x3 = learner_mixture(M3, "uniform")
    assert x3 == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0], abs=1e-9)
    assert "s3" not in mixture_record(M3, x3, np.ones(3), list("abc"), ["s0", "s1", "s2", "s3"], "uniform")["weights"]
    # minimax regret: partner b's best is 0.5, so regrets are (0, 0.5) and (1, 0): x = (2/3, 1/3), max regret 1/3
    # (maximin on returns would give (1/3, 2/3): worst return 1/3 against b, regret 2/3 with a)
    M = np.array([[1.0, 0.0], [0.0, 0.5]])
    x = learner_mixture(M, "minimax_regret", best=np.array([1.0, 0.5]))
    assert x == pytest.approx([2 / 3, 1 / 3], abs=1e-9)
    assert learner_mixture(M, "maximin") == pytest.approx([1 / 3, 2 / 3], abs=1e-9)
    rec = mixture_record(M, x, np.array([1.0, 0.5]), ["a", "b"], ["s0", "s1"], "minimax_regret")
    assert rec["regret_max"] == pytest.approx(1 / 3, abs=1e-4) and rec["game"] == "regret"


def test_member_adam_reset_forgets_one_member():
    p = torch.nn.Parameter(torch.zeros(3, 2))
    opt = MemberAdam([p], lr=0.1)
    for _ in range(2):
        p.grad = torch.ones(3, 2)
        opt.step()
    opt.reset(1)
    assert opt.steps.tolist() == [2, 0, 2]
    assert float(opt.exp_avg[0][1].abs().sum()) == 0 and float(opt.exp_avg_sq[0][0].abs().sum()) > 0


# ------------------------------------------------------------------ config
def test_learner_config_partners_and_solver_overrides():
    config = load_config(CONFIG, ["partners=a", "partners=b", "solver=prioritized", "solver.beta=1"])
    assert isinstance(config, LearnerRunConfig)
    assert config.partners == ["a", "b"] and config.solver == {"name": "prioritized", "beta": 1}
    assert load_learner_config(CONFIG, ["partners=[x,y]"]).partners == ["x", "y"]
    assert load_learner_config(CONFIG).solver == {"name": "uniform"}
    assert "partners:" in config.to_yaml()


@pytest.mark.parametrize("overrides, message", [
    (["solver=nash"], r"unknown solver\.name 'nash' \(allowed: alpharank, maximin, minimax_regret, prd"),
    (["solver=prioritized", "solver.gamma=1"], r"unknown key solver\.gamma for solver 'prioritized' \(allowed: name, beta"),
    (["solver=prioritized", "solver.beta=-1"], r"beta must be >= 0"),
    (["solver=minimax_regret", "solver.best=1"], r"unknown key solver\.best"),
    (["train.episodes=1"], r"train\.episodes must be >= 2"),
    (["train.epochs=0"], r"train\.epochs must be >= 1"),
    (["learner.bogus=1"], r"unknown key learner\.bogus"),
    (["learner.oracle=restart"], r"learner\.oracle must be one of continue, fresh \(got 'restart'\)"),
    (["learner.seat=2"], r"learner\.seat must be 0, 1 or null for both \(got 2\)"),
    (["method.name=selfplay"], r"no 'method' section \(that is a population config for adhoc train-population; "),
    (["method.name=psro"], r"PSRO \(method psro\) grows a population: adhoc train-population CONFIG"),
])
def test_bad_learner_config_is_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_learner_config(CONFIG, overrides)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def partners(tmp_path_factory):
    """Deterministic lever partners: three on lever 3, one on lever 5 (a uniform best response pulls lever 3)."""
    root = tmp_path_factory.mktemp("partners")
    return forced_population(root / "train", make_game("lever"), "lever", [3, 3, 3, 5])


@pytest.fixture(scope="module")
def learner(partners, tmp_path_factory):
    config = load_learner_config(CONFIG, [f"partners={partners}", *FAST])
    return train_learner(config, out=tmp_path_factory.mktemp("runs") / "learner", progress=False)


def test_learner_cooperates_with_its_partners_and_is_a_population(learner, partners):
    m = learner.manifest
    assert learner.names == ["learner", "learner-epoch-00", "learner-epoch-01", "learner-epoch-02"]
    info = m["learner"]
    assert np.asarray(info["matrix"]).shape == (4, 4) and len(info["history"]) == 4
    assert info["partner_self_play"] == pytest.approx([1.0] * 4)
    assert info["history"][0]["meta_strategy"] == pytest.approx([0.25] * 4)
    # the best response to the uniform mixture pulls lever 3: 0.75 (random start: ~0.1)
    assert info["history"][0]["return_mean"] < 0.3
    assert m["training"]["return_mean"] > 0.6 and info["matrix"][-1][0] > 0.8 and info["matrix"][-1][3] < 0.2
    assert m["method"] == {"name": "learner", "solver": {"name": "uniform"}}
    assert (learner.path / "tb").is_dir() and (learner.path / "config.yaml").is_file()
    # the saved learner plays as measured in training, and the partners on disk are untouched
    result = evaluate(learner.path, [str(partners)], episodes=64)
    assert result.metrics["mean_return"] == pytest.approx(m["training"]["return_mean"], abs=0.1)
    assert result.metrics["worst_partner"].endswith("/m3")
    snapshot = evaluate(learner.path, [str(partners)], member="learner-epoch-00", episodes=64)
    assert snapshot.metrics["mean_return"] < 0.3


def test_maximin_and_prioritized_train_against_the_partners_the_learner_fails_with(partners, tmp_path):
    for solver in ("maximin", "prioritized"):
        config = load_learner_config(CONFIG, [f"partners={partners}", f"solver={solver}", *FAST, "train.epochs=2"])
        pop = train_learner(config, out=tmp_path / solver, progress=False)
        history = pop.manifest["learner"]["history"]
        row, sigma = np.asarray(pop.manifest["learner"]["matrix"][1]), np.asarray(history[1]["meta_strategy"])
        assert row.max() > 0.8, solver  # the learner found one partner's lever in epoch 0 ...
        hard = row < 0.5  # ... and the solver now weights the partners it fails with
        # maximin: 0.86-0.91 of sigma on the hard partners over learner seeds 0-4
        assert sigma[hard].sum() > (0.8 if solver == "maximin" else sigma[~hard].sum()), (solver, row, sigma)


def test_learner_population_stores_its_mixture(learner):
    m = learner.manifest
    M = np.asarray(m["learner"]["matrix"])
    rows = ["learner-epoch-00", "learner-epoch-01", "learner-epoch-02", "learner"]  # row order of M
    assert set(m["mixture"]) <= set(rows)
    x = np.array([m["mixture"].get(r, 0.0) for r in rows])
    assert np.all(x >= 0) and x.sum() == pytest.approx(1.0, abs=1e-4)
    # the maximin value max_x min_j (xᵀM)_j by its own LP (not the code's): with M shifted positive by c,
    # min Σu s.t. Mᵀu >= 1, u >= 0 has optimum 1 / (value + c). The stored mixture must attain it (the
    # manifest's M is rounded to 4 decimals: small tolerances; the optimal x need not be unique).
    from scipy.optimize import linprog

    c = 1.0 - M.min()
    res = linprog(np.ones(len(rows)), A_ub=-(M + c).T, b_ub=-np.ones(M.shape[1]), bounds=(0, None))
    assert res.status == 0
    value = 1.0 / res.x.sum() - c
    assert float((x @ M).min()) == pytest.approx(value, abs=2e-3)
    assert float((np.full(4, 0.25) @ M).min()) < value - 0.01  # the uniform mixture would not do
    summary = m["learner"]["mixture_summary"]
    assert summary["returns"] == pytest.approx((x @ M).tolist(), abs=1e-3)
    assert summary["return_worst"] == pytest.approx(value, abs=2e-3)
    assert m["learner"]["oracle"] == "continue"


def _adapter(path):
    return read_adapter_folder(path)[1]


def test_fresh_oracle_reinitialises_the_learner_every_epoch(partners, tmp_path):
    """With a learning rate too small to move anything, oracle: fresh snapshots are exactly fresh inits from
    the derived seeds (epoch 0 trains the initial learner; epoch k >= 1 starts from oracle_seed(seed, k))."""
    small = ["train.epochs=3", "train.iterations_per_epoch=1", "train.episodes=8", "train.eval_episodes=4",
             "train.lr=1e-12", "learner.seed=5"]
    pop = train_learner(load_learner_config(CONFIG, [f"partners={partners}", "learner.oracle=fresh", *small]),
                        out=tmp_path / "fresh", progress=False)
    cont = train_learner(load_learner_config(CONFIG, [f"partners={partners}", *small]), out=tmp_path / "cont",
                         progress=False)
    base = load_base("builtin:tiny", device="cpu")
    a = pop.manifest["adapter"]
    bank = AdapterBank(base.model, 1, a["rank"], a["alpha"], a["target_modules"], base_model_id=base.model_id)
    std = load_learner_config(CONFIG, [f"partners={partners}"]).model.lora_init_std

    def init(epoch, path):
        bank.init_member(0, oracle_seed(5, epoch), b_std=std)
        return _adapter(bank.export_member(0, path))

    expected = {"learner-epoch-00": init(0, tmp_path / "i0"), "learner-epoch-01": init(0, tmp_path / "i0"),
                "learner-epoch-02": init(1, tmp_path / "i1"), "learner": init(2, tmp_path / "i2")}
    assert len({oracle_seed(5, k) for k in range(3)}) == 3
    for name, want in expected.items():
        got, same = _adapter(pop.member_dir(name)), _adapter(cont.member_dir(name))
        for key in want:
            assert torch.allclose(got[key].float(), want[key].float(), atol=1e-6), (name, key)
            # continuing keeps the initial learner (seed 0's init) throughout
            assert torch.allclose(same[key].float(), expected["learner-epoch-00"][key].float(), atol=1e-6)
    assert not torch.allclose(_adapter(pop.member_dir("learner"))["base_model.model.lm_head.lora_B.weight"],
                              expected["learner-epoch-00"]["base_model.model.lm_head.lora_B.weight"])
    assert pop.manifest["learner"]["oracle"] == "fresh" and pop.manifest["members"][0]["seed"] == oracle_seed(5, 2)


def test_fresh_oracles_mix_into_a_robust_agent(partners, tmp_path):
    """Partners on lever 3 (three) and lever 5 (one): one policy's worst case is ~0; the maximin mixture of
    fresh best responses (lever 3 vs σ uniform, then lever 5 vs σ on the partner it fails with) gets ~1/2."""
    config = load_learner_config(CONFIG, [f"partners={partners}", "solver=maximin", "learner.oracle=fresh", *FAST])
    pop = train_learner(config, out=tmp_path / "fresh", progress=False)
    M = np.asarray(pop.manifest["learner"]["matrix"])
    mix = pop.manifest["learner"]["mixture_summary"]
    assert M.min(1).max() < 0.2  # no single snapshot is robust ...
    assert mix["return_worst"] > 0.4 and len(pop.manifest["mixture"]) >= 2  # ... the mixture is
    result = evaluate(pop.path, [str(partners)], episodes=64, mixture=True)
    assert result.metrics["worst_return"] == pytest.approx(mix["return_worst"], abs=0.1)
    # the continuing learner stays on its lever: its snapshots all agree, so mixing them does not help
    config = load_learner_config(CONFIG, [f"partners={partners}", "solver=maximin", *FAST])
    cont = train_learner(config, out=tmp_path / "continue", progress=False)
    assert cont.manifest["learner"]["mixture_summary"]["return_worst"] < 0.2


# ------------------------------------------------------------------ evaluation
def test_mixture_evaluation_is_the_weighted_return(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --out is runs/evaluate-<agent>[-mixture]-<time>-<id>
    game = make_game("lever")
    agent = forced_population(tmp_path / "agent", game, "lever", [3, 0, 7])
    manifest = yaml.safe_load((agent / "population.yaml").read_text())
    manifest["mixture"] = {"m0": 0.25, "m1": 0.75, "m2": 0.0}
    (agent / "population.yaml").write_text(yaml.safe_dump(manifest))
    held_out = forced_population(tmp_path / "held-out", game, "lever", [3, 7, 0])
    assert main(["evaluate", str(agent), "--partners", str(held_out), "--episodes", "8", "--mixture"]) == 0
    [out] = (tmp_path / "runs").glob("evaluate-agent-mixture-*")
    data = json.loads((out / "evaluation.json").read_text())
    # partner on 3: 0.25 · 1; on 7: nobody; on 0: 0.75 · 0.9
    assert [p["return"] for p in data["per_partner"]] == pytest.approx([0.25, 0.0, 0.675], abs=1e-6)
    assert data["mean_return"] == pytest.approx(0.925 / 3, abs=1e-4) and data["worst_return"] == 0.0
    assert data["ci95"]["mean_return"] == pytest.approx([0.925 / 3] * 2, abs=1e-4)
    assert data["mixture"] == {"m0": 0.25, "m1": 0.75}  # zero weight: not evaluated
    assert data["snapshots"]["m1"]["mean_return"] == pytest.approx(0.3, abs=1e-4)
    assert "mixture(m0 0.25, m1 0.75)" in data["agent"] and "mean return" in capsys.readouterr().out
    # without --mixture: the first member, as before
    assert main(["evaluate", str(agent), "--partners", str(held_out), "--episodes", "8"]) == 0
    [out] = (tmp_path / "runs").glob("evaluate-agent-2*")
    data = json.loads((out / "evaluation.json").read_text())
    assert data["mean_return"] == pytest.approx(1 / 3, abs=1e-4) and "mixture" not in data
    assert sorted(p.name for p in agent.iterdir()) == ["members", "population.yaml"]  # the agent is untouched


def test_evaluation_of_a_deterministic_agent_is_exact(tmp_path, capsys):
    game = make_game("lever")
    agent = forced_population(tmp_path / "agent", game, "lever", [3, 0])
    held_out = forced_population(tmp_path / "held-out", game, "lever", [3, 7, 0])
    before = digest(held_out)
    out = tmp_path / "evaluation"
    assert main(["evaluate", str(agent), "--partners", str(held_out), "--episodes", "16", "--out", str(out)]) == 0
    data = json.loads((out / "evaluation.json").read_text())
    assert data["agent"].endswith("agent:m0") and data["episodes"] == 16
    assert [p["return"] for p in data["per_partner"]] == pytest.approx([1.0, 0.0, 0.0], abs=1e-6)
    assert [p["regret"] for p in data["per_partner"]] == pytest.approx([0.0, 1.0, 0.9], abs=1e-6)
    assert data["mean_return"] == pytest.approx(1 / 3, abs=1e-4) and data["worst_return"] == 0.0
    assert data["mean_regret"] == pytest.approx(1.9 / 3, abs=1e-4) and data["max_regret"] == pytest.approx(1.0)
    assert data["ci95"]["mean_return"] == pytest.approx([1 / 3, 1 / 3], abs=1e-4)
    assert (out / "returns.png").read_bytes()[:4] == b"\x89PNG"
    assert "| mean return | 0.333 [0.333, 0.333] |" in (out / "report.md").read_text()
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert "mean return" in capsys.readouterr().out and digest(held_out) == before
    # another member, another output folder
    assert main(["evaluate", str(agent), "--member", "m1", "--partners", str(held_out), "--episodes", "8",
                 "--out", str(tmp_path / "ev")]) == 0
    data = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert data["mean_return"] == pytest.approx(0.3, abs=1e-4) and data["worst_partner"].endswith("/m0")


def test_evaluation_metrics_with_noise():
    rng = np.random.default_rng(0)
    returns = np.stack([rng.binomial(1, p, size=(3, 400)).astype(float) for p in (0.2, 0.8)])  # [2, 3, E]
    returns[:, 2] = 1.0  # partners' self-play
    m = evaluation_metrics(returns, ["a", "b"], n_boot=300)
    assert m["worst_partner"] == "a" and m["mean_return"] == pytest.approx(0.5, abs=0.05)
    lo, hi = m["ci95"]["worst_return"]
    assert lo < m["worst_return"] < hi and hi - lo < 0.1
    assert m["per_partner"][1]["regret"] == pytest.approx(1 - m["per_partner"][1]["return"])


# ------------------------------------------------------------------ bad input
def expect_user_error(argv, capsys, match):
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert err.startswith("adhoc: error: ") and "\n" not in err and match in err, err


def test_bad_learner_input_exit_2_and_writes_nothing(partners, tmp_path, capsys):
    game = make_game("lever", n_levers=4)
    small = forced_population(tmp_path / "lever4", game, "lever", [1])
    other_base = forced_population(tmp_path / "other", make_game("lever"), "lever", [2])
    manifest = yaml.safe_load((other_base / "population.yaml").read_text())
    manifest["base_model"]["fingerprint"] = "0" * 16
    (other_base / "population.yaml").write_text(yaml.safe_dump(manifest))
    empty = tmp_path / "empty"
    empty.mkdir()
    no_members = forced_population(tmp_path / "nomembers", make_game("lever"), "lever", [1])
    manifest = yaml.safe_load((no_members / "population.yaml").read_text())
    manifest["members"] = []
    (no_members / "population.yaml").write_text(yaml.safe_dump(manifest))
    out = tmp_path / "out"
    before = {p: digest(p) for p in (partners, small, other_base)}
    train = ["train-learner", str(CONFIG), "--out", str(out)]
    for argv, match in [
        (train, "no partners"),
        (train + [f"partners={small}"], "plays lever with n_levers=4, not n_levers=10 as configured"),
        (train + [f"partners={partners}", f"partners={small}"], "needs the same game"),
        (train + [f"partners={partners}", f"partners={other_base}"], "different base models"),
        (train + [f"partners={partners}", "model.base=builtin:small"], "was trained on base model builtin:tiny"),
        (train + [f"partners={partners}", "solver=nash"], "unknown solver.name 'nash'"),
        (train + [f"partners={empty}"], "population.yaml is missing"),
        (train + [f"partners={no_members}"], "members must be a non-empty list"),
        (train + [f"partners={tmp_path / 'missing'}"], "population not found"),
        (train + ["partners=bogus:lever"], "unknown partner source 'bogus'"),
        (["train-population", str(CONFIG)], "is a learner config"),
        (["evaluate", str(partners), "--partners", str(small)], "needs the same game"),
        (["evaluate", str(partners), "--partners", str(partners), "--member", "m9"], "has no member 'm9'"),
        (["evaluate", str(partners), "--partners", str(other_base)], "different base models"),
        (["evaluate", str(partners), "--partners", str(partners), "--episodes", "1"], "--episodes must be >= 2"),
        (["evaluate", str(partners), "--partners", str(partners), "--mixture"], "has no mixture in its manifest"),
        (["evaluate", str(partners), "--partners", str(partners), "--mixture", "--member", "m0"],
         "--mixture and --member exclude each other"),
    ]:
        expect_user_error(argv, capsys, match)
    assert not out.exists() and not any(p.name.endswith(".partial") for p in tmp_path.iterdir())
    assert not (partners / "evaluation").exists()
    assert {p: digest(p) for p in before} == before


def test_seats_beside_leaves_the_agent_seat_free():
    assert seats_beside([(0, 1), (1,)], None, ["a", "b"]) == [(0, 1), (1,)]
    assert seats_beside([(0, 1), (1,)], 0, ["a", "b"]) == [(1,), (1,)]
    with pytest.raises(UserError, match="partner b plays only seat 1, the seat the agent is to play"):
        seats_beside([(0, 1), (1,)], 1, ["a", "b"])
    pairs, _ = draw_training_pairs(np.array([0.5, 0.5]), 64, learner=2, rng=np.random.default_rng(0),
                                   partner_seats=seats_beside([(0, 1), (0, 1)], 1, ["a", "b"]))
    assert bool((pairs[:, 1] == 2).all()) and set(pairs[:, 0].tolist()) == {0, 1}


def test_learner_in_one_seat(partners, tmp_path, capsys):
    """learner.seat=1: trained and measured in seat 1 only; evaluate plays it there unless told otherwise."""
    config = load_learner_config(CONFIG, [f"partners={partners}", *FAST, "train.epochs=1", "learner.seat=1"])
    pop = train_learner(config, out=tmp_path / "seat1", progress=False)
    info = pop.manifest["learner"]
    assert info["seat"] == 1 and info["partner_self_play"] == pytest.approx([1.0] * 4)
    assert info["matrix"][-1][0] > 0.8  # the best response to 3 of 4 partners on lever 3, from seat 1
    per = evaluate(pop.path, [str(partners)], episodes=32).metrics["per_partner"]
    assert all(p["return_seat0"] is None and p["return"] == p["return_seat1"] and p["self_play"] == 1.0 for p in per)
    both = evaluate(pop.path, [str(partners)], episodes=32, seat="both").metrics["per_partner"]
    assert all(p["return_seat0"] is not None and p["return_seat1"] is not None for p in both)
    assert main(["evaluate", str(pop.path), "--partners", str(partners), "--seat", "0", "--episodes", "8",
                 "--out", str(tmp_path / "ev")]) == 0
    data = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert all(p["return_seat1"] is None for p in data["per_partner"])
    out = tmp_path / "teacher-seat"
    expect_user_error(["train-learner", str(ROOT / "configs/warehouse-learner.yaml"), "learner.seat=1",
                       "--out", str(out)], capsys, "plays only seat 1, the seat the agent is to play")
    assert not out.exists()


def test_existing_out_is_refused(learner, partners, capsys):
    before = digest(learner.path)
    expect_user_error(["train-learner", str(CONFIG), f"partners={partners}", "--out", str(learner.path)], capsys,
                      "already exists")
    assert digest(learner.path) == before


def test_validate_accepts_learner_configs(capsys):
    assert main(["validate", str(CONFIG), "solver=maximin"]) == 0
    assert "ok:" in capsys.readouterr().out


@pytest.mark.slow
def test_lever_learner_against_selfplay_does_not_transfer(tmp_path):
    """A learner trained against one self-play population cooperates with it (the best any one policy can do
    is the share of the most popular lever) but not with another seed's population (~1/9)."""
    pops = []
    for seed in (1, 2):
        out = tmp_path / f"sp{seed}"
        assert main(["train-population", str(ROOT / "configs/lever-selfplay.yaml"), f"population.seed={seed}",
                     "--out", str(out), "--quiet", "--crossplay-episodes", "0"]) == 0
        pops.append(out)
    config = load_learner_config(CONFIG, [f"partners={pops[0]}"])
    pop = train_learner(config, out=tmp_path / "learner", progress=False)
    own = evaluate(pop.path, [str(pops[0])], episodes=256).metrics["mean_return"]
    held_out = evaluate(pop.path, [str(pops[1])], episodes=256).metrics["mean_return"]
    assert own > 0.2 and held_out < own
