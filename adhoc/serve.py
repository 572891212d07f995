"""``adhoc serve --partners POP [POP...]``: the play of ``adhoc play`` in a browser, for a small human study.

A participant opens the page, gives a participant id and ticks the consent line; the server then assigns the
partners in a counterbalanced order (a cyclic Latin square over the partners, by the participant's index: the
number of web sessions the database held when they started, so a restarted server continues the square), and the
participant plays ``episodes_per_partner`` episodes with each partner in that order (partners are shown only as
"partner A", "partner B", ... in the order met), then sees a thank-you page.

Every step goes through ``adhoc.play.Table`` into the same recording database and schema as ``adhoc play`` (one
transaction per step). Several participants play at once: each session's state (its tables, the decision it
waits on) lives in the server under a random token; model calls and database writes are serialised by one
lock. A move names the decision it answers (episode and step), so a repeated or stale click never plays twice.

Starlette + uvicorn (the optional extra ``pip install -e ".[serve]"``); the page is plain HTML and JavaScript
(no build step), served from this module.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adhoc.errors import UserError
from adhoc.paths import check_name


def latin_square_order(index: int, n: int) -> list[int]:
    """Row ``index`` of the cyclic Latin square of order n: every partner is met in every position equally often
    over n consecutive participants."""
    return [(index + j) % n for j in range(n)]


@dataclass
class WebSession:
    participant: str
    session: int
    order: list[int]  # partner indices in the order played
    tables: list[Any]  # adhoc.play.Table per partner in ``order``
    k: int = 0  # position in ``order``
    episodes_here: int = 0  # episodes started with the current partner
    decision: Any = None
    log: list[str] = field(default_factory=list)  # what happened since the last decision
    finished: bool = False


class Study:
    """The server's state: the game, the partners, the recorder and the open sessions."""

    def __init__(self, game, partner_specs: list[str], db: str | Path, episodes_per_partner: int = 3,
                 seat: int = 0, seed: int | None = None) -> None:
        from adhoc.play import load_partner
        from adhoc.recording import Recorder

        if episodes_per_partner < 1:
            raise UserError(f"--episodes-per-partner must be >= 1 (got {episodes_per_partner})")
        if seat not in (0, 1):
            raise UserError(f"--seat must be 0 or 1 (got {seat})")
        self.game, self.seat, self.episodes = game, seat, episodes_per_partner
        self.specs = list(partner_specs)
        self.partners = [load_partner(spec, game) for spec in self.specs]
        for spec, partner in zip(self.specs, self.partners):
            if 1 - seat not in partner.seats:
                raise UserError(f"partner {spec} plays seat {list(partner.seats)} only; participants take seat {seat}")
        self.db = Path(db)
        self.recorder = Recorder.open(self.db)
        self.seed = secrets.randbits(32) if seed is None else int(seed)
        self.lock = threading.Lock()
        self.sessions: dict[str, WebSession] = {}

    def close(self) -> None:
        self.recorder.close()

    def start(self, participant: str, consent: bool) -> str:
        from adhoc.play import Table, _game_dict

        participant = check_name(str(participant).strip(), "participant id")
        if not consent:
            raise UserError("consent is needed to take part")
        with self.lock:
            index = self.recorder.conn.execute("SELECT COUNT(*) FROM sessions WHERE source = 'web'").fetchone()[0]
            order = latin_square_order(index, len(self.partners))
            session = self.recorder.start_session(
                participant, "web", _game_dict(self.game), self.seat, consent=True,
                info={"participant_index": index, "partner_order": [self.specs[i] for i in order],
                      "episodes_per_partner": self.episodes, "seed": [self.seed, index]})
            rng = np.random.default_rng([self.seed, index])
            tables = [Table(self.game, self.partners[i], self.seat, self.recorder, session, participant, rng)
                      for i in order]
            token = secrets.token_urlsafe(16)
            self.sessions[token] = state = WebSession(participant, session, order, tables)
            self._next_decision(state)
        return token

    def _table(self, state: WebSession):
        return state.tables[state.k]

    def _next_decision(self, state: WebSession) -> None:
        """Advance ``state`` to the participant's next decision, starting episodes and partners as needed."""
        while not state.finished:
            table = self._table(state)
            if table.state is None or table.done:
                if state.episodes_here == self.episodes:
                    state.k, state.episodes_here = state.k + 1, 0
                    if state.k == len(state.order):
                        state.finished = True
                        self.recorder.end_session(state.session)
                        return
                    state.log.append(f"Now a new partner: partner {chr(65 + state.k)}.")
                    continue
                number = sum(len(t.returns) for t in state.tables) + 1
                table.new_episode(number)
                state.episodes_here += 1
            decision, events = table.advance()
            self._describe(state, events)
            if decision is not None:
                state.decision = decision
                return
            self._episode_end(state)

    def _describe(self, state: WebSession, events) -> None:
        for e in events:
            if e.human_chose:
                state.log.append(f"You played {e.action_text}; your partner played {e.partner_action_text}. "
                                 f"Reward {e.reward:.3f}.")
            elif e.partner_chose:
                state.log.append(f"Your partner played {e.partner_action_text}. Reward {e.reward:.3f}.")

    def _episode_end(self, state: WebSession) -> None:
        table = self._table(state)
        total = sum(sum(t.returns) for t in state.tables)
        played = sum(len(t.returns) for t in state.tables)
        state.log.append(f"Episode over: return {table.returns[-1]:.3f}. Your score so far: {total:.3f} over "
                         f"{played} episode{'s' * (played != 1)}.")

    def act(self, token: str, episode: int, t: int, action: int) -> None:
        state = self._get(token)
        with self.lock:
            decision, table = state.decision, self._table(state)
            # a stale or repeated click (not the decision waited on) plays nothing
            if state.finished or decision is None or table.episode_number != episode or decision.t != t \
                    or action not in decision.legal_index:
                return
            state.decision, state.log = None, []
            event = table.act(decision, action)
            self._describe(state, [event])
            if event.done:
                self._episode_end(state)
            self._next_decision(state)

    def _get(self, token: str) -> WebSession:
        state = self.sessions.get(token)
        if state is None:
            raise KeyError(token)
        return state

    def view(self, token: str) -> dict[str, Any]:
        state = self._get(token)
        with self.lock:
            base = {"participant": state.participant, "log": list(state.log),
                    "score": round(sum(sum(t.returns) for t in state.tables), 4),
                    "episodes_played": sum(len(t.returns) for t in state.tables),
                    "episodes_total": self.episodes * len(state.order)}
            if state.finished:
                return {**base, "phase": "done"}
            d, table = state.decision, self._table(state)
            return {**base, "phase": "play", "partner": f"partner {chr(65 + state.k)}",
                    "episode": table.episode_number, "episode_with_partner": state.episodes_here,
                    "episodes_per_partner": self.episodes, "t": d.t, "observation": d.observation,
                    "actions": [{"index": i, "text": a} for i, a in zip(d.legal_index, d.legal)]}


