"""Rebuild what adhoc ships from the commands that state how it was made, and say whether it still matches.

- **Shipped populations**: every ``adhoc train-population CONFIG --out populations/NAME`` line of
  populations/README.md is run as written, with ``--out`` pointed into this script's output folder. A rebuilt
  population matches its shipped one when every member plays the same convention (its most probable self-play
  action) and the cross-play matrices agree within 0.1 (64 episodes per ordered pair, as shipped); whether the
  adapters are also byte-identical is reported, not required (kernels may round differently on another CPU).
- **docs/results.md**: the rows that rebuild in minutes: the main job (``configs/lever-selfplay.yaml``, seeds
  0-4: the least self-play return, cross-play mean and conventions per seed) and the lever rows of the
  diversity-method table (``lever-{selfplay,otherplay,trajedi,lipo}``, seeds 0-2; every column but the time),
  each made by the same sweep ``scripts/reproduce.py`` runs.

Prints one line per check and exits 1 if any does not match (0 if all do). Nothing is written outside ``--out``
(default runs/rebuild-<time>), except with ``--write``: then the populations of populations/README.md whose
folder is absent are built into populations/ (remove a stale one with ``git rm -r`` first; none is overwritten).

    .venv/bin/python scripts/rebuild_shipped.py                   # check all (about 6 min on 2 cores)
    .venv/bin/python scripts/rebuild_shipped.py --only populations
    .venv/bin/python scripts/rebuild_shipped.py --write           # rebuild the absent shipped populations
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # adhoc from this checkout, also without an install
SHIPPED_README = ROOT / "populations" / "README.md"
RESULTS = ROOT / "docs" / "results.md"
COMMAND = re.compile(r"^adhoc train-population (configs/\S+\.yaml) --out populations/([\w.+=-]+)\s*$")


def shipped_commands(text: str) -> dict[str, str]:
    """{population name: config path} from the ``adhoc train-population`` lines of populations/README.md."""
    found = {m.group(2): m.group(1) for line in text.splitlines() if (m := COMMAND.match(line.strip()))}
    if not found:
        raise SystemExit(f"{SHIPPED_README}: no 'adhoc train-population CONFIG --out populations/NAME' line")
    return found


def member_conventions(path: Path) -> list[int]:
    """Each member's convention (its most probable self-play action's), in member order, from the population's
    cross-play report."""
    import json

    report = json.loads((path / "crossplay" / "crossplay.json").read_text())
    return [v["convention"] for v in report["member_conventions"].values()]


def compare_populations(shipped: Path, rebuilt: Path) -> tuple[bool, str]:
    """(match, one line): conventions per member equal and cross-play matrices within 0.1."""
    a, b = member_conventions(shipped), member_conventions(rebuilt)
    xa, xb = np.load(shipped / "crossplay" / "matrix.npy"), np.load(rebuilt / "crossplay" / "matrix.npy")
    same_bytes = all((shipped / "members" / m.name / f.name).is_file()
                     and (shipped / "members" / m.name / f.name).read_bytes() == f.read_bytes()
                     for m in sorted((rebuilt / "members").iterdir()) for f in m.glob("*.safetensors"))
    ok = a == b and xa.shape == xb.shape and bool(np.allclose(xa, xb, atol=0.1))
    gap = float(np.abs(xa - xb).max()) if xa.shape == xb.shape else float("inf")
    return ok, (f"conventions {'the same' if a == b else f'{a} shipped, {b} rebuilt'}; cross-play differs by at "
                f"most {gap:.3f}; adapters {'byte-identical' if same_bytes else 'not byte-identical'}")


def cells(line: str) -> list[str]:
    """The cells of one markdown table row."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of every row of the first table after ``heading`` in a markdown page."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    rows, inside = [], False
    for line in lines[start + 1:]:
        if line.startswith("|"):
            inside = True
            rows.append(cells(line))
        elif inside:
            break
    return rows[2:]  # past the header and its rule


