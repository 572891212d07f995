"""``overcooked``: the rendering on hand-built states, the dynamics and rewards against the package's own
``OvercookedEnv``, the horizon and shaping, prefix reuse, PettingZoo, bad input (one line, exit 2, nothing
written), the human-data importer (a synthetic table, the real trials) and its restricted unpickler."""

import pickle

import numpy as np
import pytest
import torch

pytest.importorskip("overcooked_ai_py")
pd = pytest.importorskip("pandas")

from adhoc.cli import main  # noqa: E402
from adhoc.games import make_game  # noqa: E402
from adhoc.games.overcooked import ACTIONS, layouts, load_package  # noqa: E402
from adhoc.games.overcooked_human import import_trials, restricted_load  # noqa: E402
from adhoc.recording import read_steps  # noqa: E402

CONFIG = "configs/overcooked-cramped-selfplay.yaml"


def package_state(players, objects=()):
    """A package ``OvercookedState``: players [(pos, orientation, held ObjectState or None)], objects."""
    mdp, _ = load_package()
    return mdp.OvercookedState([mdp.PlayerState(p, o, h) for p, o, h in players], {obj.position: obj for obj in objects})


def test_rendering_shows_positions_orientations_held_objects_pots_and_time():
    mdp, _ = load_package()
    game = make_game("overcooked", layout="cramped_room", horizon=50)
    onion = mdp.ObjectState("onion", (1, 2))
    cooking = mdp.SoupState((2, 0), [mdp.ObjectState("onion", (2, 0)) for _ in range(3)], cooking_tick=5)
    dish = mdp.ObjectState("dish", (0, 2))
    state = game.reset(1, np.random.default_rng(0))
    state.extra["states"] = [package_state([((1, 2), (0, -1), onion), ((3, 1), (-1, 0), None)], [cooking, dish])]
    state.t = 8
    you, partner = game.observe(state, 0)[0], game.observe(state, 1)[0]
    assert you.startswith("overcooked cramped_room\nXXPXX\nO...O\nX...X\nXDXSX\n")
    assert "you 1 2 up onion partner 3 1 left nothing" in you and "you 3 1 left nothing partner 1 2 up onion" in partner
    assert f"pot 2 0 ooo cooking {cooking.cook_time - 5}" in you and "counter 0 2 dish" in you and you.endswith("time 42")
    idle = mdp.SoupState((2, 0), [mdp.ObjectState("onion", (2, 0))] * 2)
    held = mdp.SoupState((3, 1), [mdp.ObjectState("onion", (3, 1)) for _ in range(3)], cooking_tick=20)
    state.extra["states"] = [package_state([((1, 2), (0, 1), None), ((3, 1), (1, 0), held)], [idle])]
    text = game.observe(state, 0)[0]
    assert "pot 2 0 oo idle" in text and "partner 3 1 right soup ooo" in text and "you 1 2 down nothing" in text
    shown = game.show(state, 0)[0]
    assert "You (1) at (1, 2) facing down, holding nothing." in shown and "Pot at (2, 0): oo idle." in shown
    assert "42 steps left." in shown


@pytest.mark.parametrize("shaping", [0.0, 1.0])
def test_steps_match_the_package_env_for_random_joint_actions(shaping, monkeypatch):
    """Random joint actions: the same states and rewards as the package's OvercookedEnv, step by step. (Its module
    names ``np.Inf``, which numpy 2 removed: restored for the import, the game itself never imports it.)"""
    mdp_module, actions = load_package()
    monkeypatch.setattr(np, "Inf", np.inf, raising=False)
    from overcooked_ai_py.mdp.overcooked_env import OvercookedEnv

    game = make_game("overcooked", layout="cramped_room", horizon=120, shaping=shaping)
    env = OvercookedEnv.from_mdp(mdp_module.OvercookedGridworld.from_layout_name("cramped_room"), horizon=120, info_level=0)
    rng = np.random.default_rng(0)
    state = game.reset(1, rng)
    # biased towards pick, so that onions reach the pot and soups get cooked and served
    joint = rng.choice(6, size=(120, 2), p=[0.15, 0.15, 0.15, 0.15, 0.1, 0.3])
    shaped = 0.0
    for a, b in joint.tolist():
        state, reward, done = game.step(state, torch.tensor([[a, b]]))
        _, sparse, env_done, info = env.step((actions.Action.INDEX_TO_ACTION[a], actions.Action.INDEX_TO_ACTION[b]))
        assert state.extra["states"][0] == env.state
        assert float(reward[0]) == pytest.approx(sparse + shaping * sum(info["shaped_r_by_agent"]))
        assert bool(done[0]) == env_done
        shaped += sum(info["shaped_r_by_agent"])
    assert shaped > 0  # onions went into the pot: there was something to check


