"""``--overwrite`` replaces an earlier output of the same kind only if EVERY file in it, at any depth, is one that
adhoc writes there (by name and content): for every command with ``--out``/``--overwrite``, a genuine output is
replaced (exit 0), and the same output with one file of a user's planted at any depth (or one of its files
replaced by a user's, a folder or a link) is refused with one line naming that file, exit 2, nothing changed."""

import os
import shutil
from pathlib import Path

import pytest
import yaml
from test_crossplay import forced_population
from test_outputs import config_file, learner_file
from test_proxy import record

from adhoc import paths
from adhoc.cli import main
from adhoc.games import make_game
from adhoc.population import REQUIRED

TRAIN = ["--quiet", "--crossplay-episodes", "2"]  # the population gets a crossplay/ report, as by default
BASE = ["--arch", "tiny,hidden=32,ffn=64", "--steps", "0", "--quiet"]


def files(folder: Path) -> dict[str, bytes | str]:
    """Every path under ``folder`` (links not followed) -> its bytes, "<dir>" or "-> target"."""
    out = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            p = Path(root) / name
            rel = str(p.relative_to(folder))
            out[rel] = f"-> {os.readlink(p)}" if p.is_symlink() else "<dir>" if p.is_dir() else p.read_bytes()
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One genuine output of every kind, each made by its own command; every test copies the one it uses."""
    root = tmp_path_factory.mktemp("outputs")
    a = forced_population(root / "a", make_game("lever"), "lever", [1, 2])
    b = forced_population(root / "b", make_game("lever"), "lever", [3])
    db = root / "copy.sqlite"
    record(db, [0, 1], episodes=2)
    argv = {
        "train-population": ["train-population", str(config_file(root)), *TRAIN],
        "train-learner": ["train-learner", str(learner_file(root, b)), "--quiet"],
        "train-proxy": ["train-proxy", str(db), "--iterations", "2", "--quiet"],
        "crossplay": ["crossplay", str(a), "--episodes", "2"],
        "evaluate": ["evaluate", str(a), "--partners", str(b), "--episodes", "2"],
        "pretrain-base": ["pretrain-base", *BASE],
    }
    outputs = {}
    for command, args in argv.items():
        assert main([*args, "--out", str(root / command)]) == 0, command
        outputs[command] = root / command
    return {"root": root, "argv": argv, "out": outputs}


def member(folder: Path) -> str:
    return min(p.name for p in (folder / "members").iterdir())


def events(folder: Path) -> str:
    return next(p.name for p in (folder / "tb").iterdir())


# (name, commands it applies to, plant(out) -> the relative path the refusal must name)
def plant_file(rel):
    def plant(out: Path) -> str:
        rel_ = rel(out) if callable(rel) else rel
        (out / rel_).parent.mkdir(parents=True, exist_ok=True)
        (out / rel_).write_text("a user's work\n")
        return rel_
    return plant


def as_folder(rel):
    """An output file replaced by a user's folder of that name holding data.txt."""
    def plant(out: Path) -> str:
        rel_ = rel(out) if callable(rel) else rel
        (out / rel_).unlink()
        (out / rel_).mkdir()
        (out / rel_ / "data.txt").write_text("1,2,3\n")
        return f"{rel_}/data.txt"
    return plant


def replaced(rel, data: bytes = b"a user's own version\n"):
    """An output file's content replaced by the user's (same name)."""
    def plant(out: Path) -> str:
        rel_ = rel(out) if callable(rel) else rel
        (out / rel_).write_bytes(data)
        return rel_
    return plant


def linked(rel):
    """A link at ``rel`` to a file outside (a link is never followed, and never ours)."""
    def plant(out: Path) -> str:
        rel_ = rel(out) if callable(rel) else rel
        target = out.parent / "elsewhere.txt"
        target.write_text("the user's file elsewhere\n")
        if (out / rel_).exists():
            (out / rel_).unlink()
        (out / rel_).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, out / rel_)
        return rel_
    return plant


