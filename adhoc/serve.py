"""``adhoc serve --partners POP [POP...]``: the play of ``adhoc play`` in a browser, for a small human study.

A participant opens the page, gives a participant id and ticks the consent line; the server then assigns the
partners in a counterbalanced order (a cyclic Latin square over the partners, by the participant's index: the
number of web sessions the database held when they started, so a restarted server continues the square), and the
participant plays ``episodes_per_partner`` episodes with each partner in that order (partners are shown only as
"partner A", "partner B", ... in the order met), then sees a thank-you page.

Every step goes through ``adhoc.play.Table`` into the same recording database and schema as ``adhoc play`` (one
transaction per request, holding the write lock from before anything in memory moves: a locked database is a
503 that changes nothing, and a move that fails midway is undone in memory as in the database). Several participants play at once: each session's state (its tables, the decision it
waits on) lives in the server under a random token; model calls and database writes are serialised by one
lock. A move names the decision it answers (episode and step), so a repeated or stale click never plays twice.
``Guard`` and ``read_json`` hold the web defences (Host and Origin allow-lists, JSON-only bounded bodies, strict
types, security headers); docs/people.md lists them.

Starlette + uvicorn (the optional extra ``pip install -e ".[serve]"``); the page is plain HTML and JavaScript
(no build step), served from this module.
"""

from __future__ import annotations

import html
import ipaddress
import json
import math
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adhoc.errors import UserError
from adhoc.games.core import payoff_kind
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
    seen: float = 0.0  # the study's clock at its last request


@contextmanager
def _undone_on_error(state: WebSession):
    """``state`` put back as it was (its fields, its tables' and their random generator's) when the block raises,
    as ``Study._write`` puts back the database: a move that fails leaves its session waiting on the same decision.
    Games step into new states and partners keep no state, so copying the fields and their lists is enough."""
    objects = [state, *state.tables]
    saved = [{k: list(v) if isinstance(v, list) else v for k, v in vars(o).items()} for o in objects]
    rngs = [(t.rng, t.rng.bit_generator.state) for t in {id(t.rng): t for t in state.tables}.values()]
    try:
        yield
    except BaseException:
        for o, fields in zip(objects, saved):
            vars(o).update(fields)
        for rng, bits in rngs:
            rng.bit_generator.state = bits
        raise


class Busy(Exception):
    """The database is locked by another writer, or the study is full: 503, try again."""


class Conflict(Exception):
    """A move that is not the decision waited on: 409."""