def test_horizon_and_shaping_schedule():
    game = make_game("overcooked", layout="cramped_room", horizon=3, shaping=2.0, shaping_horizon=8)
    state = game.reset(2, np.random.default_rng(0))
    weights = []
    for _ in range(3):
        weights.append(game.shaping_weight())
        state, _, done = game.step(state, torch.zeros(2, 2, dtype=torch.long))
    assert bool(done.all()) and state.t == 3 and game.observe(state, 0)[0].endswith("time 0")
    assert weights == [2.0, 1.5, 1.0] and game.shaping_weight() == 0.5
    _, reward, _ = game.step(state, torch.full((2, 2), 5))
    assert float(reward.abs().sum()) == 0  # a finished episode pays nothing


def test_no_shipped_layout_has_a_symmetry_that_relabels_actions():
    """The claim of the game's docstring: no reflection maps the terrain onto itself and fixes both starts."""
    mdp, _ = load_package()
    for name in layouts():
        m = mdp.OvercookedGridworld.from_layout_name(name)
        grid = np.array([list(r) for r in m.terrain_mtx])
        for flip, keep in ((grid[:, ::-1], lambda x, y: (m.width - 1 - x, y)), (grid[::-1], lambda x, y: (x, m.height - 1 - y))):
            assert not ((grid == flip).all() and all(keep(*p) == tuple(p) for p in m.start_player_positions)), name
    assert make_game("overcooked").symmetries() is None


def test_prefix_reuse_keeps_the_layout_and_gives_the_same_scores():
    from adhoc.lm.adapters import AdapterBank
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy
    from adhoc.rollout import rollout

    game = make_game("overcooked", layout="cramped_room", horizon=4)
    base = load_base("builtin:tiny", device="cpu")
    bank = AdapterBank(base.model, 2, 4, 8, ["q_proj", "v_proj", "lm_head"])
    bank.init_members([0, 1], b_std=0.1)
    policy = Policy(base, bank)
    pairs = torch.tensor([[0, 1]])
    runs = {reuse: rollout(game, policy, pairs, 3, np.random.default_rng(1), grad=False, prefix_reuse=reuse)
            for reuse in (True, False)}
    assert torch.equal(runs[True].actions, runs[False].actions)
    assert torch.allclose(runs[True].logp, runs[False].logp, atol=1e-4)
    from adhoc.lm.policy import shared_prefix

    header = len(policy.tokens(game.header))
    reused = []
    original = Policy.scores_reusing

    def spy(self, members, observations, table, previous, previous_rows, hidden=False, partial=False):
        for text, c in zip(observations, previous_rows):
            if previous is not None and c >= 0:
                reused.append(shared_prefix(previous.ids[c], self.tokens(text)[:-1]) if partial else 0)
        return original(self, members, observations, table, previous, previous_rows, hidden, partial)

    Policy.scores_reusing = spy
    try:
        rollout(game, policy, pairs, 2, np.random.default_rng(2), grad=False)
    finally:
        Policy.scores_reusing = original
    assert reused and min(reused) >= header  # every later step reuses at least the layout's tokens


def test_pettingzoo_parallel_api():
    from pettingzoo.test import parallel_api_test

    from adhoc.games.pettingzoo import to_parallel_env

    env = to_parallel_env(make_game("overcooked", layout="cramped_room", horizon=12), seed=0)
    parallel_api_test(env, num_cycles=20)
    observations, _ = env.reset(seed=1)
    assert "you 1 2 up nothing" in observations[env.possible_agents[0]]


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("override, why", [("game.layout=nowhere", "unknown layout 'nowhere'"),
                                           ("game.layout=random3", "2019 name of counter_circuit_o_1order"),
                                           ("game.horizon=0", "game.horizon must be in 1..")])
def test_bad_game_parameters_are_one_line(override, why, capsys):
    assert main(["validate", CONFIG, override]) == 2
    err = capsys.readouterr().err.strip()
    assert why in err and len(err.splitlines()) == 1


