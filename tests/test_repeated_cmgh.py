"""Repeated CMG-H (528 three-token actions): the action prefix tree (``Policy.action_scoring="tree"``), in one chunk
and in chunks of one row (checkpointed with gradients), gives the scores, sampled actions, log-probabilities,
entropies and gradients of the earlier path that repeats each prompt's cache once per action; and the shipped
repeated CMG-H configs load."""

from pathlib import Path

import numpy as np
import pytest
import torch

from adhoc.config import load_config, load_learner_config
from adhoc.games import make_game
from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import load_base
from adhoc.lm.policy import ActionTree, Policy
from adhoc.rollout import rollout
from test_hf_interop import BASES

CONFIGS = Path(__file__).parent.parent / "configs"


@pytest.fixture(scope="module")
def policy():
    base = load_base("builtin:tiny", device="cpu")
    bank = AdapterBank(base.model, 3, 4, 8, ["q_proj", "v_proj", "lm_head"])
    bank.init_members([0, 1, 2], b_std=0.1)
    return Policy(base, bank)


class CountingForward:
    """Counts the model's forward calls (to see that a small budget does split the tree pass into chunks)."""

    def __init__(self, model):
        self.model, self.calls = model, 0
        self.forward = model.forward

    def __enter__(self):
        def counted(*args, **kwargs):
            self.calls += 1
            return self.forward(*args, **kwargs)

        self.model.forward = counted
        return self

    def __exit__(self, *exc):
        del self.model.forward


def test_the_tree_of_cmgh_actions(policy):
    game = make_game("cmg-h")
    table = policy.actions(game.action_names(0))
    assert table.ids.shape == (528, 3)
    tree = ActionTree.build(table)
    # first digits 0-5 (depth 0), then the two-digit prefixes 00..52 (depth 1)
    assert tree.n == 6 + 53 and tree.depth.tolist().count(0) == 6 and tree.depth.tolist().count(1) == 53
    assert len(tree.edge_node) == 53 + 528
    # action 527 = "5", "2", "7": its second token hangs off the node "5", its third off "52"
    a = game.action_names(0).index("527")
    node_5 = tree.edge_node[tree.action_edges[a, 0]]
    node_52 = tree.edge_node[tree.action_edges[a, 1]]
    assert tree.depth[node_5] == 0 and tree.depth[node_52] == 1 and bool(tree.ancestors[node_52, node_5])
    assert tree.tokens[node_5] == table.ids[a, 0] and tree.tokens[node_52] == table.ids[a, 1]
    assert tree.edge_token[tree.action_edges[a, 1]] == table.ids[a, 2]


@pytest.mark.parametrize("names", [None, ["1", "12", "123", "7", "70"]])
def test_tree_scores_equal_the_repeated_scores(policy, names):
    """Plain ``scores`` over prompts of different lengths (left padding) and members; also actions that begin
    one another (end-of-sequence appended: sequences of different lengths in one tree)."""
    table = policy.actions(names or make_game("cmg-h").action_names(0))
    obs = ["Coordination game with 528 actions. Round 1: you 003 partner 017. Round 2:", "Round 1:",
           "Coordination game. Round 1: you 5 partner 4.", "Round 1:"]
    members = torch.tensor([2, 0, 1, 0])
    out = {}
    for mode, budget in (("repeat", None), ("tree", None), ("tree", 1)):
        policy.action_scoring, policy.score_budget = mode, budget
        with CountingForward(policy.model) as counter:
            out[mode, budget] = policy.scores(members, obs, table)
        if budget == 1:
            assert counter.calls == 1 + len(obs)  # the prompt pass, then one chunk per row
    ref = out["repeat", None]
    assert ref.shape == (4, len(table.names))
    assert torch.allclose(out["tree", None], ref, atol=1e-5, rtol=0)
    assert torch.allclose(out["tree", 1], ref, atol=1e-5, rtol=0)
    # rows 1 and 3 are the same (member, text); the others differ
    assert torch.allclose(ref[1], ref[3]) and not torch.allclose(ref[0], ref[2], atol=1e-3)


def play(policy, scoring, budget, game, pairs, episodes=3, **options):
    policy.action_scoring, policy.score_budget = scoring, budget
    weights = torch.randn(len(pairs), episodes, game.horizon, 2, generator=torch.Generator().manual_seed(1))
    with CountingForward(policy.model) as counter:
        traj = rollout(game, policy, pairs, episodes, np.random.default_rng(0), **options)
        loss = (traj.logp * weights).sum() + 0.1 * traj.entropy.sum() + traj.logp_all.clamp(min=-30).mean()
    policy.bank.zero_grad()
    loss.backward()
    grads = [p.grad.clone() for p in policy.bank.member_parameters()]
    policy.bank.zero_grad()
    return traj, loss.detach(), grads, counter.calls


