"""Batched episodes for many (seat-0 member, seat-1 member) pairs at once.

One call plays E episodes for each of P pairs. At every step, each seat's observations are deduplicated
to distinct (member, observation) rows, all rows of all members are scored in one batched pass of the
AdapterBank, and actions are sampled from the exact policy over the legal actions. For a one-shot game
that is 2·P distinct rows whatever E is.

Shapes (P pairs, E episodes per pair, T = game horizon, A = max actions over seats):
    actions [P, E, T, 2]   logp [P, E, T, 2]   entropy [P, E, T, 2]   logp_all [P, E, T, 2, A]
    rewards [P, E, T]      alive [P, E, T] (the step was played)      returns [P, E]
``logp``/``entropy``/``logp_all`` carry gradients when ``grad=True`` (on-policy policy gradient).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from adhoc.games.core import SEATS, Game
from adhoc.lm.policy import Policy, entropy, masked_log_softmax


@dataclass
class Trajectories:
    pairs: torch.Tensor  # [P, 2] member index of each seat
    actions: torch.Tensor
    logp: torch.Tensor
    entropy: torch.Tensor
    logp_all: torch.Tensor
    rewards: torch.Tensor
    alive: torch.Tensor
    # observations[t][s]: the E·P texts seat s saw at step t (pair-major), so methods can re-score them
    # with other members (population-level objectives such as MEP's mean policy)
    observations: list[list[list[str]]] = field(default_factory=list)

    @property
    def returns(self) -> torch.Tensor:
        return (self.rewards * self.alive).sum(-1)  # [P, E]


def _score_rows(policy: Policy, members: torch.Tensor, observations: list[str], names: list[str]) -> torch.Tensor:
    """Action scores [len(observations), A], computing each distinct (member, observation) once."""
    index: dict[tuple[int, str], int] = {}
    row_of = []
    for m, o in zip(members.tolist(), observations):
        row_of.append(index.setdefault((m, o), len(index)))
    uniq_members = torch.tensor([m for m, _ in index], dtype=torch.long)
    uniq_obs = [o for _, o in index]
    scores = policy.scores(uniq_members, uniq_obs, policy.actions(names))  # [U, A]
    return scores[torch.tensor(row_of, device=scores.device)]


def rollout(game: Game, policy: Policy, pairs: torch.Tensor, episodes: int, rng: np.random.Generator,
            grad: bool = True, keep_distributions: bool = True,
            partner_maps: torch.Tensor | None = None) -> Trajectories:
    """Play ``episodes`` episodes for each row of ``pairs`` [P, 2]. ``keep_distributions=False`` leaves
    ``logp_all`` empty (evaluation needs only returns; [P, E, T, 2, A] can be large).

    ``partner_maps`` [P·E, A_1] (Other-Play): seat 1 acts in its own labels and the game sees the relabelled
    action ``partner_maps[e, a]``; ``actions`` records what the game saw, ``logp`` the policy's own choice."""
    P, E = pairs.shape[0], episodes
    n = P * E
    device = policy.base.device
    gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**63 - 1)))
    A = max(len(game.action_names(s)) for s in SEATS)
    state = game.reset(n, rng)
    seat_members = [pairs[:, s].repeat_interleave(E) for s in SEATS]  # [n] each, pair-major
    steps = {k: [] for k in ("actions", "logp", "entropy", "logp_all", "rewards", "alive")}
    observations: list[list[list[str]]] = []
    with torch.set_grad_enabled(grad):
        for _ in range(game.horizon):
            alive = ~state.done
            if not bool(alive.any()):
                break
            joint, logp_seats, ent_seats, all_seats = [], [], [], []
            seen = [game.observe(state, s) for s in SEATS]
            observations.append(seen)
            for s in SEATS:
                names = game.action_names(s)
                scores = _score_rows(policy, seat_members[s], seen[s], names)
                logp_all = masked_log_softmax(scores, game.legal_mask(state, s).to(scores.device))  # [n, A_s]
                a = torch.multinomial(logp_all.detach().exp().cpu(), 1, generator=gen)[:, 0]
                joint.append(a)
                logp_seats.append(logp_all.gather(1, a.to(device)[:, None])[:, 0])
                ent_seats.append(entropy(logp_all))
                if keep_distributions:
                    all_seats.append(torch.nn.functional.pad(logp_all, (0, A - len(names)), value=float("-inf")))
            if partner_maps is not None:
                joint[1] = partner_maps[torch.arange(n), joint[1]]
            actions = torch.stack(joint, 1)  # [n, 2]
            state, reward, _ = game.step(state, actions)
            steps["actions"].append(actions)
            steps["logp"].append(torch.stack(logp_seats, 1))
            steps["entropy"].append(torch.stack(ent_seats, 1))
            steps["logp_all"].append(torch.stack(all_seats, 1) if keep_distributions else torch.zeros(n, 2, 0))
            steps["rewards"].append(reward.float() * alive)
            steps["alive"].append(alive)
    out = {k: torch.stack([x.to(device) for x in v], 1) for k, v in steps.items()}  # [n, T, ...]
    return Trajectories(pairs=pairs.to(device), observations=observations,
                        **{k: v.view(P, E, *v.shape[1:]) for k, v in out.items()})


@torch.no_grad()
def episode_returns(game: Game, policy: Policy, pairs: torch.Tensor, episodes: int, rng: np.random.Generator,
                    max_episodes_per_call: int = 1 << 18) -> torch.Tensor:
    """Returns of ``episodes`` sampled episodes for every pair: [P, E], in chunks of pairs."""
    chunk = max(1, max_episodes_per_call // episodes)
    return torch.cat([rollout(game, policy, pairs[i:i + chunk], episodes, rng, grad=False,
                              keep_distributions=False).returns.cpu() for i in range(0, pairs.shape[0], chunk)])


def expected_returns(game: Game, policy: Policy, pairs: torch.Tensor, episodes: int,
                     rng: np.random.Generator) -> torch.Tensor:
    """Monte-Carlo mean return of each pair [P] from ``episodes`` sampled episodes."""
    return episode_returns(game, policy, pairs, episodes, rng).mean(1)
