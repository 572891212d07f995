"""Bad configs through the real CLI: every one is exit code 2, exactly one ``adhoc: error:`` line on stderr, no
traceback, nothing created and nothing on disk changed (``adhoc validate``, ``train-population``,
``train-learner``). Each case names the message fragment only its check produces, so removing the check fails it.
"""

from __future__ import annotations

import copy
import importlib.util
import dataclasses
import inspect
import math
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import yaml

from adhoc import config as C
from adhoc.cli import main

ROOT = Path(__file__).parent.parent
NAN, INF = float("nan"), float("inf")

# tiny runs: if a check were missing, the command would train for a moment and exit 0 (the test then fails)
POPULATION = {
    "game": {"name": "lever", "n_levers": 3},
    "method": {"name": "selfplay"},
    "model": {"base": "builtin:tiny", "device": "cpu"},
    "population": {"size": 2, "seed": 0},
    "train": {"iterations": 1, "episodes_per_pair": 2, "eval_every": 1, "eval_episodes": 2, "checkpoint_every": 0},
}
LEARNER = {
    "game": {"name": "warehouse", "width": 3, "height": 3, "moves": 1, "episodes": 1, "labels": ["Up", "Down", "Left", "Right"]},
    "partners": ["scripted:warehouse:direct"],
    "solver": "uniform",
    "model": {"device": "cpu"},
    "learner": {"name": "learner", "seed": 0},
    "train": {"epochs": 1, "iterations_per_epoch": 1, "episodes": 2, "eval_episodes": 2, "checkpoint_every": 0},
}


def with_values(base: dict, values: dict) -> str:
    """``base`` with dotted ``values`` set (a value None deletes the key), as YAML text."""
    data = copy.deepcopy(base)
    for dotted, value in values.items():
        *path, last = dotted.split(".")
        node = data
        for part in path:
            if not isinstance(node.get(part), dict):
                node[part] = {} if not isinstance(node.get(part), str) else {"name": node[part]}
            node = node[part]
        node[last] = value
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=False)


def pop(**values) -> str:
    return with_values(POPULATION, {k.replace("__", "."): v for k, v in values.items()})


def learner(**values) -> str:
    return with_values(LEARNER, {k.replace("__", "."): v for k, v in values.items()})


# YAML aliases that expand to ~200,000 values (a real "billion laughs" would hang without the check; this one
# only takes seconds, then fails on its unknown sections)
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(4)) + "f: [*e, *e]\n"