def train(config: str, out: Path) -> int:
    """``adhoc train-population CONFIG --out OUT --quiet``, its summary kept off this script's output."""
    import contextlib
    import io

    from adhoc.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        return main(["train-population", str(ROOT / config), "--out", str(out), "--quiet"])


def check_populations(out: Path, write: bool) -> list[tuple[bool, str]]:
    results = []
    for name, config in shipped_commands(SHIPPED_README.read_text()).items():
        target = ROOT / "populations" / name
        if write:
            if target.exists():
                print(f"populations/{name}: present, left as it is", flush=True)
                continue
            results.append((train(config, target) == 0, f"populations/{name}: built by adhoc train-population {config}"))
            continue
        rebuilt = out / "populations" / name
        if not (rebuilt / "population.yaml").is_file():
            if train(config, rebuilt) != 0:
                results.append((False, f"populations/{name}: adhoc train-population {config} failed"))
                continue
        ok, line = compare_populations(target, rebuilt)
        results.append((ok, f"populations/{name}: {line}"))
    return results


def check_results(out: Path) -> list[tuple[bool, str]]:
    from adhoc.population import Population
    from adhoc.recipes.sweep import run_sweep, table

    text = RESULTS.read_text()
    configs = lambda names: [str(ROOT / "configs" / f"{n}.yaml") for n in names]  # noqa: E731
    quiet = lambda line: None  # noqa: E731
    main_rows, _, _ = run_sweep(configs(["lever-selfplay"]), [0, 1, 2, 3, 4], out=out / "main-job", echo=quiet)
    more, _, _ = run_sweep(configs(["lever-otherplay", "lever-trajedi", "lever-lipo"]), [0, 1, 2],
                           out=out / "diversity", echo=quiet)
    results = []
    stated = {int(r[0]): r for r in markdown_rows(text, "## Main job")}
    for row in main_rows:
        least = min(m["self_play_return"] for m in Population.load(row["population"]).members)
        now = [f"{least:.3f}", f"{row['xp']:.3f}", str(row["conventions"])]
        was = [stated[row["seed"]][i] for i in (1, 5, 6)] if row["seed"] in stated else None
        results.append((now == was, f"results.md main job, seed {row['seed']}: least self-play, cross-play, "
                                    f"conventions {', '.join(now)} (stated: {', '.join(was or ['no row'])})"))
    stated = {(r[0], r[1]): r for r in markdown_rows(text, "## Diversity methods")}
    for line in table([r for r in main_rows if r["seed"] <= 2] + more).splitlines()[2:]:
        now = cells(line)
        was = stated.get((now[0], now[1]))
        ok = was is not None and was[:-1] == now[:-1]  # every column but the train time
        results.append((ok, f"results.md diversity methods, {now[0]} {now[1]}: " + (
            "as stated" if ok else f"rebuilt {' | '.join(now[:-1])}; stated {' | '.join(was[:-1]) if was else 'no row'}")))
    return results


def main() -> None:
    from adhoc.paths import unique_default

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["populations", "results"], help="one of the two checks (default both)")
    ap.add_argument("--out", type=Path, help="where the rebuilt runs go (default runs/rebuild-<time>; an earlier "
                                             "output folder is reused: what is complete there is not rebuilt)")
    ap.add_argument("--write", action="store_true",
                    help="build the populations of populations/README.md whose folder is absent into populations/")
    args = ap.parse_args()
    out = args.out or unique_default("rebuild")
    results = []
    if args.only != "results":
        results += check_populations(out, args.write)
    if args.only != "populations" and not args.write:
        results += check_results(out)
    for ok, line in results:
        print(("ok    " if ok else "DIFF  ") + line)
    bad = sum(not ok for ok, _ in results)
    print(f"\n{len(results) - bad} of {len(results)} match" + ("" if args.write else f" (rebuilt in {out})"))
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    from adhoc.errors import run_script

    run_script("rebuild_shipped", main)
