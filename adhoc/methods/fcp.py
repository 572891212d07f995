"""Fictitious Co-Play, partner population (Strouse et al., "Collaborating with humans without human data",
NeurIPS 2021, section 3).

The partner population is N self-play seeds plus past checkpoints of each: the initial (random) one, the
one whose self-play return is closest to half the final return, and the final one, i.e. 3N members.
Training is exactly self-play (REINFORCE or PPO); this method only records checkpoints at every evaluation and
returns the extra members at the end; with PPO each checkpoint keeps the member's value head as it was then.

Symbols → code: checkpoints are snapshots of the bank's stacked member tensors (``bank.member_parameters()``,
each [N, ...]) taken at iteration 0 and at every evaluation, with the self-play returns ``sp`` [N] measured
then. Deviations: checkpoints exist only at evaluation iterations (``train.eval_every``), so "closest to half
the final return" is chosen among those; the paper checkpoints more often. On a zero-sum game a member's
self-play return (seat 0's) is the first mover's edge, not its skill, so the "half" checkpoint is the middle
evaluation in time instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from adhoc._torch import torch
from adhoc.games.core import payoff_kind
from adhoc.methods.selfplay import SelfPlay


@dataclass
class FCPConfig:
    name: str = "fcp"


def half_return_checkpoint(history: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
    """Index of the checkpoint whose return is closest to half the final one, per member.
    history: [C, N] returns at each checkpoint; final: [N] → [N] (earliest on ties)."""
    return (history - final[None] / 2).abs().argmin(0)


class FCP(SelfPlay):
    evaluate_at_start = True  # PPO (train.algorithm: ppo): a snapshot holds the value heads too (member_parameters)

    def __init__(self, config: FCPConfig, game, n_members: int) -> None:
        super().__init__(config, game, n_members)
        self.snapshots: list[list[torch.Tensor]] = []
        self.returns: list[torch.Tensor] = []

    def on_evaluation(self, iteration: int, sp: torch.Tensor, bank) -> None:
        self.snapshots.append([p.detach().clone() for p in bank.member_parameters()])
        self.returns.append(sp.detach().clone())

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"fcp.returns.{c}": r for c, r in enumerate(self.returns)}
        out.update({f"fcp.snapshot.{c}.{j}": p for c, snap in enumerate(self.snapshots) for j, p in enumerate(snap)})
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        n_checkpoints = sum(k.startswith("fcp.returns.") for k in tensors)
        n_tensors = sum(k.startswith("fcp.snapshot.0.") for k in tensors)
        self.returns = [tensors[f"fcp.returns.{c}"] for c in range(n_checkpoints)]
        self.snapshots = [[tensors[f"fcp.snapshot.{c}.{j}"] for j in range(n_tensors)] for c in range(n_checkpoints)]

    def extra_members(self, final: torch.Tensor) -> list[tuple[int, list[torch.Tensor], str, float]]:
        """(member, weights, checkpoint label, self-play return) for the initial and half-way checkpoints."""
        history = torch.stack(self.returns)  # [C, N]
        half = half_return_checkpoint(history, final) if payoff_kind(self.game) != "zero_sum" else \
            torch.full((self.n_members,), len(history) // 2, dtype=torch.long)
        out = []
        for i in range(self.n_members):
            out.append((i, self.snapshots[0], "init", float(history[0, i])))
            out.append((i, self.snapshots[int(half[i])], "half", float(history[half[i], i])))
        return out
