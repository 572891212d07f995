"""The ``corrective`` alignment game (interpreting corrective feedback): turns, payoff, transcripts, the
scripted teachers' feedback, the scripted population, rollouts, PettingZoo conformance and one-line errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test

from adhoc.games import GAMES, GameError, make_game
from adhoc.games.corrective import AI, TEACHER, CorrectiveTeacher
from adhoc.games.pettingzoo import to_parallel_env
from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import builtin_vocab, load_base
from adhoc.lm.policy import Policy
from adhoc.rollout import rollout
from adhoc.scripted import load_scripted_population, scripted_ids

ROOT = Path(__file__).parent.parent  # the repository: tests do not depend on the working folder


def _pose(game, a, b):
    return game.pose(torch.tensor(a), torch.tensor(b))


def _play(game, drafts, teacher, state):
    """Write ``drafts`` ([attempts][E][L] digits, ones first) with ``teacher`` giving the feedback; returns
    (rewards [E, T], said[k - 1][e]: the teacher's words during draft k, final state)."""
    rewards, said = [], [[[] for _ in range(state.n_episodes)] for _ in range(game.attempts - 1)]
    for t in range(game.horizon):
        k, i, seat = game.phase(t)
        feedback = teacher.log_probs(game, state, TEACHER)
        assert torch.isfinite(feedback).sum(1).eq(1).all()  # deterministic
        if seat == AI:
            assert game.legal_mask(state, TEACHER).sum(1).eq(1).all() and feedback[:, 0].eq(0).all()
            assert game.legal_mask(state, AI).all()
            ai = torch.tensor([d[i] for d in drafts[k]])
        else:
            assert game.legal_mask(state, AI).sum(1).eq(1).all() and game.legal_mask(state, TEACHER).all()
            ai = torch.zeros(state.n_episodes, dtype=torch.long)
            for e, a in enumerate(feedback.argmax(1).tolist()):
                said[k - 1][e].append(game.feedback[a])
        state, r, done = game.step(state, torch.stack([ai, feedback.argmax(1)], 1))
        rewards.append(r)
        assert done.all() == (t == game.horizon - 1)
    return torch.stack(rewards, 1), [[" ".join(w) for w in k] for k in said], state


def test_registered_shaped_and_words_in_the_vocabulary():
    game = make_game("corrective")
    assert "corrective" in GAMES and game.name == "corrective"
    assert game.params() == {"digits": 2, "op": "times", "attempts": 2, "credit": "exact"}
    assert game.length == 3 and game.horizon == 3 + 2 * 3
    assert [game.phase(t) for t in (0, 2, 3, 4, 8)] == [(0, 0, AI), (0, 2, AI), (1, 0, TEACHER), (1, 0, AI),
                                                       (1, 2, AI)]
    assert game.action_names(AI) == [str(d) for d in range(10)]
    names = game.action_names(TEACHER)
    assert names[:4] == ["none", "ok", "wrong", "is 0"] and names[-1] == "is 9" and len(set(names)) == 13
    vocab = set(builtin_vocab())  # every word of the feedback and transcripts is one token of the built-in base
    assert all(w in vocab for name in names for w in name.split()) and {"ai", "teacher", "times", "plus"} <= vocab
    state = game.reset(500, np.random.default_rng(0))
    a, b = state.extra["a"], state.extra["b"]
    assert a.min() >= 10 and a.max() <= 99 and b.min() >= 2 and b.max() <= 9
    value = (state.extra["answer"] * torch.tensor([1, 10, 100])).sum(1)
    assert torch.equal(value, a * b)
    plus = make_game("corrective", op="plus", digits=3).reset(200, np.random.default_rng(0))
    place = torch.tensor([1, 10, 100, 1000])
    assert plus.extra["b"].min() >= 100
    assert torch.equal((plus.extra["answer"] * place).sum(1), plus.extra["a"] + plus.extra["b"])
    assert make_game("corrective", digits=1, attempts=1).horizon == 2


def test_correct_answer_pays_one_wrong_pays_zero_and_the_last_draft_counts():
    game = make_game("corrective", digits=2, attempts=2)
    teacher = game.scripted_strategies()["silent"]
    state = _pose(game, [47, 47, 47, 47], [3, 3, 3, 3])  # 141: ones first 1 4 1
    right, wrong = [1, 4, 1], [1, 4, 2]
    drafts = [[right, wrong, wrong, right], [right, right, wrong, [1, 4, 0]]]
    rewards, said, state = _play(game, drafts, teacher, state)
    assert said == [["none none none"] * 4]
    assert rewards[:, :-1].eq(0).all()  # paid once, at the end
    assert rewards[:, -1].tolist() == [1.0, 1.0, 0.0, 0.0]  # by the last draft only
    digits = make_game("corrective", digits=2, attempts=1, credit="digits")
    rewards, _, _ = _play(digits, [[right, wrong, [0, 0, 0]]], teacher, _pose(digits, [47] * 3, [3] * 3))
    assert rewards.sum(1).tolist() == pytest.approx([1.0, 2 / 3, 0.0])  # partial credit per correct digit
    _, again, _ = game.step(state, torch.zeros(4, 2, dtype=torch.long))  # finished interactions pay 0
    assert again.tolist() == [0.0] * 4


def test_feedback_text_matches_each_teachers_strategy():
    game = make_game("corrective", digits=2, attempts=3)
    teachers = game.scripted_strategies()
    assert sorted(teachers) == ["digit", "point", "silent", "wrong"]
    # 47 x 3 = 141 (ones first 1 4 1); 86 x 4 = 344 (4 4 3)
    first = [[1, 5, 2], [9, 4, 3], [1, 4, 1]]
    second = [[1, 4, 2], [4, 4, 3], [1, 4, 1]]
    expected = {"digit": [["ok is 4 is 1", "is 4 ok ok", "ok ok ok"], ["ok ok is 1", "ok ok ok", "ok ok ok"]],
                "point": [["ok wrong wrong", "wrong ok ok", "ok ok ok"], ["ok ok wrong", "ok ok ok", "ok ok ok"]],
                "wrong": [["wrong none none", "wrong none none", "ok none none"], ["wrong none none", "ok none none",
                                                                                 "ok none none"]],
                "silent": [["none none none"] * 3] * 2}
    for name, teacher in teachers.items():
        assert isinstance(teacher, CorrectiveTeacher) and teacher.seats == (TEACHER,)
        rewards, said, _ = _play(game, [first, second, second], teacher, _pose(game, [47, 86, 47], [3, 4, 3]))
        assert said == expected[name], name
        assert rewards.sum(1).tolist() == [0.0, 1.0, 1.0]


def test_observations_carry_the_history_and_are_append_only():
    game = make_game("corrective", digits=2, attempts=2)
    state = _pose(game, [47], [3])
    teacher = game.scripted_strategies()["digit"]
    seen = [[game.observe(state, s)[0]] for s in (AI, TEACHER)]
    for t in range(game.horizon):
        _, i, seat = game.phase(t)
        ai = torch.tensor([[1, 5, 2][i] if seat == AI else 0])
        state, _, _ = game.step(state, torch.stack([ai, teacher.log_probs(game, state, TEACHER).argmax(1)], 1))
        for s in (AI, TEACHER):
            seen[s].append(game.observe(state, s)[0])
    assert seen[AI][0] == "ai . 47 times 3 :"
    assert seen[AI][4] == "ai . 47 times 3 : 1 5 2 : ok"  # the correction comes just before the step it corrects
    assert seen[AI][-1] == "ai . 47 times 3 : 1 5 2 : ok 1 is 4 5 is 1 2"
    assert seen[TEACHER][-1] == "teacher 47 times 3 is 1 4 1 . 47 times 3 : 1 5 2 : ok 1 is 4 5 is 1 2"
    assert "1 4 1" not in seen[AI][-1]  # the answer (θ) is the teacher's alone
    for s in (AI, TEACHER):  # append-only transcripts: what prefix reuse relies on
        assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(seen[s], seen[s][1:]))


