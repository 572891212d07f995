"""Config schemas: every shipped YAML validates; bad input is one clear line naming the key."""

from pathlib import Path

import pytest

from adhoc.config import ConfigError, LearnerRunConfig, load_config
from adhoc.errors import MissingExtra

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
# classic games written as a `matrix` game (or a repeated one) are named after the game: <name>-<method>.yaml
NAMED_MATRIX_GAMES = {"ipd": "repeated-matrix"}


def test_there_are_configs():
    assert any(p.name == "lever-selfplay.yaml" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_validates_and_names_its_command(path):
    try:
        config = load_config(path)
    except MissingExtra as exc:  # its game's optional extra is not installed here (CI installs them all)
        pytest.skip(str(exc))
    first = path.read_text().splitlines()[0]
    assert first.startswith("# adhoc ") and path.name in first
    # adhoc train-learner; a method's underscores are hyphens in file names (ipd-advantage-alignment)
    kind = "learner" if isinstance(config, LearnerRunConfig) else config.method.name.replace("_", "-")
    game = config.game.name + (f"-{config.game.stage}" if config.game.name == "repeated" else "")  # repeated-lever
    if config.game.name == "openspiel":  # the OpenSpiel game's name, and a size: hanabi-small-selfplay
        game = config.game.game.split("(")[0].replace("_", "-")
        assert path.stem.startswith(f"{game}-") and path.stem.endswith(f"-{kind}")
        return
    if config.game.name == "overcooked":  # and the layout's first word: overcooked-cramped-selfplay
        assert path.stem == f"overcooked-{config.game.layout.split('_')[0]}-{kind}"
        return
    named = path.stem.removesuffix(f"-{kind}")
    if named in NAMED_MATRIX_GAMES:  # ipd-selfplay: the iterated prisoner's dilemma, a repeated matrix game
        assert NAMED_MATRIX_GAMES[named] == game
        return
    assert path.stem == f"{game}-{kind}"


def test_overrides_and_shorthand(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("game: lever\nmethod: selfplay\n")
    config = load_config(cfg, ["game.n_levers=7", "population.size=3", "train.lr=0.5"])
    assert config.game.n_levers == 7 and config.population.size == 3 and config.train.lr == 0.5
    assert config.model.base == "builtin:tiny"


def test_switching_a_game_method_or_solver_on_the_command_line(tmp_path):
    """``game=NAME`` assigns the section: the new game starts from its own defaults. ``game.name=NAME`` changes
    only the name, so the file's parameters of the old game would carry over: refused, naming them and saying
    what to write instead. Nothing is dropped or carried over unseen."""
    from adhoc.config import load_learner_config
    from adhoc.games import CMGSConfig

    lever = tmp_path / "l.yaml"
    lever.write_text("game: {name: lever, n_levers: 4}\nmethod: {name: trajedi, alpha: 2.0}\n")
    config = load_config(lever, ["game=cmg-s"])
    assert config.game == CMGSConfig() and config.method.alpha == 2.0  # the method is untouched
    assert load_config(lever, ["game=cmg", "game.block_sizes=[2, 3]"]).game.block_sizes == [2, 3]
    assert load_config(lever, ["game=lever"]).game.n_levers == 4  # the same game: nothing is switched
    with pytest.raises(ConfigError) as info:
        load_config(lever, ["game.name=cmg-s"])
    message = str(info.value)
    assert "\n" not in message and f"{lever} sets game parameters of lever (game.n_levers)" in message
    assert "write game=cmg-s instead to start cmg-s from its own defaults" in message
    with pytest.raises(ConfigError, match=r"unknown key game\.n_levers \(allowed: name, block_sizes"):
        load_config(lever, ["game=cmg-s", "game.n_levers=4"])  # the new game's own parameters only
    # the name alone, where the file sets no parameters of the old game (or the command line sets them all)
    bare = tmp_path / "bare.yaml"
    bare.write_text("game: lever\nmethod: selfplay\n")
    assert load_config(bare, ["game.name=cmg-s"]).game == CMGSConfig()
    assert load_config(lever, ["game.name=lever", "game.n_levers=5"]).game.n_levers == 5
    # an unknown name is reported as such, not as a switch
    with pytest.raises(ConfigError, match="unknown game.name 'go'"):
        load_config(lever, ["game.name=go"])
    # methods: trajedi's alpha (a JSD weight) never becomes mep's alpha (an entropy weight)
    assert load_config(lever, ["method=mep"]).method.alpha == 0.01
    with pytest.raises(ConfigError, match=r"sets method parameters of trajedi \(method\.alpha\).*write method=mep"):
        load_config(lever, ["method.name=mep"])
    # solvers of a learner config
    learner = tmp_path / "learner.yaml"
    learner.write_text("game: lever\npartners: []\nsolver: {name: prioritized, beta: 2.0}\nlearner: {name: x}\n")
    assert load_learner_config(learner, ["solver=prd"]).solver == {"name": "prd"}
    assert load_learner_config(learner, ["solver=prd", "solver.steps=50"]).solver == {"name": "prd", "steps": 50}
    with pytest.raises(ConfigError, match=r"sets solver parameters of prioritized \(solver\.beta\).*write solver=prd"):
        load_learner_config(learner, ["solver.name=prd"])


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


def test_entropy_schedule_hand_computed():
    from adhoc.config import LearnerTrainConfig, TrainConfig, entropy_coef_at

    # no end value: constant
    constant = TrainConfig(iterations=10, entropy_coef=0.2)
    assert [entropy_coef_at(constant, i) for i in (1, 5, 10, 50)] == [0.2] * 4
    # 0.1 -> 0 linearly over all 11 iterations: iteration i has 0.1 · (1 − min(1, (i − 1)/11)), so
    # i = 1: 0.1; i = 6: 0.1 − 0.1·5/11; i = 11: 0.1/11; i = 12 (= 1 + span) and beyond: 0
    linear = TrainConfig(iterations=11, entropy_coef=0.1, entropy_coef_end=0.0)
    assert entropy_coef_at(linear, 1) == pytest.approx(0.1)
    assert entropy_coef_at(linear, 6) == pytest.approx(0.1 - 0.1 * 5 / 11)
    assert entropy_coef_at(linear, 11) == pytest.approx(0.1 / 11)
    assert entropy_coef_at(linear, 12) == pytest.approx(0.0, abs=1e-15)
    assert entropy_coef_at(linear, 100) == pytest.approx(0.0, abs=1e-15)
    # an upward schedule over anneal_iterations = 4, within a 20-iteration run: 0.01 -> 0.05 by iteration 5
    up = TrainConfig(iterations=20, entropy_coef=0.01, entropy_coef_end=0.05, entropy_anneal_iterations=4)
    assert [entropy_coef_at(up, i) for i in (1, 2, 3, 5, 6, 20)] == pytest.approx([0.01, 0.02, 0.03, 0.05, 0.05, 0.05])
    # the learner's schedule spans epochs × iterations_per_epoch = 10 iterations
    learner = LearnerTrainConfig(epochs=2, iterations_per_epoch=5, entropy_coef=0.5, entropy_coef_end=0.0)
    assert [entropy_coef_at(learner, i) for i in (1, 3, 6, 11)] == pytest.approx([0.5, 0.4, 0.25, 0.0])
    # one iteration to anneal over: the end value from iteration 2 on
    short = TrainConfig(iterations=1, entropy_coef=0.3, entropy_coef_end=0.1)
    assert [entropy_coef_at(short, i) for i in (1, 2, 3)] == pytest.approx([0.3, 0.1, 0.1])
