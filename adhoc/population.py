"""Population artifacts on disk: saved atomically, loaded with validation, never via pickle.

Layout of a population folder::

    population.yaml          manifest: game + params, method, base model id + fingerprint, adapter shape,
                             members (name, seed, self-play return, folder), package versions
    config.yaml              the resolved run config
    members/<name>/          a standard peft adapter folder (adapter_config.json + adapter_model.safetensors)
    tb/                      TensorBoard logs of the run that made it

A run writes into a hidden staging folder beside the destination (``.<name>.partial``) and renames it into
place only when everything is written, so an interrupted run never leaves a half population, and an
existing folder is replaced only when asked (``overwrite``) and only after the new one is complete.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adhoc.errors import UserError
from adhoc.paths import OutputFolder, atomic_write, check_name
from adhoc.readers import is_number, parse_yaml, read_text

FORMAT = "adhoc-population/1"
MANIFEST = "population.yaml"
REQUIRED = ("format", "game", "method", "base_model", "adapter", "members")
CHECKPOINT = "checkpoint.safetensors"  # a training run's checkpoint, in its staging folder only


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("adhoc", "torch", "transformers", "peft", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


@dataclass
class Member:
    name: str
    seed: int | None = None
    self_play_return: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "seed": self.seed, "self_play_return": self.self_play_return,
             "path": f"members/{self.name}"}
        d.update(self.extra)
        return d


@dataclass
class Population:
    """A validated population on disk (manifest + member adapter folders)."""

    path: Path
    manifest: dict[str, Any]

    @property
    def members(self) -> list[dict[str, Any]]:
        return self.manifest["members"]

    @property
    def names(self) -> list[str]:
        return [m["name"] for m in self.members]

    @property
    def game(self) -> dict[str, Any]:
        return self.manifest["game"]

    @property
    def base_model(self) -> dict[str, str]:
        return self.manifest["base_model"]

    def member_dir(self, name: str) -> Path:
        return self.path / "members" / name

    def check_base(self, model_id: str, fingerprint: str) -> None:
        if self.base_model["fingerprint"] != fingerprint:
            raise UserError(
                f"population {self.path} was trained on base model {self.base_model['id']} "
                f"(fingerprint {self.base_model['fingerprint']}), not {model_id} (fingerprint {fingerprint})")

    def build_bank(self, base):
        """Check the base's fingerprint, then stack every member in a new AdapterBank over it."""
        from adhoc.lm.adapters import AdapterBank

        self.check_base(base.model_id, base.fingerprint)
        a = self.manifest["adapter"]
        bank = AdapterBank(base.model, len(self.members), a["rank"], a["alpha"], a["target_modules"],
                           base_model_id=self.base_model["id"])
        self.load_into(bank)
        return bank

    def load_into(self, bank, slots: list[int] | None = None) -> None:
        """Import every member's adapter into the bank (member k → slot ``slots[k]``)."""
        slots = list(range(len(self.members))) if slots is None else slots
        for slot, name in zip(slots, self.names):
            bank.import_member(slot, self.member_dir(name))

    def select(self, names: list[str]) -> "Population":
        """The same population restricted to the members ``names``, in that order (nothing is written)."""
        unknown = [n for n in names if n not in self.names]
        if not names or unknown or len(set(names)) != len(names):
            problem = f"has no member {unknown[0]!r}" if unknown else "needs distinct member names" if names else \
                "needs member names after the ':'"
            raise UserError(f"population {self.path} {problem} (members: {', '.join(self.names)})")
        by_name = {m["name"]: m for m in self.members}
        return Population(self.path, {**self.manifest, "members": [by_name[n] for n in names]})

    @classmethod
    def load(cls, path: str | Path) -> "Population":
        """Read and validate a population folder; every problem is one clear ``UserError`` line. Member names
        must be plain names and no file read may lie behind a link leading out of the folder."""
        path = Path(path)
        manifest_file = path / MANIFEST
        if not path.is_dir():
            _check_link(path, f"population {path}")
            raise UserError(f"population not found: {path}")
        if not manifest_file.is_file():
            _check_link(manifest_file, f"population {path}: {MANIFEST}")
            raise UserError(f"{path} is not a population: {MANIFEST} is missing")
        _inside(path, manifest_file)
        manifest = parse_yaml(read_text(manifest_file, f"population {path}: {MANIFEST}"), f"population {path}: {MANIFEST}")
        check_manifest(manifest, path)
        pop = cls(path=path, manifest=manifest)
        for name in pop.names:
            folder = pop.member_dir(name)
            _inside(path, folder)
            _check_link(folder, f"population {path}: member folder members/{name}")
            for f in (folder.iterdir() if folder.is_dir() else ()):
                _inside(path, f)
            _check_adapter_folder(folder, manifest["adapter"])
        return pop

    def summary(self) -> str:
        m = self.manifest
        game = ", ".join(f"{k}={v}" for k, v in m["game"].items() if k != "name" and not isinstance(v, (list, dict)))
        lines = [
            f"population  {self.path}",
            f"game        {m['game']['name']}" + (f" ({game})" if game else ""),
            f"method      {m['method']['name']}",
            f"base model  {m['base_model']['id']} (fingerprint {m['base_model']['fingerprint']})",
            f"adapters    LoRA r={m['adapter']['rank']} alpha={m['adapter']['alpha']:g} on {', '.join(m['adapter']['target_modules'])}",
            f"created     {m.get('created', '?')}  in {m.get('wall_time_s', '?')} s"
            + (f" (start-up {m['startup_s']} s, training {m['train_s']} s)" if "startup_s" in m else ""),
        ]
        if isinstance(m.get("data_parallel"), dict):
            dp = m["data_parallel"]
            lines.append(f"trained on  {dp.get('workers', '?')} Ray Train workers, data-parallel "
                         f"({dp.get('exchange_s', '?')} s in all-reduces)")
        lines += psro_lines(m.get("psro"))
        weights = mixture_weights(m)
        lines.append(f"members     {len(self.members)}")
        width = max(len(n) for n in self.names)
        lines.append(f"  {'name':<{width}}  {'seed':>10}  self-play return" + ("  weight (σ)" if weights else ""))
        for mem in self.members:
            sp = mem.get("self_play_return")
            sp = "-" if sp is None else f"{sp:.3f}"
            sp = f"{sp:<16}  {weights.get(mem['name'], 0.0):>6.3f}" if weights else sp
            lines.append(f"  {mem['name']:<{width}}  {str(mem.get('seed')):>10}  {sp}")
        return "\n".join(lines + warning_lines(m))


