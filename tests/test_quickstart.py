"""The README's main job, end to end, against the issue's targets (slow: run with -m slow). The wall-time
target (<= 60 s) is measured by benchmarks/bench_quickstart.py, not asserted here."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_lever_selfplay_quickstart_reaches_targets(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "adhoc.cli", "train-population", str(ROOT / "configs/lever-selfplay.yaml"),
                           "--out", str(tmp_path / "pop"), "--quiet"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = yaml.safe_load((tmp_path / "pop" / "population.yaml").read_text())
    returns = [m["self_play_return"] for m in manifest["members"]]
    assert len(returns) == 8 and min(returns) >= 0.95, returns