# id -> (config file content, message fragment, also run train-population / train-learner)
POPULATION_CASES = {
    # train
    "negative-max-grad-norm": (pop(train__max_grad_norm=-1.0), "train.max_grad_norm must be > 0", True),
    "nan-lr": (pop(train__lr=NAN), "train.lr must be a finite number (got nan)", True),
    "inf-lr": (pop(train__lr=INF), "train.lr must be a finite number (got inf)", False),
    "zero-lr": (pop(train__lr=0.0), "train.lr must be > 0", False),
    "huge-lr": (pop(train__lr=100.0), "train.lr=100.0 is above the limit 10", True),
    "negative-entropy": (pop(train__entropy_coef=-0.5), "train.entropy_coef must be >= 0", True),
    "nan-entropy-end": (pop(train__entropy_coef_end=NAN), "train.entropy_coef_end must be a finite number", False),
    "zero-anneal": (pop(train__entropy_anneal_iterations=0), "train.entropy_anneal_iterations must be >= 1", False),
    "zero-eval-every": (pop(train__eval_every=0), "train.eval_every must be >= 1", False),
    "negative-checkpoint-every": (pop(train__checkpoint_every=-1), "train.checkpoint_every must be >= 0", True),
    "nan-target-return": (pop(train__target_return=NAN), "train.target_return must be a finite number", False),
    "absurd-iterations": (pop(train__iterations=10**9), "train.iterations=1000000000 is above the limit 1,000,000", False),
    "absurd-eval-episodes": (pop(train__eval_episodes=10**8), "train.eval_episodes=100000000 is above the limit", False),
    "one-episode-per-pair": (pop(train__episodes_per_pair=1), "train.episodes_per_pair must be >= 2", False),
    "lipo-rollout-rows": (pop(method={"name": "lipo"}, population__size=1000),
                          "1,000,000 pairs per iteration (method lipo", False),
    # population
    "absurd-population": (pop(population__size=100000),
                          "population.size=100000 is above the limit 4,096 (the adapters alone would take ~", False),
    "empty-population": (pop(population__size=0), "population.size must be >= 1", False),
    "negative-seed": (pop(population__seed=-1), "population.seed must be >= 0 and < 2**63", True),
    "seed-2-63": (pop(population__seed=2**63), "population.seed=9223372036854775808 is not below the limit 2**63", False),
    "prefix-dotdot": (pop(population__member_prefix="../escape"), "population.member_prefix '../escape' is not a plain name", True),
    "prefix-slash": (pop(population__member_prefix="a/b"), "population.member_prefix 'a/b' is not a plain name", False),
    "prefix-long": (pop(population__member_prefix="m" * 101), "population.member_prefix is 101 characters, above the limit 100", False),
    "prefix-yaml-bool": (pop().replace("seed: 0", "seed: 0\n  member_prefix: no"), "population.member_prefix must be a string (got false", True),
    "adapter-memory": (pop(method={"name": "otherplay", "restarts": 2}, population__size=4096, model__lora_rank=1024),
                       "(8192 adapters trained by method otherplay) with model.lora_rank=1024 would take ~", False),
    # model
    "absurd-rank": (pop(model__lora_rank=100000), "model.lora_rank=100000 is above the limit 1,024 (each adapter alone would take ~", False),
    "400-digit-rank": (pop(model__lora_rank=10**400), "model.lora_rank=<an integer of 1329 bits> is above the limit 1,024", False),
    "400-digit-lr": (pop(train__lr=10**400), "train.lr must be a finite number (got an integer of 1329 bits)", False),
    "zero-alpha": (pop(model__lora_alpha=0.0), "model.lora_alpha must be > 0", False),
    "negative-init-std": (pop(model__lora_init_std=-1.0), "model.lora_init_std must be >= 0", False),
    "negative-threads": (pop(model__cpu_threads=-2), "model.cpu_threads must be >= 0", False),
    "device-mps": (pop(model__device="mps"), "model.device must be auto, cpu, cuda or cuda:N (got 'mps')", False),
    "device-gpu0": (pop(model__device="gpu:0"), "model.device must be auto, cpu, cuda or cuda:N (got 'gpu:0')", True),
    "dtype-int8": (pop(model__dtype="int8"), "model.dtype must be one of auto, float32", True),
    "unknown-builtin": (pop(model__base="builtin:huge"), "model.base 'builtin:huge' is not a built-in model", True),
    "missing-local-base": (pop(model__base="/nonexistent/adhoc/model"), "model.base '/nonexistent/adhoc/model': no such folder", True),
    "not-a-base": (pop(model__base="my model"), "model.base 'my model' is neither a built-in model", False),
    "unknown-layer": (pop(model__target_modules=["q_proj", "attention"]), "model.target_modules: 'attention' is not a linear layer", True),
    "layers-as-string": (pop(model__target_modules="q_proj"), "model.target_modules must be a list (got 'q_proj')", False),
    # execution: backend and ray
    "backend-unknown": (pop(backend="slurm"), "backend must be one of local, ray (got 'slurm')", True),
    "ray-zero-workers": (pop(ray__workers=0), "ray.workers must be >= 1", True),
    "ray-negative-gpus": (pop(ray__gpus_per_worker=-0.25), "ray.gpus_per_worker must be >= 0", False),
    "ray-fractional-above-1": (pop(ray__gpus_per_worker=1.5), "ray.gpus_per_worker=1.5: above 1 a Ray resource must be a whole number", True),
    "ray-tiny-fraction": (pop(ray__cpus_per_worker=0.00001), "a fraction of a Ray resource is a multiple of 0.0001", False),
    "ray-nan-cpus": (pop(ray__cpus_per_worker=NAN), "ray.cpus_per_worker must be a finite number", False),
    "ray-address-url": (pop(ray__address="http://head:8265"), "ray.address 'http://head:8265' must be empty", True),
    "ray-address-port": (pop(ray__address="head:99999"), "port above 65535", False),
    "ray-resource-path": (pop(ray__gpu_resource="../gpu"), "ray.gpu_resource '../gpu' is not a plain name", False),
    # method parameters
    "trajedi-nan-alpha": (pop(method={"name": "trajedi", "alpha": NAN}), "method.alpha must be a finite number", False),
    "trajedi-gamma": (pop(method={"name": "trajedi", "gamma": 1.5}), "method.gamma=1.5 is above the limit 1", True),
    "trajedi-best-response-2": (pop(method={"name": "trajedi", "best_response": 2}), "method.best_response must be true or false (got 2)", False),
    "mep-negative-alpha": (pop(method={"name": "mep", "alpha": -1.0}), "method.alpha must be >= 0", False),
    "lipo-inf-lambda": (pop(method={"name": "lipo", "lambda_xp": INF}), "method.lambda_xp must be a finite number", False),
    "otherplay-zero-restarts": (pop(method={"name": "otherplay", "restarts": 0}), "method.restarts must be >= 1", False),
    # game parameters
    "lever-nan-payoff": (pop(game__unique_payoff=NAN), "game.unique_payoff must be a finite number", True),
    "lever-huge-payoff": (pop(game__other_payoff=1e300), "game.other_payoff=1e+300 is beyond the limit", False),
    "matrix-inf-entry": (pop(game={"name": "matrix", "payoff": [[1.0, 0.0], [0.0, INF]]}), "game.payoff[1][1] must be a finite number", False),
    "cmg-nan-block-payoff": (pop(game={"name": "cmg", "block_sizes": [2], "block_payoffs": [NAN]}), "game.block_payoffs[0] must be a finite number", False),
    "lever-absurd-levers": (pop(game__n_levers=10**6), "more than the limit of 4096", False),
    "warehouse-absurd-grid": (pop(game={"name": "warehouse", "width": 10**6, "height": 10**6}), "game.width x game.height must be 2..400", False),
    # types and keys
    "lr-abc": (pop(train__lr="abc"), "train.lr: Value 'abc' of type 'str' could not be converted", True),
    "size-2.5": (pop(population__size=2.5), "population.size: Value '2.5' of type 'float' could not be converted", False),
    "size-true": (pop(population__size=True), "population.size: Value 'True' of type 'bool' could not be converted", False),
    "missing-value": (pop(train__lr="???"), "train.lr is '???' (a missing value)", False),
    "misspelled-key": (pop(train__learning_rate=0.1), "unknown key train.learning_rate (allowed: iterations", True),
    "misspelled-section": (pop(trian={"lr": 0.1}), "unknown section 'trian' (allowed: game, method, model, population, train, ray, backend); did you mean train?", False),
    "game-name-list": (pop(game={"name": ["lever"]}), "game.name must be a name (allowed: ", False),
    "newline-in-key": (pop(train={"bad\nkey": 1}), "unknown key train.bad\\nkey", False),
    # the YAML file itself
    "binary": (bytes(range(256)) * 4, "is not a UTF-8 text file", True),
    "latin-1": ("game: lever\nmethod: selfplay\npopulation: {member_prefix: caf\xe9}\n".encode("latin-1"), "is not a UTF-8 text file", False),
    "empty": ("", "is empty (expected a mapping of sections", True),
    "comment-only": ("# nothing here\n", "is empty", False),
    "python-tag": ("!!python/object/apply:os.system ['echo pwned']\n", "YAML tags are not allowed (found !!python/object/apply:os.system)", True),
    "python-object-section": ("game: !!python/object:adhoc.games.LeverConfig {}\nmethod: selfplay\n", "YAML tags are not allowed", False),
    "top-level-list": ("- game\n- method\n", "must be a mapping of sections (game: ..., train: ...), not a list", False),
    "top-level-scalar": ("lever\n", "must be a mapping of sections (game: ..., train: ...), not a single str value", False),
    "section-list": (pop(train=[1, 2]), "train must be a mapping of keys (allowed: iterations", False),
    "section-number": (pop(population=3), "population must be a mapping of keys", False),
    "duplicate-section": (pop() + "train:\n  lr: 0.5\n", "duplicate key 'train'", False),
    "duplicate-inner-key": ("game: lever\nmethod: selfplay\ntrain:\n  lr: 0.1\n  lr: 0.2\n", "duplicate key 'lr'", True),
    "unclosed-bracket": ("game: [lever\nmethod: selfplay\n", "is not valid YAML", False),
    "billion-laughs": (LAUGHS, "holds more than 100,000 values (with YAML aliases expanded)", False),
    "recursive-alias": ("game: &g [*g]\nmethod: selfplay\n", "a YAML alias refers to itself", False),
    "bool-key": ("game: lever\nmethod: selfplay\ntrain:\n  on: 1\n", "key True in train must be a non-empty name", False),
}