def stored_mixture(manifest: dict) -> Any:
    """The manifest's mixture over its members as stored, unchecked: train-learner's ``mixture``, or the psro
    method's final meta-strategy ``psro.mixture`` (None when there is neither)."""
    psro = manifest.get("psro")
    return manifest.get("mixture") or (psro.get("mixture") if isinstance(psro, dict) else None)


def mixture_weights(manifest: dict) -> dict[str, float]:
    """``stored_mixture`` as {member: weight} for display, {} when there is none or it is not {name: number}."""
    found = stored_mixture(manifest)
    if not isinstance(found, dict) or not all(isinstance(v, (int, float)) for v in found.values()):
        return {}
    return {str(k): float(v) for k, v in found.items()}


def psro_lines(psro: Any) -> list[str]:
    """A psro population's meta-solver and OpenSpiel's exploitability of σ per epoch, on one line (none when the
    manifest has no such record)."""
    if not isinstance(psro, dict):
        return []
    history = psro.get("history") if isinstance(psro.get("history"), list) else []
    values = [h.get("exploitability") for h in history if isinstance(h, dict)]
    values = [v for v in values if isinstance(v, (int, float))]
    history = " → ".join(f"{v:.3f}" for v in values)
    return [f"psro        meta-solver {psro.get('meta_solver', '?')}"
            + (f"; OpenSpiel's exploitability of σ per epoch: {history}" if values else "")]


