"""``adhoc serve``'s web defences, through Starlette's TestClient (no server, no browser): Host and Origin
allow-lists, JSON-only bodies of bounded size and depth, strict field types, rate limits and session expiry on an
injected clock, security headers, 409/404/503 instead of 500s, a move that fails midway undone in memory, the
Latin-square index taken inside the write transaction, and option checks before anything is recorded."""

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("starlette", "httpx")),
                                reason="starlette/httpx missing: pip install -e '.[serve]'")

ROOT = Path(__file__).parent.parent
PARTNERS = ["scripted:repeated:stubborn-2", "scripted:repeated:copy-3"]
URL = "http://127.0.0.1:8000"
JSON_OK = {"Origin": URL}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def game():
    from adhoc.play import game_of

    return game_of(str(ROOT / "configs/repeated-lever-selfplay.yaml"), ["game.rounds=2"])


def make(game, db, clock=None, **app_kw):
    from starlette.testclient import TestClient

    from adhoc.serve import Study, build_app

    clock = clock or Clock()
    study = Study(game, PARTNERS, db, episodes_per_partner=1, seat=1, seed=0, busy_timeout_s=0.05,
                  idle_s=600, clock=clock)
    client = TestClient(build_app(study, "127.0.0.1", 8000, **app_kw), base_url=URL)
    return study, client, clock


def rows(db) -> list:
    return sqlite3.connect(db).execute("SELECT participant, consent FROM sessions").fetchall()


def start(client, who="P1", **headers):
    return client.post("/api/start", json={"participant": who, "consent": True}, headers={**JSON_OK, **headers})


def move(client, token, s, action=..., **headers):
    action = s["actions"][0]["index"] if action is ... else action
    return client.post("/api/act", json={"token": token, "episode": s["episode"], "t": s["t"], "action": action},
                       headers={**JSON_OK, **headers})


def test_host_and_origin_allow_lists(game, tmp_path):
    db = tmp_path / "s.sqlite"
    study, client, _ = make(game, db, allow_origins=["https://study.example.org"])
    assert client.get("/").status_code == 200
    for host in ("evil.example:8000", "127.0.0.1:8001", "localhost.evil.example:8000", ""):
        r = client.get("/", headers={"Host": host})  # DNS rebinding: a foreign name for this address
        assert r.status_code == 421 and r.headers["x-frame-options"] == "DENY", host
        assert start(client, Host=host).status_code == 421
    assert client.get("/", headers={"Host": "localhost:8000"}).status_code == 200
    assert client.get("/", headers={"Host": "[::1]:8000"}).status_code == 200
    for origin in ("http://evil.example", "http://127.0.0.1:9999", "null", "https://127.0.0.1:8000"):
        r = client.post("/api/start", json={"participant": "X", "consent": True}, headers={"Origin": origin})
        assert r.status_code == 403 and r.json()["error"] == "cross-origin request refused", origin
    r = client.post("/api/start", json={"participant": "X", "consent": True},
                    headers={"Referer": "http://evil.example/page.html"})
    assert r.status_code == 403
    assert rows(db) == []  # nothing refused was recorded
    assert start(client, "P1", Origin="http://localhost:8000").status_code == 200
    assert start(client, "P2", Origin="https://study.example.org").status_code == 200  # --allow-origin
    assert start(client, "P3", Origin="https://study.example.org:8443").status_code == 403
    # a reverse proxy passing the public Host through
    assert client.get("/", headers={"Host": "study.example.org:443"}).status_code == 200
    assert rows(db) == [("P1", 1), ("P2", 1)]
    study.close()


def test_wildcard_bind_accepts_literal_addresses_only(game, tmp_path):
    from starlette.testclient import TestClient

    from adhoc.serve import Study, build_app

    study = Study(game, PARTNERS, tmp_path / "s.sqlite", seat=1, seed=0)
    client = TestClient(build_app(study, "0.0.0.0", 8000), base_url="http://10.1.2.3:8000")
    assert client.get("/").status_code == 200
    assert client.get("/", headers={"Host": "rebound.evil.example:8000"}).status_code == 421
    study.close()


