"""Known-answer tests for the shared policy-gradient math."""

import math

import pytest
import torch

from adhoc.methods.common import entropy_per_member, leave_one_out_advantage, policy_gradient_loss
from adhoc.reductions import members_with_data, per_member_mean


def test_leave_one_out_advantage_hand_computed():
    returns = torch.tensor([[1.0, 0.0, 0.0, 1.0], [3.0, 3.0, 3.0, 3.0]])
    # episode 0: 1 − mean(0, 0, 1) = 2/3; episode 1: 0 − mean(1, 0, 1) = −2/3
    expected = torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3], [0.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(leave_one_out_advantage(returns), expected)
    with pytest.raises(ValueError):
        leave_one_out_advantage(torch.ones(1, 1))


def test_per_member_mean_scatters_by_seat():
    # 2 pairs: (0, 1) and (1, 1); E = 1, T = 1; values per seat
    pairs = torch.tensor([[0, 1], [1, 1]])
    values = torch.tensor([[[[1.0, 2.0]]], [[[4.0, 6.0]]]])
    weights = torch.ones_like(values)
    out = per_member_mean(values, weights, pairs, 3)
    assert torch.allclose(out, torch.tensor([1.0, (2 + 4 + 6) / 3, 0.0]))
    assert members_with_data(pairs, 3).tolist() == [True, True, False]


def test_policy_gradient_loss_sign_and_gradient():
    # One member, one pair (0, 0), 2 episodes: the rewarded action's log-prob must go UP under descent.
    logits = torch.zeros(2, requires_grad=True)
    logp_all = torch.log_softmax(logits, 0)
    logp = torch.stack([logp_all[0], logp_all[1]]).view(1, 2, 1, 1).expand(1, 2, 1, 2)
    returns = torch.tensor([[1.0, 0.0]])
    loss = policy_gradient_loss(logp, leave_one_out_advantage(returns), torch.ones(1, 2, 1, dtype=torch.bool),
                                torch.tensor([[0, 0]]), 1)
    loss.sum().backward()
    # loss = −mean over 4 entries of A·logp = −(1·logp0 − 1·logp1)/2 → d/dlogit0 = −(1 − 0.5 + 0.5)/2 ... < 0
    assert logits.grad[0] < 0 < logits.grad[1]
    assert torch.allclose(loss, -(logp_all[0] - logp_all[1]).detach() / 2)


def test_entropy_per_member_ignores_dead_steps():
    ent = torch.tensor([[[[1.0, 1.0], [5.0, 5.0]]]])  # [P=1, E=1, T=2, 2]
    alive = torch.tensor([[[True, False]]])
    assert torch.allclose(entropy_per_member(ent, alive, torch.tensor([[0, 0]]), 1), torch.tensor([1.0]))


def test_mep_bonus_known_answers():
    from adhoc.methods.mep import population_entropy_bonus

    # identical members: −log π(a|s)
    pi = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])  # 2 rows (observations)
    same = torch.log(pi).expand(4, 2, 3)
    actions = torch.tensor([1, 2])
    assert torch.allclose(population_entropy_bonus(same, actions), -torch.log(torch.tensor([0.5, 0.1])))
    # two different members, hand-computed per row: row 0 action 1: mean(0.5, 0.1) = 0.3; row 1 action 0: mean(0.9, 0.2)
    logp = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1]], [[0.9, 0.1], [0.2, 0.8]]]))  # [N=2, R=2, A=2]
    out = population_entropy_bonus(logp, torch.tensor([1, 0]))
    assert torch.allclose(out, -torch.log(torch.tensor([0.3, 0.55])))
    # the released code's bug would read row 0's probabilities for every row; ours differs per row
    assert not torch.isclose(out[1], -torch.log(torch.tensor(0.5 * (0.5 + 0.9))))


def test_mep_trains_through_the_shared_loop(tmp_path):
    from adhoc.config import load_config
    from adhoc.recipes.train_population import train_population

    from pathlib import Path

    config = load_config(Path(__file__).parent.parent / "configs/lever-mep.yaml", ["population.size=2", "train.iterations=3", "train.eval_every=3",
                                                    "train.episodes_per_pair=8", "train.eval_episodes=8"])
    pop = train_population(config, out=tmp_path / "pop", progress=False)
    assert pop.manifest["method"] == {"name": "mep", "alpha": 0.01}


