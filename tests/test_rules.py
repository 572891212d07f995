"""Every game describes itself to people: ``rules(seat)`` from the game's own parameters, ``show(state, seat)``
and ``describe_action`` in words (for ``adhoc play`` / ``adhoc serve`` only), while ``observe`` (what policies
read) stays exactly as before."""

import hashlib

import numpy as np
import pytest
from omegaconf import OmegaConf

from adhoc.errors import MissingExtra
from adhoc._torch import torch
from adhoc.games import GAMES, build_game, make_game
from adhoc.play import describe_step, game_rules, play_terminal, StepEvent
from adhoc import recording

LEVER_0 = """Lever game with 10 levers. You are player 1 of 2. You and your partner each pull one of the levers 0-9 at \
the same time, without seeing the other's choice; you both get the same reward.
Lever 0 pays 0.9 if you both pull it; levers 1-9 pay 1.0 if you both pull the same one; different levers pay 0.
One move: you both choose once, then the game is over."""

REPEATED_1 = """Lever game with 10 levers. You are player 2 of 2. You and your partner each pull one of the levers 0-9 at \
the same time, without seeing the other's choice; you both get the same reward.
Lever 0 pays 0.9 if you both pull it; levers 1-9 pay 1.0 if you both pull the same one; different levers pay 0.
You play this 4 times (rounds) with the same partner. After each round you both see what each of you chose. Each \
round pays its reward divided by 4, so your score is the average reward over the rounds."""

WAREHOUSE_COMMON = """The grid is 3 wide and 3 high; a cell is (x, y), x = 0..2 from the left, y = 0..2 from the \
bottom. There are 3 episodes; each starts the robot at a random cell, and the robot makes 2 moves (up, down, left, \
right or stay; a move into a wall stays put). Before each move the teacher says one word: Up, Down, Left, Right.
The goal cell is drawn at random and stays the same for all 3 episodes; only the teacher sees it. No one is told \
what the words mean: the teacher decides, and the robot has to work it out from how they are used.
At the end of each episode you both get the same reward: 1 minus the robot's final distance to the goal (in steps, \
across plus up) divided by 4: 1 on the goal, 0 in the farthest corner from it. Your score is the average over the \
episodes; 12 turns in all (teacher, robot, teacher, ...)."""


def test_lever_rules_default_and_changed():
    game = make_game("lever")
    assert game.rules(0) == LEVER_0
    assert game.rules(1) == LEVER_0.replace("player 1 of 2", "player 2 of 2")
    seven = make_game("lever", n_levers=7, unique_payoff=0.5).rules(0)
    assert seven.startswith("Lever game with 7 levers. You are player 1 of 2.") and "levers 0-6 at" in seven
    assert "Lever 0 pays 0.5 if you both pull it; levers 1-6 pay 1.0 if you both pull the same one" in seven
    middle = make_game("lever", n_levers=12, unique_lever=4, other_payoff=2).rules(1)
    assert "Lever 04 pays 0.9 if you both pull it; levers 00-03, 05-11 pay 2.0 if you both pull" in middle


def test_yaml_matrix_rules_show_the_table_from_each_seat():
    spec = OmegaConf.create("name: matrix\npayoff: [[1, 0, 0], [0, 2, 0], [0, 0, 3.5]]\n"
                            "actions: [[x, y, z], [p, q, r]]\ndescription: Pick a colour.\n")
    game = build_game(spec)
    assert game.rules(0).splitlines()[1:] == [
        "Your actions: x, y, z.",
        "Reward (rows: your action; columns: your partner's):",
        "       p    q    r",
        "x    1.0  0.0  0.0",
        "y    0.0  2.0  0.0",
        "z    0.0  0.0  3.5",
        "One move: you both choose once, then the game is over."]
    assert game.rules(0).startswith("Pick a colour. You are player 1 of 2.")
    assert game.rules(1).splitlines()[1:4] == ["Your actions: p, q, r.",
                                               "Reward (rows: your action; columns: your partner's):",
                                               "       x    y    z"]
    asym = make_game("matrix", payoff=[[0, 5, 0], [0, 0, 0], [0, 0, 0]]).rules(1)
    assert "a1    5.0  0.0  0.0" in asym  # seat 1 reads the transpose: its a1 with seat 0's a0 pays 5


