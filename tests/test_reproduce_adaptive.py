"""The pure parts of scripts/reproduce_adaptive.py: the symmetry orbits of conventions (what "covered" means
under augmentation), the closed form of "open, then copy" with stubborn partners, and the t-intervals."""

import numpy as np
import pytest
from conftest import load_script

from adhoc.games import make_game


@pytest.fixture(scope="module")
def script():
    return load_script("reproduce_adaptive")


def test_lever_orbits_join_levers_1_to_9_and_leave_lever_0_alone(script):
    orbits = script.convention_orbits(make_game("repeated", stage="lever", rounds=4))
    assert orbits[0] == {0}
    assert all(orbits[a] == set(range(1, 10)) for a in range(1, 10))


def test_cmg_h_blocks_are_each_their_own_orbit(script):
    game = make_game("repeated", stage="cmg-h", rounds=4)
    orbits = script.convention_orbits(game)
    assert sorted(orbits) == list(range(32))  # every block is a convention
    assert all(orbits[b] == {b} for b in range(32))


def test_cmg_s_blocks_of_equal_size_share_one_orbit(script):
    orbits = script.convention_orbits(make_game("repeated", stage="cmg-s", rounds=2))
    assert all(orbits[b] == set(range(32)) for b in range(32))


def test_open_then_copy_closed_form(script):
    # lever 0 pays 0.9, the others 1.0: opening on 3 wins round 1 with one partner in three, copying wins the
    # other rounds with all of them
    assert script.bound([3, 5, 0]) == pytest.approx(3 / 4 * (1 + 1 + 0.9) / 3 + 1 / 4 * 1 / 3)
    assert script.bound([0, 0, 5]) == pytest.approx(3 / 4 * (0.9 + 0.9 + 1) / 3 + 1 / 4 * 0.9 * 2 / 3)


def test_ci_is_the_t_interval(script):
    assert script.ci([0.5]) == "0.500"
    v = np.array([0.1, 0.2, 0.6])
    assert script.ci(list(v)) == f"{v.mean():.3f} ± {4.30 * v.std(ddof=1) / np.sqrt(3):.3f}"
