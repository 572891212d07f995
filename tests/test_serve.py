"""``adhoc serve`` in a real headless browser (Playwright driving the system Chromium): two participants at once
are both recorded completely and apart, in counterbalanced partner orders; killing the server mid-episode
leaves every completed step in a database that opens cleanly."""

import importlib.util
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from adhoc import recording
from adhoc._torch import torch
from adhoc.games import make_game

ROOT = Path(__file__).parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
missing = [m for m in ("starlette", "uvicorn", "playwright") if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} missing: pip install -e '.[serve]'"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium: apt-get install -y chromium "
                       "(Playwright's own browser download is not used)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str], db: Path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "adhoc.cli", "serve", *args, "--port", str(port), "--db", str(db),
                             "--seed", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read())
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("adhoc serve did not answer")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


def begin(page, url: str, participant: str) -> None:
    page.goto(url)
    page.fill("#participant", participant)
    page.click("#begin")  # no consent yet: refused
    page.wait_for_selector("#consent-error:has-text('consent')")
    page.check("#agree")
    page.click("#begin")
    page.wait_for_selector("#play:not(.hidden) button.action")


def play_one(page, action: str | None = None) -> str | None:
    """Click the legal action ``action`` (its text; None: the first) of the page; the action's text (None when the
    page shows the thank-you)."""
    if page.is_visible("#done"):
        return None
    status = page.inner_text("#status")
    button = page.locator("button.action" if action is None else f"button.action[data-text='{action}']").first
    text = button.get_attribute("data-text")  # the action, whatever the button's label (a lever's shows its payoff)
    button.click()
    page.wait_for_function("s => document.getElementById('status').innerText !== s "
                           "|| !document.getElementById('done').classList.contains('hidden')", arg=status)
    return text


def test_two_participants_at_once(browser, tmp_path):
    db = tmp_path / "study.sqlite"
    pops = [str(ROOT / "populations/lever-selfplay"), str(ROOT / "populations/lever-otherplay")]
    proc, url = start_server(["--partners", *pops, "--episodes-per-partner", "2"], db)
    try:
        contexts = [browser.new_context(), browser.new_context()]  # two people, no shared cookies or storage
        pages = [c.new_page() for c in contexts]
        for page, who in zip(pages, ["P1", "P2"]):
            begin(page, url, who)
        clicked = {0: [], 1: []}
        for rounds in range(100):  # interleaved: P1, P2, P1, P2, ...
            moves = [play_one(page) for page in pages]
            if rounds == 0:  # a reloaded page continues its session (no new one)
                status = pages[0].inner_text("#status")
                pages[0].reload()
                pages[0].wait_for_selector("#play:not(.hidden) button.action")
                assert pages[0].inner_text("#status") == status
            for k, m in enumerate(moves):
                if m is not None:
                    clicked[k].append(m)
            if all(m is None for m in moves):
                break
        for page in pages:
            assert "Thank you" in page.inner_text("#done") and "over 4 episodes" in page.inner_text("#final")
        for c in contexts:
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    conn = recording.open_recording(db)
    sessions = conn.execute("SELECT id, participant, ended IS NOT NULL, info FROM sessions ORDER BY id").fetchall()
    assert [(p, ended) for _, p, ended, _ in sessions] == [("P1", 1), ("P2", 1)]
    steps = list(recording.iter_steps(conn))
    orders = []
    for k, (session, participant, _, _) in enumerate(sessions):
        mine = [s for s in steps if s["session"] == session]
        assert all(s["participant"] == participant for s in mine)
        assert [s["episode_number"] for s in mine] == [1, 2, 3, 4] and all(s["episode_complete"] for s in mine)
        assert [s["action_text"] for s in mine] == clicked[k]  # every click, in order, in its own session
        orders.append([s["partner_population"] for s in mine])
    # counterbalanced: the Latin square gives P1 the partners in one order, P2 in the other
    assert orders[0] == [pops[0]] * 2 + [pops[1]] * 2 and orders[1] == [pops[1]] * 2 + [pops[0]] * 2
    # the browser recordings clone into one proxy per participant
    from adhoc.recipes.train_proxy import train_proxy

    proxies = train_proxy(db, out=tmp_path / "proxies", iterations=3, progress=False)
    assert proxies.names == ["proxy-P1", "proxy-P2"]
    assert [m["heldout"]["decisions"] + m["train"]["decisions"] for m in proxies.members] == [4, 4]