POPULATIONS = ("train-population", "train-learner", "train-proxy")
m = lambda sub: lambda out: f"members/{member(out)}/{sub}"  # noqa: E731
PLANTS = [
    ("top level", POPULATIONS + ("crossplay", "evaluate", "pretrain-base"), plant_file("notes.txt")),
    ("in members/", POPULATIONS, plant_file("members/notes.txt")),
    ("in a member folder", POPULATIONS, plant_file(m("notes.txt"))),
    ("in a nested folder of a member", POPULATIONS, plant_file(m("analysis/fig.txt"))),
    ("a member folder no manifest names", POPULATIONS, plant_file("members/member-99/adapter_config.json")),
    ("in tb/", POPULATIONS + ("crossplay", "pretrain-base"), plant_file("tb/my_run.txt")),
    ("in crossplay/", POPULATIONS, plant_file("crossplay/analysis.ipynb")),
    ("in crossplay/tb/", ("train-population",), plant_file("crossplay/tb/notes.txt")),
    ("in a nested folder", ("crossplay", "evaluate", "pretrain-base"), plant_file("analysis/fig.txt")),
    ("a folder named like an output file", ("crossplay", "evaluate"), as_folder("report.html")),
    ("a folder named like a population file", ("train-population", "train-learner"), as_folder("config.yaml")),
    ("a folder named like a member file", POPULATIONS, as_folder(m("adapter_config.json"))),
    ("a folder named like a base file", ("pretrain-base",), as_folder("config.json")),
    ("a user's weights", POPULATIONS, replaced(m("adapter_model.safetensors"))),
    ("a user's adapter config", POPULATIONS, replaced(m("adapter_config.json"), b'{"r": 4}')),
    ("a user's event file", ("train-population", "pretrain-base"), replaced(lambda out: f"tb/{events(out)}")),
    ("a user's file named like an event file", ("train-population",), plant_file("tb/events.out.tfevents.1.mine")),
    ("a user's config.yaml", ("train-population",), replaced("config.yaml", b"notes: mine\n")),
    ("a user's manifest", POPULATIONS, replaced("population.yaml", b"format: adhoc-population/1\nmembers: []\n")),
    ("a manifest that does not parse", ("train-population",), replaced("population.yaml", b"{{: [\n")),
    ("a user's report", ("crossplay", "evaluate"), replaced("report.md")),
    ("a user's figure", ("evaluate",), replaced("returns.png")),
    ("a user's matrix", ("crossplay",), replaced("crossplay.json", b'{"mine": 1}')),
    ("a user's README", ("pretrain-base",), replaced("README.md")),
    ("a user's model", ("pretrain-base",), replaced("model.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{}")),
    ("a link to a user's file", POPULATIONS, linked(m("notes.txt"))),
    ("an output file that is a link", ("crossplay",), linked("report.md")),
]
CASES = [(f"{command}: {name}", command, plant) for name, commands, plant in PLANTS for command in commands]


