"""Other-Play (Hu, Lerer, Peysakhovich, Foerster, "Other-Play for zero-shot coordination", ICML 2020).

Objective (paper eq. 2): maximise E_{φ∼U(Φ)} J(π¹, φ(π²)), here with π¹ = π² = π_i (each member trains with
itself): the partner's actions are relabelled by a symmetry φ drawn uniformly from the game's declared
group Φ, afresh per EPISODE. Estimated by REINFORCE with a leave-one-out baseline and an entropy bonus,
exactly as self-play; only the episodes differ.

Symbols → code: Φ = ``game.symmetries()`` (a PermutationGroup), φ = one row of ``partner_maps`` [P·E, A_1]
(``partner_maps[e, b]`` = φ(b), the action the game sees when seat 1 picks b in its own labels).
Shapes: pairs [N, 2] = (i, i); returns [N, E].

Deviations from the paper: none in the objective. The observation relabelling φ⁻¹(o) is the identity in
one-shot matrix games (observations mention no action labels); multi-step games must provide
``relabel_observation`` and are refused until they do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from adhoc.errors import UserError
from adhoc.methods.selfplay import SelfPlay


@dataclass
class OtherPlayConfig:
    name: str = "otherplay"


class OtherPlay(SelfPlay):
    def __init__(self, config: OtherPlayConfig, game, n_members: int) -> None:
        super().__init__(config, game, n_members)
        self.group = game.symmetries()
        if self.group is None or self.group.order() <= 1:
            raise UserError(f"method otherplay needs a game with declared symmetries; game '{game.name}' declares none")
        if game.horizon != 1 and not hasattr(game, "relabel_observation"):
            raise UserError(f"method otherplay: game '{game.name}' is multi-step and does not relabel observations")

    def rollout_options(self, pairs: torch.Tensor, episodes: int, rng: np.random.Generator) -> dict:
        maps = self.group.sample(pairs.shape[0] * episodes, rng)[1]  # seat 1's relabelling, one per episode
        return {"partner_maps": torch.as_tensor(maps, dtype=torch.long)}