def frame(rows_per_trial=3, layout="cramped_room", grid=("XXPXX", "O  2O", "X1  X", "XDXSX")):
    """A small table of two synthetic trials in the 2019 format."""
    rows = []
    for trial in (7, 9):
        for k in range(rows_per_trial):
            held = {"held_object": {"name": "onion", "position": [1, 2]}} if k else {}
            state = {"players": [{"position": [1, 2], "orientation": [0, -1], **held},
                                 {"position": [3, 1], "orientation": [-1, 0]}],
                     "objects": {"2,0": {"name": "soup", "position": [2, 0], "state": ["onion", 3, k]},
                                 "0,2": {"name": "soup", "position": [0, 2], "state": ["onion", 3, 20]}},
                     "order_list": ["onion"], "pot_explosion": False}
            rows.append({"layout_name": layout, "layout": str(list(grid)), "workerid_num": trial, "cur_gameloop": float(k),
                         "datetime": 1.5e12 + k, "state": str(state), "joint_action": str([[0, -1], "INTERACT"]),
                         "reward": 5.0 * (k == 2)})
    return object_strings(pd.DataFrame(rows))


def object_strings(table):
    """``table`` with its strings (values and column names) as Python objects, as the pandas of 2019 pickled them
    (today's pickles strings as pyarrow arrays, which the importer refuses)."""
    table = table.astype({c: object for c in table.columns if table[c].dtype == "str"})
    table.columns = pd.Index(list(table.columns), dtype=object)
    return table


def test_importer_converts_a_synthetic_table(tmp_path):
    path = tmp_path / "trials.pickle"
    frame().to_pickle(path)
    n = import_trials("train", "cramped_room", tmp_path / "h.sqlite", horizon=2, file=path)
    assert n == {"trials": 2, "transitions": 6, "sessions": 4, "episodes": 8, "layout": "cramped_room", "split": "train"}
    steps = read_steps(tmp_path / "h.sqlite")
    assert len(steps) == 12 and {s["participant"] for s in steps} == {"w7-p0", "w7-p1", "w9-p0", "w9-p1"}
    first = next(s for s in steps if s["participant"] == "w7-p0" and s["t"] == 0)
    assert first["game"] == {"name": "overcooked", "layout": "cramped_room", "horizon": 2}
    assert first["action"] == ACTIONS.index("up") and first["partner_action"] == ACTIONS.index("pick")
    assert "you 1 2 up nothing partner 3 1 left nothing pot 2 0 ooo cooking 20 counter 0 2 soup ooo time 2" \
        in first["observation"]
    second = next(s for s in steps if s["participant"] == "w7-p1" and s["t"] == 1)
    assert "you 3 1 left nothing partner 1 2 up onion pot 2 0 ooo cooking 19" in second["observation"]
    from adhoc.recording import open_recording

    info = open_recording(tmp_path / "h.sqlite").execute("SELECT info FROM sessions WHERE participant = 'w9-p1'").fetchone()[0]
    assert '"trial": 9' in info and '"split": "train"' in info and '"players": ["w9-p0", "w9-p1"]' in info


def test_restricted_unpickler_refuses_other_classes(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return os.system, (f"touch {tmp_path / 'ran'}",)

    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps(Evil()))
    from adhoc.errors import UserError

    with pytest.raises(UserError, match="names posix.system|names os.system|names nt.system"):
        restricted_load(path)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("case", ["layout", "absent-layout", "horizon", "corrupt", "missing", "other-grid", "evil", "not-trials"])
