"""Typed experiment configs: dataclass schemas, YAML files, ``key=value`` overrides, merged with OmegaConf.

A config has sections ``game``, ``method``, ``model``, ``population``, ``train``. ``game`` and ``method``
are chosen by registry name (``game.name=lever``, or the shorthand ``game: lever``) and their schema is the
registered config class of that name, so unknown keys, wrong types and unknown names are all rejected with
one line naming the key and the allowed values (``ConfigError``, exit code 2 from the CLI).

Every parameter has a validated range, checked before any work (``check``/``check_learner``, which
``load_config``/``load_learner_config`` and ``adhoc validate`` run): every float anywhere (game, method and
solver parameters included) must be finite; numbers lie in their ranges: ``RANGES`` for the sections defined
here, the ranges each method's config dataclass declares on its fields and each solver declares on its function
(``adhoc.params``: ``field_ranges``, ``param_ranges``); sizes have upper bounds (``MAX_*``) whose messages say roughly what the value would take
in memory; names that become paths are one plain path component; ``device``, ``dtype`` and ``model.base``
are values the loader accepts. The YAML file itself is read strictly (``_load_yaml``): UTF-8 text, one
mapping, no duplicate keys, no tags, a bounded size.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from adhoc.errors import MissingExtra, UserError
from adhoc.games import GAMES, GameError, build_game
from adhoc.lm.base import BUILTIN_MODELS, BUILTIN_PREFIX, DTYPES, builtin_vocab
from adhoc.methods import METHODS
from adhoc.params import (COEF, MAX_SEED, ConfigError, Range, field_choices, field_ranges, param_choices,
                          param_ranges)
from adhoc.params import (MAX_CPU_THREADS, MAX_EVAL_EPISODES, MAX_ITERATIONS, MAX_LR,  # noqa: F401
                          MAX_ROLLOUT_ROWS, _bytes)
from adhoc.params import (MAX_COEF, MAX_LORA_ALPHA, MAX_LORA_RANK, MAX_POPULATION, MAX_RESTARTS,  # noqa: F401
                          MAX_SOLVER_STEPS, MODULE)  # (re-exported with the other limits)
from adhoc.paths import check_name
from adhoc.solvers import SOLVERS, solve


@dataclass
class ModelConfig:
    base: str = "builtin:tiny"  # builtin:tiny | builtin:small | Hugging Face id | local path
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16
    cpu_threads: int = 0  # torch threads on CPU; 0 = auto (1 for models under 50M parameters, where
    #                      thread synchronisation costs more than it saves; torch's default otherwise)
    lora_rank: int = 4
    lora_alpha: float = 8.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj", "lm_head"])
    # std of lora_B at init: members start as different random policies, like independently seeded RL agents
    # (0 = peft's default B = 0: every member starts exactly as the base)
    lora_init_std: float = 0.1


@dataclass
class PopulationConfig:
    size: int = 8
    seed: int = 0  # member i trains with seed (seed, i)
    member_prefix: str = "member"


@dataclass
class TrainConfig:
    iterations: int = 200
    episodes_per_pair: int = 64  # episodes per (seat-0, seat-1) pair per iteration
    lr: float = 0.01
    entropy_coef: float = 0.01  # entropy bonus at iteration 1
    entropy_coef_end: Optional[float] = None  # anneal linearly to this (None: constant entropy_coef)
    entropy_anneal_iterations: Optional[int] = None  # ... over this many iterations (None: all of them)
    max_grad_norm: Optional[float] = 1.0
    eval_every: int = 25  # iterations between evaluations (self-play return per member)
    eval_episodes: int = 256
    target_return: Optional[float] = None  # stop early once every member's evaluated return reaches this
    checkpoint_every: int = 10  # iterations between checkpoints (resume with --resume); 0: only on SIGTERM/Ctrl-C
    rollout: str = "per_row"  # per_row: sample and score once per distinct row; per_episode: the earlier
    #                           path, kept for comparison (same law, other draws; docs/performance.md)
    algorithm: str = "reinforce"  # reinforce: the methods' REINFORCE; ppo: PPO with a value head per member
    #                               (adhoc.methods.ppo; the ppo_* keys below; docs/reference.md "train.algorithm")
    ppo_epochs: int = 4  # passes over each rollout
    ppo_minibatches: int = 4  # minibatches per pass (each pair's episodes cut in this many parts)
    ppo_clip: float = 0.2  # ε of the clipped ratio
    ppo_value_clip: Optional[float] = 0.2  # ε_V of the clipped value loss (null: unclipped)
    ppo_gamma: float = 0.99  # GAE's discount, per decision
    ppo_gae_lambda: float = 0.95
    ppo_value_coef: float = 0.5  # weight of the value loss
    ppo_normalize_advantages: bool = True  # per member within each minibatch


ROLLOUT_MODES = ("per_row", "per_episode")  # train.rollout (adhoc.rollout)
ALGORITHMS = ("reinforce", "ppo")  # train.algorithm


def entropy_coef_at(train: TrainConfig, iteration: int) -> float:
    """Linear entropy-bonus schedule: a strong early bonus keeps policies near uniform until the payoff
    differences, not sampling noise, decide which convention a member settles on."""
    if train.entropy_coef_end is None:
        return train.entropy_coef
    span = train.entropy_anneal_iterations or train.iterations
    frac = min(1.0, (iteration - 1) / max(1, span))
    return train.entropy_coef + frac * (train.entropy_coef_end - train.entropy_coef)


class _Serialised:
    """The resolved config as YAML (saved with every run) or as plain containers."""

    def to_yaml(self) -> str:
        return OmegaConf.to_yaml(OmegaConf.structured(self))

    def to_dict(self) -> dict:
        return OmegaConf.to_container(OmegaConf.structured(self))  # type: ignore[return-value]


@dataclass
class RayConfig:
    """Where and how ``backend: ray`` runs (docs/ray.md); ignored by ``backend: local``."""

    address: str = ""  # '': start a local Ray cluster; auto: join the one `ray start` runs here; ray://host:port or host:port
    workers: int = 2  # at most this many trials (sweep) or cross-play workers at once
    cpus_per_worker: float = 1.0  # Ray resources of each trial / worker (a fraction < 1, or a whole number)
    gpus_per_worker: float = 0.0  # e.g. 0.25: four trials share one GPU
    gpu_resource: str = "GPU"  # the Ray resource gpus_per_worker asks for (another name: a custom resource)
    max_failures: int = 2  # train-population backend=ray: worker failures survived (restart from the last checkpoint)


@dataclass
class RunConfig(_Serialised):
    game: Any
    method: Any
    model: ModelConfig
    population: PopulationConfig
    train: TrainConfig
    ray: RayConfig = field(default_factory=RayConfig)
    backend: str = "local"  # local: in this process; ray: on a Ray cluster (section ray)


SECTIONS = {"model": ModelConfig, "population": PopulationConfig, "train": TrainConfig, "ray": RayConfig}
BACKENDS = ("local", "ray")

# ---------------------------------------------------------------------------- ranges and limits
# Upper bounds on sizes: generous (every shipped config is far below them) but they stop a typo (an extra zero
# or three) from allocating tens of GiB or running for weeks after `adhoc validate` said ok.
MAX_LORA_INIT_STD = 10.0
# MAX_COEF: entropy coefficients and the methods' loss weights (adhoc.params, with MAX_RESTARTS, MAX_SOLVER_STEPS
# and MAX_SEED: the methods and solvers declare their ranges with them)
MAX_EPOCHS = 1000  # train-learner: one snapshot adapter per epoch
MAX_PAYOFF = 1e6  # |any game float|: rewards are float32 and advantages multiply them
MAX_NAME = 100  # characters of a name that becomes a path (member names append -NN and -init/-half/-epoch-NN)
MAX_ADAPTER_BYTES = 64 << 30  # trained adapters: weights, gradients and Adam moments in float32
MAX_ROLLOUT_BYTES = 64 << 30  # one training rollout batch (rough estimate, see _row_bytes)
MAX_CONFIG_BYTES = 8 << 20  # a config file
MAX_CONFIG_VALUES = 100_000  # values in a config file after YAML aliases are expanded (OmegaConf is slow beyond)
MAX_RAY_WORKERS = 4096  # concurrent Ray trials or cross-play workers
MAX_RAY_GPUS = 64  # GPUs of one Ray worker

DEVICE = re.compile(r"auto|cpu|cuda|cuda:[0-9]{1,3}")  # what adhoc.lm.base.resolve_device accepts
# a Hugging Face hub id: name or owner/name (legacy ids such as gpt2 have no owner)
HF_ID = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?/)?[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
LLAMA_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")  # builtin:* layers

_ITER = Range(1, MAX_ITERATIONS)
_COEF = COEF  # entropy coefficients here, the loss weights the methods declare
_SEED = Range(0, MAX_SEED, hi_open=True)
# section.key -> range, for the sections of both kinds of config (train.lr is the population's and the learner's)
RANGES: dict[str, Range] = {
    "model.cpu_threads": Range(0, MAX_CPU_THREADS, why="0 = auto"),
    "model.lora_rank": Range(1, MAX_LORA_RANK),
    "model.lora_alpha": Range(0, MAX_LORA_ALPHA, lo_open=True),
    "model.lora_init_std": Range(0, MAX_LORA_INIT_STD),
    "population.size": Range(1, MAX_POPULATION),
    "population.seed": _SEED,
    "learner.seed": _SEED,
    "learner.seat": Range(0, 1),
    "train.iterations": _ITER,
    "train.episodes_per_pair": Range(2, MAX_ROLLOUT_ROWS, why="the leave-one-out baseline needs 2"),
    "train.lr": Range(0, MAX_LR, lo_open=True),
    "train.entropy_coef": _COEF,
    "train.entropy_coef_end": _COEF,
    "train.entropy_anneal_iterations": _ITER,
    "train.max_grad_norm": Range(0, None, lo_open=True, why="null: no clipping"),
    "train.eval_every": _ITER,
    "train.eval_episodes": Range(1, MAX_EVAL_EPISODES),
    "train.target_return": Range(),
    "train.checkpoint_every": Range(0, MAX_ITERATIONS, why="0: only on SIGTERM/Ctrl-C"),
    "train.epochs": Range(1, MAX_EPOCHS),
    "train.iterations_per_epoch": _ITER,
    "train.episodes": Range(2, MAX_ROLLOUT_ROWS, why="the baseline needs 2 episodes"),
    "train.ppo_epochs": Range(1, MAX_EPOCHS),
    "train.ppo_minibatches": Range(1, MAX_ROLLOUT_ROWS),
    "train.ppo_clip": Range(0, 1, lo_open=True),
    "train.ppo_value_clip": Range(0, None, lo_open=True, why="null: unclipped"),
    "train.ppo_gamma": Range(0, 1),
    "train.ppo_gae_lambda": Range(0, 1),
    "train.ppo_value_coef": _COEF,
    "ray.workers": Range(1, MAX_RAY_WORKERS),
    "ray.cpus_per_worker": Range(0, MAX_CPU_THREADS),
    "ray.gpus_per_worker": Range(0, MAX_RAY_GPUS, why="a fraction shares one GPU"),
    "ray.max_failures": Range(0, 100),
}
# Methods and solvers declare their parameters' ranges themselves, next to the parameter (adhoc.params): a method
# on its config dataclass's fields (field_ranges, field_choices), a solver on its function (param_ranges,
# param_choices); the solvers re-check their own parameters when run.




# ---------------------------------------------------------------------------- reading YAML strictly
class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter: duplicate keys and tags (``!!python/object``, ``!!binary``, ``!!set``,
    local ``!tags``) are errors; ``1e-2`` is a float and ``2020-01-01`` a string, as in OmegaConf's loader."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                key = (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
                if key is not None and key in seen:
                    raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                            f"duplicate key {key_node.value!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def _refuse_tag(self, node):
        tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
        raise yaml.constructor.ConstructorError(None, None, f"YAML tags are not allowed (found {tag})", node.start_mark)


_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str", "seq", "map")}
_Loader.yaml_constructors = {t: c for t, c in yaml.SafeLoader.yaml_constructors.items() if t in _PLAIN_TAGS}
_Loader.yaml_constructors[None] = _Loader._refuse_tag
_Loader.yaml_implicit_resolvers = {k: [(t, rx) for t, rx in v if t != "tag:yaml.org,2002:timestamp"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"""^(?:
     [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X), list("-+0123456789."))