def test_mep_loss_is_self_play_on_the_shaped_return():
    """MEP's loss = REINFORCE on r + α·Σ_t −log π̄(a_t|o_t), π̄ the population's mean policy computed here
    directly from every member's action distribution (no shared helper); a zero or missing bonus fails."""
    import numpy as np

    from adhoc.methods import METHODS
    from adhoc.rollout import rollout

    n, alpha = 3, 0.5
    game, policy = _tiny_population(n, n_levers=4)
    method = METHODS["mep"].build(METHODS["mep"].config_cls(alpha=alpha), game, n)
    method.policy = policy
    traj = rollout(game, policy, method.pairs(0, np.random.default_rng(0)), 16, np.random.default_rng(1))
    P, E, T = traj.rewards.shape
    assert T == 1
    # the population's mean probability of each row's taken action, by hand: [P, E, 2]
    bonus = torch.zeros(P, E)
    with torch.no_grad():
        for s in range(2):
            table = policy.actions(game.action_names(s))
            for p in range(P):
                for e in range(E):
                    obs = traj.observations[0][s][p * E + e]
                    probs = torch.softmax(policy.scores(torch.arange(n), [obs] * n, table), -1)  # [N, A]
                    bonus[p, e] += -torch.log(probs[:, traj.actions[p, e, 0, s]].mean())
    assert bonus.std() > 0.01  # the bonus differs between episodes, so it changes the advantages

    loss, metrics = method.loss(traj, 0.0)
    reference = METHODS["selfplay"].build(METHODS["selfplay"].config_cls(), game, n)
    shaped, _ = reference.reinforce_loss(traj, traj.returns + alpha * bonus, 0.0)
    plain, _ = reference.loss(traj, 0.0)
    assert torch.allclose(loss, shaped, atol=1e-5)
    assert (loss - plain).abs().max() > 1e-2  # the bonus really moves the loss
    assert metrics["train/population_entropy_bonus"] == pytest.approx(float(bonus.mean()), rel=1e-5)
    # and its gradient: the same as the shaped self-play loss's
    params = policy.bank.member_parameters()
    g_mep = torch.autograd.grad(loss.sum(), params, retain_graph=True)
    g_ref = torch.autograd.grad(shaped.sum(), params, retain_graph=True)
    g_sp = torch.autograd.grad(plain.sum(), params)
    for a, b in zip(g_mep, g_ref):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    assert max(float((a - c).abs().max()) for a, c in zip(g_mep, g_sp)) > 1e-4


def test_fcp_half_return_checkpoint_known_answer():
    from adhoc.methods.fcp import half_return_checkpoint

    history = torch.tensor([[0.1, 0.1], [0.3, 0.8], [0.55, 1.0], [1.0, 1.0]])  # [C=4, N=2]
    assert half_return_checkpoint(history, torch.tensor([1.0, 1.0])).tolist() == [2, 1]


def test_fcp_population_holds_init_half_and_final_checkpoints(tmp_path):
    from pathlib import Path

    from adhoc.config import load_config
    from adhoc.lm.adapters import AdapterBank, read_adapter_folder
    from adhoc.lm.base import build_builtin
    from adhoc.recipes.train_population import train_population

    config = load_config(Path(__file__).parent.parent / "configs/lever-fcp.yaml",
                         ["population.size=2", "train.iterations=4", "train.eval_every=2",
                          "train.episodes_per_pair=8", "train.eval_episodes=8"])
    pop = train_population(config, out=tmp_path / "pop", progress=False)
    assert sorted(pop.names) == sorted(["member-00", "member-01", "member-00-init", "member-00-half",
                                        "member-01-init", "member-01-half"])
    entry = next(m for m in pop.members if m["name"] == "member-01-init")
    assert entry["checkpoint_of"] == "member-01" and entry["checkpoint"] == "init"
    # the initial checkpoint is exactly the member's seeded initialisation
    model, _ = build_builtin()
    fresh = AdapterBank(model, 2, config.model.lora_rank, config.model.lora_alpha, config.model.target_modules)
    fresh.init_members([m["seed"] for m in pop.members[:2]], b_std=config.model.lora_init_std)
    _, saved = read_adapter_folder(pop.member_dir("member-01-init"))
    for key, value in fresh.peft_state_dict(1).items():
        assert torch.equal(saved[key], value), key
    _, final = read_adapter_folder(pop.member_dir("member-01"))
    assert any(not torch.equal(final[k], saved[k]) for k in saved)


