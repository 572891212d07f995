"""Start-up: what a command imports before it does any work. The CLI and the config loader load no torch or
transformers; games and diversity methods are built (as ``adhoc validate`` builds them) without torch, which
their modules import on first use (``adhoc._torch``). Checked in a fresh interpreter, by sys.modules."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "peft")


def loaded_after(code: str) -> dict[str, bool]:
    """Which heavy modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cli_and_config_import_no_torch():
    assert loaded_after("import adhoc, adhoc.cli, adhoc.config") == dict.fromkeys(HEAVY, False)


def test_games_and_methods_are_built_without_torch():
    code = """
from adhoc.games import GAMES, build_game, make_game
from adhoc.methods import METHODS
params = {"matrix": {"payoff": [[1, 0], [0, 1]]}}
params["repeated"] = {"stage": "lever", "rounds": 4}
games = [build_game({"name": name, **params.get(name, {})}) for name in GAMES]
assert len(games) >= 8
lever = make_game("lever")
zero_sum = make_game("matrix", payoffs=[[[0, 1], [1, 0]], [[0, -1], [-1, 0]]])
for name, spec in METHODS.items():
    method = spec.build(spec.config_cls(), zero_sum if name == "psro" else lever, 4)
    assert method.population_size == 4
for game in games:
    game.action_names(0), game.params(), game.symmetries(), game.rules(0), game.rules(1)
"""
    assert loaded_after(code) == dict.fromkeys(HEAVY, False)


def test_validate_imports_no_torch():
    """``adhoc validate`` of population and learner configs, a repeated game's included."""
    code = """
import sys
from adhoc.cli import main
assert main(["validate", "configs/lever-selfplay.yaml", "configs/repeated-lever-learner.yaml",
             "configs/cmg-h-lipo.yaml", "configs/warehouse-learner.yaml"]) == 0
"""
    assert loaded_after(code) == dict.fromkeys(HEAVY, False)


def test_playing_a_game_imports_torch_on_first_use():
    """The stand-in really is torch once a game is stepped: the same tensors as with torch imported first."""
    code = """
import numpy as np
from adhoc.games import make_game
game = make_game("lever", n_levers=3)
import sys
assert "torch" not in sys.modules
state = game.reset(4, np.random.default_rng(0))
_, reward, done = game.step(state, [[0, 0], [1, 1], [0, 1], [2, 2]])
import torch
assert isinstance(reward, torch.Tensor) and torch.allclose(reward, torch.tensor([0.9, 1.0, 0.0, 1.0])) and bool(done.all())
"""
    assert loaded_after(code)["torch"]


def test_manifest_records_start_up_apart_from_training(tmp_path):
    from adhoc.config import load_config
    from adhoc.recipes.train_population import train_population

    config = load_config(None, ["game.name=lever", "game.n_levers=4", "method.name=selfplay", "population.size=2",
                                "train.iterations=3", "train.episodes_per_pair=8", "train.eval_every=3",
                                "train.eval_episodes=8"])
    pop = train_population(config, out=tmp_path / "pop", progress=False)
    m = pop.manifest
    assert m["startup_s"] >= 0 and m["train_s"] >= 0
    assert abs(m["startup_s"] + m["train_s"] - m["wall_time_s"]) <= 0.11  # each rounded to 0.1 s
    assert f"(start-up {m['startup_s']} s, training {m['train_s']} s)" in pop.summary()


def test_pyspiel_is_imported_only_when_an_openspiel_game_is_built():
    code = """
import sys
import adhoc, adhoc.cli, adhoc.config, adhoc.games, adhoc.games.openspiel
assert "pyspiel" not in sys.modules
from adhoc.cli import main
assert main(["validate", "configs/lever-selfplay.yaml"]) == 0
assert "pyspiel" not in sys.modules
"""
    loaded_after(code)
