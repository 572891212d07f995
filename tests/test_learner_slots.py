"""Several learner slots in one batched pass (``learners:`` in a learner config): every slot's loss and gradient
are the single learner's on its own episodes (no shared baselines or normalisers), a run writes one ordinary
learner population per slot that ``adhoc evaluate`` reads, bad ``learners:`` configs are refused with one
line, and without ``learners:`` the single learner is exactly what it was (fixture fingerprints of runs of
commit e526d53, before slots existed)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_cli import tree_digest as digest
from test_crossplay import forced_population

from adhoc.cli import main
from adhoc.config import ConfigError, load_learner_config
from adhoc.games import make_game
from adhoc.lm.adapters import AdapterBank, read_adapter_folder
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.methods.common import rollout_entropy, rollout_policy_gradient_loss
from adhoc.population import Population
from adhoc.psro import draw_training_pairs, grouped_leave_one_out_advantage, reward_to_go, slot_losses
from adhoc.recipes.train_learner import train_learner
from adhoc.rollout import rollout
from adhoc.scripted import load_scripted_population, scripted_ids

ROOT = Path(__file__).parent.parent
WAREHOUSE = ROOT / "configs/warehouse-learner.yaml"
LEVER = ROOT / "configs/lever-learner.yaml"
SMALL = ["train.epochs=2", "train.iterations_per_epoch=2", "train.episodes=16", "train.eval_episodes=8"]


def fingerprint(pop: Population) -> str:
    """sha256 of every member's adapter tensors (exact bytes), the meta-game, history, mixture and names."""
    h = hashlib.sha256()
    for name in pop.names:
        tensors = read_adapter_folder(pop.member_dir(name))[1]
        for key in sorted(tensors):
            h.update(key.encode())
            h.update(tensors[key].float().numpy().tobytes())
    info = pop.manifest["learner"]
    h.update(json.dumps([info["matrix"], info["history"], pop.manifest["mixture"], pop.names], sort_keys=True).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def lever_partners(tmp_path_factory):
    """Deterministic lever partners: two on lever 3, one on lever 5."""
    return forced_population(tmp_path_factory.mktemp("partners") / "lever", make_game("lever"), "lever", [3, 3, 5])


# ------------------------------------------------------------------ (a) per-slot losses and gradients
@pytest.mark.parametrize("credit", ["episode", "reward_to_go"])
def test_each_slot_gets_the_single_learner_gradient_of_its_own_episodes(credit):
    """Two learner slots (bank members 0, 1) in ONE rollout, sharing a partner (teacher ``direct``): each slot's
    loss and gradient equal the single-learner loss on its own episodes alone (``traj.select``). Shared
    leave-one-out groups, a shared batch fallback or a shared per-step normaliser would all break this."""
    game = make_game("warehouse", width=3, height=3, moves=2, episodes=1, labels=["Up", "Down", "Left", "Right"])
    base = load_base("builtin:tiny", device="cpu")
    bank = AdapterBank(base.model, 2, 4, 8.0, ["q_proj", "v_proj", "lm_head"], base_model_id=base.model_id)
    bank.init_members([11, 12], b_std=0.1)
    policy = Policy(base, bank)
    teachers = scripted_ids(policy, load_scripted_population("scripted:warehouse:direct,direct-swap,ground", game))
    n_ids = bank.n_members + len(policy.scripted)
    rng = np.random.default_rng(0)
    # slot 0 plays direct / direct-swap, slot 1 direct / ground; odd sizes leave singleton groups (whose
    # baseline is the mean of the slot's other episodes)
    draws = [draw_training_pairs(np.array([0.6, 0.4]), 9, 0, rng, teachers[[0, 1]], [(1,), (1,)]),
             draw_training_pairs(np.array([0.8, 0.2]), 7, 1, rng, teachers[[0, 2]], [(1,), (1,)])]
    rows = [slice(0, 9), slice(9, 16)]
    pairs = torch.cat([p for p, _ in draws])
    traj = rollout(game, policy, pairs, 1, rng, keep_distributions=False)
    coef = 0.05
    loss, ent = slot_losses(traj, rows, [g for _, g in draws], [0, 1], n_ids, credit, coef)
    params = bank.member_parameters()
    grads = torch.autograd.grad(loss.sum(), params, retain_graph=True)  # the slots' graphs share the rollout

    def single(k: int):
        """The single learner's loss (train_learner before slots) on slot k's trajectories only."""
        own = traj.select(torch.arange(rows[k].start, rows[k].stop))
        groups = draws[k][1]
        if credit == "reward_to_go":
            adv = grouped_leave_one_out_advantage(reward_to_go(own.rewards[:, 0] * own.alive[:, 0]), groups)
        else:
            adv = grouped_leave_one_out_advantage(own.returns[:, 0], groups)
        return (rollout_policy_gradient_loss(own, adv[:, None], n_ids)[k]
                - coef * rollout_entropy(own, n_ids)[k]), adv

    for k in (0, 1):
        want, adv = single(k)
        assert float(loss[k].detach()) == pytest.approx(float(want.detach()), rel=1e-5, abs=1e-7)
        want_grads = torch.autograd.grad(want, params, retain_graph=True)
        for g, w in zip(grads, want_grads):
            assert torch.allclose(g[k], w[k], rtol=1e-4, atol=1e-7)
        assert float(w[k].abs().sum()) > 0  # the learner's gradient is not trivially zero ...
    # ... and the setup tells shared baselines / normalisers apart from per-slot ones
    all_groups = torch.cat([draws[0][1], draws[1][1]])
    values = traj.returns[:, 0] if credit == "episode" else reward_to_go(traj.rewards[:, 0] * traj.alive[:, 0])
    shared = grouped_leave_one_out_advantage(values, all_groups)
    own = torch.cat([grouped_leave_one_out_advantage(values[r], g) for r, (_, g) in zip(rows, draws)])
    assert not torch.allclose(shared, own)


# ------------------------------------------------------------------ (b) end to end
@pytest.fixture(scope="module")
def slots_run(lever_partners, tmp_path_factory):
    """Three slots on the lever game: two seeds with every partner, one with two of them."""
    root = tmp_path_factory.mktemp("slots")
    config = root / "slots.yaml"
    data = yaml.safe_load(LEVER.read_text())
    data["learners"] = [{"name": "s0", "seed": 0}, {"name": "s1", "seed": 1},
                        {"name": "pair", "partners": [f"{lever_partners}:m0,m2"]}]
    config.write_text(yaml.safe_dump(data))
    out = root / "out"
    assert main(["train-learner", str(config), f"partners={lever_partners}", *SMALL, "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_slots_write_one_learner_population_each(slots_run, lever_partners, tmp_path, capsys):
    assert sorted(p.name for p in slots_run.iterdir()) == ["pair", "s0", "s1"]
    single = train_learner(load_learner_config(LEVER, [f"partners={lever_partners}", *SMALL]), out=tmp_path / "one",
                           progress=False)
    pops = {name: Population.load(slots_run / name) for name in ("s0", "s1", "pair")}
    for name, pop in pops.items():
        m = pop.manifest
        keys = lambda manifest: [k for k in manifest if k != "warnings"]  # noqa: E731 (only where one is due)
        assert keys(m) == keys(single.manifest) and list(m["learner"]) == list(single.manifest["learner"])
        assert pop.names == [name, f"{name}-epoch-00", f"{name}-epoch-01"]
        assert m["members"][1]["snapshot_of"] == name and m["training"]["iterations"] == 4
        assert np.asarray(m["learner"]["matrix"]).shape == (3, 2 if name == "pair" else 3)
        assert set(m["mixture"]) <= set(pop.names)
        assert m["learner"]["partner_self_play"] == pytest.approx([1.0] * (2 if name == "pair" else 3))
        assert (pop.path / "config.yaml").is_file() and (pop.path / "tb").is_dir()
    assert pops["pair"].manifest["learner"]["partner_names"] == ["lever/m0", "lever/m2"]
    assert pops["s0"].manifest["members"][0]["seed"] != pops["s1"].manifest["members"][0]["seed"]
    a, b = (read_adapter_folder(pops[n].member_dir(n))[1] for n in ("s0", "s1"))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # two seeds, two learners
    # every slot is an agent adhoc evaluate reads, as a single learner's population
    for name in pops:
        assert main(["evaluate", str(slots_run / name), "--partners", str(lever_partners), "--episodes", "4",
                     "--out", str(tmp_path / f"ev-{name}")]) == 0
        data = json.loads((tmp_path / f"ev-{name}" / "evaluation.json").read_text())
        assert len(data["per_partner"]) == 3 and 0.0 <= data["mean_return"] <= 1.0
    assert main(["evaluate", str(slots_run / "s1"), "--partners", str(lever_partners), "--mixture", "--episodes",
                 "4", "--out", str(tmp_path / "ev-mix")]) == 0
    capsys.readouterr()


def test_one_slot_is_the_single_learner(lever_partners, tmp_path):
    """``learners: [{name: learner, seed: 0}]`` is the same computation as no ``learners:`` (same name, seed and
    partners): identical adapters, meta-game and mixture, only written to OUT/learner."""
    config = tmp_path / "one.yaml"
    data = yaml.safe_load(LEVER.read_text())
    data["learners"] = [{"name": "learner", "seed": 0}]
    config.write_text(yaml.safe_dump(data))
    args = [f"partners={lever_partners}", *SMALL, "learner.oracle=fresh", "solver=maximin"]
    [slot] = train_learner(load_learner_config(config, args), out=tmp_path / "slots", progress=False)
    single = train_learner(load_learner_config(LEVER, args), out=tmp_path / "single", progress=False)
    assert slot.path == tmp_path / "slots" / "learner"
    assert fingerprint(slot) == fingerprint(single)


def test_warehouse_slots_with_different_teacher_sets(tmp_path):
    """Scripted partners: one slot per teacher set, a teacher shared by two slots; held-out evaluation."""
    config = tmp_path / "teachers.yaml"
    data = yaml.safe_load(WAREHOUSE.read_text())
    data["learners"] = [{"name": "all"}, {"name": "direct", "partners": "scripted:warehouse:direct"},
                        {"name": "ground", "seed": 5, "partners": ["scripted:warehouse:ground,direct"]}]
    config.write_text(yaml.safe_dump(data))
    pops = train_learner(load_learner_config(config, SMALL), out=tmp_path / "out", progress=False)
    assert [p.path.name for p in pops] == ["all", "direct", "ground"]
    assert [p.manifest["learner"]["partner_names"] for p in pops] == [
        ["scripted-warehouse/direct", "scripted-warehouse/direct-swap", "scripted-warehouse/direct-mirror"],
        ["scripted-warehouse/direct"], ["scripted-warehouse/ground", "scripted-warehouse/direct"]]
    assert pops[0].manifest["members"][0]["seed"] != pops[2].manifest["members"][0]["seed"]
    assert main(["evaluate", str(pops[1].path), "--partners", "scripted:warehouse:direct-rotate", "--episodes", "4",
                 "--out", str(tmp_path / "ev")]) == 0


# ------------------------------------------------------------------ (c) refusals
def expect_user_error(argv, capsys, match):
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert err.startswith("adhoc: error: ") and "\n" not in err and match in err, err


@pytest.mark.parametrize("learners, message", [
    ([], "learners must be a non-empty list"),
    ([{"name": "a"}, {"name": "a"}], "the name 'a' is given twice"),
    ([{"name": "a", "bogus": 1}], "unknown key learners[0].bogus"),
    ([{"name": "../a"}], "learners[0].name '../a' is not a plain name"),
    ([{"name": "a", "seed": -1}], "learners[0].seed must be >= 0"),
    ([{"name": "a", "partners": []}], "learners[0].partners must be a non-empty list"),
    ([{"name": "a"}, 3], "learners[1] must be a mapping"),
])
def test_bad_learners_config_is_one_line(learners, message, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    data = yaml.safe_load(WAREHOUSE.read_text())
    data["learners"] = learners
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_learner_config(config)
    assert message in str(info.value) and "\n" not in str(info.value)
    expect_user_error(["train-learner", str(config), "--out", str(tmp_path / "out")], capsys, message)
    assert not (tmp_path / "out").exists()


def test_bad_learner_slots_runs_are_refused_before_writing(lever_partners, slots_run, tmp_path, capsys):
    config = tmp_path / "slots.yaml"
    data = yaml.safe_load(WAREHOUSE.read_text())
    data["learners"] = [{"name": "a"}, {"name": "b", "partners": [str(lever_partners)]}]
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    before = digest(slots_run)
    ok = yaml.safe_load(WAREHOUSE.read_text()) | {"learners": [{"name": "a"}, {"name": "b"}]}
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(ok))
    for argv, match in [
        (["train-learner", str(config), "--out", str(out)], "learner b: partner population"),
        (["train-learner", str(tmp_path / "ok.yaml"), "--out", str(slots_run / "s0"), "--overwrite"],
         "is not a learner populations output (it is a population)"),
        (["train-learner", str(tmp_path / "ok.yaml"), "--out", str(slots_run), "--resume"], "already complete"),
        (["train-learner", str(tmp_path / "ok.yaml"), "--out", str(slots_run)], "already exists"),
        (["train-learner", str(tmp_path / "ok.yaml"), "--out", str(slots_run / "s0")], "already exists"),
    ]:
        expect_user_error(argv, capsys, match)
    assert not out.exists() and not any(p.name.startswith(".") for p in tmp_path.iterdir())
    assert digest(slots_run) == before


# ------------------------------------------------------------------ (d) the single learner is unchanged
# sha256 (``fingerprint``) of the populations commit e526d53 (before learner slots) wrote for these runs; a
# deliberate change of the rollout, adapters or solvers that moves them must re-record them from a run of
# the code before this test's subject changed. The exact bytes depend on the CPU's float kernels: one set per
# kind of CPU it was recorded on (the returns matrix below is the same on both)
E526D53 = [
    {"lever": "6a060444e84dd555f7d1beae42abefc9b594454b95a4144dab6cf9b9fc664a08",
     "warehouse": "fe77908ac787ca290541e82c52d4fb351d6edd925f5a62946913a0d51006d36d"},
    # an AMD EPYC (2 cores, torch 2.13.0 CPU), recorded with the code of fabe9a4, whose learner is e526d53's
    {"lever": "6b56e7651202135910f74bd3528fcde404f6badb18596d46e5501bca3d6018e5",
     "warehouse": "706ad1570222af76af59e14a4b63e1018b85ae0911687d8f3bd02e628ab6cbad"},
]


def test_single_learner_is_bit_identical_to_before_slots(tmp_path):
    partners = forced_population(tmp_path / "lever", make_game("lever"), "lever", [3, 3, 5])
    lever = train_learner(load_learner_config(LEVER, [f"partners={partners}", *SMALL, "learner.oracle=fresh",
                                                      "solver=maximin"]), out=tmp_path / "a", progress=False)
    warehouse = train_learner(load_learner_config(WAREHOUSE, [*SMALL, "learner.credit=reward_to_go",
                                                              "learner.seed=3"]), out=tmp_path / "b", progress=False)
    assert lever.manifest["learner"]["matrix"] == [[0.125, 0.25, 0.0625], [0.125, 0.25, 0.4375],
                                                   [0.5625, 0.3125, 0.25]]
    assert {"lever": fingerprint(lever), "warehouse": fingerprint(warehouse)} in E526D53
    assert "learners" not in (tmp_path / "a" / "config.yaml").read_text()


def test_validate_prints_learner_slots_that_load_back(tmp_path, capsys):
    from adhoc.config import load_config

    config = tmp_path / "slots.yaml"
    data = yaml.safe_load(WAREHOUSE.read_text())
    data["learners"] = [{"name": "a"}, {"seed": 9, "partners": "scripted:warehouse:ground"}]
    config.write_text(yaml.safe_dump(data))
    assert main(["validate", "--print", str(config)]) == 0
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(capsys.readouterr().out)
    loaded = load_config(resolved)
    assert loaded.to_dict() == load_config(config).to_dict()
    assert [(s.name, s.seed, s.partners) for s in loaded.learners] == [
        ("a", 0, None), ("learner-1", 9, ["scripted:warehouse:ground"])]