class Study:
    """The server's state: the game, the partners, the recorder and the open sessions."""

    def __init__(self, game, partner_specs: list[str], db: str | Path, episodes_per_partner: int = 3,
                 seat: int = 0, seed: int | None = None, busy_timeout_s: float = 2.0, idle_s: float = 7200.0,
                 max_sessions: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        from adhoc.play import game_rules, load_partner
        from adhoc.recording import Recorder

        if episodes_per_partner < 1:
            raise UserError(f"--episodes-per-partner must be >= 1 (got {episodes_per_partner})")
        if seat not in (0, 1):
            raise UserError(f"--seat must be 0 or 1 (got {seat})")
        if seed is not None and not 0 <= seed < 2 ** 63:
            raise UserError(f"--seed must be >= 0 and < 2**63 (got {seed})")
        self.game, self.seat, self.episodes = game, seat, episodes_per_partner
        self.rules = game_rules(game, seat)  # shown above every move (the page's Rules box)
        self.specs = list(partner_specs)
        self.partners = [load_partner(spec, game) for spec in self.specs]
        for spec, partner in zip(self.specs, self.partners):
            if 1 - seat not in partner.seats:
                raise UserError(f"partner {spec} plays seat {list(partner.seats)} only; participants take seat {seat}")
        self.db = Path(db)
        self.recorder = Recorder.open(self.db)
        # a request waits this long for another writer of the database, then is answered 503 (Retry-After)
        self.recorder.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        self.busy_timeout_s = busy_timeout_s
        self.seed = secrets.randbits(32) if seed is None else int(seed)
        self.lock = threading.Lock()
        self.sessions: dict[str, WebSession] = {}
        self.clock, self.idle_s, self.max_sessions = clock, idle_s, max_sessions

    def close(self) -> None:
        self.recorder.close()

    def start(self, participant: str, consent: bool) -> str:
        """A new session (its token). The participant's index, the Latin-square row, is counted inside the write
        transaction that records the session, so servers sharing one database never hand out the same row."""
        from adhoc.play import Table, _game_dict

        participant = check_name(participant.strip() if isinstance(participant, str) else participant,
                                 "participant id")
        if consent is not True:
            raise UserError("consent is needed to take part")
        with self.lock:
            self.prune()
            if len(self.sessions) >= self.max_sessions:
                raise Busy("the study is full right now; try again in a minute")
            with self._write():
                index = self.recorder.conn.execute("SELECT COUNT(*) FROM sessions WHERE source = 'web'").fetchone()[0]
                order = latin_square_order(index, len(self.partners))
                session = self.recorder.start_session(
                    participant, "web", _game_dict(self.game), self.seat, consent=True,
                    info={"participant_index": index, "partner_order": [self.specs[i] for i in order],
                          "episodes_per_partner": self.episodes, "seed": [self.seed, index]})
                rng = np.random.default_rng([self.seed, index])
                tables = [Table(self.game, self.partners[i], self.seat, self.recorder, session, participant, rng)
                          for i in order]
                state = WebSession(participant, session, order, tables, seen=self.clock())
                self._next_decision(state)
            token = secrets.token_urlsafe(16)
            self.sessions[token] = state
        return token

    @contextmanager
    def _write(self):
        """The database's write lock for the whole of one request (its steps commit together, or not at all);
        ``Busy`` when another writer holds it past the busy timeout, before anything in memory has changed."""
        import sqlite3

        conn = self.recorder.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise Busy(f"the recording database is busy ({exc}); try again") from None
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def prune(self) -> int:
        """Forget sessions idle longer than ``idle_s`` (their recording stays; an abandoned one has no end time);
        how many were forgotten. Called with the lock held."""
        cutoff = self.clock() - self.idle_s
        stale = [token for token, state in self.sessions.items() if state.seen < cutoff]
        for token in stale:
            del self.sessions[token]
        return len(stale)

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
        """Each step in words (``describe_step``): the person's move, and the partner's when it had a choice."""
        from adhoc.play import describe_step

        for e in events:
            if e.human_chose or e.partner_chose:
                state.log.append(describe_step(self.game, self.seat, e))

    def _episode_end(self, state: WebSession) -> None:
        table = self._table(state)
        total = sum(sum(t.returns) for t in state.tables)
        played = sum(len(t.returns) for t in state.tables)
        state.log.append(f"Episode over: return {table.returns[-1]:.3f}. Your score so far: {total:.3f} over "
                         f"{played} episode{'s' * (played != 1)}.")

    def act(self, token: str, episode: int, t: int, action: int) -> None:
        """The participant's move at the decision (episode, t). ``Conflict`` when that is not the decision waited
        on (a repeated or stale click, or the session is over: nothing is played twice), ``ValueError`` when the
        action is not legal there, ``Busy`` when the database is locked (nothing changes; the move can be sent
        again). Any other error midway undoes the move in memory and in the database alike."""
        with self.lock:
            state = self._get(token)
            if state.finished:
                raise Conflict("this session is over")
            decision, table = state.decision, self._table(state)
            if decision is None or table.episode_number != episode or decision.t != t:
                raise Conflict("that move is not the one awaited (already played?)")
            if action not in decision.legal_index:
                raise ValueError(f"action {action} is not legal here")
            with self._write(), _undone_on_error(state):
                event = table.act(decision, action)
                state.decision, state.log = None, []
                self._describe(state, [event])
                if event.done:
                    self._episode_end(state)
                self._next_decision(state)

    def _get(self, token: str) -> WebSession:
        """The open session of ``token`` (``KeyError``: none, or forgotten after ``idle_s``). Lock held."""
        state = self.sessions.get(token)
        if state is None or state.seen < self.clock() - self.idle_s:
            raise KeyError(token)
        state.seen = self.clock()
        return state

    def view(self, token: str) -> dict[str, Any]:
        with self.lock:
            state = self._get(token)
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
                    "view": d.view or d.observation, "drawing": d.drawing, "rules": self.rules,
                    "actions": [{"index": i, "text": a} for i, a in zip(d.legal_index, d.legal)]}


