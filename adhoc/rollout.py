"""Batched episodes for many (seat-0 member, seat-1 member) pairs at once.

One call plays E episodes for each of P pairs. At every step, each seat's observations are deduplicated
to distinct (member, observation) rows, all rows of all members are scored in one batched pass of the
AdapterBank, and actions are sampled from the exact policy over the legal actions. For a one-shot game
that is 2·P distinct rows whatever E is.

Multi-step games: a seat with a single legal action in a row (the other seat's turn) is not scored; each
seat's encoded observations are kept (the key/value cache) and the next step encodes only what was
appended to each episode's observation (``prefix_reuse``, ``Policy.scores_reusing``), so a step costs the
new tokens, not the whole history. Member ids beyond the AdapterBank are scripted strategies
(``policy.scripted``, see ``adhoc.scripted``).

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


def _distinct_rows(members: torch.Tensor, observations: list[str]
                   ) -> tuple[torch.Tensor, list[str], list[int], list[int]]:
    """The distinct (member, observation) rows: (members [U], observations [U], ``row_of`` [n]: each row's
    distinct row, ``first`` [U]: the first row showing each distinct row)."""
    index: dict[tuple[int, str], int] = {}
    row_of, first = [], []
    for i, key in enumerate(zip(members.tolist(), observations)):
        u = index.setdefault(key, len(index))
        row_of.append(u)
        if u == len(first):
            first.append(i)
    return torch.tensor([m for m, _ in index], dtype=torch.long), [o for _, o in index], row_of, first


def _score_rows(policy: Policy, members: torch.Tensor, observations: list[str], names: list[str]) -> torch.Tensor:
    """Action scores [len(observations), A], computing each distinct (member, observation) once."""
    uniq_members, uniq_obs, row_of, _ = _distinct_rows(members, observations)
    scores = policy.scores(uniq_members, uniq_obs, policy.actions(names))  # [U, A]
    return scores[torch.tensor(row_of, device=scores.device)]


class _PrefixCache:
    """One seat's encoded prompts from its last scored step, and which encoded row each episode last used
    (``row`` [n], -1: none), so the next step encodes only each observation's new suffix."""

    def __init__(self, n: int) -> None:
        self.encoded = None
        self.row = [-1] * n

    def score(self, policy: Policy, members: torch.Tensor, observations: list[str], episodes: list[int],
              names: list[str]) -> torch.Tensor:
        uniq_members, uniq_obs, row_of, first = _distinct_rows(members, observations)
        previous = [self.row[episodes[i]] for i in first]  # each distinct row's encoding at the last step
        scores, self.encoded, encoded_row = policy.scores_reusing(
            uniq_members, uniq_obs, policy.actions(names), self.encoded, previous)
        self.row = [-1] * len(self.row)  # rows of older encodings are gone
        for e, u in zip(episodes, row_of):
            self.row[e] = int(encoded_row[u])
        return scores[torch.tensor(row_of, device=scores.device)]


def _seat_log_probs(game: Game, policy: Policy, state, seat: int, members: torch.Tensor, observations: list[str],
                    legal: torch.Tensor, cache: _PrefixCache | None) -> torch.Tensor:
    """log π [n, A_seat] over the seat's legal actions, in the seat's own labels.

    Rows with a single legal action are not scored (log π = 0 there). LoRA members (id < bank size) are
    scored by the LM in one batched pass; ids beyond the bank are scripted strategies
    (``policy.scripted[id - bank size]``), which read the game state; their choice is taken as the seat's own
    label, so under Other-Play a scripted partner is relabelled exactly like a member."""
    n, A = legal.shape
    device = policy.base.device
    legal = legal.to(device)
    out = torch.where(legal, 0.0, float("-inf"))  # forced rows: the one legal action has log π = 0
    choose = legal.sum(1) > 1
    n_lm = policy.bank.n_members
    is_lm = members.to(device) < n_lm
    lm_rows = torch.nonzero(choose & is_lm)[:, 0]
    scripted_rows = torch.nonzero(choose & ~is_lm)[:, 0]
    names = game.action_names(seat)
    if len(lm_rows):
        idx = lm_rows.tolist()
        rows_members = members[lm_rows.cpu()]
        rows_obs = [observations[i] for i in idx]
        if cache is not None:
            scores = cache.score(policy, rows_members, rows_obs, idx, names)
        else:
            scores = _score_rows(policy, rows_members, rows_obs, names)
        out = out.index_copy(0, lm_rows, masked_log_softmax(scores, legal[lm_rows]))
    if len(scripted_rows):
        scripted = torch.full((n, A), float("-inf"), device=device)
        for m in members[scripted_rows.cpu()].unique().tolist():
            if m - n_lm >= len(policy.scripted):
                raise IndexError(f"member id {m} is beyond the bank ({n_lm}) and the scripted strategies "
                                 f"({len(policy.scripted)})")
            strategy = policy.scripted[m - n_lm]
            if seat not in strategy.seats:
                from adhoc.errors import UserError

                raise UserError(f"scripted strategy '{strategy.name}' plays seat {list(strategy.seats)}, not seat {seat}")
            rows = torch.nonzero(members.to(device) == m)[:, 0]
            scripted[rows] = strategy.log_probs(game, state, seat).to(device)[rows]  # [n, A]
        out = out.index_copy(0, scripted_rows, masked_log_softmax(scripted[scripted_rows], legal[scripted_rows]))
    return out


