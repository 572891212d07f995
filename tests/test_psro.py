"""PSRO on zero-sum games (adhoc.methods.psro): the meta-strategy, the pairs, the σ-weighted best-response
loss, the refusals, and a whole run on rock-paper-scissors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adhoc.config import load_config
from adhoc.errors import UserError
from adhoc.params import ConfigError
from adhoc.games import build_game
from adhoc.methods import METHODS
from adhoc.methods.common import seat_leave_one_out_advantage
from adhoc.methods.psro import meta_strategy, psro_pairs

RPS = [[0, -1, 1], [1, 0, -1], [-1, 1, 0]]  # seat 0's payoff, rows: its action R, P, S
RPS_GAME = {"name": "matrix", "actions": ["R", "P", "S"], "payoffs": [RPS, [[-v for v in row] for row in RPS]],
            "kind": "zero_sum", "description": "Rock, paper, scissors."}
ROOT = Path(__file__).parent.parent


def rps_overrides(size: int = 3, per_epoch: int = 10) -> list[str]:
    return ["game=matrix", "game.actions=[R,P,S]", f"game.payoffs=[{RPS},{[[-v for v in r] for r in RPS]}]",
            "game.kind=zero_sum", "game.description=Rock paper scissors.", "method.name=psro",
            f"method.iterations_per_epoch={per_epoch}", f"population.size={size}",
            f"train.iterations={(size - 1) * per_epoch}", f"train.eval_every={per_epoch}", "train.eval_episodes=64",
            "train.episodes_per_pair=32", "train.lr=0.03", "train.entropy_coef=0.0", "train.entropy_coef_end=0.0"]


def test_meta_strategy_of_rock_paper_scissors():
    A = np.array(RPS, dtype=float)
    assert np.allclose(meta_strategy(A, "nash"), [1 / 3] * 3, atol=1e-6)
    assert np.allclose(meta_strategy(A[:2, :2], "nash"), [0, 1], atol=1e-6)  # paper beats rock
    assert np.allclose(meta_strategy(A, "uniform"), [1 / 3] * 3)
    assert np.array_equal(meta_strategy(A, "last"), [0, 0, 1])


def test_pairs_put_the_newest_member_in_both_seats_with_every_earlier_one():
    assert psro_pairs(2).tolist() == [[2, 0], [2, 1], [0, 2], [1, 2]]
    assert psro_pairs(3, [1]).tolist() == [[3, 1], [1, 3]]


def test_psro_refuses_games_that_are_not_zero_sum():
    spec = METHODS["psro"]
    with pytest.raises(UserError, match="zero-sum meta-game; game 'lever' is common"):
        spec.build(spec.config_cls(), build_game({"name": "lever"}), 3)
    with pytest.raises(UserError, match="population.size >= 2"):
        spec.build(spec.config_cls(), build_game(RPS_GAME), 1)
    with pytest.raises(UserError, match="meta_game=exact needs an OpenSpiel game"):
        spec.build(spec.config_cls(meta_game="exact"), build_game(RPS_GAME), 3)


def test_train_iterations_must_be_epochs_times_iterations_per_epoch():
    with pytest.raises(ConfigError) as exc:
        load_config(ROOT / "configs/lever-selfplay.yaml", rps_overrides()[:-6] + ["train.iterations=7"])
    assert "set train.iterations=20 (got 7)" in str(exc.value) and "\n" not in str(exc.value)


def test_loss_moves_only_the_learner_weighted_by_sigma():
    """The loss of learner k is Σ_pairs σ_partner · Σ_e −A_e(k's seat) log π_k / (σ-weighted steps)."""
    from adhoc.lm.adapters import AdapterBank
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy
    from adhoc.rollout import rollout

    game = build_game(RPS_GAME)
    spec = METHODS["psro"]
    method = spec.build(spec.config_cls(baseline="pair"), game, 3)
    base = load_base("builtin:tiny", device="cpu", dtype="float32")
    bank = AdapterBank(base.model, 3, 4, 8.0, ["q_proj", "v_proj", "lm_head"])
    bank.init_members([0, 1, 2], b_std=0.1)
    method.policy = Policy(base, bank)
    method.sigma = np.array([0.25, 0.75, 0.0])
    pairs = psro_pairs(2)
    traj = rollout(game, method.policy, pairs, 8, np.random.default_rng(0))
    loss, _ = method.loss(traj, entropy_coef=0.0)
    assert loss[0] == 0 and loss[1] == 0 and loss[2] != 0
    adv = seat_leave_one_out_advantage(traj.seat_returns)  # [4, 8, 2]
    seat = torch.tensor([0, 0, 1, 1])
    # a one-shot game's first observation is the same in every episode: the two baselines agree
    first = METHODS["psro"].build(spec.config_cls(), game, 3)
    assert torch.allclose(first.advantages(traj, seat), adv[torch.arange(4), :, seat])
    sigma = torch.tensor([0.25, 0.75, 0.25, 0.75])
    mine = adv[torch.arange(4), :, seat]  # [4, 8]
    logp = traj.logp[torch.arange(4), :, 0, seat]  # [4, 8]
    manual = -(sigma[:, None] * mine * logp).sum() / (sigma * 8).sum()
    assert torch.allclose(loss[2], manual, atol=1e-6)
    assert method.active(pairs, 3).tolist() == [False, False, True]


def test_psro_on_rock_paper_scissors(tmp_path):
    """From a near-uniform initial policy, each best response beats the one before (paper, then scissors, then
    rock), and the final Nash mixture is uniform over the three: the game's equilibrium, reached by mixing."""
    from adhoc.recipes.train_population import train_population

    config = load_config(ROOT / "configs/lever-selfplay.yaml", rps_overrides(size=4, per_epoch=15))
    pop = train_population(config, out=tmp_path / "psro", progress=False)
    record = pop.manifest["psro"]
    A = np.array(record["matrix"])
    assert A.shape == (4, 4) and np.allclose(A, -A.T) and np.all(np.diag(A) == 0)
    assert A[2, 1] > 0.5 and A[3, 2] > 0.5, A  # each best response beats the last
    assert [h["members"] for h in record["history"]] == [1, 2, 3, 4]
    assert record["history"][0]["meta_strategy"] == [1.0]
    weights = [record["mixture"].get(f"member-0{k}", 0.0) for k in range(4)]
    assert weights[0] < 0.1 and all(0.2 < w < 0.45 for w in weights[1:]), record["mixture"]
    assert pop.manifest["method"]["name"] == "psro"


def test_first_observation_baseline_by_hand():
    """Seat 1's returns 1, 3 after observation a and 2, 6 after b: each baselined by the other of its group."""
    from types import SimpleNamespace

    spec = METHODS["psro"]
    method = spec.build(spec.config_cls(), build_game(RPS_GAME), 2)
    returns = torch.tensor([[[0.0, 1.0], [0.0, 3.0], [0.0, 2.0], [0.0, 6.0]]])  # [P=1, E=4, 2]
    traj = SimpleNamespace(seat_returns=returns, observations=[[["x"] * 4, ["a", "a", "b", "b"]]])
    assert method.advantages(traj, torch.tensor([1])).tolist() == [[-2.0, 2.0, -4.0, 4.0]]
    pair = spec.build(spec.config_cls(baseline="pair"), build_game(RPS_GAME), 2)
    assert pair.advantages(traj, torch.tensor([1]))[0].tolist() == pytest.approx([1 - 11 / 3, 3 - 3, 2 - 10 / 3, 6 - 2])


@pytest.fixture(scope="module")
def kuhn_psro(tmp_path_factory):
    """A short Kuhn-poker PSRO run: 3 members, 6 iterations per best response, the exact meta-game."""
    pytest.importorskip("pyspiel")
    from adhoc.recipes.train_population import train_population

    config = load_config(ROOT / "configs/kuhn-poker-psro.yaml", [
        "population.size=3", "method.iterations_per_epoch=6", "train.iterations=12", "train.eval_every=6",
        "train.episodes_per_pair=64", "train.eval_episodes=32"])
    return train_population(config, out=tmp_path_factory.mktemp("kuhn") / "psro", progress=False)


def test_evaluate_exploitability_of_the_psro_mixture_is_the_runs_last(kuhn_psro, tmp_path):
    """``adhoc evaluate --mixture --exploitability`` on a psro population: the mixture is the final σ, and
    OpenSpiel's exploitability of it is the one the run logged for its last epoch (two code paths: the run's
    σ over bank slots 0..2, evaluate's over the slots after the partners); NashConv is twice it (zero-sum)."""
    import json

    from adhoc.cli import main

    out = tmp_path / "ev"
    assert main(["evaluate", str(kuhn_psro.path), "--partners", "scripted:openspiel:uniform", "--mixture",
                 "--exploitability", "--episodes", "8", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "evaluation.json").read_text())
    record = kuhn_psro.manifest["psro"]
    assert metrics["mixture"] == pytest.approx({k: v / sum(record["mixture"].values())
                                                for k, v in record["mixture"].items()}, abs=1e-5)
    assert metrics["exploitability"] == pytest.approx(record["history"][-1]["exploitability"], abs=1e-5)
    assert metrics["nash_conv"] == pytest.approx(2 * metrics["exploitability"], abs=1e-5)
    assert 0 < metrics["exploitability"] < 1.5  # Kuhn's payoffs are within ±2
    assert "exploitability" in (out / "report.md").read_text()


def test_populations_show_prints_the_psro_mixture_and_exploitability(kuhn_psro, capsys):
    from adhoc.cli import main

    assert main(["populations", "show", str(kuhn_psro.path)]) == 0
    text = capsys.readouterr().out
    history = [h["exploitability"] for h in kuhn_psro.manifest["psro"]["history"]]
    assert "meta-solver nash" in text and " → ".join(f"{v:.3f}" for v in history) in text
    for name, weight in kuhn_psro.manifest["psro"]["mixture"].items():
        row = next(line for line in text.splitlines() if line.strip().startswith(name))
        assert row.split()[-1] == f"{weight:.3f}"


def test_evaluate_exploitability_needs_an_openspiel_game(tmp_path, capsys):
    """One line, exit 2, nothing written: the lever game has no OpenSpiel tree."""
    from adhoc.cli import main

    pop = ROOT / "populations" / next(p.name for p in (ROOT / "populations").iterdir()
                                      if p.is_dir() and "lever" in p.name)
    code = main(["evaluate", str(pop), "--partners", str(pop), "--exploitability", "--out", str(tmp_path / "ev")])
    assert code == 2 and not (tmp_path / "ev").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--exploitability needs an OpenSpiel game" in err[0], err


def test_entropy_anneal_scales_the_bonus_down_within_each_epoch():
    from adhoc.methods.psro import PSRO, PSROConfig

    game = build_game(RPS_GAME)
    constant = PSRO(PSROConfig(iterations_per_epoch=4), game, 3)
    anneal = PSRO(PSROConfig(iterations_per_epoch=4, entropy="anneal"), game, 3)
    assert [constant.entropy_scale(i) for i in range(1, 9)] == [1.0] * 8
    assert [anneal.entropy_scale(i) for i in range(1, 9)] == [1.0, 0.75, 0.5, 0.25] * 2  # again from epoch 2
