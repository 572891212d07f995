"""The docs run: every command in the README's ```bash blocks, as written and in the order shown, in a fresh
copy of the repository (slow: run with -m slow); and every link of the docs points at something that exists.

What the slow tests run: each line of a ```bash block (a line ending in a backslash continues on the next)
is one command, run with bash in the copy's root. Skipped:

- set-up lines, those that create a virtual environment or ``pip install``: these tests run inside the
  venv that is already installed (the one running pytest), whose ``bin/`` (so its ``adhoc``) goes first on
  PATH, with PYTHONPATH set to the copy so that the copy's code is what runs;
- ``tensorboard ...`` and ``adhoc serve ...`` (servers that do not return);
- lines whose trailing comment starts with ``long`` (the reproduction scripts: an hour), ``interactive`` (a
  person types the moves), ``needs`` (GPUs, a Ray cluster) or ``placeholder`` (a path of the reader's own).

A line whose trailing comment starts with ``refused`` documents a refusal: it must exit with code 2 and
print one ``adhoc: error:`` line. Any other command must exit with 0. A test fails naming the first
command that did not.

The copy holds the files a fresh clone would hold (``git ls-files``: the tracked files, as they are in the
working tree), so nothing left in ``runs/`` by earlier work, and no untracked file, can make a command pass.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "populations" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)
SETUP = re.compile(r"(^|[\s;&|])(python3? -m venv|pip3? install)\s")


def bash_commands(markdown: str) -> list[str]:
    """The commands of every ```bash block, in order: continuation lines joined, comment lines dropped."""
    commands = []
    for block in FENCE.findall(markdown):
        joined = re.sub(r"\s*\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines()
                     if line.strip() and not line.strip().startswith("#")]
    return commands


def trailing_comment(command: str) -> str:
    """The text of a command's trailing comment ('' if none): what follows the first ' #'."""
    match = re.search(r"\s#\s*(.*)$", command)
    return match.group(1).strip() if match else ""


def skip_reason(command: str) -> str | None:
    """Why a README command is not run here, or None to run it."""
    if SETUP.search(command):
        return "set-up (this test runs in the installed venv)"
    if command.split()[0] == "tensorboard" or command.split()[:2] == ["adhoc", "serve"]:
        return "a server"
    for mark in ("long", "interactive", "needs", "placeholder"):
        if trailing_comment(command).startswith(mark):
            return f"marked {mark}"
    return None


def fresh_copy(dest: Path) -> Path:
    """The tracked files of the working tree, as they are on disk, copied to ``dest``."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached"], cwd=ROOT,
                                capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot tell which files a fresh clone holds")
    for name in listed.decode().split("\0"):
        src = ROOT / name
        if name and src.is_file():  # a tracked file deleted in the working tree is not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def run_doc_commands(doc: Path, tmp_path: Path) -> None:
    commands = bash_commands(doc.read_text())
    assert commands, f"{doc.name} has no ```bash commands"
    repo = fresh_copy(tmp_path / "repo")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=str(repo), TOKENIZERS_PARALLELISM="false")
    env.pop("VIRTUAL_ENV", None)
    start, timings = time.perf_counter(), []
    for k, command in enumerate(commands, 1):
        if (why := skip_reason(command)) is not None:
            timings.append(f"  skipped ({why}): {command}")
            continue
        t0 = time.perf_counter()
        proc = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=900)
        timings.append(f"  {time.perf_counter() - t0:6.1f} s  {command}")
        where = f"{doc.relative_to(ROOT)}, command {k} of {len(commands)}: {command}"
        output = f"\n--- stdout (end) ---\n{proc.stdout[-1500:]}\n--- stderr (end) ---\n{proc.stderr[-2500:]}"
        if trailing_comment(command).startswith("refused"):
            if proc.returncode != 2 or not proc.stderr.startswith("adhoc: error:"):
                pytest.fail(f"{where}\nexpected a one-line refusal (exit 2), got exit {proc.returncode}{output}")
        elif proc.returncode != 0:
            pytest.fail(f"{where}\nexit {proc.returncode}{output}")
    print(f"\n{doc.relative_to(ROOT)}: {time.perf_counter() - start:.0f} s in all\n" + "\n".join(timings))