def test_repeated_lever_rules():
    game = make_game("repeated", stage="lever", rounds=4)
    assert game.rules(1) == REPEATED_1
    assert game.rules(0) == REPEATED_1.replace("player 2 of 2", "player 1 of 2")
    padded = make_game("repeated", stage="lever", rounds=2, transcript="padded").rules(0)
    assert "You play this 2 times" in padded and "filler words" in padded and "divided by 2" in padded


def test_warehouse_rules_by_seat_and_parameters():
    game = make_game("warehouse")
    assert game.rules(0) == ("Warehouse game. You are the robot (seat 0); your partner is the teacher. "
                             + WAREHOUSE_COMMON)
    assert game.rules(1) == ("Warehouse game. You are the teacher (seat 1); your partner is the robot. You see the goal "
                             "and where the robot is; the robot sees neither the goal nor your meaning. "
                             + WAREHOUSE_COMMON)
    other = make_game("warehouse", width=4, height=2, moves=1, episodes=1, n_labels=5, reward="goal").rules(0)
    for text in ("4 wide and 2 high", "x = 0..3", "y = 0..1", "There is 1 episode", "makes 1 move (",
                 "one word: A, B, C, D, E.", "1 if the robot ends the episode on the goal cell, else 0",
                 "2 turns in all"):
        assert text in other, text


@pytest.mark.parametrize("name", sorted(GAMES))
def test_every_registered_game_states_its_numbers(name):
    params = {"matrix": {"payoff": [[1, 0], [0, 1]]}}.get(name, {})
    try:
        game = make_game(name, **params)
    except MissingExtra as exc:  # an optional extra not installed here (CI installs them all)
        pytest.skip(str(exc))
    expected = {  # what each seat's rules must say, from the defaults of each game
        "lever": ["10 levers", "0.9", "1.0", "One move"],
        "cmg": ["256 actions", "32 blocks of 8", "pays 1.0", "One move"],
        "cmg-s": ["256 actions", "32 blocks of 8", "000-007, 008-015, ..., 248-255", "One move"],
        "cmg-h": ["528 actions", "sizes 32, 31, 30, ..., 1", "000-031, 032-062, ..., 527", "One move"],
        "matrix": ["a0    1.0  0.0", "a1    0.0  1.0", "One move"],
        "warehouse": ["3 episodes", "2 moves", "divided by 4", "12 turns", "only the teacher sees it"],
        "preference": ["weights 2, 1, -2", "2 feedback rounds", "2 candidate responses", "5 turns",
                       "only the human sees"],
        "corrective": ["a times b", "2 digits", "3 digits", "2 drafts", "1 if it is right", "9 turns",
                       "Only the teacher knows the answer"],
        "repeated": ["10 levers", "0.9", "4 times (rounds)", "divided by 4"],
        "openspiel": ["Tiny Hanabi", "tiny_hanabi()", "in turns", "same reward", "At most 2 moves", "0.0 to 10.0"],
        "overcooked": ["layout cramped_room", "act at once", "3 onions", "pays 20", "400 steps"],
    }[name]
    for seat in (0, 1):
        text = game.rules(seat)
        assert text.isascii() and len(text.splitlines()) <= 8, text
        for part in expected:
            assert part in text, (seat, part, text)
        assert "same reward" in text


def test_rules_follow_changed_parameters():
    pref = make_game("preference", weights=[3, -1], candidates=3, rounds=2).rules(1)
    assert "features a, b" in pref and "weights 3, -1" in pref and "1 feedback round:" in pref
    assert "3 candidate responses" in pref and '"321"' in pref and "3 turns" in pref
    corr = make_game("corrective", op="plus", digits=1, attempts=1, credit="digits").rules(0)
    assert "a plus b, both of 1 digit." in corr and "as 2 digits" in corr and "once" in corr
    assert "the fraction of its digits that are right. 2 turns" in corr
    cmg = make_game("cmg", block_sizes=[3, 2], block_payoffs=[1.0, 0.5]).rules(0)
    assert "2 blocks (with what each pays): 0-2 (1.0); 3, 4 (0.5)." in cmg


