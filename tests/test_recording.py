"""The recording database: its schema and version, crash safety (SIGKILL mid-run loses at most the step being
written), JSONL export and reading (the line of a malformed record), and refusals (exit 2, nothing touched)."""

import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adhoc import recording
from adhoc.cli import main
from adhoc.errors import UserError

ROOT = Path(__file__).parent.parent


def _step(t: int, action: int = 1) -> dict:
    return {"participant": "p1", "t": t, "seat": 0, "observation": f"obs {t}", "legal": ["a", "b"],
            "legal_index": [0, 1], "action": action, "action_text": "ab"[action], "partner_action": 0,
            "partner_action_text": "a", "reward": 0.5, "done": t == 2, "time": 1.0 + t, "response_s": 0.25}


def _record(db: Path) -> None:
    rec = recording.Recorder.open(db)
    session = rec.start_session("p1", "terminal", {"name": "lever", "n_levers": 2}, 0, consent=True)
    episode = rec.start_episode(session, 1, "pop/member-00", "pop", "member-00", 0)
    for t in range(3):
        rec.record_step(episode, _step(t), ends_episode=t == 2)
    rec.end_session(session)
    rec.close()


def test_schema_version_wal_and_marker(tmp_path):
    db = tmp_path / "rec.sqlite"
    _record(db)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == recording.SCHEMA_VERSION == 1
    assert conn.execute("PRAGMA application_id").fetchone()[0] == recording.APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    columns = {row[1] for row in conn.execute("PRAGMA table_info(steps)")}
    assert {"observation", "action", "action_text", "legal", "partner_action", "seat", "reward", "time",
            "participant"} <= columns
    assert conn.execute("SELECT return, steps, ended IS NOT NULL FROM episodes").fetchone() == (1.5, 3, 1)
    rows = list(recording.iter_steps(recording.open_recording(db)))
    assert [r["t"] for r in rows] == [0, 1, 2] and rows[0]["legal"] == ["a", "b"] and rows[2]["done"] is True
    assert rows[0]["game"] == {"name": "lever", "n_levers": 2} and rows[0]["partner"] == "pop/member-00"
    s = recording.stats(db)
    assert (s["sessions"], s["episodes"], s["episodes_complete"], s["steps"], s["decisions"]) == (1, 1, 1, 3, 3)
    assert s["by_partner"][0]["mean_return"] == pytest.approx(1.5)


WRITER = textwrap.dedent("""
    import sys
    from adhoc.recording import Recorder
    rec = Recorder.open(sys.argv[1])
    session = rec.start_session("p1", "terminal", {"name": "lever"}, 0)
    t = 0
    while True:  # endless episodes of 3 steps; each written step is announced after its commit
        episode = rec.start_episode(session, t // 3 + 1, "pop/m", "pop", "m", 0)
        for k in range(3):
            rec.record_step(episode, {"participant": "p1", "t": k, "seat": 0, "observation": "o" * 200,
                                      "legal": ["a", "b"], "legal_index": [0, 1], "action": 1, "action_text": "b",
                                      "partner_action": 0, "partner_action_text": "a", "reward": 1.0,
                                      "done": k == 2, "time": 0.0, "response_s": None}, ends_episode=k == 2)
            t += 1
            print(t, flush=True)
""")


def test_sigkill_mid_run_keeps_every_completed_step(tmp_path):
    db = tmp_path / "rec.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    announced = 0
    for line in proc.stdout:
        announced = int(line)
        if announced >= 40:
            break
    proc.send_signal(signal.SIGKILL)
    for line in proc.stdout:  # what it announced before the kill landed (committed, then printed)
        announced = int(line)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    conn = recording.open_recording(db)  # opens cleanly: our marker, our version
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    steps = conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    assert announced <= steps <= announced + 1  # every announced (committed) step; at most one more
    # an episode's running return always matches its steps: step and return were one transaction
    for ret, n, counted in conn.execute("SELECT e.return, e.steps, COUNT(s.id) FROM episodes e "
                                        "LEFT JOIN steps s ON s.episode_id = e.id GROUP BY e.id"):
        assert ret == n == counted
    assert recording.stats(db)["steps"] == steps


def test_export_jsonl_round_trip_and_bad_line(tmp_path, capsys):
    db = tmp_path / "rec.sqlite"
    _record(db)
    assert main(["data", "export", str(db), "--format", "jsonl"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 3 and json.loads(lines[1])["t"] == 1
    good = tmp_path / "rec.jsonl"
    good.write_text(out)
    assert [r["observation"] for r in recording.read_steps(good)] == ["obs 0", "obs 1", "obs 2"]
    assert recording.read_steps(db)[0]["action"] == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n" + lines[1][:-5] + "\n" + lines[2] + "\n")
    with pytest.raises(UserError, match="line 2"):
        recording.read_jsonl(bad)
    missing = dict(json.loads(lines[0]))
    del missing["observation"]
    bad.write_text(lines[0] + "\n\n" + json.dumps(missing) + "\n")
    with pytest.raises(UserError, match="line 3: a step record lacks observation"):
        recording.read_jsonl(bad)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_other_schema_version_and_foreign_files_exit_2_untouched(tmp_path):
    db = tmp_path / "rec.sqlite"
    _record(db)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    foreign = tmp_path / "notes.sqlite"
    other = sqlite3.connect(foreign)
    other.execute("CREATE TABLE notes (x)")
    other.commit()
    other.close()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    before = {p: _digest(p) for p in (db, foreign, text)}
    for args, message in [(["data", "stats", str(db)], "schema version 2, this adhoc reads version 1 (newer"),
                          (["data", "export", str(db)], "schema version 2"),
                          (["data", "stats", str(foreign)], "not an adhoc recording"),
                          (["data", "stats", str(text)], "not an SQLite database"),
                          (["play", str(ROOT / "configs/repeated-lever-selfplay.yaml"), "--partner",
                            "scripted:repeated:stubborn-1", "--db", str(foreign)], "not an adhoc recording"),
                          (["data", "stats", str(tmp_path / "missing.sqlite")], "recording not found")]:
        proc = subprocess.run([sys.executable, "-m", "adhoc.cli", *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("adhoc: error: ") and message in proc.stderr
    assert {p: _digest(p) for p in before} == before
    assert not (tmp_path / "missing.sqlite").exists()
