"""The repeated game: returns of scripted partners by hand, append-only transcripts, Other-Play's relabelled
view equal to a world relabelled by hand, prefix reuse exact, config spelling and errors, and a learner with
symmetry augmentation against scripted partners."""

from pathlib import Path

import numpy as np
import pytest
import torch

from adhoc.config import ConfigError, load_config, load_learner_config
from adhoc.errors import UserError
from adhoc.games import GameError, make_game
from adhoc.games.core import GameState
from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.methods.otherplay import Relabelling
from adhoc.recipes.evaluate import run_evaluate
from adhoc.recipes.train_learner import train_learner
from adhoc.report import evaluation_table
from adhoc.rollout import rollout
from adhoc.scripted import load_scripted_population, scripted_ids

K = 4


def lever(rounds=K, transcript="rounds", **stage):
    return make_game("repeated", stage="lever", rounds=rounds, transcript=transcript,
                     stage_params={"n_levers": 10, **stage})


def play(game, joint_actions):
    state = game.reset(len(joint_actions[0]), np.random.default_rng(0))
    total = torch.zeros(len(joint_actions[0]))
    for actions in joint_actions:
        state, reward, _ = game.step(state, torch.tensor(actions))
        total += reward
    return state, total


def test_return_is_the_mean_payoff_over_rounds():
    game = lever()
    # episode 0: 3/3 then 1/2 then 0/0 then 5/5 -> (1 + 0 + 0.9 + 1) / 4; episode 1: never together
    state, total = play(game, [[[3, 3], [4, 5]], [[1, 2], [4, 6]], [[0, 0], [4, 7]], [[5, 5], [4, 8]]])
    assert total.tolist() == pytest.approx([(1 + 0 + 0.9 + 1) / 4, 0.0])
    assert bool(state.done.all()) and state.t == K
    rewards = torch.tensor([[0.25, 0.0, 0.225, 0.25]])
    assert game.episode_payoffs(rewards)[0].tolist() == pytest.approx([1.0, 0.0, 0.9, 1.0])


@pytest.mark.parametrize("opening,partner", [(3, 3), (3, 7), (2, 0)])
def test_open_then_copy_against_a_stubborn_partner(opening, partner):
    """copy-A vs stubborn-B: round 1 pays u_B if A == B; rounds 2..K always pay u_B."""
    game = lever()
    base = load_base("builtin:tiny", device="cpu")
    policy = Policy(base, AdapterBank(base.model, 1, 4, 8, ["q_proj"]))
    ids = scripted_ids(policy, load_scripted_population(f"scripted:repeated:copy-{opening},stubborn-{partner}", game))
    traj = rollout(game, policy, torch.stack([ids, ids.flip(0)]), 8, np.random.default_rng(0), grad=False)
    u = 0.9 if partner == 0 else 1.0
    expected = ((K - 1) + (opening == partner)) / K * u
    assert traj.returns.flatten().tolist() == pytest.approx([expected] * 16)


def seat1_transcripts(game):
    """Seat 1's observation before each of the joint actions (2, 7), (7, 7) and after them, and the final state."""
    state = game.reset(1, np.random.default_rng(0))
    seen = [game.observe(state, 1)[0]]
    for joint in ([2, 7], [7, 7]):
        state, _, _ = game.step(state, torch.tensor([joint]))
        seen.append(game.observe(state, 1)[0])
    return seen, state


def test_transcripts_are_append_only_and_name_both_seats():
    game = lever(rounds=3)
    seen, state = seat1_transcripts(game)
    assert all(b.startswith(a) for a, b in zip(seen, seen[1:]))
    assert seen[-1].endswith("Round 1: you 7 partner 2. Round 2: you 7 partner 7. Round 3:")
    assert game.observe(state, 0)[0].endswith("Round 1: you 2 partner 7. Round 2: you 7 partner 7. Round 3:")
    # transcript: partner_last ends with the partner's last action; still append-only, the default not recorded
    game = lever(rounds=3, transcript="partner_last")
    assert game.params()["transcript"] == "partner_last" and "transcript" not in lever(rounds=3).params()
    seen, _ = seat1_transcripts(game)
    assert all(b.startswith(a) for a, b in zip(seen, seen[1:]))
    assert seen[0].endswith("rounds with the same partner.")
    assert seen[-1].endswith("partner. Round 1: you 7 partner 2. Round 2: you 7 partner 7")
    with pytest.raises(GameError, match="game.transcript must be one of"):
        lever(transcript="last")


