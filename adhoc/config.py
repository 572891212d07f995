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
    checkpoint_every: int = 10  # iterations between checkpoints (resume with --resume); 0: only on SIGTERM/Ctrl-C


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
class RunConfig(_Serialised):
    game: Any
    method: Any
    model: ModelConfig
    population: PopulationConfig
    train: TrainConfig


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


def _read(path: str | Path | None, overrides: list[str], registry_sections: tuple[str, ...]):
    """The YAML file merged with ``key=value`` overrides (a DictConfig); shorthand ``section: name`` for the
    registry-chosen sections, and a new name on the command line drops the file's parameters of the old one."""
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
    # `solver=maximin solver.steps=9`: the shorthand names the choice, so later keys add to it
    overrides = [f"{k}.name={v}" if k in registry_sections and not v.lstrip().startswith("{") else f"{k}={v}"
                 for k, _, v in (item.partition("=") for item in overrides)]
    try:
        dotlist = OmegaConf.from_dotlist(list(overrides))
        # A shorthand `game: lever` in the file must still accept `game.n_levers=7` on the command line.
        for section in registry_sections:
            if isinstance(base.get(section), str):
                base[section] = {"name": base[section]}
            if isinstance(dotlist.get(section), str):
                dotlist[section] = {"name": dotlist[section]}
            if (section in dotlist and "name" in dotlist[section] and isinstance(base.get(section), DictConfig)
                    and base[section].get("name") != dotlist[section].name):
                base[section] = {}  # a different game (solver, ...): the file's parameters belong to the old one
        return OmegaConf.merge(base, dotlist)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config error: {str(exc).splitlines()[0]}") from None


def load_config(path: str | Path | None, overrides: list[str] = ()) -> "RunConfig | LearnerRunConfig":
    """Load a YAML config, apply ``key=value`` overrides and validate it against the schemas.

    A file with a ``learner`` section is a robust-learner config (``adhoc train-learner``): see
    ``load_learner_config``."""
    from adhoc.games import GAMES
    from adhoc.methods import METHODS

    if is_learner_config(path):
        return load_learner_config(path, overrides)
    raw = _read(path, overrides, ("game", "method"))
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
class LearnerRunConfig(_Serialised):
    game: Any  # None: whatever the partners play; else the partners must play exactly this game
    partners: list[str]  # partner population folders or scripted:<game>[:a,b] (``partners=...``, repeatable)
    solver: dict[str, Any]  # name (adhoc.solvers.SOLVERS) + that solver's parameters
    model: LearnerModelConfig
    learner: LearnerConfig
    train: LearnerTrainConfig


LEARNER_ORACLES = ("continue", "fresh")
LEARNER_SECTIONS = {"model": LearnerModelConfig, "learner": LearnerConfig, "train": LearnerTrainConfig}
SOLVER_FIXED_PARAMS = ("best",)  # minimax_regret's best returns: the partners' self-play, set by the recipe