def build_app(study: Study):
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    async def index(request: Request):
        return HTMLResponse(PAGE.replace("__GAME__", study.game.name))

    async def start(request: Request):
        try:
            body = await request.json()
            token = await run_in_threadpool(study.start, body.get("participant", ""), bool(body.get("consent")))
        except UserError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except (ValueError, AttributeError):
            return JSONResponse({"error": "bad request"}, status_code=400)
        return JSONResponse({"token": token, **await run_in_threadpool(study.view, token)})

    async def state(request: Request):
        try:
            return JSONResponse(await run_in_threadpool(study.view, request.query_params.get("token", "")))
        except KeyError:
            return JSONResponse({"error": "unknown session"}, status_code=404)

    async def act(request: Request):
        try:
            body = await request.json()
            token = str(body["token"])
            await run_in_threadpool(study.act, token, int(body["episode"]), int(body["t"]), int(body["action"]))
            return JSONResponse(await run_in_threadpool(study.view, token))
        except KeyError:
            return JSONResponse({"error": "unknown session or missing field"}, status_code=404)
        except (ValueError, TypeError, AttributeError):
            return JSONResponse({"error": "bad request"}, status_code=400)

    return Starlette(routes=[Route("/", index), Route("/api/start", start, methods=["POST"]),
                             Route("/api/state", state), Route("/api/act", act, methods=["POST"])])


