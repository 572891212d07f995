"""``overcooked``: Overcooked-AI (Carroll et al. 2019, "On the Utility of Learning about Humans for Human-AI
Coordination"), played through the ``overcooked-ai`` package (the extra ``pip install -e ".[overcooked]"``;
``import adhoc`` never imports it; docs/overcooked.md says why this package and not its fork).

``game=overcooked game.layout=cramped_room game.horizon=400``: any two-player layout the package ships. Both
seats act at once, each one of the package's six actions, named ``up down right left stay pick`` (its index
order: north, south, east, west, stay, interact; ``pick`` is the interact action, one token of the built-in
tokenizer: pick up, put down, drop into a pot, start cooking, serve). Every action is always legal. The
package's ``OvercookedGridworld.get_state_transition`` steps each episode, so the dynamics and rewards are the
package's own (tests/test_overcooked.py checks them against its ``OvercookedEnv``).

Reward (common): the soups delivered (the package's sparse reward, 20 an onion soup) plus, with
``game.shaping`` > 0, the standard shaped rewards of human-aware RL (an ingredient into a pot 3, a dish picked up
3, a soup picked up 5) times a weight that anneals linearly from ``shaping`` to 0 over ``shaping_horizon``
environment steps (0: constant), counted by the game object over every episode it steps, as human-aware RL's
``reward_shaping_horizon`` counts its environment's steps. Returns with shaping on include it: evaluate with
``game.shaping=0`` for the soups alone, what the published numbers report.

Observation (``render``), a static part first, the layout, identical at every step so the rollout's prefix
cache reuses it (``Policy.scores_reusing``), then the state::

    overcooked cramped_room
    XXPXX
    O...O
    X...X
    XDXSX
    you 1 2 up onion partner 3 1 left nothing pot 2 0 oo idle counter 0 1 dish time 391

Cells: X counter, P pot, O onion box, T tomato box, D dish box, S serving window, . floor (a dot, so that a
tokenizer splitting on spaces keeps the columns). Positions are ``x y`` (x from the left, y from the top);
orientations ``up down left right``; held and counter items ``onion tomato dish`` or ``soup`` with its
ingredients (o onion, t tomato: ``soup ooo``); a pot is ``empty``, its ingredients and ``idle``, ``cooking N``
(N steps left) or ``ready``; ``time`` is the steps left. ``you`` is the observing seat, so both seats read
the same form.

For people (``adhoc play``, ``adhoc serve``): ``rules``, ``show`` (the state in words) and ``draw`` (the same
facts as data, the kitchen the browser draws), all from ``view``, the facts the observation renders.

Symmetries: none. A reflection of the grid that maps the terrain onto itself and fixes both start positions
would relabel moves (left <-> right); no shipped two-player layout has one (the marshmallow layouts' mirror
swaps the players' starts: a swap of seats, not a relabelling of actions; tests/test_overcooked.py checks
every layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from adhoc._torch import torch
from adhoc.errors import GameError, MissingExtra
from adhoc.games.core import GameState, advance, checked_actions

EXTRA = 'pip install -e ".[overcooked]"'
ACTIONS = ["up", "down", "right", "left", "stay", "pick"]  # the package's Action.INDEX_TO_ACTION order
DIRECTIONS = {(0, -1): "up", (0, 1): "down", (1, 0): "right", (-1, 0): "left"}
TERRAIN = {" ": "."}  # the package's terrain letters, floor as a dot
LETTERS = {"onion": "o", "tomato": "t"}
MAX_HORIZON = 10_000
PAPER_LAYOUTS = {"random0": "forced_coordination", "random3": "counter_circuit_o_1order"}  # 2019 names


@dataclass
class OvercookedConfig:
    name: str = "overcooked"
    layout: str = "cramped_room"
    horizon: int = 400
    shaping: float = 0.0  # weight of the shaped rewards at the start (0: soups only)
    shaping_horizon: int = 0  # environment steps over which the weight anneals linearly to 0 (0: constant)


def load_package():
    """The package's ``overcooked_mdp`` and ``actions`` modules, or one line naming the extra."""
    import contextlib
    import io

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the package imports ``gym``, which prints a banner
            from overcooked_ai_py.mdp import actions, overcooked_mdp
    except ImportError:
        raise MissingExtra(f"game 'overcooked' needs Overcooked-AI, which is not installed: {EXTRA}") from None
    return overcooked_mdp, actions