MAX_BODY = 16 * 1024  # bytes of an API request body
MAX_DEPTH = 8  # nesting of its JSON
MAX_INDEX = 2 ** 31 - 1  # episode, step and action numbers
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class ApiError(Exception):
    """A request refused: its status, one line, and any headers (Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class RateLimit:
    """A token bucket per client: ``burst`` requests at once, refilled at ``per_minute``; the clock is
    injectable (tests). Buckets that are full again are forgotten, so memory stays bounded by active clients."""

    def __init__(self, burst: int, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.rate, self.clock = burst, per_minute / 60.0, clock
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 when ``key`` may go ahead (one token taken), else the seconds until it may."""
        now = self.clock()
        if len(self.buckets) > 1024:
            self.buckets = {k: (n, t) for k, (n, t) in self.buckets.items()
                            if n + (now - t) * self.rate < self.burst}
        tokens, then = self.buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self.buckets[key] = (tokens - 1, now)
        return 0.0


def _split_host(value: str) -> tuple[str, int | None]:
    """``host[:port]`` (an IPv6 address in brackets) as (lower-case host, port or None); ValueError if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(value)
        port = rest[1:] or None
    else:
        host, _, port = value.rpartition(":") if ":" in value else (value, "", None)
    if not host or (port is not None and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(value)
    return host, None if port is None else int(port)


def _origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, the form of a browser's Origin header; None if not one."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        host, port = _split_host(parts.netloc) if parts.netloc and "@" not in parts.netloc else ("", None)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}" + ("" if port in (None, default) else f":{port}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class Guard:
    """ASGI middleware in front of the study's routes. Refuses a Host that is not this server's (DNS
    rebinding: 421), a POST whose Origin (or Referer) is not this server's or an ``--allow-origin`` (CSRF: 403),
    an API POST that is not JSON (415) or that announces a body over ``MAX_BODY`` (413); adds the security
    headers to every response, refusals included."""

    def __init__(self, app, host: str, port: int, allow_origins: list[str] = ()) -> None:
        import socket

        self.app, self.port = app, port
        host = host.strip("[]").lower()
        self.any_address = host in ("0.0.0.0", "::", "")
        names = {host}
        if host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host).is_loopback) or self.any_address:
            names |= {"localhost", "127.0.0.1", "::1"}
        if self.any_address:
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        self.names = names
        self.origins = set()
        self.proxy_hosts = set()
        for url in allow_origins:
            origin = _origin_of(url)
            if origin is None:
                raise UserError(f"--allow-origin {url!r} is not an http(s)://HOST[:PORT] URL")
            self.origins.add(origin)
            name, port_ = _split_host(origin.split("://", 1)[1])
            self.proxy_hosts.add((name, port_ or {"http": 80, "https": 443}[origin.split(":", 1)[0]]))

    def host_ok(self, value: str, default_port: int = 80) -> bool:
        try:
            name, port = _split_host(value)
        except ValueError:
            return False
        port = default_port if port is None else port
        if (name, port) in self.proxy_hosts:
            return True
        # a wildcard bind answers on every address of the machine: any literal address (a rebinding attack
        # needs a DNS name) or the machine's own names
        return port == self.port and (name in self.names or (self.any_address and _is_ip(name)))

    def origin_ok(self, origin: str) -> bool:
        normal = _origin_of(origin)
        if normal is None:
            return False
        if normal in self.origins:
            return True
        scheme, _, rest = normal.partition("://")
        return scheme == "http" and self.host_ok(rest)

    def refusal(self, scope) -> tuple[int, str] | None:
        from starlette.datastructures import Headers

        headers = Headers(scope=scope)
        if not self.host_ok(headers.get("host", "")):
            return 421, "this server does not answer for that Host"
        if scope["method"] not in ("GET", "HEAD"):
            origin = headers.get("origin")
            if origin is None and "referer" in headers:
                origin = _origin_of(headers["referer"]) or "null"
            if origin is not None and not self.origin_ok(origin):
                return 403, "cross-origin request refused"
            if scope["path"].startswith("/api/"):
                if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
                    return 415, "send JSON (Content-Type: application/json)"
                length = headers.get("content-length", "0")
                if not length.isdigit() or int(length) > MAX_BODY:
                    return 413, f"request body over {MAX_BODY} bytes"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.datastructures import MutableHeaders
        from starlette.responses import JSONResponse

        async def send_secured(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers[key] = value
            await send(message)

        refused = self.refusal(scope)
        if refused is not None:
            return await JSONResponse({"error": refused[1]}, status_code=refused[0])(scope, receive, send_secured)
        return await self.app(scope, receive, send_secured)


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON ``text`` (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


async def read_json(request, fields: dict[str, type]) -> dict[str, Any]:
    """The request's JSON object, read to at most ``MAX_BODY`` bytes (413) and ``MAX_DEPTH`` deep (400) before
    it is parsed, with exactly ``fields`` (422 for a missing, unknown or mistyped one)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(413, f"request body over {MAX_BODY} bytes")
    try:
        text = body.decode("utf-8")
        if _depth(text) > MAX_DEPTH:
            raise ApiError(400, f"JSON nested deeper than {MAX_DEPTH}")
        data = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "send a JSON object")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ApiError(422, f"unexpected field {unknown[0]!r}")
    for key, kind in fields.items():
        if key not in data:
            raise ApiError(422, f"missing field {key!r}")
        value = data[key]
        if kind is int:
            if type(value) is not int or not 0 <= value <= MAX_INDEX:
                raise ApiError(422, f"{key} must be a JSON integer in 0..{MAX_INDEX}")
        elif kind is bool:
            if type(value) is not bool:
                raise ApiError(422, f"{key} must be JSON true or false")
        elif type(value) is not kind:
            raise ApiError(422, f"{key} must be a JSON {kind.__name__}")
    return data


