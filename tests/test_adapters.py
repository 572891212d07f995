"""AdapterBank against peft: same logits, same gradients, base untouched, per-member optimizer state."""

import json

import pytest
import torch
from peft import PeftModel

from adhoc.errors import UserError
from adhoc.lm.adapters import AdapterBank, MemberAdam
from adhoc.lm.base import build_builtin

TARGETS = ["q_proj", "v_proj", "lm_head"]


def make_bank(n=3, b_std=0.2):
    model, tok = build_builtin()
    bank = AdapterBank(model, n, rank=4, alpha=8, target_modules=TARGETS, base_model_id="builtin:tiny")
    bank.init_members([11 * (i + 1) for i in range(n)], b_std=b_std)
    return model, tok, bank


def batch(tok, rows=2):
    texts = ["You are player 1 of 2. Choose an action.", "Lever game with 10 levers ok"][:rows]
    return tok(texts, return_tensors="pt", padding=True)


def peft_model(bank, member, tmp_path):
    bank.export_member(member, tmp_path / f"m{member}")
    base, _ = build_builtin()
    return PeftModel.from_pretrained(base, tmp_path / f"m{member}", is_trainable=True)


@pytest.mark.parametrize("order", ["blocked", "interleaved"])
def test_member_logits_equal_peft(tmp_path, order):
    model, tok, bank = make_bank()
    enc = batch(tok)
    ids = enc.input_ids.repeat(3, 1)  # rows: member-major (0,0,1,1,2,2)
    members = torch.arange(3).repeat_interleave(2) if order == "blocked" else torch.tensor([2, 0, 1, 1, 0, 2])
    with torch.no_grad(), bank.route(members):
        logits = model(input_ids=ids).logits
    for m in range(3):
        ref = peft_model(bank, m, tmp_path)
        with torch.no_grad():
            expected = ref(input_ids=enc.input_ids).logits
        rows = (members == m).nonzero()[:, 0]
        for k, r in enumerate(rows.tolist()):
            assert torch.allclose(logits[r], expected[r % 2], atol=1e-5), (order, m)
    # members really differ, so the routing is what makes them equal
    assert not torch.allclose(logits[0], logits[2], atol=1e-3)


def lm_loss(logits, ids):
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def test_member_gradients_equal_training_alone(tmp_path):
    model, tok, bank = make_bank()
    ids = batch(tok).input_ids
    members = torch.arange(3).repeat_interleave(2)
    with bank.route(members):
        logits = model(input_ids=ids.repeat(3, 1)).logits.view(3, 2, *ids.shape[1:], -1)
    sum(lm_loss(logits[m], ids) for m in range(3)).backward()
    for m in range(3):
        ref = peft_model(bank, m, tmp_path)
        lm_loss(ref(input_ids=ids).logits, ids).backward()
        grads = {n: p.grad for n, p in ref.named_parameters() if p.requires_grad}
        for name, layer in bank.layers.items():
            ga = grads[f"base_model.model.{name}.lora_A.default.weight"]
            gb = grads[f"base_model.model.{name}.lora_B.default.weight"]
            assert torch.allclose(layer.lora_A.grad[m], ga, atol=1e-6, rtol=1e-4), name
            assert torch.allclose(layer.lora_B.grad[m], gb, atol=1e-6, rtol=1e-4), name


def test_base_weights_never_change_and_absent_member_stays_put():
    model, tok, bank = make_bank()
    base_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    opt = MemberAdam(bank.member_parameters(), lr=0.05)
    ids = batch(tok).input_ids
    before = [p.detach().clone() for p in bank.member_parameters()]
    for step in range(3):
        # members 0 and 2 play; member 1 has no data — after step 0 it has Adam momentum from nothing
        with bank.route(torch.tensor([0, 0, 2, 2])):
            logits = model(input_ids=ids.repeat(2, 1)).logits
        opt.zero_grad()
        lm_loss(logits, ids.repeat(2, 1)).backward()
        active = torch.tensor([True, False, True])
        opt.step(active)
    for p, p0 in zip(bank.member_parameters(), before):
        assert torch.equal(p[1], p0[1])
        assert not torch.equal(p[0], p0[0])
    assert opt.steps.tolist() == [3.0, 0.0, 3.0]
    for n, p in model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, base_before[n]), n


