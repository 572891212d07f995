"""``corrective``: interpreting corrective feedback, the third cooperative alignment game of the seed paper
("Human-AI value aligned finetuning of LLMs with multiagent RL", example 3: multi-step arithmetic where the
model errs in intermediate steps and must use the human's corrections), a CIRL game (Hadfield-Menell et al.
2016): the human's hidden type θ is the problem's correct answer, which the human knows and the AI does not.

Seats: seat 0 is the AI, seat 1 the human (the teacher). Each interaction poses one problem:
``op: times`` is a × b with a of ``digits`` digits and b one digit 2..9 (the paper's 3-digit multiplication
is ``digits: 3``); ``op: plus`` is a + b with both of ``digits`` digits. The answer has L = digits + 1
digits (a leading 0 where it is shorter), and the AI writes it digit by digit from the ones place (the
order of schoolbook multiplication and addition, where each step's carry feeds the next): each written
digit is one step, an action "0".."9" (carries are not written as steps of their own: a step's digit
already depends on the previous step's carry; deviation from the issue's optional carry steps). One pass
over the L digits is an ATTEMPT (a draft). ``attempts`` (default 2) drafts in all: in every draft after the
first, the teacher comments on each step of the previous draft just before the AI rewrites that step (the
human corrects the work step by step, the AI redoes it). The team is paid once, at the end, by the LAST
draft: 1 if it is the correct answer (``credit: exact``, the issue's "paid by the correct final answer") or
the fraction of its digits that are correct (``credit: digits``, partial credit: a denser signal for a tiny
model to learn from). A correct draft does not end the interaction (a fixed horizon keeps episodes
batched); the AI has only to write it again.

Turns within the simultaneous-move protocol: in the first draft the AI writes L steps in a row; in each
later draft, teacher and AI alternate, step by step. On the AI's turns the teacher's only legal action is
``none`` (ignored); on the teacher's turns the AI's only legal action is ``0`` (ignored); ``horizon`` =
L + (attempts − 1) · 2L. A seat with a single legal action is not scored by ``rollout``. The teacher's
actions, one list for every strategy: ``none`` (silence), ``ok`` (this step, or the draft, was right),
``wrong`` (this step, or the draft, was wrong), ``is d`` (this step's right digit is d).

Why step by step rather than one remark on a whole draft: the built-in base is a random 2-layer model, and
a correction it must fetch from far back in the transcript is much harder for it to use than one that
immediately precedes the step it corrects (a first version with one remark per draft, "2 is 7", learned
nothing in 1000 iterations with the ``digit`` teacher at digits = 1).

Observations are append-only transcripts (the history of the interaction), digits in writing order::

    ai:      "ai . 47 times 3 : 1 4 2 : ok 1 ok 4 is 1 1"
    teacher: "teacher 47 times 3 is 1 4 1 . 47 times 3 : 1 4 2 : ok 1 ok 4 is 1 1"

Scripted teachers (``scripted_strategies``, ``scripted:corrective``) differ in the form of their feedback:
``digit`` gives the right digit of each wrong step ("is 7", "ok" for a right one), ``point`` points at
the wrong steps ("wrong" or "ok" at each step), ``wrong`` says a bare "wrong" (or "ok") once per draft,
about the whole previous draft, and ``silent`` says nothing: the no-feedback baseline, for
measuring how much the corrections help. Every word they use is a token of the built-in tokenizer.

Measured (``scripts/scripted_learner.py --game corrective --param digits=D --param credit=C --train digit
--train point --train wrong --train silent --iterations 1200 --episodes-per-teacher 128``; one LoRA AI per
teacher on the built-in base, 2 shared CPU cores; 512 evaluation interactions per pair): the base learns
no arithmetic from the bare payoff: the AI trained with ``silent`` scores 0.214 (D = 1, digit credit; the
best constant answer scores 0.238) and 0.225 (D = 2; constant 0.189), 0.131 exact (D = 1; constant 0.100).
It does learn to use the ``digit`` teacher's corrections: with them 0.542 / 0.693 / 0.545 (D = 1 digits,
D = 2 digits, D = 1 exact), and the same AI with a silent teacher 0.215 / 0.139 / 0.000. With ``point`` the
gain is smaller (0.255 / 0.324 / 0.152), with ``wrong`` 0.200 / 0.236 / 0.211. Wall time 152 s, 415 s, 183 s.

Symmetries: none declared (digits carry arithmetic meaning). Self-play is possible (an LM teacher learns its
own feedback language) but no config ships: the game is about interpreting a human's corrections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from adhoc._torch import torch
from adhoc.errors import GameError
from adhoc.games.core import GameState, advance, append_text, checked_actions, turn_mask

AI, TEACHER = 0, 1
DIGITS = [str(d) for d in range(10)]
OPS = ("times", "plus")
MAX_DIGITS = 6
MAX_ATTEMPTS = 9


@dataclass
class CorrectiveConfig:
    name: str = "corrective"
    digits: int = 2  # digits of a (and of b for plus); the answer has digits + 1
    op: str = "times"  # times: a x b, b one digit 2..9 | plus: a + b, both of `digits` digits
    attempts: int = 2  # drafts of the answer; in each after the first the teacher comments step by step
    credit: str = "exact"  # exact: 1 if the last draft is correct | digits: its fraction of correct digits


class CorrectiveGame:
    """Batched interactions. State ``extra``: a [E], b [E], answer [E, L] (digits in writing order, ones first),
    draft [E, L] (the current draft's digits, -1 unwritten), previous [E, L] (the last finished draft, -1
    before the first is finished), problem: E problem texts, text: per seat, E transcripts (no header)."""

    def __init__(self, cfg: CorrectiveConfig) -> None:
        self.name = cfg.name
        self.digits, self.op, self.attempts, self.credit = cfg.digits, cfg.op, cfg.attempts, cfg.credit
        self.length = self.digits + 1  # L
        self.horizon = self.length + (self.attempts - 1) * 2 * self.length
        self.feedback = ["none", "ok", "wrong"] + [f"is {d}" for d in range(10)]
        self._params = {"digits": self.digits, "op": self.op, "attempts": self.attempts, "credit": self.credit}

    # ---------------------------------------------------------------- protocol
    def action_names(self, seat: int) -> list[str]:
        return list(DIGITS) if seat == AI else list(self.feedback)

    def reset(self, n_episodes: int, rng: np.random.Generator) -> GameState:
        lo, hi = (10 ** (self.digits - 1) if self.digits > 1 else 0), 10 ** self.digits
        a = torch.as_tensor(rng.integers(lo, hi, size=n_episodes)).long()
        b = torch.as_tensor(rng.integers(2, 10, size=n_episodes) if self.op == "times"
                            else rng.integers(lo, hi, size=n_episodes)).long()
        return self.pose(a, b)

    def pose(self, a: torch.Tensor, b: torch.Tensor) -> GameState:
        """A fresh state whose problems are a[e] op b[e] (``reset`` draws them)."""
        n = len(a)
        value = a * b if self.op == "times" else a + b
        answer = torch.stack([(value // 10 ** i) % 10 for i in range(self.length)], 1)  # ones first
        problems = [f"{x} {self.op} {y}" for x, y in zip(a.tolist(), b.tolist())]
        text = [f"{p} :" for p in problems]
        blank = torch.full((n, self.length), -1, dtype=torch.long)
        return GameState(n, extra={"a": a, "b": b, "answer": answer, "draft": blank, "previous": blank.clone(),
                                   "problem": problems, "text": (text, list(text))})

    def phase(self, t: int) -> tuple[int, int, int]:
        """(draft k, step i of the draft, seat to act) at step t."""
        if t < self.length:
            return 0, t, AI
        k, j = divmod(t - self.length, 2 * self.length)
        return k + 1, j // 2, TEACHER if j % 2 == 0 else AI

    def observe(self, state: GameState, seat: int) -> list[str]:
        if seat == AI:
            return ["ai . " + text for text in state.extra["text"][AI]]
        return [f"teacher {p} is {' '.join(str(d) for d in ans)} . {text}" for p, ans, text in
                zip(state.extra["problem"], state.extra["answer"].tolist(), state.extra["text"][TEACHER])]

    def legal_mask(self, state: GameState, seat: int) -> torch.Tensor:
        # the other seat's turn: one forced, ignored action ("0" / "none")
        return turn_mask(state, len(self.action_names(seat)), state.t >= self.horizon or self.phase(state.t)[2] == seat)

    def step(self, state: GameState, actions: torch.Tensor) -> tuple[GameState, torch.Tensor, torch.Tensor]:
        actions = checked_actions(self, state, actions)
        n = state.n_episodes
        reward = torch.zeros(n)
        extra = dict(state.extra)
        t = state.t
        if t < self.horizon:
            k, i, seat = self.phase(t)
            if seat == AI:
                draft = extra["draft"].clone()
                draft[:, i] = actions[:, AI]
                said = [f" {d}" for d in actions[:, AI].tolist()]
                if i == self.length - 1:  # a draft is finished
                    if k == self.attempts - 1:  # the last one: paid
                        right = (draft == extra["answer"]).float()
                        reward = right.mean(1) if self.credit == "digits" else right.prod(1)
                    else:
                        said = [x + " :" for x in said]
                    extra["previous"], draft = draft, torch.full_like(draft, -1)
                extra["draft"] = draft
            else:
                said = [f" {self.feedback[a]}" for a in actions[:, TEACHER].tolist()]
            extra["text"] = append_text(extra["text"], said)
        new, done = advance(state, actions, extra, self.horizon)
        return new, reward * (~state.done), done

    def symmetries(self) -> None:
        return None

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    # ---------------------------------------------------------------- for people (play, serve)
    def rules(self, seat: int) -> str:
        D, L, K = self.digits, self.length, self.attempts
        problem = (f"a times b, with a of {D} digit{'s' * (D > 1)} and b one digit from 2 to 9" if self.op == "times"
                   else f"a plus b, both of {D} digit{'s' * (D > 1)}")
        drafts = (f"The AI writes {K} drafts of the answer. In every draft after the first, before the AI rewrites each "
                  "digit, the teacher comments on that digit of the previous draft: ok, wrong, 'is d' (the right digit "
                  "is d) or none (silence). " if K > 1 else "The AI writes the answer once; the teacher only watches. ")
        pay = "1 if it is right, else 0" if self.credit == "exact" else "the fraction of its digits that are right"
        common = (f"The problem is {problem}. The answer is written as {L} digits (a leading 0 if it is shorter), one "
                  f"digit per turn, starting from the ones digit.\n{drafts}Only the teacher knows the answer.\nYou both "
                  f"get the same reward, once, at the end, from the last draft: {pay}. {self.horizon} turns in all.")
        if seat == AI:
            return f"Arithmetic game. You are the AI (seat 0); your partner is the teacher. {common}"
        return f"Arithmetic game. You are the teacher (seat 1); your partner is the AI. {common}"

    def describe_action(self, seat: int, action: int) -> str:
        return f"wrote {DIGITS[action]}" if seat == AI else f"said {self.feedback[action]!r}"

    def show(self, state: GameState, seat: int) -> list[str]:
        out = []
        for e in range(state.n_episodes):
            problem = state.extra["problem"][e]
            lines = [f"Problem: {problem}."]
            if seat == TEACHER:
                answer = state.extra["answer"][e].tolist()
                lines[0] += f" The answer is {''.join(map(str, reversed(answer)))} (the AI does not see it)."
            drafts: list[list[str]] = [[] for _ in range(self.attempts)]
            for t, joint in enumerate(state.history[: self.horizon]):
                k, i, actor = self.phase(t)
                drafts[k].append(DIGITS[int(joint[e, AI])] if actor == AI
                                 else f"[teacher: {self.feedback[int(joint[e, TEACHER])]}]")
            for k, items in enumerate(drafts):
                digits = [x for x in items if not x.startswith("[")]
                if not items and (k > 0 and len([x for x in drafts[k - 1] if not x.startswith("[")]) < self.length):
                    break
                if not items and state.t >= self.horizon:
                    break
                number = "".join(reversed(digits))
                whole = f" = {number}" if len(digits) == self.length else ""
                lines.append(f"Draft {k + 1} of {self.attempts} (ones digit first): {' '.join(items) or '...'}{whole}")
                if len(digits) < self.length:
                    break
            if state.t < self.horizon:
                k, i, actor = self.phase(state.t)
                lines.append(f"Now: {'the AI writes' if actor == AI else 'the teacher comments on'} digit {i + 1} of "
                             f"{self.length} (counting from the ones digit).")
            out.append("\n".join(lines))
        return out

    def scripted_strategies(self) -> dict[str, "CorrectiveTeacher"]:
        return {kind: CorrectiveTeacher(kind, kind) for kind in TEACHER_KINDS}


TEACHER_KINDS = ("digit", "point", "wrong", "silent")
NONE, OK, WRONG, IS = 0, 1, 2, 3  # feedback indices; "is d" is IS + d


@dataclass
class CorrectiveTeacher:
    """A scripted human for the teacher seat, commenting on step i of the previous draft before the AI rewrites
    it: ``digit`` says "ok" if it was right, else its right digit ("is 7"); ``point`` "ok" or "wrong";
    ``wrong`` says once per draft, at its first step, "ok" if the whole previous draft was right, else a bare
    "wrong", and "none" at the other steps; ``silent`` always "none". Deterministic."""

    name: str
    kind: str
    seats: tuple[int, ...] = (TEACHER,)

    def log_probs(self, game: CorrectiveGame, state: GameState, seat: int) -> torch.Tensor:
        E = state.n_episodes
        out = torch.full((E, len(game.feedback)), float("-inf"))
        if state.t >= game.horizon or game.phase(state.t)[2] != TEACHER or self.kind == "silent":
            out[:, NONE] = 0.0  # not the teacher's turn (forced "none"), or silence
            return out
        i = game.phase(state.t)[1]
        answer, previous = state.extra["answer"], state.extra["previous"]
        right = previous[:, i] == answer[:, i]
        if self.kind == "digit":
            choice = torch.where(right, OK, IS + answer[:, i])
        elif self.kind == "point":
            choice = torch.where(right, OK, WRONG)
        elif i == 0:  # wrong: one verdict on the whole previous draft
            choice = torch.where((previous == answer).all(1), OK, WRONG)
        else:
            choice = torch.full((E,), NONE)
        out[torch.arange(E), choice] = 0.0
        return out


def build_corrective(cfg: CorrectiveConfig) -> CorrectiveGame:
    if not 1 <= cfg.digits <= MAX_DIGITS:
        raise GameError(f"game.digits must be 1..{MAX_DIGITS} (got {cfg.digits})")
    if cfg.op not in OPS:
        raise GameError(f"game.op must be times or plus (got {cfg.op!r})")
    if not 1 <= cfg.attempts <= MAX_ATTEMPTS:
        raise GameError(f"game.attempts must be 1..{MAX_ATTEMPTS} (got {cfg.attempts})")
    if cfg.credit not in ("exact", "digits"):
        raise GameError(f"game.credit must be exact or digits (got {cfg.credit!r})")
    return CorrectiveGame(cfg)
