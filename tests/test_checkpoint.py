"""Checkpoints, resume and determinism: a run interrupted (SIGTERM, or a crash after a checkpoint) and resumed
ends with the same population, bit for bit, as an uninterrupted run with the same seed; the same config and
seed give identical adapters and cross-play matrices; a resume refuses a changed config."""

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml

import adhoc.recipes.train_learner as learner_recipe
import adhoc.engine as engine
from adhoc.recipes.train_population import train_population
from adhoc.cli import main
from adhoc.config import load_config, load_learner_config
from adhoc.crossplay import crossplay
from adhoc.errors import Interrupted, UserError
from adhoc.population import CHECKPOINT

POPULATION = ["game.name=lever", "game.n_levers=4", "population.size=2", "train.iterations=10",
              "train.episodes_per_pair=8", "train.eval_every=4", "train.eval_episodes=16", "train.checkpoint_every=3",
              "train.entropy_coef=0.05"]


def population_config(method: str, *extra: str):
    return load_config(None, [*POPULATION, f"method.name={method}", *extra])


def learner_config(partners: Path, oracle: str = "fresh"):
    return load_learner_config(None, [f"partners={partners}", "solver=maximin", f"learner.oracle={oracle}",
                                      "train.epochs=3", "train.iterations_per_epoch=4", "train.episodes=16",
                                      "train.eval_episodes=16", "train.checkpoint_every=3", "train.lr=0.05"])


def contents(path: Path) -> dict:
    """Every member's adapter bytes and the manifest without its time stamps."""
    manifest = yaml.safe_load((path / "population.yaml").read_text())
    for key in ("created", "wall_time_s", "startup_s", "train_s"):
        manifest.pop(key, None)
    files = {str(f.relative_to(path)): f.read_bytes() for f in sorted((path / "members").rglob("*")) if f.is_file()}
    return {"manifest": manifest, "files": files}


def interrupt_at(monkeypatch, module, call: int, how: str) -> None:
    """Make the ``call``-th training rollout of ``module`` deliver SIGTERM to this process, or crash."""
    real, count = module.rollout, [0]

    def rollout(*args, **kwargs):
        count[0] += 1
        if count[0] == call:
            if how == "crash":
                raise RuntimeError("simulated crash")
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "rollout", rollout)


@pytest.mark.parametrize("method,extra", [("selfplay", []), ("fcp", []), ("otherplay", ["method.restarts=2"]),
                                          ("trajedi", [])])
def test_interrupted_population_resumes_bit_for_bit(tmp_path, monkeypatch, method, extra):
    config = population_config(method, *extra)
    whole = train_population(config, tmp_path / "whole", progress=False)
    out = tmp_path / "resumed"
    interrupt_at(monkeypatch, engine, 5, "sigterm")  # SIGTERM during iteration 5
    with pytest.raises(Interrupted, match="iteration 5"):
        train_population(config, out, progress=False)
    assert (tmp_path / ".resumed.partial" / CHECKPOINT).is_file() and not out.exists()
    interrupt_at(monkeypatch, engine, 3, "crash")  # iteration 8: back to the checkpoint of 6
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_population(config, out, progress=False, resume=True)
    monkeypatch.undo()
    resumed = train_population(config, out, progress=False, resume=True)
    assert contents(resumed.path) == contents(whole.path)
    assert not (tmp_path / ".resumed.partial").exists() and not (out / CHECKPOINT).exists()
    assert resumed.manifest["training"]["iterations"] == 10


def test_interrupted_learner_resumes_bit_for_bit(tmp_path, monkeypatch):
    partners = train_population(population_config("selfplay"), tmp_path / "partners",
                                                  progress=False).path
    config = learner_config(partners)
    whole = learner_recipe.train_learner(config, tmp_path / "whole", progress=False)
    out = tmp_path / "resumed"
    interrupt_at(monkeypatch, learner_recipe, 5, "sigterm")  # iteration 5: epoch 1, after the epoch-1 oracle reset
    with pytest.raises(Interrupted, match="iteration 5"):
        learner_recipe.train_learner(config, out, progress=False)
    interrupt_at(monkeypatch, learner_recipe, 4, "crash")  # iteration 9 (epoch 2): back to the checkpoint of 6
    with pytest.raises(RuntimeError):
        learner_recipe.train_learner(config, out, progress=False, resume=True)
    monkeypatch.undo()
    resumed = learner_recipe.train_learner(config, out, progress=False, resume=True)
    assert contents(resumed.path) == contents(whole.path)
    assert len(resumed.manifest["learner"]["history"]) == 4  # epochs 0-2 and the final learner


def test_same_seed_same_adapters_and_crossplay_matrix(tmp_path):
    config = population_config("selfplay")
    a = train_population(config, tmp_path / "a", progress=False)
    b = train_population(config, tmp_path / "b", progress=False)
    assert contents(a.path) == contents(b.path)
    ma = crossplay([str(a.path)], episodes=16, seed=3).matrix
    mb = crossplay([str(b.path)], episodes=16, seed=3).matrix
    assert np.array_equal(ma, mb)
    other = train_population(population_config("selfplay", "population.seed=1"),
                                               tmp_path / "c", progress=False)
    assert contents(other.path)["files"] != contents(a.path)["files"]  # the seed matters


def test_resume_refuses_another_config_and_missing_checkpoints(tmp_path, monkeypatch, capsys):
    config = population_config("selfplay")
    interrupt_at(monkeypatch, engine, 4, "sigterm")
    with pytest.raises(Interrupted):
        train_population(config, tmp_path / "run", progress=False)
    monkeypatch.undo()
    with pytest.raises(UserError, match=r"differs in: -  lr: 0.01; \+  lr: 0.02"):
        train_population(population_config("selfplay", "train.lr=0.02"), tmp_path / "run",
                                           progress=False, resume=True)
    # without --resume the interrupted run is neither continued nor destroyed
    with pytest.raises(UserError, match="rerun with --resume"):
        train_population(config, tmp_path / "run", progress=False)
    assert (tmp_path / ".run.partial" / CHECKPOINT).is_file()
    # --resume of a run that left nothing (killed in start-up) starts it
    fresh = train_population(config, tmp_path / "never", progress=False, resume=True)
    assert contents(fresh.path)["files"] == contents(
        train_population(config, tmp_path / "again", progress=False).path)["files"]
    # --overwrite starts over in the same staging folder
    pop = train_population(config, tmp_path / "run", overwrite=True, progress=False)
    assert pop.manifest["training"]["iterations"] == 10


def test_cli_sigterm_message_and_exit_code(tmp_path, monkeypatch, capsys):
    interrupt_at(monkeypatch, engine, 2, "sigterm")
    argv = ["train-population", "--quiet", "--crossplay-episodes", "0", "--out", str(tmp_path / "run"), *POPULATION,
            "method.name=selfplay"]
    assert main(["train-population", str(_config_file(tmp_path)), *argv[1:]]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "stopped by SIGTERM at iteration 2" in err and "--resume --out" in err
    monkeypatch.undo()
    assert main(["train-population", str(_config_file(tmp_path)), *argv[1:], "--resume"]) == 0
    assert (tmp_path / "run" / "population.yaml").is_file()


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("game: lever\nmethod: selfplay\n")
    return path