def test_member_adam_matches_torch_adam_for_one_member():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(2, 5, 3))
    ref = torch.nn.Parameter(w[0].detach().clone())
    ours, theirs = MemberAdam([w], lr=0.1), torch.optim.Adam([ref], lr=0.1)
    for _ in range(4):
        g = torch.randn(5, 3)
        w.grad = torch.stack([g, torch.zeros(5, 3)])
        ref.grad = g.clone()
        ours.step(torch.tensor([True, True]))
        theirs.step()
    assert torch.allclose(w[0], ref, atol=1e-5)  # float32 rounding of 4 steps of size 0.1


@pytest.mark.parametrize("max_grad_norm, weight_decay, grad_scale", [(None, 0.0, 1.0), (1.0, 0.0, 1.0), (0.5, 0.1, 1.0),
                                                                    (1e-4, 0.0, 1e-3)])
def test_member_adam_is_torch_adam_per_member_with_partial_steps(max_grad_norm, weight_decay, grad_scale):
    """Members as separate tensors, each with its own torch.optim.Adam (+ clip_grad_norm_ over the member's
    tensors together) that steps only when the member is active: MemberAdam must match it step by step, and
    an inactive member must keep its weights, moments and step count exactly. ``grad_scale`` 1e-3: norms small
    enough that the 1e-6 in clipping's max_norm / (norm + 1e-6) shows."""
    torch.manual_seed(0)
    n, lr, betas, eps = 3, 0.05, (0.8, 0.95), 1e-6
    shapes = [(n, 4, 5), (n, 2)]
    stacked = [torch.nn.Parameter(torch.randn(*s)) for s in shapes]
    members = [[torch.nn.Parameter(w[i].detach().clone()) for w in stacked] for i in range(n)]
    ours = MemberAdam(stacked, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, max_grad_norm=max_grad_norm)
    theirs = [torch.optim.Adam(ps, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay) for ps in members]
    schedule = [[1, 1, 1], [1, 0, 1], [0, 1, 0], [0, 1, 0], [1, 1, 1], [0, 0, 1], [1, 1, 0]]
    clipped = 0
    for step, flags in enumerate(schedule):
        active = torch.tensor(flags, dtype=torch.bool)
        # gradient norms from ~0.3 to ~8: some members are clipped, some are not
        grads = [torch.randn(*s) * grad_scale * torch.tensor([0.05, 1.0, 3.0]).view(-1, *[1] * (len(s) - 1))
                 for s in shapes]
        for w, g in zip(stacked, grads):
            w.grad = g.clone()  # inactive members have gradients too: they must be ignored
        before = [(w.detach().clone(), m.clone(), v.clone()) for w, m, v in zip(stacked, ours.exp_avg, ours.exp_avg_sq)]
        steps_before = ours.steps.clone()
        ours.step(active)
        for i in range(n):
            if not flags[i]:
                continue
            for p, g in zip(members[i], grads):
                p.grad = g[i].clone()
            if max_grad_norm is not None:
                norm = torch.nn.utils.clip_grad_norm_(members[i], max_grad_norm)
                clipped += int(norm > max_grad_norm)
            theirs[i].step()
        for i in range(n):
            for k, (w, p) in enumerate(zip(stacked, members[i])):
                assert torch.allclose(w[i], p, atol=1e-6, rtol=1e-5), (step, i, k)
                if not flags[i]:  # untouched, bit for bit
                    assert torch.equal(w[i], before[k][0][i]) and torch.equal(ours.exp_avg[k][i], before[k][1][i])
                    assert torch.equal(ours.exp_avg_sq[k][i], before[k][2][i])
                elif theirs[i].state:
                    state = theirs[i].state[p]
                    assert torch.allclose(ours.exp_avg[k][i], state["exp_avg"], atol=1e-12, rtol=1e-5)
                    assert torch.allclose(ours.exp_avg_sq[k][i], state["exp_avg_sq"], atol=1e-16, rtol=1e-5)
                    assert float(ours.steps[i]) == float(state["step"])
        assert torch.equal(ours.steps, steps_before + active.float())
    assert ours.steps.tolist() == [4.0, 5.0, 4.0]
    assert max_grad_norm is None or clipped >= 5  # clipping really happened (and mattered)


