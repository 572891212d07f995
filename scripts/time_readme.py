"""Time the README as a new user meets it: a fresh clone, its set-up command, then every command it shows, in
order, and print the times the README states (set-up, the commands in all, the long ones).

In a new folder (``--out``, default runs/time-readme-<time>): ``git clone`` of this checkout's committed HEAD;
the README's first set-up line, run as written by bash in the clone (a new virtual environment, pip with its
cache off by default so that the downloads count as on a fresh machine, then the main job); with ``--tests``
the second set-up line too (the test tools and the fast test suite); then every other command of the README's
```bash blocks in order, in that environment, skipped as ``tests/test_readme.py`` skips them (servers, lines
marked long/interactive/needs/placeholder) and stopping at the first that fails. Prints a markdown table:
seconds per command, the set-up total, the commands' total, and the commands over ``--long`` seconds that the
README does not mark long. The machine's load is printed with it (the README's times are for 2 busy cores).

    .venv/bin/python scripts/time_readme.py                  # about an hour on 2 cores
    .venv/bin/python scripts/time_readme.py --pip-cache      # pip may use its cache (not a fresh machine)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def readme_lines(readme: str):
    """(the two set-up lines, [(command, why it is skipped or None, its trailing comment)] for the others) of the
    README's ```bash blocks, read as tests/test_readme.py reads them."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_readme import SETUP, bash_commands, skip_reason, trailing_comment

    commands = bash_commands(readme)
    setup = [c for c in commands if SETUP.search(c)][:2]  # the "Set up" section's two lines
    rest = [c for c in commands if c not in setup]  # a later `pip install` of an extra runs where it stands
    return setup, [(c, None if SETUP.search(c) else skip_reason(c), trailing_comment(c)) for c in rest]


def timed(command: str, cwd: Path, env: dict, log) -> tuple[float, int]:
    t0 = time.perf_counter()
    log.write(f"\n$ {command}\n")
    log.flush()
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0, proc.returncode


def main() -> None:
    from adhoc.paths import unique_default

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="a new folder for the clone and the log (default runs/time-readme-<time>)")
    ap.add_argument("--tests", action="store_true", help="also time the second set-up line (test tools, fast tests)")
    ap.add_argument("--pip-cache", action="store_true", help="let pip use its cache")
    ap.add_argument("--long", type=float, default=300.0, help="a command over this many seconds should be marked long")
    args = ap.parse_args()
    out = args.out or unique_default("time-readme")
    if out.exists():
        raise SystemExit(f"time_readme: {out} exists: give a new --out")
    out.mkdir(parents=True)
    clone = (out / "adhoc").resolve()
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    setup, commands = readme_lines((clone / "README.md").read_text())
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    if not args.pip_cache:
        env["PIP_NO_CACHE_DIR"] = "1"
    rows, total_setup, total = [], 0.0, 0.0
    with open(out / "log.txt", "w") as log:
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; log: {out / 'log.txt'}",
              flush=True)
        for line in setup[:2 if args.tests else 1]:
            seconds, code = timed(line, clone, env, log)
            total_setup += seconds
            rows.append((seconds, "set-up", line))
            print(f"{seconds:7.1f} s  set-up  {line}", flush=True)
            if code:
                raise SystemExit(f"time_readme: the set-up line failed (exit {code}): see {out / 'log.txt'}")
        activate = f". {clone / '.venv' / 'bin' / 'activate'} && "
        for command, skip, comment in commands:
            if skip is not None:
                rows.append((None, skip, command))
                continue
            seconds, code = timed(activate + command, clone, env, log)
            total += seconds
            rows.append((seconds, "", command))
            print(f"{seconds:7.1f} s  {command}", flush=True)
            if code not in (0, 2 if comment.startswith("refused") else 0):
                raise SystemExit(f"time_readme: exit {code}: {command} (see {out / 'log.txt'})")
    unmarked = [c for s, why, c in rows if s is not None and why == "" and s > args.long]
    print(f"\n| what | time |\n|---|---:|\n| set-up ({'both lines' if args.tests else 'the first line'}) | "
          f"{total_setup / 60:.1f} min |\n| the commands, in order | {total / 60:.1f} min |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    for c in unmarked:
        print(f"over {args.long:.0f} s and not marked long: {c}")


if __name__ == "__main__":
    main()