@pytest.mark.parametrize("mode", ["per_row", "per_episode"])
def test_rollout_on_repeated_cmgh_equals_the_repeated_path(policy, mode):
    """Values AND gradients: the loss reads log π of the sampled actions, entropies and log π of every action at
    every round, so a wrong chunk (rows, members, positions or prompt cache of another row) changes them."""
    game = make_game("repeated", stage="cmg-h", rounds=3)
    pairs = torch.tensor([[0, 0], [1, 2], [2, 1]])
    ref, ref_loss, ref_grads, _ = play(policy, "repeat", None, game, pairs, mode=mode)
    calls = {}
    for budget in (None, 1):
        traj, loss, grads, calls[budget] = play(policy, "tree", budget, game, pairs, mode=mode)
        assert torch.equal(traj.actions, ref.actions)
        assert torch.allclose(traj.logp, ref.logp, atol=1e-5, rtol=0)
        assert torch.allclose(traj.entropy, ref.entropy, atol=1e-5, rtol=0)
        assert torch.allclose(traj.logp_all, ref.logp_all, atol=1e-5, rtol=0)
        assert torch.allclose(loss, ref_loss, atol=1e-4, rtol=1e-6)
        scale = max(float(g.abs().max()) for g in ref_grads)
        assert scale > 0
        for g, r in zip(grads, ref_grads):
            assert torch.allclose(g, r, atol=1e-5 * scale, rtol=1e-4)
    assert calls[1] > calls[None]  # budget 1: one chunk per row, so more passes (and, with gradients, recomputed)


@pytest.mark.parametrize("kind", sorted(BASES))
def test_tree_equals_repeat_on_hugging_face_bases(tmp_path, kind):
    """A GPT-2 (learned absolute positions, Conv1D layers) and a Llama saved and loaded as Hugging Face models; their
    tokenizers give CMG-H's actions four tokens. Scores and gradients of both paths agree."""
    save, targets = BASES[kind]
    base = load_base(str(save(tmp_path / kind)), device="cpu")
    bank = AdapterBank(base.model, 2, 4, 8, targets)
    bank.init_members([0, 1], b_std=0.1)
    hf = Policy(base, bank)
    table = hf.actions(make_game("cmg-h").action_names(0))
    assert table.ids.shape[1] >= 3
    obs = ["Coordination game with 528 actions. Round 1: you 003 partner 017. Round 2:", "Round 1:"]
    out = {}
    for mode, budget in (("repeat", None), ("tree", 1)):
        hf.action_scoring, hf.score_budget = mode, budget
        scores = hf.scores(torch.tensor([1, 0]), obs, table)
        (scores * torch.linspace(-1, 1, scores.numel()).view_as(scores)).sum().backward()
        out[mode] = scores.detach(), [p.grad.clone() for p in bank.member_parameters()]
        bank.zero_grad()
    assert torch.allclose(out["tree"][0], out["repeat"][0], atol=1e-5, rtol=0)
    for g, r in zip(out["tree"][1], out["repeat"][1]):
        assert torch.allclose(g, r, atol=1e-5, rtol=1e-4)


def test_evaluation_rollout_in_chunks_equals_the_repeated_path(policy):
    """Without gradients (evaluation) the chunks are not checkpointed: the same actions and distributions."""
    game = make_game("repeated", stage="cmg-h", rounds=2)
    pairs = torch.tensor([[0, 1], [1, 1]])
    played = []
    for mode, budget in (("repeat", None), ("tree", 1)):
        policy.action_scoring, policy.score_budget = mode, budget
        with torch.no_grad():
            traj = rollout(game, policy, pairs, 4, np.random.default_rng(3), grad=False)
        played.append((traj.actions, traj.logp_all))
    assert torch.equal(played[0][0], played[1][0])
    assert torch.allclose(played[0][1], played[1][1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["selfplay", "otherplay", "trajedi", "lipo"])
def test_shipped_population_configs(name):
    config = load_config(CONFIGS / f"repeated-cmg-h-{name}.yaml")
    assert config.game.name == "repeated" and config.game.stage == "cmg-h"
    assert config.method.name == name


def test_shipped_learner_config():
    config = load_learner_config(CONFIGS / "repeated-cmg-h-learner.yaml")
    assert config.game.name == "repeated" and config.game.stage == "cmg-h"
    assert all(p.startswith("scripted:repeated:stubborn-") for p in config.partners)
