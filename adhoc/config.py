"""Typed experiment configs: dataclass schemas, YAML files, ``key=value`` overrides, merged with OmegaConf.

A config has sections ``game``, ``method``, ``model``, ``population``, ``train``. ``game`` and ``method``
are chosen by registry name (``game.name=lever``, or the shorthand ``game: lever``) and their schema is the
registered config class of that name, so unknown keys, wrong types and unknown names are all rejected with
one line naming the key and the allowed values (``ConfigError``, exit code 2 from the CLI).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from adhoc.errors import UserError


class ConfigError(UserError):
    pass


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


def entropy_coef_at(train: TrainConfig, iteration: int) -> float:
    """Linear entropy-bonus schedule: a strong early bonus keeps policies near uniform until the payoff
    differences, not sampling noise, decide which convention a member settles on."""
    if train.entropy_coef_end is None:
        return train.entropy_coef
    span = train.entropy_anneal_iterations or train.iterations
    frac = min(1.0, (iteration - 1) / max(1, span))
    return train.entropy_coef + frac * (train.entropy_coef_end - train.entropy_coef)


@dataclass
class RunConfig:
    game: Any
    method: Any
    model: ModelConfig
    population: PopulationConfig
    train: TrainConfig

    def to_yaml(self) -> str:
        return OmegaConf.to_yaml(OmegaConf.structured(self))

    def to_dict(self) -> dict:
        return OmegaConf.to_container(OmegaConf.structured(self))  # type: ignore[return-value]


SECTIONS = {"model": ModelConfig, "population": PopulationConfig, "train": TrainConfig}


def _fields(cls) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls))


def _typed(section: str, cls, values: Any) -> Any:
    """Validate ``values`` (a DictConfig) against dataclass ``cls``; one-line errors naming the key."""
    if values is None:
        values = {}
    if not isinstance(values, (DictConfig, dict)):
        raise ConfigError(f"config error: {section} must be a mapping of keys (allowed: {_fields(cls)})")
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"config error: unknown key {section}.{key} (allowed: {_fields(cls)})")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), values)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"config error: {section}.{key}: {msg}") from None


def _registry_section(section: str, values: Any, registry: dict) -> Any:
    if isinstance(values, str):
        values = {"name": values}
    if not isinstance(values, (DictConfig, dict)) or "name" not in values:
        raise ConfigError(f"config error: {section}.name is required (allowed: {', '.join(sorted(registry))})")
    name = values["name"]
    if name not in registry:
        raise ConfigError(f"config error: unknown {section}.name '{name}' (allowed: {', '.join(sorted(registry))})")
    return _typed(section, registry[name].config_cls, values)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Load a YAML config, apply ``key=value`` overrides and validate it against the schemas."""
    from adhoc.games import GAMES
    from adhoc.methods import METHODS

    base = OmegaConf.create({})
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            base = OmegaConf.load(path)
        except Exception as exc:  # yaml.YAMLError and OmegaConf's own: any parse failure is the user's file
            raise ConfigError(f"config error: {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(base, DictConfig):
            raise ConfigError(f"config error: {path} must be a mapping of sections (game, method, model, population, train)")
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"config error: override {item!r} is not key=value")
    try:
        dotlist = OmegaConf.from_dotlist(list(overrides))
        # A shorthand `game: lever` in the file must still accept `game.n_levers=7` on the command line.
        for section in ("game", "method"):
            if isinstance(base.get(section), str):
                base[section] = {"name": base[section]}
            if isinstance(dotlist.get(section), str):
                dotlist[section] = {"name": dotlist[section]}
        if "game" in dotlist and "name" in dotlist.game and "game" in base and base.game.get("name") != dotlist.game.name:
            base.game = {}  # a different game: the file's parameters belong to the old one
        raw = OmegaConf.merge(base, dotlist)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config error: {str(exc).splitlines()[0]}") from None
    allowed = ["game", "method", *SECTIONS]
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"config error: unknown section '{key}' (allowed: {', '.join(allowed)})")
    config = RunConfig(
        game=_registry_section("game", raw.get("game"), GAMES),
        method=_registry_section("method", raw.get("method"), METHODS),
        **{name: _typed(name, cls, raw.get(name)) for name, cls in SECTIONS.items()},
    )
    check(config)
    return config


def check(config: RunConfig) -> None:
    """Value checks a type cannot express; also builds the game once so impossible parameters fail here."""
    from adhoc.games import GameError, build_game
    from adhoc.methods import METHODS

    positive = {"population.size": config.population.size, "model.lora_rank": config.model.lora_rank,
                "train.iterations": config.train.iterations, "train.eval_every": config.train.eval_every,
                "train.eval_episodes": config.train.eval_episodes}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config error: {key} must be >= 1 (got {value})")
    if config.train.episodes_per_pair < 2:
        raise ConfigError("config error: train.episodes_per_pair must be >= 2 (the leave-one-out baseline needs 2)")
    if config.train.lr <= 0:
        raise ConfigError(f"config error: train.lr must be > 0 (got {config.train.lr})")
    if not config.model.target_modules:
        raise ConfigError("config error: model.target_modules must name at least one linear layer")
    try:
        game = build_game(config.game)
    except GameError as exc:
        raise ConfigError(f"config error: {exc}") from None
    METHODS[config.method.name].build(config.method, game, config.population.size)  # e.g. otherplay needs symmetries
