"""Safe names and output folders: nothing a command writes can land outside its ``--out``, and nothing it did
not create is ever deleted.

- ``check_name``: a configured or recorded name that becomes a file or folder name must be ONE plain path
  component (letters, digits, ``._+=-``; no separator, no ``..``, no leading dot or dash).
- ``OutputFolder``: every command writes into a hidden staging folder beside its ``--out``
  (``.<name>.partial``), holds an exclusive lock on it while it runs (``fcntl.flock``: released by the
  kernel when the process dies, even on SIGKILL, so a stale lock never blocks a later run), and renames it
  into place when everything is written. An existing ``--out`` is replaced only with ``overwrite`` and only if
  EVERY file in it, recursively, is one an output of the same kind (``KINDS``, or a ``learners:`` run's folder
  of learner populations, ``kind_of``) writes there, by name and by content
  (``foreign_file``: a bounded walk that never follows a link; checked again just before the replacement);
  ``/``, the home folder, the working directory, their ancestors and the command's own inputs (or a folder
  holding them) are always refused.
- ``unique_default``: default output names carry a time stamp and a random suffix, so two runs started in the
  same second never share a folder.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from adhoc.errors import UserError

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+=-]{0,127}")

# what each kind of output folder may hold at its top level (``kind_of``: a cheap guess for messages); what it
# may hold recursively, by name and content, is checked by ``foreign_file`` before anything is replaced
KINDS: dict[str, dict] = {
    "population": {"marker": "population.yaml",
                   "entries": {"population.yaml", "config.yaml", "members", "tb", "crossplay", "evaluation"}},
    "crossplay": {"marker": "crossplay.json",
                  "entries": {"crossplay.json", "matrix.npy", "heatmap.png", "report.md", "report.html", "tb"}},
    "evaluation": {"marker": "evaluation.json",
                   "entries": {"evaluation.json", "returns.png", "report.md", "report.html"}},
    "base": {"marker": "card.json",
             "entries": {"card.json", "README.md", "config.json", "generation_config.json", "model.safetensors",
                         "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tb"}},
}
LEARNERS = "learner populations"  # a learners: run's --out: one learner population per slot (see kind_of)
LOCK = ".lock"


def check_name(value: object, what: str) -> str:
    """``value`` if it is one plain path component, else a one-line ``UserError`` naming ``what``."""
    if not isinstance(value, str) or not NAME.fullmatch(value) or value in (".", ".."):
        raise UserError(f"{what} {value!r} is not a plain name (1-128 letters, digits or ._+=-, "
                        f"not starting with . or -, no path separators)")
    return value


def unique_default(*parts: str) -> Path:
    """``runs/<parts joined by ->-<YYYYmmdd-HHMMSS>-<6 hex>``: unique even for runs started in the same second."""
    stem = "-".join(p for p in parts if p)
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def kind_of(folder: Path) -> str | None:
    """The kind of output ``folder`` holds, if it holds nothing but one kind's files; else None."""
    try:
        entries = {p.name for p in folder.iterdir()}
    except OSError:
        return None
    return _kind(folder, entries) or (LEARNERS if _learner_populations(folder, entries) else None)


def _kind(folder: Path, entries: set[str]) -> str | None:
    for kind, spec in KINDS.items():
        if spec["marker"] in entries and entries <= spec["entries"] and not (folder / spec["marker"]).is_symlink():
            return kind
    return None


