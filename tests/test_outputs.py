"""Data safety: bad inputs to every command (output folders, populations on disk, streams, a full disk) are each
answered with one line and exit code 2, without a traceback, and leave every file already on disk byte for byte
unchanged; two runs on one --out: one is refused, the other's work stays intact."""

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_cli import tree_digest as digest
from test_crossplay import forced_population

from adhoc.cli import main
from adhoc.errors import UserError
from adhoc.games import make_game
from adhoc.paths import OutputFolder, check_name, split_member

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def pops(tmp_path_factory):
    """Two small lever populations and a 4-lever one, made once; every test copies what it changes."""
    root = tmp_path_factory.mktemp("pops")
    return {"a": forced_population(root / "a", make_game("lever"), "lever", [1, 2]),
            "b": forced_population(root / "b", make_game("lever"), "lever", [3]),
            "small": forced_population(root / "small", make_game("lever", n_levers=4), "lever", [1])}


def copy(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    return dst


def user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("years of work")
    (path / "data").mkdir()
    (path / "data" / "results.csv").write_text("1,2,3")
    return path


def edit_manifest(pop: Path, change) -> Path:
    manifest = yaml.safe_load((pop / "population.yaml").read_text())
    change(manifest)
    (pop / "population.yaml").write_text(yaml.safe_dump(manifest))
    return pop


def config_file(tmp: Path) -> Path:
    path = tmp / "run.yaml"
    path.write_text("game: {name: lever, n_levers: 4}\nmethod: selfplay\npopulation: {size: 2}\n"
                    "train: {iterations: 2, episodes_per_pair: 4, eval_every: 2, eval_episodes: 8}\n")
    return path


def learner_file(tmp: Path, partners: Path) -> Path:
    path = tmp / "learner.yaml"
    path.write_text(f"partners: [{partners}]\nsolver: uniform\nlearner: {{}}\n"
                    "train: {epochs: 1, iterations_per_epoch: 1, episodes: 4, eval_episodes: 4}\n")
    return path


TRAIN = ["--quiet", "--crossplay-episodes", "0"]


# Each case: (name, setup(tmp, pops) -> argv, text the one-line error must contain). The setup may create files;
# everything under tmp (and the shared populations) must be byte for byte the same after the command.
def _out_cases():
    def xp(out_of, extra=()):
        return lambda t, p: ["crossplay", str(p["a"]), "--episodes", "2", "--out", str(out_of(t, p)), *extra]

    def ev(out_of, extra=()):
        return lambda t, p: ["evaluate", str(p["a"]), "--partners", str(p["b"]), "--episodes", "2",
                             "--out", str(out_of(t, p)), *extra]

    def tp(out_of, extra=()):
        return lambda t, p: ["train-population", str(config_file(t)), *TRAIN, "--out", str(out_of(t, p)), *extra]

    user = lambda t, p: user_folder(t / "mine")  # noqa: E731
    report = lambda t, p: (main(["crossplay", str(p["a"]), "--episodes", "2", "--out", str(t / "rep")]), t / "rep")[1]  # noqa: E731
    return [
        ("crossplay into a user folder", xp(user), "already exists"),
        ("crossplay --overwrite of a user folder", xp(user, ["--overwrite"]), "is not a crossplay output"),
        ("crossplay --overwrite of a population", xp(lambda t, p: copy(p["b"], t / "pop"), ["--overwrite"]),
         "(it is a population)"),
        ("crossplay --out the population itself", xp(lambda t, p: p["a"], ["--overwrite"]), "the input"),
        ("crossplay --out a folder holding the input", xp(lambda t, p: p["a"].parent, ["--overwrite"]), "the input"),
        ("crossplay --out .", xp(lambda t, p: Path(".")), "plain folder name"),
        ("crossplay --out ..", xp(lambda t, p: Path("..")), "plain folder name"),
        ("crossplay --out the working folder", xp(lambda t, p: Path.cwd(), ["--overwrite"]), "working folder"),
        ("crossplay --out /", xp(lambda t, p: Path("/"), ["--overwrite"]), "plain folder name"),
        ("crossplay --out a hidden name", xp(lambda t, p: t / ".hidden"), "plain folder name"),
        ("crossplay --out under a file", xp(lambda t, p: (user_folder(t / "u"), t / "u" / "thesis.tex" / "x")[1]),
         "not a writable folder"),
        ("crossplay --out a link", xp(lambda t, p: (os.symlink(user_folder(t / "real"), t / "link"), t / "link")[1],
                                      ["--overwrite"]), "symbolic link"),
        ("crossplay onto an earlier report without --overwrite", xp(report), "already exists"),
        ("evaluate into a user folder --overwrite", ev(user, ["--overwrite"]), "not an evaluation output"),
        ("evaluate --out the agent", ev(lambda t, p: p["a"], ["--overwrite"]), "the input"),
        ("evaluate --out a partner population", ev(lambda t, p: p["b"], ["--overwrite"]), "the input"),
        ("evaluate --overwrite of a cross-play report", ev(report, ["--overwrite"]), "(it is a crossplay)"),
        ("train-population into a user folder", tp(user), "already exists"),
        ("train-population --overwrite of a user folder", tp(user, ["--overwrite"]), "not a population output"),
        ("train-population --overwrite of a report", tp(report, ["--overwrite"]), "(it is a crossplay)"),
        ("train-population --out .", tp(lambda t, p: Path(".")), "plain folder name"),
        ("train-population --resume of a finished run", tp(lambda t, p: copy(p["b"], t / "done"), ["--resume"]),
         "already complete"),
        ("train-population into a foreign .partial", tp(lambda t, p: (user_folder(t / ".x.partial"), t / "x")[1]),
         "not a staging folder of adhoc"),
        ("train-learner --out its partners", lambda t, p: ["train-learner", str(learner_file(t, p["b"])), "--quiet",
                                                           "--out", str(p["b"]), "--overwrite"], "the input"),
        ("train-learner into a user folder", lambda t, p: ["train-learner", str(learner_file(t, p["b"])), "--quiet",
                                                           "--out", str(user_folder(t / "u"))], "already exists"),
    ]


def _population_cases():
    """Populations on disk that are broken, foreign or hostile; each read by populations show / check /
    crossplay / evaluate / train-learner."""

    def broken(change):
        return lambda t, p: change(copy(p["a"], t / "pop"))

    def truncate(pop):
        f = pop / "members" / "m0" / "adapter_model.safetensors"
        f.write_bytes(f.read_bytes()[:100])
        return pop

    def foreign(pop):
        f = pop / "members" / "m0" / "adapter_config.json"
        f.write_text(f.read_text().replace('"r": 4', '"r": 8'))
        return pop

    def member_link(pop):
        outside = copy(pop / "members" / "m1", pop.parent / "elsewhere")
        subprocess.run(["rm", "-r", str(pop / "members" / "m1")], check=True)
        os.symlink(outside, pop / "members" / "m1")
        return pop

    def weights_link(pop):
        f = pop / "members" / "m1" / "adapter_model.safetensors"
        outside = pop.parent / "w.safetensors"
        outside.write_bytes(f.read_bytes())
        f.unlink()
        os.symlink(outside, f)
        return pop

    def manifest_link(pop):
        outside = pop.parent / "manifest.yaml"
        outside.write_text((pop / "population.yaml").read_text())
        (pop / "population.yaml").unlink()
        os.symlink(outside, pop / "population.yaml")
        return pop

    def raw(text):
        def change(pop):
            (pop / "population.yaml").write_bytes(text)
            return pop
        return change

    def name(value):
        return lambda pop: edit_manifest(pop, lambda m: m["members"][0].update(name=value))

    show = lambda setup: lambda t, p: ["populations", "show", str(setup(t, p))]  # noqa: E731
    check = lambda setup: lambda t, p: ["populations", "check", str(setup(t, p))]  # noqa: E731
    xp = lambda setup: lambda t, p: ["crossplay", str(setup(t, p)), "--episodes", "2", "--out", str(t / "o")]  # noqa: E731
    return [
        ("a missing population", show(lambda t, p: t / "nowhere"), "population not found"),
        ("a file, not a population", show(lambda t, p: (t / "f").write_text("x") and t / "f"), "population not found"),
        ("a folder without a manifest", show(lambda t, p: user_folder(t / "u")), "population.yaml is missing"),
        ("a missing member folder", show(broken(lambda pop: subprocess.run(["rm", "-r", str(pop / "members" / "m1")])
                                                and pop)), "adapter folder missing"),
        ("a truncated member", show(broken(truncate)), "corrupt or truncated"),
        ("a foreign member", show(broken(foreign)), "disagrees with the manifest"),
        ("a newer manifest format", show(broken(lambda pop: edit_manifest(
            pop, lambda m: m.update(format="adhoc-population/7")))), "newer than this adhoc reads"),
        ("an unknown manifest format", show(broken(lambda pop: edit_manifest(
            pop, lambda m: m.update(format="something")))), "unknown"),
        ("a member name with a separator", show(broken(name("../../etc"))), "not a plain name"),
        ("a member name ..", show(broken(name(".."))), "not a plain name"),
        ("an absolute member name", show(broken(name("/etc/passwd"))), "not a plain name"),
        ("a member name that is a number", show(broken(name(7))), "not a plain name"),
        ("repeated member names", show(broken(lambda pop: edit_manifest(
            pop, lambda m: m["members"][1].update(name="m0")))), "repeat"),
        ("a member folder linking outside", show(broken(member_link)), "links outside the population"),
        ("member weights linking outside", check(broken(weights_link)), "links outside the population"),
        ("a manifest linking outside", show(broken(manifest_link)), "links outside the population"),
        ("a manifest with a python tag", show(broken(raw(b"!!python/object/apply:os.system ['echo hi']\n"))),
         "does not parse"),
        ("a binary manifest", show(broken(raw(bytes(range(256)) * 4))), "does not parse"),
        ("an empty manifest", show(broken(raw(b""))), "lacks"),
        ("a manifest that is a list", show(broken(raw(b"- 1\n- 2\n"))), "lacks"),
        ("members that are not a list", show(broken(lambda pop: edit_manifest(
            pop, lambda m: m.update(members="m0")))), "non-empty list"),
        ("a game without a name", show(broken(lambda pop: edit_manifest(
            pop, lambda m: m.update(game={"n_levers": 10})))), "game must be a mapping with a name"),
        ("a base model without fingerprint", show(broken(lambda pop: edit_manifest(
            pop, lambda m: m.update(base_model={"id": "builtin:tiny"})))), "fingerprint"),
        ("another base model's fingerprint", check(broken(lambda pop: edit_manifest(
            pop, lambda m: m["base_model"].update(fingerprint="0" * 16)))), "was trained on base model"),
        ("crossplay of a broken population", xp(broken(truncate)), "corrupt or truncated"),
        ("crossplay of two games", lambda t, p: ["crossplay", str(p["a"]), str(p["small"]), "--episodes", "2",
                                                 "--out", str(t / "o")], "needs the same game"),
        ("evaluate with a missing member", lambda t, p: ["evaluate", str(p["a"]), "--partners", str(p["b"]),
                                                         "--member", "nobody", "--out", str(t / "o")], "nobody"),
        ("evaluate against another game", lambda t, p: ["evaluate", str(p["a"]), "--partners", str(p["small"]),
                                                        "--out", str(t / "o")], "lever"),
        ("train-learner with a hostile partner", lambda t, p: [
            "train-learner", str(learner_file(t, broken(name("a/b"))(t, p))), "--quiet", "--out", str(t / "o")],
         "not a plain name"),
    ]


CASES = _out_cases() + _population_cases()


@pytest.mark.parametrize("setup,expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, pops, capsys, monkeypatch, setup, expect):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    argv = setup(tmp_path, pops)
    capsys.readouterr()
    before = digest(tmp_path), {k: digest(v) for k, v in pops.items()}
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert err.startswith("adhoc: error:") and "\n" not in err and "Traceback" not in err, err
    assert expect in err, err
    assert (digest(tmp_path), {k: digest(v) for k, v in pops.items()}) == before


def test_home_folder_is_refused(tmp_path, pops, monkeypatch, capsys):
    home = user_folder(tmp_path / "home")
    monkeypatch.setenv("HOME", str(home))
    before = digest(home)
    assert main(["crossplay", str(pops["a"]), "--episodes", "2", "--out", "~", "--overwrite"]) == 2
    assert main(["crossplay", str(pops["a"]), "--episodes", "2", "--out", str(home), "--overwrite"]) == 2
    assert "home or working folder" in capsys.readouterr().err and digest(home) == before


def test_a_full_disk_leaves_nothing_behind(tmp_path, pops, monkeypatch, capsys):
    previous = copy(pops["b"], tmp_path / "pop")  # an earlier population of the same --out, to be replaced
    report = tmp_path / "report"
    assert main(["crossplay", str(pops["a"]), "--episodes", "2", "--out", str(report)]) == 0
    config = config_file(tmp_path)
    before = digest(tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "somewhere")

    monkeypatch.setattr(Path, "write_bytes", full)
    assert main(["crossplay", str(pops["a"]), "--episodes", "2", "--out", str(report), "--overwrite"]) == 2
    monkeypatch.undo()
    monkeypatch.setattr("adhoc.lm.adapters.AdapterBank.export_member", full)
    assert main(["train-population", str(config), *TRAIN, "--out", str(previous), "--overwrite",
                 "train.checkpoint_every=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["adhoc: error: No space left on device: somewhere"] * 2
    assert digest(tmp_path) == before  # the old report and population are intact, no .partial is left


def test_closed_stdout_is_quiet(pops):
    """``adhoc populations show POP | head -0``: the reader is gone before adhoc writes."""
    proc = subprocess.Popen([sys.executable, "-m", "adhoc.cli", "populations", "show", str(pops["a"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 2 and "Traceback" not in err and "Exception ignored" not in err, err


def test_a_second_run_on_the_same_out_is_refused(tmp_path):
    """A real concurrent run: the second command is refused with one line while the first holds the lock,
    and the first run's population ends intact."""
    config = config_file(tmp_path)
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "adhoc.cli", "train-population", str(config), *TRAIN,
                              "--out", str(out), "train.iterations=4000", "train.eval_every=4000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    lock = tmp_path / ".run.partial" / ".lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text().strip()) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    second = subprocess.run([sys.executable, "-m", "adhoc.cli", "train-population", str(config), *TRAIN,
                             "--out", str(out), "--overwrite"], capture_output=True, text=True, cwd=tmp_path)
    assert second.returncode == 2 and second.stderr.strip().count("\n") == 0, second.stderr
    assert "another adhoc run is writing" in second.stderr
    first.terminate()  # SIGTERM: the first run checkpoints and stops; resuming it finishes the population
    assert first.wait(timeout=120) == 128 + 15, first.stderr.read()
    resumed = subprocess.run([sys.executable, "-m", "adhoc.cli", "train-population", str(config), *TRAIN,
                              "--out", str(out), "train.iterations=4000", "train.eval_every=4000", "--resume",
                              "train.lr=0.02"], capture_output=True, text=True, cwd=tmp_path)
    assert resumed.returncode == 2 and "differs in" in resumed.stderr  # another config is refused...
    assert (tmp_path / ".run.partial" / "checkpoint.safetensors").is_file()  # ... and the checkpoint kept


def test_output_folder_lock_in_one_process(tmp_path):
    first = OutputFolder(tmp_path / "x", "crossplay")
    with pytest.raises(UserError, match="another adhoc run is writing"):
        OutputFolder(tmp_path / "x", "crossplay", overwrite=True)
    (first.staging / "crossplay.json").write_text('{"game": "lever", "members": [], "matrix": [], "episodes": 1, '
                                                   '"sp_mean": 0, "xp_mean": 0}')  # what --overwrite takes for ours
    assert first.commit() == tmp_path / "x" and not (tmp_path / "x" / ".lock").exists()
    again = OutputFolder(tmp_path / "x", "crossplay", overwrite=True)  # released: an overwrite may follow
    again.abandon(keep=False)
    assert not again.staging.exists() and (tmp_path / "x" / "crossplay.json").is_file()


@pytest.mark.parametrize("value", ["a/b", "..", ".", "", ".hidden", "-rf", "a\\b", "a\0b", "x" * 129, None, 3])
def test_check_name_refuses_paths(value):
    with pytest.raises(UserError, match="not a plain name"):
        check_name(value, "member name")


@pytest.mark.parametrize("value", ["member", "learner-epoch-00", "m0", "run_2.v1", "a+b=c"])
def test_check_name_accepts_plain_names(value):
    assert check_name(value, "member name") == value


def test_split_member(tmp_path):
    """DIR:MEMBERS splits at the last ':' unless the whole spec is a path (a folder named with ':')."""
    assert split_member(f"{tmp_path}/pop:member-00,member-03") == (f"{tmp_path}/pop", "member-00,member-03")
    assert split_member(" runs/pop ") == ("runs/pop", None)
    assert split_member("runs/pop:") == ("runs/pop", "")
    assert split_member("scripted:lever:stubborn-1") == ("scripted:lever", "stubborn-1")
    (tmp_path / "a:b").mkdir()
    assert split_member(f"{tmp_path}/a:b") == (f"{tmp_path}/a:b", None)
    assert split_member(f"{tmp_path}/a:b:m") == (f"{tmp_path}/a:b", "m")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_parent_is_refused_before_any_work(tmp_path, pops, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        assert main(["crossplay", str(pops["a"]), "--episodes", "2", "--out", str(parent / "x")]) == 2
        assert "not a writable folder" in capsys.readouterr().err and not list(parent.iterdir())
    finally:
        parent.chmod(0o755)