@pytest.mark.parametrize("command,plant", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_overwrite_refuses_a_planted_file_and_changes_nothing(made, tmp_path, capsys, monkeypatch, command, plant):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    shutil.copytree(made["out"][command], out, symlinks=True)
    rel = plant(out)
    before, outside = files(out), files(tmp_path)
    capsys.readouterr()
    assert main([*made["argv"][command], "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adhoc: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"holds {rel}, which is not a file of" in err and "nothing was changed" in err, err
    assert files(out) == before and files(tmp_path) == outside


@pytest.mark.parametrize("command", list(POPULATIONS) + ["crossplay", "evaluate", "pretrain-base"])
def test_overwrite_replaces_a_genuine_output(made, tmp_path, capsys, command):
    out = tmp_path / "out"
    shutil.copytree(made["out"][command], out, symlinks=True)
    old = out.stat().st_ino
    assert main([*made["argv"][command], "--out", str(out), "--overwrite"]) == 0, capsys.readouterr().err
    assert out.stat().st_ino != old  # the new output was renamed into place
    assert paths.foreign_file(out, paths.kind_of(out)) is None
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging or old folder left


def test_crossplay_into_a_population_refuses_a_planted_file(made, tmp_path, capsys):
    """``adhoc crossplay POP --out POP/crossplay --overwrite``: the report a train-population wrote is replaced,
    but not with the user's notes in its tb/."""
    pop = shutil.copytree(made["out"]["train-population"], tmp_path / "pop")
    argv = ["crossplay", str(pop), "--episodes", "2", "--out", str(pop / "crossplay"), "--overwrite"]
    (pop / "crossplay" / "tb" / "notes.txt").write_text("mine\n")
    before = files(tmp_path)
    assert main(argv) == 2
    assert "holds tb/notes.txt" in capsys.readouterr().err and files(tmp_path) == before
    (pop / "crossplay" / "tb" / "notes.txt").unlink()
    assert main(argv) == 0
    assert paths.foreign_file(pop, "population") is None


def test_a_foreign_population_manifest_and_members_is_not_a_population(made, tmp_path, capsys):
    """A folder holding a population.yaml and a members/ is no population unless the manifest is ours."""
    out = tmp_path / "mine"
    (out / "members" / "alice").mkdir(parents=True)
    (out / "members" / "alice" / "adapter_config.json").write_text("{}")
    for text in ("name: my project\n", "- a list\n", "format: adhoc-population/1\n", ": : :\n", ""):
        (out / "population.yaml").write_text(text)
        before = files(tmp_path)
        assert main([*made["argv"]["train-population"], "--out", str(out), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert "holds population.yaml, which is not a file of a population output" in err and err.count("\n") == 1
        assert files(tmp_path) == before


def test_learners_runs_overwrite_only_their_own_output(made, tmp_path, capsys):
    """A ``learners:`` run (one population per slot) replaces only an earlier learners: output holding nothing
    else: not a single learner's population, and not one with a user's file planted in a slot."""
    config = yaml.safe_load(Path(made["argv"]["train-learner"][1]).read_text())
    config["learners"] = [{"name": "s0"}, {"name": "s1"}]
    path = tmp_path / "slots.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = ["train-learner", str(path), *made["argv"]["train-learner"][2:]]
    single = shutil.copytree(made["out"]["train-learner"], tmp_path / "single")
    before = files(tmp_path)
    assert main([*argv, "--out", str(single), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "is not a learner populations output" in err and err.count("\n") == 1
    assert files(tmp_path) == before
    out = tmp_path / "slots"
    assert main([*argv, "--out", str(out)]) == 0
    (out / "s1" / "members" / "notes.txt").write_text("mine\n")
    capsys.readouterr()
    before = files(tmp_path)
    assert main([*argv, "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "holds s1/members/notes.txt, which is not a file of a learner populations output" in err
    assert files(tmp_path) == before
    (out / "s1" / "members" / "notes.txt").unlink()
    assert main([*argv, "--out", str(out), "--overwrite"]) == 0


def test_a_too_large_tree_is_refused_in_one_line(made, tmp_path, capsys, monkeypatch):
    out = shutil.copytree(made["out"]["crossplay"], tmp_path / "out")
    monkeypatch.setattr(paths, "MAX_ENTRIES", 3)
    before = files(tmp_path)
    assert main([*made["argv"]["crossplay"], "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "more than 3 files and folders" in err and "nothing was changed" in err and err.count("\n") == 1
    assert files(tmp_path) == before


def test_a_file_added_during_the_run_stops_the_replacement(made, tmp_path, capsys, monkeypatch):
    """The check is made again just before the old output is replaced: a file put there meanwhile is kept."""
    out = shutil.copytree(made["out"]["evaluate"], tmp_path / "out")
    real = paths.OutputFolder.commit

    def commit(self):
        (out / "notes.txt").write_text("written while the run was going\n")
        return real(self)

    monkeypatch.setattr(paths.OutputFolder, "commit", commit)
    assert main([*made["argv"]["evaluate"], "--out", str(out), "--overwrite"]) == 2
    assert "changed while this run was writing" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "written while the run was going\n"
    assert paths.foreign_file(out, "evaluation") == "notes.txt"


def test_manifest_keys_match_the_population_reader():
    assert set(paths.POPULATION_KEYS) == set(REQUIRED)


def test_event_file_check_reads_real_and_refuses_altered_records(made, tmp_path):
    tb = made["out"]["train-population"] / "tb"
    real = next(tb.iterdir())
    assert paths._tb_events(real)
    data = bytearray(real.read_bytes())
    data[20] ^= 1  # one bit of the first record's data: its CRC no longer matches
    (tmp_path / real.name).write_bytes(bytes(data))
    assert not paths._tb_events(tmp_path / real.name)


# ------------------------------------------------------------ the walk, at its edges (mutation-test survivors)
def test_the_refusal_names_the_first_file_of_a_nested_foreign_folder_never_following_links(tmp_path, monkeypatch):
    """A foreign folder is named by its first file, however deep (up to MAX_DEPTH, then the folder itself); a link
    is named, never followed."""
    foreign = tmp_path / "f"
    (foreign / "sub" / "dir").mkdir(parents=True)
    (foreign / "sub" / "dir" / "x.txt").write_text("mine\n")
    assert paths._Walk().first_file(foreign, "f") == "f/sub/dir/x.txt"
    monkeypatch.setattr(paths, "MAX_DEPTH", 2)
    assert paths._Walk().first_file(foreign, "f") == "f/sub/dir/"
    monkeypatch.setattr(paths, "MAX_DEPTH", 1)
    assert paths._Walk().first_file(foreign, "f") == "f/sub/"
    linked = tmp_path / "g"
    linked.mkdir()
    (linked / "link").symlink_to(foreign / "sub", target_is_directory=True)
    assert paths._Walk().first_file(linked, "g") == "g/link"
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    assert paths._Walk().first_file(tmp_path / "empty", "e") == "e/deeper/"


def test_the_walk_counts_every_entry_against_max_entries(tmp_path, monkeypatch):
    for name in "abc":
        (tmp_path / name).write_text(name)
    monkeypatch.setattr(paths, "MAX_ENTRIES", 3)
    walk = paths._Walk()
    assert [e.name for e in walk.entries(tmp_path)] == ["a", "b", "c"] and walk.seen == 3
    (tmp_path / "d").write_text("d")
    with pytest.raises(paths._TooLarge):
        paths._Walk().entries(tmp_path)


def test_only_slot_populations_with_their_learners_config_make_a_learners_run(made, tmp_path):
    """``_learner_populations``: an empty folder, a slot that is a file or a link, a slot that is no population, a
    config.yaml that is a link, unreadable, not a mapping or without the slots' names: none is a learners: run."""
    single = made["out"]["train-learner"]
    config = yaml.safe_load((single / "config.yaml").read_text())
    out = tmp_path / "run"
    for name in ("s0", "s1"):
        shutil.copytree(single, out / name, symlinks=True)
        (out / name / "config.yaml").write_text(yaml.safe_dump(config | {"learners": [{"name": "s0"},
                                                                                        {"name": "s1"}]}))
    assert paths._learner_populations(out, {"s0", "s1"})
    (tmp_path / "empty").mkdir()
    assert not paths._learner_populations(tmp_path / "empty", set())
    assert not paths._learner_populations(out, {"s0"})  # the config names a slot that is not here
    cfg = out / "s1" / "config.yaml"
    good = cfg.read_text()
    for text in (": : :\n", "- a list\n", yaml.safe_dump(config), yaml.safe_dump(config | {"learners": "s0"}),
                 yaml.safe_dump(config | {"learners": [{"name": "s0"}, "s1"]})):
        cfg.write_text(text)
        assert not paths._learner_populations(out, {"s0", "s1"}), text
    cfg.unlink()
    cfg.symlink_to(out / "s0" / "config.yaml")
    assert not paths._learner_populations(out, {"s0", "s1"})
    cfg.unlink()
    cfg.write_text(good)
    shutil.move(out / "s1", tmp_path / "s1")
    (out / "s1").symlink_to(tmp_path / "s1", target_is_directory=True)
    assert not paths._learner_populations(out, {"s0", "s1"})
    (out / "s1").unlink()
    (out / "s1").write_text("a file\n")
    assert not paths._learner_populations(out, {"s0", "s1"})
    (out / "s1").unlink()
    (out / "s1").mkdir()
    (out / "s1" / "config.yaml").write_text(good)
    assert not paths._learner_populations(out, {"s0", "s1"})  # a folder holding a config, not a population


def test_overwrite_onto_a_file_or_an_unknown_folder_says_why_in_one_line(made, tmp_path, capsys):
    argv = made["argv"]["crossplay"]
    for out in (tmp_path / "notes.txt", tmp_path / "folder"):
        if out.suffix:
            out.write_text("mine\n")
        else:
            out.mkdir()
            (out / "x.txt").write_text("mine\n")
        before = files(tmp_path)
        assert main([*argv, "--out", str(out), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and files(tmp_path) == before, err
        assert (f"{out} exists and is not a crossplay output folder written by adhoc; --overwrite replaces only "
                "that, so nothing was changed: choose another --out") in err, err
