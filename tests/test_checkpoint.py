"""Checkpoints, resume and determinism: a run interrupted (SIGTERM, or a crash after a checkpoint) and resumed
ends with the same population (a learners: run, the same populations), bit for bit, as an uninterrupted run
with the same seed; the same config and seed give identical adapters and cross-play matrices; a resume
refuses a changed config."""

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
                                          ("trajedi", []),
                                          ("selfplay", ["train.algorithm=ppo", "train.ppo_minibatches=2"]),
                                          ("fcp", ["train.algorithm=ppo", "train.ppo_minibatches=2"])])
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


# ------------------------------------------------------------------ learner slots (learners: in one batched run)
SLOTS = ["solver=maximin", "learner.oracle=fresh", "train.epochs=3", "train.iterations_per_epoch=4",
         "train.episodes=16", "train.eval_episodes=8", "train.checkpoint_every=3", "train.lr=0.05"]


@pytest.fixture(scope="module")
def slots_setup(tmp_path_factory):
    """Two learner slots on the lever game (forced partners; slot b with two of them), and the populations of
    an uninterrupted run."""
    from test_crossplay import forced_population

    from adhoc.games import make_game

    root = tmp_path_factory.mktemp("learner-slots")
    partners = forced_population(root / "partners", make_game("lever"), "lever", [3, 3, 5])
    config_file = root / "slots.yaml"
    config_file.write_text(yaml.safe_dump({
        "game": {"name": "lever", "n_levers": 10}, "partners": [str(partners)],
        "learners": [{"name": "a", "seed": 0}, {"name": "b", "seed": 1, "partners": [f"{partners}:m0,m2"]}]}))
    whole = learner_recipe.train_learner(load_learner_config(config_file, SLOTS), root / "whole", progress=False)
    return config_file, root / "whole", {pop.path.name: contents(pop.path) for pop in whole}


def slots_contents(out: Path) -> dict:
    return {p.name: contents(p) for p in sorted(out.iterdir())}


def test_interrupted_learner_slots_resume_bit_for_bit(slots_setup, tmp_path, monkeypatch, capsys):
    config_file, _, whole = slots_setup
    out = tmp_path / "run"
    argv = ["train-learner", str(config_file), *SLOTS, "--quiet", "--out", str(out)]
    interrupt_at(monkeypatch, learner_recipe, 5, "sigterm")  # iteration 5: epoch 1, after the fresh oracles
    assert main(argv) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "stopped by SIGTERM at iteration 5; checkpoint saved" in err and f"--resume --out {out}" in err
    staging = tmp_path / ".run.partial"
    assert (staging / CHECKPOINT).is_file() and not out.exists()
    assert sorted(p.name for p in staging.iterdir()) == [".lock", "a", "b", CHECKPOINT]
    assert not list((staging / "a").rglob(CHECKPOINT)) + list((staging / "b").rglob(CHECKPOINT))  # one, for the run
    # a changed config is refused in one line; the checkpoint stays
    assert main(["train-learner", str(config_file), *SLOTS, "train.lr=0.06", "--quiet", "--out", str(out),
                 "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("adhoc: error: --resume needs the config the run started with") and "\n" not in err
    assert "lr: 0.05" in err and (staging / CHECKPOINT).is_file()
    # without --resume the interrupted run is neither continued nor destroyed
    assert main(argv) == 2 and "rerun with --resume" in capsys.readouterr().err
    interrupt_at(monkeypatch, learner_recipe, 4, "crash")  # iteration 9 (epoch 2): back to the checkpoint of 6
    with pytest.raises(RuntimeError, match="simulated crash"):
        learner_recipe.train_learner(load_learner_config(config_file, SLOTS), out, progress=False, resume=True)
    assert (staging / CHECKPOINT).is_file()
    monkeypatch.undo()
    assert main([*argv, "--resume"]) == 0
    assert slots_contents(out) == whole
    assert not staging.exists() and not list(out.rglob(CHECKPOINT))
    assert [len(c["manifest"]["learner"]["history"]) for c in whole.values()] == [4, 4]  # epochs 0-2, final


def test_learner_slots_killed_before_a_checkpoint_start_over(slots_setup, tmp_path, monkeypatch, capsys):
    """A run killed (SIGKILL: its staging folder left, its lock released) before its first checkpoint starts
    over on --resume; --overwrite replaces a finished learners: output, and nothing else."""
    import shutil

    from adhoc.paths import OutputFolder

    config_file, whole_out, whole = slots_setup
    config = load_learner_config(config_file, SLOTS)
    out = tmp_path / "run"
    interrupt_at(monkeypatch, learner_recipe, 2, "crash")  # before the first checkpoint (iteration 3)
    monkeypatch.setattr(OutputFolder, "abandon", lambda self, keep: self._release())  # as if killed
    with pytest.raises(RuntimeError):
        learner_recipe.train_learner(config, out, progress=False)
    monkeypatch.undo()
    staging = tmp_path / ".run.partial"
    assert (staging / "a" / "config.yaml").is_file() and not (staging / CHECKPOINT).exists()
    pops = learner_recipe.train_learner(config, out, progress=False, resume=True)
    assert [p.path for p in pops] == [out / "a", out / "b"] and slots_contents(out) == whole
    with pytest.raises(UserError, match="already complete"):
        learner_recipe.train_learner(config, out, progress=False, resume=True)
    # --overwrite: a finished learners: output is replaced ...
    (out / "a" / "population.yaml").write_text((out / "a" / "population.yaml").read_text() + "# edited\n")
    learner_recipe.train_learner(config, out, overwrite=True, progress=False)
    assert slots_contents(out) == whole and not staging.exists()
    # ... but not one slot's population, nor a folder of populations that is no learners: output
    others = tmp_path / "others"
    others.mkdir()
    shutil.copytree(whole_out / "a", others / "a")
    shutil.copytree(whole_out / "b", others / "c")
    for target, match in [(out / "a", "is not a learner populations output"),
                          (others, "is not a learner populations output")]:
        with pytest.raises(UserError, match=match):
            learner_recipe.train_learner(config, target, overwrite=True, progress=False)
    assert sorted(p.name for p in others.iterdir()) == ["a", "c"] and slots_contents(out) == whole
