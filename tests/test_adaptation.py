"""The best history-dependent policy (adhoc.adaptation): hand-computed values against scripted partners, and
brute force over every deterministic policy against stochastic LM partners."""

import itertools

import numpy as np
import pytest
import torch

from adhoc.adaptation import best_history_policy, open_then_copy, partner_log_probs
from adhoc.games import make_game
from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.scripted import load_scripted_population, scripted_ids


@pytest.fixture
def base():
    return load_base("builtin:tiny", device="cpu")


def scripted(base, game, names):
    policy = Policy(base, AdapterBank(base.model, 1, 4, 8, ["q_proj"]))
    return policy, scripted_ids(policy, load_scripted_population(f"scripted:repeated:{names}", game)).numpy()


def lever(n=10, rounds=4):
    return make_game("repeated", stage="lever", rounds=rounds, stage_params={"n_levers": n})


@pytest.mark.parametrize("seat", [0, 1])
def test_stubborn_partners_open_then_copy(base, seat):
    """Nine stubborn partners (levers 0, 2..9): open on a lever paying 1, then copy: (1/9 + 3 · mean u) / 4."""
    game = lever()
    policy, ids = scripted(base, game, ",".join(f"stubborn-{a}" for a in [0, *range(2, 10)]))
    best = best_history_policy(game, policy, ids, agent_seat=seat)
    expected = (1 / 9 + 3 * (0.9 + 8) / 9) / 4
    assert best.lower == pytest.approx(expected) and best.upper == pytest.approx(expected)
    assert best.per_round == pytest.approx([1 / 9, (0.9 + 8) / 9, (0.9 + 8) / 9, (0.9 + 8) / 9])
    assert np.mean(best.per_partner) == pytest.approx(expected)


def test_a_stubborn_and_a_copying_partner(base):
    """stubborn-1 and copy-2: open on 1 or 2 (round 1 matches one of them), then play what identifies each:
    lever 1 with the stubborn one, the own opening with the copier: (1/2 + 3) / 4."""
    game = lever()
    policy, ids = scripted(base, game, "stubborn-1,copy-2")
    best = best_history_policy(game, policy, ids)
    assert best.lower == pytest.approx(3.5 / 4) and best.upper == pytest.approx(3.5 / 4)
    assert best.per_round == pytest.approx([0.5, 1.0, 1.0, 1.0])


def brute_force(game, policy, ids, prior):
    """Every deterministic policy of a 2-round game: an opening a1 and a reply table b1 -> a2."""
    A = len(game.action_names(0))
    u = np.asarray(game.payoff_matrix(), dtype=np.float64)
    empty = np.zeros((len(ids), 0, 2), dtype=np.int64)
    p1 = np.exp(partner_log_probs(game, policy, ids, empty, 1))  # [P, B]
    best = -1.0
    for a1 in range(A):
        # the partner's round-2 policy after (a1, b1), for every b1
        hist = np.array([[[a1, b1]] for _ in ids for b1 in range(A)])
        p2 = np.exp(partner_log_probs(game, policy, np.repeat(ids, A), hist, 1)).reshape(len(ids), A, A)
        for reply in itertools.product(range(A), repeat=A):
            value = 0.0
            for j, w in enumerate(prior):
                for b1 in range(A):
                    value += w * p1[j, b1] * (u[a1, b1] + p2[j, b1] @ u[reply[b1]]) / 2
            best = max(best, value)
    return best


def test_exact_against_brute_force_with_stochastic_lm_partners(base):
    """Three LoRA members with random inits (stochastic, history-dependent): no pruning gives exactly the best
    of all 3 · 3^3 deterministic policies (a Bayes-optimal policy can always be deterministic)."""
    game = lever(n=3, rounds=2)
    torch.manual_seed(0)
    bank = AdapterBank(base.model, 3, 4, 8, ["q_proj", "v_proj", "lm_head"])
    bank.init_members([1, 2, 3], b_std=1.0)
    policy = Policy(base, bank)
    ids, prior = np.arange(3), np.array([0.5, 0.3, 0.2])
    assert np.exp(partner_log_probs(game, policy, ids, np.zeros((3, 0, 2), dtype=np.int64), 1)).max() < 0.99
    best = best_history_policy(game, policy, ids, prior=prior, prune=0.0)
    assert best.lower == pytest.approx(brute_force(game, policy, ids, prior), abs=1e-6)  # float32 scores
    assert best.upper == pytest.approx(best.lower, abs=1e-12)
    # pruning only widens the interval around it
    cut = best_history_policy(game, policy, ids, prior=prior, prune=0.2)
    assert cut.lower <= best.lower + 1e-12 <= cut.upper + 2e-12