def test_bodies_json_only_bounded_and_strict(game, tmp_path):
    db = tmp_path / "s.sqlite"
    study, client, _ = make(game, db)
    r = client.post("/api/start", content='{"participant": "P1", "consent": true}',
                    headers={"Content-Type": "text/plain", **JSON_OK})
    assert r.status_code == 415
    r = client.post("/api/start", content=b'{"participant": "' + b"x" * 20000 + b'", "consent": true}',
                    headers={"Content-Type": "application/json", **JSON_OK})
    assert r.status_code == 413 and "x" * 100 not in r.text
    deep = '{"participant": "P1", "consent": true, "x": ' + "[" * 100000 + "]" * 100000 + "}"
    r = client.post("/api/start", content=deep[:16000], headers={"Content-Type": "application/json", **JSON_OK})
    assert r.status_code == 400 and "nested" in r.json()["error"]
    for bad in ({"participant": "P1", "consent": "false"}, {"participant": "P1", "consent": "true"},
                {"participant": "P1", "consent": 1}, {"participant": "P1", "consent": False},
                {"participant": "P1"}, {"participant": 7, "consent": True},
                {"participant": "../x", "consent": True}, {"participant": "P1", "consent": True, "extra": 1}):
        r = client.post("/api/start", json=bad, headers=JSON_OK)
        assert r.status_code in (400, 422) and "error" in r.json(), bad
        if bad.get("consent") is False:
            assert r.json()["error"] == "consent is needed to take part"
        if bad["participant"] == "../x":
            assert r.json()["error"].startswith("participant id '../x' is not a plain name")
    for text in ("[1]", "not json", '{"participant": "P1", "consent": NaN}', ""):
        r = client.post("/api/start", content=text, headers={"Content-Type": "application/json", **JSON_OK})
        assert r.status_code == 400, text
    assert rows(db) == []  # consent "false" and the rest: refused, not stored
    r = start(client)
    token, s = r.json()["token"], r.json()
    for action in (1.9, True, "2", -1, 2 ** 40, None):
        r = move(client, token, s, action=action)
        assert r.status_code == 422 and "action" in r.json()["error"], action
    for episode in ("Infinity", 1.0, True):
        r = client.post("/api/act", json={"token": token, "episode": episode, "t": s["t"], "action": 0},
                        headers=JSON_OK)
        assert r.status_code == 422, episode
    r = client.post("/api/act", content=f'{{"token": "{token}", "episode": Infinity, "t": 0, "action": 0}}',
                    headers={"Content-Type": "application/json", **JSON_OK})
    assert r.status_code == 400
    assert move(client, token, s, action=99).status_code == 422  # an integer, but not legal here
    assert client.get("/api/state", params={"token": token}).json() == {k: v for k, v in s.items() if k != "token"}
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 0  # none of that played
    study.close()


def test_replayed_moves_are_409_and_unknown_sessions_404(game, tmp_path):
    db = tmp_path / "s.sqlite"
    study, client, _ = make(game, db)
    s = start(client).json()
    token = s["token"]
    last = None
    for wrong in ({**s, "t": s["t"] + 1}, {**s, "episode": s["episode"] + 1}):  # not the decision waited on
        r = move(client, token, wrong, action=s["actions"][0]["index"])
        assert r.status_code == 409 and r.json()["error"] == "that move is not the one awaited (already played?)"
    r = move(client, token, s, action=99)
    assert r.status_code == 422 and r.json()["error"] == "action 99 is not legal here"
    while s["phase"] == "play":
        last, r = s, move(client, token, s)
        assert r.status_code == 200
        assert move(client, token, last).status_code in (200, 409)  # the same click again never plays twice
        s = r.json() if r.json()["phase"] == "done" else client.get("/api/state", params={"token": token}).json()
    r = move(client, token, last)  # the session's last move, replayed after it finished
    assert r.status_code == 409 and r.json()["error"] == "this session is over"
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 4  # 2 episodes x 2 rounds
    assert move(client, "no-such-token", last).status_code == 404
    assert client.get("/api/state", params={"token": "x" * 10000}).status_code == 404
    assert client.get("/api/state").status_code == 404
    study.close()


def test_security_headers_on_every_response(game, tmp_path):
    study, client, _ = make(game, tmp_path / "s.sqlite")
    for r in (client.get("/"), client.get("/app.js"), client.get("/app.css"), client.get("/nowhere"),
              client.get("/api/state", params={"token": "x"}), client.post("/api/start", json={}, headers=JSON_OK)):
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    page = client.get("/").text
    assert "<script>" not in page and "<style>" not in page and 'src="/app.js"' in page  # no inline code
    assert client.get("/app.js").headers["content-type"].startswith("text/javascript")
    study.close()


