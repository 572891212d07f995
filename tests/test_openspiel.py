"""The OpenSpiel bridge (``game=openspiel``): checked against OpenSpiel itself, never against our own numbers."""

import io
import itertools
import json
import sqlite3
import sys

import numpy as np
import pytest
import torch
import yaml

pyspiel = pytest.importorskip("pyspiel")

from adhoc.cli import main  # noqa: E402
from adhoc.games import GameError, make_game  # noqa: E402
from adhoc.games.core import SEATS  # noqa: E402
from adhoc.games.openspiel import action_strings  # noqa: E402
from adhoc.rollout import rollout  # noqa: E402
from test_rollout_rows import make_policy  # noqa: E402

HANABI_SMALL = "hanabi(players=2,colors=2,ranks=2,hand_size=2,max_information_tokens=3,max_life_tokens=1)"
HANABI_3 = "hanabi(players=2,colors=3,ranks=2,hand_size=2,max_information_tokens=3,max_life_tokens=2)"


def play(game, policy_fn, n, seed=0):
    """Returns [n] of the batched game with ``policy_fn(observation, legal actions) -> action`` in both seats."""
    state = game.reset(n, np.random.default_rng(seed))
    total = torch.zeros(n)
    while not bool(state.done.all()):
        joint = []
        for s in SEATS:
            obs, legal = game.observe(state, s), game.legal_mask(state, s)
            joint.append([policy_fn(o, torch.nonzero(m)[:, 0].tolist()) if m.sum() > 1 else int(m.float().argmax())
                          for o, m in zip(obs, legal)])
        state, reward, _ = game.step(state, torch.tensor(joint).T)
        total += reward
    return total


def best_joint_value(game_string):
    """The best deterministic joint policy's expected return, by enumeration in OpenSpiel alone."""
    game = pyspiel.load_game(game_string)
    infos = {0: set(), 1: set()}

    def walk(s):
        if s.is_terminal():
            return
        if not s.is_chance_node():
            infos[s.current_player()].add(s.information_state_string(s.current_player()))
        for a in (o for o, _ in s.chance_outcomes()) if s.is_chance_node() else s.legal_actions():
            walk(s.child(a))

    def value(policy, s):
        if s.is_terminal():
            return s.returns()[0]
        if s.is_chance_node():
            return sum(p * value(policy, s.child(o)) for o, p in s.chance_outcomes())
        return value(policy, s.child(policy[s.information_state_string(s.current_player())]))

    walk(game.new_initial_state())
    keys = sorted(infos[0]) + sorted(infos[1])
    n = game.num_distinct_actions()
    best = max(itertools.product(range(n), repeat=len(keys)),
               key=lambda c: value(dict(zip(keys, c)), game.new_initial_state()))
    return value(dict(zip(keys, best)), game.new_initial_state()), dict(zip(keys, best))


def test_tiny_hanabi_best_joint_policy_through_the_bridge_scores_openspiels_optimum():
    optimum, policy = best_joint_value("tiny_hanabi")
    assert optimum == 10.0  # tiny_hanabi's payoff table tops out at 10, and the optimum reaches it in every deal
    game = make_game("openspiel", game="tiny_hanabi")
    assert game.horizon == 2 and game.action_names(0) == ["p0a0", "p0a1", "p0a2"]
    returns = play(game, lambda obs, legal: policy[obs], 400)
    assert returns.mean().item() == optimum
    random_returns = play(game, lambda obs, legal: legal[hash(obs) % len(legal)], 400)
    assert random_returns.mean().item() < optimum


def test_chance_follows_the_games_distribution_and_is_reproducible():
    game = make_game("openspiel", game=HANABI_SMALL)
    first = pyspiel.load_game(HANABI_SMALL).new_initial_state()
    probs = dict(first.chance_outcomes())  # the first card dealt
    state = game.reset(4000, np.random.default_rng(5))
    dealt = np.array([s.history()[0] for s in state.extra["states"]])
    freq = np.bincount(dealt, minlength=len(probs)) / len(dealt)
    assert np.abs(freq - np.array([probs[o] for o in range(len(probs))])).max() < 0.03
    again = game.reset(4000, np.random.default_rng(5))
    assert [s.history() for s in again.extra["states"]] == [s.history() for s in state.extra["states"]]