def build_app(study: Study, host: str = "127.0.0.1", port: int = 8000, allow_origins: list[str] = (),
              start_limit: tuple[int, float] = (10, 10.0), act_limit: tuple[int, float] = (120, 1200.0),
              clock: Callable[[], float] | None = None):
    """The study's web app: the page (its script and style served as files, so the CSP allows no inline code)
    and the API, behind ``Guard``. ``start_limit``/``act_limit``: (burst, per minute) per client address."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    clock = clock or study.clock
    starts, acts = RateLimit(*start_limit, clock=clock), RateLimit(*act_limit, clock=clock)
    kind, scoring = KINDS[payoff_kind(study.game)]
    page = PAGE.replace("__GAME__", html.escape(study.game.name)).replace("__KIND__", kind).replace("__SCORING__", scoring)

    def limited(limit: RateLimit, request: Request) -> None:
        wait = limit.take(request.client.host if request.client else "")
        if wait:
            raise ApiError(429, "too many requests; slow down", {"Retry-After": str(max(1, math.ceil(wait)))})

    def answer(handler):
        async def endpoint(request: Request):
            try:
                return JSONResponse(await handler(request))
            except ApiError as exc:
                return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)
            except Busy as exc:
                retry = str(max(1, math.ceil(study.busy_timeout_s)))
                return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": retry})
            except Conflict as exc:
                return JSONResponse({"error": str(exc)}, status_code=409)
            except KeyError:
                return JSONResponse({"error": "unknown session (over, or idle too long)"}, status_code=404)
            except (UserError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=422)
        return endpoint

    async def index(request: Request):
        return HTMLResponse(page)

    async def script(request: Request):
        return Response(SCRIPT, media_type="text/javascript")

    async def style(request: Request):
        return Response(STYLE, media_type="text/css")

    async def start(request: Request):
        body = await read_json(request, {"participant": str, "consent": bool})
        limited(starts, request)
        token = await run_in_threadpool(study.start, body["participant"], body["consent"])
        return {"token": token, **await run_in_threadpool(study.view, token)}

    async def state(request: Request):
        limited(acts, request)
        return await run_in_threadpool(study.view, request.query_params.get("token", "")[:64])

    async def act(request: Request):
        body = await read_json(request, {"token": str, "episode": int, "t": int, "action": int})
        limited(acts, request)
        token = body["token"][:64]
        await run_in_threadpool(study.act, token, body["episode"], body["t"], body["action"])
        return await run_in_threadpool(study.view, token)

    app = Starlette(routes=[Route("/", index), Route("/app.js", script), Route("/app.css", style),
                            Route("/api/start", answer(start), methods=["POST"]),
                            Route("/api/state", answer(state)), Route("/api/act", answer(act), methods=["POST"])])
    return Guard(app, host, port, allow_origins)


def serve_command(partners: list[str], port: int = 8000, host: str = "127.0.0.1", db: str | None = None,
                  episodes_per_partner: int = 3, seat: int = 0, config: str | None = None,
                  overrides: list[str] = (), seed: int | None = None, allow_origins: list[str] = (),
                  start_limit: int = 10, trusted_proxies: list[str] = ()) -> None:
    """``trusted_proxies``: addresses (or networks) of reverse proxies whose X-Forwarded-For names the client
    that rate limits count; from any other peer, and by default from every one, the header is ignored (a
    client could otherwise give itself a new address per request)."""
    # every option is checked before anything loads, binds or records
    if not partners:
        raise UserError("give at least one partner: --partners POP [POP ...]")
    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535 (got {port})")
    if seed is not None and not 0 <= seed < 2 ** 63:
        raise UserError(f"--seed must be >= 0 and < 2**63 (got {seed})")  # the CLI's limit on every --seed
    if not 1 <= episodes_per_partner <= 1000:
        raise UserError(f"--episodes-per-partner must be in 1..1000 (got {episodes_per_partner})")
    if seat not in (0, 1):
        raise UserError(f"--seat must be 0 or 1 (got {seat})")
    if not 1 <= start_limit <= 10000:
        raise UserError(f"--start-limit must be in 1..10000 (got {start_limit})")
    Guard(None, host, port, allow_origins)  # --allow-origin URLs
    for proxy in trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise UserError(f"--trusted-proxy must be an IP address or network (got {proxy[:100]!r})") from None
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise UserError('adhoc serve needs the serve extra: pip install -e ".[serve]"') from None
    from adhoc.play import check_db_path, default_db, people_game
    from adhoc.scripted import is_scripted_spec

    _check_port(host, port)
    populations = [p for p in partners if not is_scripted_spec(p)]
    game = people_game(config, list(overrides), (populations or partners)[0])
    if db is not None:
        check_db_path(db)
    study = Study(game, partners, db or default_db(), episodes_per_partner=episodes_per_partner, seat=seat, seed=seed)
    print(f"adhoc serve: {game.name} with {len(partners)} partner{'s' * (len(partners) != 1)}, "
          f"{episodes_per_partner} episodes each; recording to {study.db}\n"
          f"open http://{host}:{port}/ (Ctrl-C stops; every completed step is saved)", flush=True)
    try:
        uvicorn.run(build_app(study, host, port, allow_origins, start_limit=(start_limit, float(start_limit))),
                    host=host, port=port, log_level="warning", proxy_headers=bool(trusted_proxies),
                    forwarded_allow_ips=list(trusted_proxies) or None)
    finally:
        study.close()


def _check_port(host: str, port: int) -> None:
    """One line, before anything loads, when the address cannot be listened on: not an address of this machine,
    or the port is taken."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: no such address ({exc.strerror or exc})") from None
    family, _, _, _, address = infos[0]
    try:
        with socket.socket(family) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UserError(f"--host {host} is not an address of this machine (127.0.0.1: this machine only; "
                            f"0.0.0.0: every address it has)") from None
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port") from None