def warning_lines(manifest: dict) -> list[str]:
    """The manifest's ``warnings`` (``adhoc.diagnostics``: suspect members, proxies, mixtures), one line each."""
    found = manifest.get("warnings")
    return [f"warning: {w}" for w in found if isinstance(w, str)] if isinstance(found, list) else []


def check_manifest(manifest: Any, path: Path) -> None:
    """Every manifest field adhoc uses, of its type and in its range: one UserError line naming the field."""
    from adhoc.params import MAX_LORA_ALPHA, MAX_LORA_RANK, MAX_POPULATION, MAX_SEED, MODULE

    where = f"population {path}: {MANIFEST}"
    if not isinstance(manifest, dict) or any(k not in manifest for k in REQUIRED):
        missing = [k for k in REQUIRED if not isinstance(manifest, dict) or k not in manifest]
        raise UserError(f"population {path}: {MANIFEST} lacks {', '.join(missing)}")
    if manifest["format"] != FORMAT:
        fmt = str(manifest["format"])[:100]
        newer = fmt.startswith("adhoc-population/") and fmt.rpartition("/")[2].isdigit() and \
            int(fmt.rpartition("/")[2][:6]) > int(FORMAT.rpartition("/")[2])
        raise UserError(f"population {path}: format {fmt!r} is " + ("newer than this adhoc reads "
                        f"({FORMAT}); upgrade adhoc" if newer else f"unknown (this adhoc reads {FORMAT})"))

    def bad(field: str, value: Any, want: str) -> UserError:
        shown = repr(value) if len(repr(value)) <= 60 else f"a {type(value).__name__}"
        return UserError(f"{where}: {field} must be {want} (got {shown})")

    for section in ("game", "method"):
        value = manifest[section]
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise bad(section, value, "a mapping with a name")
    base = manifest["base_model"]
    if not isinstance(base, dict) or not {"id", "fingerprint"} <= set(base):
        raise UserError(f"population {path}: base_model must give id and fingerprint")
    for key in ("id", "fingerprint"):
        if not isinstance(base[key], str) or not base[key]:
            raise bad(f"base_model.{key}", base[key], "a non-empty string")
    adapter = manifest["adapter"]
    if not isinstance(adapter, dict) or not {"rank", "alpha", "target_modules"} <= set(adapter):
        raise UserError(f"population {path}: adapter must give rank, alpha and target_modules")
    rank, alpha, targets = adapter["rank"], adapter["alpha"], adapter["target_modules"]
    if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= MAX_LORA_RANK:
        raise bad("adapter.rank", rank, f"an integer in [1, {MAX_LORA_RANK}]")
    if not is_number(alpha) or not 0 < alpha <= MAX_LORA_ALPHA:
        raise bad("adapter.alpha", alpha, f"a number > 0 and <= {MAX_LORA_ALPHA:g}")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and MODULE.fullmatch(t) for t in targets):
        raise bad("adapter.target_modules", targets, "a non-empty list of layer names")
    members = manifest["members"]
    if not isinstance(members, list) or not members or not all(isinstance(m, dict) and "name" in m for m in members):
        raise UserError(f"population {path}: members must be a non-empty list of entries with a name")
    if len(members) > MAX_POPULATION:
        raise UserError(f"population {path}: {len(members):,} members, above the limit of {MAX_POPULATION:,}")
    for i, m in enumerate(members):
        check_name(m["name"], f"population {path}: member name")
        seed, ret = m.get("seed"), m.get("self_play_return")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < MAX_SEED):
            raise bad(f"members[{i}].seed", seed, "an integer >= 0 and < 2**63, or null")
        if ret is not None and not is_number(ret):
            raise bad(f"members[{i}].self_play_return", ret, "a finite number or null")
    if len({m["name"] for m in members}) != len(members):
        raise UserError(f"population {path}: member names repeat")
    for key in ("wall_time_s", "startup_s", "train_s"):
        if key in manifest and manifest[key] is not None and not is_number(manifest[key]):
            raise bad(key, manifest[key], "a finite number")
    if "data_parallel" in manifest and not isinstance(manifest["data_parallel"], (dict, type(None))):
        raise bad("data_parallel", manifest["data_parallel"], "a mapping")