@pytest.mark.parametrize("seat", [0, 1])
def test_open_then_copy_with_stubborn_partners(base, seat):
    """copy-A with stubborn partners on levers 3, 5 and 0: the best opening (3 or 5, paying 1) wins round 1 with
    one partner in three; copying wins rounds 2-4 with all of them."""
    game = lever()
    policy, ids = scripted(base, game, "stubborn-3,stubborn-5,stubborn-0")
    name, value, per_round, per_partner = open_then_copy(game, policy, ids, agent_seat=seat, episodes=4)
    assert name in ("copy-3", "copy-5")
    assert value == pytest.approx(3 / 4 * (1 + 1 + 0.9) / 3 + 1 / 4 * 1 / 3)
    assert per_round == pytest.approx([1 / 3, 2.9 / 3, 2.9 / 3, 2.9 / 3])
    assert sorted(per_partner) == pytest.approx(sorted([0.75, 1.0, 0.675]))
    assert len(policy.scripted) == 3  # the copy strategies it added are gone again


def test_a_cut_search_takes_open_then_copy_as_its_lower_end(base, monkeypatch):
    """A search cut after round 1 (``prune`` above each partner's weight, as CMG-H's 528 actions force with LM
    partners) counts nothing after the cut; the bound's lower end is then the best "open, then copy", which is
    optimal with stubborn partners."""
    import functools

    import adhoc.adaptation as adaptation
    from adhoc.recipes.evaluate import history_bound

    game = lever()
    policy, ids = scripted(base, game, "stubborn-3,stubborn-5,stubborn-0")
    exact = 3 / 4 * (1 + 1 + 0.9) / 3 + 1 / 4 * 1 / 3
    assert history_bound(game, policy, torch.as_tensor(ids), [(0, 1)] * 3, None)["policies"] == ["search"] * 2
    cut = functools.partial(adaptation.best_history_policy, prune=0.5)
    assert cut(game, policy, ids).lower < 0.1 and cut(game, policy, ids).upper >= exact
    monkeypatch.setattr(adaptation, "best_history_policy", cut)
    bound = history_bound(game, policy, torch.as_tensor(ids), [(0, 1)] * 3, None)
    assert bound["lower"] == pytest.approx(exact, abs=1e-4) and bound["upper"] >= bound["lower"]
    assert bound["per_round"] == pytest.approx([1 / 3, 2.9 / 3, 2.9 / 3, 2.9 / 3], abs=1e-4)
    assert bound["policies"][0] in ("copy-3", "copy-5") and len(bound["policies"]) == 2


def test_open_then_copy_needs_the_same_actions_in_both_seats(base):
    game = make_game("repeated", stage="matrix", rounds=2,
                     stage_params={"payoff": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]})
    policy = Policy(base, AdapterBank(base.model, 1, 4, 8, ["q_proj"]))
    assert open_then_copy(game, policy, np.zeros(1, dtype=np.int64)) is None


def test_partner_spec_selects_members():
    """partners=DIR:a,b is those members of DIR, in that order; unknown or repeated names are one clear line."""
    from adhoc.errors import UserError
    from adhoc.partners import load_partners
    from adhoc.paths import check_out

    from pathlib import Path

    from adhoc.population import Population

    pop = Population.load(Path(__file__).resolve().parent.parent / "populations" / "lever-selfplay")
    a, b = pop.names[2], pop.names[0]
    partners = load_partners([f"{pop.path}:{a},{b}"])
    assert partners.names == [f"{partners.labels[0]}/{a}", f"{partners.labels[0]}/{b}"]
    assert [m["name"] for m in partners.populations[0].members] == [a, b]
    for bad, message in [("nobody", "has no member 'nobody'"), (f"{a},{a}", "distinct"), ("", "member names")]:
        with pytest.raises(UserError, match=message):
            load_partners([f"{pop.path}:{bad}"])
    with pytest.raises(UserError, match="input"):  # DIR of DIR:a is an input: never inside an --out
        check_out(pop.path.parent, "population", inputs=(f"{pop.path}:{a}",))


def test_too_large_a_tree_is_refused_in_one_line(base, monkeypatch):
    import adhoc.adaptation as adaptation
    from adhoc.errors import UserError

    game = lever()
    policy, ids = scripted(base, game, "stubborn-1,stubborn-2")
    monkeypatch.setattr(adaptation, "MAX_CELLS", 1000)
    with pytest.raises(UserError, match="too many to search"):
        best_history_policy(game, policy, ids)


def test_bound_of_a_one_shot_game_is_refused():
    from pathlib import Path

    from adhoc.errors import UserError
    from adhoc.recipes.evaluate import evaluate

    pop = str(Path(__file__).resolve().parent.parent / "populations" / "lever-selfplay")
    with pytest.raises(UserError, match="--bound needs a repeated game"):
        evaluate(pop, [pop], bound=True)