# ---------------------------------------------------------------------------- shared re-scoring
def _tiny_population(n: int, game_name: str = "lever", **game_params):
    from adhoc.games import make_game
    from adhoc.lm.adapters import AdapterBank
    from adhoc.lm.base import load_base
    from adhoc.lm.policy import Policy

    base = load_base("builtin:tiny", device="cpu", dtype="float32")
    bank = AdapterBank(base.model, n, 2, 4.0, ["q_proj", "v_proj", "lm_head"])
    bank.init_members(list(range(n)), b_std=0.3)
    return make_game(game_name, **game_params), Policy(base, bank)


@pytest.mark.parametrize("game_name, params, episodes", [("lever", {"n_levers": 5}, 6),
                                                         ("warehouse", {"moves": 2, "episodes": 1}, 3)])
def test_population_logp_matches_the_rollouts_own_log_probs(game_name, params, episodes):
    """Every member re-scores the taken actions; the members that played them get the rollout's own log-probs.
    The warehouse is multi-step with turns (a seat's other actions are illegal while it waits): the legal mask
    of each row must be applied before normalising."""
    import numpy as np

    from adhoc.methods.common import population_logp
    from adhoc.rollout import rollout

    game, policy = _tiny_population(3, game_name, **params)
    pairs = torch.tensor([[0, 0], [1, 2], [2, 1]])
    traj = rollout(game, policy, pairs, episodes, np.random.default_rng(0))
    T = traj.rewards.shape[2]
    assert game_name == "lever" or (T > 1 and not bool(torch.isfinite(traj.logp_all).all()))
    logp = population_logp(policy, game, traj, 3)  # [N, P, E, T, 2]
    assert logp.shape == (3, 3, episodes, T, 2)
    for p, (a, b) in enumerate(pairs.tolist()):
        assert torch.allclose(logp[a, p, :, :, 0], traj.logp[p, :, :, 0], atol=1e-5)
        assert torch.allclose(logp[b, p, :, :, 1], traj.logp[p, :, :, 1], atol=1e-5)
    assert not torch.allclose(logp[0, 1], logp[1, 1], atol=1e-3)  # a member who did not play scores differently
    # a step an episode did not play counts as 0 for every member
    traj.alive[1, 0, T - 1] = False
    dead = population_logp(policy, game, traj, 3)
    assert torch.equal(dead[:, 1, 0, T - 1], torch.zeros(3, 2))
    keep = torch.ones_like(traj.alive)
    keep[1, 0, T - 1] = False
    assert torch.allclose(dead[:, keep], logp[:, keep])


def test_select_pairs_keeps_the_chosen_pairs_tensors_and_texts():
    import numpy as np

    from adhoc.methods.common import select_pairs
    from adhoc.rollout import rollout

    game, policy = _tiny_population(3, n_levers=5)
    traj = rollout(game, policy, torch.tensor([[0, 0], [1, 2], [2, 1]]), 2, np.random.default_rng(0))
    # distinct texts per row, so that a wrong row shows
    traj.observations = [[[f"seat {s} row {r}" for r in range(6)] for s in range(2)]]
    sub = select_pairs(traj, torch.tensor([2, 0]))
    for key in ("pairs", "actions", "logp", "entropy", "logp_all", "rewards", "alive"):
        assert torch.equal(getattr(sub, key), getattr(traj, key)[[2, 0]]), key
    # pair-major rows: pair 2's episodes (rows 4, 5), then pair 0's (rows 0, 1)
    assert sub.observations == [[[f"seat {s} row {r}" for r in (4, 5, 0, 1)] for s in range(2)]]


# ---------------------------------------------------------------------------- TrajeDi
def test_trajedi_kernel_weight_at_t_is_one():
    from adhoc.methods.trajedi import discount_kernel, local_log_delta

    W = discount_kernel(3, 0.5)
    assert torch.allclose(W, torch.tensor([[1, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 1]], dtype=torch.float64))
    # γ = 0: the kernel is π(a_t|s_t) itself (not γ^{|t−t'|+1}, which would give 0)
    step = torch.log(torch.tensor([0.5, 0.2, 0.9]))
    assert torch.allclose(local_log_delta(step, 0.0), step)
    # γ = 1: every step sees the whole trajectory's log-probability
    assert torch.allclose(local_log_delta(step, 1.0), step.sum().expand(3))