def test_rate_limits_and_idle_sessions_pruned(game, tmp_path):
    db = tmp_path / "s.sqlite"
    study, client, clock = make(game, db, start_limit=(3, 6.0), act_limit=(5, 60.0))
    tokens = [start(client, f"P{i}").json()["token"] for i in range(3)]
    r = start(client, "P9")
    assert r.status_code == 429 and int(r.headers["retry-after"]) == 10  # 6 a minute: one every 10 s
    assert len(rows(db)) == 3 and len(study.sessions) == 3
    clock.now += 10
    assert start(client, "P3").status_code == 200 and start(client, "P4").status_code == 429
    for _ in range(5):
        assert client.get("/api/state", params={"token": tokens[0]}).status_code == 200
    assert client.get("/api/state", params={"token": tokens[0]}).status_code == 429
    clock.now += 300  # P0 was seen 300 s ago, the others 310 s ago: all under idle_s = 600
    assert client.get("/api/state", params={"token": tokens[0]}).status_code == 200
    clock.now += 305  # P1..P3 idle 615 s: forgotten at the next start; P0 only 305 s
    assert start(client, "P5").status_code == 200
    assert len(study.sessions) == 2 and client.get("/api/state", params={"token": tokens[1]}).status_code == 404
    assert client.get("/api/state", params={"token": tokens[0]}).status_code == 200
    assert len(rows(db)) == 5  # the recording keeps every session
    study.close()


def test_locked_database_503_then_recovers(game, tmp_path):
    db = tmp_path / "s.sqlite"
    study, client, _ = make(game, db)
    s = start(client).json()
    token = s["token"]
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the database
    r = move(client, token, s)
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert start(client, "P2").status_code == 503
    view = client.get("/api/state", params={"token": token})  # reading still works, nothing moved
    assert view.status_code == 200 and view.json()["t"] == s["t"] and view.json()["episode"] == s["episode"]
    other.execute("ROLLBACK")
    r = move(client, token, s)  # the same move again, now played
    assert r.status_code == 200
    assert start(client, "P2").status_code == 200
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 1
    assert [p for p, _ in rows(db)] == ["P1", "P2"]
    study.close()


def test_a_move_that_fails_midway_leaves_the_session_as_it_was(game, tmp_path, monkeypatch):
    """An unexpected error after the table has stepped (here: describing the step) rolls back the database and the
    session in memory alike: it still waits on the same decision, and the same move then plays."""
    from adhoc import play

    db = tmp_path / "s.sqlite"
    study, client, _ = make(game, db)
    s = start(client).json()
    token = s["token"]
    state = study.sessions[token]
    objects = [state, *state.tables]
    kept = [dict(vars(o)) for o in objects]
    bits = state.tables[0].rng.bit_generator.state

    def broken(*args):
        raise RuntimeError("describing failed")

    with monkeypatch.context() as m:
        m.setattr(play, "describe_step", broken)
        with pytest.raises(RuntimeError, match="describing failed"):
            move(client, token, s)
    for o, fields in zip(objects, kept):
        assert all(v is fields[k] or v == fields[k] for k, v in vars(o).items()), o
    assert state.tables[0].rng.bit_generator.state == bits
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 0
    assert client.get("/api/state", params={"token": token}).json() == {k: v for k, v in s.items() if k != "token"}
    while s["phase"] == "play":  # the same move, then the rest of the session
        r = move(client, token, s)
        assert r.status_code == 200
        s = r.json()
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 4  # 2 episodes x 2 rounds
    study.close()


def test_two_servers_on_one_db_never_share_an_index(game, tmp_path, monkeypatch):
    from adhoc import serve

    db = tmp_path / "s.sqlite"
    a, client_a, _ = make(game, db)
    b, client_b, _ = make(game, db)
    seen = []
    real = serve.latin_square_order

    def b_starts_meanwhile(index, n):  # server B's participant arrives while A is between count and insert
        if not seen:
            seen.append(index)
            seen.append(client_b.post("/api/start", json={"participant": "PB", "consent": True},
                                      headers=JSON_OK).status_code)
        return real(index, n)

    monkeypatch.setattr(serve, "latin_square_order", b_starts_meanwhile)
    assert start(client_a, "PA").status_code == 200
    assert seen == [0, 503]  # B waited on A's write lock instead of counting the same index
    monkeypatch.setattr(serve, "latin_square_order", real)
    assert start(client_b, "PB").status_code == 200
    info = sqlite3.connect(db).execute("SELECT participant, json_extract(info, '$.participant_index'), "
                                       "json_extract(info, '$.partner_order'), json_extract(game, '$.name') "
                                       "FROM sessions ORDER BY id").fetchall()
    order = [json.dumps(p, separators=(",", ":")) for p in (PARTNERS, PARTNERS[::-1])]
    assert info == [("PA", 0, order[0], "repeated"), ("PB", 1, order[1], "repeated")]
    a.close()
    b.close()


