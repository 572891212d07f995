"""The training engine: one run (game, base, bank, policy, optimizer, generator), its loop, checkpoints and
resume, stopping on signals, and the export of a population. ``adhoc train-population`` (in process) and its
data-parallel backend (``adhoc.distributed.train``, on Ray Train workers) run the same loop; the robust learner
(``adhoc.recipes.train_learner``) runs PSRO's outer loop with the same checkpoint, resume, TensorBoard and
stop machinery.

The loop, written out once for every method (the method only chooses the pairs and the loss):

1. ``build_run``: build the game, load the frozen base, stack N members in an AdapterBank (member i seeded by
   SeedSequence(population.seed, i)), one MemberAdam over all of them.
2. Each iteration (``train_loop``): the method picks pairs [P, 2] → ``rollout`` plays E episodes per pair for
   all pairs in batched passes → the method turns the trajectories into one loss per member → one backward
   over the sum (members' adapters are disjoint, so each gets exactly its own gradient) → MemberAdam moves
   only the members that played. With ``train.algorithm: ppo`` (``ppo_step``) the rollout carries no gradient
   and the method's pairs train by PPO instead: value heads in the bank, GAE, several epochs of minibatch
   steps over the rollout (``adhoc.methods.ppo``).
3. Every ``train.eval_every`` iterations: each member's self-play return from ``train.eval_episodes``
   fresh episodes; logged; optional early stop at ``train.target_return``.
   Every ``train.checkpoint_every`` iterations, and on SIGTERM / Ctrl-C (then the run stops), a checkpoint
   (``adhoc.checkpoint``) goes into the staging folder; a resumed run continues from it, bit for bit on CPU
   (``train_in_process``).
4. ``export``: the method selects the adapters to save (all of them; or, for a method that trains extra
   adapters — Other-Play restarts, TrajeDi's best response — one per member), then save atomically: member
   peft folders, ``population.yaml``, ``config.yaml``, TensorBoard logs.

TensorBoard keys: ``train/loss``, ``train/return`` (mean return of the iteration's episodes),
``train/entropy`` (PPO: ``train/value_loss``, ``train/clip_fraction`` too), ``eval/self_play_return_mean``,
``eval/self_play_return_min``, ``zz_members/self_play_return/<member>`` (``zz_``: TensorBoard sorts groups by
name, so the per-member cards come after the ``train/`` curves), ``time/iteration_s``. TensorBoard names a run
by its folder relative to ``--logdir``: ``tensorboard --logdir runs`` shows this run as ``<out name>/tb``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adhoc import checkpoint
from adhoc.config import RunConfig, entropy_coef_at
from adhoc.diagnostics import chance_return, member_warnings
from adhoc.errors import Interrupted, UserError
from adhoc.games import build_game
from adhoc.games.core import payoff_kind
from adhoc.lm.adapters import AdapterBank, MemberAdam
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.methods import METHODS
from adhoc.methods.common import played_steps
from adhoc.paths import atomic_write
from adhoc.population import CHECKPOINT, Member, Population
from adhoc.reductions import members_with_data
from adhoc.rollout import expected_returns, rollout


def member_seeds(seed: int, n: int) -> list[int]:
    return [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in range(n)]


def check_finite(losses: torch.Tensor, optimizer: MemberAdam, iteration: int, names: list[str]) -> None:
    """Stop with one line when a loss or gradient is NaN/inf, before the optimizer spreads it to the adapters."""
    bad = ~torch.isfinite(losses.detach()) | ~torch.isfinite(optimizer.grad_norms())
    if bool(bad.any()):
        who = ", ".join(names[i] if i < len(names) else f"slot {i}" for i in bad.nonzero()[:, 0].tolist()[:4])
        raise UserError(f"training diverged at iteration {iteration}: NaN or inf loss or gradient for {who} "
                        f"(try a smaller train.lr or train.max_grad_norm); nothing was saved as a population")


def resume_point(writer, resume: bool) -> tuple[dict, dict] | None:
    """The checkpoint (tensors, state) to continue from with ``resume``, else None. A run killed before its
    first checkpoint has none: its staging folder is cleared and it starts over."""
    path = writer.staging / CHECKPOINT
    if not resume:
        return None
    if not path.exists():
        writer.clear()
        return None
    return checkpoint.load(path)


def tensorboard(folder: Path, config_yaml: str, resumed_at: int | None):
    """The run's TensorBoard writer. A resumed run (``resumed_at``: its checkpoint's iteration) drops the events
    the interrupted run logged after that checkpoint (``purge_step``), so curves do not repeat; a new run
    records its config as text."""
    from torch.utils.tensorboard import SummaryWriter

    tb = SummaryWriter(str(folder), purge_step=None if resumed_at is None else resumed_at + 1)
    if resumed_at is None:
        tb.add_text("config", "```\n" + config_yaml + "\n```")
    return tb


@dataclass
class Run:
    """Everything one training process holds: built the same way in this process and on every data-parallel
    worker (``adhoc.distributed.train``), so both backends run this module's one loop."""

    config: RunConfig
    game: Any
    method: Any
    base: Any
    bank: AdapterBank
    policy: Policy
    optimizer: MemberAdam
    rng: np.random.Generator
    names: list[str]
    seeds: list[int]

    def checkpoint(self, iteration: int, sp: torch.Tensor | None, state: dict) -> tuple[dict, dict]:
        """(tensors, state) of a checkpoint after ``iteration``; ``state`` adds the caller's records."""
        tensors = checkpoint.run_tensors(self.bank, self.optimizer) | self.method.state_tensors()
        if sp is not None:
            tensors["self_play"] = sp
        return tensors, {"iteration": iteration, "rng": checkpoint.rng_state(self.rng),
                         "config": self.config.to_yaml(), **state}

    def restore(self, tensors: dict, state: dict, path: Path) -> tuple[int, torch.Tensor | None]:
        """Load a checkpoint made by ``checkpoint`` (same config): (its iteration, its self-play returns)."""
        checkpoint.check_same_config(state, self.config.to_yaml(), path)
        checkpoint.restore_run_tensors(tensors, self.bank, self.optimizer)
        self.method.load_state_tensors(tensors)
        checkpoint.restore_rng(self.rng, state["rng"])
        return state["iteration"], tensors.get("self_play")