def _count_values(data: Any, limit: int) -> int:
    """Values in ``data`` with YAML aliases expanded (shared objects counted once per reference, memoised, so
    a 'billion laughs' file is counted, not expanded); stops past ``limit``; a recursive alias is an error."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def count(x: Any) -> int:
        if not isinstance(x, (dict, list)):
            return 1
        if id(x) in memo:
            return memo[id(x)]
        if id(x) in active:
            raise ConfigError("a YAML alias refers to itself")
        active.add(id(x))
        total = 1
        for item in (x.items() if isinstance(x, dict) else x):
            total += count(item[1]) + 1 if isinstance(x, dict) else count(item)
            if total > limit:
                break
        active.discard(id(x))
        memo[id(x)] = total
        return total

    return count(data)


def _load_yaml(path: Path) -> DictConfig:
    """The config file as a DictConfig; every way a file can be wrong is one ConfigError line."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}" if not path.exists() else
                          f"config error: {path} is not a file")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config error: {path} is {_bytes(size)}, above the limit of "
                              f"{_bytes(MAX_CONFIG_BYTES)[1:]} for a config file")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config error: cannot read {path} ({exc.strerror or exc})") from None
    try:
        if b"\x00" in data:
            raise UnicodeDecodeError("utf-8", data, data.index(b"\x00"), data.index(b"\x00") + 1, "NUL byte")
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config error: {path} is not a UTF-8 text file (a binary file?)") from None
    try:
        obj = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader that refuses every tag)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        what = exc.problem or exc.context or "parse error"
        raise ConfigError(f"config error: {path} is not valid YAML ({where}{what})") from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError, OverflowError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"config error: {path} is not valid YAML ({first})") from None
    if obj is None:
        raise ConfigError(f"config error: {path} is empty (expected a mapping of sections: game, method, ...)")
    if not isinstance(obj, dict):
        kind = "a list" if isinstance(obj, list) else f"a single {type(obj).__name__} value"
        raise ConfigError(f"config error: {path} must be a mapping of sections (game: ..., train: ...), not {kind}")
    try:
        values = _count_values(obj, MAX_CONFIG_VALUES)
    except RecursionError:
        raise ConfigError(f"config error: {path} is nested too deeply") from None
    except ConfigError as exc:
        raise ConfigError(f"config error: {path}: {exc}") from None
    if values > MAX_CONFIG_VALUES:
        raise ConfigError(f"config error: {path} holds more than {MAX_CONFIG_VALUES:,} values (with YAML aliases "
                          f"expanded), above the limit for a config file")
    try:
        _check_keys(obj, "")
        return OmegaConf.create(obj)
    except RecursionError:
        raise ConfigError(f"config error: {path} is nested too deeply") from None
    except ConfigError as exc:
        raise ConfigError(f"config error: {path}: {str(exc).removeprefix('config error: ')}") from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config error: {path}: {str(exc).splitlines()[0]}") from None


