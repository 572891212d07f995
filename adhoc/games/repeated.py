"""Repeated games: any one-shot game of the registry (lever, cmg, cmg-s, cmg-h, matrix) played for K rounds with
the same partner, so a player can read its partner's convention from the history and adapt to it: the setting
in which ad hoc coordination with an unknown partner can pay off (a one-shot policy can only pick one
convention).

Spelling: ``game.name=repeated game.stage=lever game.rounds=4 game.stage_params.n_levers=7``.

- Each round both seats act simultaneously and both get the stage payoff divided by K, so the return of the
  interaction is the mean payoff over rounds; ``episode_payoffs`` gives the per-round payoffs (the adaptation
  curve ``adhoc evaluate`` reports).
- A zero-sum or general-sum stage (``matrix`` with ``payoffs``: one table per seat) makes the repeated game of
  the same kind (its ``payoff`` attribute is the stage's): each round pays each seat its own stage payoff
  divided by K, so ``step`` returns [E, 2]. The iterated prisoner's dilemma is ``game.stage=matrix`` with the
  prisoner's dilemma tables (configs/ipd-selfplay.yaml).
- Observations are append-only transcripts (so the rollout's prefix reuse encodes one round's new tokens per
  round, not the whole history): the stage game's own observation, then per round ``Round k:`` and, once
  played, `` you A partner B.`` with A the seat's own action and B its partner's, in the stage's action names
  (digits, which every tokenizer reads).
- Symmetries: the stage group acts on every round alike, so it is the repeated game's group. Under Other-Play
  seat 1 plays in relabelled actions: ``relabel_observation`` shows its transcript in its own labels (its own
  past actions through φ₁⁻¹ and its partner's through φ₀⁻¹), so the partner's past actions are relabelled too.
- Scripted partners (``scripted:repeated``): ``stubborn-A`` always plays A; ``copy-A`` opens with A, then plays
  what its partner played in the previous round ("open, then copy": against a stubborn partner it is the best a
  history-dependent policy can do after round 1). On a stage whose actions (both seats) are C and D, the
  classic strategies of the iterated prisoner's dilemma too (C cooperates, D defects): ``always-cooperate``,
  ``always-defect``, ``tit-for-tat`` (C in round 1, then the partner's previous action) and ``grim`` (C until the
  partner has played D once, then D for ever).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from adhoc._torch import torch
from adhoc.errors import GameError, UserError
from adhoc.games.core import GameState, advance, checked_actions, number, payoff_kind
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
    """K rounds of a one-shot ``stage`` game with the same partner; rewards are payoff / K per round ([E] for a
    common-payoff stage, [E, 2] for a zero-sum or general-sum one: the repeated game has the stage's kind)."""

    def __init__(self, name: str, stage: Any, rounds: int, params: dict[str, Any], transcript: str = "rounds") -> None:
        self.name, self.stage, self.rounds, self.horizon = name, stage, rounds, rounds
        self.transcript = transcript
        self.payoff = payoff_kind(stage)  # common, zero_sum or general_sum
        self._params = params
        # R [A0, A1] for a common payoff, else the seats' tables [2, A0, A1]
        self._payoff_matrix = np.asarray(stage.payoff_matrix() if self.payoff == "common" else stage.payoff_matrices(),
                                         dtype=np.float32)
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
        if self.payoff == "common":
            reward = self._payoff[actions[:, 0], actions[:, 1]] / self.rounds * (~state.done)
        else:  # [E, 2]: column s is seat s's reward
            reward = self._payoff[:, actions[:, 0], actions[:, 1]].T / self.rounds * (~state.done)[:, None]
        new, done = advance(state, actions, dict(state.extra), self.rounds)
        return new, reward, done

    def symmetries(self) -> PermutationGroup | None:
        return self.stage.symmetries()

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    # ---------------------------------------------------------------- for people (play, serve)
    def rules(self, seat: int) -> str:
        shown = " (with a few filler words that mean nothing)" if self.transcript == "padded" else ""
        pays = (f"Each round pays its reward divided by {self.rounds}, so your score is the average reward over the "
                "rounds." if self.payoff == "common" else
                f"Each round pays each of you your own reward divided by {self.rounds}, so your score is your average "
                "reward over the rounds.")
        return (f"{self.stage.stage_rules(seat)}\nYou play this {self.rounds} time{'s' * (self.rounds != 1)} (rounds) "
                f"with the same partner. After each round you both see what each of you chose{shown}. {pays}")

    def describe_action(self, seat: int, action: int) -> str:
        return self.stage.describe_action(seat, action)

    def show(self, state: GameState, seat: int) -> list[str]:
        out = []
        for e in range(state.n_episodes):
            lines = []
            for k, (mine, theirs, own, other) in enumerate(self._rounds(state, seat, e)):
                pays = f"pays {own}" if self.payoff == "common" else f"you get {own}, your partner {other}"
                lines.append(f"Round {k + 1}: you {self.describe_action(seat, mine)}, your partner "
                             f"{self.describe_action(1 - seat, theirs)} ({pays}).")
            if state.t < self.rounds:
                lines.append(f"Round {state.t + 1} of {self.rounds}: your choice.")
            out.append("\n".join(lines))
        return out

    def draw(self, state: GameState, seat: int) -> list[dict[str, Any]]:
        """What the browser draws for ``seat`` (``adhoc serve``), per episode: the rounds played (``history``: the
        seat's action, its partner's, the stage payoff it got and, unless ``common``, its partner's), the round now
        (None once over) and the stage game's drawing (``stage_drawing``; None for a large stage)."""
        stage = self.stage.stage_drawing(seat)
        names, partner_names = self.action_names(seat), self.action_names(1 - seat)
        out = []
        for e in range(state.n_episodes):
            history = []
            for mine, theirs, own, other in self._rounds(state, seat, e):
                history.append({"you": names[mine], "partner": partner_names[theirs], "payoff": own})
                if self.payoff != "common":
                    history[-1]["partner_payoff"] = other
            out.append({"kind": "repeated", "rounds": self.rounds, "common": self.payoff == "common",
                        "round": state.t + 1 if state.t < self.rounds else None, "history": history, "stage": stage})
        return out

    def _rounds(self, state: GameState, seat: int, e: int) -> list[tuple[int, int, str, str]]:
        """Episode e's rounds so far from ``seat``'s side: (its action, its partner's, the stage payoff it got, its
        partner's), payoffs as the rules write numbers."""
        table = self._payoff_matrix if self.payoff != "common" else np.stack([self._payoff_matrix] * 2)
        out = []
        for joint in state.history:
            a, b = (int(x) for x in joint[e].tolist())
            mine, theirs = (a, b) if seat == 0 else (b, a)
            out.append((mine, theirs, number(table[seat, a, b]), number(table[1 - seat, a, b])))
        return out

    # ---------------------------------------------------------------- repeated-game extras
    def payoff_matrix(self) -> np.ndarray:
        """The stage game's R [A0, A1] (what every round pays, times K); a stage with one table per seat has none
        (GameError: ``payoff_matrices``)."""
        return self.stage.payoff_matrix()

    def payoff_matrices(self) -> np.ndarray:
        """The stage game's tables [2, A0, A1]: seat s's payoff of a round, times K (both R for a common payoff)."""
        return self.stage.payoff_matrices()

    def episode_payoffs(self, rewards):
        """Per-round payoffs from per-step rewards (numpy or torch), the same shape: [..., K] → [..., K], or per
        seat [..., K, 2] → [..., K, 2] (a zero-sum or general-sum stage); their mean over rounds is the return."""
        return rewards * self.rounds

    def episode_seat_payoffs(self, rewards):
        """Each seat's per-round payoffs [..., K, 2] (numpy or torch) from per-step rewards: [..., K] for a
        common-payoff stage (both seats get it), [..., K, 2] (column s: seat s) for a zero-sum or general-sum one."""
        if self.payoff == "common":
            rewards = np.repeat(rewards[..., None], 2, axis=-1) if isinstance(rewards, np.ndarray) \
                else rewards[..., None].expand(*rewards.shape, 2)
        if rewards.shape[-2:] != (self.rounds, 2):
            raise ValueError(f"per-step rewards must be [..., {self.rounds}" + ("" if self.payoff == "common" else
                             ", 2") + "]" + f" for this {self.payoff} game, got {list(rewards.shape)}")
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
    def scripted_strategies(self) -> dict[str, Any]:
        """``stubborn-A`` for every action A of seat 0 (the stage game's conventions, one lever each); on a stage
        whose actions are C and D, also the prisoner's dilemma strategies (``DILEMMA``)."""
        found: dict[str, Any] = {f"stubborn-{a}": RepeatedScripted(f"stubborn-{a}", i, copy=False)
                                 for i, a in enumerate(self.action_names(0))}
        if self.is_dilemma():
            found.update({name: DilemmaScripted(name) for name in DILEMMA})
        return found

    @property
    def scripted_pattern(self) -> str:
        pattern = "stubborn-A (always A) / copy-A (open with A, then copy the partner's last action)"
        return pattern + (f" / {', '.join(DILEMMA)} (C cooperates, D defects)" if self.is_dilemma() else "")

    def is_dilemma(self) -> bool:
        """Whether both seats' actions are C and D (in any order): the prisoner's dilemma strategies can play."""
        return all(sorted(self.action_names(s)) == ["C", "D"] for s in (0, 1))

    def scripted_strategy(self, name: str) -> Optional[Any]:
        if name in DILEMMA:
            if not self.is_dilemma():
                shown = self.action_names(0)[:6] + (["..."] if len(self.action_names(0)) > 6 else [])
                raise UserError(f"scripted strategy '{name}' needs a stage game whose actions are C (cooperate) and "
                                f"D (defect) for both seats; this one's are {', '.join(shown)}")
            return DilemmaScripted(name)
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


DILEMMA = ("always-cooperate", "always-defect", "tit-for-tat", "grim")


@dataclass
class DilemmaScripted:
    """A classic strategy of the iterated prisoner's dilemma, on a stage whose actions are C (cooperate) and D
    (defect): ``always-cooperate`` (C), ``always-defect`` (D), ``tit-for-tat`` (C in round 1, then the partner's
    previous action), ``grim`` (C until the partner has played D once, then D for ever)."""

    name: str
    seats: tuple[int, ...] = (0, 1)

    def log_probs(self, game: RepeatedGame, state: GameState, seat: int) -> torch.Tensor:
        names = game.action_names(seat)
        cooperate, defect = names.index("C"), names.index("D")
        partner_d = game.action_names(1 - seat).index("D")
        n = state.n_episodes
        if self.name == "always-defect":
            defects = torch.ones(n, dtype=torch.bool)
        elif self.name == "tit-for-tat" and state.history:
            defects = state.history[-1][:, 1 - seat] == partner_d
        elif self.name == "grim" and state.history:
            defects = torch.stack([h[:, 1 - seat] == partner_d for h in state.history], 1).any(1)
        else:  # always-cooperate, or round 1 of tit-for-tat and grim
            defects = torch.zeros(n, dtype=torch.bool)
        choice = torch.where(defects, torch.tensor(defect), torch.tensor(cooperate))
        out = torch.full((n, len(names)), float("-inf"))
        out[torch.arange(n), choice] = 0.0
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
