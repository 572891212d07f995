"""Saying what is happening: the progress of the long commands (on a terminal's stderr only, never changing a
result or stdout), the training bar ending at 100%, the TensorBoard tags, ``populations check`` loading the
base once and importing no config machinery, and the small usage messages."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from adhoc.cli import main

ROOT = Path(__file__).resolve().parent.parent
POP = ROOT / "populations" / "lever-selfplay"
TINY = ["population.size=2", "game.n_levers=3", "train.iterations=4", "train.episodes_per_pair=8",
        "train.eval_every=2", "train.eval_episodes=8"]


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def last_bar(err: str) -> str:
    return err.replace("\r", "\n").strip().splitlines()[-1]


@pytest.mark.parametrize("extra, shown", [([], "4/4"), (["train.target_return=0.0"], "2/2")])
def test_training_bar_ends_at_100_percent_also_on_an_early_stop(tmp_path, capsys, extra, shown):
    from adhoc.config import load_config
    from adhoc.recipes.train_population import train_population

    config = load_config(ROOT / "configs" / "lever-selfplay.yaml", [*TINY, *extra])
    pop = train_population(config, out=tmp_path / "pop", progress=True)
    bar = last_bar(capsys.readouterr().err)
    assert "100%" in bar and shown in bar, bar
    assert pop.manifest["training"]["iterations"] == int(shown[0])
    if extra:
        return
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(pop.path / "tb")).Reload().Tags()["scalars"]
    assert {"eval/self_play_return_mean", "eval/self_play_return_min", "train/loss"} <= set(tags)
    assert {"zz_members/self_play_return/member-00", "zz_members/self_play_return/member-01"} <= set(tags)
    assert not [t for t in tags if t.startswith("eval/self_play_return/")]
    groups = sorted({t.split("/")[0] for t in tags})  # TensorBoard's order of the card groups
    assert groups.index("train") < groups.index("zz_members")


def test_an_early_stop_without_a_bar(tmp_path):
    """``--quiet``: the disabled bar is still told about the early stop, without failing."""
    from adhoc.config import load_config
    from adhoc.recipes.train_population import train_population

    config = load_config(ROOT / "configs" / "lever-selfplay.yaml", [*TINY, "train.target_return=0.0"])
    assert train_population(config, out=tmp_path / "pop", progress=False).manifest["training"]["iterations"] == 2


def test_crossplay_progress_is_on_a_terminal_only_and_changes_no_output(tmp_path, capsys, monkeypatch):
    argv = ["crossplay", str(POP), "--episodes", "4"]
    assert main([*argv, "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main([*argv, "--out", str(tmp_path / "shown")]) == 0
    shown = capsys.readouterr()
    assert quiet.err == "" and "crossplay" in terminal.getvalue() and "loading base model" in terminal.getvalue()
    assert "playing 8x8 pairs, 4 episodes each" in terminal.getvalue()
    assert shown.out.replace("shown", "quiet") == quiet.out
    for name in ("crossplay.json", "matrix.npy", "report.md"):
        assert (tmp_path / "shown" / name).read_bytes() == (tmp_path / "quiet" / name).read_bytes(), name
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert main([*argv, "--out", str(tmp_path / "q2"), "--quiet"]) == 0
    assert sys.stderr.getvalue() == ""


def test_populations_check_loads_the_base_once_and_no_config_machinery(capsys, monkeypatch):
    import adhoc.lm.base as base

    calls = []
    real = base.load_base

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(base, "load_base", counted)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["populations", "check", str(POP)]) == 0
    assert len(calls) == 1 and "ok: 8 members" in capsys.readouterr().out
    assert "loading 8 members" in terminal.getvalue()
    code = ("import sys\nfrom adhoc.cli import main\nassert main(['populations', 'check', sys.argv[1]]) == 0\n"
            "print(sorted(m for m in ('adhoc.config', 'adhoc.games', 'adhoc.methods', 'adhoc.solvers', 'omegaconf')"
            " if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(POP)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("[]"), proc.stdout + proc.stderr
    assert proc.stderr == ""  # not a terminal: no progress


def test_sweep_shows_a_bar_of_trials_and_each_trial_its_progress_on_a_terminal(tmp_path, monkeypatch):
    from adhoc.recipes import sweep as S

    seen = []

    def trial(name, config, out, episodes, **kwargs):
        seen.append(kwargs)
        row = {"experiment": "x", "game": "lever", "method": "selfplay", "seed": config.population.seed,
               "members": 2, "sp": 0.5, "xp": 0.25, "gap": 0.25, "conventions": 1, "train_s": 1.0}
        return {"trial": name, "row": row, "trained": True, "seconds": 0.0, "host": "h", "pid": 1}

    said = []
    S.run_sweep([str(ROOT / "configs" / "lever-selfplay.yaml")], [0], TINY, out=tmp_path / "a", trial_fn=trial,
                echo=said.append)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    S.run_sweep([str(ROOT / "configs" / "lever-selfplay.yaml")], [0], TINY, out=tmp_path / "b", trial_fn=trial,
                echo=said.append, progress=True)
    assert seen == [{}, {"progress": True}]
    assert "sweep" in terminal.getvalue() and "lever-selfplay-s0" in terminal.getvalue()
    first, second = said[:len(said) // 2], said[len(said) // 2:]
    assert [s.replace(str(tmp_path / "b"), "OUT") for s in second] == [s.replace(str(tmp_path / "a"), "OUT") for s in first]


def test_list_alone_says_what_can_be_listed(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and all(w in out for w in ("games", "methods", "solvers", "scripted"))


@pytest.mark.parametrize("argv, said", [
    (["train-population"], "train-population needs a CONFIG file, e.g. adhoc train-population configs/"),
    (["train-population", "population.size=3"], "needs a CONFIG file before the overrides (population.size=3)"),
])
def test_train_population_without_a_config_says_so_in_one_line(argv, said, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("adhoc: error: ") and said in err and "key=value" not in err


def test_serve_help_shows_the_port_and_the_episodes_per_partner(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--port PORT port to listen on (default 8000" in out
    assert "--episodes-per-partner K episodes each participant plays with each partner (default 3)" in out


def test_the_saved_hint_names_the_run_as_tensorboard_will(tmp_path):
    from adhoc.cli import _tensorboard_hint

    assert _tensorboard_hint(tmp_path / "lever7") == f"TensorBoard: tensorboard --logdir {tmp_path}, run lever7/tb"
    assert json.dumps(_tensorboard_hint(Path("runs/lever7"))) == '"TensorBoard: tensorboard --logdir runs, run lever7/tb"'


def test_a_reproduce_script_stopped_says_in_one_line_how_to_continue(capsys):
    import signal

    from adhoc.errors import Interrupted, UserError, run_script

    def stopped():
        raise Interrupted("runs/x", 12, signal.SIGTERM)

    with pytest.raises(SystemExit) as info:
        run_script("reproduce_learner", stopped)
    err = capsys.readouterr().err
    assert info.value.code == 128 + signal.SIGTERM and err.count("\n") == 1
    assert err.startswith("reproduce_learner: stopped by SIGTERM at iteration 12; run the same command again")
    assert "--resume" not in err

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as info:
        run_script("reproduce", interrupted)
    assert info.value.code == 130 and capsys.readouterr().err.count("\n") == 1

    def bad():
        raise UserError("no such thing")

    with pytest.raises(SystemExit) as info:
        run_script("reproduce", bad)
    assert info.value.code == 2 and capsys.readouterr().err == "reproduce: error: no such thing\n"
    assert run_script("reproduce", lambda x: x + 1, 1) == 2


@pytest.mark.parametrize("script", ["reproduce.py", "reproduce_learner.py", "reproduce_adaptive.py", "reproduce_prior.py"])
def test_reproduce_scripts_resume_their_trainings_and_stop_in_one_line(script):
    text = (ROOT / "scripts" / script).read_text()
    assert "run_script(" in text
    calls = [line for line in text.splitlines() if "train_population(" in line or "train_learner(" in line]
    calls = [c for c in calls if "import" not in c and "def " not in c]
    for call in calls:  # each training call continues an interrupted run of its folder
        i = text.index(call)
        assert "resume=True" in text[i:i + 250], call