LEARNER_CASES = {
    "learner-name-dotdot": (learner(learner__name="../escape"), "learner.name '../escape' is not a plain name", True),
    "learner-name-slash": (learner(learner__name="a/b"), "learner.name 'a/b' is not a plain name", False),
    "learner-negative-seed": (learner(learner__seed=-1), "learner.seed must be >= 0 and < 2**63", True),
    "learner-negative-max-grad-norm": (learner(train__max_grad_norm=-1.0), "train.max_grad_norm must be > 0", True),
    "learner-nan-lr": (learner(train__lr=NAN), "train.lr must be a finite number", True),
    "learner-negative-checkpoint": (learner(train__checkpoint_every=-5), "train.checkpoint_every must be >= 0", False),
    "learner-absurd-epochs": (learner(train__epochs=100000), "train.epochs=100000 is above the limit 1,000", False),
    "learner-absurd-total-iterations": (learner(train__epochs=1000, train__iterations_per_epoch=1001),
                                        "train.epochs x train.iterations_per_epoch = 1,001,000 iterations is above the limit", False),
    "learner-absurd-episodes": (learner(train__episodes=10**8), "train.episodes=100000000 is above the limit 1,048,576 (the rollout batch would take", False),
    "learner-inf-init-std": (learner(model__lora_init_std=INF), "model.lora_init_std must be a finite number", False),
    "learner-zero-rank": (learner(model__lora_rank=0), "model.lora_rank must be >= 1", False),
    "learner-bad-base": (learner(model__base="builtin:nope"), "model.base 'builtin:nope' is not a built-in model", True),
    "learner-dtype": (learner(model__dtype="fp8"), "model.dtype must be one of", False),
    "prd-absurd-steps": (learner(solver={"name": "prd", "steps": 10**9}), "solver.steps=1000000000 is above the limit 1,000,000", False),
    "prioritized-400-digit-beta": (learner(solver={"name": "prioritized", "beta": 10**400}), "solver.beta must be a finite number", False),
    "prd-fractional-steps": (learner(solver={"name": "prd", "steps": 2.5}), "solver.steps must be an integer (got 2.5)", False),
    "prd-nan-dt": (learner(solver={"name": "prd", "dt": NAN}), "solver.dt must be a finite number", True),
    "prd-gamma-one": (learner(solver={"name": "prd", "gamma": 1.0}), "solver.gamma=1.0 is not below the limit 1", False),
    "prd-floor": (learner(solver={"name": "prd", "floor": "ceiling"}), "solver.floor must be one of openspiel, scaled", False),
    "alpharank-population": (learner(solver={"name": "alpharank", "population": "three"}), "solver.population must be one of auto, single, two", False),
    "alpharank-normalize-1": (learner(solver={"name": "alpharank", "normalize": 1}), "solver.normalize must be true or false (got 1)", False),
    "alpharank-zero-alpha": (learner(solver={"name": "alpharank", "alpha": 0.0}), "solver.alpha must be > 0", False),
    "prioritized-misspelled": (learner(solver={"name": "prioritized", "bta": 1}), "unknown key solver.bta for solver 'prioritized' (allowed: name, beta); did you mean solver.beta?", True),
    "solver-name-list": (learner(solver={"name": ["prd"]}), "unknown solver.name", False),
    "partner-mapping": (learner(partners=[{"a": 1}]), "partners[0] must be a population folder or scripted:GAME", False),
    "learner-yaml-tag": ("learner: !!python/name:os.system\n", "YAML tags are not allowed", False),
}