def test_rewards_add_up_to_openspiels_returns_and_masks_are_its_legal_actions():
    game = make_game("openspiel", game=HANABI_SMALL)
    state = game.reset(32, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    total = torch.zeros(32)
    while not bool(state.done.all()):
        for e, s in enumerate(state.extra["states"]):
            for seat in SEATS:
                legal = torch.nonzero(game.legal_mask(state, seat)[e])[:, 0].tolist()
                mover = not s.is_terminal() and s.current_player() == seat
                assert legal == (s.legal_actions(seat) if mover else [0])
        joint = torch.stack([torch.multinomial(game.legal_mask(state, s).float(), 1, generator=torch.Generator()
                                               .manual_seed(int(rng.integers(1 << 30))))[:, 0] for s in SEATS], 1)
        state, reward, done = game.step(state, joint)
        total += reward
    assert torch.equal(total, torch.tensor([s.returns()[0] for s in state.extra["states"]], dtype=torch.float32))
    assert total.min() >= 0 and total.max() <= 4


def test_transcripts_are_append_only_and_end_with_the_current_view():
    game = make_game("openspiel", game=HANABI_SMALL, transcript=True)
    plain = make_game("openspiel", game=HANABI_SMALL)
    state = game.reset(8, np.random.default_rng(0))
    before = [game.observe(state, s) for s in SEATS]
    while not bool(state.done.all()):
        joint = torch.tensor([[int(torch.nonzero(game.legal_mask(state, s)[e])[0]) for s in SEATS] for e in range(8)])
        state, _, _ = game.step(state, joint)
        now = [game.observe(state, s) for s in SEATS]
        for s in SEATS:
            for e in range(8):
                assert now[s][e].startswith(before[s][e])
                ps = state.extra["states"][e]
                if not ps.is_terminal() and ps.current_player() == s:
                    assert now[s][e].endswith(plain.observe(state, s)[e])
        before = now


def test_hanabi_colour_permutation_maps_observations_legal_actions_and_returns():
    """Play a game, then the same game with the colours permuted by σ (deals and hints mapped): the permuted
    game's observations are the original's relabelled by σ, its legal actions the original's mapped, its
    returns the same."""
    game = make_game("openspiel", game=HANABI_3)
    colours = game._group
    group = game.symmetries()
    assert group.order() == 6
    raw = pyspiel.load_game(HANABI_3)
    deal_names = {raw.new_initial_state().action_to_string(-1, o): o for o, _ in raw.new_initial_state().chance_outcomes()}
    rng = np.random.default_rng(0)
    for sigma in itertools.permutations(range(3)):
        amap = colours.action_map(sigma, len(game.action_names(0)))
        assert group.contains((amap, amap)) and colours.colour_map(amap) == list(sigma)
        a, b = raw.new_initial_state(), raw.new_initial_state()
        while not a.is_terminal():
            if a.is_chance_node():
                o = int(rng.choice([o for o, _ in a.chance_outcomes()], p=[p for _, p in a.chance_outcomes()]))
                a_name = a.action_to_string(-1, o)
                a.apply_action(o)
                b.apply_action(deal_names[colours.relabel_text(a_name, list(sigma))])
                continue
            p = a.current_player()
            assert b.current_player() == p
            assert b.observation_string(p) == colours.relabel_text(a.observation_string(p), list(sigma))
            assert b.observation_string(1 - p) == colours.relabel_text(a.observation_string(1 - p), list(sigma))
            assert sorted(b.legal_actions()) == sorted(int(amap[x]) for x in a.legal_actions())
            move = int(rng.choice(a.legal_actions()))
            a.apply_action(move)
            b.apply_action(int(amap[move]))
        assert b.returns() == a.returns()
        text = "Fireworks: R1 Y0 G2 \nXX || RX|RG12\n(Reveal player +1 color G)"
        assert colours.relabel_text(colours.relabel_text(text, list(sigma)), list(sigma), inverse=True) == text


def test_otherplay_shows_the_partner_its_own_colours():
    game = make_game("openspiel", game=HANABI_SMALL, transcript=True)
    swap = game._group.action_map((1, 0), 8)
    state = game.reset(2, np.random.default_rng(0))
    hints = [[a for a in s.legal_actions(0) if "color" in game.action_names(0)[a]][0] for s in state.extra["states"]]
    state, _, _ = game.step(state, torch.tensor([[hints[0], 0], [hints[1], 0]]))  # seat 0 hints a colour
    seen = game.relabel_observation(state, 1, torch.tensor(np.stack([swap, np.arange(8)])))
    hinted = game.action_names(0)[hints[0]]
    other = hinted.replace("color R", "color Y") if "color R" in hinted else hinted.replace("color Y", "color R")
    assert f"p0 {hinted}" in game.observe(state, 1)[0] and f"p0 {other}" in seen[0]
    assert seen[0] == game._group.relabel_text(game.observe(state, 1)[0], [1, 0])
    assert seen[1] == game.observe(state, 1)[1]


def test_stepping_a_state_twice_draws_the_same_chance_outcomes():
    game = make_game("openspiel", game=HANABI_3)  # 2 lives: a wrong play does not end the game
    state = game.reset(8, np.random.default_rng(0))
    plays = torch.tensor([[2, 0]] * 8)  # the first player plays its first card: a new card is dealt
    first, second = game.step(state, plays)[0], game.step(state, plays)[0]
    assert [s.history() for s in first.extra["states"]] == [s.history() for s in second.extra["states"]]
    assert all(len(s.history()) > len(o.history()) + 1 for s, o in zip(first.extra["states"], state.extra["states"]))


@pytest.mark.parametrize("transcript", [False, True])
def test_the_shards_together_are_the_unsharded_rollout(transcript):
    game = make_game("openspiel", game=HANABI_SMALL, transcript=transcript)
    policy = make_policy()
    pairs = torch.tensor([[0, 1], [2, 2], [1, 0]])
    whole = rollout(game, policy, pairs, 4, np.random.default_rng(3))
    parts = [rollout(game, policy, pairs, 4, np.random.default_rng(3), shard=(r, 2)) for r in range(2)]
    T = whole.rewards.shape[2]
    pad = [torch.nn.functional.pad(p.rewards, (0, T - p.rewards.shape[2])) for p in parts]
    assert torch.equal(torch.cat(pad), whole.rewards)
    for s in SEATS:
        assert sum((p.observations[0][s] for p in parts), []) == whole.observations[0][s]


def test_prefix_reuse_gives_the_same_scores_on_transcripts():
    game = make_game("openspiel", game=HANABI_SMALL, transcript=True)
    policy = make_policy()
    pairs = torch.tensor([[0, 1], [2, 2]])
    reused = rollout(game, policy, pairs, 3, np.random.default_rng(4), grad=False)
    whole = rollout(game, policy, pairs, 3, np.random.default_rng(4), grad=False, prefix_reuse=False)
    assert torch.equal(reused.actions, whole.actions)
    torch.testing.assert_close(reused.logp, whole.logp, atol=1e-4, rtol=1e-4)


@pytest.mark.usefixtures("text_observations")
@pytest.mark.filterwarnings("ignore:Observation")
@pytest.mark.parametrize("params", [{"game": HANABI_SMALL}, {"game": HANABI_SMALL, "transcript": True},
                                    {"game": "tiny_hanabi"}])
def test_pettingzoo_parallel_and_aec_apis(params):
    from pettingzoo.test import api_test, parallel_api_test

    from adhoc.games.pettingzoo import to_aec_env, to_parallel_env

    parallel_api_test(to_parallel_env(make_game("openspiel", **params)), num_cycles=30)
    api_test(to_aec_env(make_game("openspiel", **params), seed=0), num_cycles=30)


@pytest.mark.parametrize("params, message", [
    ({"game": "no_such_game"}, "OpenSpiel rejects game.game 'no_such_game'"),
    ({"game": "hanabi(players=3)"}, "has 3 players; adhoc's games have exactly 2 seats"),
    ({"game": "tiny_hanabi", "observation": "belief"}, "game.observation must be one of"),
    ({"game": "bridge_uncontested_bidding"}, "samples chance internally"),
    ({"game": "coop_box_pushing", "transcript": True}, "coop_box_pushing's moves are not all public"),
    ({"game": "hanabi(colors=9)"}, "OpenSpiel rejects game.game 'hanabi(colors=9)': Input requirements failed"),
    ({"game": "hanabi(players=2)", "observation": "information_state"}, "provides no information-state string"),
])
def test_bad_games_are_one_line(params, message):
    with pytest.raises(GameError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        make_game("openspiel", **params)
    assert "\n" not in str(info.value)


def test_a_game_openspiel_aborts_on_is_one_line_on_the_command_line():
    """OpenSpiel aborts the process on some parameters and prints every game's name on an unknown one: the CLI
    still says one line and exits 2 (the game is first loaded in a forked child)."""
    import subprocess

    for game in ("hanabi(colors=9)", "no_such_game"):
        code = f"from adhoc.cli import main; raise SystemExit(main(['validate', 'configs/tiny-hanabi-selfplay.yaml', 'game.game={game}']))"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[:500]
        assert f"OpenSpiel rejects game.game '{game}'" in proc.stderr


@pytest.mark.parametrize("game_string", ["matrix_coordination", "coop_box_pushing(horizon=6)", "tiny_bridge_2p"])
def test_simultaneous_and_chance_games_play_and_pay_openspiels_returns(game_string):
    game = make_game("openspiel", game=game_string)
    rng = np.random.default_rng(0)
    state = game.reset(16, rng)
    total = torch.zeros(16)
    while not bool(state.done.all()):
        joint = torch.stack([torch.multinomial(game.legal_mask(state, s).float(), 1, generator=torch.Generator()
                                               .manual_seed(int(rng.integers(1 << 30))))[:, 0] for s in SEATS], 1)
        state, reward, _ = game.step(state, joint)
        total += reward
    assert state.t <= game.horizon
    assert torch.allclose(total, torch.tensor([s.returns()[0] for s in state.extra["states"]], dtype=torch.float32))
    if game_string == "matrix_coordination":  # both choose at once: the payoff table, by OpenSpiel
        raw = pyspiel.load_game(game_string)
        for a, b in itertools.product(range(2), repeat=2):
            s = raw.new_initial_state()
            s.apply_actions([a, b])
            g = make_game("openspiel", game=game_string)
            _, r, d = g.step(g.reset(1, rng), torch.tensor([[a, b]]))
            assert float(r[0]) == s.returns()[0] and bool(d[0])


def test_actions_that_do_not_render_distinctly_are_refused():
    class Same:
        def __init__(self, game):
            self.game = game

        def new_initial_state(self):
            state = self.game.new_initial_state()

            class View:
                def is_chance_node(self):
                    return state.is_chance_node()

                def apply_action(self, a):
                    state.apply_action(a)

                def chance_outcomes(self):
                    return state.chance_outcomes()

                def action_to_string(self, seat, a):
                    return "same"

            return View()

        def num_distinct_actions(self):
            return self.game.num_distinct_actions()

    with pytest.raises(GameError, match="cannot be rendered as distinct strings"):
        action_strings(pyspiel, Same(pyspiel.load_game("tiny_hanabi")), "tiny_hanabi")


def test_without_openspiel_one_line_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspiel", None)
    with pytest.raises(GameError, match=r'needs OpenSpiel, which is not installed: pip install -e "\.\[openspiel\]"'):
        make_game("openspiel", game="tiny_hanabi")


@pytest.mark.parametrize("override, message", [
    ("game.game=bridge_uncontested_bidding", "samples chance internally"),
    ("game.game=hanabi(players=3)", "has 3 players"),
    ("game.game=no_such_game", "OpenSpiel rejects"), ("game.actions=short", "game.actions must be one of")])
def test_cli_refuses_a_bad_game_in_one_line_before_writing(tmp_path, capsys, override, message):
    out = tmp_path / "runs"
    assert main(["train-population", "configs/tiny-hanabi-selfplay.yaml", override, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tiny_population(tmp_path_factory):
    out = tmp_path_factory.mktemp("pop") / "tiny"
    assert main(["train-population", "configs/tiny-hanabi-selfplay.yaml", "train.iterations=2", "population.size=2",
                 "train.eval_episodes=16", "--crossplay-episodes", "0", "--out", str(out)]) == 0
    return out


def test_a_selfplay_population_trains_and_records_the_game(tiny_population):
    manifest = yaml.safe_load((tiny_population / "population.yaml").read_text())
    assert manifest["game"]["name"] == "openspiel" and manifest["game"]["game"] == "tiny_hanabi()"


def test_numbered_actions_are_equal_length_labels_and_people_still_read_openspiels_strings():
    game = make_game("openspiel", game=HANABI_SMALL, transcript=True, actions="numbered")
    named = make_game("openspiel", game=HANABI_SMALL, transcript=True)
    assert game.action_names(0) == [f"a{i}" for i in range(8)] and game.params()["actions"] == "numbered"
    assert "a4 (Reveal player +1 color R)" in game.rules(0) and game.describe_action(0, 2) == "played (Play 0)"
    assert game.symmetries().order() == named.symmetries().order() == 2
    state, other = game.reset(4, np.random.default_rng(0)), named.reset(4, np.random.default_rng(0))
    joint = torch.tensor([[int(torch.nonzero(game.legal_mask(state, 0)[e])[-1]), 0] for e in range(4)])
    state, r1, _ = game.step(state, joint)
    other, r2, _ = named.step(other, joint)
    assert game.observe(state, 1) == named.observe(other, 1) and torch.equal(r1, r2)
    with pytest.raises(GameError, match="game.actions must be one of openspiel, numbered"):
        make_game("openspiel", game=HANABI_SMALL, actions="short")


def test_a_person_plays_hanabi_with_a_member_in_the_browser_study(tiny_population, tmp_path):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from adhoc.play import game_of
    from adhoc.serve import Study, build_app

    game = game_of("configs/tiny-hanabi-selfplay.yaml", [])
    db = tmp_path / "study.sqlite"
    for seat in (0, 1):
        study = Study(game, [str(tiny_population)], db, episodes_per_partner=2, seat=seat, seed=0)
        client = TestClient(build_app(study, "127.0.0.1", 8000), base_url="http://127.0.0.1:8000")
        headers = {"Origin": "http://127.0.0.1:8000"}
        s = client.post("/api/start", json={"participant": f"P{seat}", "consent": True}, headers=headers).json()
        assert "Tiny Hanabi" in json.dumps(s) and f"p{seat}a0" in json.dumps(s)
        moves = 0
        while s["phase"] == "play":
            r = client.post("/api/act", json={"token": s["token"], "episode": s["episode"], "t": s["t"],
                                              "action": s["actions"][-1]["index"]}, headers=headers)
            assert r.status_code == 200, r.text
            s = {**r.json(), "token": s["token"]}
            moves += 1
        assert moves == 2  # one move of the person's per episode, 2 episodes
        study.close()
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    assert rows == 8  # 2 sessions x 2 episodes x 2 moves (the partner's included)


def test_terminal_play_with_a_member(tiny_population, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("0\n2\n1\n"))
    assert main(["play", "configs/tiny-hanabi-selfplay.yaml", "--partner", f"{tiny_population}:member-00",
                 "--episodes", "3", "--db", str(tmp_path / "p.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "You played p0a0." in out and "You played p0a2." in out and "3 complete episodes" in out


@pytest.mark.parametrize("game_string, params", [("tiny_hanabi", {"transcript": True}), (HANABI_SMALL, {})])
def test_a_hugging_face_tokenizer_reads_the_observations_and_actions(tmp_path, game_string, params):
    """A real (byte-level BPE) Hugging Face tokenizer and model, saved locally: every step of a rollout is scored
    (finite log-probabilities over exactly the legal actions), with and without prefix reuse alike."""
    from adhoc.lm.adapters import AdapterBank
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy
    from test_hf_interop import save_tiny_llama

    base = load_base(str(save_tiny_llama(tmp_path / "llama")), device="cpu", dtype="float32")
    bank = AdapterBank(base.model, 2, 2, 4.0, ["q_proj", "v_proj", "lm_head"])
    bank.init_members([0, 1], b_std=0.3)
    policy = Policy(base, bank)
    game = make_game("openspiel", game=game_string, **params)
    pairs = torch.tensor([[0, 1], [1, 0]])
    traj = rollout(game, policy, pairs, 3, np.random.default_rng(0), grad=False)
    again = rollout(game, policy, pairs, 3, np.random.default_rng(0), grad=False, prefix_reuse=False)
    played = traj.alive[..., None].expand_as(traj.logp)
    assert torch.isfinite(traj.logp[played]).all() and (traj.logp[played] <= 0).all()
    assert torch.equal(traj.actions, again.actions)
    torch.testing.assert_close(traj.logp, again.logp, atol=1e-4, rtol=1e-4)


def test_per_step_returns_span_the_horizon_when_every_episode_ends_early():
    """Hanabi games end long before the horizon (a wrong play ends them): per-step rewards still have the
    horizon's width, as ``adhoc evaluate`` stores them, and sum to the returns."""
    from adhoc.rollout import episode_returns

    game = make_game("openspiel", game=HANABI_SMALL)  # untrained members play blindly: short games
    policy = make_policy()
    pairs = torch.tensor([[0, 1], [1, 1]])
    steps = episode_returns(game, policy, pairs, 8, np.random.default_rng(0), per_step=True, max_episodes_per_call=8)
    returns = episode_returns(game, policy, pairs, 8, np.random.default_rng(0), max_episodes_per_call=8)
    assert steps.shape == (2, 8, game.horizon)
    torch.testing.assert_close(steps.sum(-1), returns)


# ---------------------------------------------------------------------- zero-sum and general-sum games
def random_joint(game, state, rng):
    """[E, 2] a uniformly random legal action per seat (the forced one off turn)."""
    return torch.stack([torch.multinomial(game.legal_mask(state, s).float(), 1, generator=torch.Generator()
                                          .manual_seed(int(rng.integers(1 << 30))))[:, 0] for s in SEATS], 1)


@pytest.mark.parametrize("game_string, payoff", [("kuhn_poker", "zero_sum"), ("leduc_poker", "zero_sum"),
                                                 ("tic_tac_toe", "zero_sum"), ("tiny_hanabi", "common"),
                                                 ("matrix_coordination", "common")])
def test_the_payoff_kind_is_openspiels_utility(game_string, payoff):
    from adhoc.games.core import payoff_kind

    game = make_game("openspiel", game=game_string)
    assert payoff_kind(game) == payoff
    rules = game.rules(0)
    if payoff == "zero_sum":
        assert "your gain is your opponent's loss" in rules and "same reward" not in rules
    else:
        assert "both get the same reward" in rules and "opponent" not in rules


def test_kuhn_poker_pays_each_seat_the_change_of_openspiels_returns():
    """Every deal, every betting line: the bridge's per-seat rewards are the steps' changes of OpenSpiel's own
    returns on the same deal and moves, they add up to 0, and the episode's total is ``returns()``."""
    game = make_game("openspiel", game="kuhn_poker")
    raw = pyspiel.load_game("kuhn_poker")
    lines = [[0, 0], [0, 1, 0], [0, 1, 1], [1, 0], [1, 1]]  # pp, pbp, pbb, bp, bb (Pass = 0, Bet = 1)
    state = game.reset(60, np.random.default_rng(0))
    deals = [tuple(s.history()) for s in state.extra["states"]]
    assert len(set(deals)) == 6  # all 6 deals drawn
    for line in lines:
        st, total = state, torch.zeros(60, 2)
        ref = [raw.new_initial_state() for _ in deals]
        for r, deal in zip(ref, deals):
            for o in deal:
                r.apply_action(o)
        for move in line:
            before = torch.tensor([r.returns() for r in ref])
            mover = [r.current_player() for r in ref]
            assert all(m == mover[0] for m in mover)
            joint = torch.tensor([[move, 0] if mover[0] == 0 else [0, move]] * 60)
            st, reward, done = game.step(st, joint)
            for r in ref:
                r.apply_action(move)
            after = torch.tensor([r.returns() for r in ref])
            assert reward.shape == (60, 2) and reward.dtype == torch.float32
            assert torch.equal(reward, (after - before).float())
            assert torch.equal(reward.sum(1), torch.zeros(60))
            total += reward
        assert bool(done.all()) and all(r.is_terminal() for r in ref)
        assert torch.equal(total, torch.tensor([s.returns() for s in st.extra["states"]], dtype=torch.float32))
        assert (total.abs() > 0).all()  # poker always pays someone


def test_leduc_poker_random_play_pays_openspiels_returns_per_seat():
    game = make_game("openspiel", game="leduc_poker")
    rng = np.random.default_rng(1)
    state = game.reset(64, rng)
    total = torch.zeros(64, 2)
    while not bool(state.done.all()):
        state, reward, _ = game.step(state, random_joint(game, state, rng))
        assert torch.equal(reward.sum(1), torch.zeros(64))
        total += reward
    assert torch.equal(total, torch.tensor([s.returns() for s in state.extra["states"]], dtype=torch.float32))
    assert (total[:, 0] > 0).any() and (total[:, 0] < 0).any()


@pytest.mark.parametrize("transcript", [False, True])
def test_tic_tac_toe_a_scripted_win_goes_to_the_right_seat(transcript):
    game = make_game("openspiel", game="tic_tac_toe", transcript=transcript)
    state = game.reset(2, np.random.default_rng(0))
    # episode 0: x (seat 0) takes the top row; episode 1: o (seat 1) takes the middle column
    moves = [[(0, 0), (0, 3), (1, 0), (0, 4), (2, 0)],
             [(0, 0), (0, 1), (2, 0), (0, 4), (3, 0), (0, 7)]]
    rewards = []
    for t in range(6):
        joint = torch.tensor([[m[t][0], m[t][1]] if t < len(m) else [0, 0] for m in moves])
        for e, m in enumerate(moves):
            if t < len(m):
                mover = t % 2
                assert game.legal_mask(state, mover)[e, m[t][mover]] and game.legal_mask(state, 1 - mover)[e].sum() == 1
        state, reward, done = game.step(state, joint)
        rewards.append(reward)
        if t == 4:
            assert done.tolist() == [True, False]
    assert bool(state.done.all())
    total = torch.stack(rewards).sum(0)
    assert total.tolist() == [[1.0, -1.0], [-1.0, 1.0]]
    assert rewards[4][0].tolist() == [1.0, -1.0] and rewards[5][1].tolist() == [-1.0, 1.0]
    assert torch.stack(rewards)[:4].abs().sum() == 0 and rewards[5][0].abs().sum() == 0
    shown = game.show(state, 1)
    assert "Game over: you scored -1.0." in shown[0] and "Game over: you scored 1.0." in shown[1]
    if transcript:  # perfect information: both seats read every move
        assert "p0 x(0,2)" in game.observe(state, 1)[0] and "p1 o(2,1)" in game.observe(state, 0)[1]


@pytest.mark.parametrize("game_string, params", [
    ("kuhn_poker", {}), ("leduc_poker", {}), ("leduc_poker", {"observation": "observation"}),
    ("tic_tac_toe", {"transcript": True}), ("tiny_hanabi", {"transcript": True}),
    (HANABI_SMALL, {"transcript": True}), (HANABI_SMALL, {})])
def test_render_of_a_single_state_is_what_observe_shows_in_the_episode(game_string, params):
    """``render`` rebuilds a seat's text from one pyspiel state alone (its transcript by replaying its history,
    chance between moves included): the same text ``observe`` shows in every episode, at every step."""
    game = make_game("openspiel", game=game_string, **params)
    rng = np.random.default_rng(2)
    state = game.reset(24, rng)
    while not bool(state.done.all()):
        for s in SEATS:
            seen = game.observe(state, s)
            for e, ps in enumerate(state.extra["states"]):
                if not ps.is_terminal():
                    assert game.render(ps, s) == seen[e]
        state, _, _ = game.step(state, random_joint(game, state, rng))


def test_transcripts_stay_refused_for_poker_whose_cards_are_hidden():
    for game_string in ("kuhn_poker", "leduc_poker"):
        with pytest.raises(GameError, match=f"{game_string}'s moves are not all public"):
            make_game("openspiel", game=game_string, transcript=True)


def test_validate_says_which_configs_need_a_missing_extra_and_checks_the_rest(monkeypatch, capsys, tmp_path):
    """The README's `adhoc validate configs/*.yaml` on an install without .[openspiel]: the OpenSpiel configs are
    named as not checked (and why), every other one is checked, exit 0; train-population still refuses."""
    monkeypatch.setitem(sys.modules, "pyspiel", None)
    configs = ["configs/tiny-hanabi-selfplay.yaml", "configs/lever-selfplay.yaml"]
    assert main(["validate", *configs]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"not checked: {configs[0]}: game 'openspiel' needs OpenSpiel, which is not installed")
    assert out[1] == f"ok: {configs[1]}"
    assert main(["validate", configs[1], "train.lr=-1"]) == 2  # a bad config still fails
    assert main(["train-population", configs[0], "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
