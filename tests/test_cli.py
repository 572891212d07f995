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
    (["validate", "configs/lever-selfplay.yaml", "--set", "model.lora_rank=0"], "model.lora_rank must be >= 1"),
    (["populations", "show", "no/such/population"], "population not found"),
])
def test_bad_input_one_line_exit_2(argv, match, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    expect_user_error(argv, capsys, match)
    assert not (ROOT / "runs").exists() or not any(p.name.endswith(".partial") for p in (ROOT / "runs").iterdir())


def test_console_script_exit_code_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "adhoc.cli", "validate", str(ROOT / "configs/lever-selfplay.yaml"),
                           "--set", "game.unique_payoff=lots"], capture_output=True, text=True)
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