@pytest.mark.parametrize("args, says", [
    (["--seed", "-1"], "--seed must be >= 0 and < 2**63 (got -1)"),
    (["--seed", str(2 ** 63)], "--seed=9223372036854775808 is not below the limit 2**63"),
    (["--episodes-per-partner", "0"], "--episodes-per-partner must be >= 1"),
    (["--episodes-per-partner", "1001"], "--episodes-per-partner must be in 1..1000"),
    (["--start-limit", "0"], "--start-limit must be in"),
    (["--port", "70000"], "--port=70000 is above the limit 65,535"),
    (["--port", "0"], "--port must be >= 1 and <= 65,535 (got 0)"),
    (["--allow-origin", "study.example.org"], "--allow-origin 'study.example.org' is not an http(s)"),
    (["--host", "192.0.2.1"], "--host 192.0.2.1 is not an address of this machine"),
    (["--trusted-proxy", "proxy.example.org"], "--trusted-proxy must be an IP address or network"),
])
def test_bad_options_one_line_exit_2_nothing_recorded(tmp_path, args, says):
    db = tmp_path / "s.sqlite"
    proc = subprocess.run([sys.executable, "-m", "adhoc.cli", "serve", "--partners", *PARTNERS,
                           "--config", str(ROOT / "configs/repeated-lever-selfplay.yaml"), "--seat", "1",
                           "--db", str(db), *args], check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ,
                               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and says in proc.stderr and "another --port" not in proc.stderr
    assert not db.exists()


def test_edges_of_the_guard(game, tmp_path):
    """A same-origin Referer (no Origin) and a charset on the JSON type are accepted; a body of exactly the
    limit is parsed, a chunked body over it (no Content-Length) is cut off at 413; a request without any Host
    header is refused."""
    import asyncio

    from adhoc.serve import MAX_BODY

    db = tmp_path / "s.sqlite"
    study, client, _ = make(game, db)
    r = client.post("/api/start", json={"participant": "P1", "consent": True}, headers={"Referer": URL + "/"})
    assert r.status_code == 200
    r = client.post("/api/start", content='{"participant": "P2", "consent": true}',
                    headers={"Content-Type": "application/json; charset=utf-8", **JSON_OK})
    assert r.status_code == 200
    exact = '{"participant": "P3", "consent": true}'
    exact = exact[:-1] + " " * (MAX_BODY - len(exact)) + "}"
    r = client.post("/api/start", content=exact, headers={"Content-Type": "application/json", **JSON_OK})
    assert len(exact) == MAX_BODY and r.status_code == 200

    def chunks():
        yield b'{"participant": "'
        for _ in range(40):
            yield b"x" * 1024
        yield b'", "consent": true}'

    r = client.post("/api/start", content=chunks(), headers={"Content-Type": "application/json", **JSON_OK})
    assert "content-length" not in r.request.headers and r.status_code == 413
    assert [p for p, _ in rows(db)] == ["P1", "P2", "P3"]

    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b"", "root_path": "",
             "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000),
             "http_version": "1.1", "asgi": {"version": "3.0"}}
    asyncio.run(client.app(scope, receive, send))
    assert sent[0]["status"] == 421 and (b"x-frame-options", b"DENY") in sent[0]["headers"]
    study.close()


@pytest.mark.parametrize("trusted", [False, True])
def test_x_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path, trusted):
    """A real server (uvicorn) with --start-limit 2: a client that sends a new X-Forwarded-For with every start
    is still one client (its third start is 429) unless its address is a --trusted-proxy; then each forwarded
    address has its own budget, and one forwarded address is limited like any client."""
    import urllib.error
    import urllib.request

    from test_serve import start_server

    args = ["--partners", *PARTNERS, "--config", str(ROOT / "configs/repeated-lever-selfplay.yaml"), "--seat", "1",
            "--start-limit", "2", *(["--trusted-proxy", "127.0.0.1"] if trusted else [])]
    proc, url = start_server(args, tmp_path / "s.sqlite")

    def start(participant, forwarded):
        req = urllib.request.Request(url + "api/start", data=json.dumps({"participant": participant,
                                                                        "consent": True}).encode(),
                                     headers={"Content-Type": "application/json", "Origin": url.rstrip("/"),
                                              "X-Forwarded-For": forwarded})
        try:
            return urllib.request.urlopen(req, timeout=60).status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        codes = [start(f"P{k}", f"198.51.100.{k}") for k in range(3)]
        same = [start(f"Q{k}", "203.0.113.7") for k in range(3)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert codes == ([200, 200, 200] if trusted else [200, 200, 429])
    assert same == ([200, 200, 429] if trusted else [429, 429, 429])
