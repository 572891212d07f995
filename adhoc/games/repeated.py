"""Repeated games: any one-shot game of the registry (lever, cmg, cmg-s, cmg-h, matrix) played for K rounds with
the same partner, so a player can read its partner's convention from the history and adapt to it: the setting
in which ad hoc coordination with an unknown partner can pay off (a one-shot policy can only pick one
convention).

Spelling: ``game.name=repeated game.stage=lever game.rounds=4 game.stage_params.n_levers=7``.

- Each round both seats act simultaneously and both get the stage payoff divided by K, so the return of the
  interaction is the mean payoff over rounds; ``episode_payoffs`` gives the per-round payoffs (the adaptation
  curve ``adhoc evaluate`` reports).
- Observations are append-only transcripts (so the rollout's prefix reuse encodes one round's new tokens per
  round, not the whole history): the stage game's own observation, then per round ``Round k:`` and, once
  played, `` you A partner B.`` with A the seat's own action and B its partner's, in the stage's action names
  (digits, which every tokenizer reads).
- Symmetries: the stage group acts on every round alike, so it is the repeated game's group. Under Other-Play
  seat 1 plays in relabelled actions: ``relabel_observation`` shows its transcript in its own labels (its own
  past actions through φ₁⁻¹ and its partner's through φ₀⁻¹), so the partner's past actions are relabelled too.
- Scripted partners (``scripted:repeated``): ``stubborn-A`` always plays A; ``copy-A`` opens with A, then plays
  what its partner played in the previous round ("open, then copy": against a stubborn partner it is the best a
  history-dependent policy can do after round 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from adhoc._torch import torch
from adhoc.errors import GameError
from adhoc.games.core import GameState, advance, checked_actions, number
from adhoc.games.symmetry import PermutationGroup

MAX_ROUNDS = 64
STAGES = ("lever", "cmg", "cmg-s", "cmg-h", "matrix")
TRANSCRIPTS = ("rounds", "partner_last", "swapped", "padded")
MAX_PAD = 3  # transcript padded: 0..MAX_PAD filler words after each seat's action in each round


@dataclass
class RepeatedConfig:
    name: str = "repeated"
    stage: str = "lever"  # the one-shot game played every round
    rounds: int = 4  # K
    stage_params: dict[str, Any] = field(default_factory=dict)  # the stage game's parameters
    transcript: str = "rounds"  # rounds: "... partner B. Round k:"; partner_last: "... Round k-1: you A partner B",
    #                             so the partner's last action is the last thing read before the seat's choice;
    #                             swapped: "Round k: partner B you A."; padded: "Round k: you A ok ok partner B. ok Round
    #                             k+1:" with 0-3 filler words drawn per episode, round and place (probes of whether a
    #                             policy reads its partner's action or a fixed position)


class RepeatedGame:
    """K rounds of a one-shot ``stage`` game with the same partner; rewards are payoff / K per round."""

    def __init__(self, name: str, stage: Any, rounds: int, params: dict[str, Any], transcript: str = "rounds") -> None:
        self.name, self.stage, self.rounds, self.horizon = name, stage, rounds, rounds
        self.transcript = transcript
        self._params = params
        self._payoff_matrix = np.asarray(stage.payoff_matrix(), dtype=np.float32)
        self._payoff = None  # the torch tensor, made on the first step (building a game needs no torch)
        self._intro_text: list[str] | None = None  # made on first use (it plays the stage game, so needs torch)

    @property
    def _intro(self) -> list[str]:
        """Each seat's stage-game observation, then how many rounds follow."""
        if self._intro_text is None:
            one = self.stage.reset(1, np.random.default_rng(0))
            self._intro_text = [f"{self.stage.observe(one, s)[0]} {self.rounds} rounds with the same partner."
                                for s in (0, 1)]
        return self._intro_text

    # ---------------------------------------------------------------- the Game protocol
    def action_names(self, seat: int) -> list[str]:
        return self.stage.action_names(seat)

    def reset(self, n_episodes: int, rng: np.random.Generator) -> GameState:
        if self.transcript == "padded":  # filler words after each seat's action, per episode and round
            pad = torch.from_numpy(rng.integers(0, MAX_PAD + 1, (n_episodes, self.rounds, 2)))
            return GameState(n_episodes, extra={"pad": pad})
        return GameState(n_episodes)

    def observe(self, state: GameState, seat: int) -> list[str]:
        return self._render(state, seat, None, None)

    def legal_mask(self, state: GameState, seat: int) -> torch.Tensor:
        return torch.ones(state.n_episodes, len(self.action_names(seat)), dtype=torch.bool)

    def step(self, state: GameState, actions: torch.Tensor) -> tuple[GameState, torch.Tensor, torch.Tensor]:
        actions = checked_actions(self, state, actions)
        if self._payoff is None:
            self._payoff = torch.as_tensor(self._payoff_matrix)
        reward = self._payoff[actions[:, 0], actions[:, 1]] / self.rounds * (~state.done)
        new, done = advance(state, actions, dict(state.extra), self.rounds)
        return new, reward, done

    def symmetries(self) -> PermutationGroup | None:
        return self.stage.symmetries()

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    # ---------------------------------------------------------------- for people (play, serve)
    def rules(self, seat: int) -> str:
        shown = " (with a few filler words that mean nothing)" if self.transcript == "padded" else ""
        return (f"{self.stage.stage_rules(seat)}\nYou play this {self.rounds} time{'s' * (self.rounds != 1)} (rounds) "
                f"with the same partner. After each round you both see what each of you chose{shown}. Each round pays "
                f"its reward divided by {self.rounds}, so your score is the average reward over the rounds.")

    def describe_action(self, seat: int, action: int) -> str:
        return self.stage.describe_action(seat, action)

    def show(self, state: GameState, seat: int) -> list[str]:
        table = self._payoff_matrix
        out = []
        for e in range(state.n_episodes):
            lines = []
            for k, joint in enumerate(state.history):
                a, b = (int(x) for x in joint[e].tolist())
                mine, theirs = (a, b) if seat == 0 else (b, a)
                lines.append(f"Round {k + 1}: you {self.describe_action(seat, mine)}, your partner "
                             f"{self.describe_action(1 - seat, theirs)} (pays {number(table[a, b])}).")
            if state.t < self.rounds:
                lines.append(f"Round {state.t + 1} of {self.rounds}: your choice.")
            out.append("\n".join(lines))
        return out

    # ---------------------------------------------------------------- repeated-game extras
    def payoff_matrix(self) -> np.ndarray:
        """The stage game's R [A0, A1] (what every round pays, times K)."""
        return self.stage.payoff_matrix()

    def episode_payoffs(self, rewards):
        """Per-round payoffs [..., K] from per-step rewards [..., K] (numpy or torch); their mean is the return."""
        return rewards * self.rounds

    def relabel_observation(self, state: GameState, seat: int, maps: torch.Tensor,
                            seat0_maps: torch.Tensor | None = None) -> list[str]:
        """Other-Play: seat ``seat``'s transcript for a player whose action b is the game's ``maps[e, b]``
        (seat 1's component of the symmetry, [E, A_1]); its partner's (seat 0's) past actions are shown through
        ``seat0_maps`` [E, A_0] (the same element's seat-0 component; None: unchanged)."""
        if seat == 0:
            return self.observe(state, seat)
        own = torch.argsort(torch.as_tensor(maps).cpu(), dim=1)  # game label -> own label
        other = None if seat0_maps is None else torch.argsort(torch.as_tensor(seat0_maps).cpu(), dim=1)
        return self._render(state, seat, own, other)

    def _render(self, state: GameState, seat: int, own: torch.Tensor | None, other: torch.Tensor | None) -> list[str]:
        """``intro Round 1: you A partner B. Round 2: ...`` (``transcript: partner_last``: without the trailing
        ``Round k:``, each record after the first opening with ``. ``); ``own``/``other`` [E, A]: the labels in
        which the seat's own and its partner's past actions are shown (None: the game's)."""
        names, partner_names = self.action_names(seat), self.action_names(1 - seat)
        texts = [self._intro[seat]] * state.n_episodes
        rows = torch.arange(state.n_episodes)
        for k, joint in enumerate(state.history):
            mine, theirs = joint[:, seat], joint[:, 1 - seat]
            if own is not None:
                mine = own[rows, mine]
            if other is not None:
                theirs = other[rows, theirs]
            if self.transcript == "partner_last":
                texts = [f"{t}{'.' if k else ''} Round {k + 1}: you {names[a]} partner {partner_names[b]}"
                         for t, a, b in zip(texts, mine.tolist(), theirs.tolist())]
                continue
            if self.transcript == "swapped":
                texts = [f"{t} Round {k + 1}: partner {partner_names[b]} you {names[a]}."
                         for t, a, b in zip(texts, mine.tolist(), theirs.tolist())]
                continue
            if self.transcript == "padded":
                pad = state.extra["pad"][:, k].tolist()
                texts = [f"{t} Round {k + 1}: you {names[a]}{' ok' * p[0]} partner {partner_names[b]}.{' ok' * p[1]}"
                         for t, a, b, p in zip(texts, mine.tolist(), theirs.tolist(), pad)]
                continue
            texts = [f"{t} Round {k + 1}: you {names[a]} partner {partner_names[b]}."
                     for t, a, b in zip(texts, mine.tolist(), theirs.tolist())]
        if state.t < self.rounds and self.transcript != "partner_last":
            texts = [f"{t} Round {state.t + 1}:" for t in texts]
        return texts

    # ---------------------------------------------------------------- scripted partners
    def scripted_strategies(self) -> dict[str, "RepeatedScripted"]:
        """``stubborn-A`` for every action A of seat 0 (the stage game's conventions, one lever each)."""
        return {f"stubborn-{a}": RepeatedScripted(f"stubborn-{a}", i, copy=False)
                for i, a in enumerate(self.action_names(0))}

    scripted_pattern = "stubborn-A (always A) / copy-A (open with A, then copy the partner's last action)"

    def scripted_strategy(self, name: str) -> Optional["RepeatedScripted"]:
        kind, _, action = name.partition("-")
        names = self.action_names(0)
        if kind not in ("stubborn", "copy") or action not in names or self.action_names(1) != names:
            return None
        return RepeatedScripted(name, names.index(action), copy=kind == "copy")