def build_game_and_method(config: RunConfig) -> tuple[Any, Any]:
    """The run's game and method (the method refuses, in one line, a game it can't serve)."""
    game = build_game(config.game)
    return game, METHODS[config.method.name].build(config.method, game, config.population.size)


def build_run(config: RunConfig, game_and_method: tuple[Any, Any] | None = None) -> Run:
    """The game, method (``game_and_method`` if already built), base model, bank (member i seeded by
    SeedSequence(population.seed, i)), policy, optimizer and generator of a run, before its first iteration."""
    game, method = game_and_method or build_game_and_method(config)
    n = method.n_members  # adapters trained: population.size, or more when a method trains restarts
    names = [f"{config.population.member_prefix}-{i:02d}" for i in range(config.population.size)]
    names += [method.slot_name(i, names) for i in range(len(names), n)]
    seeds = member_seeds(config.population.seed, n)
    torch.manual_seed(config.population.seed)
    base = load_base(config.model.base, config.model.device, config.model.dtype, config.model.cpu_threads)
    bank = AdapterBank(base.model, n, config.model.lora_rank, config.model.lora_alpha,
                       config.model.target_modules, base_model_id=base.model_id)
    bank.init_members(seeds, b_std=config.model.lora_init_std)
    if config.train.algorithm == "ppo":
        bank.add_value_heads(base.model.config.hidden_size)
    policy = Policy(base, bank)
    method.policy = policy
    if hasattr(method, "attach"):  # a method that needs the run's settings (psro: episodes, exploitability)
        method.attach(config)
    optimizer = MemberAdam(bank.member_parameters(), lr=config.train.lr, max_grad_norm=config.train.max_grad_norm)
    return Run(config, game, method, base, bank, policy, optimizer, np.random.default_rng(config.population.seed),
               names, seeds)


class InProcess:
    """The loop's view of its workers when it runs alone: it plays every pair, and sums are the values."""

    shard = None

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """Σ over workers of ``value`` (here, the value)."""
        return value

    def sum_step(self, params: list[torch.Tensor], values: list[torch.Tensor]) -> list[torch.Tensor]:
        """Σ over workers of the parameters' gradients (in place) and of ``values`` (returned), in one exchange
        (here, nothing to add)."""
        return values


