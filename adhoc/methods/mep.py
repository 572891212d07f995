"""Maximum Entropy Population-based training, stage 1 (Zhao et al., "Maximum entropy population-based
training for zero-shot human-AI coordination", AAAI 2023).

Paper objective (eq. 4–5): each member i maximises its self-play return with the shaped reward
    r̃_t = r_t + α · (−log π̄(a_t | s_t)),        π̄(·|s) = (1/N) Σ_j π_j(·|s),
π̄ the mean policy of the WHOLE population, member i included, so that members are pushed towards actions
the population as a whole rarely takes (a lower bound of the population entropy).

Symbols → code: α = ``config.alpha``; π_j(·|s_t) = ``population_logp`` [N, R, A] (every member scored on
every visited row's observation, without gradient: the bonus is a reward); a_t = ``actions`` [R];
−log π̄(a_t|s_t) = ``population_entropy_bonus`` [R]. Each seat's bonus is added to the episode return of
the member in that seat (both seats are member i in self-play), then REINFORCE with the leave-one-out
baseline and the entropy bonus, as self-play.

The bonus is computed PER ROW of the batch: the released MEP code indexes the flattened probability array
without an axis and reads the first environment's probabilities for the whole batch; that bug is avoided
(and tested). With ``train.algorithm: ppo`` the shaped reward enters GAE step by step (``ppo_rewards``), π̄
taken under the weights that played the rollout. Deviations: REINFORCE instead of PPO by default; stage 2 (the
robust agent with prioritized sampling) is the learner's ``prioritized`` solver, not part of this method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adhoc._torch import torch
from adhoc.methods.common import population_logp, require_common_payoff
from adhoc.methods.selfplay import SelfPlay
from adhoc.params import MAX_COEF, ranged

if TYPE_CHECKING:
    from adhoc.rollout import Trajectories


@dataclass
class MEPConfig:
    name: str = "mep"
    alpha: float = ranged(0.01, 0, MAX_COEF)  # weight of the population-entropy bonus (the MEP README's value)


def population_entropy_bonus(population_logp: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """−log π̄(a_r | s_r) per row: population_logp [N, R, A] (log π_j at row r's observation), actions [R]."""
    taken = population_logp.gather(2, actions.view(1, -1, 1).expand(population_logp.shape[0], -1, 1))[..., 0]  # [N, R]
    return -(torch.logsumexp(taken, dim=0) - math.log(population_logp.shape[0]))


class MEP(SelfPlay):
    def __init__(self, config: MEPConfig, game, n_members: int) -> None:
        require_common_payoff(game, "mep", "its population-entropy bonus assumes partners who share the reward")
        super().__init__(config, game, n_members)

    def step_bonus(self, traj: Trajectories) -> torch.Tensor:
        """−log π̄(a|s) of every step and seat: [P, E, T, 2], 0 where not played (a reward: no gradient)."""
        with torch.no_grad():
            logp = population_logp(self.policy, self.game, traj, self.n_members)  # [N, P, E, T, 2]
        N, P, E, T, _ = logp.shape
        rows = logp.reshape(N, -1, 1)  # [N, R, 1]: each row's taken action, so "action 0" below
        bonus = population_entropy_bonus(rows, torch.zeros(rows.shape[1], dtype=torch.long, device=rows.device))
        alive = traj.alive[..., None].expand(P, E, T, 2).reshape(-1)
        return (bonus * alive).view(P, E, T, 2)

    def bonus(self, traj: Trajectories) -> torch.Tensor:
        """Σ over steps and seats of −log π̄(a|s): [P, E] (a reward: no gradient)."""
        return self.step_bonus(traj).sum((2, 3))

    def ppo_rewards(self, traj: Trajectories) -> tuple[torch.Tensor, dict[str, float]]:
        """PPO (``train.algorithm: ppo``): the shaped reward r̃_t = r_t + α Σ_seats −log π̄(a_t^s | s_t) at every
        step, for both seats (the common payoff of REINFORCE's shaped return, step by step)."""
        bonus = self.step_bonus(traj)
        rewards, _ = super().ppo_rewards(traj)
        shaped = rewards + self.config.alpha * bonus.sum(3, keepdim=True)
        return shaped, {"train/population_entropy_bonus": float(bonus.sum((2, 3)).mean())}

    def loss(self, traj: Trajectories, entropy_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
        bonus = self.bonus(traj)
        loss, metrics = self.reinforce_loss(traj, traj.returns + self.config.alpha * bonus, entropy_coef)
        return loss, metrics | {"train/population_entropy_bonus": float(bonus.mean())}