def _check_keys(data: Any, where: str) -> None:
    """Every mapping key is a plain string (YAML turns `on:`, `1:` or `~:` into bool, int or null keys)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(key, str) or not key:
                raise ConfigError(f"key {key!r}{f' in {where}' if where else ''} must be a non-empty name "
                                  f"(quote it in YAML)")
            _check_keys(value, f"{where}.{key}" if where else key)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _check_keys(value, f"{where}[{i}]")


# ---------------------------------------------------------------------------- typing the sections
def _fields(cls) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls))


def _initials(word: str) -> str:
    return "".join(p[0] for p in word.split("_") if p)


def _suggest(word: Any, options: list[str]) -> str | None:
    """The option ``word`` most likely misspells: close spelling (difflib), or initials (``learning_rate`` ->
    ``lr``), or a part of a longer name (``rank`` -> ``lora_rank``)."""
    word = str(word)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return close[0]
    lower = word.lower()
    for option in options:
        if lower == option.lower() or _initials(lower) == option or _initials(option) == lower:
            return option
    for option in options:
        if option.endswith("_" + lower) or option.startswith(lower + "_"):
            return option
    return None


def _unknown(what: str, key: Any, options: list[str], prefix: str = "", allowed: str | None = None) -> ConfigError:
    """``unknown key train.learning_rate (allowed: ...); did you mean train.lr?``"""
    guess = _suggest(key, options)
    hint = f"; did you mean {prefix}{guess}?" if guess else ""
    return ConfigError(f"config error: unknown {what} (allowed: {allowed or ', '.join(options)}){hint}")


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Any), True
    return hint, False


def _check_raw(key: str, hint: Any, value: Any) -> None:
    """What OmegaConf would silently convert: ``true``/``2`` into a string or ``2``/``"yes"`` into a bool,
    ``???`` (OmegaConf's missing value: the default would stay), a scalar where a list belongs."""
    if isinstance(value, str) and "${" in value:
        return  # an interpolation: OmegaConf resolves and types it
    if value == "???":
        raise ConfigError(f"config error: {key} is '???' (a missing value): give a value or remove the key")
    hint, optional = _unwrap_optional(hint)
    if value is None:
        return  # OmegaConf refuses null for a field that is not Optional, naming the key
    origin = typing.get_origin(hint)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"config error: {key} must be true or false (got {value!r})")
    if hint is str and isinstance(value, (bool, list, dict)):
        shown = str(value).lower() if isinstance(value, bool) else repr(value)
        raise ConfigError(f"config error: {key} must be a string (got {shown}; quote it in YAML)")
    if hint in (int, float) and isinstance(value, (list, dict)):
        raise ConfigError(f"config error: {key} must be a single number (got {value!r})")
    if hint is float and isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
        raise ConfigError(f"config error: {key} must be a finite number (got an integer of {value.bit_length()} bits)")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config error: {key} must be a list (got {value!r})")
        (item,) = typing.get_args(hint) or (Any,)
        for i, v in enumerate(value):
            _check_raw(f"{key}[{i}]", item, v)


def _hints(cls) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: OmegaConf still types the values
        return {}


def _typed(section: str, cls, values: Any) -> Any:
    """Validate ``values`` (a DictConfig) against dataclass ``cls``; one-line errors naming the key."""
    if values is None:
        values = {}
    if not isinstance(values, (DictConfig, dict)):
        raise ConfigError(f"config error: {section} must be a mapping of keys (allowed: {_fields(cls)})")
    raw = OmegaConf.to_container(values, resolve=False) if isinstance(values, DictConfig) else dict(values)
    known = [f.name for f in dataclasses.fields(cls)]
    hints = _hints(cls)
    for key, value in raw.items():
        if key not in known:
            raise _unknown(f"key {section}.{key}", key, known, f"{section}.")
        _check_raw(f"{section}.{key}", hints.get(key, Any), value)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), values)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"config error: {section}.{key}: {msg}") from None
    except (OverflowError, ValueError, TypeError) as exc:  # e.g. a 400-digit integer for a float
        raise ConfigError(f"config error: {section}: {(str(exc).splitlines() or [''])[0]}") from None


def _registry_section(section: str, values: Any, registry: dict) -> Any:
    allowed = ", ".join(sorted(registry))
    if isinstance(values, str):
        values = {"name": values}
    if values is not None and not isinstance(values, (DictConfig, dict)):
        raise ConfigError(f"config error: {section} must be a {section} name or a mapping with {section}.name "
                          f"(allowed: {allowed}), not {values!r}")
    if values is None or "name" not in values:
        raise ConfigError(f"config error: {section}.name is required (allowed: {allowed})")
    name = values["name"]
    if not isinstance(name, str):
        raise ConfigError(f"config error: {section}.name must be a name (allowed: {allowed}), not {name!r}")
    if name not in registry:
        guess = _suggest(name, sorted(registry))
        raise ConfigError(f"config error: unknown {section}.name '{name}' (allowed: {allowed})"
                          + (f"; did you mean {guess}?" if guess else ""))
    return _typed(section, registry[name].config_cls, values)