def test_trajedi_divergence_is_the_jsd_in_expectation_and_zero_for_identical_members():
    import itertools

    from adhoc.methods.trajedi import divergence, jsd

    # two members, one-step trajectories over 3 outcomes; weight each outcome by its probability under the owner
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    log_delta = torch.log(probs)[:, None, :, None].expand(2, 2, 3, 1)  # [N, P=2 owners, E=3 outcomes, T=1]
    f = divergence(log_delta, torch.tensor([0, 1]), torch.ones(2, 3, 1, dtype=torch.bool))  # [P, E]
    expected = ((probs * f).sum(1)).mean()  # (1/N) Σ_i Σ_τ π_i(τ) f_i(τ)
    assert torch.allclose(expected, jsd(probs), atol=1e-6)
    assert jsd(probs) > 0.1
    same = torch.log(probs[:1]).expand(3, 3)[:, None, :, None].expand(3, 1, 3, 1)
    assert torch.allclose(divergence(same, torch.tensor([0]), torch.ones(1, 3, 1, dtype=torch.bool)), torch.zeros(1, 3))
    assert abs(float(jsd(probs[:1].expand(4, 3)))) < 1e-7
    # hand-computed: two point masses on different outcomes have JSD log 2
    assert torch.allclose(jsd(torch.eye(2)), torch.tensor(math.log(2)))


def test_trajedi_gradient_pushes_members_apart():
    """One TrajeDi step with α large and no return signal must raise the population's JSD."""
    import numpy as np

    from adhoc.methods import METHODS
    from adhoc.methods.trajedi import jsd
    from adhoc.rollout import rollout

    game, policy = _tiny_population(2, n_levers=4)
    method = METHODS["trajedi"].build(METHODS["trajedi"].config_cls(alpha=1.0, gamma=1.0), game, 2)
    method.policy = policy
    obs = game.observe(game.reset(1, np.random.default_rng(0)), 0)[0]
    table = policy.actions(game.action_names(0))

    def current_jsd():
        with torch.no_grad():
            return float(jsd(torch.softmax(policy.scores(torch.arange(2), [obs] * 2, table), -1)))

    before = current_jsd()
    params = policy.bank.member_parameters()
    opt = torch.optim.SGD(params, lr=0.5)
    for _ in range(5):
        traj = rollout(game, policy, method.pairs(0, np.random.default_rng(0)), 512, np.random.default_rng(1))
        traj.rewards.zero_()  # no return signal: only the divergence moves the members
        loss, metrics = method.loss(traj, 0.0)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    assert current_jsd() > before + 0.01
    assert metrics["train/trajedi_jsd"] > 0


# ---------------------------------------------------------------------------- LIPO
def test_lipo_picks_the_partner_with_the_highest_cross_play_not_the_mean():
    from adhoc.methods.lipo import most_compatible_partner

    X = torch.tensor([[1.0, 0.5, 0.0, 0.0],
                      [0.5, 1.0, 0.6, 0.1],
                      [0.9, 0.0, 1.0, 0.0],
                      [0.0, 0.2, 0.4, 1.0]])
    # home + away, self excluded: member 0 → (1: 1.0, 2: 0.9, 3: 0.0); member 1 → (0: 1.0, 2: 0.6, 3: 0.3),
    # though its home return alone is highest with 2; member 2 → (0: 0.9, 1: 0.6, 3: 0.4); member 3 → (0: 0, 1: 0.3, 2: 0.4)
    assert most_compatible_partner(X).tolist() == [1, 0, 0, 2]


def test_lipo_cross_play_term_lowers_the_chosen_partners_return():
    """Gradient descent on the cross-play term must make member 0 LESS likely to repeat the rewarded joint action."""
    from adhoc.methods.lipo import cross_play_loss

    logits = torch.zeros(2, 2, requires_grad=True)  # member m's logits over 2 actions
    logp_m = torch.log_softmax(logits, -1)
    # N = 2, row-major pairs (0,0), (0,1), (1,0), (1,1); 2 episodes each; episode 0: both play action 0 (paid 1)
    actions = torch.tensor([[0, 0], [1, 1]])  # [E, seat]
    returns = torch.tensor([[1.0, 0.0]] * 4)
    pairs = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    logp = torch.stack([torch.stack([logp_m[pairs[p, s], actions[:, s]] for s in range(2)], -1) for p in range(4)])
    logp = logp[:, :, None, :]  # [N²=4, E=2, T=1, 2]
    xp = cross_play_loss(logp, returns, torch.ones(4, 2, 1, dtype=torch.bool), 2, torch.tensor([1, 0]))
    xp.sum().backward()
    assert logits.grad[0, 0] > 0 and logits.grad[1, 0] > 0  # descent lowers action 0, the paid one