def test_killed_mid_episode_keeps_every_completed_step(browser, tmp_path):
    db = tmp_path / "study.sqlite"
    proc, url = start_server(["--partners", "scripted:repeated:stubborn-2", "scripted:repeated:copy-3",
                              "--config", str(ROOT / "configs/repeated-lever-selfplay.yaml"), "game.rounds=3",
                              "--seat", "1"], db)
    context = browser.new_context()
    page = context.new_page()
    try:
        begin(page, url, "P7")
        rules = page.inner_text("#rules")  # the rules, from the game's own parameters, above every move
        assert "Lever 0 pays 0.9 if you both pull it" in rules and "You play this 3 times (rounds)" in rules
        assert "Round 1 of 3" in page.inner_text("#observation"), page.inner_text("#observation")
        for _ in range(4):  # one whole episode of 3 rounds, and the first round of the next
            assert play_one(page) is not None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        context.close()
    assert proc.returncode == -signal.SIGKILL
    conn = recording.open_recording(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("SELECT e.number, e.ended IS NOT NULL, e.steps, COUNT(s.id) FROM episodes e LEFT JOIN "
                        "steps s ON s.episode_id = e.id GROUP BY e.id ORDER BY e.number").fetchall()
    assert rows == [(1, 1, 3, 3), (2, 0, 1, 1)]
    assert recording.stats(db)["steps"] == 4
    assert sqlite3.connect(db).execute("SELECT partner FROM episodes").fetchall() == [
        ("scripted-repeated/stubborn-2",)] * 2


def test_csp_page_plays_and_cross_origin_page_is_refused(browser, tmp_path):
    """With the Content-Security-Policy in force the page still plays a whole session (no CSP violation in the
    console), and a page of another origin can neither start a session with a simple cross-site POST nor read
    the API: nothing it sends is recorded."""
    import http.server
    import threading

    db = tmp_path / "study.sqlite"
    proc, url = start_server(["--partners", "scripted:repeated:stubborn-2", "scripted:repeated:copy-3",
                              "--config", str(ROOT / "configs/repeated-lever-selfplay.yaml"), "game.rounds=2",
                              "--seat", "1", "--episodes-per-partner", "1"], db)

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!doctype html><title>elsewhere</title><p>another site</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        console = []
        page.on("console", lambda m: console.append(m.text))
        begin(page, url, "P1")
        assert page.evaluate("getComputedStyle(document.querySelector('#consent')).display") == "none"  # app.css
        moves = 0
        while play_one(page) is not None:
            moves += 1
        assert moves == 4 and "over 2 episodes" in page.inner_text("#final")
        assert not [m for m in console if "Content Security Policy" in m], console

        evil = context.new_page()
        evil.goto(f"http://127.0.0.1:{attacker.server_address[1]}/")
        outcome = evil.evaluate("""async (api) => {
            const simple = await fetch(api + "api/start", {method: "POST", mode: "no-cors",
                headers: {"Content-Type": "text/plain"}, body: '{"participant": "EVIL", "consent": true}'});
            let read;
            try {
                const r = await fetch(api + "api/start", {method: "POST", headers: {"Content-Type":
                    "application/json"}, body: JSON.stringify({participant: "EVIL2", consent: true})});
                read = "read " + r.status;
            } catch (e) { read = "refused"; }
            return [simple.type, read];
        }""", url)
        assert outcome == ["opaque", "refused"]
    finally:
        context.close()
        attacker.shutdown()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    sessions = sqlite3.connect(db).execute("SELECT participant, ended IS NOT NULL FROM sessions").fetchall()
    assert sessions == [("P1", 1)]  # the other origin's two attempts recorded nothing


def test_forty_participants_at_once_lose_nothing(tmp_path):
    """40 participants through the HTTP API at once (one thread each, all from this one address, as behind a
    lab's NAT): every session completes with every move recorded once, each with its own Latin-square index.
    A client answered 429 or 503 sends the same request again, as the page does."""
    import json
    import threading

    db = tmp_path / "study.sqlite"
    proc, url = start_server(["--partners", "scripted:repeated:stubborn-2", "scripted:repeated:copy-3",
                              "--config", str(ROOT / "configs/repeated-lever-selfplay.yaml"), "game.rounds=3",
                              "--seat", "1", "--episodes-per-partner", "1", "--start-limit", "40"], db)
    origin = url.rstrip("/")

    def call(path, body=None):
        for _ in range(200):
            req = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json", "Origin": origin})
            try:
                return json.load(urllib.request.urlopen(req, timeout=60))
            except urllib.error.HTTPError as exc:
                if exc.code not in (429, 503):
                    raise AssertionError(f"{path}: {exc.code} {exc.read()!r}") from None
                time.sleep(0.05)
        raise AssertionError(f"{path}: still refused")

    played, errors = {}, []

    def participant(k):
        try:
            s = call("api/start", {"participant": f"P{k:02d}", "consent": True})
            token, clicks = s["token"], 0
            while s["phase"] == "play":
                s = call("api/act", {"token": token, "episode": s["episode"], "t": s["t"],
                                     "action": s["actions"][k % len(s["actions"])]["index"]})
                clicks += 1
            played[f"P{k:02d}"] = clicks
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(repr(exc))

    threads = [threading.Thread(target=participant, args=(k,)) for k in range(40)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert errors == [] and len(played) == 40 and set(played.values()) == {6}
    conn = sqlite3.connect(db)
    sessions = conn.execute("SELECT participant, ended IS NOT NULL, json_extract(info, '$.participant_index') "
                            "FROM sessions").fetchall()
    assert sorted(p for p, _, _ in sessions) == sorted(played) and all(ended for _, ended, _ in sessions)
    assert sorted(i for _, _, i in sessions) == list(range(40))
    steps = conn.execute("SELECT s.participant, COUNT(*) FROM steps s GROUP BY s.participant").fetchall()
    assert dict(steps) == played  # every move once, none lost, none doubled


@pytest.mark.parametrize("args, rules, view", [
    (["--partners", str(ROOT / "populations/lever-selfplay"), "--config", str(ROOT / "configs/lever-selfplay.yaml")],
     ["Lever 0 pays 0.9 if you both pull it", "levers 1-9 pay 1.0"], "Pull a lever."),
    (["--partners", "scripted:warehouse:direct-rotate", "--config", str(ROOT / "configs/warehouse-selfplay.yaml")],
     ["You are the robot (seat 0)", "only the teacher sees it"], "your move"),
])
def test_the_page_states_the_rules_from_the_games_parameters(browser, tmp_path, args, rules, view):
    """What scripts/screenshots.py shows in docs/people.md: the rules box and the state in words."""
    proc, url = start_server(args, tmp_path / "study.sqlite")
    page = browser.new_page()
    try:
        begin(page, url, "P1")
        shown = page.inner_text("#rules")
        assert all(r in shown for r in rules), shown
        assert view in page.inner_text("#observation")
        assert play_one(page) is not None
        assert page.inner_text("#log").startswith("You "), page.inner_text("#log")  # the move, in words
    finally:
        page.close()
        proc.terminate()
        proc.wait(timeout=30)


def test_a_stale_tab_resyncs_and_says_so_and_long_errors_wrap(browser, tmp_path):
    """Two tabs on one session (a duplicated tab): a move from the stale one is not played, the tab says so and
    shows the move the server waits for; the recording holds each move once. An over-long id's error wraps
    inside the page instead of widening it."""
    db = tmp_path / "study.sqlite"
    proc, url = start_server(["--partners", "scripted:repeated:stubborn-2", "--config",
                              str(ROOT / "configs/repeated-lever-selfplay.yaml"), "game.rounds=3", "--seat", "1"], db)
    context = browser.new_context(viewport={"width": 800, "height": 700})
    try:
        first = context.new_page()
        first.goto(url)
        first.fill("#participant", "x" * 5000)
        first.check("#agree")
        first.click("#begin")
        first.wait_for_selector("#consent-error:not(:empty)")
        assert first.evaluate("document.documentElement.scrollWidth") <= 800
        begin(first, url, "P9")
        token = first.evaluate("sessionStorage.getItem('adhoc-token')")
        second = context.new_page()
        second.goto(url)
        second.evaluate(f"sessionStorage.setItem('adhoc-token', {token!r})")
        second.reload()
        second.wait_for_selector("#play:not(.hidden) button.action")
        assert play_one(first) is not None  # the first tab moves on; the second still shows round 1
        status = second.inner_text("#status")
        second.locator("button.action").first.click()
        second.wait_for_function("s => document.getElementById('notice').innerText !== ''", arg=status)
        assert "That move was not played" in second.inner_text("#notice")
        assert second.inner_text("#status") == first.inner_text("#status")  # now where the server is
    finally:
        context.close()
        proc.terminate()
        proc.wait(timeout=30)
    assert recording.stats(db)["steps"] == 1


@pytest.mark.parametrize("seat", ["0", "1"])
def test_a_person_is_paid_their_own_seat_in_a_general_sum_game(tmp_path, seat):
    """The iterated prisoner's dilemma served (HTTP API): a person who always cooperates with always-defect is
    paid the sucker's payoff S = 0 every round, whichever seat they sit in, while the partner's T = 5 would be
    recorded if the served reward were seat 0's (or the pair's). The recording and the score say the same."""
    import json

    db = tmp_path / "study.sqlite"
    proc, url = start_server(["--partners", "scripted:repeated:always-defect", "--config",
                              str(ROOT / "configs/ipd-selfplay.yaml"), "--seat", seat, "--episodes-per-partner", "2"],
                             db)
    origin = url.rstrip("/")

    def call(path, body):
        req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "Origin": origin})
        return json.load(urllib.request.urlopen(req, timeout=60))

    try:
        page = urllib.request.urlopen(url, timeout=60).read().decode()
        assert "Play a mixed-motive game" in page and "each have your own score" in page and "together" not in page
        s = call("api/start", {"participant": "P1", "consent": True})
        token = s["token"]
        while s["phase"] == "play":
            cooperate = next(a["index"] for a in s["actions"] if a["text"].strip() == "C")
            s = call("api/act", {"token": token, "episode": s["episode"], "t": s["t"], "action": cooperate})
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert s["phase"] == "done" and s["score"] == 0 and s["episodes_played"] == 2
    rows = sqlite3.connect(db).execute("SELECT seat, action_text, partner_action_text, reward FROM steps").fetchall()
    assert len(rows) == 8 and {r[0] for r in rows} == {int(seat)}
    assert all(r[1].strip() == "C" and r[2].strip() == "D" and r[3] == 0.0 for r in rows), rows


