"""The GPU path: the same computations on a CUDA device as on the CPU, and every shipped config end to end.

Skipped where no CUDA device is available (CI has none). On a GPU machine::

    python -m pytest -q tests/test_cuda.py

``ADHOC_TEST_DEVICE=cpu python -m pytest -q tests/test_cuda.py`` runs the same checks on the CPU (a dry run
of the tests themselves: the device-to-device comparisons then compare the CPU with itself).
"""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from adhoc.cli import main
from adhoc.games import make_game
from adhoc.lm.adapters import AdapterBank, MemberAdam
from adhoc.lm.base import build_builtin, load_base
from adhoc.lm.policy import Policy
from adhoc.rollout import rollout

DEVICE = os.environ.get("ADHOC_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="needs a CUDA device")
ROOT = Path(__file__).parent.parent
TARGETS = ["q_proj", "v_proj", "lm_head"]


def bank_on(device, n=3):
    model, tok = build_builtin()
    model = model.to(device)
    bank = AdapterBank(model, n, rank=4, alpha=8, target_modules=TARGETS)
    bank.init_members([5 * (i + 1) for i in range(n)], b_std=0.2)
    return model, tok, bank


@pytest.mark.parametrize("members", [[0, 0, 1, 1, 2, 2], [2, 2, 0, 0], [2, 0, 1, 1, 0, 2]],
                         ids=["all-groups", "some-groups", "gathered"])
def test_bank_forward_backward_and_adam_on_device_equal_cpu(members):
    """fp32: logits, member gradients and one MemberAdam step (some members inactive) as on the CPU;
    the routing tensor may come from the CPU (``route`` moves it)."""
    members = torch.tensor(members)
    results = {}
    for device in ("cpu", DEVICE):
        model, tok, bank = bank_on(device)
        ids = tok(["You are player 1 of 2. Choose an action.", "Lever game with 10 levers ok"] * 3,
                  return_tensors="pt", padding=True).input_ids[: len(members)].to(device)
        opt = MemberAdam(bank.member_parameters(), lr=0.01, max_grad_norm=1.0)
        with bank.route(members):
            logits = model(input_ids=ids).logits
        assert logits.device.type == torch.device(device).type
        torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).backward()
        grads = [p.grad.detach().cpu().clone() for p in bank.member_parameters()]
        active = torch.zeros(bank.n_members, dtype=torch.bool)  # on the CPU, as the recipes pass it
        active[members.unique()] = True
        opt.step(active)
        results[device] = (logits.detach().cpu(), grads, [p.detach().cpu().clone() for p in bank.member_parameters()])
    (l_cpu, g_cpu, p_cpu), (l_dev, g_dev, p_dev) = results["cpu"], results[DEVICE]
    assert torch.allclose(l_dev, l_cpu, atol=1e-4)
    for a, b in zip(g_dev, g_cpu):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-3)
    for a, b in zip(p_dev, p_cpu):
        assert torch.allclose(a, b, atol=1e-5)


def test_policy_scores_on_device_equal_cpu_and_bf16_is_close():
    names = ["001", "017", "3", "hello"]  # multi-token, not prefix-free: the cached second pass runs
    obs = ["You are player 1 of 2.", "A longer observation. You are player 2 of 2.", "You are player 1 of 2."]
    members = torch.tensor([2, 0, 1])
    scores = {}
    for device, dtype in (("cpu", "float32"), (DEVICE, "float32"), (DEVICE, "bfloat16")):
        base = load_base("builtin:tiny", device=device, dtype=dtype)
        bank = AdapterBank(base.model, 3, target_modules=TARGETS)
        bank.init_members([1, 2, 3], b_std=0.3)
        policy = Policy(base, bank)
        with torch.no_grad():
            scores[device, dtype] = policy.scores(members, obs, policy.actions(names)).float().cpu()
    ref = scores["cpu", "float32"]
    assert torch.allclose(scores[DEVICE, "float32"], ref, atol=1e-4)
    p16, p32 = (torch.softmax(s, -1) for s in (scores[DEVICE, "bfloat16"], ref))
    assert torch.allclose(p16, p32, atol=0.05)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_multistep_rollout_on_device_with_and_without_prefix_reuse(dtype):
    """Warehouse (multi-step, the key/value cache reused across steps): trajectories live on the device,
    gradients reach every member; in fp32 both encodings pick the same actions."""
    game = make_game("warehouse", episodes=2, moves=2)
    base = load_base("builtin:tiny", device=DEVICE, dtype=dtype)
    bank = AdapterBank(base.model, 3, 4, 8.0, TARGETS)
    bank.init_members([0, 1, 2], b_std=0.1)
    policy = Policy(base, bank)
    pairs = torch.tensor([[0, 0], [1, 2], [2, 1]])
    trajs = {}
    for reuse in (True, False):
        trajs[reuse] = rollout(game, policy, pairs, 4, np.random.default_rng(0), grad=True, prefix_reuse=reuse)
    traj = trajs[True]
    assert traj.logp.device.type == torch.device(DEVICE).type and traj.returns.device == traj.logp.device
    if dtype == "float32":
        assert torch.equal(trajs[True].actions, trajs[False].actions)
        assert torch.allclose(trajs[True].logp, trajs[False].logp, atol=1e-4)
    (traj.logp.sum(-1).sum(-1) * traj.returns).sum().backward()
    grads = [p.grad for p in bank.member_parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(float(sum(g[m].abs().sum() for g in grads)) > 0 for m in range(3))


SMALL = ["population.size=2", "train.iterations=2", "train.eval_every=2", "train.episodes_per_pair=4",
         "train.eval_episodes=8"]
POPULATION_CONFIGS = sorted(p.name for p in (ROOT / "configs").glob("*.yaml") if "learner" not in p.name)


@pytest.mark.parametrize("config", POPULATION_CONFIGS)
def test_every_population_config_trains_on_device_in_bf16(config, tmp_path):
    """Each method and game, two iterations on the device in bf16; the saved members load on the CPU."""
    out = tmp_path / "pop"
    argv = ["train-population", str(ROOT / "configs" / config), *SMALL, f"model.device={DEVICE}",
            "model.dtype=bfloat16", "--out", str(out), "--quiet", "--crossplay-episodes", "4"]
    assert main(argv) == 0
    assert main(["populations", "check", str(out)]) == 0


@pytest.mark.parametrize("config", ["lever-learner.yaml", "warehouse-learner.yaml"])
def test_learner_trains_on_device_in_bf16(config, tmp_path):
    argv = ["train-learner", str(ROOT / "configs" / config), "train.epochs=2", "train.iterations_per_epoch=2",
            "train.episodes=8", "train.eval_episodes=8", f"model.device={DEVICE}", "model.dtype=bfloat16",
            "--out", str(tmp_path / "learner"), "--quiet"]
    if config == "lever-learner.yaml":  # its partner list is empty: the shipped population (loaded onto the device)
        argv.insert(2, f"partners={ROOT / 'populations' / 'lever-selfplay'}")
    assert main(argv) == 0
