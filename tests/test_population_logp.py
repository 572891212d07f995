"""``population_logp`` (every member re-scores every taken action: TrajeDi's δ̂, MEP's mean policy) equals the
straightforward computation ``population_logp_reference`` (every step's whole texts under every member, legal
masks off ``traj.logp_all``): values, and gradients w.r.t. every member's LoRA parameters, on a one-shot game, a
one-shot game with multi-token actions, the repeated game (transcripts: prefix reuse across rounds) and the
warehouse (multi-step with turns: illegal actions, forced steps, episodes that end early)."""

import numpy as np
import pytest
import torch

import adhoc.methods.trajedi as trajedi_module
from adhoc.games import make_game
from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.methods import METHODS
from adhoc.methods.common import population_logp, population_logp_reference
from adhoc.methods.trajedi import TrajeDiConfig
from adhoc.rollout import rollout

N = 3
PAIRS = [[0, 0], [1, 2], [2, 1]]

REPEATED_LEVER = {"stage": "lever", "rounds": 3, "stage_params": {"n_levers": 5}}


class NoRepeat:
    """The repeated lever game where, in even-numbered episodes, a seat may not play again the lever it played in
    the last round: legal masks with several legal actions but not all (the shipped games' masks are all-legal or
    one forced action), which differ between episodes that see the same text."""

    def __init__(self) -> None:
        self.game = make_game("repeated", **REPEATED_LEVER)

    def __getattr__(self, name: str):
        return getattr(self.game, name)

    def legal_mask(self, state, seat: int) -> torch.Tensor:
        legal = self.game.legal_mask(state, seat).clone()
        if state.history:
            even = torch.arange(0, state.n_episodes, 2)
            legal[even, state.history[-1][even, seat]] = False
        return legal


# case: (game, episodes per pair, rollout mode)
CASES = {
    "lever": (lambda: make_game("lever", n_levers=5), 6, "per_row"),
    # 528 actions of several tokens: the second pass over the action tokens
    "cmg-h": (lambda: make_game("cmg-h"), 4, "per_row"),
    "repeated-lever": (lambda: make_game("repeated", **REPEATED_LEVER), 8, "per_row"),
    # the prefix cache feeding the action tokens' pass
    "repeated-cmg-h": (lambda: make_game("repeated", stage="cmg-h", rounds=2), 2, "per_row"),
    "repeated-lever-no-repeat": (NoRepeat, 8, "per_row"),
    "warehouse": (lambda: make_game("warehouse", moves=2, episodes=2), 4, "per_row"),
    # no rows: the legal masks come off logp_all
    "warehouse-per-episode": (lambda: make_game("warehouse", moves=2, episodes=1), 3, "per_episode"),
    "no-repeat-per-episode": (NoRepeat, 6, "per_episode"),
}


def make_policy() -> Policy:
    base = load_base("builtin:tiny", device="cpu", dtype="float32")
    bank = AdapterBank(base.model, N, 2, 4.0, ["q_proj", "v_proj", "lm_head"])
    bank.init_members(list(range(20, 20 + N)), b_std=0.3)
    return Policy(base, bank)


def play(case: str):
    build, episodes, mode = CASES[case]
    game = build()
    policy = make_policy()
    traj = rollout(game, policy, torch.tensor(PAIRS), episodes, np.random.default_rng(5), mode=mode)
    return game, policy, traj


def grads(policy: Policy, logp: torch.Tensor, weights: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad((logp * weights).sum(), policy.bank.member_parameters(), allow_unused=True))