# ---------------------------------------------------------------- the game drawn
@dataclass
class Fixed:
    """A scripted partner that always plays ``action`` (for games no population or scripted spec plays)."""

    name: str
    action: int
    seats: tuple[int, ...] = (0, 1)

    def log_probs(self, game, state, seat):
        out = torch.full((state.n_episodes, len(game.action_names(seat))), float("-inf"))
        out[:, self.action] = 0.0
        return out


@contextmanager
def served(game, partners: list, tmp_path: Path, seat: int = 0):
    """``game`` served in this process, so a test can read the state the page must draw: (the Study, its URL).
    A partner is a spec or a scripted strategy object (``Fixed``)."""
    import threading

    import uvicorn

    from adhoc import play
    from adhoc.serve import Study, build_app

    fixed = {p.name: play.Partner(label="fixed", source=p.name, names=[p.name], seats=p.seats, strategies=[p])
             for p in partners if not isinstance(p, str)}
    load = play.load_partner
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(play, "load_partner", lambda spec, game: fixed.get(spec) or load(spec, game))
        study = Study(game, [p if isinstance(p, str) else p.name for p in partners], tmp_path / "study.sqlite",
                      seat=seat, seed=0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(study, port=port), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "the in-process server did not start"
        yield study, f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        study.close()


def game_state(study):
    """The state of the one session's game now (what the page shows)."""
    with study.lock:
        (session,) = study.sessions.values()
        return session.tables[session.k].state


def table_text(page, rows: str) -> list[list[str]]:
    """The text of each cell of the table rows ``rows`` (a selector)."""
    return page.eval_on_selector_all(rows, "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")


def test_lever_buttons_show_what_each_lever_pays(browser, tmp_path):
    """Seven levers, lever 3 the unique one at 0.5: the buttons say what each pays, from the game's parameters."""
    game = make_game("lever", n_levers=7, unique_lever=3, unique_payoff=0.5)
    with served(game, [Fixed("lever-3", 3)], tmp_path) as (study, url):
        page = browser.new_page()
        begin(page, url, "P1")
        assert page.locator("button.action").all_inner_texts() == [
            f"Lever {k} \u2014 pays {'0.5' if k == 3 else '1.0'}" for k in range(7)]
        assert play_one(page, "3") == "3"
        assert "You pulled lever 3; your partner pulled lever 3; reward 0.500." in page.inner_text("#log")
        page.close()


@pytest.mark.parametrize("params, seat, partner, click, table, reward", [
    ({"payoff": [[1, 0, 5], [0, 2, 0]], "actions": [["Stag", "Hare"], ["s", "h", "w"]]}, 1, 0, "w",
     [["You \\ partner", "Stag", "Hare"], ["s", "1.0", "0.0"], ["h", "0.0", "2.0"], ["w", "5.0", "0.0"]], "5.000"),
    ({"payoffs": [[[3, 0], [5, 1]], [[3, 5], [0, 1]]], "actions": ["C", "D"]}, 0, 0, "D",
     [["You \\ partner", "C", "D"], ["C", "3.0, 3.0", "0.0, 5.0"], ["D", "5.0, 0.0", "1.0, 1.0"]], "5.000"),
])
def test_a_matrix_game_is_drawn_as_its_payoff_table(browser, tmp_path, params, seat, partner, click, table, reward):
    """A YAML matrix (any action names, one common table or one per seat): rows are the person's actions, each
    with its button, columns the partner's; each cell the person's payoff (and the partner's, when not common)."""
    with served(make_game("matrix", **params), [Fixed("fixed", partner)], tmp_path, seat=seat) as (study, url):
        page = browser.new_page()
        begin(page, url, "P1")
        assert table_text(page, "#payoffs tr") == table
        buttons = page.locator("#payoffs tbody th button.action")
        assert buttons.all_inner_texts() == [row[0] for row in table[1:]]
        assert page.locator("button.action").count() == buttons.count()  # the moves are the table's rows
        assert play_one(page, click) == click
        assert f"You chose {click}; your partner chose {table[0][1 + partner]}; reward {reward}." in \
            page.inner_text("#log")
        page.close()


def test_repeated_lever_history_grows_with_the_rounds(browser, tmp_path):
    """Seat 1 against stubborn-2 on 7 levers: the history table has a row per round played, with both levers and
    what the round paid, beside the stage game's buttons."""
    game = make_game("repeated", stage="lever", rounds=3, stage_params={"n_levers": 7})
    with served(game, ["scripted:repeated:stubborn-2"], tmp_path, seat=1) as (study, url):
        page = browser.new_page()
        begin(page, url, "P1")
        assert table_text(page, "#history thead tr") == [["Round", "You", "Partner", "Reward"]]
        assert table_text(page, "#history tbody tr") == []
        assert "now round 1 of 3" in page.inner_text("#history caption")
        assert page.locator("button.action").all_inner_texts() == ["Lever 0 \u2014 pays 0.9"] + [
            f"Lever {k} \u2014 pays 1.0" for k in range(1, 7)]
        play_one(page, "2")
        assert table_text(page, "#history tbody tr") == [["1", "2", "2", "1.0"]]
        play_one(page, "0")
        assert table_text(page, "#history tbody tr") == [["1", "2", "2", "1.0"], ["2", "0", "2", "0.0"]]
        assert "now round 3 of 3" in page.inner_text("#history caption")
        assert [h[0].tolist() for h in game_state(study).history] == [[2, 2], [2, 0]]  # seat 0 is the partner
        page.close()


@pytest.mark.parametrize("seat", [0, 1])
def test_warehouse_grid_has_the_games_size_and_the_robot_where_the_state_has_it(browser, tmp_path, seat):
    """A 5 x 4 warehouse: the grid has 4 rows of 5 cells, y up from the bottom; the robot's cell, and its path this
    episode, are the state's after a move; the goal is drawn for the teacher (seat 1) only."""
    game = make_game("warehouse", width=5, height=4, moves=2, episodes=2)
    partner = ["scripted:warehouse:direct-rotate"] if seat == 0 else [Fixed("up", 0)]
    with served(game, partner, tmp_path, seat=seat) as (study, url):
        page = browser.new_page()
        begin(page, url, "P1")
        assert table_text(page, "#grid thead tr") == [["y \\ x", "0", "1", "2", "3", "4"]]
        rows = table_text(page, "#grid tbody tr")
        assert [r[0] for r in rows] == ["3", "2", "1", "0"] and all(len(r) == 6 for r in rows)

        def cells(kind: str) -> list[list[int]]:
            """The cells of ``kind`` as (x, y) read off their column's and row's headers."""
            found = page.eval_on_selector_all(f"#grid td.{kind}", """cs => cs.map(c => [
                [+c.closest("table").tHead.rows[0].cells[c.cellIndex].innerText, +c.parentElement.cells[0].innerText],
                [+c.dataset.x, +c.dataset.y]])""")
            assert all(shown == data for shown, data in found)
            return [shown for shown, _ in found]

        start = game_state(study).extra["pos"][0].tolist()
        assert cells("robot") == [start]
        goal = game_state(study).extra["goal"][0].tolist()
        assert cells("goal") == ([goal] if seat == 1 else [])
        play_one(page, "left" if seat == 0 else None)  # the robot moves (left, or up as the fixed robot does)
        now = game_state(study).extra["pos"][0].tolist()
        assert now == ([max(start[0] - 1, 0), start[1]] if seat == 0 else [start[0], min(start[1] + 1, 3)])
        assert cells("robot") == [now]
        assert sorted(cells("path")) == sorted([list(c) for c in {tuple(start), tuple(now)}])
        assert "move 2 of 2" in page.inner_text("#drawing")
        page.close()


FACING = {(0, -1): "up", (0, 1): "down", (1, 0): "right", (-1, 0): "left"}  # the package's orientations


@pytest.mark.parametrize("seat", [0, 1])
def test_overcooked_kitchen_is_the_servers_state_and_the_keys_play(browser, tmp_path, seat):
    """Overcooked on cramped_room: the kitchen has the layout's cells (each its terrain), the two cooks where the
    state has them (you and your partner apart, each facing its way), what they hold, the pot and the time left;
    an arrow key and a button both play a move, which the next drawing shows; the CSP refuses nothing."""
    pytest.importorskip("overcooked_ai_py")
    from adhoc.games.overcooked import ACTIONS

    game = make_game("overcooked", layout="cramped_room", horizon=20)
    with served(game, [Fixed("right", ACTIONS.index("right"))], tmp_path, seat=seat) as (study, url):
        page, console = browser.new_page(), []
        page.on("console", lambda m: console.append(m.text))
        page.on("pageerror", lambda e: console.append(f"script error: {e}"))
        begin(page, url, "P1")
        assert table_text(page, "#kitchen thead tr") == [["y \\ x", "0", "1", "2", "3", "4"]]
        assert [r[0] for r in table_text(page, "#kitchen tbody tr")] == ["0", "1", "2", "3"]
        terrain = page.eval_on_selector_all("#kitchen tbody tr", "rows => rows.map(r => [...r.cells].slice(1).map("
                                            "c => c.dataset.terrain).join(''))")
        assert terrain == game.terrain == ["XXPXX", "O...O", "X...X", "XDXSX"]
        assert page.eval_on_selector_all("#kitchen td.pot", "cs => cs.map(c => c.innerText)") == ["pot\nempty"]

        def cooks() -> dict:
            """Each cook as drawn: (x, y) read off the headers and the cell's data, facing, what it holds."""
            found = page.eval_on_selector_all("#kitchen td.you, #kitchen td.partner", """cs => cs.map(c => [
                c.classList.contains("you") ? "you" : "partner",
                [+c.closest("table").tHead.rows[0].cells[c.cellIndex].innerText, +c.parentElement.cells[0].innerText],
                [+c.dataset.x, +c.dataset.y], c.querySelector(".cook").dataset.facing,
                c.querySelector(".held") ? c.querySelector(".held").innerText : null])""")
            assert all(shown == data for _, shown, data, _, _ in found)
            return {who: (shown, facing, held) for who, shown, _, facing, held in found}

        def state() -> dict:
            """The server's state, as the drawing must show it."""
            s = game_state(study).extra["states"][0]
            view = {}
            for k, p in enumerate(s.players):
                held = f"holds {p.held_object.name}" if p.held_object else None
                view["you" if k == seat else "partner"] = (list(p.position), FACING[p.orientation], held)
            return view

        def press(key: str) -> None:
            status = page.inner_text("#status")
            page.keyboard.press(key)
            page.wait_for_function("s => document.getElementById('status').innerText !== s", arg=status)

        start = cooks()
        assert start == state() and start["you"][0] == [[1, 2], [3, 1]][seat]
        assert "20 of 20 steps left." in page.inner_text("#drawing")
        assert page.locator("button.action").all_inner_texts() == ["\u2191 up", "\u2193 down", "\u2192 right",
                                                                  "\u2190 left", "stay", "pick"]
        moved = "down" if seat == 0 else "right"  # face the dish box / the onion box
        press("Arrow" + moved.capitalize())
        assert cooks() == state() and cooks()["you"][1] == moved
        assert f"You moved {moved}; your partner moved right." in page.inner_text("#log")
        play_one(page, "pick")
        assert cooks() == state() and cooks()["you"][2] == ("holds dish" if seat == 0 else "holds onion")
        assert "18 of 20 steps left." in page.inner_text("#drawing")
        rows = recording.read_steps(study.db)
        assert [(r["t"], r["action_text"], r["partner_action_text"]) for r in rows] == \
            [(0, moved, "right"), (1, "pick", "right")]
        assert not [m for m in console if "Content Security Policy" in m or m.startswith("script error")], console
        page.close()
