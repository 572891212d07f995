"""``adhoc data import overcooked-human``: the published human-human Overcooked trials of Carroll et al. 2019 as
adhoc recordings, so ``adhoc train-proxy`` clones them like any recorded play.

The ``overcooked-ai`` package ships them as pandas DataFrames (``data/human_data/clean_train_trials.pickle`` and
``clean_test_trials.pickle``): one row per joint step of a trial, with the state before it (a dict in the 2019
format), the joint action, the reward, the layout's grid and name, and ``workerid_num``, the trial's id. A pickle
runs code when loaded, so it is read with ``RestrictedUnpickler``: only the classes a DataFrame of these trials
is made of may be named (pandas' compatibility renames of old pickles applied first); any other (``os.system``)
is refused in one line.

Each trial of the chosen layout becomes two sessions, one per seat, its participant ``w<workerid>-p<seat>``
(the data names one id per trial, the pair's), the partner ``human:w<workerid>-p<other seat>``; the trial is
cut into episodes of ``horizon`` steps (the last may be shorter), each step the seat's observation exactly as
``game=overcooked`` renders the same state at that step of an episode, all six actions legal, the seat's
action, the partner's, and the trial's reward. The session's ``info`` holds the provenance: the file, the split,
the layout (its 2019 name too), the trial id, both players, and each episode's first step in the trial.

The 2019 trials were played under the game's first rules, which differ from the package's 1.1.0 game: a pot
starts cooking by itself at its third onion and cooks 20 steps (its cooking time is shown as the 1.1.0 game
shows it: ``ooo cooking 12``, ``ooo ready``), and the published ``reward`` column pays 5 per soup where the
game pays 20. docs/overcooked.md measures what that means for the proxies.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path
from typing import Any

from adhoc.errors import UserError
from adhoc.games.overcooked import ACTIONS, DIRECTIONS, LETTERS, PAPER_LAYOUTS, View, render

SPLITS = ("train", "test")
COOK_TIME = 20  # steps a full pot cooked in the 2019 game
COLUMNS = ("layout_name", "layout", "workerid_num", "cur_gameloop", "datetime", "state", "joint_action", "reward")
MOVES = {(0, -1): 0, (0, 1): 1, (1, 0): 2, (-1, 0): 3, (0, 0): 4, "INTERACT": 5}  # -> ACTIONS
# What a DataFrame of the trials is made of, as pickled by the pandas of 2019 and by today's (object columns; a table
# of pyarrow strings names pyarrow, and is refused).
ALLOWED = {
    ("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("numpy._core.numeric", "_frombuffer"), ("pandas.core.frame", "DataFrame"),
    ("pandas", "DataFrame"), ("pandas", "Index"), ("pandas", "RangeIndex"),
    ("pandas.core.indexes.base", "Index"), ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.range", "RangeIndex"), ("pandas.core.internals.managers", "BlockManager"),
    ("pandas._libs.internals", "_unpickle_block"), ("pandas._libs.internals", "BlockPlacement"),
    ("builtins", "slice"),
}


def published_file(split: str) -> Path:
    """The package's pickle of ``split`` (train or test)."""
    from adhoc.games.overcooked import load_package

    load_package()
    import overcooked_ai_py

    return Path(overcooked_ai_py.__file__).parent / "data" / "human_data" / f"clean_{split}_trials.pickle"


