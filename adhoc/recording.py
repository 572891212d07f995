"""Recorded play: one SQLite database for every person's (or scripted stand-in's) play with a partner.

``adhoc play`` (terminal) and ``adhoc serve`` (browser) write here; ``adhoc data export`` / ``adhoc data stats``
read it, and ``adhoc train-proxy`` clones it into LoRA members. The file is marked as ours
(``PRAGMA application_id``) and carries its schema version (``PRAGMA user_version`` = ``SCHEMA_VERSION``); a
database of another version, or an SQLite file that is not a recording, is refused with one line.

Durability: WAL journal, ``synchronous=FULL``, and ONE transaction per game step (the step row and its
episode's running return together), so a crash or ``kill -9`` loses at most the step being played; an episode
whose ``ended`` is NULL was interrupted (its completed steps are all there).

Schema, version 1 (times are Unix seconds, UTC)::

    sessions   id, participant, source ('terminal' | 'web' | 'scripted:...'), consent (0/1), game (JSON: the
               game's name and parameters), human_seat, started, ended (NULL: still open or interrupted),
               adhoc_version, info (JSON: host, partner order, ...)
    episodes   id, session_id -> sessions, number (1, 2, ... within the session), partner (the partner's
               label, e.g. lever-selfplay/member-03 or scripted:repeated/copy-1), partner_population (folder or
               scripted spec), partner_member, human_seat, started, ended (NULL: interrupted), return
               (sum of rewards so far), steps
    steps      id, episode_id -> episodes, participant, t (0, 1, ...), seat (the person's), observation (the
               person's text, exactly as a model in that seat sees it), legal (JSON list of the legal action
               strings), legal_index (JSON list of their indices), action (index in the seat's action list),
               action_text, partner_action, partner_action_text, reward (the person's reward for the step: the
               common payoff, or their seat's in a zero-sum or general-sum game), done
               (0/1), time (when the step was played), response_s (seconds the person took; NULL when forced)

Steps where the person had a single legal action (the partner's turn in a turn-taking game) are recorded
too (``legal`` has one entry); behaviour cloning skips them.

JSONL (``adhoc data export DB --format jsonl``): one object per step, the step's columns plus its episode's
and session's (``session``, ``episode``, ``partner``, ``partner_population``, ``partner_member``, ``game``,
``source``); ``read_jsonl`` reads it back and names the line of a malformed record.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from adhoc.errors import UserError

SCHEMA_VERSION = 1
APPLICATION_ID = 0x61646863  # "adhc": marks a SQLite file as an adhoc recording

SCHEMA = """
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    participant TEXT NOT NULL,
    source TEXT NOT NULL,
    consent INTEGER NOT NULL DEFAULT 0,
    game TEXT NOT NULL,
    human_seat INTEGER NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    adhoc_version TEXT,
    info TEXT
);
CREATE TABLE episodes (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    number INTEGER NOT NULL,
    partner TEXT NOT NULL,
    partner_population TEXT NOT NULL,
    partner_member TEXT NOT NULL,
    human_seat INTEGER NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    return REAL NOT NULL DEFAULT 0,
    steps INTEGER NOT NULL DEFAULT 0,
    UNIQUE (session_id, number)
);
CREATE TABLE steps (
    id INTEGER PRIMARY KEY,
    episode_id INTEGER NOT NULL REFERENCES episodes(id),
    participant TEXT NOT NULL,
    t INTEGER NOT NULL,
    seat INTEGER NOT NULL,
    observation TEXT NOT NULL,
    legal TEXT NOT NULL,
    legal_index TEXT NOT NULL,
    action INTEGER NOT NULL,
    action_text TEXT NOT NULL,
    partner_action INTEGER NOT NULL,
    partner_action_text TEXT NOT NULL,
    reward REAL NOT NULL,
    done INTEGER NOT NULL,
    time REAL NOT NULL,
    response_s REAL,
    UNIQUE (episode_id, t)
);
CREATE INDEX steps_episode ON steps(episode_id);
CREATE INDEX episodes_session ON episodes(session_id);
"""

STEP_KEYS = ("participant", "t", "seat", "observation", "legal", "legal_index", "action", "action_text",
             "partner_action", "partner_action_text", "reward", "done", "time", "response_s")
# what a JSONL record must hold to be read back (train-proxy)
REQUIRED_KEYS = ("participant", "session", "episode", "t", "seat", "observation", "legal", "legal_index",
                 "action", "game")


def _version() -> str:
    import importlib.metadata as md

    try:
        return md.version("adhoc")
    except md.PackageNotFoundError:
        return "unknown"


def _connect(path: Path) -> sqlite3.Connection:
    try:
        # autocommit (we BEGIN ourselves); the server shares one connection between threads under its lock
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA foreign_keys = ON")
        return conn
    except sqlite3.Error as exc:
        raise UserError(f"recording {path}: cannot open ({exc})") from None


def _check_version(conn: sqlite3.Connection, path: Path) -> None:
    """One line when ``path`` is not a recording of this schema version."""
    try:
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if not os.access(path, os.W_OK) or "readonly" in str(exc) or "unable to open" in str(exc):
            raise UserError(f"recording {path} is read-only here ({exc}); adhoc opens a recording for writing "
                            f"(WAL journal): make it writable, or copy it") from None
        raise UserError(f"recording {path}: not an SQLite database ({exc})") from None
    if app != APPLICATION_ID:
        raise UserError(f"{path} is an SQLite database but not an adhoc recording (application_id {app}); "
                        f"adhoc neither reads nor writes it")
    if version != SCHEMA_VERSION:
        why = ("newer than this adhoc reads: upgrade adhoc" if version > SCHEMA_VERSION
               else "older than this adhoc reads: export it with the adhoc that wrote it")
        raise UserError(f"recording {path}: schema version {version}, this adhoc reads version {SCHEMA_VERSION} "
                        f"({why})")
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = [t for t in ("sessions", "episodes", "steps") if t not in tables]
    if missing:
        raise UserError(f"recording {path} lacks its {', '.join(missing)} table{'s' if len(missing) > 1 else ''} "
                        f"(damaged, or not written by adhoc)")


def open_recording(path: str | Path, create: bool = False) -> sqlite3.Connection:
    """Open a recording database (``create``: a new one where no file is; an existing file is used only if it
    is a recording of this schema version). Nothing that is not ours is ever written to."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"recording {path} is a folder, not a database file")
    if create and path.is_symlink():
        raise UserError(f"recording {path} is a symbolic link; give the database file itself (a link could "
                        f"lead anywhere, or create a file where it points)")
    if create and path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"recording {path} is read-only here; adhoc opens a recording for writing (WAL journal): "
                        f"make it writable, or copy it")
    if not path.exists():
        if not create:
            raise UserError(f"recording not found: {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        # a name of this process's own (two processes creating the same --db never touch each other's file)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.new")
        conn = _connect(tmp)
        conn.executescript(SCHEMA)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.close()
        try:
            # hard link: fails if someone created ``path`` meanwhile (never replaces a file we did not make)
            os.link(tmp, path)
            tmp.unlink()
        except FileExistsError:
            tmp.unlink()
    else:
        with open(path, "rb") as f:
            head = f.read(16)
        if head and head != b"SQLite format 3\x00":
            raise UserError(f"{path} is not an SQLite database (not an adhoc recording); adhoc neither reads "
                            f"nor writes it")
        if not head:
            raise UserError(f"{path} is an empty file, not an adhoc recording; choose another --db")
    conn = _connect(path)
    try:
        _check_version(conn, path)
    except BaseException:
        conn.close()  # a refused file keeps no journal beside it
        raise
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