@dataclass
class RepeatedScripted:
    """Always the same action (stubborn), or it in round 1 and then the partner's previous action (copy)."""

    name: str
    action: int
    copy: bool
    seats: tuple[int, ...] = (0, 1)

    def log_probs(self, game: RepeatedGame, state: GameState, seat: int) -> torch.Tensor:
        choice = torch.full((state.n_episodes,), self.action, dtype=torch.long)
        if self.copy and state.history:
            choice = state.history[-1][:, 1 - seat].clone()
        out = torch.full((state.n_episodes, len(game.action_names(seat))), float("-inf"))
        out[torch.arange(state.n_episodes), choice] = 0.0
        return out


def build_repeated(cfg: RepeatedConfig) -> RepeatedGame:
    from adhoc.games import build_game

    if cfg.stage not in STAGES:
        raise GameError(f"game.stage must be a one-shot game: one of {', '.join(STAGES)} (got {cfg.stage!r})")
    if not 1 <= cfg.rounds <= MAX_ROUNDS:
        raise GameError(f"game.rounds must be in 1..{MAX_ROUNDS} (got {cfg.rounds})")
    params = dict(cfg.stage_params or {})
    if "name" in params:
        raise GameError("game.stage_params.name: the stage game is named by game.stage")
    try:
        stage = build_game({"name": cfg.stage, **params})
    except GameError as exc:
        raise GameError(f"game.stage_params: {str(exc).replace('game.', 'game.stage_params.')}") from None
    if cfg.transcript not in TRANSCRIPTS:
        raise GameError(f"game.transcript must be one of {', '.join(TRANSCRIPTS)} (got {cfg.transcript!r})")
    recorded = {"stage": cfg.stage, "rounds": cfg.rounds, "stage_params": stage.params()}
    if cfg.transcript != "rounds":  # recorded only when not the default, so older manifests still compare equal
        recorded["transcript"] = cfg.transcript
    return RepeatedGame(cfg.name, stage, cfg.rounds, recorded, cfg.transcript)