def test_probe_transcripts_move_the_partners_action():
    """swapped: the partner's action first; padded: 0-3 filler words after each action, drawn per episode and
    round at reset (so still append-only), which moves the partner's action to other offsets."""
    seen, _ = seat1_transcripts(lever(rounds=3, transcript="swapped"))
    assert all(b.startswith(a) for a, b in zip(seen, seen[1:]))
    assert seen[-1].endswith("Round 1: partner 2 you 7. Round 2: partner 7 you 7. Round 3:")
    game = lever(rounds=3, transcript="padded")
    state = game.reset(200, np.random.default_rng(1))
    before = game.observe(state, 1)
    for joint in ([2, 7], [7, 7]):
        state, _, _ = game.step(state, torch.tensor([joint] * 200))
    after = game.observe(state, 1)
    assert all(b.startswith(a) for a, b in zip(before, after))
    pads = state.extra["pad"]
    assert pads.shape == (200, 3, 2) and pads.min() == 0 and pads.max() == 3
    p = pads[0, 0].tolist()
    assert after[0].endswith(f"Round 1: you 7{' ok' * p[0]} partner 2.{' ok' * p[1]} Round 2:"
                             f" you 7{' ok' * pads[0, 1, 0].item()} partner 7.{' ok' * pads[0, 1, 1].item()} Round 3:")
    assert len(set(after)) > 20  # the offsets vary over episodes


def test_relabelled_view_is_the_view_of_a_relabelled_world():
    """Seat 1 under φ = (φ0, φ1) sees its own past actions through φ1⁻¹ and its partner's through φ0⁻¹: exactly
    what it would see in a world where both seats' history was relabelled by hand."""
    game = lever()
    group = game.symmetries()
    assert group is not None and group.order() == 362880  # the 9 levers of payoff 1.0, permuted
    rng = np.random.default_rng(3)
    element = group.sample(6, rng)
    s0, s1 = torch.as_tensor(element[0]), torch.as_tensor(element[1])
    history = [torch.as_tensor(rng.integers(0, 10, size=(6, 2))) for _ in range(3)]
    state = GameState(6, t=3, history=history)
    inverse = lambda m: torch.argsort(m, dim=1)  # noqa: E731
    rows = torch.arange(6)
    by_hand = GameState(6, t=3, history=[torch.stack([inverse(s0)[rows, h[:, 0]], inverse(s1)[rows, h[:, 1]]], 1)
                                         for h in history])
    assert game.relabel_observation(state, 1, s1, seat0_maps=s0) == game.observe(by_hand, 1)
    assert game.relabel_observation(state, 0, s1, seat0_maps=s0) == game.observe(state, 0)
    # payoffs are invariant, so the relabelled world is the same game
    R = torch.tensor(np.array(game.payoff_matrix()))
    assert torch.equal(R[s0[:, :, None], s1[:, None, :]], R.expand(6, 10, 10))


def test_prefix_reuse_scores_exactly_like_full_encoding():
    game = lever()
    base = load_base("builtin:tiny", device="cpu")
    bank = AdapterBank(base.model, 2, 4, 8, ["q_proj", "v_proj", "lm_head"])
    bank.init_members([1, 2], b_std=0.5)
    policy = Policy(base, bank)
    pairs = torch.tensor([[0, 1], [1, 1]])
    a = rollout(game, policy, pairs, 16, np.random.default_rng(5), grad=False, prefix_reuse=True)
    b = rollout(game, policy, pairs, 16, np.random.default_rng(5), grad=False, prefix_reuse=False)
    assert torch.equal(a.actions, b.actions)
    torch.testing.assert_close(a.logp_all, b.logp_all, atol=1e-5, rtol=0)


def test_config_spelling_and_errors():
    config = load_config(None, ["game.name=repeated", "game.stage=lever", "game.rounds=4",
                                "game.stage_params.n_levers=7", "method.name=otherplay"])
    assert config.game.stage_params == {"n_levers": 7}
    for params, message in [({"stage": "warehouse"}, "game.stage must be a one-shot game"),
                            ({"rounds": 0}, "game.rounds must be in 1..64"),
                            ({"stage_params": {"n_leverz": 3}}, "game.stage_params.n_leverz"),
                            ({"stage_params": {"n_levers": 1}}, "game.stage_params.n_levers must be >= 2")]:
        with pytest.raises(GameError, match=message):
            make_game("repeated", **params)
    with pytest.raises(ConfigError, match="game.stage must be a one-shot game"):
        load_config(None, ["game.name=repeated", "game.stage=repeated", "method.name=selfplay"])
    cmg = make_game("repeated", stage="cmg-h", rounds=2)
    assert cmg.action_names(0) == make_game("cmg-h").action_names(0) and cmg.horizon == 2


def test_scripted_names():
    game = lever()
    assert sorted(game.scripted_strategies()) == sorted(f"stubborn-{a}" for a in range(10))
    assert game.scripted_strategy("copy-4").copy and game.scripted_strategy("copy-x") is None
    assert game.scripted_strategy("stubborn-10") is None