def test_warehouse_show_and_describe_in_words():
    game = make_game("warehouse")
    state = game.reset(1, np.random.default_rng(0))
    state.extra["goal"] = torch.tensor([[2, 1]])
    state.extra["starts"] = torch.tensor([[[1, 0], [0, 0], [2, 2]]])  # show() reads the starts and the history
    for joint in ([4, 3], [0, 0], [4, 3], [3, 0]):  # teacher 'Right', robot up, teacher 'Right', robot right
        state, _, _ = game.step(state, torch.tensor([joint]))
    robot = ("Episode 1 of 3: the robot starts at (1, 0). Teacher said 'Right'. Robot moved up, now at (1, 1). "
             "Teacher said 'Right'. Robot moved right, now at (2, 1).\n"
             "Episode 2 of 3: the robot starts at (0, 0).\nMove 1 of 2: the teacher speaks.")
    assert game.show(state, 0) == [robot]
    assert game.show(state, 1) == ["The goal is at (2, 1) (the robot does not see it).\n"
                                   + robot.replace("the teacher speaks.", "your word for the robot.")]
    assert [game.describe_action(0, a) for a in range(5)] == ["moved up", "moved down", "moved left", "moved right",
                                                              "stayed"]
    assert game.describe_action(1, 2) == "said 'Left'"
    # a robot's turn: the teacher's forced, ignored word is not reported as the partner's move
    forced = StepEvent(1, 0, "up", 0, "Up", partner_chose=False, human_chose=True, reward=0.0, done=False)
    assert describe_step(game, 0, forced) == "You moved up."
    spoke = StepEvent(0, 4, "stay", 3, "Right", partner_chose=True, human_chose=False, reward=0.0, done=False)
    assert describe_step(game, 0, spoke) == "Your partner said 'Right'."


def test_repeated_show_history_in_words():
    game = make_game("repeated", stage="lever", rounds=3)
    state = game.reset(1, np.random.default_rng(0))
    state, _, _ = game.step(state, torch.tensor([[3, 0]]))
    state, _, _ = game.step(state, torch.tensor([[0, 0]]))
    assert game.show(state, 1) == ["Round 1: you pulled lever 0, your partner pulled lever 3 (pays 0.0).\n"
                                   "Round 2: you pulled lever 0, your partner pulled lever 0 (pays 0.9).\n"
                                   "Round 3 of 3: your choice."]


def test_a_game_without_rules_still_plays():
    class Bare:
        name = "bare"

    assert "No rules are written for game 'bare'" in game_rules(Bare(), 0)


# ---------------------------------------------------------------- observe() is unchanged
OBSERVE_CASES = {
    "lever": {}, "lever7": {"n_levers": 7, "unique_payoff": 0.5, "_name": "lever"},
    "cmg": {"block_sizes": [3, 2], "block_payoffs": [1.0, 0.5]}, "cmg-s": {}, "cmg-h": {},
    "matrix": {"payoff": [[1, 0, 0], [0, 2, 0], [0, 0, 3]], "actions": ["x", "y", "z"]},
    "warehouse": {}, "warehouse-letters": {"_name": "warehouse", "n_labels": 5, "reward": "goal", "episodes": 2},
    "preference": {}, "preference-summary": {"_name": "preference", "summary": True, "rounds": 4},
    "corrective": {}, "corrective-plus": {"_name": "corrective", "op": "plus", "digits": 1, "attempts": 3},
    "repeated": {"stage": "lever", "rounds": 4},
    "repeated-padded": {"_name": "repeated", "stage": "matrix", "rounds": 3, "transcript": "padded",
                        "stage_params": {"payoff": [[1, 0], [0, 1]]}},
    "repeated-last": {"_name": "repeated", "stage": "cmg", "rounds": 2, "transcript": "partner_last",
                      "stage_params": {"block_sizes": [2, 2]}},
}
# sha256 of every observation of both seats at every step of 3 episodes (seed 0, random legal actions), computed
# with the code before rules/show were added (commit 52143d5)
OBSERVE_DIGESTS = {
    "lever": "98964932096282040ea94f214bfe1e20ae18d1780d17727d6e6bba8ddb997a95",
    "lever7": "446640b12215c29d0a4e678fa18c059fa02892ef04e9f82428a6ca2e92253726",
    "cmg": "d4551799cf297151ac3fe5c537b84fe0a9e3df5248e0475b8a04ad56c478b487",
    "cmg-s": "143c86074a4113e41686f9eabfe04f628224ebbd3d46e328da38aeade07f3ca0",
    "cmg-h": "fbd6e9bd87de6271f3ead653893b40351657fc3333e0f493211cf5b3052bc156",
    "matrix": "317310fa75f2ebc0778ecf986f0cb5e51883ecf4710fb15c25c880fa46b7b010",
    "warehouse": "5c92784f1c6b10bbc4029c08cb0668a60ab5acc4ab9234abfe0cb0622289fefc",
    "warehouse-letters": "29ccadc7ac2a14f21ba47c3e161f27647452836021a998b1ea3a7495c63e2e46",
    "preference": "ce4a6969c62481c6c43842cb28e9f30444ed6170a99e611c4782e4049195966e",
    "preference-summary": "da6138f679c0ec1fca894755fba280957331d61063175aab84625ab3a27b83be",
    "corrective": "84924e5046813dd969f1a53b61fa48b13407f8157002c2bd30d4cba7b4b66100",
    "corrective-plus": "99adfa6fb6e237c7f4674c4b7f4f2b2abcf82fb78cc7535105a153cdaf3fb508",
    "repeated": "07cd357bc9484826fbf647ab75836006886449390ce97768a5b7d007b2b9daae",
    "repeated-padded": "c6ec1a6c0b07a9d493b15ddf3c8cf8cdd94650ebc6611d2f901a16b0fd8c2399",
    "repeated-last": "006edf99a054603902953ceff385b736daa551735955f7cb461806d201c461bc",
}


