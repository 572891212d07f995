"""End to end through the `adhoc` command: train a small population, show and check it, and refuse bad input
with one line and exit code 2 without changing anything on disk."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adhoc.cli import main

ROOT = Path(__file__).parent.parent


def tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        h.update(str(f.relative_to(path)).encode())
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "pop"
    code = main(["train-population", str(ROOT / "configs/lever-selfplay.yaml"), "population.size=3",
                 "game.n_levers=4", "train.iterations=40", "train.eval_every=20", "train.episodes_per_pair=16",
                 "train.eval_episodes=64", "--out", str(out), "--quiet"])
    assert code == 0
    return out


def test_trained_population_is_a_complete_artifact(population):
    manifest = yaml.safe_load((population / "population.yaml").read_text())
    assert manifest["game"]["name"] == "lever" and manifest["game"]["n_levers"] == 4
    assert manifest["method"]["name"] == "selfplay"
    assert manifest["base_model"]["id"] == "builtin:tiny" and len(manifest["base_model"]["fingerprint"]) == 16
    assert [m["name"] for m in manifest["members"]] == ["member-00", "member-01", "member-02"]
    assert len({m["seed"] for m in manifest["members"]}) == 3
    assert all(0.0 <= m["self_play_return"] <= 1.0 for m in manifest["members"])
    assert {"torch", "transformers", "peft", "python"} <= set(manifest["versions"])
    assert (population / "config.yaml").is_file() and any((population / "tb").iterdir())
    for m in manifest["members"]:
        assert (population / m["path"] / "adapter_model.safetensors").is_file()
    assert not any(p.name.endswith(".partial") for p in population.parent.iterdir())


def test_members_load_with_peft(population):
    from peft import PeftModel

    from adhoc.lm.base import build_builtin

    base, _ = build_builtin()
    model = PeftModel.from_pretrained(base, population / "members" / "member-01")
    assert any("lora_B" in n for n, _ in model.named_parameters())


def test_show_and_check(population, capsys):
    assert main(["populations", "show", str(population)]) == 0
    out = capsys.readouterr().out
    assert "member-02" in out and "lever" in out and "selfplay" in out
    assert main(["populations", "check", str(population)]) == 0
    assert "ok: 3 members" in capsys.readouterr().out


def expect_user_error(argv, capsys, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("adhoc: error: ") and "\n" not in err and match in err, err


@pytest.mark.parametrize("damage, match", [
    (lambda p: (p / "members/member-01/adapter_model.safetensors").write_bytes(
        (p / "members/member-01/adapter_model.safetensors").read_bytes()[:200]), "corrupt or truncated"),
    (lambda p: (p / "members/member-02/adapter_model.safetensors").unlink(), "adapter_model.safetensors is missing"),
    (lambda p: shutil.rmtree(p / "members/member-00"), "adapter folder missing"),
    (lambda p: (p / "population.yaml").write_text("game: [unclosed"), "does not parse"),
    (lambda p: (p / "population.yaml").write_text("members: []\n"), "lacks"),
    (lambda p: (p / "members/member-00/adapter_config.json").write_text("{nope"), "not valid JSON"),
])
def test_damaged_population_is_refused_and_left_as_is(population, tmp_path, capsys, damage, match):
    copy = tmp_path / "pop"
    shutil.copytree(population, copy)
    damage(copy)
    before = tree_digest(copy)
    expect_user_error(["populations", "show", str(copy)], capsys, match)
    expect_user_error(["populations", "check", str(copy)], capsys, match)
    assert tree_digest(copy) == before


def test_different_base_model_is_refused(population, capsys):
    expect_user_error(["populations", "check", str(population), "--base", "builtin:small"], capsys,
                      "was trained on base model builtin:tiny")


def test_existing_out_is_never_overwritten_without_asking(population, capsys):
    before = tree_digest(population)
    expect_user_error(["train-population", str(ROOT / "configs/lever-selfplay.yaml"), "--out", str(population)],
                      capsys, "already exists")
    assert tree_digest(population) == before


@pytest.mark.parametrize("argv, match", [
    (["train-population", "configs/nope.yaml"], "config file not found"),
    (["train-population", "configs/lever-selfplay.yaml", "train.bogus=1"], "unknown key train.bogus"),
    (["train-population", "configs/lever-selfplay.yaml", "train.iterations=many"], "train.iterations"),
    (["train-population", "configs/lever-selfplay.yaml", "game.name=go"], "unknown game.name 'go'"),
    (["train-population", "configs/lever-selfplay.yaml", "method=telepathy"], "unknown method.name 'telepathy'"),
    (["validate", "configs/lever-selfplay.yaml", "model.lora_rank=0"], "model.lora_rank must be >= 1"),
    (["validate", "train.lr=0.02"], "validate needs a config file"),
    (["validate", "--print", "configs/lever-selfplay.yaml", "game.name=cmg-h"], "write game=cmg-h instead"),
    (["list", "scripted", "chess"], "unknown game 'chess' (allowed: "),
    (["list", "games", "lever"], "adhoc list games takes no GAME"),
    (["populations", "show", "no/such/population"], "population not found"),
])
def test_bad_input_one_line_exit_2(argv, match, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    expect_user_error(argv, capsys, match)
    assert not (ROOT / "runs").exists() or not any(p.name.endswith(".partial") for p in (ROOT / "runs").iterdir())


def test_console_script_exit_code_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "adhoc.cli", "validate", str(ROOT / "configs/lever-selfplay.yaml"),
                           "game.unique_payoff=lots"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    ok = subprocess.run([sys.executable, "-m", "adhoc.cli", "validate", str(ROOT / "configs/lever-selfplay.yaml")],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "ok:" in ok.stdout


def test_method_that_cannot_serve_the_game(tmp_path, capsys):
    cfg = tmp_path / "matrix-otherplay.yaml"
    cfg.write_text("game: {name: matrix, payoff: [[1, 0], [0, 1]]}\nmethod: otherplay\n")
    expect_user_error(["train-population", str(cfg), "--out", str(tmp_path / "pop")], capsys, "declares none")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["matrix-otherplay.yaml"]


# ---------------------------------------------------------------------------- one grammar: CONFIG [key=value ...]
def test_validate_takes_overrides_like_every_command(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    configs = ["configs/lever-selfplay.yaml", "configs/cmg-s-selfplay.yaml"]
    assert main(["validate", *configs, "train.lr=0.02", "population.size=3"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"ok: {c}" for c in configs]
    # the overrides apply to every config: a bad one fails the first
    expect_user_error(["validate", *configs, "train.lr=-1"], capsys, "train.lr must be > 0")
    # a config file whose name holds '=' is still a config file
    odd = tmp_path / "lr=0.02.yaml"
    odd.write_text((ROOT / configs[0]).read_text())
    assert main(["validate", str(odd), "train.lr=0.5"]) == 0 and f"ok: {odd}" in capsys.readouterr().out
    # --set: the old spelling still works (deprecated, hidden from --help)
    assert main(["validate", configs[0], "--set", "train.lr=0.02"]) == 0
    assert capsys.readouterr().out == f"ok: {configs[0]}\n"
    expect_user_error(["validate", configs[0], "--set", "train.lr=0"], capsys, "train.lr must be > 0")


@pytest.mark.parametrize("config, overrides", [
    ("configs/lever-selfplay.yaml", ["game=cmg-h", "train.lr=0.02", "population.size=3"]),
    ("configs/lever-learner.yaml", ["solver=prioritized", "solver.beta=2", "partners=runs/a", "partners=runs/b"]),
])
def test_validate_print_shows_the_resolved_config_which_loads_back(tmp_path, capsys, monkeypatch, config, overrides):
    from adhoc.config import load_config

    monkeypatch.chdir(ROOT)
    assert main(["validate", "--print", config, *overrides]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# {config} {' '.join(overrides)}")
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(out)
    assert load_config(resolved).to_dict() == load_config(config, overrides).to_dict()
    if "learner" not in config:
        assert yaml.safe_load(out)["game"]["name"] == "cmg-h" and "n_levers" not in out


def test_version_and_light_help(capsys):
    import adhoc

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"adhoc {adhoc.__version__}"
    code = ("import sys\nfrom adhoc.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('torch', 'transformers', 'omegaconf', 'yaml', 'numpy') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "validate" in proc.stdout and "list" in proc.stdout and proc.stdout.strip().endswith("[]"), proc.stdout


def test_list_names_every_registry_entry(capsys):
    from adhoc.games import GAMES
    from adhoc.methods import METHODS
    from adhoc.solvers import SOLVERS

    for what, registry in (("games", GAMES), ("methods", METHODS), ("solvers", SOLVERS)):
        assert main(["list", what]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in lines] == list(registry), what
        assert all(len(line.split(None, 1)) == 2 for line in lines), what  # a description on every line
    assert main(["list", "games"]) == 0
    assert "Other-Play lever game (Hu et al. 2020)" in capsys.readouterr().out
    assert main(["list", "solvers"]) == 0
    assert "Adversarial partner mixture" in capsys.readouterr().out  # maximin's docstring, first line


def test_list_scripted_partners(capsys):
    from adhoc.games import make_game
    from adhoc.scripted import scripted_strategies

    assert main(["list", "scripted", "warehouse"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("scripted:warehouse ") and "scripted:warehouse:NAME,NAME" in out[0]
    names = [line.split()[0] for line in out[1:] if not line.strip().startswith("or by name")]
    assert names == list(scripted_strategies(make_game("warehouse")))
    assert "direct-DDDD" in out[-1]  # the parametric names
    assert main(["list", "scripted"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert {"scripted:warehouse", "scripted:preference", "scripted:corrective"} <= set(listed)
    assert "scripted:lever" not in listed
    assert main(["list", "scripted", "lever"]) == 0
    assert capsys.readouterr().out == "game lever has no scripted strategies\n"