CASES = {**POPULATION_CASES, **LEARNER_CASES}


# ---------------------------------------------------------------------------- helpers
def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path below ``folder`` with its bytes (None for a folder)."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A working folder holding files a bad run must leave alone; the tests never depend on the repository's
    working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_bytes(b"do not touch\n")
    prev = tmp_path / "prev"  # an earlier population that --overwrite would replace
    (prev / "members").mkdir(parents=True)
    (prev / "population.yaml").write_text("name: prev\n")
    (prev / "config.yaml").write_text("game: lever\n")
    return tmp_path


def write_config(folder: Path, content: str | bytes) -> Path:
    path = folder / "bad.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def expect_one_line_error(capsys, argv: list[str], fragment: str) -> None:
    assert main(argv) == 2, argv
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("adhoc: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and fragment in err, err
    assert captured.out == "", captured.out


# ---------------------------------------------------------------------------- the cases
@pytest.mark.parametrize("content, fragment", [v[:2] for v in CASES.values()], ids=list(CASES))
def test_validate_refuses_in_one_line(workspace, capsys, content, fragment):
    path = write_config(workspace, content)
    before = snapshot(workspace)
    expect_one_line_error(capsys, ["validate", str(path)], fragment)
    assert snapshot(workspace) == before


POPULATION_RUNS = [k for k, v in POPULATION_CASES.items() if v[2]]
LEARNER_RUNS = [k for k, v in LEARNER_CASES.items() if v[2]]


def expect_nothing_written(workspace: Path, capsys, command: list[str], content: str | bytes, fragment: str) -> None:
    """``command`` on the config refuses in one line, both into a new --out and over an earlier population with
    --overwrite; nothing is created (no --out, no .out.partial, no runs/) and every file stays as it was."""
    path = write_config(workspace, content)
    before = snapshot(workspace)
    for out, flags in ((workspace / "out", []), (workspace / "prev", ["--overwrite"])):
        expect_one_line_error(capsys, [command[0], str(path), *command[1:], "--out", str(out), "--quiet", *flags],
                              fragment)
    assert not (workspace / "out").exists() and not (workspace / ".out.partial").exists()
    assert not (workspace / "runs").exists() and snapshot(workspace) == before


@pytest.mark.parametrize("case", POPULATION_RUNS)
def test_train_population_refuses_before_any_work(workspace, capsys, case):
    content, fragment, _ = POPULATION_CASES[case]
    expect_nothing_written(workspace, capsys, ["train-population", "--crossplay-episodes", "0"], content, fragment)


@pytest.mark.parametrize("case", LEARNER_RUNS)
def test_train_learner_refuses_before_any_work(workspace, capsys, case):
    content, fragment, _ = LEARNER_CASES[case]
    expect_nothing_written(workspace, capsys, ["train-learner"], content, fragment)


@pytest.mark.parametrize("overrides, fragment", [
    (["train.max_grad_norm=-1"], "train.max_grad_norm must be > 0"),
    (["train.lr=nan"], "train.lr must be a finite number"),
    (["population.seed=-1"], "population.seed must be >= 0 and < 2**63"),
    (["train.learning_rate=0.1"], "did you mean train.lr?"),
    (["train.lr=[1"], "override 'train.lr=[1'"),
])
def test_train_population_refuses_bad_overrides(workspace, capsys, overrides, fragment):
    """Bare key=value overrides on the command line are checked like the file."""
    expect_nothing_written(workspace, capsys, ["train-population", *overrides, "--crossplay-episodes", "0"], pop(),
                           fragment)


@pytest.mark.parametrize("command, content, extra, fragment", [
    ("validate", bytes(range(256)), [], "is not a UTF-8 text file"),
    ("train-population", pop(), ["train.lr=nan", "--out", "out", "--crossplay-episodes", "0"], "train.lr must be a finite number"),
    ("train-learner", "learner: !!python/object/apply:os.system ['echo pwned']\n", ["--out", "out"], "YAML tags are not allowed"),
])
def test_no_traceback_reaches_the_terminal(tmp_path, command, content, extra, fragment):
    path = write_config(tmp_path, content)
    before = snapshot(tmp_path)
    run = subprocess.run([sys.executable, "-m", "adhoc.cli", command, str(path), *extra], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("adhoc: error: ") and run.stderr.count("\n") == 1, run.stderr
    assert "Traceback" not in run.stderr and fragment in run.stderr and "pwned" not in run.stdout
    assert run.stdout == "" and snapshot(tmp_path) == before


# ---------------------------------------------------------------------------- generic checks reach every field
def _float_value(hint, value):
    """``value`` shaped for a float field (float, list[float], list[list[float]]), or None for other fields."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(args) == 1:
        hint = args[0]
    if hint is float:
        return value
    if typing.get_origin(hint) is list:
        inner = _float_value(typing.get_args(hint)[0], value)
        return None if inner is None else [inner]
    return None


def _registry_float_fields():
    from adhoc.games import GAMES
    from adhoc.methods import METHODS

    for section, registry in (("game", GAMES), ("method", METHODS)):
        for name, spec in sorted(registry.items()):
            hints = typing.get_type_hints(spec.config_cls)
            for f in dataclasses.fields(spec.config_cls):
                if _float_value(hints[f.name], NAN) is not None:
                    yield section, name, f.name, hints[f.name]


FLOAT_FIELDS = list(_registry_float_fields())


@pytest.mark.parametrize("section, name, key, hint", FLOAT_FIELDS,
                         ids=[f"{s}-{n}-{k}" for s, n, k, _ in FLOAT_FIELDS])
def test_every_game_and_method_float_must_be_finite(workspace, capsys, section, name, key, hint):
    """NaN in any float field of any registered game or method (payoff lists included) names the key."""
    values = {"name": name, key: _float_value(hint, NAN)}
    path = write_config(workspace, pop(**{section: values}))
    expect_one_line_error(capsys, ["validate", str(path)], f"config error: {section}.{key}")
    with pytest.raises(C.ConfigError, match=r"must be a finite number \(got nan\)"):
        C.load_config(path)


def test_there_are_float_fields_of_games_and_methods():
    keys = {(s, n, k) for s, n, k, _ in FLOAT_FIELDS}
    assert {("game", "lever", "unique_payoff"), ("method", "trajedi", "alpha"), ("method", "lipo", "lambda_xp"),
            ("method", "mep", "alpha"), ("game", "matrix", "payoff")} <= keys


def test_every_numeric_parameter_has_a_range():
    """Every int or float of every section, method config and solver is in a range table: a new parameter
    without one fails here."""
    from adhoc.methods import METHODS
    from adhoc.params import field_ranges, param_choices, param_ranges
    from adhoc.solvers import SOLVERS

    for sections in (C.SECTIONS, C.LEARNER_SECTIONS):
        for section, cls in sections.items():
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                hint = hints[f.name]
                base = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
                if base[0] in (int, float):
                    assert f"{section}.{f.name}" in C.RANGES, f"{section}.{f.name} has no range"
    for name, spec in METHODS.items():
        hints = typing.get_type_hints(spec.config_cls)
        for f in dataclasses.fields(spec.config_cls):
            if hints[f.name] in (int, float):
                assert f.name in field_ranges(spec.config_cls), f"method {name}.{f.name} has no range"
    for name, fn in SOLVERS.items():
        for p in inspect.signature(fn).parameters.values():
            if p.name == "M" or p.name in C.SOLVER_FIXED_PARAMS:
                continue
            if isinstance(p.default, bool):
                continue
            if isinstance(p.default, (int, float)):
                assert p.name in param_ranges(fn), f"solver {name}.{p.name} has no range"
            elif isinstance(p.default, str):
                assert p.name in param_choices(fn), f"solver {name}.{p.name} has no choices"


def test_declared_ranges_are_what_the_config_check_enforces(tmp_path, monkeypatch):
    """A method declares its ranges on its config dataclass's fields, a solver on its function (adhoc.params);
    the config check reads them from there, with the messages it always gave."""
    import ast

    from adhoc.methods import METHODS
    from adhoc.methods.mep import MEPConfig
    from adhoc.methods.otherplay import OtherPlayConfig
    from adhoc.methods.trajedi import TrajeDiConfig
    from adhoc.params import ConfigError, Range, field_ranges, param_choices, param_ranges
    from adhoc.solvers import SOLVERS, alpharank, prd

    assert C.ConfigError is ConfigError and C.Range is Range  # re-exported by adhoc.config
    assert field_ranges(MEPConfig) == {"alpha": Range(0, C.MAX_COEF)}
    assert field_ranges(TrajeDiConfig)["gamma"] == Range(0, 1, why="the action discount: 0 per action, 1 the whole "
                                                                    "trajectory")
    assert field_ranges(OtherPlayConfig) == {"restarts": Range(1, C.MAX_RESTARTS)}
    assert param_ranges(prd)["steps"] == Range(1, C.MAX_SOLVER_STEPS)
    assert param_choices(alpharank) == {"population": ("auto", "single", "two")}
    assert MEPConfig().alpha == 0.01 and OtherPlayConfig().restarts == 1  # defaults unchanged

    def refused(path, overrides):
        with pytest.raises(ConfigError) as exc:
            C.load_config(path, overrides)
        return str(exc.value)

    pop = ["game=lever", "model.device=cpu", "population.size=2"]
    assert refused(None, [*pop, "method=mep", "method.alpha=-1"]) == \
        "config error: method.alpha must be >= 0 and <= 1000 (got -1.0)"
    assert refused(None, [*pop, "method=trajedi", "method.gamma=2"]) == \
        "config error: method.gamma=2.0 is above the limit 1 (the action discount: 0 per action, 1 the whole trajectory)"
    assert refused(None, [*pop, "method=otherplay", "method.restarts=65"]) == \
        "config error: method.restarts=65 is above the limit 64"
    learner = tmp_path / "learner.yaml"
    learner.write_text(yaml.safe_dump(LEARNER))
    assert refused(learner, ["solver=prd", "solver.gamma=1"]) == "config error: solver.gamma=1.0 is not below the limit 1"
    assert refused(learner, ["solver=prd", "solver.floor=x"]) == \
        "config error: solver.floor must be one of openspiel, scaled (got 'x')"
    # the declaration is what is checked: a narrower one (here patched in) is enforced at once
    monkeypatch.setitem(SOLVERS["prd"].param_ranges, "dt", Range(0, 0.5, lo_open=True))
    assert refused(learner, ["solver=prd", "solver.dt=0.6"]) == "config error: solver.dt=0.6 is above the limit 0.5"
    narrow = dataclasses.make_dataclass("NarrowMEPConfig", [("name", str, "mep"), ("alpha", float, dataclasses.field(
        default=0.01, metadata={"range": Range(0, 1)}))])
    monkeypatch.setitem(METHODS, "mep", dataclasses.replace(METHODS["mep"], config_cls=narrow))
    assert refused(None, [*pop, "method=mep", "method.alpha=2"]) == "config error: method.alpha=2.0 is above the limit 1"
    # adhoc.config imports the registries at module level, none inside a function
    tree = ast.parse(Path(C.__file__).read_text())
    nested = [node.lineno for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
              for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))
              and any(name.startswith("adhoc") for name in
                      ([node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]))]
    assert nested == [], f"adhoc/config.py imports adhoc modules inside functions (lines {nested})"


def _method_variants():
    from adhoc.methods import METHODS

    for name in sorted(METHODS):
        yield name, {}
    yield "trajedi", {"best_response": True}
    yield "otherplay", {"restarts": 3}


@pytest.mark.parametrize("name, params", list(_method_variants()), ids=lambda v: str(v))
@pytest.mark.parametrize("n", [2, 3])
def test_pairs_per_iteration_matches_the_methods(name, params, n):
    """The rollout-size check counts a method's pairs without building them; it must agree with ``pairs`` for
    every registered method (a method added later with a different pairing fails here)."""
    from adhoc.games import make_game
    from adhoc.methods import METHODS

    spec = METHODS[name]
    cfg = spec.config_cls(**params)
    if name == "psro":  # a zero-sum game; its pairs grow with the population: the last epoch's are the most
        from adhoc.methods.psro import psro_pairs

        spec.build(cfg, make_game("matrix", payoffs=[[[0, 1], [1, 0]], [[0, -1], [-1, 0]]]), n)
        assert C._pairs_per_iteration(cfg, n)[0] == psro_pairs(n - 1).shape[0]
        return
    built = spec.build(cfg, make_game("lever", n_levers=3), n)
    assert C._pairs_per_iteration(cfg, n)[0] == built.pairs(1, np.random.default_rng(0)).shape[0]


def test_shipped_configs_and_populations_stay_within_the_limits(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    paths = sorted((ROOT / "configs").glob("*.yaml")) + sorted((ROOT / "populations").glob("*/config.yaml"))
    assert len(paths) > 10
    assert main(["validate", *map(str, paths)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    extras = all(importlib.util.find_spec(m) for m in ("pyspiel", "overcooked_ai_py"))
    assert out.count("ok: ") + (0 if extras else out.count("not checked: ")) == len(paths), out


def test_good_edge_values_pass(tmp_path):
    """The bounds are inclusive where they say so: the extreme allowed values validate."""
    path = write_config(tmp_path, pop(train__max_grad_norm=None, train__lr=10.0, train__entropy_coef=0.0,
                                      train__checkpoint_every=0, model__cpu_threads=0, model__lora_init_std=0.0,
                                      population__seed=2**63 - 1, population__member_prefix="m" * 100,
                                      model__device="cuda:1", model__dtype="bf16", model__base="Qwen/Qwen2.5-0.5B",
                                      method={"name": "trajedi", "gamma": 0.0, "alpha": 0.0}))
    config = C.load_config(path)
    assert config.train.max_grad_norm is None and config.population.seed == 2**63 - 1 and math.isfinite(config.train.lr)
