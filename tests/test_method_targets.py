"""Slow end-to-end checks of the diversity methods' published behaviour (issue targets), run in CI with
``-m slow``: each trains a population of 8 from its shipped config exactly as ``scripts/reproduce.py`` does."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _train_and_crossplay(tmp_path, config_name: str, seed: int = 0):
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from reproduce import run_one
    finally:
        sys.path.pop(0)
    return run_one(config_name, seed, tmp_path, episodes=64)


@pytest.mark.slow
def test_otherplay_lever_population_coordinates_on_the_unique_lever(tmp_path):
    row = _train_and_crossplay(tmp_path, "lever-otherplay")
    assert row["xp"] >= 0.85
    assert row["on_unique_lever"] == 8  # every member puts >= 0.9 of its probability on the 0.9 lever


@pytest.mark.slow
def test_lipo_discovers_at_least_seven_cmg_h_conventions(tmp_path):
    row = _train_and_crossplay(tmp_path, "cmg-h-lipo")
    assert row["conventions"] >= 7 and row["sp"] >= 0.95
