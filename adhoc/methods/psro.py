"""PSRO on a two-player zero-sum game (Lanctot et al., "A unified game-theoretic approach to multiagent
reinforcement learning", NeurIPS 2017): the population grows by one best response per epoch.

Members are policies for both seats (each member reads which seat it plays from its observation), so the
meta-game is symmetric: A[i, j] = (G₀(i, j) + G₁(j, i)) / 2, member i's own return against member j averaged
over the two seatings (``train.eval_episodes`` episodes per seating, or, with ``method.meta_game: exact`` on an
OpenSpiel game small enough to enumerate, the exact expectation over the game tree). A is antisymmetric
(A[j, i] = −A[i, j] in a zero-sum game), and is stored so exactly: only i > j is played.

The loop over the population's N = ``population.size`` members, epochs k = 1 … N − 1 of
``method.iterations_per_epoch`` iterations each (``train.iterations`` must be their product):

1. at the start of epoch k, member k − 1 is frozen: its row of A against members 0 … k − 2 is played, and the
   meta-strategy σ over members 0 … k − 1 is solved (``method.meta_solver``: ``nash``, the maximin strategy
   of the symmetric zero-sum game A by linear program, as PSRO; ``uniform``, fictitious self-play; ``last``,
   iterated best response to the newest member);
2. member k, fresh (its LoRA as initialised, never trained), is trained as a best response to σ: every
   iteration plays it against every member j < k with σ_j > 0 in both seatings (``train.episodes_per_pair``
   episodes each) and weights the policy gradient of its own actions by σ_j, with a leave-one-out baseline within each
   (partner, seating) pair. Only member k moves (``active``).

Member 0 is never trained: the population's initial policy, the base model's own (near uniform with a random
base). At the end (``select``) the last member's row is played and the final σ solved over all N members;
the manifest stores A, σ per epoch and the final mixture (``psro``).

Exploitability: for an OpenSpiel game small enough to enumerate, every epoch's σ-mixture (and the final one)
is turned into an OpenSpiel tabular policy and its exploitability computed by OpenSpiel
(``adhoc.exploitability``); logged as ``psro/exploitability`` and stored per epoch.

Symbols → code: A = ``self.meta`` [N, N] (NaN where not played yet), σ = ``self.sigma`` [N] (0 beyond the
members that exist), k = ``self.learner(iteration)``. Deviations: the oracle is ``iterations_per_epoch``
steps of REINFORCE rather than an exact best response; A is estimated from samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adhoc._torch import torch
from adhoc.errors import UserError
from adhoc.games.core import own_seat, payoff_kind
from adhoc.methods.common import grouped_leave_one_out_advantage, leave_one_out_advantage, rollout_entropy
from adhoc.methods.selfplay import SelfPlay
from adhoc.params import chosen, ranged

META_SOLVERS = ("nash", "uniform", "last")
BASELINES = ("pair", "first_observation")


@dataclass
class PSROConfig:
    name: str = "psro"
    iterations_per_epoch: int = ranged(50, 1, 100_000)  # training iterations of each new best response
    meta_solver: str = chosen("nash", META_SOLVERS)  # the meta-strategy each best response is trained against
    # the best response's baseline: the pair's other episodes (pair), or those in which it saw the same first
    # observation (first_observation: in a card game, the same hand)
    baseline: str = chosen("first_observation", BASELINES)
    # the meta-game's entries: from train.eval_episodes sampled episodes, or computed exactly over the game tree
    # (an OpenSpiel game small enough to enumerate: no sampling noise in A, hence in σ)
    meta_game: str = chosen("sampled", ("sampled", "exact"))
    # the entropy bonus within each epoch: train.entropy_coef's value throughout (constant), or that value
    # annealed linearly to 0 over the epoch's iterations (anneal: each best response ends near deterministic)
    entropy: str = chosen("constant", ("constant", "anneal"))


def meta_strategy(meta: np.ndarray, solver: str) -> np.ndarray:
    """σ over the k members of the symmetric zero-sum meta-game ``meta`` [k, k]: ``nash`` (maximin by LP),
    ``uniform`` or ``last`` (all weight on member k − 1)."""
    k = meta.shape[0]
    if solver == "uniform":
        return np.full(k, 1.0 / k)
    if solver == "last":
        return np.eye(k)[k - 1]
    from adhoc.solvers import nash_zero_sum

    return nash_zero_sum(meta)[0]


def psro_pairs(learner: int, partners=None) -> torch.Tensor:
    """Learner k against every member j < k (or the given ``partners``), k in seat 0 then in seat 1: [2k, 2]."""
    others = torch.arange(learner) if partners is None else torch.as_tensor(partners, dtype=torch.long)
    me = torch.full_like(others, learner)
    return torch.cat([torch.stack([me, others], 1), torch.stack([others, me], 1)])


class PSRO(SelfPlay):
    ppo_refusal = "its best responses train against a mixture with its own loss, not ported to PPO yet"

    def __init__(self, config: PSROConfig, game, n_members: int) -> None:
        if payoff_kind(game) != "zero_sum":
            raise UserError(f"method psro solves a zero-sum meta-game; game '{game.name}' is "
                            f"{payoff_kind(game).replace('_', '-')}")
        if n_members < 2:
            raise UserError("method psro needs population.size >= 2 (the initial policy and one best response)")
        if config.meta_game == "exact" and game.name != "openspiel":
            raise UserError(f"method.meta_game=exact needs an OpenSpiel game to enumerate; game '{game.name}' "
                            "is not one: use method.meta_game=sampled")
        super().__init__(config, game, n_members)
        self.meta = np.full((n_members, n_members), np.nan)
        np.fill_diagonal(self.meta, 0.0)
        self.sigma = np.zeros(n_members)
        self.sigma[0] = 1.0
        self.history: list[dict] = []  # per epoch: σ, and its exploitability where computed
        self.exploitability_of = None  # (weights [N]) -> float or None, attached by the trainer

    def check_train(self, train) -> None:
        """``train.iterations`` must be (N − 1) epochs × ``iterations_per_epoch`` (refused before any work)."""
        want = (self.n_members - 1) * self.config.iterations_per_epoch
        if train.iterations != want:
            raise UserError(f"method psro trains population.size - 1 = {self.n_members - 1} best responses of "
                            f"method.iterations_per_epoch = {self.config.iterations_per_epoch} iterations: set "
                            f"train.iterations={want} (got {train.iterations})")

    def learner(self, iteration: int) -> int:
        """The member trained at ``iteration`` (1-based): k = 1 + (iteration − 1) // iterations_per_epoch."""
        return min(1 + (iteration - 1) // self.config.iterations_per_epoch, self.n_members - 1)

    def entropy_scale(self, iteration: int) -> float:
        """The factor on the entropy bonus at ``iteration``: 1, or (``entropy: anneal``) 1 − j / J at the epoch's
        j-th of J iterations (j = 0 … J − 1)."""
        if self.config.entropy == "constant":
            return 1.0
        return 1.0 - ((iteration - 1) % self.config.iterations_per_epoch) / self.config.iterations_per_epoch

    def pairs(self, iteration: int, rng: np.random.Generator) -> torch.Tensor:
        k = self.learner(iteration)
        self.scale = self.entropy_scale(iteration)
        if (iteration - 1) % self.config.iterations_per_epoch == 0 and len(self.history) < k:
            self._grow(k, rng)  # epoch k starts: member k - 1 joins the meta-game
        return psro_pairs(k, np.flatnonzero(self.sigma[:k] > 0))  # a partner σ leaves out adds nothing

    def active(self, pairs: torch.Tensor, n_members: int) -> torch.Tensor:
        """[N] bool: only the learner moves (its partners' Adam moments would otherwise still move them)."""
        out = torch.zeros(n_members, dtype=torch.bool)
        out[int(pairs.max())] = True  # the learner: every partner is an earlier member
        return out

    def _play_row(self, member: int, rng: np.random.Generator) -> None:
        """A[member, j] and A[j, member] = −A[member, j] for every j < member."""
        if member == 0:
            return
        from adhoc.rollout import episode_returns

        pairs = psro_pairs(member)
        if self.config.meta_game == "exact":
            from adhoc.exploitability import exact_returns

            both = torch.as_tensor(exact_returns(self.game, self.policy, pairs))[:, None]  # [2m, 1, 2]
        else:
            both = episode_returns(self.game, self.policy, pairs, self.eval_episodes, rng, seats=True)  # [2m, E, 2]
        own = torch.stack([both[:member, :, 0], both[member:, :, 1]], 1)  # [m, 2, E]: its seat-0, seat-1 returns
        row = own.mean(-1).mean(-1).numpy()  # both seatings
        self.meta[member, :member] = row
        self.meta[:member, member] = -row

    def _grow(self, k: int, rng: np.random.Generator) -> None:
        self._play_row(k - 1, rng)
        self._solve(k, rng)

    def _solve(self, k: int, rng: np.random.Generator) -> None:
        """σ over members 0 … k − 1 and its record (with its exploitability where computed)."""
        sigma = meta_strategy(self.meta[:k, :k], self.config.meta_solver)
        self.sigma = np.concatenate([sigma, np.zeros(self.n_members - k)])
        record = {"epoch": len(self.history) + 1, "members": k, "meta_strategy": [round(float(v), 6) for v in sigma]}
        if self.exploitability_of is not None:
            try:
                record["exploitability"] = round(float(self.exploitability_of(self.sigma)), 6)
            except UserError as exc:  # too large to enumerate, say: said once, then not tried again
                record["exploitability_not_computed"] = str(exc)
                self.exploitability_of = None
        self.history.append(record)

    eval_episodes = 64  # episodes per seating of each meta-game entry (``attach``: train.eval_episodes)
    scale = 1.0  # the entropy bonus's factor at the current iteration (``pairs``)

    def attach(self, config) -> None:
        """The run's settings: ``train.eval_episodes`` per meta-game entry, and OpenSpiel's exploitability of
        each σ-mixture where the game is an OpenSpiel game small enough to enumerate."""
        self.eval_episodes = config.train.eval_episodes
        if self.game.name == "openspiel":
            from adhoc.exploitability import exploitability

            self.exploitability_of = lambda sigma: exploitability(self.game, self.policy, sigma)

    def loss(self, traj, entropy_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
        """REINFORCE of the learner's own actions, each pair weighted by σ of its partner; the other members'
        losses are 0 (they are frozen)."""
        pairs = traj.pairs
        k = int(pairs.max())  # the learner: every partner is an earlier member
        seat = (pairs[:, 1] == k).long()  # [P]: the learner's seat in each pair
        partner = pairs[torch.arange(len(pairs)), 1 - seat]
        weight = torch.as_tensor(self.sigma, dtype=traj.seat_rewards.dtype, device=pairs.device)[partner]  # [P]
        adv = self.advantages(traj, seat)  # [P, E]: the learner's
        mine = torch.nn.functional.one_hot(seat, 2).to(adv.dtype)  # [P, 2]
        weights = -(adv[:, :, None] * mine[:, None, :] * weight[:, None, None])[:, :, None, :] * traj.alive[..., None]
        steps = (traj.alive.sum((1, 2)).to(adv.dtype) * weight).sum().clamp(min=1e-12)  # σ-weighted steps played
        pg = traj.logp_dot(weights, self.n_members) / steps
        ent = rollout_entropy(traj, self.n_members)
        only = torch.zeros(self.n_members, dtype=pg.dtype, device=pg.device)
        only[k] = 1.0
        metrics = {"train/entropy": float(ent.detach()[k])}
        if self.history and "exploitability" in self.history[-1]:
            metrics["psro/exploitability"] = self.history[-1]["exploitability"]
        return only * (pg - entropy_coef * self.scale * ent), metrics

    def advantages(self, traj, seat: torch.Tensor) -> torch.Tensor:
        """The learner's advantages [P, E]: its return (in its seat ``seat`` [P]) minus the mean of its returns in
        the pair's other episodes, or (``first_observation``) in the pair's other episodes that began with the
        same observation of its seat. The first observation comes from chance alone (the deal), never from the
        learner's actions, so conditioning the baseline on it keeps the gradient unbiased."""
        P, E = traj.seat_returns.shape[:2]
        own = own_seat(traj.seat_returns, seat)  # [P, E]
        if self.config.baseline == "pair":
            return leave_one_out_advantage(own)
        first = traj.observations[0]  # [seat][P·E texts], pair-major
        index: dict[tuple, int] = {}
        groups = torch.tensor([index.setdefault((p, first[int(seat[p])][p * E + e]), len(index))
                               for p in range(P) for e in range(E)], device=own.device)
        return grouped_leave_one_out_advantage(own.reshape(-1), groups).view(P, E)

    def select(self, episodes: int, rng: np.random.Generator) -> tuple[list[int], torch.Tensor | None]:
        """Every member; the last one's row of A is played and the final σ solved over all N."""
        if len(self.history) < self.n_members:
            self._play_row(self.n_members - 1, rng)
            self._solve(self.n_members, rng)
        return list(range(self.n_members)), None

    def manifest(self, names: list[str]) -> dict:
        """What the population's manifest records of the run: A, σ per epoch, the final mixture."""
        return {"psro": {"meta_solver": self.config.meta_solver, "matrix": np.round(self.meta, 6).tolist(),
                         "history": self.history,
                         "mixture": {n: round(float(w), 6) for n, w in zip(names, self.sigma) if w > 1e-9}}}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"psro.meta": torch.as_tensor(self.meta), "psro.sigma": torch.as_tensor(self.sigma),
                "psro.exploitability": torch.tensor([r.get("exploitability", float("nan")) for r in self.history],
                                                    dtype=torch.float64)}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.meta, self.sigma = tensors["psro.meta"].numpy().copy(), tensors["psro.sigma"].numpy().copy()
        self.history = []
        for k, value in enumerate(tensors["psro.exploitability"].tolist(), start=1):
            sigma = meta_strategy(self.meta[:k, :k], self.config.meta_solver)
            record = {"epoch": k, "members": k, "meta_strategy": [round(float(v), 6) for v in sigma]}
            if not np.isnan(value):
                record["exploitability"] = round(value, 6)
            self.history.append(record)