def test_lipo_and_trajedi_train_through_the_shared_loop(tmp_path):
    from pathlib import Path

    from adhoc.config import load_config
    from adhoc.recipes.train_population import train_population

    root = Path(__file__).parent.parent
    for name in ("lipo", "trajedi"):
        config = load_config(root / f"configs/cmg-h-{name}.yaml",
                             ["population.size=2", "train.iterations=2", "train.eval_every=2",
                              "train.episodes_per_pair=4", "train.eval_episodes=4"])
        pop = train_population(config, out=tmp_path / name, progress=False)
        assert pop.manifest["method"]["name"] == name and len(pop.members) == 2


def test_lipo_refuses_a_population_of_one():
    from adhoc.errors import UserError
    from adhoc.games import make_game
    from adhoc.methods import METHODS

    with pytest.raises(UserError, match="population.size >= 2"):
        METHODS["lipo"].build(METHODS["lipo"].config_cls(), make_game("cmg-s"), 1)


# ---------------------------------------------------------------------------- Other-Play restarts
def test_otherplay_restarts_keep_the_best_restart_by_j_op(tmp_path, monkeypatch):
    from pathlib import Path

    from adhoc.config import load_config
    from adhoc.methods.otherplay import OtherPlay
    from adhoc.recipes.train_population import train_population

    # J_OP of the 6 trained slots k = r·N + i (N = 2 members, R = 3 restarts), fixed so the choice is known:
    # member 0's restarts score (0.1, 0.3, 0.9) -> restart 2; member 1's (0.5, 0.8, 0.2) -> restart 1
    j_op = torch.tensor([0.1, 0.5, 0.3, 0.8, 0.9, 0.2])
    calls = []

    def objective_returns(self, episodes, rng):
        calls.append(episodes)
        return j_op.clone()

    monkeypatch.setattr(OtherPlay, "objective_returns", objective_returns)
    config = load_config(Path(__file__).parent.parent / "configs/lever-otherplay.yaml",
                         ["population.size=2", "method.restarts=3", "train.iterations=2", "train.eval_every=2",
                          "train.episodes_per_pair=8", "train.eval_episodes=64"])
    pop = train_population(config, out=tmp_path / "pop", progress=False)
    assert pop.names == ["member-00", "member-01"] and calls == [64]
    assert [m["restart"] for m in pop.members] == [2, 1]
    assert [m["objective_return"] for m in pop.members] == pytest.approx([0.9, 0.8])


def test_otherplay_select_takes_the_highest_j_op_per_member():
    from adhoc.games import make_game
    from adhoc.methods.otherplay import OtherPlay, OtherPlayConfig

    method = OtherPlay(OtherPlayConfig(restarts=3), make_game("lever"), 4)
    assert method.n_members == 12 and method.population_size == 4
    # rows = restarts, columns = members: the best restart of members 0..3 is 1, 0, 2, 2
    j_op = torch.tensor([[0.2, 0.9, 0.1, 0.0],
                         [0.7, 0.3, 0.4, 0.5],
                         [0.1, 0.8, 0.6, 0.6]])
    method.objective_returns = lambda episodes, rng: j_op.reshape(-1)
    chosen, objective = method.select(8, None)
    assert chosen == [1 * 4 + 0, 0 * 4 + 1, 2 * 4 + 2, 2 * 4 + 3]
    assert torch.equal(objective, j_op.reshape(-1))
    # one restart: plain Other-Play keeps every member and makes no choice
    plain = OtherPlay(OtherPlayConfig(restarts=1), make_game("lever"), 3)
    assert plain.select(8, None) == ([0, 1, 2], None)


def test_trajedi_with_a_common_best_response_trains_it_but_saves_only_the_members(tmp_path):
    from pathlib import Path

    import numpy as np

    from adhoc.config import load_config
    from adhoc.methods import METHODS
    from adhoc.games import make_game
    from adhoc.recipes.train_population import train_population

    method = METHODS["trajedi"].build(METHODS["trajedi"].config_cls(best_response=True), make_game("cmg-s"), 3)
    assert method.n_members == 4 and method.population_size == 3
    pairs = method.pairs(1, np.random.default_rng(0))
    assert pairs.tolist() == [[0, 0], [1, 1], [2, 2], [0, 3], [1, 3], [2, 3], [3, 0], [3, 1], [3, 2]]
    config = load_config(Path(__file__).parent.parent / "configs/cmg-h-trajedi.yaml",
                         ["population.size=2", "method.best_response=true", "train.iterations=2",
                          "train.eval_every=2", "train.episodes_per_pair=4", "train.eval_episodes=4"])
    pop = train_population(config, out=tmp_path / "pop", progress=False)
    assert pop.names == ["member-00", "member-01"]