def layouts() -> list[str]:
    """The two-player layouts the package ships (sorted)."""
    import os

    load_package()
    from overcooked_ai_py.static import LAYOUTS_DIR

    names = sorted(f[: -len(".layout")] for f in os.listdir(LAYOUTS_DIR) if f.endswith(".layout"))
    return [n for n in names if _grid(n)[1] == 2]


def _grid(layout: str) -> tuple[list[str], int]:
    """(the layout's grid rows as written, its number of players), read with the package's layout reader."""
    from overcooked_ai_py.utils import read_layout_dict

    rows = [r.strip() for r in read_layout_dict(layout)["grid"].split("\n")]
    return rows, sum(c.isdigit() for r in rows for c in r)


# ------------------------------------------------------------------ rendering (shared with the importer)
@dataclass(frozen=True)
class View:
    """What the text shows of a state, in plain values: players [(x, y, direction, held)], counter items
    [(x, y, item)], pots [(x, y, contents)], and the steps left. ``held``/``item``: onion, tomato, dish, soup
    ooo, nothing; ``contents``: empty, oo idle, ooo cooking 12, ooo ready."""

    players: tuple[tuple[int, int, str, str], ...]
    items: tuple[tuple[int, int, str], ...]
    pots: tuple[tuple[int, int, str], ...]
    time_left: int


def soup_word(ingredients: list[str]) -> str:
    return "".join(LETTERS[i] for i in sorted(ingredients))


def render(header: str, view: View, seat: int) -> str:
    """The observation of ``seat``: the static ``header`` (``static_text``), then the state, ``you`` first."""
    me, other = view.players[seat], view.players[1 - seat]
    parts = [f"you {me[0]} {me[1]} {me[2]} {me[3]}", f"partner {other[0]} {other[1]} {other[2]} {other[3]}"]
    parts += [f"pot {x} {y} {c}" for x, y, c in view.pots]
    parts += [f"counter {x} {y} {i}" for x, y, i in view.items]
    return f"{header}\n{' '.join(parts)} time {view.time_left}"


def static_text(layout: str, terrain: list[list[str]]) -> str:
    """The layout part of every observation: its name and the terrain, row by row."""
    return "\n".join([f"overcooked {layout}"] + ["".join(TERRAIN.get(c, c) for c in row) for row in terrain])


