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
from pathlib import Path

import numpy as np
import torch

from adhoc import checkpoint
from adhoc.config import LearnerRunConfig, ModelConfig, entropy_coef_at
from adhoc.errors import Interrupted, UserError
from adhoc.games import build_game
from adhoc.lm.adapters import AdapterBank, MemberAdam
from adhoc.lm.base import load_base
from adhoc.lm.policy import Policy
from adhoc.methods.common import rollout_entropy, rollout_policy_gradient_loss
from adhoc.methods.otherplay import Relabelling
from adhoc.partners import Partners, load_partners, returns_with_partners, seats_beside
from adhoc.paths import check_out, unique_default
from adhoc.population import CHECKPOINT, Member, Population, PopulationWriter, atomic_write
from adhoc.recipes.train_population import check_finite
from adhoc.rollout import rollout
from adhoc.solvers import nash_zero_sum, solve


# ---------------------------------------------------------------------------- pure helpers
def grouped_leave_one_out_advantage(returns: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """A_e = G_e − mean of the OTHER episodes of e's group. returns [B] (or [B, T]: per step, each column
    baselined alike), groups [B] → the shape of returns.

    An episode alone in its group is baselined by the mean of all other episodes of the batch (still
    independent of its own actions, so still unbiased); a batch of one episode gets no baseline.
    """
    B = returns.shape[0]
    _, inverse = torch.unique(groups, return_inverse=True)
    G = int(inverse.max()) + 1 if B else 0
    total = torch.zeros((G, *returns.shape[1:]), dtype=returns.dtype, device=returns.device).index_add(0, inverse, returns)
    count = torch.zeros(G, dtype=returns.dtype, device=returns.device).index_add(0, inverse, torch.ones(B, dtype=returns.dtype, device=returns.device))
    own_total, own_count = total[inverse], count[inverse].view(-1, *[1] * (returns.dim() - 1))
    in_group = (own_total - returns) / (own_count - 1).clamp(min=1)
    batch = (returns.sum(0) - returns) / max(B - 1, 1)
    return returns - torch.where(own_count > 1, in_group, batch if B > 1 else torch.zeros_like(returns))


def reward_to_go(rewards: torch.Tensor) -> torch.Tensor:
    """G_t = Σ_{t' ≥ t} r_t' (undiscounted): [..., T] → [..., T]. With ``learner.credit: reward_to_go`` the
    action of step t is credited with G_t only: rewards earned before it cannot depend on it, so dropping
    them keeps the policy gradient unbiased and removes their variance (in a repeated game, round 1's luck
    no longer blurs what the later rounds' actions earned)."""
    return rewards.flip(-1).cumsum(-1).flip(-1)


def draw_training_pairs(meta_strategy: np.ndarray, episodes: int, learner: int,
                        rng: np.random.Generator, partner_ids: torch.Tensor | None = None,
                        partner_seats: list[tuple[int, ...]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One episode per row: partner i ~ σ independently per episode; the first ⌈B/2⌉ rows seat the learner
    in seat 0, the rest in seat 1, except that a partner playing one seat only (``partner_seats[i]``, default
    both) gets the learner in the other seat. Rows are sorted by (seating, partner). Returns (pairs [B, 2]
    with partner i as member ``partner_ids[i]`` (default i), group [B]) with group = seating · P + partner."""
    P = meta_strategy.shape[0]
    partner = rng.choice(P, size=episodes, p=meta_strategy)
    seat = (np.arange(episodes) >= (episodes + 1) // 2).astype(np.int64)  # the learner's seat
    if partner_seats is not None:
        # allowed[i, s]: the learner may take seat s with partner i (the partner plays 1 − s)
        allowed = np.array([[1 in s, 0 in s] for s in partner_seats], dtype=bool)  # [P, 2]
        seat = np.where(allowed[partner, seat], seat, 1 - seat)
    order = np.lexsort((partner, seat))
    partner, seat = torch.as_tensor(partner[order]), torch.as_tensor(seat[order])
    groups = seat * P + partner
    if partner_ids is not None:
        partner = torch.as_tensor(partner_ids).long().cpu()[partner]
    learner_col = torch.full_like(partner, learner)
    pairs = torch.where(seat[:, None] == 0, torch.stack([learner_col, partner], 1), torch.stack([partner, learner_col], 1))
    return pairs, groups


def oracle_seed(learner_seed: int, epoch: int) -> int:
    """The LoRA init seed of the learner trained in ``epoch``: epoch 0 (and every epoch with ``oracle:
    continue``) uses the learner's initial seed; ``oracle: fresh`` derives a new one for every epoch k ≥ 1."""
    key = [int(learner_seed), 1 << 20] + ([int(epoch)] if epoch > 0 else [])
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def learner_mixture(matrix: np.ndarray, solver: str, best: np.ndarray | None = None) -> np.ndarray:
    """The learner-side meta-strategy over the rows of M [snapshots, partners]: the row player's maximin
    mixture x = argmax_{x∈Δ} min_j (xᵀA)_j of the zero-sum game A = M, or A = M − best (= −regret) for
    ``minimax_regret`` (x then minimises the worst-case regret). Every other solver uses A = M: the partner
    meta-strategies of uniform / prioritized / prd / alpharank have no learner-side counterpart here."""
    A = np.asarray(matrix, dtype=np.float64)
    if solver == "minimax_regret":
        A = A - np.asarray(best if best is not None else A.max(0), dtype=np.float64)[None, :]
    return nash_zero_sum(A)[0]


def regret_summary(best: np.ndarray, returns: np.ndarray) -> tuple[float | None, float | None]:
    """(mean, max) of best − returns over the partners with a best return (finite ``best``; scripted
    partners have none); (None, None) when no partner has one."""
    regret = np.asarray(best, dtype=np.float64) - np.asarray(returns, dtype=np.float64)
    regret = regret[np.isfinite(regret)]
    if not len(regret):
        return None, None
    return round(float(regret.mean()), 4), round(float(regret.max()), 4)


def best_returns(partner_sp: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Each partner's best achievable return for ``minimax_regret``: its self-play return, or for a partner
    without one (NaN: a scripted partner) the column maximum of M (the best return any snapshot reached)."""
    sp = np.asarray(partner_sp, dtype=np.float64)
    return np.where(np.isfinite(sp), sp, np.asarray(matrix, dtype=np.float64).max(0))


def mixture_record(matrix: np.ndarray, x: np.ndarray, best: np.ndarray, names: list[str],
                   members: list[str], solver: str) -> dict:
    """Σ_k x_k M[k, j] per partner j, its mean / worst case / regrets (over partners with a finite ``best``),
    and the nonzero weights by member."""
    ret = x @ np.asarray(matrix, dtype=np.float64)
    regret_mean, regret_max = regret_summary(best, ret)
    return {"weights": {m: round(float(w), 6) for m, w in zip(members, x) if w > 1e-9},
            "game": "regret" if solver == "minimax_regret" else "return",
            "return_mean": round(float(ret.mean()), 4), "return_worst": round(float(ret.min()), 4),
            "worst_partner": names[int(ret.argmin())], "regret_mean": regret_mean,
            "regret_max": regret_max, "returns": [round(float(v), 4) for v in ret]}


def _matrix_markdown(matrix: np.ndarray, names: list[str], sigma: np.ndarray) -> str:
    head = "| snapshot | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = "".join(f"| {k} | " + " | ".join(f"{v:.3f}" for v in row) + " |\n" for k, row in enumerate(matrix))
    return head + rows + "| **σ** | " + " | ".join(f"{v:.3f}" for v in sigma) + " |\n"


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
    return unique_default(partners.game["name"], "learner", config.solver["name"], f"seed{config.learner.seed}")


# ---------------------------------------------------------------------------- the recipe
def train_learner(config: LearnerRunConfig, out: str | Path | None = None, overwrite: bool = False,
                  progress: bool = True, resume: bool = False) -> Population:
    """Train, checkpointing every ``train.checkpoint_every`` iterations and on SIGTERM / Ctrl-C; with
    ``resume`` continue the interrupted run of the same ``out`` from its checkpoint (bit for bit on CPU)."""
    start = time.perf_counter()
    if resume and out is None:
        raise UserError("--resume needs the --out of the run to continue")
    game_spec = None
    if config.game is not None:
        g = build_game(config.game)
        game_spec = g.params() | {"name": config.game.name}
    partners = load_partners(config.partners, game=game_spec)
    seat = config.learner.seat
    training_seats = seats_beside(partners.seats(), seat, partners.names)  # the partners' seats beside the learner
    adapter = learner_adapter(config, partners)
    out = Path(out) if out is not None else default_out(config, partners)
    if not resume:
        check_out(out, "population", overwrite, inputs=tuple(config.partners))  # before the base is loaded
    default_base = partners.base_model["id"] if partners.base_model else ModelConfig.base
    base = load_base(config.model.base or default_base, config.model.device, config.model.dtype,
                     config.model.cpu_threads)
    for pop in partners.populations:
        pop.check_base(base.model_id, base.fingerprint)  # a different base model: refused before any write
    # symmetry augmentation; a game without symmetries is refused here, before anything is written
    relabel = Relabelling(build_game(partners.game), "learner.augment") if config.learner.augment else None
    writer = PopulationWriter(out, overwrite=overwrite, resume=resume, inputs=tuple(config.partners))
    try:
        return _train(config, writer, partners, adapter, base, seat, training_seats, relabel, start, progress, resume)
    except BaseException as exc:
        writer.abandon(keep=(writer.staging / CHECKPOINT).exists() and not isinstance(exc, UserError))
        raise


def _train(config, writer, partners, adapter, base, seat, training_seats, relabel, start, progress,
           resume) -> Population:
    solver_params = {k: v for k, v in config.solver.items() if k != "name"}

    # 1. game, one bank (LoRA partners 0..N-1, learner N), scripted partners after the bank, policy,
    #    optimizer that only ever moves the learner
    game = build_game(partners.game)
    n_partners = len(partners)
    learner = partners.n_lora
    torch.manual_seed(config.learner.seed)
    bank = AdapterBank(base.model, learner + 1, adapter["rank"], adapter["alpha"], adapter["target_modules"],
                       base_model_id=base.model_id)
    seed = oracle_seed(config.learner.seed, 0)
    bank.init_members([seed] * (learner + 1), b_std=config.model.lora_init_std)  # the learner's fresh LoRA
    partners.load_into(bank, 0)  # ... and the LoRA partners over every other slot
    policy = Policy(base, bank)
    partner_ids = partners.member_ids(policy)  # [P]: bank slots, then scripted ids
    partner_seats = partners.seats()
    n_ids = bank.n_members + len(policy.scripted)  # every member id a pair can hold
    optimizer = MemberAdam(bank.member_parameters(), lr=config.train.lr, max_grad_norm=config.train.max_grad_norm)
    only_learner = torch.zeros(bank.n_members, dtype=torch.bool)
    only_learner[learner] = True
    rng = np.random.default_rng(config.learner.seed)
    episodes = config.train.eval_episodes
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    checkpoint_file = writer.staging / CHECKPOINT
    config_yaml = config.to_yaml()
    if resume and not checkpoint_file.exists():  # killed before its first checkpoint: start over
        writer.clear()
        resume = False
    names = partners.names
    rows: list[np.ndarray] = []
    history: list[dict] = []
    snapshots: list[Member] = []
    iteration, first_epoch, done_in_epoch, sigma = 0, 0, 0, None
    if resume:
        tensors, state = checkpoint.load(checkpoint_file)
        checkpoint.check_same_config(state, config_yaml, checkpoint_file)
        checkpoint.restore_run_tensors(tensors, bank, optimizer)
        checkpoint.restore_rng(rng, state["rng"])
        first, sigma = tensors["first"].numpy(), tensors["sigma"].numpy()
        rows = list(tensors["rows"].numpy())
        history, seed = state["history"], state["seed"]
        snapshots = [Member(m.pop("name"), m.pop("seed"), m.pop("self_play_return"), m) for m in state["snapshots"]]
        iteration, first_epoch, done_in_epoch = state["iteration"], state["epoch"], state["done_in_epoch"]
        start -= state["train_time_s"]
    else:
        # the partners' self-play: their best achievable return (regret, minimax_regret; NaN for scripted
        # partners); the epoch-0 row
        first = returns_with_partners(game, policy, learner, partner_ids, episodes, rng, self_play=True,
                                      seats=partner_seats, agent_seat=seat).mean(-1)
        atomic_write(writer.staging / "config.yaml", config_yaml)
    partner_sp = first[:, 2]
    tb = SummaryWriter(str(writer.staging / "tb"), purge_step=iteration + 1 if resume else None)
    if not resume:
        tb.add_text("config", "```\n" + config_yaml + "\n```")
    bar = tqdm(total=config.train.iterations, initial=iteration, disable=not progress, unit="it",
               desc=f"learner ({config.solver['name']}) on {game.name}")

    def save_checkpoint(epoch: int, done: int) -> None:
        tensors = checkpoint.run_tensors(bank, optimizer)
        tensors.update(first=torch.as_tensor(first), sigma=torch.as_tensor(sigma),
                       rows=torch.as_tensor(np.stack(rows)))
        checkpoint.save(checkpoint_file, tensors, {
            "iteration": iteration, "epoch": epoch, "done_in_epoch": done, "rng": checkpoint.rng_state(rng),
            "seed": seed, "history": history, "snapshots": [m.to_dict() for m in snapshots],
            "config": config_yaml, "train_time_s": time.perf_counter() - start})

    def evaluate(epoch: int) -> dict:
        seats = first if epoch == 0 else returns_with_partners(game, policy, learner, partner_ids, episodes, rng,
                                                               seats=partner_seats, agent_seat=seat).mean(-1)
        row = np.nanmean(seats[:, :2], 1)  # both seatings averaged (the one a one-seat partner can play)
        rows.append(row)
        regret_mean, regret_max = regret_summary(partner_sp, row)
        record = {"epoch": epoch, "iteration": iteration, "return_mean": round(float(row.mean()), 4),
                  "return_worst": round(float(row.min()), 4), "worst_partner": names[int(row.argmin())],
                  "regret_mean": regret_mean, "regret_max": regret_max}
        for key in ("return_mean", "return_worst", "regret_mean", "regret_max"):
            if record[key] is not None:
                tb.add_scalar(f"learner/{key}", record[key], iteration)
        for name, value in zip(names, row.tolist()):
            tb.add_scalar(f"meta_game/return/{name}", value, iteration)
        bar.set_postfix(mean=f"{row.mean():.3f}", worst=f"{row.min():.3f}")
        return record

    def _next_epoch(epoch: int) -> tuple[np.ndarray, int]:
        """Steps 2a-2d of an epoch: the new row of M, the meta-strategy σ, snapshot k, a fresh oracle."""
        # 2a. evaluate the current learner: a new row of the meta-game
        record = evaluate(epoch)
        matrix = np.stack(rows)  # [snapshots, partners]
        # 2b. solve the meta-game for the partner mixture to train against
        extra = {"best": best_returns(partner_sp, matrix)} if config.solver["name"] == "minimax_regret" else {}
        sigma = solve(config.solver["name"], matrix, **solver_params, **extra)
        record["meta_strategy"] = [round(float(v), 6) for v in sigma]
        history.append(record)
        for name, value in zip(names, sigma.tolist()):
            tb.add_scalar(f"meta_strategy/{name}", value, iteration)
        tb.add_text("meta_game/matrix", _matrix_markdown(matrix, names, sigma), iteration)
        # 2c. snapshot k, written straight into the staging folder
        snap = f"{config.learner.name}-epoch-{epoch:02d}"
        bank.export_member(learner, writer.staging / "members" / snap)
        snapshots.append(Member(snap, seed, None,
                                {"snapshot_of": config.learner.name, "epoch": epoch, "iteration": iteration,
                                 "return_mean": record["return_mean"], "return_worst": record["return_worst"]}))
        # 2d. a fresh oracle for this epoch (PSRO): new LoRA init, Adam state forgotten
        new_seed = seed
        if config.learner.oracle == "fresh" and epoch > 0:
            new_seed = oracle_seed(config.learner.seed, epoch)
            bank.init_member(learner, new_seed, b_std=config.model.lora_init_std)
            optimizer.reset(learner)
        return sigma, new_seed

    with checkpoint.StopSignals() as stop:
        for epoch in range(first_epoch, config.train.epochs):
            if epoch > first_epoch or not resume:  # a resumed epoch has done 2a-2d already
                sigma, seed = _next_epoch(epoch)
                done_in_epoch = 0
            # 2e. train against sigma
            for done in range(done_in_epoch + 1, config.train.iterations_per_epoch + 1):
                iteration += 1
                t0 = time.perf_counter()
                pairs, groups = draw_training_pairs(sigma, config.train.episodes, learner, rng, partner_ids, training_seats)
                extra = {} if relabel is None else relabel.options(pairs.shape[0], rng)
                traj = rollout(game, policy, pairs, 1, rng, keep_distributions=False, **extra)
                returns = traj.returns[:, 0]  # [B]
                if config.learner.credit == "reward_to_go":  # [B, 1, T]: step t credited with G_t
                    togo = reward_to_go(traj.rewards[:, 0] * traj.alive[:, 0])
                    advantages = grouped_leave_one_out_advantage(togo, groups.to(togo.device))[:, None]
                else:  # [B, 1]: every step credited with the episode's return
                    advantages = grouped_leave_one_out_advantage(returns, groups.to(returns.device))[:, None]
                pg = rollout_policy_gradient_loss(traj, advantages, n_ids)[learner]  # per distinct row
                ent = rollout_entropy(traj, n_ids)[learner]
                loss = pg - entropy_coef_at(config.train, iteration) * ent
                optimizer.zero_grad()
                loss.backward()
                check_finite(loss[None], optimizer, iteration, [config.learner.name] * bank.n_members)
                optimizer.step(only_learner)
                tb.add_scalar("train/loss", float(loss.detach()), iteration)
                tb.add_scalar("train/return", float(returns.mean()), iteration)
                tb.add_scalar("train/entropy", float(ent.detach()), iteration)
                tb.add_scalar("time/iteration_s", time.perf_counter() - t0, iteration)
                bar.update(1)
                if iteration < config.train.iterations and checkpoint.due(iteration, config.train.checkpoint_every, stop):
                    save_checkpoint(epoch, done)
                    if stop.requested is not None:
                        tb.close()
                        raise Interrupted(writer.out, iteration, stop.requested)
    # 3. the final learner: last row of the meta-game, then save
    final = evaluate(config.train.epochs)
    history.append(final)
    bar.close()
    bank.export_member(learner, writer.staging / "members" / config.learner.name)
    matrix = np.stack(rows)
    # 3. the learner-side mixture over all rows of M (snapshots 0..K-1, then the final learner)
    row_members = [m.name for m in snapshots] + [config.learner.name]
    x = learner_mixture(matrix, config.solver["name"], best_returns(partner_sp, matrix))
    mixture = mixture_record(matrix, x, partner_sp, names, row_members, config.solver["name"])
    for key in ("return_mean", "return_worst", "regret_max"):
        if mixture[key] is not None:
            tb.add_scalar(f"mixture/{key}", mixture[key], iteration)
    tb.add_text("mixture/weights", ", ".join(f"{m} {w:.3f}" for m, w in mixture["weights"].items()), iteration)
    tb.close()
    learner_member = Member(config.learner.name, seed, None,
                            {"role": "learner", "oracle": config.learner.oracle, "return_mean": final["return_mean"],
                             "return_worst": final["return_worst"], "iteration": iteration})
    writer.write_manifest({
        "game": partners.game,
        "method": {"name": "learner", "solver": dict(config.solver)},
        "base_model": {"id": base.model_id, "fingerprint": base.fingerprint},
        "adapter": dict(adapter),
        "members": [m.to_dict() for m in [learner_member, *snapshots]],
        # the PSRO agent: per episode, member m with probability mixture[m] (see learner.mixture_summary)
        "mixture": mixture["weights"],
        "learner": {
            "partners": partners.describe(),
            "partner_names": names,
            "partner_self_play": [round(float(v), 4) if np.isfinite(v) else None for v in partner_sp],
            "solver": dict(config.solver),
            # M[k, i]: snapshot k (row k = the learner before epoch k; the last row = the final learner)
            "matrix": [[round(float(v), 4) for v in row] for row in matrix],
            "history": history,
            "oracle": config.learner.oracle,
            "seat": seat,  # the learner's seat (None: both)
            "mixture_summary": {k: v for k, v in mixture.items() if k != "weights"},
        },
        "training": {"epochs": config.train.epochs, "iterations": iteration, "episodes": config.train.episodes,
                     "eval_episodes": episodes, "return_mean": final["return_mean"],
                     "return_worst": final["return_worst"]},
        "wall_time_s": round(time.perf_counter() - start, 1),
    })
    return Population.load(writer.commit())


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
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    """A regret for the summary: '–' where no partner has a best return (scripted partners only)."""
    return f"{'–':>6}" if value is None else f"{value:6.3f}"
