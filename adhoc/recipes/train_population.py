"""Train a population of LoRA members on one shared base LM with a diversity method.

The loop, written out once for every method (the method only chooses the pairs and the loss):

1. Build the game, load the frozen base, stack N members in an AdapterBank (member i seeded by
   SeedSequence(population.seed, i)), one MemberAdam over all of them.
2. Each iteration: the method picks pairs [P, 2] → ``rollout`` plays E episodes per pair for all pairs in
   batched passes → the method turns the trajectories into one loss per member → one backward over the
   sum (members' adapters are disjoint, so each gets exactly its own gradient) → MemberAdam moves only the
   members that played.
3. Every ``train.eval_every`` iterations: each member's self-play return from ``train.eval_episodes``
   fresh episodes; logged; optional early stop at ``train.target_return``.
   Every ``train.checkpoint_every`` iterations, and on SIGTERM / Ctrl-C (then the run stops), a checkpoint
   (``adhoc.checkpoint``) goes into the staging folder; ``resume`` continues from it, bit for bit on CPU.
4. The method selects the adapters to save (all of them; or, for a method that trains extra adapters —
   Other-Play restarts, TrajeDi's best response — one per member), then save atomically: member peft folders, ``population.yaml``, ``config.yaml``, TensorBoard logs.

TensorBoard keys: ``train/loss``, ``train/return`` (mean return of the iteration's episodes),
``train/entropy``, ``eval/self_play_return_mean``, ``eval/self_play_return_min``,
``eval/self_play_return/<member>``, ``time/iteration_s``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from adhoc import checkpoint
from adhoc.config import RunConfig, entropy_coef_at
from adhoc.errors import Interrupted, UserError
from adhoc.games import build_game
from adhoc.lm.adapters import AdapterBank, MemberAdam
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.methods import METHODS
from adhoc.methods.common import members_with_data, self_play_returns
from adhoc.paths import check_out, unique_default
from adhoc.population import CHECKPOINT, Member, Population, PopulationWriter, atomic_write
from adhoc.rollout import rollout


def member_seeds(seed: int, n: int) -> list[int]:
    return [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in range(n)]


def default_out(config: RunConfig) -> Path:
    return unique_default(config.game.name, config.method.name, f"seed{config.population.seed}")


def check_finite(losses: torch.Tensor, optimizer: MemberAdam, iteration: int, names: list[str]) -> None:
    """Stop with one line when a loss or gradient is NaN/inf, before the optimizer spreads it to the adapters."""
    bad = ~torch.isfinite(losses.detach()) | ~torch.isfinite(optimizer.grad_norms())
    if bool(bad.any()):
        who = ", ".join(names[i] if i < len(names) else f"slot {i}" for i in bad.nonzero()[:, 0].tolist()[:4])
        raise UserError(f"training diverged at iteration {iteration}: NaN or inf loss or gradient for {who} "
                        f"(try a smaller train.lr or train.max_grad_norm); nothing was saved as a population")


def train_population(config: RunConfig, out: str | Path | None = None, overwrite: bool = False,
                     progress: bool = True, resume: bool = False) -> Population:
    """Train, checkpointing every ``train.checkpoint_every`` iterations and on SIGTERM / Ctrl-C; with
    ``resume`` continue the interrupted run of the same ``out`` from its checkpoint (bit for bit on CPU)."""
    start = time.perf_counter()
    if resume and out is None:
        raise UserError("--resume needs the --out of the run to continue")
    out = Path(out) if out is not None else default_out(config)
    game = build_game(config.game)
    method = METHODS[config.method.name].build(config.method, game, config.population.size)  # refuses a game it can't serve
    if not resume:
        check_out(out, "population", overwrite)  # before the base is loaded
    n = method.n_members  # adapters trained: population.size, or more when a method trains restarts
    names = [f"{config.population.member_prefix}-{i:02d}" for i in range(config.population.size)]
    names += [method.slot_name(i, names) for i in range(len(names), n)]
    seeds = member_seeds(config.population.seed, n)

    # 1. base, bank, policy, optimizer (the game and method are built above, before anything is written)
    torch.manual_seed(config.population.seed)
    base = load_base(config.model.base, config.model.device, config.model.dtype, config.model.cpu_threads)
    bank = AdapterBank(base.model, n, config.model.lora_rank, config.model.lora_alpha,
                       config.model.target_modules, base_model_id=base.model_id)
    bank.init_members(seeds, b_std=config.model.lora_init_std)
    policy = Policy(base, bank)
    method.policy = policy
    optimizer = MemberAdam(bank.member_parameters(), lr=config.train.lr, max_grad_norm=config.train.max_grad_norm)
    rng = np.random.default_rng(config.population.seed)
    writer = PopulationWriter(out, overwrite=overwrite, resume=resume)  # locked staging folder
    try:
        return _train(config, writer, game, method, base, bank, policy, optimizer, rng, names, seeds, start,
                      progress, resume)
    except BaseException as exc:
        writer.abandon(keep=(writer.staging / CHECKPOINT).exists() and not isinstance(exc, UserError))
        raise


def _train(config, writer, game, method, base, bank, policy, optimizer, rng, names, seeds, start, progress,
           resume) -> Population:
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    n = method.n_members
    checkpoint_file = writer.staging / CHECKPOINT
    config_yaml = config.to_yaml()
    if resume and not checkpoint_file.exists():  # killed before its first checkpoint: start over
        writer.clear()
        resume = False
    iteration, sp, earlier_startup = 0, None, 0.0
    if resume:
        tensors, state = checkpoint.load(checkpoint_file)
        checkpoint.check_same_config(state, config_yaml, checkpoint_file)
        checkpoint.restore_run_tensors(tensors, bank, optimizer)
        method.load_state_tensors(tensors)
        checkpoint.restore_rng(rng, state["rng"])
        iteration, sp = state["iteration"], tensors.get("self_play")
        start -= state["train_time_s"]
        earlier_startup = state.get("startup_time_s", 0.0)  # the interrupted parts' start-ups
        called = start + state["train_time_s"]
    else:
        called = start
        atomic_write(writer.staging / "config.yaml", config_yaml)
    # purge_step: events the interrupted run logged after its checkpoint are dropped, so curves do not repeat
    tb = SummaryWriter(str(writer.staging / "tb"), purge_step=iteration + 1 if resume else None)
    # start-up: imports, game, base model, bank and optimizer, up to the first iteration, over every resumed part
    startup = earlier_startup + time.perf_counter() - called
    if not resume:
        tb.add_text("config", "```\n" + config_yaml + "\n```")
        if method.evaluate_at_start:
            method.on_evaluation(0, self_play_returns(game, policy, n, config.train.eval_episodes, rng), bank)

    def save_checkpoint() -> None:
        tensors = checkpoint.run_tensors(bank, optimizer) | method.state_tensors()
        if sp is not None:
            tensors["self_play"] = sp
        checkpoint.save(checkpoint_file, tensors, {"iteration": iteration, "rng": checkpoint.rng_state(rng),
                                                   "config": config_yaml,
                                                   "train_time_s": time.perf_counter() - start,
                                                   "startup_time_s": startup})

    bar = tqdm(range(iteration + 1, config.train.iterations + 1), desc=f"{config.method.name} on {config.game.name}",
               disable=not progress, unit="it", initial=iteration, total=config.train.iterations)
    with checkpoint.StopSignals() as stop:
        for iteration in bar:
            t0 = time.perf_counter()
            # 2. play, score, update
            pairs = method.pairs(iteration, rng)
            traj = rollout(game, policy, pairs, config.train.episodes_per_pair, rng, mode=config.train.rollout,
                           **method.rollout_options(pairs, config.train.episodes_per_pair, rng))
            losses, metrics = method.loss(traj, entropy_coef_at(config.train, iteration))
            optimizer.zero_grad()
            losses.sum().backward()
            check_finite(losses, optimizer, iteration, names)
            optimizer.step(members_with_data(pairs, n))
            tb.add_scalar("train/loss", float(losses.detach().mean()), iteration)
            tb.add_scalar("train/return", float(traj.returns.mean()), iteration)
            for key, value in metrics.items():
                tb.add_scalar(key, value, iteration)
            tb.add_scalar("time/iteration_s", time.perf_counter() - t0, iteration)

            # 3. evaluate
            done = False
            if iteration % config.train.eval_every == 0 or iteration == config.train.iterations:
                sp = self_play_returns(game, policy, n, config.train.eval_episodes, rng)
                tb.add_scalar("eval/self_play_return_mean", float(sp.mean()), iteration)
                tb.add_scalar("eval/self_play_return_min", float(sp.min()), iteration)
                for name, value in zip(names, sp.tolist()):
                    tb.add_scalar(f"eval/self_play_return/{name}", value, iteration)
                method.on_evaluation(iteration, sp, bank)
                bar.set_postfix(sp_mean=f"{float(sp.mean()):.3f}", sp_min=f"{float(sp.min()):.3f}")
                done = config.train.target_return is not None and float(sp.min()) >= config.train.target_return
            if done or iteration == config.train.iterations:
                break
            if checkpoint.due(iteration, config.train.checkpoint_every, stop):
                save_checkpoint()
                if stop.requested is not None:
                    tb.close()
                    raise Interrupted(writer.out, iteration, stop.requested)
    tb.close()  # the last iteration (or the early stop) has just evaluated: ``sp`` is current

    # 4. save atomically (the members the method selects: all of them, or the best restart of each)
    chosen, objective = method.select(config.train.eval_episodes, rng)
    members = []
    for k, i in enumerate(chosen):
        bank.export_member(i, writer.staging / "members" / names[k])
        extra = {} if objective is None else {"restart": i // len(chosen), "objective_return": round(float(objective[i]), 4)}
        members.append(Member(names[k], seeds[i], round(float(sp[i]), 4), extra))
    sp = sp[chosen]
    for i, weights, label, ret in method.extra_members(sp):
        name = f"{names[i]}-{label}"
        bank.export_snapshot(i, weights, writer.staging / "members" / name)
        members.append(Member(name, seeds[i], round(ret, 4), {"checkpoint_of": names[i], "checkpoint": label}))
    elapsed = time.perf_counter() - start
    writer.write_manifest({
        "game": game.params() | {"name": config.game.name},
        "method": config.to_dict()["method"],
        "base_model": {"id": base.model_id, "fingerprint": base.fingerprint},
        "adapter": {"rank": bank.rank, "alpha": bank.alpha, "target_modules": bank.target_modules},
        "members": [m.to_dict() for m in members],
        "training": {"iterations": iteration, "episodes_per_pair": config.train.episodes_per_pair,
                     "self_play_return_mean": round(float(sp.mean()), 4),
                     "self_play_return_min": round(float(sp.min()), 4)},
        "wall_time_s": round(elapsed, 1),  # start-up + training, over every resumed part
        "startup_s": round(startup, 1),
        "train_s": round(elapsed - startup, 1),
    })
    return Population.load(writer.commit())
