"""Train a robust learner against frozen partner populations: the PSRO loop (Lanctot et al., NeurIPS 2017)
with the partner choice as the meta-game (docs/reference.md, "Meta-strategy solvers").

The learner is ONE fresh LoRA member of the same AdapterBank as its partners (slot N after the N partners),
so its episodes with every partner run in the same batched passes. Only the learner's slot ever gets an
optimizer step (``MemberAdam.step(active)``): the partners stay exactly as loaded.

The loop, written out once:

1. Load the partners (``adhoc.partners.load_partners``), the base model (fingerprint checked), one bank with
   the N LoRA partners and the learner (scripted partners, ``partners=scripted:<game>[:a,b]``, are no bank
   slots: member ids after the bank, ``policy.scripted``); measure each partner's self-play return (its best
   achievable return, used for regret).
2. Each epoch k = 0, 1, ..., K−1:
   a. evaluate the current learner, snapshot k, with every partner in both seatings:
      M[k, i] = (G(learner, i) + G(i, learner)) / 2 from ``train.eval_episodes`` episodes each (for a
      partner that plays one seat only, e.g. a scripted teacher, the one seating it can play);
      earlier rows are kept (snapshots and partners are frozen, so their entries cannot change);
   b. solve the meta-game M [snapshots k ≤ K, partners] with the solver → meta-strategy σ over partners;
   c. save snapshot k as member ``<name>-epoch-kk``; log σ, M, the learner's mean and worst-case returns;
   d. with ``learner.oracle: fresh`` and k ≥ 1: re-initialise the learner's slot from the seed
      ``oracle_seed(learner.seed, k)`` and reset its Adam moments and step count (``MemberAdam.reset``), so
      the oracle of epoch k is a fresh best response to σ_k, as in PSRO, rather than the previous learner
      fine-tuned (``continue``, the default). Snapshot k + 1 (and the final learner, for k = K − 1) is that
      oracle; snapshot 0 is the untrained initial learner in both modes;
   e. train ``train.iterations_per_epoch`` iterations against σ (below).
3. Evaluate the final learner (row K of M) and compute the learner-side mixture over ALL rows of M
   (``learner_mixture``): the row player's maximin mixture x of the zero-sum game on M (``nash_zero_sum``),
   or on −regret = M − self-play for ``minimax_regret``; every other solver gets the same maximin x on M.
   The mixture's return with partner j is Σ_k x_k M[k, j] (its mean and worst case are logged and stored).
4. Save the population: the final learner first, then its snapshots, with the partners, the solver, the
   whole history (σ and M per epoch) and ``mixture: {member: weight}`` (nonzero weights only) in the
   manifest. The mixture is the PSRO agent: per episode it plays member k with probability x_k;
   ``adhoc evaluate AGENT --partners POP --mixture`` evaluates it.

One training iteration (``train.episodes`` = B episodes): every episode draws its partner from σ
independently (per episode, not per step); the first ⌈B/2⌉ episodes put the learner in seat 0, the rest in
seat 1, so asymmetric games are learnt from both sides (an episode with a partner that plays one seat only
puts the learner in the other seat). ``learner.seat: 0`` (or 1) trains the learner in that seat only, every
partner in the other: the AI of an alignment game (seat 0) trained against a population of teachers; M then
holds that seating alone, and ``adhoc evaluate`` plays the agent in the seat its manifest records. The episodes are played as B pairs of one episode
each. REINFORCE on the learner's own log-probabilities, with a leave-one-out baseline taken within the
episodes that share the same partner and seating (``grouped_leave_one_out_advantage``): the partner is drawn
before the learner acts, so a baseline that depends on it keeps the gradient unbiased and removes the
between-partner variance. With ``learner.credit: reward_to_go`` each action is credited
with the rewards from its step on (``reward_to_go``), baselined per step within the same groups, instead of
the whole episode's return (``episode``, the default). The entropy bonus follows ``train.entropy_coef`` (→ ``entropy_coef_end``).

Scripted partners (``scripted:<game>``, the game from the config's ``game`` section) have no self-play
return: their regret is not reported (None in the manifest; regret summaries cover the partners that have
one, None if none does), and ``minimax_regret`` (solver and learner mixture), which needs a best return for
every partner, uses for them the column maximum of M, the best return any snapshot reached with that
partner (what ``solvers.minimax_regret`` does with no ``best``). Without population partners the base model
is ``model.base`` (default builtin:tiny) and the learner's LoRA shape is ``model.lora_rank`` /
``lora_alpha`` / ``target_modules`` (defaults those of train-population); with population partners these
must match theirs (one shared bank).

Several learners in one batched pass (``learners:`` in the config, M slots; ``learner_slots``): the bank
holds every partner any slot uses, each loaded once (``_lora_partners``; scripted strategies once in
``policy.scripted``), then the M learners (slots N..N+M−1). The loop above runs for all slots at once:
step 2a evaluates every slot with its own partners in one batched call (``slot_returns``), 2b-2d are per
slot (its own M, σ, snapshots, fresh oracles), and every training iteration draws each slot's B episodes
from its own σ over its own partners and plays them all in ONE rollout. ``slot_losses`` gives each learner
the single learner's loss on its own episodes: its own leave-one-out groups, its own per-step mean and
entropy term; ``MemberAdam.step`` moves only the learners. Step 3 writes one ordinary learner population
per slot, ``--out DIR/<slot name>``, staged together so that DIR appears complete. One generator
(``learner.seed``) serves every slot (partner draws, rollouts, evaluation); a slot's ``seed`` sets its LoRA
init and fresh-oracle seeds. A batched run keeps ONE checkpoint for all slots (``checkpoint.run_tensors``:
the bank and Adam state; the generator; per slot its epoch-0 returns, σ, rows of M, history, snapshots and
oracle seed) in the staging folder of ``--out DIR`` (``.DIR.partial/checkpoint.safetensors``, beside the
slots' staged populations, never in DIR), and stops, resumes (``--resume``, bit for bit) and overwrites
(``--overwrite``: an earlier ``learners:`` output only) as a single learner does. Without ``learners:`` there
is one slot and the computation is exactly the single learner's.

Choices and deviations: PSRO's output is the mixture over its oracles; here there are two agents: the final
learner (one adapter; the first member, what ``adhoc evaluate`` plays by default) and the mixture over the
snapshots (``--mixture``). On a one-shot coordination game with partners on k conventions a single learner
collapses onto one convention (worst case 0) while the best worst case is 1/k, reachable only by mixing, so
there the mixture (ideally of ``fresh`` oracles) is the robust agent. The snapshots are the rows of M, so
``maximin`` / ``minimax_regret`` choose partners against which no snapshot does well. The learner's return
in M averages both seatings; the mixture's returns in the manifest come from M (``train.eval_episodes``
episodes per entry), not from a new evaluation.

TensorBoard keys: ``train/loss``, ``train/return``, ``train/entropy``, ``time/iteration_s``;
per epoch ``learner/return_mean``, ``learner/return_worst``, ``learner/regret_mean``, ``learner/regret_max``,
``meta_strategy/<partner>``, ``meta_game/return/<partner>`` (the current row of M), text ``meta_game/matrix``;
at the end ``mixture/return_mean``, ``mixture/return_worst``, ``mixture/regret_max``, text ``mixture/weights``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adhoc import checkpoint
from adhoc.config import LearnerRunConfig, ModelConfig, entropy_coef_at
from adhoc.diagnostics import mixture_warning
from adhoc.engine import check_finite, resume_point, tensorboard
from adhoc.errors import Interrupted, UserError
from adhoc.games import build_game
from adhoc.lm.adapters import AdapterBank, MemberAdam
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.methods.otherplay import Relabelling
from adhoc.partners import Partners, load_partners, seats_beside
from adhoc.paths import LEARNERS, OutputFolder, atomic_write, check_out, unique_default
from adhoc.population import (CHECKPOINT, Member, NestedPopulationWriter, Population, PopulationWriter,
                              warning_lines)
from adhoc.psro import (best_returns, draw_training_pairs, learner_mixture, learner_rewards, matrix_markdown,
                        mixture_record, oracle_seed, regret_summary, slot_losses)
from adhoc.rollout import rollout
from adhoc.solvers import solve


def learner_adapter(config: LearnerRunConfig, partners: Partners) -> dict:
    """The bank's LoRA shape: the population partners' (``model.lora_*`` / ``target_modules``, when set, must
    agree), or, with scripted partners only, ``model.lora_*`` (defaults: ``ModelConfig``'s)."""
    m = config.model
    wanted = {"rank": m.lora_rank, "alpha": m.lora_alpha,
              "target_modules": None if m.target_modules is None else list(m.target_modules)}
    keys = {"rank": "model.lora_rank", "alpha": "model.lora_alpha", "target_modules": "model.target_modules"}
    if partners.adapter is None:
        defaults = ModelConfig()
        fallback = {"rank": defaults.lora_rank, "alpha": defaults.lora_alpha, "target_modules": defaults.target_modules}
        return {k: (fallback[k] if v is None else v) for k, v in wanted.items()}
    adapter = dict(partners.adapter)
    for k, v in wanted.items():
        if v is not None and v != adapter[k]:
            raise UserError(f"{keys[k]}={v} but the partner populations' adapters have {k} {adapter[k]} "
                            f"(the learner shares their AdapterBank; leave {keys[k]} unset)")
    return adapter


def default_out(config: LearnerRunConfig, partners: Partners) -> Path:
    kind = "learner" if config.learners is None else "learners"
    return unique_default(partners.game["name"], kind, config.solver["name"], f"seed{config.learner.seed}")


# ---------------------------------------------------------------------------- learner slots
@dataclass
class Slot:
    """One learner slot of the run: its name (member and, with ``learners:``, population folder), seed,
    partners and writer; the bank member, member ids and PSRO state (rows of M, history, snapshots, σ) are
    filled in by ``_train``. Without ``learners:`` the run has one slot: ``learner.name`` / ``learner.seed`` /
    the top-level partners, written to ``--out`` itself."""

    name: str
    seed: int
    specs: list[str]
    partners: Partners
    training_seats: list[tuple[int, ...]]
    writer: Any = None
    member: int = -1  # its bank slot
    partner_ids: torch.Tensor | None = None  # [P] member ids of its partners
    init_seed: int = 0  # the LoRA init seed of its current oracle
    first: np.ndarray | None = None  # [P, 3]: epoch-0 returns with the partners in both seatings, their self-play
    sigma: np.ndarray | None = None
    rows: list[np.ndarray] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    snapshots: list[Member] = field(default_factory=list)
    tb: Any = None

    @property
    def partner_sp(self) -> np.ndarray:
        return self.first[:, 2]


def learner_slots(config: LearnerRunConfig, game_spec: dict | None) -> list[Slot]:
    """The run's slots with their partners loaded and checked (before anything is written): one per
    ``learners:`` entry (its own ``partners``, else the top-level ones), or the one learner without it. All
    slots share one game and one bank: their partner populations must agree (game, base model, adapter)."""
    from adhoc.partners import check_compatible, describe_game_difference, same_game

    entries = [(config.learner.name, config.learner.seed, None)] if config.learners is None else [
        (s.name, s.seed, s.partners) for s in config.learners]
    loaded: dict[tuple[str, ...], Partners] = {}
    slots = []
    for name, seed, specs in entries:
        specs = list(config.partners if specs is None else specs)
        if tuple(specs) not in loaded:
            try:
                loaded[tuple(specs)] = load_partners(specs, game=game_spec)
            except UserError as exc:
                raise UserError(f"learner {name}: {exc}" if config.learners is not None else str(exc)) from None
        partners = loaded[tuple(specs)]
        training_seats = seats_beside(partners.seats(), config.learner.seat, partners.names)
        slots.append(Slot(name, seed, specs, partners, training_seats))
    first = slots[0].partners
    for slot in slots[1:]:
        if not same_game(slot.partners.game, first.game):
            raise UserError(f"learner {slot.name}'s partners play {describe_game_difference(slot.partners.game, first.game)} "
                            f"as learner {slots[0].name}'s do: the learners share one rollout, so one game")
    pops = [pop for slot in slots for pop in slot.partners.populations]
    if pops:
        check_compatible(pops, "training in one bank")
    return slots


def _lora_partners(slots: list[Slot]) -> tuple[list[tuple[Population, str]], list[list[int]]]:
    """The bank slots of every slot's LoRA partners, each loaded once: (the (population, member) of bank slot
    0, 1, ..., per slot its partners' bank slots). A member of a population folder that an earlier slot uses
    shares that slot's bank slot; within one slot nothing is shared (a partner listed twice stays two
    partners, as in a single run)."""
    index: dict[tuple, int] = {}
    loaded: list[tuple[Population, str]] = []
    per_slot = []
    for slot in slots:
        keys = [(str(pop.path.resolve()), member) for pop in slot.partners.populations for member in pop.names]
        members = [(pop, member) for pop in slot.partners.populations for member in pop.names]
        ids = []
        for key, item in zip(_occurrences(keys), members):
            if key not in index:
                index[key] = len(loaded)
                loaded.append(item)
            ids.append(index[key])
        per_slot.append(ids)
    return loaded, per_slot


def _occurrences(keys: list[tuple]) -> list[tuple]:
    """Each key with how often it came before it in ``keys``: a repeat within one slot is a new partner."""
    seen: dict[tuple, int] = {}
    out = []
    for key in keys:
        seen[key] = seen.get(key, -1) + 1
        out.append((*key, seen[key]))
    return out


def _set_partner_ids(slots: list[Slot], lora_ids: list[list[int]], policy: Policy) -> None:
    """Each ``slot.partner_ids`` [P]: its LoRA partners' bank slots, then its scripted strategies, appended to
    ``policy.scripted`` once (one an earlier slot uses is shared; member ids bank size + j)."""
    index: dict[tuple, int] = {}
    for slot, ids in zip(slots, lora_ids):
        strategies = [(pop.spec.split(":")[1], s) for pop in slot.partners.scripted for s in pop.strategies]
        ids = list(ids)
        for key, (_, strategy) in zip(_occurrences([(g, s.name) for g, s in strategies]), strategies):
            if key not in index:
                policy.scripted.append(strategy)
                index[key] = policy.bank.n_members + len(policy.scripted) - 1
            ids.append(index[key])
        slot.partner_ids = torch.tensor(ids, dtype=torch.long)


def slot_returns(game, policy: Policy, slots: list[Slot], episodes: int, rng: np.random.Generator,
                 seat: int | None, self_play: bool = False) -> list[np.ndarray]:
    """Every slot's returns with its partners, all in ONE batched call: per slot [P, 2, E] (the learner in seat
    0, in seat 1), or [P, 3, E] with ``self_play`` (the partner with itself; every distinct partner played
    once). For one slot this is exactly ``returns_with_partners`` (the same pairs in the same order)."""
    from adhoc.partners import agent_seats, partner_pairs, play_playable

    blocks, playable, seat_of = [], [], []
    for slot in slots:
        pairs, mask = partner_pairs([slot.member], slot.partner_ids, slot.partners.seats(), seat)
        blocks.append(pairs)
        playable.append(mask)
        seat_of.append(agent_seats(1, len(slot.partner_ids)))
    if self_play:  # the distinct partners, in order of first use
        ids, seats = [], []
        for slot in slots:
            for i, s in zip(slot.partner_ids.tolist(), slot.partners.seats()):
                if i not in ids:
                    ids.append(i)
                    seats.append(s)
        pairs, mask = partner_pairs([], torch.tensor(ids, dtype=torch.long), seats, seat, self_play=True)
        blocks.append(pairs)
        playable.append(mask)
        seat_of.append(torch.zeros(len(ids), dtype=torch.long))
    out = play_playable(game, policy, torch.cat(blocks), torch.cat(playable), episodes, rng, seat_of=torch.cat(seat_of))
    result, at = [], 0
    for slot in slots:
        P = len(slot.partner_ids)
        result.append(np.swapaxes(out[at: at + 2 * P].reshape(2, P, episodes), 0, 1))
        at += 2 * P
    if self_play:
        sp = out[at:]
        result = [np.concatenate([r, sp[[ids.index(i) for i in slot.partner_ids.tolist()]][:, None]], 1)
                  for r, slot in zip(result, slots)]
    return result


# ---------------------------------------------------------------------------- the recipe
def train_learner(config: LearnerRunConfig, out: str | Path | None = None, overwrite: bool = False,
                  progress: bool = True, resume: bool = False) -> Population | list[Population]:
    """Train, checkpointing every ``train.checkpoint_every`` iterations and on SIGTERM / Ctrl-C; with
    ``resume`` continue the interrupted run of the same ``out`` from its checkpoint (bit for bit on CPU).

    With ``learners:`` (M slots) train them all in one batched pass and return their M populations,
    ``out/<slot name>``, each a single learner's population; the folder ``out`` appears only when all are
    written. Such a run keeps ONE checkpoint for all slots, in the staging folder of ``out``
    (``.<out>.partial/checkpoint.safetensors``, beside the slots' staged populations), and resumes and
    overwrites as a single learner does (``--overwrite`` replaces only an earlier ``learners:`` output)."""
    start = time.perf_counter()
    batched = config.learners is not None
    if resume and out is None:
        raise UserError("--resume needs the --out of the run to continue")
    game_spec = None
    if config.game is not None:
        g = build_game(config.game)
        game_spec = g.params() | {"name": config.game.name}
    slots = learner_slots(config, game_spec)
    partners = slots[0].partners
    seat = config.learner.seat
    adapter = learner_adapter(config, partners)
    for slot in slots[1:]:  # one bank: the same LoRA shape for every slot
        learner_adapter(config, slot.partners)
    inputs = tuple(dict.fromkeys(spec for slot in slots for spec in slot.specs))
    out = Path(out) if out is not None else default_out(config, partners)
    kind = LEARNERS if batched else "population"
    if not resume:
        check_out(out, kind, overwrite, inputs=inputs)  # before the base is loaded
    default_base = next((s.partners.base_model["id"] for s in slots if s.partners.base_model), ModelConfig.base)
    base = load_base(config.model.base or default_base, config.model.device, config.model.dtype,
                     config.model.cpu_threads)
    for slot in slots:
        for pop in slot.partners.populations:
            pop.check_base(base.model_id, base.fingerprint)  # a different base model: refused before any write
    # symmetry augmentation; a game without symmetries is refused here, before anything is written
    relabel = Relabelling(build_game(partners.game), "learner.augment") if config.learner.augment else None
    # the run's output folder, which holds its checkpoint: the population itself, or (learners:) the folder of
    # the slots' populations, staged whole so that out appears complete
    folder = PopulationWriter(out, overwrite=overwrite, resume=resume, inputs=inputs) if not batched else \
        OutputFolder(out, kind, overwrite=overwrite, resume=resume, inputs=inputs)
    try:
        point = resume_point(folder, resume)  # None: a new run (or one killed before its first checkpoint)
        if point is not None:
            checkpoint.check_same_config(point[1], config.to_yaml(), folder.staging / CHECKPOINT)
        for slot in slots:
            slot.writer = folder if not batched else NestedPopulationWriter(folder.staging / slot.name)
        pops = _train(config, slots, adapter, base, seat, relabel, start, progress, folder, point)
        if not batched:
            return pops[0]  # committed by _save
        (folder.staging / CHECKPOINT).unlink(missing_ok=True)  # all slots written: no checkpoint reaches out
    except BaseException as exc:
        folder.abandon(keep=(folder.staging / CHECKPOINT).exists() and not isinstance(exc, UserError))
        raise
    folder.commit()  # (out appeared meanwhile: refused, and the staged output is kept)
    return [Population.load(out / pop.path.name) for pop in pops]


def _build(config, slots: list[Slot], adapter: dict, base) -> tuple[AdapterBank, Policy, MemberAdam, int]:
    """Step 1: one bank (the LoRA partners of every slot, then one learner per slot; ``slot.member`` set),
    scripted partners after the bank (``slot.partner_ids`` set), the policy, and an optimizer over the bank of
    which only the learners are ever stepped; also the number of member ids a pair can hold."""
    loaded, lora_ids = _lora_partners(slots)
    n_lora = len(loaded)
    torch.manual_seed(config.learner.seed)
    bank = AdapterBank(base.model, n_lora + len(slots), adapter["rank"], adapter["alpha"], adapter["target_modules"],
                       base_model_id=base.model_id)
    for k, slot in enumerate(slots):
        slot.member, slot.init_seed = n_lora + k, oracle_seed(slot.seed, 0)
    bank.init_members([slots[0].init_seed] * n_lora + [s.init_seed for s in slots],
                      b_std=config.model.lora_init_std)  # the learners' fresh LoRA
    for bank_slot, (pop, member) in enumerate(loaded):  # ... and the LoRA partners over every other slot
        bank.import_member(bank_slot, pop.member_dir(member))
    policy = Policy(base, bank)
    _set_partner_ids(slots, lora_ids, policy)  # [P] per slot: bank slots, then scripted ids
    optimizer = MemberAdam(bank.member_parameters(), lr=config.train.lr, max_grad_norm=config.train.max_grad_norm)
    return bank, policy, optimizer, bank.n_members + len(policy.scripted)


def _train(config, slots: list[Slot], adapter, base, seat, relabel, start, progress, folder,
           point) -> list[Population]:
    """Steps 1-3 for every slot; ``folder`` (the run's output folder) holds the run's one checkpoint, ``point``
    (tensors, state) the checkpoint to continue from (None: a new run)."""
    batched = config.learners is not None

    game = build_game(slots[0].partners.game)
    bank, policy, optimizer, n_ids = _build(config, slots, adapter, base)
    owner = {s.member: s.name for s in slots}
    member_names = [owner.get(i, f"partner slot {i}") for i in range(bank.n_members)]
    # one generator for the whole run (draws, rollouts, evaluations): the slots' seeds set their LoRA inits
    rng = np.random.default_rng(config.learner.seed)
    episodes = config.train.eval_episodes
    from tqdm import tqdm

    checkpoint_file = folder.staging / CHECKPOINT
    config_yaml = config.to_yaml()
    iteration, first_epoch, done_in_epoch = 0, 0, 0
    if point is not None:
        tensors, state = point
        checkpoint.restore_run_tensors(tensors, bank, optimizer)
        checkpoint.restore_rng(rng, state["rng"])
        if batched:  # per slot: tensors slots.<k>.first / sigma / rows, state["slots"][k]
            for k, (slot, slot_state) in enumerate(zip(slots, state["slots"])):
                _restore_slot(slot, tensors, slot_state, f"slots.{k}.")
        else:  # the single learner's checkpoint: its slot's tensors and records at the top level
            _restore_slot(slots[0], tensors, state, "")
        iteration, first_epoch, done_in_epoch = state["iteration"], state["epoch"], state["done_in_epoch"]
        start -= state["train_time_s"]
    else:
        # the partners' self-play: their best achievable return (regret, minimax_regret; NaN for scripted
        # partners); the epoch-0 rows
        for slot, returns in zip(slots, slot_returns(game, policy, slots, episodes, rng, seat, self_play=True)):
            slot.first = returns.mean(-1)
        for slot in slots:
            atomic_write(slot.writer.staging / "config.yaml", config_yaml)
    resume = point is not None
    for slot in slots:
        slot.tb = tensorboard(slot.writer.staging / "tb", config_yaml, iteration if resume else None)
    desc = f"learner ({config.solver['name']}) on {game.name}" if not batched else \
        f"{len(slots)} learners ({config.solver['name']}) on {game.name}"
    bar = tqdm(total=config.train.iterations, initial=iteration, disable=not progress, unit="it", desc=desc)

    def save_checkpoint(epoch: int, done: int) -> None:
        tensors = checkpoint.run_tensors(bank, optimizer)
        head = {"iteration": iteration, "epoch": epoch, "done_in_epoch": done, "rng": checkpoint.rng_state(rng)}
        tail = {"config": config_yaml, "train_time_s": time.perf_counter() - start}
        if batched:
            for k, slot in enumerate(slots):
                tensors.update(_slot_tensors(slot, f"slots.{k}."))
            state = {**head, "slots": [{"name": slot.name, **_slot_state(slot)} for slot in slots], **tail}
        else:
            tensors.update(_slot_tensors(slots[0], ""))
            state = {**head, **_slot_state(slots[0]), **tail}
        checkpoint.save(checkpoint_file, tensors, state)

    def evaluate(epoch: int) -> list[dict]:
        """A new row of M for every slot (epoch 0: from the first evaluation); their records."""
        returns = [s.first for s in slots] if epoch == 0 else [
            r.mean(-1) for r in slot_returns(game, policy, slots, episodes, rng, seat)]
        records = []
        for slot, seats in zip(slots, returns):
            row = np.nanmean(seats[:, :2], 1)  # both seatings averaged (the one a one-seat partner can play)
            slot.rows.append(row)
            names = slot.partners.names
            regret_mean, regret_max = regret_summary(slot.partner_sp, row)
            record = {"epoch": epoch, "iteration": iteration, "return_mean": round(float(row.mean()), 4),
                      "return_worst": round(float(row.min()), 4), "worst_partner": names[int(row.argmin())],
                      "regret_mean": regret_mean, "regret_max": regret_max}
            for key in ("return_mean", "return_worst", "regret_mean", "regret_max"):
                if record[key] is not None:
                    slot.tb.add_scalar(f"learner/{key}", record[key], iteration)
            for name, value in zip(names, row.tolist()):
                slot.tb.add_scalar(f"meta_game/return/{name}", value, iteration)
            records.append(record)
        rows = [s.rows[-1] for s in slots]
        bar.set_postfix(mean=f"{np.mean([r.mean() for r in rows]):.3f}", worst=f"{min(r.min() for r in rows):.3f}")
        return records

    with checkpoint.StopSignals() as stop:
        for epoch in range(first_epoch, config.train.epochs):
            if epoch > first_epoch or not resume:  # a resumed epoch has done 2a-2d already
                for slot, record in zip(slots, evaluate(epoch)):  # 2a. a new row of every slot's meta-game
                    _next_epoch(config, slot, record, epoch, iteration, bank, optimizer)
                done_in_epoch = 0
            # 2e. train against sigma
            for done in range(done_in_epoch + 1, config.train.iterations_per_epoch + 1):
                iteration += 1
                _train_step(config, slots, game, policy, optimizer, relabel, rng, iteration, n_ids, member_names)
                bar.update(1)
                if iteration < config.train.iterations and \
                        checkpoint.due(iteration, config.train.checkpoint_every, stop):
                    save_checkpoint(epoch, done)
                    if stop.requested is not None:
                        for slot in slots:
                            slot.tb.close()
                        raise Interrupted(folder.out, iteration, stop.requested)
    # 3. the final learners: last row of every meta-game, then save
    finals = evaluate(config.train.epochs)
    bar.close()
    return [_save(config, slot, final, bank, base, adapter, iteration, start) for slot, final in zip(slots, finals)]


def _slot_tensors(slot: Slot, prefix: str) -> dict[str, torch.Tensor]:
    """A slot's PSRO tensors for the checkpoint: its epoch-0 returns, σ and rows of M."""
    return {f"{prefix}first": torch.as_tensor(slot.first), f"{prefix}sigma": torch.as_tensor(slot.sigma),
            f"{prefix}rows": torch.as_tensor(np.stack(slot.rows))}


def _slot_state(slot: Slot) -> dict:
    """A slot's PSRO records for the checkpoint: its oracle's init seed, history and snapshots."""
    return {"seed": slot.init_seed, "history": slot.history, "snapshots": [m.to_dict() for m in slot.snapshots]}


def _restore_slot(slot: Slot, tensors: dict[str, torch.Tensor], state: dict, prefix: str) -> None:
    slot.first, slot.sigma = tensors[f"{prefix}first"].numpy(), tensors[f"{prefix}sigma"].numpy()
    slot.rows = list(tensors[f"{prefix}rows"].numpy())
    slot.history, slot.init_seed = state["history"], state["seed"]
    slot.snapshots = [Member(m.pop("name"), m.pop("seed"), m.pop("self_play_return"), m) for m in state["snapshots"]]


def _next_epoch(config, slot: Slot, record: dict, epoch: int, iteration: int, bank: AdapterBank,
                optimizer: MemberAdam) -> None:
    """Steps 2b-2d of an epoch for one slot (2a, its new row of M, is ``record``): the meta-strategy σ,
    snapshot k, a fresh oracle."""
    matrix = np.stack(slot.rows)  # [snapshots, partners]
    names = slot.partners.names
    # 2b. solve the meta-game for the partner mixture to train against
    extra = {"best": best_returns(slot.partner_sp, matrix)} if config.solver["name"] == "minimax_regret" else {}
    solver_params = {k: v for k, v in config.solver.items() if k != "name"}
    slot.sigma = solve(config.solver["name"], matrix, **solver_params, **extra)
    record["meta_strategy"] = [round(float(v), 6) for v in slot.sigma]
    slot.history.append(record)
    for name, value in zip(names, slot.sigma.tolist()):
        slot.tb.add_scalar(f"meta_strategy/{name}", value, iteration)
    slot.tb.add_text("meta_game/matrix", matrix_markdown(matrix, names, slot.sigma), iteration)
    # 2c. snapshot k, written straight into the staging folder
    snap = f"{slot.name}-epoch-{epoch:02d}"
    bank.export_member(slot.member, slot.writer.staging / "members" / snap)
    slot.snapshots.append(Member(snap, slot.init_seed, None,
                                 {"snapshot_of": slot.name, "epoch": epoch, "iteration": iteration,
                                  "return_mean": record["return_mean"], "return_worst": record["return_worst"]}))
    # 2d. a fresh oracle for this epoch (PSRO): new LoRA init, Adam state forgotten
    if config.learner.oracle == "fresh" and epoch > 0:
        slot.init_seed = oracle_seed(slot.seed, epoch)
        bank.init_member(slot.member, slot.init_seed, b_std=config.model.lora_init_std)
        optimizer.reset(slot.member)


def _train_step(config, slots: list[Slot], game, policy: Policy, optimizer: MemberAdam, relabel, rng,
                iteration: int, n_ids: int, member_names: list[str]) -> None:
    """Step 2e, one iteration: every slot's ``train.episodes`` episodes drawn from its σ, all played in one
    rollout; each learner's REINFORCE loss on its own episodes (``slot_losses``); one optimizer step that
    moves only the learners."""
    members = [s.member for s in slots]
    t0 = time.perf_counter()
    drawn = [draw_training_pairs(s.sigma, config.train.episodes, s.member, rng, s.partner_ids,
                                 s.training_seats) for s in slots]
    pairs = torch.cat([p for p, _ in drawn])
    bounds = np.cumsum([0] + [len(p) for p, _ in drawn])
    slot_rows = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    extra = {} if relabel is None else relabel.options(pairs.shape[0], rng)
    traj = rollout(game, policy, pairs, 1, rng, keep_distributions=False, **extra)
    returns = (learner_rewards(traj, members) * traj.alive[:, 0]).sum(-1)  # [B], the learners' own
    loss, ent = slot_losses(traj, slot_rows, [g for _, g in drawn], members, n_ids,
                            config.learner.credit, entropy_coef_at(config.train, iteration))
    optimizer.zero_grad()
    loss.sum().backward()
    n_members = policy.bank.n_members
    losses = torch.zeros(n_members, dtype=loss.dtype).index_copy(0, torch.tensor(members), loss.detach().cpu())
    check_finite(losses, optimizer, iteration, member_names)
    only_learners = torch.zeros(n_members, dtype=torch.bool)
    only_learners[members] = True
    optimizer.step(only_learners)
    elapsed = time.perf_counter() - t0
    for k, slot in enumerate(slots):
        slot.tb.add_scalar("train/loss", float(loss[k].detach()), iteration)
        slot.tb.add_scalar("train/return", float(returns[slot_rows[k]].mean()), iteration)
        slot.tb.add_scalar("train/entropy", float(ent[k].detach()), iteration)
        slot.tb.add_scalar("time/iteration_s", elapsed, iteration)


def _save(config, slot: Slot, final: dict, bank, base, adapter, iteration: int, start: float) -> Population:
    """Step 3 for one slot: its final learner, its learner-side mixture over all rows of M, its population."""
    slot.history.append(final)
    bank.export_member(slot.member, slot.writer.staging / "members" / slot.name)
    matrix = np.stack(slot.rows)
    names, partner_sp, tb = slot.partners.names, slot.partner_sp, slot.tb
    # 3. the learner-side mixture over all rows of M (snapshots 0..K-1, then the final learner)
    row_members = [m.name for m in slot.snapshots] + [slot.name]
    x = learner_mixture(matrix, config.solver["name"], best_returns(partner_sp, matrix))
    mixture = mixture_record(matrix, x, partner_sp, names, row_members, config.solver["name"])
    warning = mixture_warning(mixture["weights"], row_members[0], matrix)
    for key in ("return_mean", "return_worst", "regret_max"):
        if mixture[key] is not None:
            tb.add_scalar(f"mixture/{key}", mixture[key], iteration)
    tb.add_text("mixture/weights", ", ".join(f"{m} {w:.3f}" for m, w in mixture["weights"].items()), iteration)
    tb.close()
    learner_member = Member(slot.name, slot.init_seed, None,
                            {"role": "learner", "oracle": config.learner.oracle, "return_mean": final["return_mean"],
                             "return_worst": final["return_worst"], "iteration": iteration})
    slot.writer.write_manifest({
        "game": slot.partners.game,
        "method": {"name": "learner", "solver": dict(config.solver)},
        "base_model": {"id": base.model_id, "fingerprint": base.fingerprint},
        "adapter": dict(adapter),
        "members": [m.to_dict() for m in [learner_member, *slot.snapshots]],
        # the PSRO agent: per episode, member m with probability mixture[m] (see learner.mixture_summary)
        "mixture": mixture["weights"],
        "learner": {
            "partners": slot.partners.describe(),
            "partner_names": names,
            "partner_self_play": [round(float(v), 4) if np.isfinite(v) else None for v in partner_sp],
            "solver": dict(config.solver),
            # M[k, i]: snapshot k (row k = the learner before epoch k; the last row = the final learner)
            "matrix": [[round(float(v), 4) for v in row] for row in matrix],
            "history": slot.history,
            "oracle": config.learner.oracle,
            "seat": config.learner.seat,  # the learner's seat (None: both)
            "mixture_summary": {k: v for k, v in mixture.items() if k != "weights"},
        },
        "training": {"epochs": config.train.epochs, "iterations": iteration, "episodes": config.train.episodes,
                     "eval_episodes": config.train.eval_episodes, "return_mean": final["return_mean"],
                     "return_worst": final["return_worst"]},
        "wall_time_s": round(time.perf_counter() - start, 1),
    } | ({"warnings": [warning]} if warning else {}))
    return Population.load(slot.writer.commit())


def summary(pop: Population) -> str:
    """The learner's history: per epoch its mean and worst-case return with the partners and σ's support."""
    info = pop.manifest.get("learner")
    if not info:
        raise UserError(f"{pop.path} is not a learner population (no learner section in its manifest)")
    names = info["partner_names"]
    lines = [f"learner {pop.names[0]} ({info['solver']['name']}) with {len(names)} partners of "
             f"{', '.join(p['label'] for p in info['partners'])}",
             f"  {'epoch':>5}  {'iter':>5}  {'mean':>6}  {'worst':>6}  {'regret':>6}  meta-strategy (top partners)"]
    for h in info["history"]:
        sigma = h.get("meta_strategy")
        top = "" if sigma is None else ", ".join(
            f"{names[i]} {sigma[i]:.2f}" for i in np.argsort(sigma)[::-1][:3] if sigma[i] > 0.005)
        lines.append(f"  {h['epoch']:>5}  {h['iteration']:>5}  {h['return_mean']:6.3f}  {h['return_worst']:6.3f}  "
                     f"{_fmt(h['regret_mean'])}  {top or '(final)'}")
    weights, mix = pop.manifest.get("mixture"), info.get("mixture_summary")
    if weights and mix:
        lines.append(f"mixture over {len(weights)} of {len(info['matrix'])} snapshots (maximin x on the "
                     f"{mix['game']} matrix; oracle: {info.get('oracle', 'continue')}): "
                     + ", ".join(f"{m} {w:.3f}" for m, w in weights.items()))
        lines.append(f"  with the training partners (from M): mean {mix['return_mean']:.3f}, worst "
                     f"{mix['return_worst']:.3f} ({mix['worst_partner']}), max regret "
                     f"{_fmt(mix['regret_max']).strip()}")
    return "\n".join(lines + warning_lines(pop.manifest))


def _fmt(value: float | None) -> str:
    """A regret for the summary: '–' where no partner has a best return (scripted partners only)."""
    return f"{'–':>6}" if value is None else f"{value:6.3f}"