def _check_link(item: Path, what: str) -> None:
    """A one-line UserError if ``item`` is a link that leads nowhere: a loop, or a dangling link."""
    if not item.is_symlink():
        return
    try:
        os.stat(item)
    except OSError as exc:
        why = "a symlink loop" if exc.errno == errno.ELOOP else f"a dangling link ({exc.strerror})"
        raise UserError(f"{what} is {why}") from None


def _inside(root: Path, item: Path) -> None:
    """Refuse a file or folder of the population that is a link leading out of it (or a loop)."""
    try:
        real_root = root.resolve()
        real = item.resolve() if item.is_symlink() or item.exists() else None
    except (RuntimeError, OSError):  # a symlink loop (RuntimeError before Python 3.13, OSError after)
        raise UserError(f"population {root}: {item.relative_to(root)} is a symlink loop") from None
    if real is not None:
        if real != real_root and real_root not in real.parents:
            raise UserError(f"population {root}: {item.relative_to(root)} links outside the population ({real})")


def _check_adapter_folder(folder: Path, adapter: dict[str, Any]) -> None:
    """A member folder must hold a parseable LoRA config matching the manifest and complete weights."""
    from adhoc.lm.adapters import read_adapter_folder

    cfg, tensors = read_adapter_folder(folder)
    if cfg.get("r") != adapter.get("rank") or sorted(cfg.get("target_modules") or []) != sorted(adapter.get("target_modules") or []):
        raise UserError(f"adapter {folder}: adapter_config.json disagrees with the manifest's adapter shape")
    if float(cfg["lora_alpha"]) != float(adapter["alpha"]):
        raise UserError(f"adapter {folder}: adapter_config.json lora_alpha {cfg['lora_alpha']!r} disagrees with the "
                        f"manifest's adapter.alpha {adapter['alpha']!r}")
    found = {k.split(".lora_")[0].rpartition(".")[2] for k in tensors if ".lora_" in k}
    if found != set(adapter.get("target_modules") or []):
        raise UserError(f"adapter {folder}: weights cover {sorted(found)}, the manifest says {sorted(adapter.get('target_modules') or [])}")


class PopulationWriter(OutputFolder):
    """Stage a population in ``.<name>.partial`` beside ``out`` (locked, see ``adhoc.paths.OutputFolder``);
    ``commit`` checks that it reads back, then renames it into place."""

    def __init__(self, out: str | Path, overwrite: bool = False, resume: bool = False, inputs: tuple = ()) -> None:
        super().__init__(out, "population", overwrite=overwrite, resume=resume, inputs=inputs)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_manifest(self.staging, manifest)

    def commit(self) -> Path:
        Population.load(self.staging)  # never publish what we could not read back
        checkpoint = self.staging / CHECKPOINT
        if checkpoint.exists():
            checkpoint.unlink()
        return super().commit()


class NestedPopulationWriter:
    """A population written straight into ``folder`` inside another output's (locked) staging folder, e.g. one
    slot of a ``learners:`` run: that output's lock, checkpoint and commit cover it; ``commit`` only checks that
    it reads back and returns ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.staging = Path(folder)
        self.staging.mkdir(exist_ok=True)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_manifest(self.staging, manifest)

    def commit(self) -> Path:
        Population.load(self.staging)
        return self.staging


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """``folder``'s manifest (atomic): the format, a time stamp and the package versions, then ``manifest``."""
    manifest = {"format": FORMAT, "created": _dt.datetime.now().isoformat(timespec="seconds"),
                "versions": package_versions(), **manifest}
    atomic_write(folder / MANIFEST, yaml.safe_dump(manifest, sort_keys=False))
