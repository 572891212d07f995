"""train-learner end to end: the CLI's success path, and the prd / alpha-rank meta-solvers inside the PSRO loop
(tiny runs against deterministic lever partners)."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from test_crossplay import forced_population

from adhoc.cli import main
from adhoc.config import load_learner_config
from adhoc.games import make_game
from adhoc.lm.adapters import read_adapter_folder
from adhoc.population import Population
from adhoc.recipes.train_learner import train_learner
from adhoc.solvers import solve

CONFIG = Path(__file__).parent.parent / "configs/lever-learner.yaml"
# enough for the learner to find the majority's lever (3) in epoch 0 (see test_learner.py)
FAST = ["train.iterations_per_epoch=6", "train.episodes=256", "train.eval_episodes=64", "train.lr=0.05",
        "train.entropy_coef=0.01"]


@pytest.fixture(scope="module")
def partners(tmp_path_factory):
    """Deterministic lever partners: three on lever 3, one on lever 5."""
    return forced_population(tmp_path_factory.mktemp("partners") / "train", make_game("lever"), "lever", [3, 3, 3, 5])


def test_train_learner_cli_success(partners, tmp_path, capsys):
    out = tmp_path / "learner"
    argv = ["train-learner", str(CONFIG), f"partners={partners}", "train.epochs=2", "train.iterations_per_epoch=2",
            "train.episodes=16", "train.eval_episodes=8", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    assert f"saved to {out}" in capsys.readouterr().out
    manifest = yaml.safe_load((out / "population.yaml").read_text())
    assert manifest["method"] == {"name": "learner", "solver": {"name": "uniform"}}
    assert [m["name"] for m in manifest["members"]] == ["learner", "learner-epoch-00", "learner-epoch-01"]
    assert manifest["game"]["name"] == "lever" and manifest["base_model"]["id"] == "builtin:tiny"
    assert manifest["training"]["epochs"] == 2 and manifest["training"]["iterations"] == 4
    info = manifest["learner"]
    assert info["partner_self_play"] == pytest.approx([1.0] * 4)
    assert np.asarray(info["matrix"]).shape == (3, 4) and len(info["history"]) == 3
    assert [h["epoch"] for h in info["history"]] == [0, 1, 2]
    assert all(h["meta_strategy"] == pytest.approx([0.25] * 4) for h in info["history"][:2])
    weights = manifest["mixture"]
    assert set(weights) <= {"learner", "learner-epoch-00", "learner-epoch-01"}
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
    pop = Population.load(out)  # a valid population: usable as partners or as an agent to evaluate
    assert pop.names == ["learner", "learner-epoch-00", "learner-epoch-01"]
    for name in pop.names:
        cfg, tensors = read_adapter_folder(pop.member_dir(name))
        assert cfg["peft_type"] == "LORA" and tensors
    assert (out / "config.yaml").is_file() and (out / "tb").is_dir()


@pytest.mark.parametrize("solver", ["prd", "alpharank"])
def test_prd_and_alpharank_inside_the_learner_loop(partners, tmp_path, solver):
    config = load_learner_config(CONFIG, [f"partners={partners}", f"solver={solver}", *FAST, "train.epochs=2"])
    pop = train_learner(config, out=tmp_path / solver, progress=False)
    info = pop.manifest["learner"]
    assert info["solver"] == {"name": solver} and pop.manifest["method"]["solver"] == {"name": solver}
    M = np.asarray(info["matrix"])
    history = info["history"]
    assert M.shape == (3, 4) and len(history) == 3 and "meta_strategy" not in history[-1]
    for k, record in enumerate(history[:-1]):
        sigma = np.asarray(record["meta_strategy"])
        assert sigma.shape == (4,) and np.all(sigma >= 0) and sigma.sum() == pytest.approx(1.0, abs=1e-5)
        # epoch k solved the rows 0..k of M (M is stored rounded to 4 decimals)
        np.testing.assert_allclose(sigma, solve(solver, M[: k + 1]), atol=0.02)
    row, sigma = M[1], np.asarray(history[1]["meta_strategy"])
    assert row.max() > 0.8  # the learner found the majority's lever in epoch 0 ...
    hard = row < 0.5  # ... so the solver now draws the partner it fails with far more than uniform would
    assert hard.any() and sigma[hard].sum() > 0.5 and np.abs(sigma - 0.25).max() > 0.2, (row, sigma)