def restricted_load(path: Path):
    """The object pickled at ``path``, naming only ``ALLOWED`` classes; UserError (one line) otherwise."""
    from pandas.compat.pickle_compat import Unpickler, _class_locations_map

    class RestrictedUnpickler(Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if _class_locations_map.get((module, name), (module, name)) not in ALLOWED and (module, name) not in ALLOWED:
                raise UserError(f"{path}: the pickle names {module}.{name}, which a table of the human trials does "
                                f"not hold; refused (loading it would run its code)")
            return super().find_class(module, name)

    if not path.is_file():
        raise UserError(f"human-data file not found: {path}")
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except UserError:
        raise
    except Exception as exc:  # a truncated or garbled pickle fails in many ways
        raise UserError(f"{path}: not a readable pickle of the human trials ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'corrupt'})") from None


def layout_names(layout: str) -> tuple[str, str]:
    """(the package's layout name, the 2019 name in the data) of ``layout``, given either."""
    paper = {v: k for k, v in PAPER_LAYOUTS.items()}
    if layout in PAPER_LAYOUTS:
        return PAPER_LAYOUTS[layout], layout
    return layout, paper.get(layout, layout)


def _terrain(rows: list[str]) -> list[str]:
    return ["".join(" " if c.isdigit() else c for c in r) for r in rows]


def _view(game, state: dict, time_left: int) -> View:
    """A 2019 state dict as the ``View`` the game renders."""

    def word(obj: dict) -> str:
        if obj["name"] != "soup":
            return obj["name"]
        kind, n, _ = obj["state"]
        return f"soup {LETTERS[kind] * n}"

    players = tuple((*p["position"], DIRECTIONS[tuple(p["orientation"])],
                     word(p["held_object"]) if p.get("held_object") else "nothing") for p in state["players"])
    objects = {tuple(o["position"]): o for o in state["objects"].values()}
    pots = []
    for pos in game._pots:
        soup = objects.pop(pos, None)
        if soup is None:
            pots.append((*pos, "empty"))
            continue
        kind, n, elapsed = soup["state"]
        status = "idle" if n < 3 else "ready" if elapsed >= COOK_TIME else f"cooking {COOK_TIME - elapsed}"
        pots.append((*pos, f"{LETTERS[kind] * n} {status}"))
    items = tuple((x, y, word(o)) for (x, y), o in sorted(objects.items(), key=lambda kv: (kv[0][1], kv[0][0])))
    return View(players, items, tuple(pots), time_left)


def _joint(text: str, where: str) -> tuple[int, int]:
    try:
        joint = ast.literal_eval(text)
        return tuple(MOVES[a if isinstance(a, str) else tuple(a)] for a in joint)  # type: ignore[return-value]
    except (ValueError, SyntaxError, KeyError, TypeError):
        raise UserError(f"{where}: joint action {text!r} is not two of the game's six actions") from None


def convert(frame, layout: str, horizon: int, split: str, source: str) -> tuple[dict, list[dict]]:
    """(the game's config, one dict per session: participant, seat, info, episodes [[step dicts]]) of the
    trials of ``layout`` in ``frame``; UserError (one line) on a table that is not the trials'."""
    from adhoc.games import build_game

    name, paper = layout_names(layout)
    game = build_game({"name": "overcooked", "layout": name, "horizon": horizon})
    config = {"name": "overcooked", **game.params()}
    if not hasattr(frame, "columns") or not set(COLUMNS) <= set(frame.columns):
        raise UserError(f"{source}: not a table of the human trials (it needs the columns {', '.join(COLUMNS)})")
    present = sorted({str(x) for x in frame["layout_name"]})
    rows = frame[frame["layout_name"] == paper]
    if not len(rows):
        raise UserError(f"{source} holds no trial of layout {layout!r} (it holds: {', '.join(present) or 'none'})")
    terrain = ["".join(r) for r in game.mdp.terrain_mtx]
    sessions = []
    for trial, steps in rows.groupby("workerid_num", sort=True):
        steps = steps.sort_values("cur_gameloop")
        where = f"{source}: trial {trial}"
        grids = {str(g) for g in steps["layout"]}
        try:
            grid = [_terrain(ast.literal_eval(g)) for g in grids]
        except (ValueError, SyntaxError):
            raise UserError(f"{where}: its grid {sorted(grids)[0][:60]!r} is not a list of rows") from None
        if any(g != terrain for g in grid):
            raise UserError(f"{where} was played on another grid than layout {name!r}: {sorted(grids)[0]}")
        players = [f"w{trial}-p{s}" for s in (0, 1)]
        episodes: list[list[list[dict]]] = [[], []]
        for k, (state_text, joint_text, reward, when) in enumerate(zip(steps["state"], steps["joint_action"],
                                                                       steps["reward"], steps["datetime"])):
            try:
                state = ast.literal_eval(state_text)
                t = k % horizon
                view = _view(game, state, horizon - t)
            except (ValueError, SyntaxError, KeyError, TypeError, IndexError):
                raise UserError(f"{where}, step {k}: its state is not a 2019 Overcooked state") from None
            joint = _joint(str(joint_text), f"{where}, step {k}")
            last = k == len(steps) - 1 or t == horizon - 1
            for s in (0, 1):
                if t == 0:
                    episodes[s].append([])
                episodes[s][-1].append({
                    "participant": players[s], "t": t, "seat": s, "observation": render(game.header, view, s),
                    "legal": list(ACTIONS), "legal_index": list(range(len(ACTIONS))), "action": joint[s],
                    "action_text": ACTIONS[joint[s]], "partner_action": joint[1 - s],
                    "partner_action_text": ACTIONS[joint[1 - s]], "reward": float(reward), "done": last,
                    "time": float(when) / 1000, "response_s": None})
        for s in (0, 1):
            sessions.append({"participant": players[s], "seat": s, "partner": players[1 - s], "episodes": episodes[s],
                             "info": {"dataset": "Carroll et al. 2019 human-human trials", "file": Path(source).name,
                                      "split": split, "layout": name, "layout_2019": paper, "trial": int(trial),
                                      "players": players, "episode_first_steps": [i * horizon for i in range(len(episodes[s]))]}})
    return config, sessions


def import_trials(split: str, layout: str, db: str | Path, horizon: int = 400, file: str | Path | None = None) -> dict:
    """Convert the ``split`` trials of ``layout`` (from ``file``, default the package's pickle) into the recording
    ``db`` in one transaction; every check comes first, so a refused input writes nothing. Returns counts."""
    from adhoc.recording import Recorder

    if split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)} (got {split!r})")
    if horizon < 1:
        raise UserError(f"--horizon must be >= 1 (got {horizon})")
    path = Path(file) if file is not None else published_file(split)
    config, sessions = convert(restricted_load(path), layout, horizon, split, str(path))
    recorder = Recorder.open(db)
    try:
        recorder.conn.execute("BEGIN IMMEDIATE")
        for s in sessions:
            sid = recorder.start_session(s["participant"], "import:overcooked-human", config, s["seat"], info=s["info"])
            for number, steps in enumerate(s["episodes"], 1):
                eid = recorder.start_episode(sid, number, f"human:{s['partner']}", f"overcooked-human:{split}",
                                             s["partner"], s["seat"])
                for step in steps:
                    recorder.record_step(eid, step, ends_episode=step["done"])
            recorder.end_session(sid)
        recorder.conn.execute("COMMIT")
    except BaseException:
        if recorder.conn.in_transaction:
            recorder.conn.execute("ROLLBACK")
        raise
    finally:
        recorder.close()
    steps = sum(len(e) for s in sessions[::2] for e in s["episodes"])
    return {"trials": len(sessions) // 2, "transitions": steps, "sessions": len(sessions),
            "episodes": sum(len(s["episodes"]) for s in sessions), "layout": config["layout"], "split": split}
