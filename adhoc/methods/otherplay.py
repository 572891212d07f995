"""Other-Play (Hu, Lerer, Peysakhovich, Foerster, "Other-Play for zero-shot coordination", ICML 2020).

Objective (paper eq. 2): maximise J_OP(π) = E_{φ∼U(Φ)} J(π¹, φ(π²)), here with π¹ = π² = π_i (each member
trains with itself): the partner's actions are relabelled by a symmetry φ drawn uniformly from the game's
declared group Φ, afresh per EPISODE. Estimated by REINFORCE with a leave-one-out baseline and an entropy
bonus, exactly as self-play; only the episodes differ.

Symbols → code: Φ = ``game.symmetries()`` (a PermutationGroup), φ = one row of ``partner_maps`` [P·E, A_1]
(``partner_maps[e, b]`` = φ(b), the action the game sees when seat 1 picks b in its own labels). Seat 0 is
never relabelled, but where a multi-step game's Φ also moves seat 0's actions (the warehouse's grid
reflections) φ's seat-0 component, ``seat0_maps`` [P·E, A_0], goes to ``game.relabel_observation`` too:
seat 1 then sees the world (and seat 0's moves) transformed by φ⁻¹.
Shapes: pairs [N·R, 2] = (k, k); returns [N·R, E].

Restarts (``config.restarts`` = R). J_OP can have local optima that policy gradient from a near-uniform
start falls into. In the lever game J_OP = 0.9·p0² + (1 − p0)²/9 depends only on the mass p0 on the
unique lever; its gradient is negative below p0 = 2/18.2 ≈ 0.11, so a start at uniform (p0 = 0.1) slides to
the J_OP = 1/9 optimum of the 1.0 levers and only starts above 0.11 reach the global optimum 0.9. Each
member is therefore trained as R independently seeded restarts (slots k = r·N + i, all in the same batched
pass) and the restart with the highest J_OP, measured on fresh relabelled episodes, is saved. The choice
uses only the method's own objective, never knowledge of which action is special. R = 1 is plain OP.

Deviations from the paper: best-of-R restarts (above). The observation relabelling φ⁻¹(o) is the identity
in one-shot matrix games (observations mention no action labels); multi-step games must provide
``relabel_observation`` and are refused until they do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adhoc.errors import UserError
from adhoc._torch import torch
from adhoc.methods.selfplay import SelfPlay
from adhoc.params import MAX_RESTARTS, ranged


@dataclass
class OtherPlayConfig:
    name: str = "otherplay"
    restarts: int = ranged(1, 1, MAX_RESTARTS)  # independently seeded restarts per member; the best by J_OP is saved


class Relabelling:
    """Other-Play's relabelling of seat 1 by a uniformly random symmetry φ of ``game`` per episode, as
    ``rollout`` options. Also the robust learner's symmetry augmentation (``learner.augment``)."""

    def __init__(self, game, who: str) -> None:
        self.group = game.symmetries()
        if self.group is None or self.group.order() <= 1:
            raise UserError(f"{who} needs a game with declared symmetries; game '{game.name}' declares none")
        if game.horizon != 1 and not hasattr(game, "relabel_observation"):
            raise UserError(f"{who}: game '{game.name}' is multi-step and does not relabel observations")
        # seat 1 sees seat 0's moves in a multi-step game: a group that moves them changes seat 1's view
        identity = np.arange(self.group.action_counts[0])
        self.moves_seat0 = game.horizon != 1 and any(not np.array_equal(g[0], identity)
                                                     for g in self.group.generators())

    def options(self, n: int, rng: np.random.Generator) -> dict:
        """``partner_maps`` [n, A_1] (and ``seat0_maps`` [n, A_0] where seat 1 sees seat 0's moves)."""
        element = self.group.sample(n, rng)
        options = {"partner_maps": torch.as_tensor(element[1], dtype=torch.long)}  # seat 1's relabelling
        if self.moves_seat0:
            options["seat0_maps"] = torch.as_tensor(element[0], dtype=torch.long)
        return options


class OtherPlay(SelfPlay):
    ppo_refusal = "its relabelled partner episodes are not replayed under their relabelling yet"

    def __init__(self, config: OtherPlayConfig, game, n_members: int) -> None:
        restarts = getattr(config, "restarts", 1)
        if restarts < 1:
            raise UserError(f"method.restarts must be >= 1 (got {restarts})")
        super().__init__(config, game, n_members * restarts)
        self.population_size = n_members
        self.relabel = Relabelling(game, "method otherplay")

    def rollout_options(self, pairs: torch.Tensor, episodes: int, rng: np.random.Generator) -> dict:
        return self.relabel.options(pairs.shape[0] * episodes, rng)  # one φ per episode

    def objective_returns(self, episodes: int, rng: np.random.Generator) -> torch.Tensor:
        """J_OP of every trained member [n_members]: self-play with the partner relabelled per episode."""
        from adhoc.rollout import rollout

        slots = torch.arange(self.n_members)
        pairs = torch.stack([slots, slots], 1)
        traj = rollout(self.game, self.policy, pairs, episodes, rng, grad=False, keep_distributions=False,
                       **self.rollout_options(pairs, episodes, rng))
        # a game that pays each seat its own reward: the mean of both seats' returns (0 in a zero-sum game)
        return (traj.seat_returns.mean(-1) if traj.per_seat else traj.returns).mean(1).cpu()

    def select(self, episodes: int, rng: np.random.Generator) -> tuple[list[int], torch.Tensor | None]:
        if self.n_members == self.population_size:
            return super().select(episodes, rng)
        objective = self.objective_returns(episodes, rng)
        best = objective.view(-1, self.population_size).argmax(0)  # [N]: the best restart r of member i
        return (best * self.population_size + torch.arange(self.population_size)).tolist(), objective
