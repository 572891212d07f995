"""Warnings where a result is suspect (adhoc/diagnostics.py): the rules by hand, then wired into the manifests
and summaries of train-population, train-learner and populations show."""

import numpy as np
import pytest
import yaml

from adhoc.cli import main
from adhoc.diagnostics import chance_return, member_warnings, mixture_warning, proxy_warning
from adhoc.games import build_game, make_game


@pytest.mark.parametrize("game,expected", [
    (make_game("lever"), (9 * 1.0 + 0.9) / 100),  # both pick the same lever: 1/10 of the time
    (build_game({"name": "matrix", "payoff": [[1, 0], [0, 1]]}), 0.5),
    (build_game({"name": "matrix", "payoff": [[1, 0, 0], [0, 1, 0], [0, 0, 4]]}), 6 / 9),
])
def test_chance_return_is_uniform_play(game, expected):
    mean, top = chance_return(game, episodes=8192)
    assert mean == pytest.approx(expected, abs=0.05)  # 8192 episodes: the 3x3 game's standard error is 0.014
    assert top == pytest.approx(max(max(r) for r in game.params().get("payoff", [[1.0]])), abs=1e-6)


def test_chance_return_leaves_no_trace_and_repeats():
    game = make_game("repeated", stage="lever", rounds=3)
    assert chance_return(game, episodes=256, seed=3) == chance_return(game, episodes=256, seed=3)


def test_member_warnings_near_chance_and_far_below():
    names = ["a", "b", "c", "d"]
    # chance 0.1, scale 1: near chance is <= 0.2; far below is < 0.1 + 0.5 * (1.0 - 0.1) = 0.55
    out = member_warnings(names, [1.0, 0.9, 0.4, 0.15], chance=0.1, scale=1.0)
    assert len(out) == 2
    assert out[0].startswith("1 of 4 members (d 0.150) play near chance")
    assert out[1].startswith("1 of 4 members (c 0.400) are far below the population's best self-play return (1.000")
    assert member_warnings(names, [1.0, 0.9, 0.6, 1.0], chance=0.1, scale=1.0) == []
    # all at chance: one line, and nobody is "far below" a best that is itself at chance
    out = member_warnings(["x", "y"], [0.088, 0.095], chance=0.099, scale=0.75)
    assert out == ["2 of 2 members (x 0.088, y 0.095) play near chance in self-play (0.099 for two uniformly "
                   "random players): they learnt no convention; train longer or check train.lr"]


def test_proxy_and_mixture_warnings():
    assert "worse than uniform (log-likelihood -15.000 per decision against -2.300)" in proxy_warning("p", -15.0, -2.3)
    assert proxy_warning("p", -1.0, -2.3) is None
    M = np.array([[0.1, 0.1], [1.0, 0.0], [0.0, 1.0]])  # the untrained snapshot is the only one without a 0
    text = mixture_warning({"l-epoch-00": 0.905, "l": 0.095}, "l-epoch-00", M)
    assert text.startswith("the mixture puts 0.905 on l-epoch-00, the untrained snapshot: its worst-case return "
                           "with the partners (0.100) is as good as any trained snapshot's (best 0.000)")
    assert mixture_warning({"l-epoch-00": 0.3, "l": 0.7}, "l-epoch-00", M) is None


def test_untrained_population_is_flagged_in_manifest_and_show(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["train-population", "configs/lever-selfplay.yaml", "train.iterations=1", "population.size=2",
                 "--out", str(out), "--quiet", "--crossplay-episodes", "0"]) == 0
    warnings = yaml.safe_load((out / "population.yaml").read_text())["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("2 of 2 members (member-00 ")
    capsys.readouterr()
    assert main(["populations", "show", str(out)]) == 0
    assert "warning: 2 of 2 members (member-00 " in capsys.readouterr().out


def test_learner_mixture_warning_matches_its_weights(tmp_path, capsys):
    out = tmp_path / "l"
    assert main(["train-learner", "configs/lever-learner.yaml", "partners=populations/lever-selfplay",
                 "solver=maximin", "train.epochs=2", "train.iterations_per_epoch=4", "train.episodes=64",
                 "train.eval_episodes=32", "--out", str(out), "--quiet"]) == 0
    manifest = yaml.safe_load((out / "population.yaml").read_text())
    rests = manifest["mixture"].get("learner-epoch-00", 0.0) >= 0.5
    assert bool(manifest.get("warnings")) == rests
    printed = capsys.readouterr().out
    assert ("warning: the mixture puts" in printed) == rests
