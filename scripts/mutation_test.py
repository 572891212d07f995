"""Mutation testing of the core math with mutmut, in a scratch copy of the repository.

mutmut changes the code in small ways (``>`` to ``>=``, ``+`` to ``-``, a constant to another, an argument
dropped, ...) and runs the chosen tests against each change: a mutant the tests do not notice ("survived")
is a change of behaviour no test pins down (or an equivalent rewrite). The copy keeps the repository itself
untouched: mutmut's ``mutants/`` folder and cache live in the scratch folder, and nothing is mutated in place.
mutmut skips decorated functions; in the copy, ``@torch.no_grad()`` functions are rewritten to run their body
under ``with torch.no_grad():`` so that they are mutated too (``MemberAdam.step``, ``AdapterBank.init_member``).

    .venv/bin/pip install mutmut
    .venv/bin/python scripts/mutation_test.py adhoc/solvers.py --tests tests/test_solvers.py
    .venv/bin/python scripts/mutation_test.py adhoc/methods/common.py --tests tests/test_methods.py
    .venv/bin/python scripts/mutation_test.py adhoc/lm/adapters.py --function MemberAdam --tests tests/test_adapters.py
    # the code and tests of an earlier commit:
    .venv/bin/python scripts/mutation_test.py adhoc/solvers.py --tests tests/test_solvers.py --rev 2cbe33d

Prints the number of mutants per status and the surviving ones (``--show``: with their diffs). Runs one
mutant at a time by default (``--children``); wrap in ``nice`` on a shared machine.
"""

from __future__ import annotations

import argparse
import collections
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def copy_repository(dest: Path, rev: str | None) -> None:
    """The files git tracks (at ``rev``, or as they are in the working tree) plus untracked, not ignored ones."""
    if rev is not None:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
        tarfile.open(fileobj=io.BytesIO(archive)).extractall(dest, filter="data")
        return
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(src.read_bytes())


def undecorate_no_grad(path: Path) -> int:
    """mutmut leaves every decorated function alone. In the scratch copy, rewrite each ``@torch.no_grad()``
    function as the same function whose body runs under ``with torch.no_grad():``, so that its body (e.g.
    ``MemberAdam.step``) is mutated too. Returns how many functions were rewritten."""
    lines = path.read_text().splitlines(keepends=True)
    out, i, count = [], 0, 0
    while i < len(lines):
        decorator = re.match(r"^(\s*)@torch\.no_grad\(\)\s*$", lines[i])
        if not decorator:
            out.append(lines[i])
            i += 1
            continue
        indent, depth = len(decorator.group(1)), 0
        i += 1
        count += 1
        while True:  # the signature, up to its closing colon
            out.append(lines[i])
            depth += lines[i].count("(") - lines[i].count(")")
            i += 1
            if depth == 0 and lines[i - 1].rstrip().endswith(":"):
                break
        if i < len(lines) and lines[i].strip().startswith('"""'):  # the docstring stays the docstring
            out.append(lines[i])
            i += 1
            if lines[i - 1].count('"""') < 2:
                while '"""' not in lines[i]:
                    out.append(lines[i])
                    i += 1
                out.append(lines[i])
                i += 1
        out.append(" " * (indent + 4) + "with torch.no_grad():\n")
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            out.append("    " + lines[i] if lines[i].strip() else lines[i])
            i += 1
    path.write_text("".join(out))
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="source files to mutate, e.g. adhoc/solvers.py")
    ap.add_argument("--tests", nargs="+", required=True, help="the tests to run against each mutant")
    ap.add_argument("--function", help="only mutants of this function or class (a name part, e.g. MemberAdam)")
    ap.add_argument("-k", dest="keyword", help="pytest -k expression narrowing the tests (e.g. 'not open_spiel')")
    ap.add_argument("--rev", help="mutate the code and run the tests of this commit (default: the working tree)")
    ap.add_argument("--workdir", help="scratch folder to use and keep (default: a temporary one, removed after)")
    ap.add_argument("--children", type=int, default=1, help="mutants run in parallel")
    ap.add_argument("--show", action="store_true", help="print each surviving mutant's diff")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="adhoc-mutmut-") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        if not (work / "mutants").exists():
            work.mkdir(parents=True, exist_ok=True)
            copy_repository(work, args.rev)
            for name in args.files:
                undecorate_no_grad(work / name)
        # also_copy: data the tests read relative to the repository (configs, shipped populations); a generous
        # timeout, since a shared machine makes the baseline timing noisy (a hung mutant costs that long)
        lines = ["[mutmut]", "source_paths=adhoc/", "also_copy=", "    configs/", "    populations/",
                 "timeout_multiplier=50", "timeout_constant=10",
                 # torch is not fork-safe once it has run: fork each mutant from a server that has not
                 "process_isolation=forkserver", "only_mutate=", *[f"    {f}" for f in args.files],
                 "pytest_add_cli_args_test_selection=", *[f"    {t}" for t in args.tests],
                 "pytest_add_cli_args=", "    -p", "    no:cacheprovider", "    -q", "    -x",
                 *(["    -k", f"    {args.keyword}"] if args.keyword else [])]
        (work / "setup.cfg").write_text("\n".join(lines) + "\n")
        names = []
        if args.function:
            module = args.files[0].removesuffix(".py").replace("/", ".")
            names = [f"{module}.*{args.function}*"]
        mutmut = [sys.executable, "-m", "mutmut"]
        run = subprocess.run([*mutmut, "run", "--max-children", str(args.children), *names], cwd=work,
                             capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"mutmut run failed (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        results = subprocess.run([*mutmut, "results", "--all", "true"], cwd=work, capture_output=True, text=True,
                                 check=True).stdout
        status = {}
        for line in results.splitlines():
            name, _, state = line.strip().rpartition(": ")
            if name and (not args.function or args.function in name):
                status[name] = state
        counts = collections.Counter(status.values())
        total = sum(counts.values())
        print(f"{', '.join(args.files)} against {' '.join(args.tests)}"
              f"{f' -k {args.keyword!r}' if args.keyword else ''}{f' (only {args.function})' if args.function else ''}"
              f"{f' at {args.rev}' if args.rev else ''}")
        print(f"mutants: {total}; " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
        killed = counts.get("killed", 0)
        if total:
            print(f"killed: {100 * killed / total:.1f}%")
        survivors = sorted(n for n, s in status.items() if s != "killed")
        for name in survivors:
            print(f"  {status[name]:>10}  {name}")
            if args.show:
                diff = subprocess.run([*mutmut, "show", name], cwd=work, capture_output=True, text=True).stdout
                for row in diff.splitlines():
                    if row.startswith(("-", "+")) and not row.startswith(("---", "+++")):
                        print(f"              {row}")


if __name__ == "__main__":
    main()
