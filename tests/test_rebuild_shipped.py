"""scripts/rebuild_shipped.py: the shipped populations and docs/results.md's lever rows against what their stated
commands build today. The fast tests check its parsing and comparison; the slow one runs it whole."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "scripts" / "rebuild_shipped.py"


@pytest.fixture(scope="module")
def script():
    return load_script("rebuild_shipped")


def test_every_shipped_population_has_its_command(script):
    commands = script.shipped_commands((ROOT / "populations" / "README.md").read_text())
    shipped = {p.name for p in (ROOT / "populations").iterdir() if (p / "population.yaml").is_file()}
    assert set(commands) == shipped
    assert all((ROOT / config).is_file() for config in commands.values())


def test_the_results_tables_parse(script):
    text = (ROOT / "docs" / "results.md").read_text()
    main_job = script.markdown_rows(text, "## Main job")
    assert [r[0] for r in main_job] == ["0", "1", "2", "3", "4"] and all(len(r) == 7 for r in main_job)
    diversity = {(r[0], r[1]) for r in script.markdown_rows(text, "## Diversity methods")}
    assert {("lever", m) for m in ("selfplay", "otherplay", "trajedi", "lipo")} <= diversity


def test_a_population_matches_itself_and_not_one_whose_member_moved(script, tmp_path):
    shipped = ROOT / "populations" / "lever-selfplay"
    ok, line = script.compare_populations(shipped, shipped)
    assert ok and "conventions the same" in line and "byte-identical" in line and "not byte" not in line
    moved = tmp_path / "moved"
    shutil.copytree(shipped, moved)
    report = json.loads((moved / "crossplay" / "crossplay.json").read_text())
    first = next(iter(report["member_conventions"].values()))
    first["convention"] = (first["convention"] + 1) % 10
    (moved / "crossplay" / "crossplay.json").write_text(json.dumps(report))
    ok, line = script.compare_populations(shipped, moved)
    assert not ok and "shipped" in line and "rebuilt" in line


@pytest.mark.slow
def test_the_shipped_populations_and_results_rows_are_what_their_commands_build(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "rebuild")], capture_output=True,
                         text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "DIFF" not in run.stdout and " match" in run.stdout
