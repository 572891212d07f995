"""Alignment games: an AI trained against scripted teachers (human proxies), evaluated with held-out teachers;
for the warehouse also the per-episode return curve inside an interaction (in-context grounding).

An AI is one LoRA member on the built-in base, trained in the AI seat (seat 0) by REINFORCE with a
leave-one-out baseline per teacher, against scripted teachers from ``scripted:<game>``, every teacher of
its set playing ``--episodes-per-teacher`` interactions per iteration. Several AIs train in one batched
pass, one per teacher set (``--train`` may be given several times). Saved populations can be evaluated in
the AI seat too (``--population``: every member with each scripted teacher).

Report: for every AI and every teacher, the mean interaction return; for the warehouse the mean payoff of
episode 1..K of the interaction (in-context grounding shows as later episodes beating the first) and each
member's label reading.

    python scripts/scripted_learner.py --game warehouse --param moves=3 --param episodes=2 \\
        --train ground,ground-swap,ground-mirror --heldout ground-rotate,direct-rotate \\
        --iterations 1200 --lr 0.01 --episodes-per-teacher 128          # in-context identification, ~5 min
    python scripts/scripted_learner.py --game warehouse --param moves=3 --param episodes=2 \\
        --train ground-0123,ground-1032,ground-0132,ground-3210,ground-2013,ground-1320,ground-0213,ground-0231,\\
ground-1230,ground-2103,ground-3021,ground-3102 --train ground-0123 --heldout ground-2301,ground-3120,ground-1203,\\
ground-0312 --iterations 1500 --lr 0.01 --episodes-per-teacher 24   # 12 conventions vs one, held out, ~10 min
    python scripts/scripted_learner.py --game warehouse --param moves=1 --param episodes=1 \\
        --population POP_SELFPLAY --population POP_OTHERPLAY --train direct,direct-swap,direct-mirror \\
        --train direct --heldout direct-rotate,ground-rotate --iterations 150 --episodes-per-teacher 128 \\
        --eval-episodes 1024                                            # held-out teachers
    python scripts/scripted_learner.py --game preference --train quality,deficiency,noisy --train quality \\
        --train deficiency --iterations 600 --entropy 0.05                     # ~3 min
    python scripts/scripted_learner.py --game corrective --param digits=1 --param credit=digits --train digit \\
        --train point --train wrong --train silent --iterations 1200 --episodes-per-teacher 128  # ~2.5 min
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from adhoc.games import make_game
from adhoc.lm.adapters import AdapterBank, MemberAdam
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.methods.common import entropy_per_member, leave_one_out_advantage, policy_gradient_loss
from adhoc.rollout import rollout
from adhoc.scripted import load_scripted_population, scripted_ids


def per_episode(game, rewards: torch.Tensor) -> torch.Tensor:
    """Payoff of each episode of an interaction (``game.episode_payoffs``): rewards [..., T] → [..., K] (the
    whole return as one entry for games without episodes)."""
    payoffs = getattr(game, "episode_payoffs", None)
    return rewards.sum(-1, keepdim=True) if payoffs is None else payoffs(rewards)


@torch.no_grad()
def evaluate(game, policy, robots: list[int], teacher_ids: dict[str, int], episodes: int, seed: int) -> dict:
    """{robot index: {teacher: {"return": mean, "episodes": [mean payoff of episode 1..K]}}}."""
    names = list(teacher_ids)
    pairs = torch.tensor([[r, teacher_ids[t]] for r in robots for t in names])
    traj = rollout(game, policy, pairs, episodes, np.random.default_rng(seed), grad=False, keep_distributions=False)
    curve = per_episode(game, traj.rewards.cpu()).mean(1)  # [pairs, K]
    ret = traj.returns.cpu().mean(1)
    out, i = {}, 0
    for r in robots:
        out[r] = {}
        for t in names:
            out[r][t] = {"return": round(float(ret[i]), 4), "episodes": [round(float(v), 4) for v in curve[i]]}
            i += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="append", default=[], help="comma-separated teacher names (repeatable)")
    parser.add_argument("--heldout", default="", help="comma-separated teachers only evaluated with")
    parser.add_argument("--population", action="append", default=[], help="saved population: members as robots")
    parser.add_argument("--game", default="warehouse", help="warehouse | preference | corrective")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="game parameter (YAML value)")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--episodes-per-teacher", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--entropy", type=float, default=0.01)
    parser.add_argument("--eval-episodes", type=int, default=512)
    parser.add_argument("--target-modules", default="q_proj,v_proj,lm_head")
    parser.add_argument("--base", default="builtin:tiny", help="base model (builtin:tiny, builtin:small, an HF id/path)")
    parser.add_argument("--lora-rank", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    import yaml

    game = make_game(args.game, **{k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in args.param)})
    teacher_sets = [[t for t in spec.split(",") if t] for spec in args.train]
    heldout = [t for t in args.heldout.split(",") if t]
    every = list(dict.fromkeys([t for s in teacher_sets for t in s] + heldout))
    base = load_base(args.base, device="cpu", dtype="float32")
    from adhoc.population import Population

    pops = [Population.load(p) for p in args.population]
    n_pop = sum(len(p.members) for p in pops)
    n = len(teacher_sets) + n_pop
    targets = args.target_modules.split(",")
    rank, alpha = args.lora_rank, 2.0 * args.lora_rank
    if pops:
        adapter = pops[0].manifest["adapter"]
        targets, rank, alpha = adapter["target_modules"], adapter["rank"], adapter["alpha"]
    bank = AdapterBank(base.model, max(n, 1), rank, alpha, targets, base_model_id=base.model_id)
    bank.init_members([args.seed + i for i in range(max(n, 1))], b_std=0.1)
    slot = len(teacher_sets)
    for pop in pops:
        pop.load_into(bank, list(range(slot, slot + len(pop.members))))
        slot += len(pop.members)
    policy = Policy(base, bank)
    spec = f"scripted:{game.name}:" + ",".join(every)
    ids = dict(zip(every, scripted_ids(policy, load_scripted_population(spec, game)).tolist()))
    rng = np.random.default_rng(args.seed)

    # train one robot per teacher set, all in one batched pass
    if teacher_sets:
        optimizer = MemberAdam(bank.member_parameters(), lr=args.lr, max_grad_norm=1.0)
        pairs = torch.tensor([[r, ids[t]] for r, s in enumerate(teacher_sets) for t in s])
        active = torch.zeros(bank.n_members, dtype=torch.bool)
        active[: len(teacher_sets)] = True
        start = time.perf_counter()
        for it in range(1, args.iterations + 1):
            traj = rollout(game, policy, pairs, args.episodes_per_teacher, rng, keep_distributions=False)
            advantages = leave_one_out_advantage(traj.returns)
            total = bank.n_members + len(policy.scripted)
            loss = policy_gradient_loss(traj.logp, advantages, traj.alive, traj.pairs, total) \
                - args.entropy * entropy_per_member(traj.entropy, traj.alive, traj.pairs, total)
            optimizer.zero_grad()
            loss[: bank.n_members].sum().backward()
            optimizer.step(active)
            if it % 25 == 0 or it == args.iterations:
                print(f"iteration {it}: train return {float(traj.returns.mean()):.3f} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)

    robots = list(range(n))
    labels = [f"learner[{'+'.join(s)}]" for s in teacher_sets] + [
        f"{p.path.name}/{m}" for p in pops for m in p.names]
    results = evaluate(game, policy, robots, ids, args.eval_episodes, args.seed + 1)
    table = {labels[r]: v for r, v in results.items()}
    print(f"\nAI (seat 0) x scripted teacher (seat 1): mean interaction return; per-episode payoff")
    for r, (label, row) in enumerate(table.items()):
        print(label)
        own = teacher_sets[r] if r < len(teacher_sets) else []
        for t, v in row.items():
            tag = "held-out" if t in heldout else "train" if t in own else ""
            print(f"  {t:<14} {tag:<8} {v['return']:.3f}   episodes {' '.join(f'{x:.3f}' for x in v['episodes'])}")
        if heldout:
            h = [row[t]["return"] for t in heldout]
            print(f"  {'held-out mean':<23} {np.mean(h):.3f}")
    conventions = {}
    for i, label in enumerate(labels if game.name == "warehouse" else []):  # each robot's reading of each label, and its teacher side if trained in both
        robot_obs = [f"robot . episode at 1 1 : {w}" for w in game.labels]
        probs = torch.softmax(policy.scores(torch.full((len(robot_obs),), i), robot_obs, policy.actions(game.action_names(0))), -1)
        reading = {w: game.action_names(0)[int(p.argmax())] for w, p in zip(game.labels, probs)}
        probes = game.convention_probes()
        probs = torch.softmax(policy.scores(torch.full((len(probes),), i), list(probes.values()),
                                            policy.actions(game.action_names(1))), -1)
        saying = {d: game.labels[int(p.argmax())] for d, p in zip(probes, probs)}
        conventions[label] = {"robot_reads": reading, "teacher_says": saying}
        print(f"{label}: robot reads {reading}; as teacher says {saying}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "heldout": heldout, "results": table, "conventions": conventions}, f, indent=1)


if __name__ == "__main__":
    main()