class OvercookedGame:
    """Batched Overcooked. State ``extra``: ``states``, the package's ``OvercookedState`` per episode."""

    static_prefix = True  # every observation starts with the same layout: the rollout reuses its encoding

    payoff = "common"

    def __init__(self, cfg: OvercookedConfig, mdp) -> None:
        self.name, self.layout, self.horizon = cfg.name, cfg.layout, cfg.horizon
        self.shaping, self.shaping_horizon = float(cfg.shaping), cfg.shaping_horizon
        self.mdp = mdp
        self.env_steps = 0  # environment steps stepped so far: the shaping schedule's clock
        self._params = {"layout": self.layout, "horizon": self.horizon}
        if self.shaping:  # recorded only when on
            self._params |= {"shaping": self.shaping, "shaping_horizon": self.shaping_horizon}
        self.header = static_text(self.layout, mdp.terrain_mtx)
        self.terrain = self.header.split("\n")[1:]  # the layout's rows as the text shows them (floor a dot)
        self._pots = [tuple(p) for p in mdp.get_pot_locations()]
        self._moves = load_package()[1].Action.INDEX_TO_ACTION

    # ---------------------------------------------------------------- protocol
    def action_names(self, seat: int) -> list[str]:
        return list(ACTIONS)

    def reset(self, n_episodes: int, rng: np.random.Generator) -> GameState:
        start = self.mdp.get_standard_start_state()
        return GameState(n_episodes, extra={"states": [start.deepcopy() for _ in range(n_episodes)]})

    def view(self, state, t: int) -> View:
        """The ``View`` of one package ``OvercookedState`` at step ``t``."""
        players = tuple((*p.position, DIRECTIONS[p.orientation], item_word(p.held_object) if p.held_object else "nothing")
                        for p in state.players)
        items, pots = [], []
        for pos, obj in sorted(state.objects.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if tuple(pos) in self._pots:
                continue
            items.append((*pos, item_word(obj)))
        for pos in self._pots:
            soup = state.objects.get(pos)
            pots.append((*pos, pot_word(soup)))
        return View(players, tuple(items), tuple(pots), self.horizon - t)

    def observe(self, state: GameState, seat: int) -> list[str]:
        t = min(state.t, self.horizon)
        return [render(self.header, self.view(s, t), seat) for s in state.extra["states"]]

    def legal_mask(self, state: GameState, seat: int) -> torch.Tensor:
        return torch.ones(state.n_episodes, len(ACTIONS), dtype=torch.bool)

    def shaping_weight(self) -> float:
        """The shaped rewards' weight now: ``shaping`` annealed linearly to 0 over ``shaping_horizon`` steps."""
        if not self.shaping or not self.shaping_horizon:
            return self.shaping
        return self.shaping * max(0.0, 1.0 - self.env_steps / self.shaping_horizon)

    def step(self, state: GameState, actions: torch.Tensor) -> tuple[GameState, torch.Tensor, torch.Tensor]:
        actions = checked_actions(self, state, actions)
        reward = torch.zeros(state.n_episodes)
        states = list(state.extra["states"])
        if state.t >= self.horizon:  # finished episodes ignore further actions and pay 0
            new, done = advance(state, actions, dict(state.extra), self.horizon)
            return new, reward, done
        weight = self.shaping_weight()
        for e, (a, b) in enumerate(actions.tolist()):
            states[e], info = self.mdp.get_state_transition(states[e], (self._moves[a], self._moves[b]))
            reward[e] = sum(info["sparse_reward_by_agent"]) + weight * sum(info["shaped_reward_by_agent"])
        self.env_steps += state.n_episodes
        new, done = advance(state, actions, {**state.extra, "states": states}, self.horizon)
        return new, reward, done

    def symmetries(self) -> None:
        return None

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    # ---------------------------------------------------------------- for people (play, serve)
    def rules(self, seat: int) -> str:
        shaped = "" if not self.shaping else (
            f" While training, putting an ingredient into a pot also pays 3, picking up a dish 3 and a soup 5 "
            f"(times {number_text(self.shaping)}, fading to 0).")
        return (f"Overcooked, layout {self.layout}. You are player {seat + 1} of 2 (shown as {seat + 1}); you and your "
                f"partner cook together and both get the same reward. Each step you both act at once: up, down, "
                f"right or left (move, or turn to face that way if blocked), stay, or pick (use the cell you face: "
                f"take an onion, tomato or dish from its box, put down or pick up an item on a counter, drop an "
                f"ingredient into a pot, start a pot cooking, fill a dish with a ready soup, serve a soup at the "
                f"window S).\nA soup of 3 onions served at S pays 20. The map: X counter, P pot, O onion box, T tomato "
                f"box, D dish box, S serving window.{shaped} The game lasts {self.horizon} steps.")

    def show(self, state: GameState, seat: int) -> list[str]:
        t = min(state.t, self.horizon)
        out = []
        for s in state.extra["states"]:
            v = self.view(s, t)
            grid = [list(row) for row in self.terrain]
            for x, y, item in v.items:
                grid[y][x] = item[0]
            for k, (x, y, _, _) in enumerate(v.players):
                grid[y][x] = str(k + 1)
            lines = ["".join(row) for row in grid]
            for k, (x, y, d, held) in enumerate(v.players):
                who = "You" if k == seat else "Partner"
                lines.append(f"{who} ({k + 1}) at ({x}, {y}) facing {d}, holding {held}.")
            lines += [f"Pot at ({x}, {y}): {c}." for x, y, c in v.pots]
            lines += [f"On the counter at ({x}, {y}): {i}." for x, y, i in v.items]
            lines.append(f"{v.time_left} steps left." if v.time_left else "Time is up.")
            out.append("\n".join(lines))
        return out

    def draw(self, state: GameState, seat: int) -> list[dict[str, Any]]:
        """What the browser draws for ``seat`` (``adhoc serve``), per episode: the facts ``show`` gives (``view``)
        as data. ``terrain``: the layout's rows (X counter, P pot, O onion box, T tomato box, D dish box, S serving
        window, . floor); ``players`` in seat order, each ``x y`` (from the left, from the top), ``facing`` (up
        down left right), ``holding`` (onion, tomato, dish, soup ooo; None: nothing) and ``you`` (the drawing's
        seat); ``pots`` with their ingredients (``contents``, ''), ``status`` (empty, idle, cooking, ready) and
        ``timer`` (steps left cooking, else None); ``counters``: the items lying on counters; ``time_left``."""
        t = min(state.t, self.horizon)
        out = []
        for s in state.extra["states"]:
            v = self.view(s, t)
            players = [{"x": x, "y": y, "facing": d, "holding": None if held == "nothing" else held, "you": k == seat}
                       for k, (x, y, d, held) in enumerate(v.players)]
            pots = [dict(zip(("x", "y", "contents", "status", "timer"), (x, y, *pot_parts(c)))) for x, y, c in v.pots]
            out.append({"kind": "overcooked", "layout": self.layout, "width": len(self.terrain[0]),
                        "height": len(self.terrain), "terrain": list(self.terrain), "players": players, "pots": pots,
                        "counters": [{"x": x, "y": y, "item": i} for x, y, i in v.items],
                        "time_left": v.time_left, "horizon": self.horizon})
        return out

    def describe_action(self, seat: int, action: int) -> str:
        return {"stay": "stayed", "pick": "used the cell ahead (pick)"}.get(ACTIONS[action], f"moved {ACTIONS[action]}")


def item_word(obj) -> str:
    """A held or counter object of the package in words: onion, tomato, dish, soup ooo."""
    return f"soup {soup_word(obj.ingredients)}" if obj.name == "soup" else obj.name


def pot_word(soup) -> str:
    """A pot's contents (a package ``SoupState`` or None): empty, oo idle, ooo cooking 12, ooo ready."""
    if soup is None:
        return "empty"
    word = soup_word(soup.ingredients)
    if soup.is_ready:
        return f"{word} ready"
    if soup.is_cooking:
        return f"{word} cooking {soup.cook_time_remaining}"
    return f"{word} idle"


def pot_parts(word: str) -> tuple[str, str, int | None]:
    """A pot's words (``pot_word``) as (ingredients, status, steps left cooking): ('', 'empty', None),
    ('oo', 'idle', None), ('ooo', 'cooking', 12), ('ooo', 'ready', None)."""
    if word == "empty":
        return "", "empty", None
    contents, status, *left = word.split()
    return contents, status, int(left[0]) if left else None


def number_text(x: float) -> str:
    return f"{x:g}"


def build_overcooked(cfg: OvercookedConfig) -> OvercookedGame:
    layout = str(cfg.layout)
    if not 1 <= cfg.horizon <= MAX_HORIZON:
        raise GameError(f"game.horizon must be in 1..{MAX_HORIZON} (got {cfg.horizon})")
    if not (np.isfinite(cfg.shaping) and cfg.shaping >= 0) or cfg.shaping_horizon < 0:
        raise GameError(f"game.shaping must be >= 0 and game.shaping_horizon >= 0 (got {cfg.shaping}, "
                        f"{cfg.shaping_horizon})")
    overcooked_mdp, _ = load_package()
    allowed = layouts()
    if layout not in allowed:
        hint = f" (the 2019 name of {PAPER_LAYOUTS[layout]})" if layout in PAPER_LAYOUTS else ""
        raise GameError(f"unknown layout {layout!r}{hint} for game 'overcooked' (allowed: {', '.join(allowed)})")
    return OvercookedGame(cfg, overcooked_mdp.OvercookedGridworld.from_layout_name(layout))
