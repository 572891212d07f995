"""``adhoc sweep`` without Ray (backend local): trials as population folders, one table, retries resuming from the
checkpoint, complete trials skipped on a re-run (also after a SIGKILL of the driver), the sweep folder's data
safety; ``backend=ray`` without Ray installed; ``import adhoc`` never imports ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adhoc.cli import main
from adhoc.errors import UserError
from adhoc.recipes import sweep as S

ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "configs" / "lever-selfplay.yaml")
TINY = ["population.size=2", "game.n_levers=3", "train.iterations=4", "train.episodes_per_pair=8",
        "train.eval_every=2", "train.eval_episodes=8", "train.checkpoint_every=1"]


def rows_by_trial(out: Path) -> dict[str, dict]:
    state = json.loads((out / S.SWEEP_FILE).read_text())
    return {name: r["row"] for name, r in state["trials"].items() if r.get("status") == "complete"}


def test_local_sweep_writes_populations_and_one_table_and_skips_complete_trials(tmp_path, capsys):
    out = tmp_path / "sweep"
    rows, md, folder = S.run_sweep([CONFIG], [0, 1], TINY, out=out, episodes=8)
    assert folder == out and [r["seed"] for r in rows] == [0, 1]
    for seed in (0, 1):
        pop = out / f"lever-selfplay-s{seed}"
        assert (pop / "population.yaml").is_file() and (pop / "crossplay" / "crossplay.json").is_file()
        assert "backend: local" in (pop / "config.yaml").read_text()
    assert md.count("\n") == 2 and "| lever | selfplay | 2 |" in md and (out / S.TABLE_FILE).read_text() == md + "\n"
    assert rows[0]["sp"] != rows[1]["sp"] or rows[0]["xp"] != rows[1]["xp"]  # two seeds, two populations
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/population.yaml")}

    # a re-run with one more seed: the two complete trials are skipped (not retrained), only seed 2 runs
    capsys.readouterr()
    rows2, _, _ = S.run_sweep([CONFIG], [0, 1, 2], TINY, out=out, episodes=8)
    said = capsys.readouterr().out
    assert "3 trials, 2 complete, 1 to run" in said and "lever-selfplay-s2: SP" in said
    assert rows2[:2] == rows and {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_the_sweep_run_on_another_backend_trains_the_same_trial_config(tmp_path):
    """backend and ray.* are the sweep's: the trial config records backend local, so resume and skip still apply."""
    trials, backend, ray = S.plan([CONFIG], [3], [*TINY, "backend=ray", "ray.workers=3"])
    assert backend == "ray" and ray.workers == 3
    assert trials[0].config.backend == "local" and trials[0].config.ray.workers == 2 and trials[0].name == "lever-selfplay-s3"


def test_a_failing_trial_is_retried_and_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """The first attempt dies after its 2nd checkpoint; the retry continues from it and the population equals an
    uninterrupted run's (resume is bit for bit on CPU)."""
    from adhoc import checkpoint

    calls = []
    real_save = checkpoint.save

    def crash_once(path, tensors, state):
        real_save(path, tensors, state)
        if not calls and state["iteration"] == 2:
            calls.append(state["iteration"])
            raise RuntimeError("worker lost")

    monkeypatch.setattr(checkpoint, "save", crash_once)
    retried, _, _ = S.run_sweep([CONFIG], [0], TINY, out=tmp_path / "a", episodes=8)
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert calls == [2]
    plain, _, _ = S.run_sweep([CONFIG], [0], TINY, out=tmp_path / "b", episodes=8)
    strip = lambda r: {k: v for k, v in r.items() if k not in ("train_s", "population")}  # noqa: E731
    assert strip(retried[0]) == strip(plain[0])
    state = json.loads((tmp_path / "a" / S.SWEEP_FILE).read_text())
    assert state["trials"]["lever-selfplay-s0"]["status"] == "complete"


def test_a_trial_that_keeps_failing_is_recorded_and_reported_after_the_table(tmp_path):
    attempts = []

    def flaky(name, config, out, episodes):
        if name.endswith("-s1"):
            attempts.append(name)
            raise RuntimeError("out of memory")
        return S.run_trial(name, config, out, episodes)

    with pytest.raises(UserError, match=r"1 of 2 trials failed \(lever-selfplay-s1: see .*sweep.json\); run the same"):
        S.run_sweep([CONFIG], [0, 1], TINY, out=tmp_path / "s", episodes=8, retries=2, trial_fn=flaky)
    assert len(attempts) == 3  # the first try and two retries
    state = json.loads((tmp_path / "s" / S.SWEEP_FILE).read_text())["trials"]
    assert state["lever-selfplay-s0"]["status"] == "complete"
    assert state["lever-selfplay-s1"]["status"] == "failed" and "out of memory" in state["lever-selfplay-s1"]["error"]
    assert "| lever | selfplay | 1 |" in (tmp_path / "s" / S.TABLE_FILE).read_text()