@pytest.mark.parametrize("case", list(CASES))
def test_population_logp_equals_the_reference_values_and_gradients(case):
    game, policy, traj = play(case)
    T = traj.rewards.shape[2]
    if case.startswith("warehouse"):  # turns: some steps have illegal actions and some episodes end early
        assert T > 1 and not bool(torch.isfinite(traj.logp_all).all())
    if "no-repeat" in case:  # steps where episodes choose among some of the actions only
        legal = torch.isfinite(traj.logp_all).sum(-1)
        assert bool(((legal > 1) & (legal < 5)).any())
    new = population_logp(policy, game, traj, N)
    ref = population_logp_reference(policy, game, traj, N)
    assert new.shape == ref.shape == (N, len(PAIRS), traj.rewards.shape[1], T, 2)
    torch.testing.assert_close(new, ref, atol=1e-5, rtol=1e-5)
    assert bool((ref != 0).any())
    # a distinct weight per entry, so that a gradient through the wrong entry shows
    weights = torch.linspace(-1.0, 2.0, new.numel()).view_as(new)
    g_new, g_ref = grads(policy, new, weights), grads(policy, ref, weights)
    for a, b in zip(g_new, g_ref):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # every member re-scores every pair's actions, so each gets a gradient (δ̂ carries them into every member)
    for member in range(N):
        assert any(g is not None and g[member].abs().sum() > 0 for g in g_new), member


def test_dead_steps_are_zero_for_every_member():
    """A step an episode did not play counts as 0 for every member, the other entries unchanged."""
    game, policy, traj = play("repeated-lever")
    with torch.no_grad():
        full = population_logp(policy, game, traj, N)
        traj.alive[1, 0, 1:] = False
        dead = population_logp(policy, game, traj, N)
    assert torch.equal(dead[:, 1, 0, 1:], torch.zeros_like(dead[:, 1, 0, 1:]))
    keep = traj.alive[None, ..., None].expand_as(full)
    torch.testing.assert_close(dead[keep], full[keep])
    assert not full.requires_grad or not dead.requires_grad


def test_later_rounds_reuse_each_members_encoded_prefix(monkeypatch):
    """On the repeated game every (member, text) row after round 1 names its own earlier encoding as a prefix, so
    only the round's new tokens are encoded: no row is encoded whole after the first round."""
    game, policy, traj = play("repeated-lever")
    calls = []
    original = Policy.scores_reusing

    def spy(self, members, observations, table, previous, previous_rows, hidden=False, partial=False):
        calls.append((previous is not None, list(previous_rows), len(observations)))
        return original(self, members, observations, table, previous, previous_rows, hidden, partial)

    monkeypatch.setattr(Policy, "scores_reusing", spy)
    with torch.no_grad():
        population_logp(policy, game, traj, N)
    assert len(calls) == 2 * game.horizon  # one batched pass per (round, seat), every member at once
    first_round = calls[:2]
    assert all(not reused and n % N == 0 for reused, _, n in first_round)
    for reused, rows, _ in calls[2:]:
        assert reused and min(rows) >= 0


def test_trajedi_loss_and_gradients_are_unchanged(monkeypatch):
    """The whole TrajeDi loss on the repeated game is the same with either re-scoring."""
    game = make_game("repeated", **REPEATED_LEVER)
    policy = make_policy()
    method = METHODS["trajedi"].build(TrajeDiConfig(alpha=1.0, gamma=0.5), game, N)
    method.policy = policy
    traj = rollout(game, policy, method.pairs(1, np.random.default_rng(0)), 6, np.random.default_rng(1))
    out = {}
    for name, score in (("new", population_logp), ("ref", population_logp_reference)):
        monkeypatch.setattr(trajedi_module, "population_logp", score)
        loss, metrics = method.loss(traj, 0.1)
        out[name] = (loss, metrics["train/trajedi_jsd"],
                     torch.autograd.grad(loss.sum(), policy.bank.member_parameters(), retain_graph=True))
    torch.testing.assert_close(out["new"][0], out["ref"][0], atol=1e-5, rtol=1e-5)
    assert out["new"][1] == pytest.approx(out["ref"][1], abs=1e-5)
    for a, b in zip(out["new"][2], out["ref"][2]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
