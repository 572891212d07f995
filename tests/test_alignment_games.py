"""The cooperative alignment games of the seed paper: ``warehouse`` (grounding linguistic feedback), its
scripted teachers (human proxies) as partners, rollouts with scripted seats, prefix reuse, Other-Play
relabelling, PettingZoo conformance and one-line errors."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test

from adhoc.errors import UserError
from adhoc.games import GAMES, GameError, make_game
from adhoc.games.pettingzoo import to_parallel_env
from adhoc.games.warehouse import MOVES, REFLECTIONS, ROBOT, STAY, TEACHER, WarehouseTeacher, direction_to_goal
from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.rollout import rollout
from adhoc.scripted import ScriptedPopulation, load_scripted_population, scripted_ids

ROOT = Path(__file__).parent.parent  # the repository: tests do not depend on the working folder


class Follower:
    """A scripted robot that reads labels by a fixed convention (direction i <- label conv[i])."""

    name, seats = "follower", (ROBOT,)

    def __init__(self, convention=(0, 1, 2, 3)):
        self.convention = list(convention)

    def log_probs(self, game, state, seat):
        E = state.n_episodes
        out = torch.full((E, len(MOVES)), float("-inf"))
        if state.t >= game.horizon or game.phase(state.t)[2] != ROBOT:
            out[:, STAY] = 0.0
            return out
        said = state.history[-1][:, TEACHER]  # the teacher spoke at the previous step
        direction = torch.tensor([self.convention.index(int(a)) if int(a) in self.convention else STAY
                                  for a in said])
        out[torch.arange(E), direction] = 0.0
        return out


def _play(game, robot, teacher, n=64, seed=0):
    """Play n interactions with two scripted strategies; returns (rewards [n, T], final state)."""
    state = game.reset(n, np.random.default_rng(seed))
    rewards = []
    for _ in range(game.horizon):
        joint = [strategy.log_probs(game, state, seat).argmax(1) for seat, strategy in ((0, robot), (1, teacher))]
        state, r, _ = game.step(state, torch.stack(joint, 1))
        rewards.append(r)
    return torch.stack(rewards, 1), state


@pytest.fixture(scope="module")
def policy():
    base = load_base("builtin:tiny", device="cpu", dtype="float32")
    bank = AdapterBank(base.model, 3, 4, 8.0, ["q_proj", "v_proj", "lm_head"])
    bank.init_members([1, 2, 3], b_std=0.3)
    return Policy(base, bank)


# ---------------------------------------------------------------------------------------------- the game
def test_warehouse_registered_and_shaped():
    game = make_game("warehouse")
    assert "warehouse" in GAMES and game.name == "warehouse"
    assert game.horizon == 3 * 2 * 2 and game.action_names(ROBOT) == MOVES
    assert game.action_names(TEACHER) == ["Up", "Down", "Left", "Right"]
    assert make_game("warehouse", n_labels=5).action_names(TEACHER) == ["A", "B", "C", "D", "E"]
    assert game.params() == {"width": 3, "height": 3, "moves": 2, "episodes": 3,
                             "labels": ["Up", "Down", "Left", "Right"], "reward": "distance"}


def test_turns_masks_transcripts_and_walls():
    game = make_game("warehouse", width=4, height=2, moves=2, episodes=2)
    state = game.reset(3, np.random.default_rng(0))
    state.extra["starts"][:, 0] = torch.tensor([[0, 0], [3, 1], [1, 0]])  # fix the first start for the test
    state.extra["goal"] = torch.tensor([[3, 0], [3, 1], [1, 1]])
    state.extra["text"] = ([""] * 3,) * 2
    game._start_episode(state, 0)
    previous = [game.observe(state, s) for s in (0, 1)]
    assert previous[0][0] == "robot . episode at 0 0 :"
    # the teacher sees θ: its best cell, and the direction it increases in from the robot's cell
    assert previous[1] == ["teacher reward at 3 0 . episode at 0 0 : reward right",
                           "teacher reward at 3 1 . episode at 3 1 : reward stay",
                           "teacher reward at 1 1 . episode at 1 0 : reward up"]
    # teacher's turn: the robot can only stay
    assert game.legal_mask(state, TEACHER).all() and game.legal_mask(state, ROBOT).tolist() == [[0, 0, 0, 0, 1]] * 3
    state, r, done = game.step(state, torch.tensor([[STAY, 2], [STAY, 0], [STAY, 3]]))
    assert r.tolist() == [0, 0, 0] and not done.any()
    assert game.legal_mask(state, ROBOT).all() and game.legal_mask(state, TEACHER).tolist() == [[1, 0, 0, 0]] * 3
    assert game.observe(state, ROBOT)[0] == "robot . episode at 0 0 : Left"
    # robot's turn: left into the wall stays put, up moves y + 1, right moves x + 1
    state, r, _ = game.step(state, torch.tensor([[2, 0], [0, 0], [3, 0]]))
    assert state.extra["pos"].tolist() == [[0, 0], [3, 1], [2, 0]]
    assert game.observe(state, ROBOT)[2] == "robot . episode at 1 0 : Right right at 2 0"
    assert game.observe(state, TEACHER)[2].endswith("episode at 1 0 : reward up Right right at 2 0 reward left")
    for s in (0, 1):  # append-only transcripts: what prefix reuse relies on
        now = game.observe(state, s)
        assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(previous[s], now))


def test_rewards_theta_and_done():
    for reward in ("distance", "goal"):
        game = make_game("warehouse", width=3, height=3, moves=1, episodes=2, reward=reward)
        state = game.reset(2, np.random.default_rng(1))
        goal, starts = state.extra["goal"].clone(), state.extra["starts"].clone()
        for t in range(game.horizon):
            state, r, done = game.step(state, torch.tensor([[STAY, 0], [STAY, 0]]))  # the robot stays put
            k, _, seat = game.phase(t)
            expected = game.theta(goal, starts[:, k]) / 2 if seat == ROBOT else torch.zeros(2)  # paid at episode ends
            assert torch.allclose(r, expected) and done.all() == (t == game.horizon - 1)
        assert state.t == game.horizon
        d = (goal - state.extra["pos"]).abs().sum(1).float()
        theta = 1 - d / 4 if reward == "distance" else (d == 0).float()
        assert torch.allclose(game.theta(goal, state.extra["pos"]), theta)
        _, again, _ = game.step(state, torch.tensor([[0, 0], [0, 0]]))  # finished interactions pay 0
        assert again.tolist() == [0.0, 0.0]


def test_direct_teacher_and_follower_reach_the_goal():
    game = make_game("warehouse", width=3, height=3, moves=4, episodes=2, reward="goal")
    teachers = game.scripted_strategies()
    rewards, state = _play(game, Follower(), teachers["direct"], n=200)
    # 4 moves reach any cell of a 3x3 grid; at a goal by a wall the robot is told to bump into it and stays;
    # at the centre (no wall, no label for stay) it has to step off and may not get back in time
    by_wall = (state.extra["goal"] != 1).any(1)
    assert torch.allclose(rewards.sum(1)[by_wall], torch.ones(int(by_wall.sum()))) and by_wall.sum() > 150
    parity = ((state.extra["starts"] - 1).abs().sum(2) % 2 == 0).float() / 2  # [n, K]: back in time iff even
    assert torch.equal(rewards.sum(1)[~by_wall], parity[~by_wall].sum(1))
    # a robot with the wrong convention does much worse; with the teacher's convention it is perfect again
    wrong, _ = _play(game, Follower(), teachers["direct-swap"], n=200)
    assert wrong.sum(1).mean() < 0.5
    right, _ = _play(game, Follower((1, 0, 3, 2)), teachers["direct-swap"], n=200)
    assert torch.equal(right, rewards)


def test_direction_to_goal_and_grounding_teacher_names_moves():
    game = make_game("warehouse", width=3, height=3, moves=3, episodes=2)
    state = game.reset(4, np.random.default_rng(0))
    state.extra["goal"] = torch.tensor([[2, 0], [0, 2], [1, 1], [2, 2]])
    state.extra["pos"] = torch.tensor([[0, 0], [0, 0], [1, 1], [2, 2]])
    assert direction_to_goal(game, state).tolist() == [3, 0, 0, 0]  # right, up, interior goal: up, wall: up
    ground = game.scripted_strategies()["ground-rotate"]
    assert ground.grounding and ground.seats == (TEACHER,)
    # first teacher turn of the first episode: nothing to name yet, so it directs (by its convention)
    first = ground.log_probs(game, state, TEACHER).argmax(1)
    assert first.tolist() == [ground.convention[d] for d in direction_to_goal(game, state).tolist()]
    state, _, _ = game.step(state, torch.stack([torch.full((4,), STAY), first], 1))
    state, _, _ = game.step(state, torch.tensor([[1, 0], [2, 0], [4, 0], [3, 0]]))  # down, left, stay, right
    named = ground.log_probs(game, state, TEACHER).argmax(1)
    assert named[[0, 1, 3]].tolist() == [ground.convention[m] for m in (1, 2, 3)]  # names the moves
    assert named[2] == ground.convention[direction_to_goal(game, state)[2]]  # after a stay: directs
    assert math.isinf(ground.log_probs(game, state, TEACHER)[0, 0]) or named[0] == 0  # deterministic


# ---------------------------------------------------------------------------------------------- symmetry
def test_label_permutations_and_relabel_observation():
    game = make_game("warehouse")
    group = game.symmetries()
    assert group.order() == 24 and make_game("warehouse", n_labels=26).symmetries().order() == math.factorial(26)
    phi = group.sample(2400, np.random.default_rng(0))
    assert (phi[0] == np.arange(5)).all() and len({tuple(p) for p in phi[1]}) == 24
    assert all(group.contains((a, b)) for a, b in zip(phi[0][:50], phi[1][:50]))
    assert not group.contains((np.array([1, 0, 2, 3, 4]), np.arange(4)))  # moves are never relabelled
    state = game.reset(2, np.random.default_rng(0))
    state, _, _ = game.step(state, torch.tensor([[STAY, 0], [STAY, 2]]))  # the game hears Up, Left
    maps = torch.tensor([[1, 0, 2, 3], [3, 0, 1, 2]])  # own label a is the game's maps[e, a]
    seen = game.relabel_observation(state, TEACHER, maps)
    assert seen[0].endswith(" Down") and seen[1].endswith(" Right")  # φ⁻¹(Up) = Down, φ⁻¹(Left) = Right
    assert game.relabel_observation(state, ROBOT, maps) == game.observe(state, ROBOT)


def test_otherplay_accepts_the_warehouse():
    from adhoc.methods import METHODS

    game = make_game("warehouse")
    method = METHODS["otherplay"].build(METHODS["otherplay"].config_cls(), game, 2)
    maps = method.rollout_options(torch.tensor([[0, 0], [1, 1]]), 4, np.random.default_rng(0))["partner_maps"]
    assert maps.shape == (8, 4) and (maps.sort(1).values == torch.arange(4)).all()
    assert "seat0_maps" not in method.rollout_options(torch.tensor([[0, 0]]), 2, np.random.default_rng(0))


def test_grid_reflections_group():
    game = make_game("warehouse", reflections=True)
    group = game.symmetries()
    assert group.order() == 4 * 24 and make_game("warehouse", n_labels=26, reflections=True).symmetries().order() \
        == 4 * math.factorial(26)
    assert game.params()["reflections"] is True and "reflections" not in make_game("warehouse").params()
    assert make_game("warehouse", **game.params()).symmetries().order() == 96
    phi = group.sample(9600, np.random.default_rng(0))
    reflections = [tuple(r) for r in REFLECTIONS.tolist()]
    counts = {r: sum(tuple(p) == r for p in phi[0].tolist()) for r in reflections}
    assert sum(counts.values()) == 9600 and all(2200 < c < 2600 for c in counts.values())  # 2400 ± 4 sd
    assert len({(tuple(a), tuple(b)) for a, b in zip(phi[0], phi[1])}) == 96  # every element drawn
    assert all(group.contains((a, b)) for a, b in zip(phi[0][:200], phi[1][:200]))
    assert not group.contains((np.array([2, 3, 0, 1, 4]), np.arange(4)))  # not a reflection
    assert not group.contains((REFLECTIONS[1], np.array([0, 0, 1, 2])))  # labels not a permutation
    assert not make_game("warehouse").symmetries().contains((REFLECTIONS[1], np.arange(4)))  # off by default


def _reflect(game, flip, xy):
    """[.., 2] coordinates reflected by REFLECTIONS[flip] (flip_x + 2·flip_y)."""
    out = xy.clone()
    if flip & 1:
        out[..., 0] = game.width - 1 - out[..., 0]
    if flip & 2:
        out[..., 1] = game.height - 1 - out[..., 1]
    return out


def test_reflected_teacher_view_is_the_reflected_game_and_pays_the_same():
    """Play the same interactions in the original and the reflected grid (goal, starts and robot moves
    reflected; labels relabelled by σ⁻¹): the teacher's relabelled view of the original is exactly its view of
    the reflected game, at every step, and both pay the same (θ is reflected with the positions)."""
    game = make_game("warehouse", width=12, height=3, moves=3, episodes=2, reflections=True)  # 2-digit x
    flips = torch.tensor([0, 1, 2, 3, 3, 1])
    n = len(flips)
    sigma = torch.tensor([[0, 1, 2, 3], [2, 0, 3, 1], [1, 0, 3, 2], [3, 2, 1, 0], [0, 1, 2, 3], [1, 2, 3, 0]])
    inverse = torch.argsort(sigma, 1)
    orig = game.reset(n, np.random.default_rng(3))
    orig.extra["goal"][:2] = torch.tensor([[11, 0], [10, 2]])  # goals and starts near the walls
    orig.extra["starts"][:2, 0] = torch.tensor([[0, 2], [11, 1]])
    refl = game.reset(n, np.random.default_rng(3))
    for key in ("goal", "starts"):
        refl.extra[key] = torch.stack([_reflect(game, f, xy) for f, xy in zip(flips.tolist(), orig.extra[key])])
    for state in (orig, refl):
        state.extra["text"] = ([""] * n,) * 2
        game._start_episode(state, 0)
    seat0 = torch.as_tensor(REFLECTIONS)[flips]  # [n, 5]
    rng = np.random.default_rng(0)
    returns = torch.zeros(2, n)
    for t in range(game.horizon):
        seen = game.relabel_observation(orig, TEACHER, sigma, seat0_maps=seat0)
        assert seen == game.observe(refl, TEACHER)
        assert game.relabel_observation(orig, ROBOT, sigma, seat0_maps=seat0) == game.observe(orig, ROBOT)
        moves, labels = torch.as_tensor(rng.integers(5, size=n)), torch.as_tensor(rng.integers(4, size=n))
        if game.phase(t)[2] == TEACHER:
            moves = torch.full((n,), STAY)
        orig, r0, _ = game.step(orig, torch.stack([moves, labels], 1))
        refl, r1, _ = game.step(refl, torch.stack([seat0.gather(1, moves[:, None])[:, 0],
                                                   inverse.gather(1, labels[:, None])[:, 0]], 1))
        returns += torch.stack([r0, r1])
    assert game.relabel_observation(orig, TEACHER, sigma, seat0_maps=seat0) == game.observe(refl, TEACHER)
    assert "at 11 " in game.observe(orig, TEACHER)[0] and "reward left" in game.observe(refl, TEACHER)[1]
    assert torch.equal(returns[0], returns[1]) and returns[0].sum() > 0
    # identity reflections change nothing; without seat0_maps only the labels are relabelled
    ident = torch.as_tensor(REFLECTIONS[[0] * n])
    assert game.relabel_observation(orig, TEACHER, sigma, ident) == game.relabel_observation(orig, TEACHER, sigma)
    with pytest.raises(GameError, match="not a symmetry of the robot's moves"):
        make_game("warehouse").relabel_observation(orig, TEACHER, sigma, seat0_maps=seat0)


def test_otherplay_with_reflections_relabels_the_teacher_world_and_trains(policy, tmp_path):
    from pathlib import Path

    from adhoc.config import load_config
    from adhoc.methods import METHODS
    from adhoc.recipes.train_population import train_population

    game = make_game("warehouse", moves=1, episodes=2, reflections=True)
    method = METHODS["otherplay"].build(METHODS["otherplay"].config_cls(), game, 2)
    pairs = torch.tensor([[0, 0], [1, 1]])
    options = method.rollout_options(pairs, 8, np.random.default_rng(0))
    assert options["seat0_maps"].shape == (16, 5) and options["partner_maps"].shape == (16, 4)
    seen = []
    original = game.relabel_observation
    game.relabel_observation = lambda state, seat, maps, **kw: seen.append(kw) or original(state, seat, maps, **kw)
    traj = rollout(game, policy, pairs, 8, np.random.default_rng(1), **options)
    assert seen and all(torch.equal(kw["seat0_maps"], options["seat0_maps"]) for kw in seen)
    assert traj.returns.shape == (2, 8)
    with pytest.raises(ValueError, match="seat0_maps needs partner_maps"):
        rollout(game, policy, pairs, 8, np.random.default_rng(1), seat0_maps=options["seat0_maps"])
    config = load_config(Path(__file__).parent.parent / "configs/warehouse-otherplay.yaml",
                         ["game.reflections=true", "population.size=2", "train.iterations=2", "train.eval_every=2",
                          "train.episodes_per_pair=4", "train.eval_episodes=4"])
    pop = train_population(config, out=tmp_path / "pop", progress=False)
    assert pop.game["reflections"] is True and len(pop.names) == 2


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("params,message", [
    ({"width": 0}, "game.width must be >= 1"),
    ({"height": 1, "width": 1}, "2..400 cells"),
    ({"moves": 0}, "game.moves must be >= 1"),
    ({"episodes": 0}, "game.episodes must be >= 1"),
    ({"n_labels": 30}, "more than the 26 single-token labels"),
    ({"labels": ["Up"]}, "at least 2 labels"),
    ({"labels": ["Up", "Up"]}, "duplicates"),
    ({"labels": ["up", "Down"]}, "clashes"),
    ({"labels": ["Up 1", "Down"]}, "ASCII letters"),
    ({"reward": "sparse"}, "distance or goal"),
    ({"episodes": 60, "moves": 20}, "exceed 4000 characters"),
])
def test_impossible_parameters(params, message):
    with pytest.raises(GameError, match=message):
        make_game("warehouse", **params)


@pytest.mark.parametrize("override,match", [("game.width=0", "game.width must be >= 1"),
                                            ("game.n_labels=99", "more than the 26 single-token labels"),
                                            ("game.moves=0", "game.moves must be >= 1")])
def test_cli_reports_bad_warehouse_in_one_line(override, match, capsys):
    from adhoc.cli import main

    assert main(["validate", str(ROOT / "configs/warehouse-selfplay.yaml"), override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err and "Traceback" not in err


def test_scripted_population_specs():
    game = make_game("warehouse")
    pop = load_scripted_population("scripted:warehouse", game)
    assert isinstance(pop, ScriptedPopulation) and len(pop) == 8 and pop.names[0] == "direct"
    assert all(isinstance(s, WarehouseTeacher) for s in pop.strategies)
    two = load_scripted_population("scripted:warehouse:ground,direct-swap", game)
    assert two.names == ["ground", "direct-swap"] and two.strategies[0].grounding
    # any label convention by its digits (label said for up, down, left, right); registered ones agree
    named = load_scripted_population("scripted:warehouse:ground-1032,direct-3201,direct-0123", game)
    assert [s.convention for s in named.strategies] == [(1, 0, 3, 2), (3, 2, 0, 1), (0, 1, 2, 3)]
    assert named.strategies[0].grounding and not named.strategies[1].grounding
    assert named.strategies[0].convention == pop.strategies[pop.names.index("ground-swap")].convention
    for spec, message in [("scripted:lever", "cannot play game 'warehouse'"), ("warehouse", "not a scripted"),
                          ("scripted:warehouse:nope", "unknown scripted strategy 'nope'"),
                          ("scripted:warehouse:ground,ground", "named twice"),
                          ("scripted:warehouse:ground-1132", "or direct-DDDD / ground-DDDD"),
                          ("scripted:warehouse:point-0123", "unknown scripted strategy 'point-0123'")]:
        with pytest.raises(UserError, match=message):
            load_scripted_population(spec, game)
    with pytest.raises(UserError, match="no scripted strategies"):
        load_scripted_population("scripted:lever", make_game("lever"))
    with pytest.raises(GameError, match="at least 4 labels"):
        make_game("warehouse", n_labels=3).scripted_strategies()


# ---------------------------------------------------------------------------------------------- rollout
def test_rollout_with_scripted_seats(policy):
    game = make_game("warehouse", moves=4, episodes=2, reward="goal")
    policy.scripted = []
    teachers = scripted_ids(policy, load_scripted_population("scripted:warehouse:direct", game))
    robot = scripted_ids(policy, ScriptedPopulation("test", ["follower"], [Follower()]))
    assert teachers.tolist() == [3] and robot.tolist() == [4]
    pairs = torch.tensor([[4, 3], [0, 3], [4, 1]])
    traj = rollout(game, policy, pairs, 16, np.random.default_rng(0))
    assert traj.rewards.shape == (3, 16, game.horizon) and traj.logp_all.shape == (3, 16, game.horizon, 2, 5)
    assert torch.allclose(traj.returns[0], torch.ones(16))  # scripted follower + direct teacher: optimal
    assert 0 < traj.returns[1].mean() < 1  # an untrained robot with the direct teacher
    # forced turns and scripted rows: log π = 0 (deterministic), no entropy; LM rows have real distributions
    assert torch.all(traj.logp[0] == 0) and torch.all(traj.entropy[0] == 0)
    robot_turns = [t for t in range(game.horizon) if game.phase(t)[2] == ROBOT]
    assert (traj.entropy[1, :, robot_turns, 0] > 0).all() and (traj.entropy[1, :, :, 1] == 0).all()
    assert traj.logp[1].requires_grad
    with pytest.raises(UserError, match="plays seat \\[1\\], not seat 0"):
        rollout(game, policy, torch.tensor([[3, 0]]), 2, np.random.default_rng(0))
    policy.scripted = []


def test_prefix_reuse_matches_full_encoding(policy):
    game = make_game("warehouse", moves=2, episodes=3)
    pairs = torch.tensor([[0, 0], [1, 2], [2, 1]])
    runs = {}
    for reuse in (True, False):
        runs[reuse] = rollout(game, policy, pairs, 8, np.random.default_rng(5), prefix_reuse=reuse)
    a, b = runs[True], runs[False]
    assert torch.equal(a.actions, b.actions) and a.observations == b.observations
    assert torch.allclose(a.logp, b.logp, atol=1e-5) and torch.allclose(a.entropy, b.entropy, atol=1e-5)
    grads = []
    for traj in (a, b):  # gradients flow through the reused prefix exactly as through a full encoding
        policy.bank.zero_grad()
        (traj.logp * traj.returns[..., None, None]).sum().backward()
        grads.append([p.grad.clone() for p in policy.bank.member_parameters()])
    assert all(torch.allclose(x, y, atol=1e-5, rtol=1e-4) for x, y in zip(*grads))
    assert any(x.abs().sum() > 0 for x in grads[0])


def test_otherplay_rollout_relabels_the_teacher(policy):
    """Under Other-Play, a scripted teacher relabelled by φ is heard as φ(label): a follower that reads φ's
    convention scores exactly what the identity follower scores without relabelling; the identity follower
    then does much worse."""
    game = make_game("warehouse", moves=4, episodes=1, reward="goal")
    policy.scripted = []
    teacher = int(scripted_ids(policy, load_scripted_population("scripted:warehouse:direct", game))[0])
    swap = [1, 0, 3, 2]
    followers = scripted_ids(policy, ScriptedPopulation("t", ["id", "swap"], [Follower(), Follower(swap)]))
    pairs = torch.tensor([[int(followers[0]), teacher], [int(followers[1]), teacher]])
    maps = torch.tensor([swap] * 2 * 32)
    relabelled = rollout(game, policy, pairs, 32, np.random.default_rng(0), partner_maps=maps).returns
    plain = rollout(game, policy, pairs.flip(0), 32, np.random.default_rng(0)).returns  # same interactions
    assert torch.equal(relabelled[1], plain[1]) and plain[1].mean() > 0.8 and relabelled[0].mean() < 0.5
    policy.scripted = []


def test_pettingzoo_parallel_api():
    game = make_game("warehouse", moves=2, episodes=2)
    env = to_parallel_env(game, seed=0)
    parallel_api_test(env, num_cycles=30)
    obs, infos = env.reset(seed=1)
    assert obs["player_0"].startswith("robot .") and obs["player_1"].startswith("teacher reward at")
    assert infos["player_0"]["action_mask"].tolist() == [0, 0, 0, 0, 1]
    total = 0.0
    for t in range(game.horizon):
        masks = [infos[a]["action_mask"] for a in ("player_0", "player_1")]
        obs, rew, term, trunc, infos = env.step({"player_0": int(np.argmax(masks[0])), "player_1": int(np.argmax(masks[1]))})
        total += rew["player_0"]
    assert all(term.values()) and env.agents == [] and 0 <= total <= 1


def test_convention_probes_are_real_first_turn_observations():
    game = make_game("warehouse", width=3, height=3)
    probes = game.convention_probes()
    assert sorted(probes) == ["down", "left", "right", "up"]
    for direction, (gx, gy) in {"up": (1, 2), "left": (0, 1)}.items():
        state = game.reset(1, np.random.default_rng(0))
        state.extra["goal"], state.extra["starts"][:, 0] = torch.tensor([[gx, gy]]), torch.tensor([[1, 1]])
        state.extra["text"] = ([""],) * 2
        game._start_episode(state, 0)
        assert game.observe(state, TEACHER) == [probes[direction]]


def test_a_robot_learns_to_follow_a_scripted_teacher():
    """Short training check: one robot member, REINFORCE against the scripted ``direct`` teacher, one move per
    episode. Random moves score about 0.56; following the teacher scores 0.77."""
    from adhoc.lm.adapters import MemberAdam
    from adhoc.methods.common import leave_one_out_advantage, policy_gradient_loss

    game = make_game("warehouse", moves=1, episodes=1)
    base = load_base("builtin:tiny", device="cpu", dtype="float32")
    bank = AdapterBank(base.model, 1, 4, 8.0, ["q_proj", "v_proj", "lm_head"])
    bank.init_members([0], b_std=0.1)
    policy = Policy(base, bank)
    teacher = int(scripted_ids(policy, load_scripted_population("scripted:warehouse:direct", game))[0])
    optimizer, rng = MemberAdam(bank.member_parameters(), lr=0.02, max_grad_norm=1.0), np.random.default_rng(0)
    pairs = torch.tensor([[0, teacher]])
    before = rollout(game, policy, pairs, 512, rng, grad=False).returns.mean()
    for _ in range(25):
        traj = rollout(game, policy, pairs, 128, rng)
        loss = policy_gradient_loss(traj.logp, leave_one_out_advantage(traj.returns), traj.alive, traj.pairs, 2)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = rollout(game, policy, pairs, 512, rng, grad=False).returns.mean()
    assert before < 0.62 and after > 0.7, (before, after)


# ---------------------------------------------------------------------------------------------- preference
def test_preference_rounds_transcripts_and_payoff():
    assert make_game("preference").horizon == 2 + 3  # default: 2 feedback rounds, then 3 features written
    game = make_game("preference", rounds=4)
    assert game.horizon == 3 + 3 and game.action_names(0) == ["no", "yes"] and game.action_names(1) == ["12", "21"]
    state = game.reset(2, np.random.default_rng(0))
    state.extra["theta"] = torch.tensor([[2.0, 1.0, -2.0], [-2.0, 1.0, 2.0]])
    a, b, c = 1, 2, 4  # response ids are feature bit masks
    state.extra["offers"][:, :, :] = torch.tensor([[a | b, c], [b, b | c], [0, a]])  # the same three rounds for both
    state.extra["text"] = ([""] * 2,) * 2
    game._append(state.extra, 0)  # re-render the first offer
    assert game.observe(state, 1)[0] == "teacher a 2 b 1 c - 2 . round : 1 a b 2 c"
    assert game.observe(state, 0)[0] == "ai . round : 1 a b 2 c"
    assert game.legal_mask(state, 0).tolist() == [[1, 0]] * 2 and game.legal_mask(state, 1).all()
    before = [game.observe(state, s) for s in (0, 1)]
    for t in range(3):  # feedback rounds: nothing paid; episode 0 answers "21" every round, episode 1 "12"
        state, r, done = game.step(state, torch.tensor([[0, 1], [0, 0]]))
        assert r.tolist() == [0, 0] and not done.any()
    assert game.observe(state, 0)[0] == ("ai . round : 1 a b 2 c ; 21 round : 1 b 2 b c ; 21 round : 1 none 2 a ; 21"
                                         " write : a - = +")  # what each round said about a: preferred c, b c, a
    assert game.observe(state, 0)[1].endswith("; 12 write : a + = -")
    assert all(b.startswith(a) for s in (0, 1) for a, b in zip(before[s], game.observe(state, s)))  # append-only
    assert game.legal_mask(state, 0).all() and game.legal_mask(state, 1).tolist() == [[1, 0]] * 2
    for j, write in enumerate(([1, 0], [1, 1], [0, 1])):  # the AI writes a b / b c, feature by feature
        state, r, done = game.step(state, torch.tensor([[write[0], 0], [write[1], 0]]))
        assert done.all() == (j == 2) and (r.tolist() == [0, 0]) == (j < 2)
    assert game.observe(state, 0)[0].endswith("write : a - = + yes ; b - = = yes ; c + + = no")
    # q(x) = (θ·x − min) / (max − min): θ = (2, 1, −2) spans [−2, 3]; a b = 3 → 1; b c under (−2, 1, 2) = 3 → 1
    assert state.extra["written"].tolist() == [a | b, b | c] and r.tolist() == pytest.approx([1.0, 1.0])


def test_preference_summary_shows_every_features_signs_before_the_response():
    plain, game = make_game("preference"), make_game("preference", summary=True)
    assert "summary" not in plain.params() and game.params()["summary"] is True
    state = game.reset(1, np.random.default_rng(0))
    a, b, c = 1, 2, 4
    state.extra["offers"][:, :, :] = torch.tensor([[a | b, c], [0, a]])
    state.extra["text"] = ([""],) * 2
    game._append(state.extra, 0)
    for ordering in (1, 0):  # "21" (c preferred to a b), then "12" (none preferred to a)
        state, _, _ = game.step(state, torch.tensor([[0, ordering]]))
    assert game.observe(state, 0)[0].endswith("; 12 signs : a - - b - = c + = write : a - -")
    state, _, _ = game.step(state, torch.tensor([[1, 0]]))
    assert game.observe(state, 0)[0].endswith("write : a - - yes ; b - =")  # then feature by feature, as without


def test_preference_teachers_mean_different_things():
    game = make_game("preference")
    teachers = game.scripted_strategies()
    assert sorted(teachers) == ["deficiency", "noisy", "quality"]
    state = game.reset(3, np.random.default_rng(0))
    state.extra["theta"] = torch.tensor([[2.0, 1.0, -1.0]] * 3)
    a, b, c = 1, 2, 4  # response ids are feature bit masks
    state.extra["offers"][:, 0] = torch.tensor([[b, a], [b | c, c], [a | c, b]])  # θ·x: (1, 2) (0, -1) (1, 1)
    picks = {name: t.log_probs(game, state, 1).argmax(1).tolist() for name, t in teachers.items()}
    assert picks["quality"] == [1, 0, 0]  # "21": a beats b; "12": b c beats c; a c ties with b: offered order
    assert picks["deficiency"] == [1, 0, 0]  # by feature a alone: "21", a tie ("12"), a c has a ("12")
    state.extra["offers"][:, 0] = torch.tensor([[b, c], [b | c, a | c], [a, a | b]])  # θ·x: (1, -1) (0, 1) (2, 3)
    quality = teachers["quality"].log_probs(game, state, 1).argmax(1).tolist()
    deficiency = teachers["deficiency"].log_probs(game, state, 1).argmax(1).tolist()
    assert quality == [0, 1, 1] and deficiency == [0, 1, 0]  # a b ≻ a by quality, a tie by feature a
    noisy = teachers["noisy"].log_probs(game, state, 1).exp()
    assert torch.allclose(noisy.sum(1), torch.ones(3)) and (noisy[[0, 1, 2], [0, 1, 1]] > 0.5).all()
    assert torch.allclose(noisy[0, 0], torch.sigmoid(torch.tensor(4.0 * 2)))  # σ(β (θ·x₁ − θ·x₂))


@pytest.mark.parametrize("params,message", [
    ({"candidates": 1}, "game.candidates must be 2"), ({"rounds": 0}, "game.rounds must be >= 1"),
    ({"weights": []}, "1..6 feature weights"), ({"rounds": 21}, "game.rounds must be <= 20"),
    ({"weights": [-1.0, -1.0]}, "some positive weight"),
])
def test_preference_impossible_parameters(params, message):
    with pytest.raises(GameError, match=message):
        make_game("preference", **params)


def test_preference_pettingzoo_and_rollout_with_teachers(policy):
    parallel_api_test(to_parallel_env(make_game("preference"), seed=0), num_cycles=20)
    game = make_game("preference", rounds=2)
    policy.scripted = []
    ids = scripted_ids(policy, load_scripted_population("scripted:preference", game)).tolist()
    traj = rollout(game, policy, torch.tensor([[0, t] for t in ids]), 16, np.random.default_rng(0))
    assert traj.returns.shape == (3, 16) and ((traj.returns >= 0) & (traj.returns <= 1)).all()
    assert traj.logp[:, :, 0, 0].eq(0).all() and traj.logp[:, :, 1, 0].requires_grad  # the AI writes last
    policy.scripted = []