def test_a_user_error_in_a_trial_is_not_retried(tmp_path):
    out = tmp_path / "s"
    S.run_sweep([CONFIG], [0], TINY, out=out, episodes=8)
    (out / "lever-selfplay-s1").mkdir()  # someone's folder where a trial would go: never touched
    (out / "lever-selfplay-s1" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="1 of 2 trials failed"):
        S.run_sweep([CONFIG], [0, 1], TINY, out=out, episodes=8)
    record = json.loads((out / S.SWEEP_FILE).read_text())["trials"]["lever-selfplay-s1"]
    assert "exists and is not a population" in record["error"]
    assert (out / "lever-selfplay-s1" / "notes.txt").read_text() == "mine"


def test_a_complete_trial_with_another_config_is_refused(tmp_path):
    out = tmp_path / "s"
    S.run_sweep([CONFIG], [0], TINY, out=out, episodes=8)
    with pytest.raises(UserError, match="1 of 1 trials failed"):
        S.run_sweep([CONFIG], [0], [*TINY, "train.lr=0.02"], out=out, episodes=8)
    assert "another config" in json.loads((out / S.SWEEP_FILE).read_text())["trials"]["lever-selfplay-s0"]["error"]


def test_sweep_folder_safety(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.txt").write_text("x")
    for out, fragment in ((tmp_path / "mine", "exists and is not a sweep folder"),
                          (tmp_path, "exists and is not a sweep folder")):  # the working folder
        assert main(["sweep", CONFIG, "--seeds", "0", *TINY, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("adhoc: error: ") and err.count("\n") == 1 and fragment in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"] and (tmp_path / "mine" / "data.txt").read_text() == "x"
    # a second sweep on the same folder while one runs is refused
    folder = S.SweepFolder(tmp_path / "busy")
    try:
        with pytest.raises(UserError, match="another adhoc sweep is running"):
            S.SweepFolder(tmp_path / "busy")
    finally:
        folder.close()


@pytest.mark.parametrize("argv, fragment", [
    (["--seeds", "0", "x"], "--seeds takes integers >= 0 (got 'x')"),
    (["--seeds", "0", "0"], "--seeds names a seed twice"),
    (["--seeds", "0", "train.lr=nan"], "train.lr must be a finite number"),
    (["--seeds", "0", "backend=slurm"], "backend must be one of local, ray"),
])
def test_bad_sweeps_refuse_before_any_work(tmp_path, capsys, argv, fragment):
    assert main(["sweep", CONFIG, *argv, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err
    assert not (tmp_path / "s").exists()


def test_backend_ray_without_ray_installed_names_the_extra(tmp_path):
    """A child process where ``import ray`` fails: one line naming pip install -e ".[ray]", exit 2, nothing made."""
    code = ("import sys; sys.modules['ray'] = None\n"  # import ray -> ImportError
            "from adhoc.cli import main; sys.exit(main(sys.argv[1:]))\n")
    for argv in (["sweep", CONFIG, "--seeds", "0", *TINY, "backend=ray", "--out", str(tmp_path / "s")],
                 ["crossplay", str(ROOT / "populations" / "lever-selfplay"), "--backend", "ray", "--out",
                  str(tmp_path / "x")],
                 ["train-population", CONFIG, *TINY, "backend=ray", "--out", str(tmp_path / "p")]):
        run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert 'pip install -e ".[ray]"' in run.stderr and run.stderr.startswith("adhoc: error: ")
    assert list(tmp_path.iterdir()) == []


def test_import_adhoc_never_imports_ray():
    code = ("import sys, adhoc, adhoc.cli, adhoc.config, adhoc.recipes.sweep, adhoc.distributed, "
            "adhoc.distributed.cluster, adhoc.distributed.blocks, adhoc.distributed.train\n"
            "adhoc.cli.build_parser()\nprint('ray' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.stdout.strip() == "False", run.stderr


def test_resweep_after_a_sigkill_of_the_driver_completes_only_the_missing_trials(tmp_path):
    """The driver (``adhoc sweep``, backend local) is killed while the second trial trains, after a checkpoint;
    the same command again skips the first trial, resumes the second from its checkpoint and runs the third."""
    from adhoc.population import CHECKPOINT

    out = tmp_path / "s"
    long = [*TINY, "train.iterations=60", "train.eval_every=60"]
    argv = [sys.executable, "-m", "adhoc.cli", "sweep", CONFIG, "--seeds", "0", "1", "2", *long, "--out", str(out),
            "--episodes", "8"]
    driver = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    staging = out / ".lever-selfplay-s1.partial"
    try:
        for _ in range(6000):  # poll: until trial 1 has checkpointed, at most ~10 min (a hang guard, not a timing)
            if (staging / CHECKPOINT).is_file() or driver.poll() is not None:
                break
            time.sleep(0.1)
        assert driver.poll() is None, driver.communicate()
        os.killpg(driver.pid, signal.SIGKILL)
    finally:
        driver.wait()
    assert (out / "lever-selfplay-s0" / "population.yaml").is_file()
    assert not (out / "lever-selfplay-s1").exists() and (staging / CHECKPOINT).is_file()
    first = (out / "lever-selfplay-s0" / "population.yaml").stat().st_mtime_ns

    run = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    assert "3 trials, 1 complete, 2 to run" in run.stdout
    assert (out / "lever-selfplay-s0" / "population.yaml").stat().st_mtime_ns == first
    assert sorted(rows_by_trial(out)) == ["lever-selfplay-s0", "lever-selfplay-s1", "lever-selfplay-s2"]
    assert not staging.exists()
    # the resumed trial equals one trained without interruption
    again, _, _ = S.run_sweep([CONFIG], [1], long, out=tmp_path / "plain", episodes=8)
    strip = lambda r: {k: v for k, v in r.items() if k not in ("train_s", "population")}  # noqa: E731
    assert strip(rows_by_trial(out)["lever-selfplay-s1"]) == strip(again[0])


@pytest.mark.parametrize("argv, fragment", [
    (["train.lr=0.1"], "unknown section 'train' (allowed: backend, ray)"),
    (["ray.workers=0"], "ray.workers must be >= 1"),
    (["--backend", "local", "--block-size", "-1"], "--block-size must be >= 0"),
    (["backend=ray", "ray.address=http://head"], "ray.address 'http://head' must be empty"),
])
def test_crossplay_execution_options_refuse_in_one_line(tmp_path, capsys, argv, fragment):
    pop = str(ROOT / "populations" / "lever-selfplay")
    assert main(["crossplay", pop, *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adhoc: error: ") and err.count("\n") == 1 and fragment in err, err
    assert not (tmp_path / "x").exists()


def test_crossplay_in_blocks_locally_is_seeded_per_block(tmp_path, capsys):
    """--block-size T in this process: the same matrix twice, another than one stream's for a barely trained
    population (the blocks draw from their own generators); the report is written as usual."""
    from adhoc.config import load_config
    from adhoc.crossplay import crossplay
    from adhoc.distributed.blocks import LocalBlocks
    from adhoc.recipes.train_population import train_population

    config = load_config(CONFIG, ["population.size=4", "game.n_levers=3", "train.iterations=1",
                                  "train.episodes_per_pair=4", "train.eval_episodes=4"])
    pop = train_population(config, out=tmp_path / "pop", progress=False)
    a = crossplay([pop.path], episodes=8, seed=1, play=LocalBlocks(2))
    b = crossplay([pop.path], episodes=8, seed=1, play=LocalBlocks(2))
    one = crossplay([pop.path], episodes=8, seed=1)
    assert (a.matrix == b.matrix).all() and not (a.matrix == one.matrix).all()
    assert main(["crossplay", str(pop.path), "--episodes", "8", "--seed", "1", "--block-size", "2", "--out",
                 str(tmp_path / "x")]) == 0
    saved = json.loads((tmp_path / "x" / "crossplay.json").read_text())
    assert saved["matrix"] == a.matrix.tolist()


def test_a_sigterm_stops_the_sweep_with_a_line_saying_how_to_continue(tmp_path, monkeypatch, capsys):
    from adhoc import engine

    real, count = engine.rollout, [0]

    def rollout(*args, **kwargs):
        count[0] += 1
        if count[0] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "rollout", rollout)
    out = tmp_path / "s"
    assert main(["sweep", CONFIG, "--seeds", "0", "1", *TINY, "--out", str(out), "--episodes", "8"]) == 128 + 15
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sweep stopped during trial lever-selfplay-s0" in err and f"--out {out}" in err
    assert (out / ".lever-selfplay-s0.partial").is_dir() and not (out / "lever-selfplay-s1").exists()
    monkeypatch.undo()
    rows, _, _ = S.run_sweep([CONFIG], [0, 1], TINY, out=out, episodes=8)
    plain, _, _ = S.run_sweep([CONFIG], [0], TINY, out=tmp_path / "plain", episodes=8)
    strip = lambda r: {k: v for k, v in r.items() if k not in ("train_s", "population")}  # noqa: E731
    assert len(rows) == 2 and strip(rows[0]) == strip(plain[0])
