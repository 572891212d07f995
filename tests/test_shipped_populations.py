"""Shipped populations still load on today's code and base model, and still play what they recorded."""

from pathlib import Path

import numpy as np
import pytest

from adhoc.crossplay import crossplay
from adhoc.lm.base import load_base
from adhoc.population import Population

SHIPPED = sorted(p for p in (Path(__file__).parent.parent / "populations").iterdir() if (p / "population.yaml").is_file())


def test_there_is_a_shipped_population():
    assert any(p.name == "lever-selfplay" for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_population_loads_and_reproduces_its_crossplay(path):
    pop = Population.load(path)
    base = load_base(pop.base_model["id"], device="cpu")
    assert base.fingerprint == pop.base_model["fingerprint"]  # the built-in base model has not drifted
    result = crossplay([pop], episodes=64, n_boot=50)
    recorded = np.load(path / "crossplay" / "matrix.npy")
    assert np.allclose(result.matrix, recorded, atol=0.1)
    assert result.metrics["sp_mean"] == pytest.approx(np.diag(recorded).mean(), abs=0.05)