@pytest.mark.parametrize("params,message", [
    ({"digits": 0}, "game.digits must be 1..6 \\(got 0\\)"), ({"digits": 7}, "game.digits must be 1..6"),
    ({"attempts": 0}, "game.attempts must be 1..9"), ({"op": "minus"}, "game.op must be times or plus"),
    ({"credit": "half"}, "game.credit must be exact or digits"),
])
def test_impossible_parameters(params, message):
    with pytest.raises(GameError, match=message):
        make_game("corrective", **params)


def test_cli_reports_zero_digits_in_one_line(tmp_path, capsys):
    from adhoc.cli import main

    import yaml

    values = yaml.safe_load((ROOT / "configs/warehouse-selfplay.yaml").read_text())
    values["game"] = {"name": "corrective", "digits": 0}
    config = tmp_path / "corrective.yaml"
    config.write_text(yaml.safe_dump(values))
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "game.digits must be 1..6 (got 0)" in err and "Traceback" not in err


def test_scripted_population_and_rollout_with_teachers():
    game = make_game("corrective", digits=1, attempts=2)
    pop = load_scripted_population("scripted:corrective", game)
    assert pop.names == ["digit", "point", "wrong", "silent"]
    assert load_scripted_population("scripted:corrective:silent,digit", game).names == ["silent", "digit"]
    base = load_base("builtin:tiny", device="cpu", dtype="float32")
    bank = AdapterBank(base.model, 1, 4, 8.0, ["q_proj", "v_proj", "lm_head"])
    bank.init_members([0], b_std=0.1)
    policy = Policy(base, bank)
    ids = scripted_ids(policy, pop).tolist()
    assert ids == [1, 2, 3, 4]
    traj = rollout(game, policy, torch.tensor([[0, t] for t in ids]), 16, np.random.default_rng(0))
    assert traj.returns.shape == (4, 16) and set(traj.returns.unique().tolist()) <= {0.0, 1.0}
    teacher_turns = [t for t in range(game.horizon) if game.phase(t)[2] == TEACHER]
    ai_turns = [t for t in range(game.horizon) if game.phase(t)[2] == AI]
    assert teacher_turns == [2, 4]  # the AI's turns there are forced: log π = 0, no entropy
    assert traj.logp[:, :, teacher_turns, 0].eq(0).all() and traj.entropy[:, :, teacher_turns, 0].eq(0).all()
    assert (traj.entropy[:, :, ai_turns, 0] > 0).all() and traj.logp.requires_grad
    assert traj.actions[3, :, teacher_turns, 1].eq(0).all()  # silent: "none"
    said = traj.actions[0, :, teacher_turns, 1]
    assert said.ne(0).all() and said.ne(2).all()  # digit: "ok" or "is d", never none or a bare wrong


def test_pettingzoo_parallel_api():
    game = make_game("corrective", digits=2, attempts=3)
    env = to_parallel_env(game, seed=0)
    parallel_api_test(env, num_cycles=30)
    obs, infos = env.reset(seed=1)
    assert obs["player_0"].startswith("ai . ") and obs["player_1"].startswith("teacher ")
    assert infos["player_0"]["action_mask"].all() and infos["player_1"]["action_mask"].tolist()[:2] == [1, 0]
    total = 0.0
    for _ in range(game.horizon):
        masks = [infos[a]["action_mask"] for a in ("player_0", "player_1")]
        obs, rew, term, trunc, infos = env.step({a: int(np.argmax(m)) for a, m in zip(("player_0", "player_1"), masks)})
        total += rew["player_0"]
    assert all(term.values()) and env.agents == [] and total in (0.0, 1.0)
    assert obs["player_0"].count(":") == 3 and len(obs["player_0"].split(":")[-1].split()) == 2 * game.length