def _read(path: str | Path | None, overrides: list[str], registry_sections: dict[str, Any]):
    """The YAML file merged with ``key=value`` overrides (a DictConfig).

    ``registry_sections`` maps each section chosen by name (``game``, ``method``, ``solver``) to its registry
    (only its names are used). Such a section has the shorthand ``section: NAME`` in the file and
    ``section=NAME`` on the command line. Switching it to another name on the command line follows one rule,
    so that no parameter is ever dropped or carried over unseen:

    - ``game=cmg-h`` (or ``game={name: cmg-h, ...}``) assigns the whole section: the new game starts from its
      own defaults, plus any ``game.KEY=VALUE`` given after it; the file's parameters of the old game are not
      used (they belong to it, and a parameter of the same name can mean something else: trajedi's
      ``alpha`` is not mep's).
    - ``game.name=cmg-h`` changes one key, like every dotted override, so the file's other game parameters
      would stay: if the file sets any for the old game (and the command line does not set them too), that is
      an error naming them and saying to write ``game=cmg-h``. With none set, the name simply changes.

    A name the registry does not know is left to the section's own check (``unknown game.name ...``)."""
    base = OmegaConf.create({})
    if path is not None:
        base = _load_yaml(Path(path))
    for item in overrides:
        if not isinstance(item, str) or "=" not in item or item.startswith("="):
            raise ConfigError(f"config error: override {item!r} is not key=value")
    parts = [item.partition("=") for item in overrides]
    assigned = {k for k, _, _ in parts if k in registry_sections}  # `game=NAME`: the whole section
    # `solver=maximin solver.steps=9`: the shorthand names the choice, so later keys add to it
    overrides = [f"{k}.name={v}" if k in registry_sections and not v.lstrip().startswith("{") else f"{k}={v}"
                 for k, _, v in parts]
    dotlist = OmegaConf.create({})
    for item in overrides:  # one at a time, so an error names its override
        try:
            dotlist.merge_with_dotlist([item])
        except (OmegaConfBaseException, yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
            # each value is parsed as YAML: `train.lr=[1` fails in PyYAML, not in OmegaConf
            raise ConfigError(f"config error: override {item!r}: {(str(exc).splitlines() or [''])[0]}") from None
    try:
        # A shorthand `game: lever` in the file must still accept `game.n_levers=7` on the command line.
        for section, registry in registry_sections.items():
            if isinstance(base.get(section), str):
                base[section] = {"name": base[section]}
            if isinstance(dotlist.get(section), str):
                dotlist[section] = {"name": dotlist[section]}
            old, new = base.get(section), dotlist.get(section)
            if not (isinstance(old, DictConfig) and isinstance(new, DictConfig) and "name" in old and "name" in new
                    and old.get("name") != new.get("name")):
                continue
            if section in assigned:
                base[section] = {}  # a different game (solver, ...): it starts from its defaults
                continue
            name = new.get("name")
            kept = [str(k) for k in old if k != "name" and k not in new]
            if kept and isinstance(name, str) and name in registry:
                where = path if path is not None else "the config"
                raise ConfigError(
                    f"config error: {section}.name={name} changes only the name, but {where} sets {section} "
                    f"parameters of {old.get('name')} ({', '.join(f'{section}.{k}' for k in kept)}), which would "
                    f"carry over to {name}: write {section}={name} instead to start {name} from its own defaults "
                    f"(and {section}.KEY=VALUE for any of its parameters; adhoc validate --print CONFIG "
                    f"{section}={name} shows them)")
        return OmegaConf.merge(base, dotlist)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config error: {str(exc).splitlines()[0]}") from None


def _sections(raw: DictConfig, allowed: list[str]) -> None:
    for key in raw:
        if key not in allowed:
            raise _unknown(f"section '{key}'", key, allowed)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> "RunConfig | LearnerRunConfig":
    """Load a YAML config, apply ``key=value`` overrides and validate it against the schemas.

    A file with a ``learner`` section is a robust-learner config (``adhoc train-learner``): see
    ``load_learner_config``."""
    if is_learner_config(path):
        return load_learner_config(path, overrides)
    raw = _read(path, overrides, {"game": GAMES, "method": METHODS})
    _sections(raw, ["game", "method", *SECTIONS, "backend"])
    config = RunConfig(
        game=_registry_section("game", raw.get("game"), GAMES),
        method=_registry_section("method", raw.get("method"), METHODS),
        **{name: _typed(name, cls, raw.get(name)) for name, cls in SECTIONS.items()},
        backend=_backend(raw.get("backend", "local")),
    )
    check(config)
    return config


def check(config: RunConfig) -> None:
    """Value checks a type cannot express (see the module docstring); also builds the game and the method once
    so impossible parameters fail here, and bounds what the run would allocate."""
    for section in ("game", "method", "model", "population", "train"):
        _check_finite(section, getattr(config, section))
    _check_model(config.model)
    if config.train.rollout not in ROLLOUT_MODES:
        raise ConfigError(f"config error: train.rollout must be one of {', '.join(ROLLOUT_MODES)} "
                          f"(got {config.train.rollout!r})")
    _check_name(config.population.member_prefix, "population.member_prefix")
    check_ray(config.ray)
    _check_algorithm(config)
    game = _build_game(config.game)
    dims = _base_dims(config.model.base)
    m, t, n = config.model, config.train, config.population.size
    rank = _clamp(m.lora_rank, 1, MAX_LORA_RANK)
    per_adapter = _adapter_bytes(dims, rank, m.target_modules)
    notes = {"population.size": lambda v: f" (the adapters alone would take {dims.at_least}{_bytes(v * per_adapter)})",
             "model.lora_rank": _rank_note(dims, m.target_modules),
             "train.episodes_per_pair": lambda v: f" (the rollout batch would take {dims.at_least}"
                                                  f"{_bytes(v * _clamp(n, 1, MAX_POPULATION) * _row_bytes(game, dims))})"}
    for section in ("model", "population", "train"):
        _check_ranges(section, getattr(config, section), RANGES, notes)
    spec = METHODS[config.method.name]
    _check_ranges("method", config.method, field_ranges(spec.config_cls), prefix="")
    _check_choices("method", config.method, field_choices(spec.config_cls))
    try:
        method = spec.build(config.method, game, n)  # e.g. otherplay needs symmetries
        if hasattr(method, "check_train"):  # psro: train.iterations = best responses x iterations each
            method.check_train(config.train)
    except UserError as exc:
        raise ConfigError(f"config error: {str(exc).removeprefix('config error: ')}") from None
    adapters = getattr(method, "n_members", n)
    if adapters * per_adapter > MAX_ADAPTER_BYTES:
        trained = f" ({adapters} adapters trained by method {config.method.name})" if adapters != n else ""
        raise ConfigError(f"config error: population.size={n}{trained} with model.lora_rank={m.lora_rank} would take "
                          f"{dims.at_least}{_bytes(adapters * per_adapter)} for the adapters' weights, gradients and "
                          f"Adam moments, above the limit {_bytes(MAX_ADAPTER_BYTES)[1:]}")
    pairs, how = _pairs_per_iteration(config.method, n)
    _check_rollout(f"train.episodes_per_pair={t.episodes_per_pair} x {pairs:,} pairs per iteration ({how})",
                   pairs * t.episodes_per_pair, _row_bytes(game, dims, config.method, n), dims)


def _check_algorithm(config: RunConfig) -> None:
    """train.algorithm: one of ALGORITHMS; PPO only where it is implemented (the method says why not), with
    at least one episode per pair in each minibatch."""
    t = config.train
    if t.algorithm not in ALGORITHMS:
        raise ConfigError(f"config error: train.algorithm must be one of {', '.join(ALGORITHMS)} (got {t.algorithm!r})")
    if t.algorithm != "ppo":
        return
    refusal = getattr(METHODS[config.method.name].build, "ppo_refusal", "it has no PPO loss")
    if refusal:
        raise ConfigError(f"config error: train.algorithm=ppo is not available for method {config.method.name}: {refusal}")
    if config.backend != "local":
        raise ConfigError("config error: train.algorithm=ppo runs with backend: local only (data-parallel PPO is not "
                          "implemented yet)")
    if t.ppo_minibatches > t.episodes_per_pair:
        raise ConfigError(f"config error: train.ppo_minibatches={t.ppo_minibatches} is more than "
                          f"train.episodes_per_pair={t.episodes_per_pair} (each minibatch holds a part of every pair's episodes)")


# ---------------------------------------------------------------------------- execution: backend and ray
RAY_ADDRESS = re.compile(r"(?:ray://)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})?:[0-9]{1,5}|\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}")


def _backend(value: Any) -> str:
    if value not in BACKENDS:
        raise ConfigError(f"config error: backend must be one of {', '.join(BACKENDS)} (got {value!r})")
    return value


def _ray_amount(key: str, value: float) -> None:
    """Ray accepts a resource amount below 1 in steps of 0.0001, and above 1 only as a whole number."""
    if value > 1 and value != int(value):
        raise ConfigError(f"config error: {key}={value:g}: above 1 a Ray resource must be a whole number")
    if 0 < value < 1 and abs(value * 10_000 - round(value * 10_000)) > 1e-6:
        raise ConfigError(f"config error: {key}={value:g}: a fraction of a Ray resource is a multiple of 0.0001")


def check_ray(ray: RayConfig) -> None:
    """Values of the ``ray`` section: ranges, resource amounts Ray accepts, the address's form."""
    _check_finite("ray", ray)
    _check_ranges("ray", ray, RANGES)
    address = ray.address.strip()
    if address not in ("", "auto") and not RAY_ADDRESS.fullmatch(address):
        raise ConfigError(f"config error: ray.address {ray.address!r} must be empty (start a local cluster), auto "
                          f"(the cluster `ray start` runs on this machine), ray://HOST:PORT or HOST:PORT")
    if address and int(address.rpartition(":")[2]) > 65535:
        raise ConfigError(f"config error: ray.address {ray.address!r}: port above 65535")
    _ray_amount("ray.cpus_per_worker", ray.cpus_per_worker)
    _ray_amount("ray.gpus_per_worker", ray.gpus_per_worker)
    _check_name(ray.gpu_resource, "ray.gpu_resource")


def load_execution(overrides: list[str]) -> tuple[str, RayConfig]:
    """(backend, ray section) from ``backend=...`` and ``ray.KEY=VALUE`` overrides alone, for commands that read
    no config file (``adhoc crossplay``); any other key is an error naming the allowed ones."""
    raw = _read(None, overrides, {})
    _sections(raw, ["backend", "ray"])
    ray = _typed("ray", RayConfig, raw.get("ray"))
    check_ray(ray)
    return _backend(raw.get("backend", "local")), ray


def _pairs_per_iteration(method: Any, n: int) -> tuple[int, str]:
    """Pairs a method's ``pairs`` returns for a population of ``n`` (tests/test_bad_config.py checks this
    against every registered method), without building the [pairs, 2] tensor."""
    name = method.name
    if name == "lipo":
        return n * n, f"method lipo: every ordered pair of population.size={n}"
    if name == "trajedi" and getattr(method, "best_response", False):
        return 3 * n, f"method trajedi with best_response: 3 x population.size={n}"
    if name == "psro":
        return 2 * (n - 1), f"method psro: the newest of population.size={n} members with every other, both seatings"
    if name == "otherplay":
        restarts = getattr(method, "restarts", 1)
        return n * restarts, f"method otherplay: population.size={n} x method.restarts={restarts}"
    return n, f"method {name}: population.size={n}"


# ---------------------------------------------------------------------------- robust learner (train-learner)
@dataclass
class LearnerModelConfig:
    """The learner shares one AdapterBank with its partners, so its LoRA rank, alpha and layers are theirs."""

    base: Optional[str] = None  # None: the partners' base model (checked against their fingerprint either way)
    device: str = "auto"
    dtype: str = "auto"
    cpu_threads: int = 0
    lora_init_std: float = 0.1  # std of the fresh learner's lora_B (see ModelConfig.lora_init_std)
    # the learner's LoRA shape; None: the partner populations' (with scripted partners only: ModelConfig's)
    lora_rank: Optional[int] = None
    lora_alpha: Optional[float] = None
    target_modules: Optional[list[str]] = None


@dataclass
class LearnerConfig:
    name: str = "learner"  # member name of the final learner; snapshots are <name>-epoch-NN
    seed: int = 0  # the learner's LoRA init, partner draws and episodes
    oracle: str = "continue"  # continue: one learner trained on across epochs; fresh: re-initialised (new seed
    #                           from (seed, epoch), its Adam state reset) at the start of every epoch k >= 1,
    #                           so every snapshot is a fresh best response to that epoch's meta-strategy (PSRO)
    seat: Optional[int] = None  # None: the learner plays both seats (half the episodes each); 0 or 1: only that
    #                             seat, every partner the other (an AI trained against a teacher population)
    augment: bool = False  # relabel every training episode by a random symmetry of the game (as Other-Play does):
    #                        each partner, with its history, is met in every relabelling the group allows, so
    #                        memorising which label a partner plays cannot pay; evaluation is never relabelled
    credit: str = "episode"  # episode: every action credited with the episode's return; reward_to_go: with the
    #                          rewards from its step on (multi-step games: less variance, still unbiased)


@dataclass
class LearnerTrainConfig:
    epochs: int = 8  # PSRO epochs: evaluate against every partner -> solve the meta-game -> train -> snapshot
    iterations_per_epoch: int = 10
    episodes: int = 1024  # training episodes per iteration; each draws its partner from the meta-strategy,
    #                      half of them with the learner in seat 0, half in seat 1
    eval_episodes: int = 512  # per (learner snapshot, partner, seating) entry of the meta-game matrix
    lr: float = 0.01
    entropy_coef: float = 0.01
    entropy_coef_end: Optional[float] = None
    entropy_anneal_iterations: Optional[int] = None
    max_grad_norm: Optional[float] = 1.0
    checkpoint_every: int = 10  # iterations between checkpoints (resume with --resume); 0: only on SIGTERM/Ctrl-C

    @property
    def iterations(self) -> int:  # total, for ``entropy_coef_at``
        return self.epochs * self.iterations_per_epoch


@dataclass
class LearnerSlotConfig:
    """One entry of ``learners:``: a learner slot trained in the same batched pass as the others."""

    name: Optional[str] = None  # its population folder (--out DIR/<name>) and member name; None: <learner.name>-<i>
    seed: Optional[int] = None  # its LoRA init (and fresh-oracle seeds); None: learner.seed + i
    partners: Optional[list[str]] = None  # its partner specs (as top-level partners); None: the top-level partners


@dataclass
class LearnerRunConfig(_Serialised):
    game: Any  # None: whatever the partners play; else the partners must play exactly this game
    partners: list[str]  # partner population folders or scripted:<game>[:a,b] (``partners=...``, repeatable)
    solver: dict[str, Any]  # name (adhoc.solvers.SOLVERS) + that solver's parameters
    model: LearnerModelConfig
    learner: LearnerConfig
    train: LearnerTrainConfig
    # None: one learner (learner.name, learner.seed, the partners); a list: M learner slots in one batched pass,
    # names / seeds / partners resolved at load time (``learner_slots``)
    learners: Optional[list[LearnerSlotConfig]] = None

    def to_yaml(self) -> str:
        """As every config; without ``learners: null`` when there is no list (a single learner's config.yaml is
        what it was before ``learners`` existed)."""
        text = super().to_yaml()
        return re.sub(r"^learners: null\n", "", text, flags=re.M) if self.learners is None else text


LEARNER_ORACLES = ("continue", "fresh")
LEARNER_CREDITS = ("episode", "reward_to_go")
LEARNER_SECTIONS = {"model": LearnerModelConfig, "learner": LearnerConfig, "train": LearnerTrainConfig}
MAX_LEARNER_SLOTS = 64  # learners: entries (each a bank slot, a population and an evaluation block per epoch)
SOLVER_FIXED_PARAMS = ("best",)  # minimax_regret's best returns: the partners' self-play, set by the recipe


def is_learner_config(path: str | Path | None) -> bool:
    """A config file with a top-level ``learner`` section (parse errors are left to the loader to report)."""
    try:
        if path is None or not Path(path).is_file() or Path(path).stat().st_size > MAX_CONFIG_BYTES:
            return False
        data = yaml.load(Path(path).read_text(), Loader=_Loader)
    except (yaml.YAMLError, UnicodeDecodeError, OSError, RecursionError, ValueError, TypeError, OverflowError):
        return False
    return isinstance(data, dict) and "learner" in data


def _partner_overrides(overrides: list[str]) -> tuple[list[str], list[str] | None]:
    """``partners=A partners=B`` accumulate into a list (OmegaConf would keep the last); also ``partners=[A,B]``."""
    rest, partners = [], None
    for item in overrides:
        if isinstance(item, str) and item.startswith("partners="):
            value = item.split("=", 1)[1].strip()
            if value.startswith("["):
                try:
                    parsed = OmegaConf.from_dotlist([f"p={value}"]).p
                except (OmegaConfBaseException, yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
                    first = (str(exc).splitlines() or [type(exc).__name__])[0]
                    raise ConfigError(f"config error: override {item!r} is not a list of partners ({first})") from None
                if not OmegaConf.is_list(parsed):
                    raise ConfigError(f"config error: override {item!r} is not a list of partners")
                values = [str(v) for v in parsed]
            else:
                values = [value]
            partners = (partners or []) + [v for v in values if v]
        else:
            rest.append(item)
    return rest, partners


def load_learner_config(path: str | Path | None, overrides: list[str] = ()) -> LearnerRunConfig:
    """Load a robust-learner config: sections ``game`` (optional), ``partners``, ``solver``, ``model``,
    ``learner``, ``train``; overrides as for ``load_config``, plus repeatable ``partners=DIR``."""
    overrides, partners = _partner_overrides(list(overrides))
    raw = _read(path, overrides, {"game": GAMES, "solver": SOLVERS})
    allowed = ["game", "partners", "solver", *LEARNER_SECTIONS, "learners"]
    for key in raw:
        if key == "method" or key == "population":
            method = raw.get("method")
            hint = ("; PSRO (method psro) grows a population: adhoc train-population CONFIG"
                    if hasattr(method, "get") and method.get("name") == "psro" else "")
            raise ConfigError(f"config error: a learner config has no '{key}' section (that is a population "
                              f"config for adhoc train-population{hint}; allowed: {', '.join(allowed)})")
    _sections(raw, allowed)
    if partners is None:
        partners = _partner_list(raw.get("partners") or [], "partners", empty=True)
    game = raw.get("game")
    sections = {name: _typed(name, cls, raw.get(name)) for name, cls in LEARNER_SECTIONS.items()}
    config = LearnerRunConfig(
        game=None if game is None else _registry_section("game", game, GAMES),
        partners=partners,
        solver=_solver_section(raw.get("solver")),
        **sections,
        # learners: null (validate --print of a single learner's config) is no list
        learners=None if raw.get("learners") is None else _learner_slots(raw.get("learners"), sections["learner"]),
    )
    check_learner(config)
    return config


def _partner_list(value: Any, key: str, empty: bool = False) -> list[str]:
    """A partners value (one spec or a list of specs) as a list of non-empty strings (``empty``: [] allowed)."""
    if isinstance(value, str):
        value = [value]
    if OmegaConf.is_list(value):
        value = OmegaConf.to_container(value)
    if not isinstance(value, list) or not (value or empty):
        raise ConfigError(f"config error: {key} must be a {'' if empty else 'non-empty '}list of population "
                          f"folders or scripted:GAME specs")
    for i, p in enumerate(value):
        if not isinstance(p, str) or not p.strip():
            raise ConfigError(f"config error: {key}[{i}] must be a population folder or scripted:GAME (got {p!r})")
    return list(value)


def _learner_slots(values: Any, learner: LearnerConfig) -> list[LearnerSlotConfig]:
    """``learners:``: a non-empty list of mappings with keys name, seed, partners (each optional), resolved:
    name <learner.name>-<i>, seed learner.seed + i; partners stay None (the top-level partners) when not given."""
    if OmegaConf.is_list(values):
        values = OmegaConf.to_container(values, resolve=False)
    if not isinstance(values, list) or not values:
        raise ConfigError("config error: learners must be a non-empty list of learner slots "
                          "(each a mapping of name, seed, partners)")
    if len(values) > MAX_LEARNER_SLOTS:
        raise ConfigError(f"config error: learners has {len(values)} entries, above the limit {MAX_LEARNER_SLOTS}")
    slots = []
    for i, entry in enumerate(values):
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise ConfigError(f"config error: learners[{i}] must be a mapping of keys (allowed: "
                              f"{_fields(LearnerSlotConfig)}; got {entry!r})")
        entry = dict(entry)
        if entry.get("partners") is not None:
            entry["partners"] = _partner_list(entry["partners"], f"learners[{i}].partners")
        slot = _typed(f"learners[{i}]", LearnerSlotConfig, entry)
        slot.name = f"{learner.name}-{i}" if slot.name is None else slot.name
        slot.seed = learner.seed + i if slot.seed is None else slot.seed
        slots.append(slot)
    return slots


def _solver_value(key: str, value: Any, default: Any) -> Any:
    """A solver parameter typed like its default in the solver's signature (``steps: 1e4`` -> 10000)."""
    if isinstance(value, (dict, list)) or value is None:
        raise ConfigError(f"config error: {key} must be a single value (got {value!r})")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config error: {key} must be true or false (got {value!r})")
    elif isinstance(default, int):
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config error: {key} must be an integer (got {value!r})")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config error: {key} must be a number (got {value!r})")
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(f"config error: {key} must be a finite number (got an integer of "
                              f"{value.bit_length()} bits)") from None
    elif isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"config error: {key} must be a string (got {value!r})")
    return value


