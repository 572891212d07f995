"""``adhoc play`` driven as a person would, in a real pseudo-terminal: bad input asks again, end of input and
Ctrl-C end cleanly with everything played so far in the database; a turn-taking game asks only on the
person's turns."""

import sqlite3
import sys
from pathlib import Path

import pytest

from adhoc import recording

pexpect = pytest.importorskip("pexpect", reason="pexpect is in the dev extra: pip install -e '.[dev]'")

ROOT = Path(__file__).parent.parent
PROMPT = "your move"


def spawn(args: list[str], cwd: Path):
    # a generous timeout: on a loaded shared machine importing torch alone can take tens of seconds
    child = pexpect.spawn(sys.executable, ["-m", "adhoc.cli", "play", *args], cwd=str(cwd), encoding="utf-8",
                          timeout=300, dimensions=(50, 200))
    return child


def exit_status(child) -> int:
    """Wait for the command to end; its exit status."""
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def episodes(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    return conn.execute("SELECT number, partner_member, ended IS NOT NULL, steps, return FROM episodes "
                        "ORDER BY number").fetchall()


def test_bad_input_asks_again_and_end_of_input_saves(tmp_path):
    child = spawn([str(ROOT / "configs/lever-selfplay.yaml"), "--partner", str(ROOT / "populations/lever-selfplay:member-02"),
                   "--episodes", "3", "--participant", "alice", "--seed", "3"], tmp_path)
    child.expect("Lever 0 pays 0.9 if you both pull it; levers 1-9 pay 1.0 if you both pull the same one")  # rules
    child.expect("episode 1 of 3 \\(partner lever-selfplay/member-02\\)")
    child.expect("Pull a lever.")  # the person's view (the model's observation is recorded)
    child.expect(r"\[0\] 0  \[1\] 1")
    child.expect(PROMPT)
    child.sendline("?")  # the rules again, not a move
    child.expect("Rules:")
    child.expect("Lever 0 pays 0.9 if you both pull it")
    child.expect(PROMPT)
    child.sendline("left")
    child.expect("'left' is not one of your legal actions")
    child.expect(PROMPT)
    child.sendline("10")
    child.expect("'10' is not one of your legal actions")
    child.expect(PROMPT)
    child.sendline("7")
    child.expect(r"You pulled lever 7; your partner pulled lever (\d); reward ([\d.]+)")
    partner_first = int(child.match.group(1))
    child.expect(r"episode 1: return [\d.]+ +running score: [\d.]+ over 1 episode")
    child.expect(PROMPT)
    child.sendline("")  # an empty line asks again
    child.expect(PROMPT)
    child.sendline("3")
    child.expect("episode 2: return")
    child.expect(PROMPT)
    child.sendeof()
    child.expect("stopped \\(end of input\\): 2 complete episodes")
    assert exit_status(child) == 0
    dbs = list((tmp_path / "runs").glob("play-*.sqlite"))  # the default: a new file under runs/
    assert len(dbs) == 1
    rows = episodes(dbs[0])
    assert [(n, m, done, steps) for n, m, done, steps, _ in rows] == [
        (1, "member-02", 1, 1), (2, "member-02", 1, 1), (3, "member-02", 0, 0)]
    steps = list(recording.iter_steps(recording.open_recording(dbs[0])))
    assert [s["action"] for s in steps] == [7, 3] and steps[0]["partner_action"] == partner_first
    assert steps[0]["participant"] == "alice" and steps[0]["legal"] == [str(i) for i in range(10)]
    assert steps[0]["observation"] == "Lever game with 10 levers. You are player 1 of 2. Choose an action."


def test_ctrl_c_ends_cleanly_and_appends_to_a_recording(tmp_path):
    db = tmp_path / "study.sqlite"
    for k in range(2):  # the second session appends to the same database
        child = spawn([str(ROOT / "configs/repeated-lever-selfplay.yaml"), "game.rounds=3", "--partner",
                       "scripted:repeated:stubborn-4", "--seat", "1", "--db", str(db)], tmp_path)
        child.expect("you are seat 1")
        child.expect("Round 1 of 3: your choice.")
        child.expect(PROMPT)
        child.sendline("4")
        child.expect("You pulled lever 4; your partner pulled lever 4; reward 0.333")
        child.expect("Round 1: you pulled lever 4, your partner pulled lever 4 \\(pays 1.0\\).")  # the history
        child.expect("Round 2 of 3: your choice.")
        child.expect(PROMPT)
        child.sendintr()
        child.expect("stopped \\(interrupted\\): 0 complete episodes")
        assert exit_status(child) == 130
    s = recording.stats(db)
    assert (s["sessions"], s["episodes"], s["episodes_complete"], s["steps"]) == (2, 2, 0, 2)
    assert recording.open_recording(db).execute("SELECT COUNT(*) FROM sessions WHERE ended IS NULL").fetchone()[0] == 0


def test_turn_taking_game_asks_only_on_my_turn(tmp_path):
    db = tmp_path / "robot.sqlite"
    child = spawn([str(ROOT / "configs/warehouse-learner.yaml"), "--partner", "scripted:warehouse:direct",
                   "--episodes", "1", "--db", str(db), "--seed", "0"], tmp_path)
    child.expect("You are the robot")  # the rules
    child.expect(r"step 1: Your partner said '(\w+)'")  # the teacher speaks first; the robot is not asked
    said = child.match.group(1)
    child.expect("--- step 2 of at most 2: your turn")
    child.expect(f"Teacher said '{said}'.")
    child.expect("Move 1 of 1: your move.")
    child.expect(r"\[0\] up  \[1\] down  \[2\] left  \[3\] right  \[4\] stay")
    child.expect(PROMPT)
    child.sendline(said.lower())  # an action by its text
    child.expect(f"You moved {said.lower()}([^\r\n]*)")
    assert "partner" not in child.match.group(1)  # the teacher's forced, ignored word is not reported
    child.expect("episode 1: return")
    assert exit_status(child) == 0
    steps = list(recording.iter_steps(recording.open_recording(db)))
    assert [len(s["legal"]) for s in steps] == [1, 5]  # the forced step is recorded too
    assert steps[0]["partner_action_text"] == said and steps[1]["action_text"] == said.lower()
    assert steps[1]["response_s"] is not None and steps[0]["response_s"] is None


def test_refusals_before_any_play(tmp_path, monkeypatch, capsys):
    from adhoc.cli import main

    monkeypatch.chdir(tmp_path)
    for args, message in [
        (["--partner", str(ROOT / "populations/lever-selfplay:member-99")], "has no member 'member-99'"),
        (["game.n_levers=4", "--partner", str(ROOT / "populations/lever-selfplay")], "n_levers=10, not n_levers=4"),
        (["--partner", "scripted:warehouse:direct"], "scripted strategies of game 'warehouse' cannot play game 'lever'"),
        (["--partner", str(ROOT / "populations/lever-selfplay"), "--participant", "a/b"], "not a plain name"),
    ]:
        assert main(["play", str(ROOT / "configs/lever-selfplay.yaml"), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("adhoc: error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "runs").exists()