def _learner_populations(folder: Path, entries: set[str]) -> bool:
    """``folder`` holds a ``learners:`` run's output and nothing else: one population folder per slot, and every
    one's ``config.yaml`` records a ``learners:`` list whose names are exactly these folders (a folder of
    unrelated populations, e.g. ``runs/``, is not one)."""
    import yaml

    if not entries:
        return False
    for name in entries:
        sub, config = folder / name, folder / name / "config.yaml"
        if sub.is_symlink() or not sub.is_dir() or config.is_symlink():
            return False
        try:
            if _kind(sub, {p.name for p in sub.iterdir()}) != "population":
                return False
            data = yaml.safe_load(config.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return False
        slots = data.get("learners") if isinstance(data, dict) else None
        names = [s.get("name") for s in slots if isinstance(s, dict)] if isinstance(slots, list) else []
        if not names or len(names) != len(slots) or set(names) != entries:
            return False
    return True


# ---------------------------------------------------------------------------- what --overwrite may replace
MAX_ENTRIES = 100_000  # files and folders --overwrite looks at before it refuses a tree as too large
MAX_DEPTH = 16  # folder depth looked into (only inside a foreign folder, to name its first file)
MAX_TEXT = 64 << 20  # bytes of a JSON / YAML file (or safetensors header) parsed
POPULATION_KEYS = ("format", "game", "method", "base_model", "adapter", "members")  # adhoc.population.REQUIRED
CONFIG_KEYS = {"game", "method", "model", "population", "train", "ray", "backend",  # RunConfig and
               "partners", "solver", "learner", "learners"}  # LearnerRunConfig: a run's config.yaml
TB_EVENTS = "events.out.tfevents."


class _TooLarge(Exception):
    pass


def _read(path: Path, limit: int = MAX_TEXT) -> bytes | None:
    """The bytes of a regular file of at most ``limit`` bytes, else None (never follows a link)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    return data if len(data) <= limit else None


def _json(*keys: str):
    """A check: the file parses as a JSON object holding ``keys``."""
    def check(path: Path) -> bool:
        data = _read(path)
        try:
            value = json.loads(data) if data is not None else None
        except (ValueError, RecursionError):
            return False
        return isinstance(value, dict) and all(k in value for k in keys)
    return check


def _yaml(path: Path) -> object:
    """The file parsed as safe YAML (None if it is not a readable, small, parseable file)."""
    import yaml

    data = _read(path)
    try:
        return yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if data is not None else None
    except (yaml.YAMLError, ValueError, RecursionError):
        return None


def _config_yaml(path: Path) -> bool:
    value = _yaml(path)
    return isinstance(value, dict) and {"model", "train"} <= set(value) and set(value) <= CONFIG_KEYS


def _starts(prefix: bytes):
    """A check: the file begins with ``prefix`` (a PNG's or .npy's signature, the first line adhoc writes)."""
    def check(path: Path) -> bool:
        with open(path, "rb") as f:
            return f.read(len(prefix)) == prefix
    return check


def _safetensors(path: Path) -> bool:
    """A complete safetensors file: an 8-byte header length, a JSON header of tensors whose data ends exactly
    at the end of the file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 2 <= n <= min(MAX_TEXT, size - 8):
                return False
            header = json.loads(f.read(n))
    except (OSError, ValueError, RecursionError):
        return False
    if not isinstance(header, dict):
        return False
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict):
                return False
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str) and isinstance(entry.get("shape"), list)
                and isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            return False
        end = max(end, offsets[1])
    return 8 + n + end == size


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _tb_events(path: Path) -> bool:
    """A TensorBoard event file: its first record (length, CRC-32C of the length, data, CRC-32C of the data) is
    intact and is the file-version event (``brain.Event:``) every event file starts with."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or int.from_bytes(head[8:], "little") != _masked_crc(head[:8]):
                return False
            n = int.from_bytes(head[:8], "little")
            if n > 4096:
                return False
            data, crc = f.read(n), f.read(4)
    except OSError:
        return False
    return len(data) == n and int.from_bytes(crc, "little") == _masked_crc(data) and b"brain.Event:" in data


def _population_manifest(path: Path) -> set[str] | None:
    """The member names of a population manifest (safe YAML, the keys adhoc writes), or None."""
    m = _yaml(path)
    if not isinstance(m, dict) or any(k not in m for k in POPULATION_KEYS) or \
            not str(m["format"]).startswith("adhoc-population/") or not isinstance(m["members"], list):
        return None
    names = [e.get("name") if isinstance(e, dict) else None for e in m["members"]]
    if not all(isinstance(n, str) and NAME.fullmatch(n) for n in names):
        return None
    return set(names)


HTML = _starts(b"<!doctype html>\n<html")
PNG = _starts(b"\x89PNG\r\n\x1a\n")
MEMBER_FILES = {"adapter_config.json": _json("peft_type", "r", "lora_alpha", "target_modules"),
                "adapter_model.safetensors": _safetensors,  # AdapterBank.export_member: a peft folder
                "value_head.safetensors": _safetensors}  # and a PPO member's value head
CROSSPLAY_FILES = {"crossplay.json": _json("game", "members", "matrix", "episodes", "sp_mean", "xp_mean"),
                   "matrix.npy": _starts(b"\x93NUMPY"), "heatmap.png": PNG,
                   "report.md": _starts(b"# Cross-play report: "), "report.html": HTML}
EVALUATION_FILES = {"evaluation.json": _json("agent", "game", "partner_populations", "episodes"),
                    "returns.png": PNG, "report.md": _starts(b"# Evaluation: "), "report.html": HTML}
BASE_FILES = {"card.json": _json("shape", "parameters", "arch", "data", "steps", "fingerprint"),
              "README.md": _starts(b"# A base pretrained by `adhoc pretrain-base`"),
              "config.json": _json("model_type"), "generation_config.json": _json("transformers_version"),
              "model.safetensors": _safetensors, "tokenizer.json": _json("version", "model"),
              "tokenizer_config.json": _json(), "special_tokens_map.json": _json()}


class _Walk:
    """One bounded walk of an output folder: at most ``MAX_ENTRIES`` entries, links never followed."""

    def __init__(self) -> None:
        self.seen = 0

    def entries(self, folder: Path) -> list[os.DirEntry]:
        found = []
        with os.scandir(folder) as it:
            for entry in it:
                self.seen += 1
                if self.seen > MAX_ENTRIES:
                    raise _TooLarge
                found.append(entry)
        return sorted(found, key=lambda e: e.name)

    def first_file(self, folder: Path, rel: str, depth: int = 0) -> str:
        """The first file (or link, or deepest empty folder) in a foreign folder: what the user would look for."""
        if depth < MAX_DEPTH:
            for e in self.entries(folder):
                if e.is_dir(follow_symlinks=False):
                    return self.first_file(Path(e.path), f"{rel}/{e.name}", depth + 1)
                return f"{rel}/{e.name}"
        return f"{rel}/"

    def folder(self, folder: Path, rel: str, files, folders=None) -> str | None:
        """The first entry of ``folder`` that is not ours: ``files(name)`` / ``folders(name)`` give the check of a
        regular file / the walk of a folder of that name (None: no such file or folder is ever written)."""
        for e in self.entries(folder):
            path, name = Path(e.path), rel + e.name
            if e.is_symlink():
                return name
            if e.is_dir(follow_symlinks=False):
                walk = folders(e.name) if folders else None
                found = self.first_file(path, name) if walk is None else walk(path, name + "/")
                if found is not None:
                    return found
            elif not e.is_file(follow_symlinks=False):
                return name  # a fifo, socket or device
            else:
                check = files(e.name)
                try:
                    if check is None or not check(path):
                        return name
                except OSError:
                    return name
        return None

    def tb(self, folder: Path, rel: str) -> str | None:
        return self.folder(folder, rel, lambda n: _tb_events if n.startswith(TB_EVENTS) else None)

    def kind(self, kind: str, folder: Path, rel: str = "") -> str | None:
        if kind == "crossplay":
            return self.folder(folder, rel, CROSSPLAY_FILES.get, {"tb": self.tb}.get)
        if kind == "evaluation":
            return self.folder(folder, rel, EVALUATION_FILES.get)
        if kind == "base":
            return self.folder(folder, rel, BASE_FILES.get, {"tb": self.tb}.get)
        if kind == LEARNERS:  # one population folder per learner slot (kind_of checked their names)
            return self.folder(folder, rel, lambda n: None, lambda n: lambda p, r: self.kind("population", p, r))
        if kind != "population":
            return rel or "."
        manifest = folder / KINDS[kind]["marker"]
        names = _population_manifest(manifest) if manifest.is_file() and not manifest.is_symlink() else None
        if names is None:
            return rel + manifest.name
        member = lambda path, r: self.folder(path, r, MEMBER_FILES.get)  # noqa: E731
        members = lambda path, r: self.folder(path, r, lambda n: None,  # noqa: E731
                                              lambda n: member if n in names else None)
        return self.folder(folder, rel, {manifest.name: lambda p: True, "config.yaml": _config_yaml}.get,
                           {"members": members, "tb": self.tb,
                            "crossplay": lambda p, r: self.kind("crossplay", p, r),
                            "evaluation": lambda p, r: self.kind("evaluation", p, r)}.get)


def foreign_file(folder: Path, kind: str) -> str | None:
    """The relative path of the first file in ``folder`` (recursively, in name order) that no adhoc output of
    ``kind`` writes there, checked by name and content (manifests parse with the keys adhoc writes, member
    folders hold a peft adapter, ``tb/`` holds TensorBoard event files, ...; a link or a folder where a file
    belongs is foreign); None if every file is ours. A tree of more than ``MAX_ENTRIES`` entries: UserError."""
    try:
        return _Walk().kind(kind, Path(folder))
    except _TooLarge:
        raise UserError(f"{folder} holds more than {MAX_ENTRIES} files and folders, too many to check that all "
                        f"are an earlier {kind} output's; nothing was changed: choose another --out") from None


def check_replaceable(out: Path, kind: str) -> None:
    """Refuse (one line) to replace ``out`` unless it is an earlier output of ``kind`` and holds nothing else."""
    marker = out / KINDS[kind]["marker"] if kind in KINDS else None
    if kind == LEARNERS:
        wrong = kind_of(out) != LEARNERS
    else:
        wrong = marker is None or not out.is_dir() or not (marker.exists() or marker.is_symlink())
    if wrong:
        found = kind_of(out) if out.is_dir() else None
        raise UserError(f"{out} exists and is not {_a(kind)} output" + (f" (it is {_a(found)})" if found else
                        " folder written by adhoc") + "; --overwrite replaces only that, so nothing was changed: "
                        "choose another --out")
    foreign = foreign_file(out, kind)
    if foreign is not None:
        raise UserError(f"{out} holds {foreign}, which is not a file of {_a(kind)} output written by adhoc; "
                        f"--overwrite replaces only an output holding nothing else, so nothing was changed: move "
                        f"it away or choose another --out")


def split_member(spec: str) -> tuple[str, str | None]:
    """``DIR:MEMBERS`` → (DIR, MEMBERS) (``DIR:`` → (DIR, "")); a spec that exists as a path (a folder whose own
    name holds ':'), or holds no ':', → (spec, None). ``scripted:GAME`` splits too: callers check that DIR is a
    folder."""
    spec = str(spec).strip()
    if Path(spec).exists() or ":" not in spec:
        return spec, None
    folder, _, members = spec.rpartition(":")
    return folder, members


def check_out(out: str | Path, kind: str, overwrite: bool = False, inputs: tuple = ()) -> Path:
    """Refuse an ``--out`` that could destroy something: see the module docstring. Returns ``out``."""
    out = Path(out).expanduser()
    if out.name in ("", ".", "..") or out.name.startswith("."):
        raise UserError(f"--out {str(out)!r} must end in a plain folder name")
    real = out.resolve()
    protected = {Path("/"), Path.home().resolve(), Path.cwd().resolve()}
    if any(_is_within(p, real) for p in protected):
        raise UserError(f"--out {out} is (or holds) {'/' if real == Path('/') else 'your home or working folder'}; "
                        f"choose a new folder")
    for item in inputs:
        if item is None:
            continue
        folder, members = split_member(item)
        if members is not None:  # DIR:member,... is DIR; scripted:... is no folder
            if not Path(folder).is_dir():
                continue
            item = folder
        if _is_within(Path(item).resolve(), real):
            raise UserError(f"--out {out} is (or holds) the input {item}; choose another folder")
    if out.is_symlink():
        raise UserError(f"--out {out} is a symbolic link; choose a real folder")
    if out.exists():
        if not overwrite:
            raise UserError(f"{out} already exists (choose another --out, or pass --overwrite to replace "
                            f"an earlier {kind} there)")
        check_replaceable(out, kind)
    parent = out.parent if str(out.parent) else Path(".")
    probe = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if probe is None or not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"cannot write --out {out}: {probe} is not a writable folder")
    return out


class OutputFolder:
    """Stage an output of ``kind`` in ``.<name>.partial`` beside ``out`` under an exclusive lock.

    ``resume``: keep what an interrupted run of the same ``out`` left in the staging folder (its checkpoint;
    with none, the run starts afresh); otherwise a staging folder left by an interrupted run is refused
    (``--resume`` continues it, ``--overwrite`` starts over). ``commit`` renames the staging folder into place
    (replacing an earlier output of the same kind only when ``overwrite``) and releases the lock; ``abandon``
    releases it and removes the staging folder if this run created it and ``keep`` is False.
    """

    def __init__(self, out: str | Path, kind: str, overwrite: bool = False, resume: bool = False,
                 inputs: tuple = ()) -> None:
        if resume and Path(out).exists():
            raise UserError(f"{out} is already complete; nothing to resume")
        self.out, self.kind, self.overwrite = check_out(out, kind, overwrite and not resume, inputs), kind, overwrite
        self.staging = self.out.parent / f".{self.out.name}.partial"
        self._fd: int | None = None
        self.created = False
        resume = resume and self.staging.is_dir()  # nothing was left (killed during start-up): a new run
        self.out.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.staging.mkdir()
            self.created = True
        except FileExistsError:
            if self.staging.is_symlink() or not self.staging.is_dir() or not (self.staging / LOCK).is_file():
                raise UserError(f"{self.staging} exists and is not a staging folder of adhoc; remove it yourself") from None
        self._lock()
        if not self.created and not resume:
            if not overwrite:
                self._release()
                raise UserError(f"an interrupted run left {self.staging}: rerun with --resume to continue it, "
                                f"or --overwrite to start over")
            self.clear()  # our own earlier, interrupted run: start over

    def clear(self) -> None:
        """Empty the (locked) staging folder: a run starts over in it."""
        for entry in self.staging.iterdir():
            if entry.name != LOCK:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()

    def _lock(self) -> None:
        fd = os.open(self.staging / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UserError(f"another adhoc run is writing {self.out} (its lock is held on {self.staging}); "
                                f"choose another --out") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def commit(self) -> Path:
        """Rename the complete staging folder into place; an earlier output of the same kind is replaced
        (``overwrite``) only after the new one is complete."""
        (self.staging / LOCK).unlink()
        old = None
        if self.out.exists():
            try:
                if not self.overwrite:
                    raise UserError("")
                check_replaceable(self.out, self.kind)  # again: a file may have been put there meanwhile
            except UserError:
                self._release()
                raise UserError(f"{self.out} appeared or changed while this run was writing; nothing in it was "
                                f"changed, and the new output stays in {self.staging}") from None
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            os.rename(self.out, old)
        os.rename(self.staging, self.out)
        self._release()
        if old is not None:
            shutil.rmtree(old)
        return self.out

    def abandon(self, keep: bool) -> None:
        """Release the lock; remove the staging folder if this run made it and ``keep`` is False."""
        if self.created and not keep:
            shutil.rmtree(self.staging, ignore_errors=True)
        self._release()


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``path`` so that it is either the old file or the complete new one: temp file, fsync, rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_folder(out: str | Path, kind: str, files: dict[str, bytes | str], overwrite: bool = False,
                 tb_scalars: dict[str, float] | None = None) -> Path:
    """Write a derived output (a report) of ``kind``: staged under a lock beside ``out``, renamed into place;
    an earlier output of the same kind is replaced only with ``overwrite`` (``OutputFolder``)."""
    folder = OutputFolder(out, kind, overwrite=overwrite)
    try:
        for name, data in files.items():
            (folder.staging / name).write_bytes(data.encode() if isinstance(data, str) else data)
        if tb_scalars:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(folder.staging / "tb"))
            for key, value in tb_scalars.items():
                tb.add_scalar(key, value, 0)
            tb.close()
    except BaseException:
        folder.abandon(keep=False)
        raise
    return folder.commit()


def input_label(path: str | Path) -> str:
    """A plain name for a default output folder from an input folder or partner spec."""
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", Path(str(path).rstrip("/")).name or "out").lstrip(".-")[:40] or "out"