def test_learner_with_augmentation_against_scripted_partners(tmp_path):
    """Augmentation relabels the scripted partners (seat 1: their label; seat 0: the learner's view of them),
    so a learner trained with stubborn partners meets them on other levers: the meta-game (evaluated without
    relabelling) still has one row per epoch and the run completes."""
    config = load_learner_config(None, [
        "game.name=repeated", "game.stage=lever", "game.rounds=3", "game.stage_params.n_levers=4",
        "partners=scripted:repeated:stubborn-1,stubborn-2", "learner.augment=true", "learner.credit=reward_to_go",
        "train.epochs=2",
        "train.iterations_per_epoch=2", "train.episodes=16", "train.eval_episodes=8"])
    pop = train_learner(config, tmp_path / "learner", progress=False)
    assert len(pop.manifest["learner"]["matrix"]) == 3
    # evaluate: the per-round curve (per partner and its mean) and, with --bound, the best possible
    result, out = run_evaluate(str(pop.path), ["scripted:repeated:stubborn-0,stubborn-3"], episodes=4,
                               out=str(tmp_path / "ev"), bound=True)
    mt = result.metrics
    assert len(mt["episode_payoffs"]) == 3 and all(len(p["episode_payoffs"]) == 3 for p in mt["per_partner"])
    assert mt["episode_payoffs"] == pytest.approx(np.mean([p["episode_payoffs"] for p in mt["per_partner"]], 0),
                                                  abs=1e-3)
    best = mt["best_history_policy"]  # stubborn on levers 0 (0.9) and 3: open on 3, then copy
    assert best["lower"] == pytest.approx((1 / 2 + 2 * 0.95) / 3, abs=1e-4) and best["upper"] == best["lower"]
    assert best["per_round"] == pytest.approx([0.5, 0.95, 0.95], abs=1e-4) and best["seats"] == [0, 1]
    assert "best possible" in evaluation_table(result) and "round 1 → K" in evaluation_table(result)
    assert (out / "returns.png").stat().st_size > 0
    no_symmetry = load_learner_config(None, [
        "game.name=repeated", "game.stage=matrix", "game.stage_params.payoff=[[1,0],[0,2]]",
        "partners=scripted:repeated:stubborn-a0", "learner.augment=true"])
    with pytest.raises(UserError, match="learner.augment needs a game with declared symmetries"):
        train_learner(no_symmetry, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / ".x.partial").exists()
    with pytest.raises(UserError, match="declares none"):
        Relabelling(make_game("matrix", payoff=[[1, 0], [0, 2]]), "learner.augment")


def test_a_scripted_seat_1_gets_no_seat_0_relabelling():
    """seat0_maps only shape what seat 1 reads; a scripted seat 1 reads the game state, so the rollout gives
    its rows the identity (its own labels are still relabelled through partner_maps)."""
    game = lever(rounds=2)
    base = load_base("builtin:tiny", device="cpu")
    policy = Policy(base, AdapterBank(base.model, 1, 4, 8, ["q_proj"]))
    [stubborn] = scripted_ids(policy, load_scripted_population("scripted:repeated:stubborn-3", game)).tolist()
    pairs = torch.tensor([[0, 0], [0, stubborn]])
    options = Relabelling(game, "test").options(2 * 4, np.random.default_rng(0))
    assert not bool((options["seat0_maps"] == torch.arange(10)).all())
    seen = []
    original = game.relabel_observation
    game.relabel_observation = lambda state, seat, maps, **kw: seen.append(kw["seat0_maps"]) or original(
        state, seat, maps, **kw)
    traj = rollout(game, policy, pairs, 4, np.random.default_rng(1), grad=False, **options)
    assert seen and all(torch.equal(s[:4], options["seat0_maps"][:4]) for s in seen)  # the LM seat 1: as given
    assert all(torch.equal(s[4:], torch.arange(10).expand(4, 10)) for s in seen)  # the scripted seat 1: identity
    # the stubborn partner's own label 3 is relabelled: the game sees partner_maps[e, 3]
    assert traj.actions[1, :, 0, 1].tolist() == options["partner_maps"][4:, 3].tolist()


def test_evaluate_transcript_probe_needs_a_repeated_game(tmp_path, capsys):
    from adhoc.cli import main

    root = Path(__file__).parent.parent
    code = main(["evaluate", str(root / "populations/lever-selfplay"), "--partners", str(root / "populations/lever-selfplay"),
                 "--transcript", "swapped", "--out", str(tmp_path / "ev")])
    assert code == 2 and "--transcript needs a repeated game" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()
    with pytest.raises(UserError, match="exclude each other"):
        run_evaluate(str(root / "populations/lever-selfplay"), ["scripted:repeated"], transcript="padded", bound=True,
                     out=tmp_path / "ev")