def train_in_process(run: Run, writer, start: float, progress: bool, resume: bool) -> Population:
    """Steps 2-4 in this process: from the checkpoint in ``writer``'s staging folder with ``resume`` (bit for
    bit on CPU), checkpointing every ``train.checkpoint_every`` iterations and on SIGTERM / Ctrl-C (then
    ``Interrupted``); then ``export``. ``start``: when the command started (``perf_counter``)."""
    config = run.config
    checkpoint_file = writer.staging / CHECKPOINT
    iteration, sp, earlier_startup, called = 0, None, 0.0, start
    point = resume_point(writer, resume)
    if point is not None:
        tensors, state = point
        iteration, sp = run.restore(tensors, state, checkpoint_file)
        start -= state["train_time_s"]
        earlier_startup = state.get("startup_time_s", 0.0)  # the interrupted parts' start-ups
    else:
        atomic_write(writer.staging / "config.yaml", config.to_yaml())
    tb = tensorboard(writer.staging / "tb", config.to_yaml(), None if point is None else iteration)
    # start-up: imports, game, base model, bank and optimizer, up to the first iteration, over every resumed part
    startup = earlier_startup + time.perf_counter() - called

    def save_checkpoint(iteration: int, sp: torch.Tensor | None) -> None:
        checkpoint.save(checkpoint_file, *run.checkpoint(iteration, sp, {
            "train_time_s": time.perf_counter() - start, "startup_time_s": startup}))

    try:
        with checkpoint.StopSignals() as stop:
            iteration, sp = train_loop(run, InProcess(), iteration, sp, tb.add_scalar, save_checkpoint, stop,
                                       progress, writer.out)
    finally:
        tb.close()
    return export(run, writer, iteration, sp, time.perf_counter() - start, startup)


def train_loop(run: Run, workers, iteration: int, sp: torch.Tensor | None, log, save_checkpoint, stop,
               progress: bool, out: Path | None = None) -> tuple[int, torch.Tensor]:
    """Iterations ``iteration + 1`` to ``train.iterations`` (or the early stop): (the last iteration, the
    members' self-play returns [n_members] measured at it).

    ``workers``: ``InProcess``, or a data-parallel worker's view (``adhoc.distributed.train``): every worker
    runs this loop with the same generator, so all draw the same pairs; each plays its block of them
    (``rollout(shard=...)``); the losses read every worker's played steps per member (their denominators) and
    returns (LIPO's cross-play matrix) from one exchange, and the gradients are summed over workers before the
    optimizer step, which every worker then takes identically. ``log(key, value, iteration)``;
    ``save_checkpoint(iteration, sp)`` after every ``train.checkpoint_every`` iterations and on a stop request
    (``stop.requested``, then ``Interrupted``, which names ``out`` for the resume)."""
    from tqdm import tqdm

    config, method, bank, optimizer, rng = run.config, run.method, run.bank, run.optimizer, run.rng
    n = method.n_members

    def evaluate(iteration: int) -> torch.Tensor:
        members = torch.arange(n)
        sp = workers.sum(expected_returns(run.game, run.policy, torch.stack([members, members], 1),
                                          config.train.eval_episodes, rng, shard=workers.shard).cpu())
        method.on_evaluation(iteration, sp, bank)
        return sp

    if iteration == 0 and method.evaluate_at_start:
        evaluate(0)
    # a bar counted by hand, after each iteration's work: a tqdm-wrapped range left by ``break`` stops one short
    bar = tqdm(desc=f"{config.method.name} on {config.game.name}", disable=not progress, unit="it",
               initial=iteration, total=config.train.iterations)
    try:
        iteration, sp = _iterations(run, workers, iteration, sp, log, save_checkpoint, stop, out, bar, evaluate)
    finally:
        bar.close()
    return iteration, sp