def test_member_adam_defaults_are_torch_adams_and_gradless_tensors_are_skipped():
    torch.manual_seed(1)
    # a tensor without a gradient comes first: it stays put, and the one after it is still updated
    stacked = [torch.nn.Parameter(torch.randn(2, 3)), torch.nn.Parameter(torch.randn(2, 4))]
    frozen = stacked[0].detach().clone()
    member = torch.nn.Parameter(stacked[1][0].detach().clone())
    ours, theirs = MemberAdam(stacked), torch.optim.Adam([member])  # lr 1e-3, betas (0.9, 0.999), eps 1e-8
    for step in range(3):
        g = torch.randn(2, 4)
        stacked[1].grad, member.grad = g.clone(), g[0].clone()
        ours.step()
        theirs.step()
        assert torch.allclose(stacked[1][0], member, atol=1e-7), step
    assert torch.equal(stacked[0], frozen) and ours.steps.tolist() == [3.0, 3.0]


def test_export_import_roundtrip_and_refusals(tmp_path):
    _, _, bank = make_bank()
    bank.export_member(2, tmp_path / "a")
    cfg = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 4 and sorted(cfg["target_modules"]) == sorted(TARGETS)
    _, _, other = make_bank()
    other.import_member(0, tmp_path / "a")
    for (n, la), lb in zip(bank.layers.items(), other.layers.values()):
        assert torch.equal(la.lora_A[2], lb.lora_A[0]) and torch.equal(la.lora_B[2], lb.lora_B[0])
    # a bank of another rank refuses it with one clear message
    model, _ = build_builtin()
    wrong = AdapterBank(model, 1, rank=8, alpha=8, target_modules=TARGETS)
    with pytest.raises(UserError, match="rank/alpha"):
        wrong.import_member(0, tmp_path / "a")
    # truncated weights
    f = tmp_path / "a" / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(UserError, match="corrupt or truncated"):
        other.import_member(0, tmp_path / "a")


def test_unknown_target_module_is_a_user_error():
    model, _ = build_builtin()
    with pytest.raises(UserError, match="not found"):
        AdapterBank(model, 2, target_modules=["nope_proj"])


def test_bf16_base_runs_the_same_code_path():
    """The GPU setting (bf16 base, fp32 adapters and optimizer) on CPU: close to fp32, gradients flow."""
    model32, tok, bank32 = make_bank(n=2)
    model16, _ = build_builtin()
    model16 = model16.to(torch.bfloat16)
    bank16 = AdapterBank(model16, 2, rank=4, alpha=8, target_modules=TARGETS)
    with torch.no_grad():
        for a, b in zip(bank32.member_parameters(), bank16.member_parameters()):
            b.copy_(a)
    ids = batch(tok).input_ids.repeat(2, 1)
    members = torch.tensor([0, 0, 1, 1])
    with bank16.route(members):
        logits16 = model16(input_ids=ids).logits
    with torch.no_grad(), bank32.route(members):
        logits32 = model32(input_ids=ids).logits
    assert logits16.dtype == torch.bfloat16 and bank16.member_parameters()[0].dtype == torch.float32
    assert torch.allclose(logits16.float(), logits32, atol=0.05)
    lm_loss(logits16.float(), ids).backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and p.grad.abs().sum() > 0
               for p in bank16.member_parameters())