def serve_command(partners: list[str], port: int = 8000, host: str = "127.0.0.1", db: str | None = None,
                  episodes_per_partner: int = 3, seat: int = 0, config: str | None = None,
                  overrides: list[str] = (), seed: int | None = None) -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise UserError('adhoc serve needs the serve extra: pip install -e ".[serve]"') from None
    from adhoc.games import build_game
    from adhoc.paths import split_member
    from adhoc.play import check_db_path, default_db, game_of
    from adhoc.population import Population
    from adhoc.scripted import PREFIX, is_scripted_spec

    if not partners:
        raise UserError("give at least one partner: --partners POP [POP ...]")
    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535 (got {port})")
    if config is not None:
        game = game_of(config, list(overrides))
    else:
        populations = [p for p in partners if not is_scripted_spec(p)]
        game = build_game(Population.load(split_member(populations[0])[0]).game if populations
                          else {"name": partners[0][len(PREFIX):].partition(":")[0]})
    if db is not None:
        check_db_path(db)
    _check_port(host, port)
    study = Study(game, partners, db or default_db(), episodes_per_partner=episodes_per_partner, seat=seat, seed=seed)
    print(f"adhoc serve: {game.name} with {len(partners)} partner{'s' * (len(partners) != 1)}, "
          f"{episodes_per_partner} episodes each; recording to {study.db}\n"
          f"open http://{host}:{port}/ (Ctrl-C stops; every completed step is saved)", flush=True)
    try:
        uvicorn.run(build_app(study), host=host, port=port, log_level="warning")
    finally:
        study.close()


def _check_port(host: str, port: int) -> None:
    """One line, before anything loads, when the address cannot be listened on (taken, or not this machine's)."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port") from None


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>adhoc study: __GAME__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
pre { background: #f4f4f4; padding: .8rem; white-space: pre-wrap; }
button { margin: .2rem; padding: .4rem .9rem; font-size: 1rem; }
.log { color: #333; } .error { color: #b00; } .hidden { display: none; }
</style></head><body>
<h1>Play a cooperative game</h1>
<section id="consent">
  <p>You will play a short cooperative game (<b>__GAME__</b>) with a few computer partners, one after another.
  You and your partner score together. Your moves, the time you take and your participant id are recorded for
  research; nothing else about you is stored.</p>
  <p><label>Participant id <input id="participant" autocomplete="off" placeholder="e.g. P01"></label></p>
  <p><label><input type="checkbox" id="agree"> I agree to take part and to have my play recorded.</label></p>
  <button id="begin">Begin</button> <span id="consent-error" class="error"></span>
</section>
<section id="play" class="hidden">
  <p id="status"></p>
  <div id="log" class="log"></div>
  <p>What you see:</p><pre id="observation"></pre>
  <p>Your move:</p><div id="actions"></div>
</section>
<section id="done" class="hidden">
  <h2>Thank you!</h2>
  <p id="final"></p><p>You can close this page now.</p>
</section>
<script>
let token = null, current = null;
const $ = (id) => document.getElementById(id);
async function post(url, body) {
  const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  return [r.ok, await r.json()];
}
function show(s) {
  current = s;
  $("log").innerHTML = "";
  for (const line of s.log) { const p = document.createElement("p"); p.textContent = line; $("log").appendChild(p); }
  if (s.phase === "done") {
    $("play").classList.add("hidden"); $("done").classList.remove("hidden");
    $("final").textContent = "Your score: " + s.score.toFixed(3) + " over " + s.episodes_played + " episodes.";
    return;
  }
  $("status").textContent = "Playing with " + s.partner + ": episode " + s.episode_with_partner + " of " +
    s.episodes_per_partner + ", step " + (s.t + 1) + " (" + s.episodes_played + " of " + s.episodes_total +
    " episodes done). Score: " + s.score.toFixed(3);
  $("observation").textContent = s.observation;
  $("actions").innerHTML = "";
  for (const a of s.actions) {
    const b = document.createElement("button");
    b.textContent = a.text; b.dataset.action = a.index; b.className = "action";
    b.onclick = () => act(a.index);
    $("actions").appendChild(b);
  }
}
async function act(index) {
  for (const b of document.querySelectorAll("button.action")) b.disabled = true;
  const [ok, s] = await post("/api/act", {token, episode: current.episode, t: current.t, action: index});
  if (ok) show(s); else $("status").textContent = s.error;
}
$("begin").onclick = async () => {
  const [ok, s] = await post("/api/start", {participant: $("participant").value, consent: $("agree").checked});
  if (!ok) { $("consent-error").textContent = s.error; return; }
  token = s.token;
  sessionStorage.setItem("adhoc-token", token);
  $("consent").classList.add("hidden"); $("play").classList.remove("hidden");
  show(s);
};
(async () => {  // a reloaded page continues its session (the token lives in this tab only)
  const saved = sessionStorage.getItem("adhoc-token");
  if (!saved) return;
  const r = await fetch("/api/state?token=" + encodeURIComponent(saved));
  if (!r.ok) { sessionStorage.removeItem("adhoc-token"); return; }
  token = saved;
  $("consent").classList.add("hidden"); $("play").classList.remove("hidden");
  show(await r.json());
})();
</script></body></html>
"""
