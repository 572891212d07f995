"""Safe names and output folders: nothing a command writes can land outside its ``--out``, and nothing it did
not create is ever deleted.

- ``check_name``: a configured or recorded name that becomes a file or folder name must be ONE plain path
  component (letters, digits, ``._+=-``; no separator, no ``..``, no leading dot or dash).
- ``OutputFolder``: every command writes into a hidden staging folder beside its ``--out``
  (``.<name>.partial``), holds an exclusive lock on it while it runs (``fcntl.flock``: released by the
  kernel when the process dies, even on SIGKILL, so a stale lock never blocks a later run), and renames it
  into place when everything is written. An existing ``--out`` is replaced only with ``overwrite`` and only if
  it holds nothing but an earlier output of the same kind (``KINDS``, or a ``learners:`` run's folder of
  learner populations, ``kind_of``); ``/``, the home folder, the working
  directory, their ancestors and the command's own inputs (or a folder holding them) are always refused.
- ``unique_default``: default output names carry a time stamp and a random suffix, so two runs started in the
  same second never share a folder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from adhoc.errors import UserError

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+=-]{0,127}")

# what each kind of output folder may hold: an existing --out is replaced only if it holds nothing else
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
        found = kind_of(out) if out.is_dir() else None
        if found != kind:
            raise UserError(f"{out} exists and is not {_a(kind)} output" + (f" (it is {_a(found)})" if found else
                            " folder written by adhoc") + "; --overwrite replaces only that, so choose another --out")
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
            if not self.overwrite or kind_of(self.out) != self.kind:
                self._release()
                raise UserError(f"{self.out} appeared while this run was writing; the new output stays in {self.staging}")
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
