"""``preference``: RLHF as a cooperative game, the second alignment game of the seed paper ("Human-AI value
aligned finetuning of LLMs with multiagent RL"), a CIRL game (Hadfield-Menell et al. 2016).

Seats: seat 0 is the AI, seat 1 the human (the teacher). θ, the human's hidden type, weights d features of a
response: θ is a random permutation of ``weights`` (default (2, 1, -2): one feature the human wants most,
one it likes, one it dislikes), drawn once per interaction and shown only to the human. A response is a
set of features (a binary vector x ∈ {0,1}^d), rendered as its feature letters ("a c"; "none" if empty);
its quality is q(x) = (θ·x − min_x θ·x) / (max_x θ·x − min_x θ·x) ∈ [0, 1].

An interaction has ``rounds`` = H rounds, H − 1 + d steps:
- rounds 1..H−1 (feedback rounds): the AI offers k candidate responses (sampled by the game: the AI's
  proposal distribution is uniform over distinct responses, as RLHF samples responses from the model; the
  AI's own action is forced), and the human answers with a preference ordering, an action such as "21"
  (candidate 2 preferred to candidate 1);
- round H (the response): the AI writes its response feature by feature, d steps, each "yes" (put the
  feature in) or "no"; the human's action is forced. The team is paid q(response) once, at the end.

What an ordering means is the teacher's strategy (``scripted_strategies``): by overall quality θ·x (the usual
RLHF assumption), by a single deficiency dimension (the feature the human cares about most, ties left in
the offered order), or noisily (Boltzmann-rational in θ·x). The AI is not told which.

Where the feedback is shown: the transcript keeps every round ("round : 1 a c 2 b ; 21"), and just before
the AI writes feature f it shows f with what each feedback round said about f, one sign per round: "+"
if the preferred candidate (first in the ordering) has f and the last one does not, "-" the reverse, "="
if both or neither have it. This is a re-rendering of the orderings the AI saw (no θ, no teacher identity),
placed next to the decision it informs: the built-in base is a random 2-layer model that uses feedback
right before a decision far more readily than feedback it must fetch from far back (see ``corrective``;
the first version, with one final choice among m listed candidates after the rounds, learned only 0.53–0.56
where random is 0.50). The signs mean different things under different teachers: with the default
weights and 2 rounds, E[θ_f | "+ -"] is +0.45 under ``quality`` and −0.50 under ``deficiency`` (its
orderings carry nothing about the features it does not care most about); ``scripts/preference_reference.py``
gives random, best fixed response, Bayes-optimal (knowing the teacher's strategy) and oracle returns.

Measured (``scripts/scripted_learner.py --game preference --train quality,deficiency,noisy --train quality
--train deficiency --iterations 600 --entropy 0.05``, default game; one LoRA AI per teacher set on the
built-in base, 2 shared CPU cores, ~155–170 s of training; 512 evaluation interactions per pair, seeds 0 / 1):

    AI trained with        evaluated with: quality   deficiency   noisy
    all three                              0.801/0.796  0.660/0.659  0.823/0.802
    quality only                           0.727/0.775  0.655/0.655  0.749/0.773
    deficiency only                        0.748/0.759  0.643/0.666  0.731/0.750
    (random 0.500, best fixed response 0.600, Bayes-optimal knowing the teacher's strategy 0.906 / 0.735 /
    0.898, oracle knowing θ 1.000)

The AIs use the feedback (above the 0.600 of writing every feature) but stay far below what it allows.
The population AI beats the deficiency-only AI with the quality teacher (+0.05, +0.04) but not the
quality-only AI with the deficiency teacher (+0.005, +0.004: noise). The single-teacher AIs see a third of
the population AI's interactions per iteration; given as many (``--episodes-per-teacher 192``, seed 0) they
score 0.743 / 0.653 (quality only) and 0.764 / 0.682 (deficiency only) with quality / deficiency: run-to-run
spread (±0.03) is as large as the differences. With the default entropy bonus 0.01 the single-teacher
AIs collapsed to writing every feature (0.600).

``summary: true`` shows, just before the response, every feature's signs at once ("signs : a + - b = +
c - -"), then the features one by one as above. What tells the teachers apart is evidence ACROSS features
(under ``deficiency`` one feature's signs are consistent and the others' are noise), which the AI writing
its first feature otherwise cannot see yet. The Bayes-optimal AI that assumes one teacher strategy loses
much with another (``scripts/preference_reference.py``; 4 feedback rounds, ``rounds=5``): assuming
``quality`` it scores 0.983 with the quality teacher but 0.656 with the deficiency teacher, assuming
``deficiency`` 0.781 / 0.661 (deficiency / quality teacher), and an AI uncertain among the three (uniform
mixture) 0.982 / 0.741 / 0.973 (quality / deficiency / noisy): a population-trained AI can beat both
single-teacher AIs. See the README for what the learned AIs reach.

Observations are append-only transcripts::

    ai:      "ai . round : 1 a b 2 c ; 21 round : 1 b 2 b c ; 21 write : a - = yes ; b - = no ; c + +"
    teacher: "teacher a 2 b 1 c - 2 . round : 1 a b 2 c ; 21 round : 1 b 2 b c ; 21 write : a - = yes ; ..."

Symmetries: none declared (feature letters carry θ's meaning; orderings are not interchangeable).
"""

