"""A proxy cloned from the recorded play of one scripted strategy (recorded through the same loop and database
as a person's play) predicts its held-out actions and plays with partners like the strategy itself."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from adhoc.errors import UserError
from adhoc.play import game_of, play_terminal
from adhoc.recipes.train_proxy import train_proxy

ROOT = Path(__file__).parent.parent
CONFIG = str(ROOT / "configs/repeated-lever-selfplay.yaml")  # 10 levers, 4 rounds: the learner config's game
STRATEGY = "scripted:repeated:copy-1"  # opens with lever 1, then plays its partner's previous lever


def record(db: Path, partners: list[int], episodes: int, human: str = STRATEGY) -> None:
    game = game_of(CONFIG, [])
    for k in partners:
        summary = play_terminal(game, f"scripted:repeated:stubborn-{k}", seat=1, episodes=episodes, db=db,
                                human=human, seed=k, write=lambda text: None)
        assert summary["stopped"] is None and len(summary["returns"]) == episodes


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxy")
    db = tmp / "copy.sqlite"
    record(db, list(range(10)), episodes=4)
    pop = train_proxy(db, out=tmp / "proxy", iterations=200, seed=0, progress=False)
    return db, pop


def returns_with(pop_path: Path, agent: str, partners: list[str], episodes: int = 128) -> np.ndarray:
    """Mean return of ``agent`` (the proxy, slot 0, or a scripted spec) in seat 1 with each scripted partner."""
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy
    from adhoc.population import Population
    from adhoc.rollout import episode_returns
    from adhoc.scripted import load_scripted_population, scripted_ids

    pop = Population.load(pop_path)
    game = game_of(CONFIG, [])
    base = load_base(pop.base_model["id"], device="cpu", dtype="float32")
    policy = Policy(base, pop.build_bank(base))
    ids = scripted_ids(policy, load_scripted_population("scripted:repeated:" + ",".join(partners), game))
    me = torch.zeros_like(ids) if agent == "proxy" else scripted_ids(policy, load_scripted_population(agent, game)).repeat(len(ids))
    return episode_returns(game, policy, torch.stack([ids, me], 1), episodes, np.random.default_rng(0)).mean(1).numpy()


def test_proxy_predicts_held_out_actions(proxy):
    db, pop = proxy
    manifest = yaml.safe_load((pop.path / "population.yaml").read_text())
    assert manifest["method"]["name"] == "behaviour-cloning" and manifest["game"]["name"] == "repeated"
    assert pop.names == ["proxy-scripted-copy-1"]
    held = manifest["proxy"]["heldout"]
    # 40 episodes of 4 decisions, 20% of the episodes held out
    assert held["decisions"] == 32 and manifest["proxy"]["train"]["decisions"] == 128
    assert held["accuracy"] >= 0.95 and held["loglik"] > -0.2 > held["uniform_loglik"]
    assert pop.members[0]["heldout"] == held


def test_proxy_plays_like_the_strategy(proxy):
    _, pop = proxy
    partners = [f"stubborn-{k}" for k in range(10)]
    cloned = returns_with(pop.path, "proxy", partners)
    original = returns_with(pop.path, STRATEGY, partners)
    assert original.mean() == pytest.approx(0.7675, abs=1e-6)  # 0.675 with stubborn-0, 1.0 with stubborn-1, else 0.75
    assert np.abs(cloned - original).max() <= 0.05, (cloned, original)


def test_proxy_is_a_population_everywhere(proxy, tmp_path):
    _, pop = proxy
    out = tmp_path / "eval"
    proc = subprocess.run([sys.executable, "-m", "adhoc.cli", "evaluate", str(pop.path), "--partners",
                           "scripted:repeated:stubborn-2,stubborn-7", "--seat", "1", "--episodes", "32", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "evaluation.json").read_text())
    assert result["mean_return"] == pytest.approx(0.75, abs=0.05)
    from adhoc.config import load_learner_config
    from adhoc.partners import load_partners

    config = load_learner_config(ROOT / "configs/repeated-lever-learner.yaml", [f"partners={pop.path}"])
    partners = load_partners(config.partners, game=pop.game)
    assert partners.names == [f"proxy/proxy-scripted-copy-1"]


def test_one_member_per_participant_or_pooled(proxy, tmp_path, capsys):
    db, _ = proxy
    record(db, [3], episodes=2, human="scripted:repeated:copy-5")  # a second participant
    per = train_proxy(db, out=tmp_path / "per", iterations=2, progress=False)
    assert per.names == ["proxy-scripted-copy-1", "proxy-scripted-copy-5"]
    assert [m["participant"] for m in per.members] == ["scripted-copy-1", "scripted-copy-5"]
    assert per.members[1]["heldout"]["decisions"] == 4 and per.members[1]["train"]["decisions"] == 4
    pooled = train_proxy(db, out=tmp_path / "pooled", pooled=True, iterations=2, progress=False)
    assert pooled.names == ["proxy-pooled"]
    assert pooled.manifest["proxy"]["participants"] == ["scripted-copy-1", "scripted-copy-5"]
    from adhoc.cli import main

    assert main(["populations", "ls", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["population", "game", "method", "size", "base"]
    assert [line.split()[1:5] for line in out[1:]] == [["repeated", "behaviour-cloning", "2", "builtin:tiny"],
                                                       ["repeated", "behaviour-cloning", "1", "builtin:tiny"]]


def test_bad_inputs(proxy, tmp_path):
    db, _ = proxy
    with pytest.raises(UserError, match="already exists"):
        train_proxy(db, out=db.parent / "proxy", iterations=1, progress=False)
    with pytest.raises(UserError, match="no steps of game lever"):
        train_proxy(db, out=tmp_path / "p", game_name="lever", iterations=1, progress=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 0}\n')
    proc = subprocess.run([sys.executable, "-m", "adhoc.cli", "train-proxy", str(bad), "--out", str(tmp_path / "p")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "line 1: a step record lacks" in proc.stderr and not (tmp_path / "p").exists()


@pytest.mark.slow
def test_proxy_plays_with_a_learner_like_the_strategy(tmp_path):
    """The study loop end to end (about 2 minutes): a learner trained with stubborn partners; copy-1 recorded with
    stubborn partners and with that learner; its clone and copy-1 itself, each with the learner."""
    from adhoc.cli import main

    learner = tmp_path / "learner"
    # the settings docs/people.md measured with (the config's lr 0.003 and entropy floor came later)
    assert main(["train-learner", str(ROOT / "configs/repeated-lever-learner.yaml"), "train.epochs=1",
                 "train.iterations_per_epoch=150", "train.lr=0.01", "train.entropy_coef_end=0",
                 "--out", str(learner), "--quiet"]) == 0
    db = tmp_path / "copy.sqlite"
    record(db, list(range(10)), episodes=4)
    summary = play_terminal(game_of(CONFIG, []), f"{learner}:learner", seat=1, episodes=20, db=db, human=STRATEGY,
                            seed=11, write=lambda text: None)
    assert len(summary["returns"]) == 20
    pop = train_proxy(db, out=tmp_path / "proxy", iterations=200, progress=False)
    assert pop.manifest["proxy"]["heldout"]["accuracy"] >= 0.95
    out = tmp_path / "eval"
    assert main(["evaluate", str(learner), "--partners", str(pop.path), "--partners", STRATEGY, "--seat", "0",
                 "--episodes", "512", "--out", str(out)]) == 0
    cloned, original = json.loads((out / "evaluation.json").read_text())["per_partner"]
    assert abs(cloned["return"] - original["return"]) <= 0.04, (cloned, original)