def _iterations(run: Run, workers, iteration: int, sp: torch.Tensor | None, log, save_checkpoint, stop,
                out: Path | None, bar, evaluate) -> tuple[int, torch.Tensor]:
    """``train_loop``'s iterations, counted on ``bar``; an early stop at ``train.target_return`` ends the bar at
    100% of the iterations run."""
    config, method, rng = run.config, run.method, run.rng
    for iteration in range(iteration + 1, config.train.iterations + 1):
        t0 = time.perf_counter()
        # 2. play, score, update
        pairs = method.pairs(iteration, rng)
        use_ppo = config.train.algorithm == "ppo"  # PPO re-scores the rollout itself: it needs no gradient
        traj = rollout(run.game, run.policy, pairs, config.train.episodes_per_pair, rng, mode=config.train.rollout,
                       shard=workers.shard, grad=not use_ppo,
                       **method.rollout_options(pairs, config.train.episodes_per_pair, rng))
        if use_ppo:
            losses, metrics = ppo_step(run, workers, traj, pairs, iteration)
            log("train/loss", float(losses.mean()), iteration)
            log("train/return", float(traj.returns.mean()), iteration)
            for key, value in metrics.items():
                log(key, value, iteration)
        else:
            _reinforce_step(run, workers, traj, pairs, iteration, log)
        log("time/iteration_s", time.perf_counter() - t0, iteration)

        # 3. evaluate
        done = False
        if iteration % config.train.eval_every == 0 or iteration == config.train.iterations:
            sp = evaluate(iteration)
            log("eval/self_play_return_mean", float(sp.mean()), iteration)
            log("eval/self_play_return_min", float(sp.min()), iteration)
            for name, value in zip(run.names, sp.tolist()):
                log(f"zz_members/self_play_return/{name}", value, iteration)
            bar.set_postfix(sp_mean=f"{float(sp.mean()):.3f}", sp_min=f"{float(sp.min()):.3f}")
            done = config.train.target_return is not None and float(sp.min()) >= config.train.target_return
        bar.update(1)
        if done or iteration == config.train.iterations:
            if done and iteration < config.train.iterations:  # stopped early, at the target: the bar ends full
                bar.total = iteration
                bar.set_description_str(f"{config.method.name} on {config.game.name} "
                                        f"(target {config.train.target_return} reached)")
            break
        if checkpoint.due(iteration, config.train.checkpoint_every, stop):
            save_checkpoint(iteration, sp)
            if stop.requested is not None:
                raise Interrupted(out, iteration, stop.requested)
    return iteration, sp  # the last iteration (or the early stop) has just evaluated: ``sp`` is current


def _reinforce_step(run: Run, workers, traj, pairs: torch.Tensor, iteration: int, log) -> None:
    """One REINFORCE update from the rollout ``traj`` of ``pairs``: the method's loss per member, one backward,
    one optimizer step; logs the loss, the return and the method's metrics."""
    config, method, bank, optimizer = run.config, run.method, run.bank, run.optimizer
    n = method.n_members
    share = 1.0
    if workers.shard is not None:  # what the losses need of the other workers' pairs
        share = len(traj.pair_index) / len(pairs)
        E = config.train.episodes_per_pair
        returns = torch.zeros(len(pairs), E, device=traj.returns.device).index_copy(0, traj.pair_index, traj.returns)
        gathered = workers.sum(torch.cat([played_steps(traj, n), returns.reshape(-1)]))
        traj.total_played, traj.all_returns = gathered[:n], gathered[n:].view(len(pairs), E)
    losses, metrics = method.loss(traj, entropy_coef_at(config.train, iteration))
    optimizer.zero_grad()
    losses.sum().backward()
    # a method's metric is a mean over its pairs' episodes or members: weighted by this worker's share of pairs
    stats = torch.tensor([float(traj.returns.sum()), float(traj.returns.numel()),
                          *(share * value for value in metrics.values())], dtype=torch.float64, device=losses.device)
    losses, stats = workers.sum_step(bank.member_parameters(), [losses.detach(), stats])
    check_finite(losses, optimizer, iteration, run.names)
    optimizer.step(getattr(method, "active", members_with_data)(pairs, n))  # psro: the newest member only
    log("train/loss", float(losses.mean()), iteration)
    log("train/return", float(stats[0] / stats[1]), iteration)
    for key, value in zip(metrics, stats[2:].tolist()):
        log(key, value, iteration)