def rollout(game: Game, policy: Policy, pairs: torch.Tensor, episodes: int, rng: np.random.Generator,
            grad: bool = True, keep_distributions: bool = True,
            partner_maps: torch.Tensor | None = None, prefix_reuse: bool = True,
            seat0_maps: torch.Tensor | None = None) -> Trajectories:
    """Play ``episodes`` episodes for each row of ``pairs`` [P, 2]. ``keep_distributions=False`` leaves
    ``logp_all`` empty (evaluation needs only returns; [P, E, T, 2, A] can be large).

    ``partner_maps`` [P·E, A_1] (Other-Play): seat 1 acts in its own labels and the game sees the relabelled
    action ``partner_maps[e, a]``; ``actions`` records what the game saw, ``logp`` the policy's own choice.
    Multi-step games that name actions in their observations relabel seat 1's observations too
    (``game.relabel_observation``), and seat 1's legal mask is read in its own labels. ``seat0_maps``
    [P·E, A_0], with ``partner_maps``: the same symmetries' seat-0 components, for games whose symmetries also
    move what seat 1 sees of the world (the warehouse's grid reflections); they reach only
    ``game.relabel_observation(..., seat0_maps=...)``: seat 0 is not relabelled. Scripted strategies read the
    game state, not the observation: where one sits in seat 1 its seat-0 component is the identity (only its own
    labels are relabelled, through ``partner_maps``).

    Member ids beyond the AdapterBank are scripted strategies (``policy.scripted``, e.g. human-proxy
    teachers). ``prefix_reuse`` (multi-step games): each seat's observation is encoded once and later steps
    encode only what was appended (``Policy.scores_reusing``); False re-encodes every observation whole."""
    P, E = pairs.shape[0], episodes
    n = P * E
    device = policy.base.device
    gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**63 - 1)))
    A = max(len(game.action_names(s)) for s in SEATS)
    state = game.reset(n, rng)
    seat_members = [pairs[:, s].cpu().repeat_interleave(E) for s in SEATS]  # [n] each, pair-major
    steps = {k: [] for k in ("actions", "logp", "entropy", "logp_all", "rewards", "alive")}
    observations: list[list[list[str]]] = []
    caches = [_PrefixCache(n) if prefix_reuse and game.horizon > 1 else None for _ in SEATS]
    maps = None if partner_maps is None else torch.as_tensor(partner_maps).long().cpu()
    relabel = maps is not None and hasattr(game, "relabel_observation")
    world = {}
    if seat0_maps is not None:
        if maps is None:
            raise ValueError("seat0_maps needs partner_maps")
        seat0_maps = torch.as_tensor(seat0_maps).long().cpu().clone()
        # a scripted seat 1 reads the untransformed game state, so only its own labels are relabelled
        seat0_maps[seat_members[1] >= policy.bank.n_members] = torch.arange(seat0_maps.shape[1])
        world = {"seat0_maps": seat0_maps}
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
                legal = game.legal_mask(state, s)
                if s == 1 and maps is not None:
                    legal = legal.gather(1, maps)  # legal in the seat's own labels
                obs = game.relabel_observation(state, s, maps, **world) if s == 1 and relabel else seen[s]
                logp_all = _seat_log_probs(game, policy, state, s, seat_members[s], obs, legal, caches[s])  # [n, A_s]
                a = torch.multinomial(logp_all.detach().exp().cpu(), 1, generator=gen)[:, 0]
                joint.append(a)
                logp_seats.append(logp_all.gather(1, a.to(device)[:, None])[:, 0])
                ent_seats.append(entropy(logp_all))
                if keep_distributions:
                    all_seats.append(torch.nn.functional.pad(logp_all, (0, A - len(names)), value=float("-inf")))
            if maps is not None:
                joint[1] = maps[torch.arange(n), joint[1]]
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
                    max_episodes_per_call: int = 1 << 18, per_step: bool = False) -> torch.Tensor:
    """Returns of ``episodes`` sampled episodes for every pair: [P, E], in chunks of pairs; ``per_step``: the
    rewards of every step instead, [P, E, T] (0 after an episode ends), whose sum over T is the return."""
    chunk = max(1, max_episodes_per_call // episodes)
    out = []
    for i in range(0, pairs.shape[0], chunk):
        traj = rollout(game, policy, pairs[i:i + chunk], episodes, rng, grad=False, keep_distributions=False)
        out.append((traj.rewards * traj.alive).cpu() if per_step else traj.returns.cpu())
    return torch.cat(out)


def expected_returns(game: Game, policy: Policy, pairs: torch.Tensor, episodes: int,
                     rng: np.random.Generator) -> torch.Tensor:
    """Monte-Carlo mean return of each pair [P] from ``episodes`` sampled episodes."""
    return episode_returns(game, policy, pairs, episodes, rng).mean(1)