def test_bad_import_is_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys):
    path = tmp_path / "trials.pickle"
    frame(grid=("XXPXX", "O  2O", "X1  X", "XDSDX") if case == "other-grid" else ("XXPXX", "O  2O", "X1  X", "XDXSX")).to_pickle(path)
    if case == "corrupt":
        path.write_bytes(path.read_bytes()[:200])
    if case == "evil":
        path.write_bytes(pickle.dumps(print))
    if case == "not-trials":
        object_strings(pd.DataFrame({"a": [1.0]})).to_pickle(path)
    args = {"layout": "nowhere", "absent-layout": "five_by_five", "horizon": "0"}
    argv = ["data", "import", "overcooked-human", "--split", "train", "--layout", args.get(case, "cramped_room") if "layout" in case else "cramped_room",
            "--db", str(tmp_path / "h.sqlite"), "--horizon", args.get(case, "400") if case == "horizon" else "400",
            "--file", str(tmp_path / "absent.pickle") if case == "missing" else str(path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert {"layout": "unknown layout 'nowhere'", "absent-layout": "holds no trial of layout 'five_by_five'", "horizon": "--horizon must be >= 1", "corrupt": "not a readable pickle",
            "missing": "not found", "other-grid": "another grid", "evil": "builtins.print",
            "not-trials": "not a table of the human trials"}[case] in err
    assert not (tmp_path / "h.sqlite").exists()


def test_the_published_trials(tmp_path):
    """The package's pickles: 9,564 cramped_room training transitions in 8 trials; every other layout too."""
    n = import_trials("train", "cramped_room", tmp_path / "h.sqlite")
    assert (n["trials"], n["transitions"]) == (8, 9564)
    table = restricted_load(__import__("adhoc.games.overcooked_human", fromlist=["x"]).published_file("test"))
    assert len(table) == 44373 and table.groupby("layout_name").size()["cramped_room"] == 9626


def test_person_cooks_with_a_proxy_and_the_play_records_in_the_same_schema(tmp_path):
    """Synthetic trials -> train-proxy -> adhoc play (the terminal) with the proxy: the person's steps record
    with the observation the game renders, as the imported ones do."""
    from adhoc.play import play_terminal
    from adhoc.recipes.train_proxy import train_proxy

    path = tmp_path / "trials.pickle"
    frame().to_pickle(path)
    import_trials("train", "cramped_room", tmp_path / "h.sqlite", horizon=2, file=path)
    pop = train_proxy(tmp_path / "h.sqlite", out=tmp_path / "proxy", pooled=True, iterations=2, progress=False)
    assert [m["name"] for m in pop.members] == ["proxy-pooled"]
    answers, shown = iter(["pick", "9", "2"]), []
    game = make_game("overcooked", layout="cramped_room", horizon=2)
    summary = play_terminal(game, str(pop.path), seat=0, episodes=1, db=tmp_path / "play.sqlite", seed=0,
                            read=lambda prompt: next(answers), write=shown.append)
    assert summary["stopped"] is None and len(summary["returns"]) == 1
    text = "".join(shown)
    assert "You (1) at (1, 2) facing up, holding nothing." in text and "not one of your legal actions" in text
    steps = read_steps(tmp_path / "play.sqlite")
    assert [s["action_text"] for s in steps] == ["pick", "right"]
    state = game.reset(1, np.random.default_rng(0))
    assert steps[0]["observation"] == game.observe(state, 0)[0]
    imported = read_steps(tmp_path / "h.sqlite")[0]
    assert set(imported) == set(steps[0]) and imported["game"] == steps[0]["game"]


# ------------------------------------------------------------------ the browser's drawing (adhoc serve)
FACING = {(0, -1): "up", (0, 1): "down", (1, 0): "right", (-1, 0): "left"}
# a real episode on cramped_room: seat 0 takes a dish and puts it on a counter, seat 1 brings three onions to the
# pot and starts it; then both wait until the soup is ready
COOK = list(zip(["down", "pick", "left", "pick"] + ["stay"] * 33,
                ["right", "pick", "left", "up", "pick"] * 3 + ["pick"] + ["stay"] * 21))


def package_drawing(game, s, seat: int, time_left: int) -> dict:
    """What the drawing must hold, read off the package's ``OvercookedState`` itself (not the game's ``view``)."""
    pots, counters = [], []
    for pos, obj in sorted(s.objects.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if pos not in game.mdp.get_pot_locations():
            counters.append({"x": pos[0], "y": pos[1], "item": obj.name})
    for pos in game.mdp.get_pot_locations():
        soup = s.objects.get(pos)
        status = "empty" if soup is None else "ready" if soup.is_ready else "cooking" if soup.is_cooking else "idle"
        pots.append({"x": pos[0], "y": pos[1], "contents": "o" * len(soup.ingredients) if soup else "",
                     "status": status, "timer": soup.cook_time_remaining if status == "cooking" else None})
    players = [{"x": p.position[0], "y": p.position[1], "facing": FACING[p.orientation],
                "holding": p.held_object.name if p.held_object else None, "you": k == seat}
               for k, p in enumerate(s.players)]
    return {"kind": "overcooked", "layout": "cramped_room", "width": 5, "height": 4,
            "terrain": ["XXPXX", "O...O", "X...X", "XDXSX"], "players": players, "pots": pots,
            "counters": counters, "time_left": time_left, "horizon": game.horizon}


def test_the_drawing_is_the_package_state_at_every_step_of_an_episode_from_each_seat():
    """Positions, facing, held items, the pot's contents and timer (empty, idle, cooking N, ready), items on
    counters and the time left: the package's own state at every step, with "you" the drawing's seat."""
    import json

    game = make_game("overcooked", layout="cramped_room", horizon=40)
    state = game.reset(2, np.random.default_rng(0))
    seen = set()
    for t, joint in enumerate([("stay", "stay")] + COOK):
        if t:
            state, _, _ = game.step(state, torch.tensor([[ACTIONS.index(a) for a in joint]] * 2))
        s = state.extra["states"][1]
        for seat in (0, 1):
            drawn = game.draw(state, seat)
            assert len(drawn) == 2 and json.loads(json.dumps(drawn[1])) == drawn[1]
            assert drawn[1] == package_drawing(game, s, seat, 40 - state.t), (t, seat)
            assert [p["you"] for p in drawn[1]["players"]] == [seat == 0, seat == 1]
        pot = drawn[1]["pots"][0]
        seen |= {pot["status"], *(p["holding"] for p in drawn[1]["players"]), *(c["item"] for c in drawn[1]["counters"])}
    assert {"empty", "idle", "cooking", "ready", "onion", "dish"} <= seen  # the episode went through all of these
    assert game.draw(state, 0)[1]["pots"][0] == {"x": 2, "y": 0, "contents": "ooo", "status": "ready", "timer": None}
    mdp, _ = load_package()
    soup = mdp.SoupState((3, 1), [mdp.ObjectState("onion", (3, 1)) for _ in range(3)], cooking_tick=20)
    state.extra["states"] = [package_state([((1, 2), (0, 1), None), ((3, 1), (1, 0), soup)])]
    assert game.draw(state, 1)[0]["players"][1] == {"x": 3, "y": 1, "facing": "right", "holding": "soup ooo",
                                                    "you": True}


def test_a_person_cooks_with_a_member_in_the_served_study(tmp_path):
    """``adhoc serve``'s Study on Overcooked with a trained member as the partner: every step is a decision of
    both seats at once; the person's move and the member's are played together, said in the log, recorded, and
    the drawing is the new state's."""
    from adhoc.recipes.train_proxy import train_proxy
    from adhoc.serve import Study

    path = tmp_path / "trials.pickle"
    frame().to_pickle(path)
    import_trials("train", "cramped_room", tmp_path / "h.sqlite", horizon=3, file=path)
    pop = train_proxy(tmp_path / "h.sqlite", out=tmp_path / "proxy", pooled=True, iterations=2, progress=False)
    game = make_game("overcooked", layout="cramped_room", horizon=3)
    for seat in (0, 1):
        study = Study(game, [f"{pop.path}:proxy-pooled"], tmp_path / f"study{seat}.sqlite", seat=seat, seed=0,
                      episodes_per_partner=1)
        try:
            token = study.start("P1", True)
            for t, move in enumerate(["down", "pick", "left"]):
                s = study.view(token)
                assert (s["t"], [a["text"] for a in s["actions"]]) == (t, ACTIONS)
                (session,) = study.sessions.values()
                assert s["drawing"] == game.draw(session.tables[0].state, seat)[0]
                assert s["drawing"]["time_left"] == 3 - t and s["drawing"]["players"][seat]["you"]
                study.act(token, s["episode"], t, ACTIONS.index(move))
                said = study.view(token)["log"][0]
                assert said.startswith(f"You {game.describe_action(seat, ACTIONS.index(move))}; your partner ")
            assert study.view(token)["phase"] == "done"
        finally:
            study.close()
        steps = read_steps(tmp_path / f"study{seat}.sqlite")
        assert [(r["seat"], r["action_text"]) for r in steps] == [(seat, m) for m in ("down", "pick", "left")]
        assert all(r["partner_action_text"] in ACTIONS for r in steps)
        assert steps[0]["observation"] == game.observe(game.reset(1, np.random.default_rng(0)), seat)[0]


def test_people_play_a_shaping_trained_population_for_soups_alone(tmp_path, capsys):
    """Shaped rewards are a training schedule: a population trained with them is the same game as one without
    (it plays with an unshaped proxy, and people play it), people get the soups alone, and a config that turns
    shaping on for people is refused in one line before anything is recorded."""
    from adhoc.config import load_config
    import socket

    from adhoc.play import load_partner, people_game
    from adhoc.recipes.train_population import train_population

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    shaped = ["game.horizon=3", "game.shaping_horizon=100", "population.size=2", "train.iterations=1",
              "train.episodes_per_pair=2", "train.eval_episodes=2", "train.eval_every=1"]
    pop = train_population(load_config(CONFIG, shaped), tmp_path / "shaped", progress=False)
    assert pop.game["shaping"] == 1.0 and pop.game["shaping_horizon"] == 100
    game = people_game(None, [], f"{pop.path}:member-00")
    assert game.params() == {"layout": "cramped_room", "horizon": 3} and game.shaping_weight() == 0.0
    assert load_partner(str(pop.path), game).names == ["member-00", "member-01"]
    assert people_game(CONFIG, ["game.horizon=3", "game.shaping=0"], str(pop.path)).params() == game.params()
    for command in (["play", CONFIG, "--partner", str(pop.path)],
                    ["serve", "--config", CONFIG, "--partners", str(pop.path), "--port", str(free_port())]):
        db = tmp_path / f"{command[0]}.sqlite"
        assert main([*command, "--db", str(db)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "game.shaping must be off" in err and "add game.shaping=0" in err
        assert not db.exists()


def test_train_proxy_scores_on_another_recording_and_keeps_players_with_enough_data(tmp_path, capsys):
    from adhoc.recipes.train_proxy import train_proxy

    path = tmp_path / "trials.pickle"
    frame(rows_per_trial=4).to_pickle(path)
    import_trials("train", "cramped_room", tmp_path / "train.sqlite", horizon=2, file=path)
    frame(rows_per_trial=2).to_pickle(path)
    import_trials("test", "cramped_room", tmp_path / "test.sqlite", horizon=2, file=path)
    pop = train_proxy(tmp_path / "train.sqlite", out=tmp_path / "proxy", iterations=1, progress=False,
                      heldout_source=tmp_path / "test.sqlite", min_decisions=4)
    assert len(pop.members) == 4  # every player has 4 decisions
    assert all(m["heldout"]["decisions"] == 8 and m["train"]["decisions"] == 4 for m in pop.members)
    assert pop.manifest["method"]["heldout_source"] == str(tmp_path / "test.sqlite")
    argv = ["train-proxy", str(tmp_path / "train.sqlite"), "--out", str(tmp_path / "none"), "--quiet"]
    assert main(argv + ["--min-decisions", "5"]) == 2
    assert "no participant has 5 decisions (the most: 4)" in capsys.readouterr().err
    import_trials("test", "cramped_room", tmp_path / "other.sqlite", horizon=3, file=path)
    assert main(argv + ["--heldout", str(tmp_path / "other.sqlite")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds another game" in err and len(err.splitlines()) == 1 and not (tmp_path / "none").exists()


def test_import_adhoc_does_not_import_overcooked():
    import subprocess
    import sys
    from pathlib import Path

    code = """
import sys
import adhoc, adhoc.cli, adhoc.games, adhoc.games.overcooked, adhoc.games.overcooked_human
from adhoc.cli import main
assert main(["validate", "configs/lever-selfplay.yaml"]) == 0
assert "overcooked_ai_py" not in sys.modules and "pandas" not in sys.modules
"""
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_without_the_package_one_line_names_the_extra(monkeypatch, capsys, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "overcooked_ai_py", None)  # import fails, as where it is not installed
    monkeypatch.setitem(sys.modules, "overcooked_ai_py.mdp", None)
    assert main(["train-population", CONFIG, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install -e ".[overcooked]"' in err
    assert not (tmp_path / "out").exists()
    assert main(["validate", CONFIG]) == 0  # validate names it, checks the rest
    assert capsys.readouterr().out.startswith(f"not checked: {CONFIG}: game 'overcooked' needs Overcooked-AI")


@pytest.mark.usefixtures("text_observations")
@pytest.mark.filterwarnings("ignore:Observation")  # api_test's advice to use NumPy observations and spaces
def test_pettingzoo_aec_api():
    from pettingzoo.test import api_test

    from adhoc.games.pettingzoo import to_aec_env

    api_test(to_aec_env(make_game("overcooked", layout="cramped_room", horizon=12), seed=0), num_cycles=20)