def _solver_section(values: Any) -> dict[str, Any]:
    """``solver: maximin`` or ``solver: {name: prioritized, beta: 3}``; parameters are the solver function's."""
    allowed = ", ".join(sorted(SOLVERS))
    if values is None:
        values = {"name": "uniform"}
    if isinstance(values, str):
        values = {"name": values}
    if not isinstance(values, (DictConfig, dict)) or "name" not in values:
        raise ConfigError(f"config error: solver.name is required (allowed: {allowed})")
    values = OmegaConf.to_container(values) if isinstance(values, DictConfig) else dict(values)
    name = values.pop("name")
    if not isinstance(name, str) or name not in SOLVERS:
        guess = _suggest(name, sorted(SOLVERS))
        raise ConfigError(f"config error: unknown solver.name '{name}' (allowed: {allowed})"
                          + (f"; did you mean {guess}?" if guess else ""))
    signature = inspect.signature(SOLVERS[name]).parameters
    params = [p for p in signature if p != "M" and p not in SOLVER_FIXED_PARAMS]
    for key, value in values.items():
        if key not in params:
            raise _unknown(f"key solver.{key} for solver '{name}'", key, params, "solver.",
                           ", ".join(["name", *params]))
        values[key] = _solver_value(f"solver.{key}", value, signature[key].default)
    return {"name": name, **values}