KINDS = {"common": ("cooperative", "You and your partner score together."),  # by adhoc.games.core.payoff_kind
         "zero_sum": ("competitive", "What you win, your partner loses."),
         "general_sum": ("mixed-motive", "You and your partner each have your own score.")}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>adhoc study: __GAME__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/app.css"></head><body>
<h1>Play a __KIND__ game</h1>
<section id="consent">
  <p>You will play a short __KIND__ game (<b>__GAME__</b>) with a few computer partners, one after another.
  __SCORING__ Your moves, the time you take and your participant id are recorded for
  research; nothing else about you is stored.</p>
  <p><label>Participant id <input id="participant" autocomplete="off" placeholder="e.g. P01"></label></p>
  <p><label><input type="checkbox" id="agree"> I agree to take part and to have my play recorded.</label></p>
  <button id="begin">Begin</button> <span id="consent-error" class="error"></span>
</section>
<section id="play" class="hidden">
  <p id="status"></p>
  <p id="notice" class="notice"></p>
  <div id="log" class="log"></div>
  <details id="rules-box" open><summary>Rules</summary><pre id="rules"></pre></details>
  <p>What you see:</p><div id="drawing"></div><pre id="observation"></pre>
  <p>Your move:</p><div id="actions"></div>
</section>
<section id="done" class="hidden">
  <h2>Thank you!</h2>
  <p id="final"></p><p>You can close this page now.</p>