def transcript(key: str) -> list[str]:
    params = dict(OBSERVE_CASES[key])
    game = make_game(params.pop("_name", key), **params)
    rng = np.random.default_rng(0)
    state = game.reset(3, rng)
    out = []
    for _ in range(game.horizon):
        out += [o for s in (0, 1) for o in game.observe(state, s)]
        acts = [[int(rng.choice(np.flatnonzero(row))) for row in game.legal_mask(state, s).numpy()] for s in (0, 1)]
        state, _, _ = game.step(state, torch.tensor(np.array(acts).T))
    return out + [o for s in (0, 1) for o in game.observe(state, s)]


@pytest.mark.parametrize("key", sorted(OBSERVE_CASES))
def test_observe_unchanged(key):
    assert hashlib.sha256("\n".join(transcript(key)).encode()).hexdigest() == OBSERVE_DIGESTS[key]


def test_observe_unchanged_literal():
    t = transcript("warehouse")
    assert t[-6] == ("robot . episode at 0 2 : Down up at 0 2 Right stay at 0 2 episode at 0 1 : Up left at 0 1 Up "
                     "right at 1 1 episode at 0 1 : Down down at 0 0 Right right at 1 0")
    assert transcript("repeated")[-1] == ("Lever game with 10 levers. You are player 2 of 2. Choose an action. 4 rounds "
                                          "with the same partner. Round 1: you 0 partner 5. Round 2: you 9 partner 1. "
                                          "Round 3: you 5 partner 9. Round 4: you 0 partner 2.")


# ---------------------------------------------------------------- play: the rules on demand, not a move
def _play(tmp_path, answers: list[str], name: str):
    out, feed = [], iter(answers)
    summary = play_terminal(make_game("repeated", stage="lever", rounds=3), "scripted:repeated:stubborn-4", seat=1,
                            episodes=1, db=tmp_path / name, seed=5, read=lambda prompt: next(feed), write=out.append)
    steps = list(recording.iter_steps(recording.open_recording(summary["db"])))
    keep = ("t", "seat", "observation", "legal", "action", "partner_action", "reward", "done")
    return "".join(out), [{k: s[k] for k in keep} for s in steps]


def test_play_shows_rules_first_and_on_question_mark_without_a_move(tmp_path):
    text, steps = _play(tmp_path, ["?", "4", "rules", "4", "1"], "asked.sqlite")
    rules = REPEATED_1.replace("4 times", "3 times").replace("divided by 4", "divided by 3")
    first_move = text.index("your actions:")
    assert text.index("Rules (type ? at the prompt to see them again):\n" + rules) < first_move
    assert text.count(rules) == 3  # before the first move, then once per "?" / "rules"
    _, plain = _play(tmp_path, ["4", "4", "1"], "plain.sqlite")
    assert steps == plain and [s["action"] for s in steps] == [4, 4, 1]
    assert "You pulled lever 4; your partner pulled lever 4; reward 0.333." in text