@dataclass
class Recorder:
    """Writes sessions, episodes and steps; every write is its own transaction."""

    path: Path
    conn: sqlite3.Connection

    @classmethod
    def open(cls, path: str | Path) -> "Recorder":
        return cls(Path(path), open_recording(path, create=True))

    def close(self) -> None:
        self.conn.close()

    def _tx(self, statements: list[tuple[str, tuple]]) -> int:
        """Run ``statements`` in one transaction; the last statement's row id. Inside a transaction the caller
        opened (the server takes the write lock for a whole request), a savepoint of it."""
        cur = self.conn.cursor()
        nested = self.conn.in_transaction
        cur.execute("SAVEPOINT tx" if nested else "BEGIN IMMEDIATE")
        try:
            for sql, args in statements:
                cur.execute(sql, args)
            cur.execute("RELEASE tx" if nested else "COMMIT")
        except BaseException:
            if nested:
                cur.execute("ROLLBACK TO tx")
                cur.execute("RELEASE tx")
            else:
                cur.execute("ROLLBACK")
            raise
        return int(cur.lastrowid or 0)

    def start_session(self, participant: str, source: str, game: dict[str, Any], human_seat: int,
                      consent: bool = False, info: dict[str, Any] | None = None) -> int:
        info = {"host": socket.gethostname(), **(info or {})}
        return self._tx([("INSERT INTO sessions (participant, source, consent, game, human_seat, started, "
                          "adhoc_version, info) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (participant, source, int(consent), json.dumps(game, sort_keys=True), human_seat,
                           time.time(), _version(), json.dumps(info, sort_keys=True)))])

    def end_session(self, session: int) -> None:
        self._tx([("UPDATE sessions SET ended = ? WHERE id = ?", (time.time(), session))])

    def start_episode(self, session: int, number: int, partner: str, population: str, member: str,
                      human_seat: int) -> int:
        return self._tx([("INSERT INTO episodes (session_id, number, partner, partner_population, partner_member, "
                          "human_seat, started) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (session, number, partner, population, member, human_seat, time.time()))])

    def record_step(self, episode: int, step: dict[str, Any], ends_episode: bool) -> None:
        """One step and its episode's running return (and end, if ``ends_episode``), in one transaction."""
        row = dict(step, legal=json.dumps(step["legal"]), legal_index=json.dumps(step["legal_index"]),
                   done=int(step["done"]))
        statements = [(f"INSERT INTO steps (episode_id, {', '.join(STEP_KEYS)}) VALUES "
                       f"(?, {', '.join('?' for _ in STEP_KEYS)})", (episode, *[row[k] for k in STEP_KEYS])),
                      ("UPDATE episodes SET return = return + ?, steps = steps + 1 WHERE id = ?",
                       (float(step["reward"]), episode))]
        if ends_episode:
            statements.append(("UPDATE episodes SET ended = ? WHERE id = ?", (time.time(), episode)))
        self._tx(statements)


# ---------------------------------------------------------------------------- reading
def _rows(conn: sqlite3.Connection, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _json_column(text: Any, what: str, kind: type) -> Any:
    """A JSON column's value, of type ``kind``: a UserError line naming the column otherwise."""
    from adhoc.readers import MAX_LINE_BYTES, parse_json

    if not isinstance(text, (str, bytes)):
        raise UserError(f"{what} is not JSON text (got {type(text).__name__})")
    value = parse_json(text, what, MAX_LINE_BYTES)
    if not isinstance(value, kind) or (kind is dict and not isinstance(value.get("name"), str)):
        raise UserError(f"{what} must be a JSON {'object with a name' if kind is dict else 'list'}")
    return value


def iter_steps(conn: sqlite3.Connection, where: str = "recording") -> Iterator[dict[str, Any]]:
    """Every step as one flat record (the JSONL export's objects), in session, episode, step order."""
    sql = ("SELECT s.id AS session, s.source, s.game, s.consent, e.id AS episode, e.number AS episode_number, "
           "e.partner, e.partner_population, e.partner_member, e.ended IS NOT NULL AS episode_complete, st.* "
           "FROM steps st JOIN episodes e ON st.episode_id = e.id JOIN sessions s ON e.session_id = s.id "
           "ORDER BY s.id, e.number, st.t")
    for row in _rows(conn, sql):
        row.pop("id"), row.pop("episode_id")
        row["game"] = _json_column(row["game"], f"{where}: sessions.game of session {row['session']}", dict)
        row["legal"] = _json_column(row["legal"], f"{where}: steps.legal of episode {row['episode']}", list)
        row["legal_index"] = _json_column(row["legal_index"], f"{where}: steps.legal_index of episode {row['episode']}", list)
        row["done"], row["consent"] = bool(row["done"]), bool(row["consent"])
        row["episode_complete"] = bool(row["episode_complete"])
        yield row


def export_jsonl(path: str | Path, out) -> int:
    """Write every step of the recording ``path`` as JSONL to the text stream ``out``; the number of lines."""
    conn = open_recording(path)
    try:
        n = 0
        for row in iter_steps(conn, f"recording {path}"):
            out.write(json.dumps(row, sort_keys=True) + "\n")
            n += 1
        return n
    finally:
        conn.close()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Steps from a JSONL export; a malformed line is one UserError naming its line number."""
    from adhoc.readers import MAX_LINE_BYTES, parse_json

    path = Path(path)
    if not path.is_file():
        raise UserError(f"recording not found: {path}")
    out = []
    try:
        return _read_jsonl_lines(path, out)
    except UnicodeDecodeError:
        raise UserError(f"{path}, line {len(out) + 1} or near it: not UTF-8 text") from None


def _read_jsonl_lines(path: Path, out: list) -> list[dict[str, Any]]:
    from adhoc.readers import MAX_LINE_BYTES, parse_json

    with open(path, encoding="utf-8", errors="strict") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = parse_json(line, f"{path}, line {number}", MAX_LINE_BYTES)
            if not isinstance(row, dict):
                raise UserError(f"{path}, line {number}: not a JSON object")
            missing = [k for k in REQUIRED_KEYS if k not in row]
            if missing:
                raise UserError(f"{path}, line {number}: a step record lacks {', '.join(missing)}")
            for key in ("session", "episode", "t", "seat", "action"):
                if not _is_int(row[key]) or row[key] < 0:
                    raise UserError(f"{path}, line {number}: {key} must be an integer >= 0 (got {row[key]!r:.40})")
            if not isinstance(row["participant"], str):
                raise UserError(f"{path}, line {number}: participant must be a string (got {row['participant']!r:.40})")
            legal, index = row["legal"], row["legal_index"]
            if not isinstance(legal, list) or not all(isinstance(a, str) for a in legal):
                raise UserError(f"{path}, line {number}: legal must be a list of action strings")
            if not isinstance(index, list) or len(legal) != len(index) or not all(_is_int(i) for i in index):
                raise UserError(f"{path}, line {number}: legal_index must be a list of integers, one per legal action")
            if (row["action"] not in index or not isinstance(row["game"], dict) or "name" not in row["game"]
                    or row["seat"] not in (0, 1) or not isinstance(row["observation"], str)):
                raise UserError(f"{path}, line {number}: a step record with a bad legal/legal_index/action/seat/"
                                f"game/observation field")
            out.append(row)
    return out


def read_steps(path: str | Path) -> list[dict[str, Any]]:
    """Steps from a recording database or its JSONL export (by content: SQLite files start with their magic)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recording not found: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    if head == b"SQLite format 3\x00":
        conn = open_recording(path)
        try:
            return list(iter_steps(conn, f"recording {path}"))
        finally:
            conn.close()
    return read_jsonl(path)


def stats(path: str | Path) -> dict[str, Any]:
    """Counts of a recording: sessions, participants, episodes (complete / interrupted), steps, decisions (steps
    with a choice), and per partner and per participant the episodes and mean return of complete episodes."""
    conn = open_recording(path)
    try:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        out = {"path": str(path), "schema_version": SCHEMA_VERSION,
               "sessions": one("SELECT COUNT(*) FROM sessions"),
               "participants": one("SELECT COUNT(DISTINCT participant) FROM sessions"),
               "episodes": one("SELECT COUNT(*) FROM episodes"),
               "episodes_complete": one("SELECT COUNT(*) FROM episodes WHERE ended IS NOT NULL"),
               "steps": one("SELECT COUNT(*) FROM steps"),
               "decisions": one("SELECT COUNT(*) FROM steps WHERE json_array_length(legal) > 1"),
               "games": sorted({_json_column(g, f"recording {path}: sessions.game", dict)["name"]
                                 for (g,) in conn.execute("SELECT DISTINCT game FROM sessions")})}
        group = ("SELECT {key} AS name, COUNT(*) AS episodes, SUM(e.ended IS NOT NULL) AS complete, "
                 "AVG(CASE WHEN e.ended IS NOT NULL THEN e.return END) AS mean_return "
                 "FROM episodes e JOIN sessions s ON e.session_id = s.id GROUP BY {key} ORDER BY {key}")
        out["by_partner"] = _rows(conn, group.format(key="e.partner"))
        out["by_participant"] = _rows(conn, group.format(key="s.participant"))
        return out
    finally:
        conn.close()


def stats_text(s: dict[str, Any]) -> str:
    lines = [f"recording   {s['path']}  (schema version {s['schema_version']})",
             f"games       {', '.join(s['games']) or '-'}",
             f"sessions    {s['sessions']}  ({s['participants']} participants)",
             f"episodes    {s['episodes']}  ({s['episodes_complete']} complete, "
             f"{s['episodes'] - s['episodes_complete']} interrupted)",
             f"steps       {s['steps']}  ({s['decisions']} with a choice)"]
    for title, rows in (("partner", s["by_partner"]), ("participant", s["by_participant"])):
        if not rows:
            continue
        width = max(len(title), *(len(str(r["name"])) for r in rows))
        lines += ["", f"  {title:<{width}}  episodes  complete  mean return"]
        for r in rows:
            mean = "-" if r["mean_return"] is None else f"{r['mean_return']:.3f}"
            lines.append(f"  {str(r['name']):<{width}}  {r['episodes']:>8}  {r['complete']:>8}  {mean:>11}")
    return "\n".join(lines)