</section>
<script src="/app.js"></script></body></html>
"""

STYLE = """body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
pre { background: #f4f4f4; padding: .8rem; white-space: pre-wrap; }
button { margin: .2rem; padding: .4rem .9rem; font-size: 1rem; }
.log { color: #333; } .error { color: #b00; } .hidden { display: none; } .notice { color: #a60; }
p, pre, span { overflow-wrap: anywhere; }
#drawing, #actions { overflow-x: auto; }  /* a wide grid or table scrolls inside the page */
table { border-collapse: collapse; margin: .4rem 0 .8rem; }
caption { text-align: left; padding-bottom: .3rem; }
th, td { border: 1px solid #bbb; padding: .2rem .6rem; text-align: center; }
thead th { background: #f4f4f4; }
th button { margin: 0; }
table.grid td { width: 3rem; height: 3rem; padding: 0; font-size: .85rem; }
td.path { background: #e3eefb; } td.goal { background: #fbe39b; } td.robot { background: #8fbbe8; font-weight: bold; }
table.kitchen td { width: 4.2rem; height: 3.6rem; font-size: .75rem; line-height: 1.25; }
td.counter { background: #d8d0c2; } td.pot { background: #eab8a4; } td.onions { background: #f4e4a2; }
td.tomatoes { background: #f5bcb4; } td.dishes { background: #dde6f2; } td.serve { background: #bfe6c6; }
td.you { box-shadow: inset 0 0 0 3px #1f64c0; } td.partner { box-shadow: inset 0 0 0 3px #c0701f; }
.terrain { color: #555; } .cook { font-weight: bold; } td.you .cook { color: #1f64c0; } td.partner .cook { color: #9a5200; }
"""

SCRIPT = r"""let token = null, current = null;
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
  $("rules").textContent = s.rules;
  $("observation").textContent = s.view;
  $("drawing").replaceChildren(...drawing(s.drawing));
  const stage = s.drawing && s.drawing.kind === "repeated" ? s.drawing.stage : s.drawing;
  $("actions").replaceChildren(...moves(stage, s.actions));
}
// the game drawn from the server's data (s.drawing: null for a game that draws nothing), with DOM methods only
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function actionButton(a, label) {  // data-text: the action itself, whatever the label
  const b = el("button", label || a.text, "action");
  b.dataset.action = a.index; b.dataset.text = a.text;
  b.onclick = () => act(a.index);
  return b;
}
function table(id, caption, head, rows) {  // rows: [row header, ...cells], each a string or a node
  const t = el("table"), tr = el("tr"), body = el("tbody"), thead = el("thead");
  t.id = id;
  t.appendChild(el("caption", caption));
  for (const h of head) { const th = el("th", h); th.scope = "col"; tr.appendChild(th); }
  thead.appendChild(tr); t.appendChild(thead);
  for (const row of rows) {
    const r = el("tr");
    row.forEach((c, j) => {
      const cell = el(j ? "td" : "th");
      if (!j) cell.scope = "row";
      if (c instanceof Node) cell.appendChild(c); else cell.textContent = c;
      r.appendChild(cell);
    });
    body.appendChild(r);
  }
  t.appendChild(body);
  return t;
}
function drawing(d) {  // what the seat knows: the warehouse grid, the Overcooked kitchen, a repeated game's rounds
  if (d && d.kind === "grid") return grid(d);
  if (d && d.kind === "overcooked") return kitchen(d);
  if (d && d.kind === "repeated") {
    const head = ["Round", "You", "Partner", ...(d.common ? ["Reward"] : ["Your reward", "Partner's reward"])];
    const rows = d.history.map((h, k) => [String(k + 1), h.you, h.partner,
                                          ...(d.common ? [h.payoff] : [h.payoff, h.partner_payoff])]);
    const now = d.round === null ? "all " + d.rounds + " played" : "now round " + d.round + " of " + d.rounds;
    return [table("history", "Rounds so far (" + now + ")", head, rows)];
  }
  return [];
}
function grid(d) {
  const rows = [];
  for (let y = d.height - 1; y >= 0; y--) rows.push([String(y), ...Array(d.width).fill("")]);
  const head = ["y \\ x", ...Array.from({length: d.width}, (_, x) => String(x))];
  const t = table("grid", "The warehouse", head, rows);
  t.className = "grid";
  const cell = (x, y) => t.tBodies[0].rows[d.height - 1 - y].cells[x + 1];
  for (const [x, y] of d.path) cell(x, y).classList.add("path");
  for (let y = 0; y < d.height; y++) for (let x = 0; x < d.width; x++) {
    const c = cell(x, y);
    c.dataset.x = x; c.dataset.y = y;
  }
  const marks = [];
  if (d.goal) marks.push([d.goal, "goal"]);
  marks.push([d.robot, "robot"]);
  for (const [[x, y], what] of marks) {
    const c = cell(x, y);
    c.classList.add(what);
    c.textContent = c.textContent ? c.textContent + ", " + what : what;
  }
  const where = "Episode " + d.episode + " of " + d.episodes +
    (d.move === null ? "" : ", move " + d.move + " of " + d.moves) + "." +
    (d.said === null ? "" : " The teacher said '" + d.said + "'.");
  return [el("p", where), t];
}
const TERRAIN = {X: ["counter", ""], O: ["onions", "onions"], T: ["tomatoes", "tomatoes"], D: ["dishes", "dishes"],
                 P: ["pot", "pot"], S: ["serve", "serve"], ".": ["floor", ""]};
const ARROWS = {up: "\u2191", down: "\u2193", left: "\u2190", right: "\u2192"};
function kitchen(d) {  // the layout's cells (y down from the top, as in words), the cooks, pots and items on them
  const rows = d.terrain.map((_, y) => [String(y), ...Array(d.width).fill("")]);
  const head = ["y \\ x", ...Array.from({length: d.width}, (_, x) => String(x))];
  const t = table("kitchen", "The kitchen, layout " + d.layout, head, rows);
  t.className = "grid kitchen";
  const cell = (x, y) => t.tBodies[0].rows[y].cells[x + 1];
  d.terrain.forEach((row, y) => [...row].forEach((letter, x) => {
    const c = cell(x, y), [what, word] = TERRAIN[letter] || ["floor", letter];
    c.dataset.x = x; c.dataset.y = y; c.dataset.terrain = letter;
    c.classList.add(what);
    if (word) c.appendChild(el("div", word, "terrain"));
  }));
  for (const p of d.pots) {
    const now = p.status === "empty" ? "empty" : p.contents + " " +
      (p.status === "cooking" ? "cooking, " + p.timer + " left" : p.status);
    cell(p.x, p.y).appendChild(el("div", now, "soup"));
  }
  for (const i of d.counters) cell(i.x, i.y).appendChild(el("div", i.item, "item"));
  d.players.forEach((p, k) => {
    const c = cell(p.x, p.y), who = p.you ? "you" : "partner";
    c.classList.add(who);
    const cook = el("div", who + " (" + (k + 1) + ") " + ARROWS[p.facing], "cook");
    cook.dataset.facing = p.facing;
    c.appendChild(cook);
    if (p.holding) c.appendChild(el("div", "holds " + p.holding, "held"));
  });
  const left = d.time_left ? d.time_left + " of " + d.horizon + " steps left." : "Time is up.";
  return [el("p", left + " The arrow is where each cook faces; pick uses the cell ahead."), t];
}
const KEYS = {ArrowUp: "up", ArrowDown: "down", ArrowLeft: "left", ArrowRight: "right", " ": "pick"};
document.addEventListener("keydown", (e) => {  // Overcooked: arrow keys move, space picks (the buttons' moves)
  const d = current && current.drawing;
  if (!d || d.kind !== "overcooked" || !(e.key in KEYS) || e.ctrlKey || e.metaKey || e.altKey ||
      e.target instanceof HTMLInputElement) return;
  e.preventDefault();  // no scrolling, and no click of a focused button besides
  const b = document.querySelector("button.action[data-text='" + KEYS[e.key] + "']");
  if (b && !b.disabled) b.click();  // none while a move is on its way (act disables them): no stale move is sent
});
function moves(d, actions) {  // the legal actions as buttons: a lever's with its payoff, a matrix's on its rows
  if (d && d.kind === "lever") {
    return actions.map((a) => actionButton(a, "Lever " + a.text + " \u2014 pays " + d.payoffs[a.index]));
  }
  if (d && d.kind === "matrix") {
    const legal = new Map(actions.map((a) => [a.index, a]));
    const rows = d.rows.map((name, i) => [legal.has(i) ? actionButton(legal.get(i)) : name,
      ...d.you[i].map((v, j) => d.partner ? v + ", " + d.partner[i][j] : v)]);
    const how = "Rows: your action (click one); columns: your partner's; each cell: " +
      (d.partner ? "what you get, what your partner gets." : "what you both get.");
    return [el("p", how), table("payoffs", d.partner ? "Rewards" : "Reward", ["You \\ partner", ...d.columns], rows)];
  }
  if (d && d.kind === "overcooked") {
    const label = (a) => (ARROWS[a.text] ? ARROWS[a.text] + " " : "") + a.text;
    return [...actions.map((a) => actionButton(a, label(a))), el("p", "Keys: the arrows move, space picks.")];
  }
  return actions.map((a) => actionButton(a));
}
async function act(index) {
  for (const b of document.querySelectorAll("button.action")) b.disabled = true;
  const [ok, s] = await post("/api/act", {token, episode: current.episode, t: current.t, action: index});
  if (ok) { $("notice").textContent = ""; show(s); return; }
  // not played (a stale page: another tab moved on, or Back/Forward showed an old state): say so, and show
  // the move the server waits for
  await resync("That move was not played (" + s.error + "). This is the game as it stands now: choose again.");
}
async function resync(why) {  // the server's state is the truth; a page that differs from it says so
  if (!token) return;
  const r = await fetch("/api/state?token=" + encodeURIComponent(token));
  if (!r.ok) { $("notice").textContent = "This session is no longer open on the server. Please reload the page."; return; }
  const s = await r.json();
  const moved = !current || s.phase !== current.phase || s.episode !== current.episode || s.t !== current.t;
  if (why || moved) $("notice").textContent = why || "The game moved on in another tab or window: this is where it stands now.";
  show(s);
}
window.addEventListener("pageshow", (e) => { if (e.persisted) resync(); });  // Back/Forward from the cache
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") resync(); });
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
"""
