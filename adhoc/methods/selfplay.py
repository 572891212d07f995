"""Self-play (multi-seed): each member trains only with itself; independent seeds give the baseline
population whose members settle on arbitrary conventions (docs/reference.md, "selfplay").

Objective per member i: maximise J_SP(π_i) = E[G | π_i in both seats], estimated by REINFORCE with a
leave-one-out baseline over the E episodes of the pair (i, i), plus an entropy bonus
(coefficient ``train.entropy_coef``). Both seats' log-probabilities belong to member i.
Shapes: pairs [N, 2] = (i, i); returns [N, E].

Games that pay each seat its own reward (zero-sum, general-sum): each seat's log-probabilities are weighted
by that seat's own return, baselined per role (``method.role_baseline``, default true; SPIRAL's
role-conditioned advantage estimation, Liu et al. 2025, with the pair's other episodes in place of its
moving average). In zero-sum self-play member i is its own opponent.

``train.algorithm: ppo``: the same pairs trained by PPO with a value head per member (``adhoc.methods.ppo``;
each seat's advantages from its own rewards, so the values are role-conditioned by the seat's observation).
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

from adhoc._torch import torch
from adhoc.methods.common import (leave_one_out_advantage, rollout_entropy, rollout_policy_gradient_loss,
                                  seat_leave_one_out_advantage)
from adhoc.reductions import members_with_data

if TYPE_CHECKING:
    from adhoc.rollout import Trajectories


@dataclass
class SelfPlayConfig:
    name: str = "selfplay"
    # games that pay each seat its own reward: baseline each role by its own returns (False: one shared baseline)
    role_baseline: bool = True


class SelfPlay:
    """Every member paired with itself."""
    ppo_refusal: str | None = None  # why train.algorithm=ppo is refused (None: supported, adhoc.methods.ppo)

    def __init__(self, config: SelfPlayConfig, game, n_members: int) -> None:
        # n_members: adapters trained in the bank; population_size: members saved (fewer when a method trains
        # several restarts per member and keeps the best, see ``select``)
        self.config, self.game, self.n_members, self.population_size = config, game, n_members, n_members
        self.policy = None  # the population's Policy, attached by the trainer (for population-level terms)

    def pairs(self, iteration: int, rng: np.random.Generator) -> torch.Tensor:
        members = torch.arange(self.n_members)
        return torch.stack([members, members], 1)  # [N, 2]

    evaluate_at_start = False  # evaluate once before training (methods that keep checkpoints)

    def on_evaluation(self, iteration: int, sp: torch.Tensor, bank) -> None:
        """Called after each evaluation with the members' self-play returns [N]."""

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The method's own state for a checkpoint (none for self-play: its state is the bank)."""
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore ``state_tensors`` from a checkpoint (``tensors`` may hold other keys too)."""

    def slot_name(self, slot: int, names: list[str]) -> str:
        """Name (in logs) of a trained adapter beyond the population's members (``names``)."""
        return f"{names[slot % len(names)]}-restart{slot // len(names)}"

    def select(self, episodes: int, rng: np.random.Generator) -> tuple[list[int], torch.Tensor | None]:
        """The trained members to save as the population, in order (all of them here), and the objective
        returns [n_members] they were chosen by (None: no choice was made)."""
        return list(range(self.n_members)), None

    def extra_members(self, final: torch.Tensor) -> list:
        """Members besides the N trained ones to save: (member, weights, label, self-play return)."""
        return []

    def rollout_options(self, pairs: torch.Tensor, episodes: int, rng: np.random.Generator) -> dict:
        """Extra arguments of ``rollout`` for this method's training episodes (none for self-play)."""
        return {}

    def ppo_rewards(self, traj: Trajectories) -> tuple[torch.Tensor, dict[str, float]]:
        """Each seat's reward at each step for PPO's GAE [P, E, T, 2] (0 after an episode ends; a method that
        shapes the reward adds its term here), and scalar metrics."""
        return traj.seat_rewards * traj.alive[..., None], {}

    def loss(self, traj: Trajectories, entropy_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
        """Per-member loss [N] and scalar metrics. A game that pays each seat its own reward trains each seat's
        actions on that seat's return (``seat_leave_one_out_advantage``)."""
        return self.reinforce_loss(traj, traj.seat_returns if traj.per_seat else traj.returns, entropy_coef)

    def reinforce_loss(self, traj: Trajectories, returns: torch.Tensor,
                       entropy_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
        """REINFORCE with the leave-one-out baseline on ``returns`` [P, E] (shaped or not; or [P, E, 2], one per
        seat) − entropy bonus."""
        if returns.dim() == 3:
            advantages = seat_leave_one_out_advantage(returns, getattr(self.config, "role_baseline", True))
            pg = rollout_policy_gradient_loss(traj, advantages, self.n_members, seats=True)
        else:
            pg = rollout_policy_gradient_loss(traj, leave_one_out_advantage(returns), self.n_members)
        ent = rollout_entropy(traj, self.n_members)
        # the mean over the members that played (all of them, but on a data-parallel worker: its own)
        played = members_with_data(traj.pairs, self.n_members)
        return pg - entropy_coef * ent, {"train/entropy": float(ent.detach()[played].mean())}