def is_learner_config(path: str | Path | None) -> bool:
    """A config file with a top-level ``learner`` section (parse errors are left to the loader to report)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) if path is not None and Path(path).is_file() else None
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return False
    return isinstance(data, dict) and "learner" in data


def _partner_overrides(overrides: list[str]) -> tuple[list[str], list[str] | None]:
    """``partners=A partners=B`` accumulate into a list (OmegaConf would keep the last); also ``partners=[A,B]``."""
    rest, partners = [], None
    for item in overrides:
        if item.startswith("partners="):
            value = item.split("=", 1)[1].strip()
            if value.startswith("["):
                parsed = OmegaConf.from_dotlist([f"p={value}"]).p
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
    from adhoc.games import GAMES

    overrides, partners = _partner_overrides(list(overrides))
    raw = _read(path, overrides, ("game", "solver"))
    allowed = ["game", "partners", "solver", *LEARNER_SECTIONS]
    for key in raw:
        if key == "method" or key == "population":
            raise ConfigError(f"config error: a learner config has no '{key}' section (that is a population "
                              f"config for adhoc train-population; allowed: {', '.join(allowed)})")
        if key not in allowed:
            raise ConfigError(f"config error: unknown section '{key}' (allowed: {', '.join(allowed)})")
    if partners is None:
        partners = raw.get("partners") or []
        if isinstance(partners, str):
            partners = [partners]
        if not OmegaConf.is_list(partners) and not isinstance(partners, list):
            raise ConfigError("config error: partners must be a list of population folders")
        partners = [str(p) for p in partners]
    game = raw.get("game")
    config = LearnerRunConfig(
        game=None if game is None else _registry_section("game", game, GAMES),
        partners=partners,
        solver=_solver_section(raw.get("solver")),
        **{name: _typed(name, cls, raw.get(name)) for name, cls in LEARNER_SECTIONS.items()},
    )
    check_learner(config)
    return config


def _solver_section(values: Any) -> dict[str, Any]:
    """``solver: maximin`` or ``solver: {name: prioritized, beta: 3}``; parameters are the solver function's."""
    import inspect

    from adhoc.solvers import SOLVERS

    allowed = ", ".join(sorted(SOLVERS))
    if values is None:
        values = {"name": "uniform"}
    if isinstance(values, str):
        values = {"name": values}
    if not isinstance(values, (DictConfig, dict)) or "name" not in values:
        raise ConfigError(f"config error: solver.name is required (allowed: {allowed})")
    values = OmegaConf.to_container(values) if isinstance(values, DictConfig) else dict(values)
    name = values.pop("name")
    if name not in SOLVERS:
        raise ConfigError(f"config error: unknown solver.name '{name}' (allowed: {allowed})")
    params = [p for p in inspect.signature(SOLVERS[name]).parameters if p != "M" and p not in SOLVER_FIXED_PARAMS]
    for key, value in values.items():
        if key not in params:
            raise ConfigError(f"config error: unknown key solver.{key} for solver '{name}' "
                              f"(allowed: {', '.join(['name', *params])})")
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(f"config error: solver.{key} must be a single value (got {value!r})")
    return {"name": name, **values}


def check_learner(config: LearnerRunConfig) -> None:
    """Value checks of a learner config; runs the solver once on a tiny matrix so bad parameters fail here."""
    from adhoc.games import GameError, build_game
    from adhoc.solvers import solve

    t = config.train
    for key, value in {"train.epochs": t.epochs, "train.iterations_per_epoch": t.iterations_per_epoch,
                       "train.eval_episodes": t.eval_episodes}.items():
        if value < 1:
            raise ConfigError(f"config error: {key} must be >= 1 (got {value})")
    if t.episodes < 2:
        raise ConfigError("config error: train.episodes must be >= 2 (the baseline needs 2 episodes)")
    if t.lr <= 0:
        raise ConfigError(f"config error: train.lr must be > 0 (got {t.lr})")
    if config.model.lora_rank is not None and config.model.lora_rank < 1:
        raise ConfigError(f"config error: model.lora_rank must be >= 1 (got {config.model.lora_rank})")
    if config.model.target_modules is not None and not config.model.target_modules:
        raise ConfigError("config error: model.target_modules must name at least one linear layer")
    if config.learner.seat not in (None, 0, 1):
        raise ConfigError(f"config error: learner.seat must be 0, 1 or null for both (got {config.learner.seat!r})")
    if config.learner.oracle not in LEARNER_ORACLES:
        raise ConfigError(f"config error: learner.oracle must be one of {', '.join(LEARNER_ORACLES)} "
                          f"(got {config.learner.oracle!r})")
    if config.game is not None:
        try:
            build_game(config.game)
        except GameError as exc:
            raise ConfigError(f"config error: {exc}") from None
    params = {k: v for k, v in config.solver.items() if k != "name"}
    try:
        solve(config.solver["name"], [[1.0, 0.0], [0.5, 0.25]], **params)
    except UserError as exc:
        raise ConfigError(f"config error: solver: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config error: solver '{config.solver['name']}' parameters {params}: {exc}") from None