from __future__ import annotations

import itertools
import math
import string
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adhoc._torch import torch
from adhoc.errors import GameError
from adhoc.games.core import GameState, advance, append_text, checked_actions, turn_mask

AI, TEACHER = 0, 1
MAX_FEATURES = 6
MAX_CANDIDATES = 4  # orderings of k candidates are k! actions
WRITE = ["no", "yes"]  # the AI's actions: leave a feature out of its response, or put it in


@dataclass
class PreferenceConfig:
    name: str = "preference"
    weights: list[float] = field(default_factory=lambda: [2.0, 1.0, -2.0])  # θ = a random permutation of these
    candidates: int = 2  # k, offered per feedback round
    rounds: int = 3  # H: H-1 feedback rounds, then the AI writes its response
    summary: bool = False  # before the response, show every feature's signs at once (" signs : a + - b = +")


class PreferenceGame:
    """Batched interactions. State ``extra``: theta [E, d], offers [E, H-1, k] (response ids, i.e. feature
    bit masks, drawn at reset), said [E, H-1, d] (per feedback round and feature: +1 / -1 / 0, the feature
    in the preferred candidate only / in the other only / both or neither), written [E] (the response's
    bit mask so far), text: per seat, E transcripts (without the header)."""

    def __init__(self, cfg: PreferenceConfig) -> None:
        self.name = cfg.name
        self.weights = [float(w) for w in cfg.weights]
        self.d, self.k, self.rounds = len(self.weights), cfg.candidates, cfg.rounds
        self.feedback = self.rounds - 1
        self.horizon = self.feedback + self.d
        self.features = list(string.ascii_lowercase[: self.d])
        self.orderings = ["".join(str(i + 1) for i in p) for p in itertools.permutations(range(self.k))]
        self._bits = None
        self.summary = bool(cfg.summary)
        self._params = {"weights": list(self.weights), "candidates": self.k, "rounds": self.rounds}
        if self.summary:  # only when on, so populations saved before the option still match
            self._params["summary"] = True

    @property
    def response_bits(self) -> torch.Tensor:
        """[2^d, d]: the features (bits) of every response id (made on first use: building a game needs no torch)."""
        if self._bits is None:
            self._bits = torch.tensor([[(r >> j) & 1 for j in range(self.d)] for r in range(2 ** self.d)],
                                      dtype=torch.float32)
        return self._bits

    def action_names(self, seat: int) -> list[str]:
        return list(WRITE) if seat == AI else list(self.orderings)

    def render(self, response: int) -> str:
        present = [f for j, f in enumerate(self.features) if (response >> j) & 1]
        return " ".join(present) if present else "none"

    def reset(self, n_episodes: int, rng: np.random.Generator) -> GameState:
        n_resp = 2 ** self.d
        theta = torch.tensor(np.array([rng.permutation(self.weights) for _ in range(n_episodes)]), dtype=torch.float32)
        pick = lambda size: torch.as_tensor(np.argsort(rng.random((n_episodes, n_resp)), axis=1)[:, :size])  # noqa: E731
        offers = torch.stack([pick(self.k) for _ in range(self.feedback)], 1) if self.feedback \
            else torch.zeros(n_episodes, 0, self.k, dtype=torch.long)
        state = GameState(n_episodes, extra={"theta": theta, "offers": offers,
                                             "said": torch.zeros(n_episodes, self.feedback, self.d),
                                             "written": torch.zeros(n_episodes, dtype=torch.long),
                                             "text": ([""] * n_episodes,) * 2})
        self._append(state.extra, 0)
        return state

    def quality(self, theta: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """q [E, ...] in [0, 1] of responses [E, ...] (ids) under theta [E, d]."""
        values = torch.einsum("e...d,ed->e...", self.response_bits[responses], theta)
        lo = theta.clamp(max=0).sum(1).view(-1, *[1] * (values.dim() - 1))
        hi = theta.clamp(min=0).sum(1).view(-1, *[1] * (values.dim() - 1))
        return (values - lo) / (hi - lo).clamp(min=1e-9)

    def observe(self, state: GameState, seat: int) -> list[str]:
        return [self._header(seat, state, e) + text for e, text in enumerate(state.extra["text"][seat])]

    def legal_mask(self, state: GameState, seat: int) -> torch.Tensor:
        # the other seat's turn: one forced, ignored action
        return turn_mask(state, len(self.action_names(seat)), state.t >= self.horizon or self.turn(state.t) == seat)

    def turn(self, t: int) -> int:
        return TEACHER if t < self.feedback else AI

    def step(self, state: GameState, actions: torch.Tensor) -> tuple[GameState, torch.Tensor, torch.Tensor]:
        actions = checked_actions(self, state, actions)
        n = state.n_episodes
        extra = dict(state.extra)
        reward = torch.zeros(n)
        t = state.t
        if t < self.horizon and self.turn(t) == TEACHER:
            order = torch.tensor([[int(c) - 1 for c in o] for o in self.orderings])[actions[:, TEACHER]]  # [E, k]
            ranked = extra["offers"][:, t].gather(1, order)  # offered ids, preferred first
            said = extra["said"].clone()
            said[:, t] = self.response_bits[ranked[:, 0]] - self.response_bits[ranked[:, -1]]
            extra["said"] = said
            extra["text"] = append_text(extra["text"], [f" ; {self.orderings[a]}" for a in actions[:, TEACHER].tolist()])
        elif t < self.horizon:
            j = t - self.feedback
            extra["written"] = extra["written"] | (actions[:, AI] << j)
            if j == self.d - 1:
                reward = self.quality(extra["theta"], extra["written"])
            extra["text"] = append_text(extra["text"], [f" {WRITE[a]}" for a in actions[:, AI].tolist()])
        self._append(extra, t + 1)
        new, done = advance(state, actions, extra, self.horizon)
        return new, reward * (~state.done), done

    def symmetries(self) -> None:
        return None

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    # ---------------------------------------------------------------- for people (play, serve)
    def rules(self, seat: int) -> str:
        d, k, fb = self.d, self.k, self.feedback
        weights = ", ".join(_number(w).replace("- ", "-") for w in self.weights)
        example = "".join(str(i) for i in range(k, 0, -1))
        feedback = (f"First {fb} feedback round{'s' * (fb != 1)}: each shows {k} candidate responses (sets of features) "
                    f"and the human orders them, best first (\"{example}\": candidate {k} is best). " if fb else "")
        common = (f"A response is a set of the features {', '.join(self.features)}. The human gives the features the "
                  f"weights {weights} in a random order, drawn once per game; only the human sees which feature has "
                  f"which weight.\n{feedback}Then the AI writes its response, one feature at a time: yes (put it in) or "
                  f"no (leave it out).\nYou both get the same reward, once, at the end: the response's quality, its "
                  f"total weight scaled from 0 (the worst response) to 1 (the best). {self.horizon} turns in all.")
        if seat == AI:
            return f"Preference game. You are the AI (seat 0); your partner is the human. {common}"
        return (f"Preference game. You are the human (seat 1); your partner is the AI, which does not see your weights "
                f"and learns about them only from your orderings. {common}")

    def describe_action(self, seat: int, action: int) -> str:
        if seat == AI:
            return f"wrote {WRITE[action]}"
        return f"ordered the candidates {self.orderings[action]} (best first)"

    def show(self, state: GameState, seat: int) -> list[str]:
        out = []
        for e in range(state.n_episodes):
            lines = []
            if seat == TEACHER:
                theta = state.extra["theta"][e].tolist()
                lines.append("Your weights (the AI does not see them): " +
                             ", ".join(f"{f} {_number(w).replace('- ', '-')}" for f, w in zip(self.features, theta)) + ".")
            for t in range(min(state.t + 1, self.feedback)):
                offers = state.extra["offers"][e, t].tolist()
                line = f"Feedback round {t + 1} of {self.feedback}: " + ", ".join(
                    f"candidate {i + 1} = {{{self.render(x)}}}" for i, x in enumerate(offers))
                line += (f"; the human ordered them {self.orderings[int(state.history[t][e, TEACHER])]} (best first)."
                         if t < state.t else "; the human orders them.")
                lines.append(line)
            if state.t >= self.feedback:
                written = [f"{f} {WRITE[int(state.history[self.feedback + j][e, AI])]}"
                           for j, f in enumerate(self.features) if self.feedback + j < state.t]
                nxt = state.t - self.feedback
                lines.append("The AI's response: " + (", ".join(written) if written else "nothing yet") +
                             (f"; next: feature {self.features[nxt]} (yes or no)." if nxt < self.d else "."))
            out.append("\n".join(lines))
        return out

    def scripted_strategies(self) -> dict[str, "PreferenceTeacher"]:
        return {"quality": PreferenceTeacher("quality", "quality"),
                "deficiency": PreferenceTeacher("deficiency", "deficiency"),
                "noisy": PreferenceTeacher("noisy", "noisy", beta=4.0)}

    # ---------------------------------------------------------------- helpers
    def _header(self, seat: int, state: GameState, e: int) -> str:
        if seat == AI:
            return "ai ."
        weights = " ".join(f"{f} {_number(w)}" for f, w in zip(self.features, state.extra["theta"][e].tolist()))
        return f"teacher {weights} ."

    def _append(self, extra: dict, t: int) -> None:
        """Append what step t shows before it is played: a feedback round's k offered candidates, or, before
        the AI writes feature j, that feature with what each feedback round said about it."""
        if t >= self.horizon:
            return
        if t < self.feedback:
            lines = [" round : " + " ".join(f"{i + 1} {self.render(x)}" for i, x in enumerate(row))
                     for row in extra["offers"][:, t].tolist()]
        else:
            j = t - self.feedback
            head = " write :" if j == 0 else " ;"
            signs = {1: "+", -1: "-", 0: "="}
            lines = [f"{head} {self.features[j]} " + " ".join(signs[int(v)] for v in row)
                     for row in extra["said"][:, :, j].tolist()]
            if j == 0 and self.summary:
                table = [" signs :" + "".join(f" {f} " + " ".join(signs[int(v)] for v in col)
                                              for f, col in zip(self.features, rows))
                         for rows in extra["said"].transpose(1, 2).tolist()]  # [E, d, rounds]
                lines = [a + b for a, b in zip(table, lines)]
        extra["text"] = append_text(extra["text"], lines)


def _number(w: float) -> str:
    return f"- {_number(-w)}" if w < 0 else (str(int(w)) if float(w).is_integer() else f"{w:g}")


@dataclass
class PreferenceTeacher:
    """A scripted human: orders the k offered candidates by overall quality θ·x (``quality``), by the single
    feature it weights most, ties left in the offered order (``deficiency``), or samples an ordering with
    probability ∝ exp(β · Σ_positions rank-weighted θ·x) (``noisy``, Boltzmann-rational; for k = 2 that is
    P(1 ≻ 2) = σ(β (θ·x₁ − θ·x₂)))."""

    name: str
    kind: str
    beta: float = 4.0
    seats: tuple[int, ...] = (TEACHER,)

    def log_probs(self, game: PreferenceGame, state: GameState, seat: int) -> torch.Tensor:
        E, A = state.n_episodes, len(game.orderings)
        out = torch.full((E, A), float("-inf"))
        if state.t >= game.horizon or game.turn(state.t) != TEACHER:
            out[:, 0] = 0.0
            return out
        theta = state.extra["theta"]
        offered = state.extra["offers"][:, state.t]  # [E, k]
        bits = game.response_bits[offered]  # [E, k, d]
        if self.kind == "deficiency":
            top = theta.argmax(1)  # [E]
            score = bits.gather(2, top.view(E, 1, 1).expand(E, game.k, 1))[..., 0] * torch.sign(
                theta.gather(1, top[:, None]))
        else:
            score = torch.einsum("ekd,ed->ek", bits, theta)  # [E, k]
        orders = torch.tensor([[int(c) - 1 for c in o] for o in game.orderings])  # [A, k]
        ranked = score[:, orders]  # [E, A, k]: scores in each ordering's order
        position = torch.arange(game.k, 0, -1, dtype=torch.float32)  # first place counts most
        value = (ranked * position).sum(-1)  # [E, A]
        if self.kind == "noisy":
            return torch.log_softmax(self.beta * value / max(1, game.k - 1), dim=-1)
        # deterministic: the best ordering; ties go to the ordering listed first (the offered order)
        best = value.argmax(1)
        out[torch.arange(E), best] = 0.0
        return out


def build_preference(cfg: PreferenceConfig) -> PreferenceGame:
    weights = list(cfg.weights)
    if not 1 <= len(weights) <= MAX_FEATURES:
        raise GameError(f"game.weights needs 1..{MAX_FEATURES} feature weights (got {len(weights)})")
    if not all(math.isfinite(w) for w in weights) or max(weights) == min(weights) and max(weights) <= 0:
        raise GameError(f"game.weights must be finite with some positive weight (got {weights})")
    if not 2 <= cfg.candidates <= min(MAX_CANDIDATES, 2 ** len(weights)):
        raise GameError(f"game.candidates must be 2..{min(MAX_CANDIDATES, 2 ** len(weights))} (got {cfg.candidates})")
    if cfg.rounds < 1:
        raise GameError(f"game.rounds must be >= 1 (got {cfg.rounds})")
    if cfg.rounds > 20:
        raise GameError(f"game.rounds must be <= 20 (got {cfg.rounds})")
    return PreferenceGame(cfg)
