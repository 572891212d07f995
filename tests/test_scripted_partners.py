"""Scripted teachers as partners (``partners=scripted:<game>[:a,b]``): the learner trains against them in
the seat they leave free, the manifest records them, evaluate reports one row per teacher, and bad specs are
one line with exit code 2."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli import tree_digest as digest
from test_crossplay import forced_population
from test_learner import expect_user_error

from adhoc.cli import main
from adhoc.config import load_learner_config
from adhoc.games import make_game
from adhoc.recipes.evaluate import evaluate, evaluation_metrics
from adhoc.psro import draw_training_pairs
from adhoc.recipes.train_learner import train_learner

ROOT = Path(__file__).parent.parent
CONFIG = ROOT / "configs/warehouse-learner.yaml"
# the smallest warehouse (3x3, one move, one episode); 30 iterations move the direct teacher's robot from
# random play (~0.56) to ~0.70-0.77 on every seed tried (0-3)
FAST = ["train.epochs=1", "train.iterations_per_epoch=30", "train.episodes=128", "train.eval_episodes=256"]
TEACHERS = ["direct", "direct-swap", "direct-mirror", "direct-rotate",
            "ground", "ground-swap", "ground-mirror", "ground-rotate"]


def test_one_seat_partners_get_the_learner_in_the_other_seat():
    sigma = np.array([0.5, 0.5])
    pairs, groups = draw_training_pairs(sigma, 400, learner=7, rng=np.random.default_rng(0),
                                        partner_ids=torch.tensor([3, 9]), partner_seats=[(0, 1), (1,)])
    partner = torch.where(pairs[:, 0] == 7, pairs[:, 1], pairs[:, 0])
    assert set(partner.tolist()) == {3, 9}
    assert bool((pairs[partner == 9] == torch.tensor([7, 9])).all())  # the teacher always in seat 1
    both = pairs[partner == 3]
    assert 0 < int((both[:, 0] == 7).sum()) < len(both)  # a two-seat partner still gets both seatings
    assert torch.equal(groups, (pairs[:, 1] == 7).long() * 2 + (partner == 9).long())


@pytest.fixture(scope="module")
def learner(tmp_path_factory):
    config = load_learner_config(CONFIG, ["partners=scripted:warehouse:direct", *FAST])
    return train_learner(config, out=tmp_path_factory.mktemp("runs") / "learner", progress=False)


def test_learner_learns_to_follow_the_direct_teacher(learner):
    info = learner.manifest["learner"]
    assert info["partners"] == [{"scripted": "scripted:warehouse:direct", "label": "scripted-warehouse",
                                 "method": "scripted", "members": ["direct"], "seats": [[1]]}]
    assert info["partner_names"] == ["scripted-warehouse/direct"] and info["partner_self_play"] == [None]
    assert all(h["regret_mean"] is None and h["regret_max"] is None for h in info["history"])
    assert learner.manifest["game"]["name"] == "warehouse" and learner.names[0] == "learner"
    before, after = info["matrix"][0][0], info["matrix"][-1][0]
    assert before < 0.62 and after > before + 0.08, (before, after)
    # an independent evaluation agrees: the robot (seat 0 only) follows the teacher better than it did at first
    now = evaluate(learner.path, ["scripted:warehouse:direct"], episodes=256).metrics["per_partner"][0]
    start = evaluate(learner.path, ["scripted:warehouse:direct"], member="learner-epoch-00",
                     episodes=256).metrics["per_partner"][0]
    assert now["return_seat1"] is None and now["self_play"] is None and now["regret"] is None
    assert now["return"] == now["return_seat0"] and now["return"] > start["return"] + 0.08


def test_evaluate_reports_one_row_per_teacher(learner, capsys, tmp_path):
    out = tmp_path / "evaluation"
    assert main(["evaluate", str(learner.path), "--partners", "scripted:warehouse", "--episodes", "32",
                 "--out", str(out)]) == 0
    text = (out / "evaluation.json").read_text()
    assert "NaN" not in text  # strict JSON: entries that were not played are null
    data = json.loads(text)
    assert [p["partner"] for p in data["per_partner"]] == [f"scripted-warehouse/{t}" for t in TEACHERS]
    assert data["mean_regret"] is None and data["max_regret"] is None and data["ci95"]["mean_regret"] is None
    returns = [p["return"] for p in data["per_partner"]]
    assert data["mean_return"] == pytest.approx(np.mean(returns), abs=1e-3) and min(returns) == data["worst_return"]
    assert "| scripted-warehouse/ground-rotate |" in (out / "report.md").read_text()
    assert (out / "returns.png").read_bytes()[:4] == b"\x89PNG"
    assert "scripted-warehouse/direct-swap" in capsys.readouterr().out


def test_population_and_scripted_partners_mix(learner, tmp_path):
    """The learner population above (5 LoRA members, warehouse) as partners next to two scripted teachers:
    LoRA partners play both seats and have a self-play return; the teachers play seat 1 only."""
    config = load_learner_config(CONFIG, [f"partners={learner.path}", "partners=scripted:warehouse:direct,ground",
                                          "solver=minimax_regret", "train.epochs=2", "train.iterations_per_epoch=2",
                                          "train.episodes=32", "train.eval_episodes=16"])
    pop = train_learner(config, out=tmp_path / "mixed", progress=False)
    info = pop.manifest["learner"]
    assert info["partner_names"][-2:] == ["scripted-warehouse/direct", "scripted-warehouse/ground"]
    assert len(info["partner_names"]) == len(learner.names) + 2
    sp = info["partner_self_play"]
    assert all(v is not None for v in sp[:-2]) and sp[-2:] == [None, None]
    assert np.asarray(info["matrix"]).shape == (3, len(sp)) and np.isfinite(np.asarray(info["matrix"])).all()
    assert all(h["regret_max"] is not None for h in info["history"])  # over the LoRA partners
    assert sum(info["history"][1]["meta_strategy"]) == pytest.approx(1.0, abs=1e-6)
    result = evaluate(pop.path, [str(learner.path), "scripted:warehouse:ground-rotate"], episodes=8)
    rows = result.metrics["per_partner"]
    assert len(rows) == len(learner.names) + 1 and rows[-1]["self_play"] is None
    assert all(r["return_seat1"] is not None and r["regret"] is not None for r in rows[:-1])


def test_evaluate_reports_the_payoff_of_each_episode_of_an_interaction(tmp_path, capsys):
    game = make_game("warehouse", moves=1, episodes=2)
    rewards = torch.tensor([[0.0, 0.3, 0.0, 0.45]])  # teacher turn, robot move (episode 1 ends), again
    assert game.episode_payoffs(rewards)[0].tolist() == pytest.approx([0.6, 0.9])
    agent = forced_population(tmp_path / "agent", game, "warehouse", [4])  # a robot that always stays
    per = evaluate(agent, ["scripted:warehouse:direct"], episodes=64).metrics["per_partner"][0]
    assert len(per["episode_payoffs"]) == 2 and np.mean(per["episode_payoffs"]) == pytest.approx(per["return"], abs=1e-3)
    assert main(["evaluate", str(agent), "--partners", "scripted:warehouse:direct", "--episodes", "8",
                 "--out", str(tmp_path / "ev")]) == 0
    assert "episode 1 → K" in capsys.readouterr().out
    assert "episode 1 → K of the interaction" in (tmp_path / "ev" / "report.md").read_text()
    one = evaluate(forced_population(tmp_path / "one", make_game("warehouse", moves=1, episodes=1), "warehouse", [4]),
                   ["scripted:warehouse:direct"], episodes=8).metrics["per_partner"][0]
    assert "episode_payoffs" not in one  # a single episode: no curve


def test_evaluation_metrics_skip_what_was_not_played():
    returns = np.ones((2, 3, 4))
    returns[0] *= 0.5
    returns[1, 1:] = np.nan  # a one-seat partner: agent in seat 0 only, no self-play
    m = evaluation_metrics(returns, ["pop/a", "scripted/b"], n_boot=50)
    assert m["per_partner"][1]["return"] == 1.0 and m["per_partner"][1]["regret"] is None
    assert m["mean_return"] == 0.75 and m["mean_regret"] == 0.0 and m["max_regret"] == 0.0


def test_bad_scripted_specs_exit_2_and_write_nothing(learner, tmp_path, capsys):
    no_game = tmp_path / "no-game.yaml"
    no_game.write_text("\n".join(CONFIG.read_text().splitlines()[:1] + ["partners: []", "learner: {name: l}", ""]))
    out = tmp_path / "out"
    before = digest(learner.path)
    train = ["train-learner", str(CONFIG), "--out", str(out)]
    for argv, match in [
        (train + ["partners=scripted:warehouse:bogus"], "unknown scripted strategy 'bogus' (allowed: direct, "
                                                        "direct-swap, direct-mirror, direct-rotate, ground,"),
        (train + ["partners=scripted:lever"], "scripted strategies of game 'lever' cannot play game 'warehouse'"),
        (train + ["partners=scripted:warehouse:direct,direct"], "a strategy is named twice"),
        (train + ["partners=scripted:warehouse", "game.labels=[a,b,c]"], "need at least 4 labels"),
        (["train-learner", str(ROOT / "configs/lever-learner.yaml"), "partners=scripted:lever", "--out", str(out)],
         "game 'lever' has no scripted strategies"),
        (["train-learner", str(no_game), "partners=scripted:warehouse", "--out", str(out)],
         "take their game from the learner config's game section"),
        (train + [f"partners={learner.path}", "partners=scripted:warehouse", "model.lora_rank=8"],
         "model.lora_rank=8 but the partner populations' adapters have rank 4"),
        (["evaluate", str(learner.path), "--partners", "scripted:warehouse:nope"], "unknown scripted strategy 'nope'"),
        (["evaluate", str(learner.path), "--partners", "scripted:cmg-h"], "cannot play game 'warehouse'"),
    ]:
        expect_user_error(argv, capsys, match)
    assert not out.exists() and not any(p.name.endswith(".partial") for p in tmp_path.iterdir())
    assert digest(learner.path) == before


def test_same_game_ignores_only_the_training_schedule():
    """Overcooked's shaped rewards (``TRAINING_SCHEDULE``) schedule training and leave the game as it is: games
    that differ only in them are the same; any other parameter makes another game, and is the one named."""
    from adhoc.partners import describe_game_difference, game_itself, same_game

    plain = {"name": "overcooked", "layout": "cramped_room", "horizon": 400}
    shaped = plain | {"shaping": 1.0, "shaping_horizon": 12800}
    assert same_game(shaped, plain) and game_itself(shaped) == plain
    assert not same_game(shaped, plain | {"horizon": 20})
    assert describe_game_difference(shaped, plain | {"horizon": 20}) == "overcooked with horizon=400, not horizon=20"
    assert not same_game({"name": "lever", "n_levers": 10}, {"name": "lever", "n_levers": 9})