def check_learner(config: LearnerRunConfig) -> None:
    """Value checks of a learner config; runs the solver once on a tiny matrix so bad parameters fail here."""
    for section in ("game", "solver", "model", "learner", "train"):
        _check_finite(section, getattr(config, section))
    m, t, name = config.model, config.train, config.solver["name"]
    _check_model(m)
    _check_name(config.learner.name, "learner.name")
    if config.learner.oracle not in LEARNER_ORACLES:
        raise ConfigError(f"config error: learner.oracle must be one of {', '.join(LEARNER_ORACLES)} "
                          f"(got {config.learner.oracle!r})")
    if config.learner.credit not in LEARNER_CREDITS:
        raise ConfigError(f"config error: learner.credit must be one of {', '.join(LEARNER_CREDITS)} "
                          f"(got {config.learner.credit!r})")
    if config.learner.seat not in (None, 0, 1):
        raise ConfigError(f"config error: learner.seat must be 0, 1 or null for both (got {config.learner.seat!r})")
    for i, slot in enumerate(config.learners or []):
        _check_name(slot.name, f"learners[{i}].name")
        _SEED.check(f"learners[{i}].seed", slot.seed)
    names = [slot.name for slot in config.learners or []]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:
        raise ConfigError(f"config error: learners: the name {twice!r} is given twice (each slot is its own "
                          f"population folder)")
    game = None if config.game is None else _build_game(config.game)
    dims = _base_dims(m.base)
    notes = {"model.lora_rank": _rank_note(dims, m.target_modules),
             "train.episodes": lambda v: f" (the rollout batch would take {dims.at_least}"
                                         f"{_bytes(v * _row_bytes(game, dims))})"}
    for section in ("model", "learner", "train"):
        _check_ranges(section, getattr(config, section), RANGES, notes)
    if t.epochs * t.iterations_per_epoch > MAX_ITERATIONS:
        raise ConfigError(f"config error: train.epochs x train.iterations_per_epoch = "
                          f"{t.epochs * t.iterations_per_epoch:,} iterations is above the limit {MAX_ITERATIONS:,}")
    _check_rollout(f"train.episodes={t.episodes}", t.episodes, _row_bytes(game, dims), dims)
    params = {k: v for k, v in config.solver.items() if k != "name"}
    _check_ranges("solver", params, param_ranges(SOLVERS[name]), prefix="")
    _check_choices("solver", params, param_choices(SOLVERS[name]))
    if "steps" in params:  # validated above; a few steps are enough to exercise the parameters
        params["steps"] = min(params["steps"], 10)
    try:
        solve(name, [[1.0, 0.0], [0.5, 0.25]], **params)
    except UserError as exc:
        raise ConfigError(f"config error: solver: {exc}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ConfigError(f"config error: solver '{name}' parameters {params}: {exc}") from None


# ---------------------------------------------------------------------------- shared value checks
def _walk(key: str, value: Any):
    """(dotted key, leaf) for every leaf of a dataclass, dict or list: ``game.payoff[0][1]``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _walk(f"{key}.{f.name}", getattr(value, f.name))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(f"{key}.{k}", v)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(f"{key}[{i}]", v)
    else:
        yield key, value


def _check_finite(section: str, value: Any) -> None:
    """Every float of a section (of its dataclass, nested lists and dicts included) is finite; a game's are also
    at most MAX_PAYOFF in size."""
    for key, v in _walk(section, value):
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"config error: {key} must be a finite number (got {v})")
        if section == "game" and isinstance(v, float) and abs(v) > MAX_PAYOFF:
            raise ConfigError(f"config error: {key}={v:g} is beyond the limit ±{MAX_PAYOFF:g} (rewards are float32 "
                              f"and the policy gradient multiplies them; rescale the payoffs)")


def _check_ranges(section: str, obj: Any, table: dict[str, Range], notes: dict[str, Callable] | None = None,
                  prefix: str | None = None) -> None:
    """The range of every numeric field of ``obj`` (a dataclass or a dict) that ``table`` names: keys are
    ``section.field`` (``prefix`` None) or ``prefix + field``."""
    items = obj.items() if isinstance(obj, dict) else ((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj))
    for name, value in items:
        full = f"{section}.{name}"
        spec = table.get(full if prefix is None else prefix + name)
        if spec is not None and value is not None:
            above = spec.hi is not None and not isinstance(value, bool) and isinstance(value, (int, float)) \
                and value > spec.hi
            spec.check(full, value, notes[full](value) if above and notes and full in notes else "")


def _check_choices(section: str, obj: Any, table: dict[str, tuple[str, ...]]) -> None:
    """Every field of ``obj`` (a dataclass or a dict) that ``table`` names holds one of its choices."""
    values = obj if isinstance(obj, dict) else {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    for key, choices in table.items():
        if key in values and values[key] not in choices:
            raise ConfigError(f"config error: {section}.{key} must be one of {', '.join(choices)} "
                              f"(got {values[key]!r})")


def _check_name(value: Any, key: str) -> None:
    try:
        check_name(value, key)
    except UserError as exc:
        raise ConfigError(f"config error: {exc}") from None
    if len(value) > MAX_NAME:
        raise ConfigError(f"config error: {key} is {len(value)} characters, above the limit {MAX_NAME} (member "
                          f"names add a number and a label to it)")


def _check_model(m: Any) -> None:
    """device, dtype, base and target_modules of a ModelConfig or LearnerModelConfig."""
    if not DEVICE.fullmatch(m.device):
        raise ConfigError(f"config error: model.device must be auto, cpu, cuda or cuda:N (got {m.device!r})")
    if m.dtype != "auto" and m.dtype not in DTYPES:
        raise ConfigError(f"config error: model.dtype must be one of auto, {', '.join(DTYPES)} (got {m.dtype!r})")
    builtins = ", ".join(BUILTIN_PREFIX + k for k in BUILTIN_MODELS)
    base = m.base
    if base is not None:
        local = Path(base).expanduser()
        if base.startswith(BUILTIN_PREFIX):
            if base[len(BUILTIN_PREFIX):] not in BUILTIN_MODELS:
                raise ConfigError(f"config error: model.base {base!r} is not a built-in model (allowed: {builtins})")
        elif base.startswith((".", "/", "~")) or local.exists():
            if not local.is_dir():
                raise ConfigError(f"config error: model.base {base!r}: {'not a' if local.exists() else 'no such'} "
                                  f"folder (a local base model is a folder saved by save_pretrained)")
            if not (local / "config.json").is_file():
                raise ConfigError(f"config error: model.base {base!r} has no config.json (expected a saved "
                                  f"Hugging Face causal LM)")
        elif not HF_ID.fullmatch(base) or ".." in base or "--" in base:
            raise ConfigError(f"config error: model.base {base!r} is neither a built-in model ({builtins}), an "
                              f"existing local folder nor a Hugging Face id (name or owner/name)")
    modules = m.target_modules
    if modules is not None:
        if not modules:
            raise ConfigError("config error: model.target_modules must name at least one linear layer")
        for i, name in enumerate(modules):
            if not MODULE.fullmatch(name):
                raise ConfigError(f"config error: model.target_modules[{i}] {name!r} is not a layer name "
                                  f"(letters, digits and _, e.g. q_proj)")
        if len(set(modules)) != len(modules):
            raise ConfigError(f"config error: model.target_modules names a layer twice ({list(modules)})")
        if base is not None and base.startswith(BUILTIN_PREFIX):
            bad = [x for x in modules if x not in LLAMA_LINEAR]
            if bad:
                raise ConfigError(f"config error: model.target_modules: {bad[0]!r} is not a linear layer of the "
                                  f"built-in models (allowed: {', '.join(LLAMA_LINEAR)})")


class ConfigNeedsExtra(ConfigError, MissingExtra):
    """A config whose game needs an optional dependency that is not installed."""


def _build_game(game_config: Any) -> Any:
    try:
        return build_game(game_config)
    except MissingExtra as exc:
        raise ConfigNeedsExtra(f"config error: {exc}") from None
    except GameError as exc:
        raise ConfigError(f"config error: {exc}") from None


def _clamp(value: Any, lo: int, hi: int) -> int:
    if isinstance(value, float) and not math.isfinite(value) or not isinstance(value, (int, float)):
        return lo
    return min(max(int(value), lo), hi)


# ---------------------------------------------------------------------------- rough memory estimates
class _Dims(NamedTuple):
    """Sizes of the base model that adapters and activations scale with; ``at_least`` is "at least " when
    they are not known (a Hugging Face id is not downloaded to validate: builtin:tiny's, a lower bound)."""

    hidden: int
    intermediate: int
    layers: int
    vocab: int
    at_least: str = ""


def _base_dims(base: str | None) -> _Dims:
    if base is not None and base.startswith(BUILTIN_PREFIX) and base[len(BUILTIN_PREFIX):] in BUILTIN_MODELS:
        s = BUILTIN_MODELS[base[len(BUILTIN_PREFIX):]]
        return _Dims(s.hidden_size, s.intermediate_size, s.num_hidden_layers, len(builtin_vocab()))
    if base is not None and not base.startswith(BUILTIN_PREFIX):
        try:
            cfg = json.loads((Path(base).expanduser() / "config.json").read_text())
            h = cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model")
            layers = cfg.get("num_hidden_layers") or cfg.get("n_layer") or cfg.get("num_layers")
            inter = cfg.get("intermediate_size") or cfg.get("n_inner") or cfg.get("ffn_dim") or 4 * h
            dims = (h, inter, layers, cfg.get("vocab_size"))
            if all(isinstance(d, int) and 0 < d < 1 << 24 for d in dims):
                return _Dims(*dims)
        except (OSError, ValueError, TypeError, AttributeError):
            pass
    s = BUILTIN_MODELS["tiny"]
    return _Dims(s.hidden_size, s.intermediate_size, s.num_hidden_layers, len(builtin_vocab()), "at least ")


def _adapter_bytes(dims: _Dims, rank: int, modules: list[str] | None) -> int:
    """One trained LoRA adapter: rank x (in + out) parameters per targeted layer, 16 bytes each (float32
    weights, gradients and two Adam moments). Unknown layer names count as hidden x hidden."""
    h, i, layers, vocab = dims.hidden, dims.intermediate, dims.layers, dims.vocab
    shapes = {"gate_proj": h + i, "up_proj": h + i, "down_proj": i + h}
    params = sum(rank * (h + vocab) if name == "lm_head" else layers * rank * shapes.get(name, 2 * h)
                 for name in (modules or ModelConfig().target_modules))
    return 16 * params


def _rank_note(dims: _Dims, modules: list[str] | None) -> Callable[[int], str]:
    return lambda rank: f" (each adapter alone would take {dims.at_least}{_bytes(_adapter_bytes(dims, rank, modules))})"


def _row_bytes(game: Any, dims: _Dims, method: Any = None, n: int = 1) -> int:
    """Rough bytes one episode of a training rollout holds until the backward pass: per step and seat the
    log-probabilities of every action with their autograd copies (~12 bytes per action), the observation text
    and a few scalars (~512 bytes); in a multi-step game the activations of the step's new tokens (~64 bytes per
    hidden unit and layer); MEP and TrajeDi also re-score every row under all n members."""
    steps = game.horizon if game is not None else 1
    actions = max(len(game.action_names(s)) for s in (0, 1)) if game is not None else 2
    per_step = 2 * (12 * actions + 512) + (2 * 64 * dims.hidden * dims.layers if steps > 1 else 0)
    if method is not None and method.name in ("mep", "trajedi"):
        per_step += 2 * 12 * n
    return steps * per_step


def _check_rollout(what: str, rows: int, row_bytes: int, dims: _Dims) -> None:
    if rows > MAX_ROLLOUT_ROWS or rows * row_bytes > MAX_ROLLOUT_BYTES:
        raise ConfigError(f"config error: {what} = {rows:,} episodes in one training rollout, above the limit of "
                          f"{MAX_ROLLOUT_ROWS:,} episodes or {_bytes(MAX_ROLLOUT_BYTES)[1:]} (the batch would take "
                          f"{dims.at_least}{_bytes(rows * row_bytes)})")