@pytest.mark.slow
def test_readme_commands_run_in_order_on_a_fresh_copy(tmp_path):
    run_doc_commands(ROOT / "README.md", tmp_path)


@pytest.mark.slow
def test_populations_readme_commands_run(tmp_path):
    run_doc_commands(ROOT / "populations" / "README.md", tmp_path)


DOC_PAGES = [d for d in DOCS[2:] if bash_commands(d.read_text())]


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOC_PAGES, ids=[d.name for d in DOC_PAGES])
def test_docs_commands_run_in_order_on_a_fresh_copy(doc, tmp_path):
    """Every page of docs/ runs like the README: each block in order, on its own fresh copy."""
    run_doc_commands(doc, tmp_path)


def test_every_docs_command_runs_or_says_why_not():
    """A docs command is run by the slow tier unless it is set-up, a server, or marked (long, interactive,
    needs, placeholder): nothing is silently left out."""
    for doc in DOC_PAGES:
        commands = bash_commands(doc.read_text())
        reasons = [skip_reason(c) for c in commands]
        assert all(r is None or r.startswith(("set-up", "a server", "marked ")) for r in reasons)
        for command in commands:  # the reproduction scripts take an hour: marked long, or not shown
            if command.startswith("python scripts/"):
                assert trailing_comment(command).startswith("long"), f"{doc.name}: {command}"


# ---------------------------------------------------------------------------- fast checks of the docs
def test_command_extraction():
    text = ("text\n```bash\n# a comment\nadhoc a --x 1 \\\n   --y 2\n\npython scripts/r.py  # long: an hour\n```\n"
            "```yaml\nnot: run\n```\n```bash\nadhoc b --base z   # refused: why\n```\n")
    commands = bash_commands(text)
    assert commands == ["adhoc a --x 1 --y 2", "python scripts/r.py  # long: an hour",
                        "adhoc b --base z   # refused: why"]
    assert [skip_reason(c) is None for c in commands] == [True, False, True]
    assert trailing_comment(commands[2]) == "refused: why"
    assert skip_reason("python3 -m venv .venv && . .venv/bin/activate && pip install -e . && adhoc x") is not None
    assert skip_reason("tensorboard --logdir runs/x/tb") is not None


def test_readme_runs_everything_it_shows():
    """The README has commands, and every one it skips is set-up, a server or marked long."""
    commands = bash_commands((ROOT / "README.md").read_text())
    run = [c for c in commands if skip_reason(c) is None]
    assert any(c.startswith("adhoc train-population configs/lever-selfplay.yaml") for c in run)
    assert len(run) >= 10
    for command in commands:
        if command.startswith("python ") and "pytest" not in command:
            assert command in run or trailing_comment(command).startswith("long"), command


def test_readme_stays_short():
    assert len((ROOT / "README.md").read_bytes()) < 10_000  # readable in five minutes; details live in docs/


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S), re.M):
        out.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_links_point_at_files_and_headings_that_exist(doc):
    text = doc.read_text()
    assert "REFERENCE.md" not in text
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        assert file.exists(), f"{doc.name}: link to {target}: no such file"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file.read_text()), f"{doc.name}: link to {target}: no such heading"


def test_no_file_holds_a_merge_conflict():
    """A merge left half-resolved shows up here rather than in a reader's browser."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True).stdout
    files = [ROOT / f for f in listed.decode().split("\0") if f.endswith((".md", ".py", ".yaml", ".toml"))]
    if not files:
        pytest.skip("not a git checkout")
    marked = [str(f) for f in files if f.is_file() and re.search(r"^(<{7}|>{7}) ", f.read_text(), re.M)]
    assert marked == []
