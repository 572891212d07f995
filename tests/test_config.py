"""Config schemas: every shipped YAML validates; bad input is one clear line naming the key."""

from pathlib import Path

import pytest

from adhoc.config import ConfigError, LearnerRunConfig, load_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert any(p.name == "lever-selfplay.yaml" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_validates_and_names_its_command(path):
    config = load_config(path)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# adhoc ") and path.name in first
    kind = "learner" if isinstance(config, LearnerRunConfig) else config.method.name  # adhoc train-learner
    assert path.stem == f"{config.game.name}-{kind}"


def test_overrides_and_shorthand(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("game: lever\nmethod: selfplay\n")
    config = load_config(cfg, ["game.n_levers=7", "population.size=3", "train.lr=0.5"])
    assert config.game.n_levers == 7 and config.population.size == 3 and config.train.lr == 0.5
    assert config.model.base == "builtin:tiny"
    # switching game on the command line drops the old game's parameters
    lever = tmp_path / "l.yaml"
    lever.write_text("game: {name: lever, n_levers: 4}\nmethod: selfplay\n")
    assert load_config(lever, ["game.name=cmg-s"]).game.name == "cmg-s"


@pytest.mark.parametrize("overrides, message", [
    (["game.n_leverz=3"], r"unknown key game\.n_leverz \(allowed: name, n_levers"),
    (["train.lr=fast"], r"train\.lr"),
    (["population.size=abc"], r"population\.size"),
    (["game.name=chess"], r"unknown game\.name 'chess' \(allowed: .*lever"),
    (["method.name=magic"], r"unknown method\.name 'magic' \(allowed: .*selfplay"),
    (["extra.thing=1"], r"unknown section 'extra'"),
    (["population.size=0"], r"population\.size must be >= 1"),
    (["game.n_levers=1"], r"n_levers"),
    (["nonsense"], r"not key=value"),
])
def test_bad_values_are_one_line_errors(tmp_path, overrides, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("game: lever\nmethod: selfplay\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_config(cfg, overrides)
    assert "\n" not in str(info.value)


def test_missing_and_unparseable_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("game: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