def ppo_step(run: Run, workers, traj, pairs: torch.Tensor, iteration: int) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's update from one rollout (``adhoc.methods.ppo``, CleanRL's loop): π_old and V_old from a no-grad replay,
    GAE per episode and seat on each seat's own rewards, then ``train.ppo_epochs`` passes over
    ``train.ppo_minibatches`` minibatches (each pair's episodes shuffled by the run's generator and cut in equal
    parts, so every member has data in every minibatch), one optimizer step per minibatch. Returns the last
    minibatch's losses [N] and the means over every minibatch of the members' entropy, value loss and clip
    fraction, with the method's metrics of its rewards (``ppo_rewards``: MEP's shaped reward)."""
    from adhoc.methods import ppo

    config, method, bank, optimizer, rng = run.config, run.method, run.bank, run.optimizer, run.rng
    t, n = config.train, method.n_members
    P, E, T = traj.rewards.shape
    with torch.no_grad():
        old = ppo.replay(run.policy, run.game, traj, torch.arange(P * E))
    rewards, metrics = method.ppo_rewards(traj)  # [P, E, T, 2]: each seat's (a method may shape them)
    rewards = rewards.reshape(P * E, T, 2).transpose(1, 2).reshape(-1, T)
    values, decided = (old[k].transpose(1, 2).reshape(-1, T) for k in ("values", "decided"))
    old["advantages"] = ppo.gae(rewards, values, decided, t.ppo_gamma, t.ppo_gae_lambda
                                ).view(P * E, 2, T).transpose(1, 2)
    old["returns"] = old["advantages"] + old["values"]
    old["member"] = traj.pairs[:, None, None, :].expand(P, E, T, 2).reshape(P * E, T, 2)
    coef = entropy_coef_at(t, iteration)
    active = members_with_data(pairs, n)
    sums: dict[str, float] = {}
    for _ in range(t.ppo_epochs):
        order = torch.from_numpy(rng.permuted(np.tile(np.arange(E), (P, 1)), axis=1))  # [P, E]
        for k in range(t.ppo_minibatches):
            cols = order[:, k * E // t.ppo_minibatches:(k + 1) * E // t.ppo_minibatches]
            index = (torch.arange(P)[:, None] * E + cols).reshape(-1)
            new = ppo.replay(run.policy, run.game, traj, index)
            mine = {key: v[index.to(v.device)] for key, v in old.items()}
            losses, parts = ppo.member_losses(new, mine, mine["decided"], n, t.ppo_clip, t.ppo_value_clip,
                                              t.ppo_value_coef, coef, t.ppo_normalize_advantages)
            optimizer.zero_grad()
            losses.sum().backward()
            losses, = workers.sum_step(bank.member_parameters(), [losses.detach()])
            check_finite(losses, optimizer, iteration, run.names)
            optimizer.step(active)
            for key, v in parts.items():
                sums[f"train/{key}"] = sums.get(f"train/{key}", 0.0) + float(v[active].mean())
    steps = t.ppo_epochs * t.ppo_minibatches
    return losses, {key: v / steps for key, v in sums.items()} | metrics


def export(run: Run, writer, iteration: int, sp: torch.Tensor, elapsed: float, startup: float,
           more: dict | None = None) -> Population:
    """Step 4: save atomically the members the method selects (all of them, or the best restart of each);
    ``more``: more manifest entries (a data-parallel run's workers and time in all-reduces)."""
    method, bank, config = run.method, run.bank, run.config
    chosen, objective = method.select(config.train.eval_episodes, run.rng)
    members = []
    for k, i in enumerate(chosen):
        bank.export_member(i, writer.staging / "members" / run.names[k])
        extra = {} if objective is None else {"restart": i // len(chosen), "objective_return": round(float(objective[i]), 4)}
        members.append(Member(run.names[k], run.seeds[i], round(float(sp[i]), 4), extra))
    sp = sp[chosen]
    for i, weights, label, ret in method.extra_members(sp):
        name = f"{run.names[i]}-{label}"
        bank.export_snapshot(i, weights, writer.staging / "members" / name)
        members.append(Member(name, run.seeds[i], round(ret, 4), {"checkpoint_of": run.names[i], "checkpoint": label}))
    chance, scale = chance_return(run.game)
    trained = members[:len(chosen)]  # not a method's extra checkpoints (FCP's untrained ones, say)
    # a coordination diagnostic: in a zero-sum game a member's self-play return is the first mover's edge, in a
    # general-sum one what it and its copy settle on (mutual defection is no failure to learn)
    warnings = [] if payoff_kind(run.game) != "common" else \
        member_warnings([m.name for m in trained], [m.self_play_return for m in trained], chance, scale)
    writer.write_manifest({
        "game": run.game.params() | {"name": config.game.name},
        "method": config.to_dict()["method"],
        "base_model": {"id": run.base.model_id, "fingerprint": run.base.fingerprint},
        "adapter": {"rank": bank.rank, "alpha": bank.alpha, "target_modules": bank.target_modules},
        "members": [m.to_dict() for m in members],
        "training": {"iterations": iteration, "episodes_per_pair": config.train.episodes_per_pair,
                     "self_play_return_mean": round(float(sp.mean()), 4),
                     "self_play_return_min": round(float(sp.min()), 4)},
        "wall_time_s": round(elapsed, 1),  # start-up + training, over every resumed part
        "startup_s": round(startup, 1),
        "train_s": round(elapsed - startup, 1),
    } | ({"warnings": warnings} if warnings else {}) | (more or {})
        | (method.manifest(run.names[:len(chosen)]) if hasattr(method, "manifest") else {}))
    return Population.load(writer.commit())
