"""A person (or a scripted stand-in) plays a game with one partner, step by step, every step recorded.

``Table`` is the one play loop, shared by ``adhoc play`` (the terminal, ``play_terminal``) and ``adhoc serve``
(the browser): it holds one episode at batch size 1, asks the person only when they have a choice (more than one
legal action), lets the partner act from the same state (moves are simultaneous; in a turn-taking game the seat
whose turn it is not has one legal action and is not asked), steps the game and writes the step to the
recording (``adhoc.recording.Recorder``, one transaction per step).

Partners (``load_partner``): ``POP[:MEMBER]``, a population folder (its member MEMBER; without one, a member
drawn at random for every episode) scored exactly as in a rollout (``Policy`` over the member's LoRA adapter,
sampled from the exact policy over the legal actions), or ``scripted:GAME[:NAME]``, a scripted strategy of the
game (without NAME: one drawn per episode). ``--human scripted:GAME:NAME`` lets a scripted strategy play the
person's seat through the very same loop and recording, so recordings of a known strategy can be made.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from adhoc.errors import UserError
from adhoc.games.core import seat_rewards
from adhoc.paths import check_name, split_member, unique_default


# ---------------------------------------------------------------------------- partners
@dataclass
class Partner:
    """A population (``policy`` over its bank, members = bank slots) or scripted strategies."""

    label: str  # population folder name, or the scripted spec's "scripted-GAME"
    source: str  # the folder or the scripted spec, as given
    names: list[str]  # the members that may play (one drawn per episode)
    seats: tuple[int, ...]  # the seats every one of them can play
    policy: Any = None  # adhoc.lm.policy.Policy for a population
    ids: list[int] = field(default_factory=list)  # bank slots of ``names`` (population)
    strategies: list[Any] = field(default_factory=list)  # scripted strategies of ``names``

    def draw(self, rng: np.random.Generator) -> int:
        return int(rng.integers(len(self.names))) if len(self.names) > 1 else 0

    @torch.no_grad()
    def log_probs(self, game, state, seat: int, k: int, observation: str, legal: torch.Tensor) -> torch.Tensor:
        """log π [A_seat] of member/strategy ``k`` over the seat's actions (-inf where illegal)."""
        from adhoc.lm.policy import masked_log_softmax

        if self.policy is not None:
            from adhoc.rollout import _seat_log_probs

            return _seat_log_probs(game, self.policy, state, seat, torch.tensor([self.ids[k]]), [observation],
                                   legal[None], None)[0].cpu()
        return masked_log_softmax(self.strategies[k].log_probs(game, state, seat)[:1].cpu(), legal[None])[0]


def _game_dict(game) -> dict[str, Any]:
    from adhoc.partners import _plain

    return _plain(game.params() | {"name": game.name})


_POLICIES: dict[str, Any] = {}  # one bank per population folder per process (the server loads each once)


def load_partner(spec: str, game, device: str = "cpu") -> Partner:
    """``POP[:MEMBER]`` or ``scripted:GAME[:NAME[,NAME]]`` for ``game`` (one UserError line when it cannot play
    it)."""
    from adhoc.partners import describe_game_difference, same_game
    from adhoc.population import Population
    from adhoc.scripted import is_scripted_spec, load_scripted_population

    spec = str(spec).strip()
    if is_scripted_spec(spec):
        pop = load_scripted_population(spec, game)
        seats = tuple(s for s in (0, 1) if all(s in st.seats for st in pop.strategies))
        return Partner(label=f"scripted-{game.name}", source=spec, names=list(pop.names), seats=seats,
                       strategies=list(pop.strategies))
    folder, member = split_member(spec)
    member = member or None  # POP or POP: is every member
    pop = Population.load(folder)
    if not same_game(pop.game, _game_dict(game)):
        raise UserError(f"{folder} plays {describe_game_difference(pop.game, _game_dict(game))} as configured")
    if member is not None and member not in pop.names:
        raise UserError(f"{folder} has no member {member!r} (members: {', '.join(pop.names)})")
    key = str(Path(folder).resolve())
    if key not in _POLICIES:
        from adhoc.lm.base import load_base
        from adhoc.lm.policy import Policy

        base = load_base(pop.base_model["id"], device=device, dtype="auto")
        _POLICIES[key] = Policy(base, pop.build_bank(base))
    names = [member] if member else list(pop.names)
    return Partner(label=Path(folder).resolve().name, source=folder, names=names, seats=(0, 1),
                   policy=_POLICIES[key], ids=[pop.names.index(n) for n in names])


def scripted_human(spec: str, game, seat: int) -> tuple[str, Callable]:
    """``scripted:GAME:NAME`` → (its name, a chooser that samples the strategy's action for ``seat``)."""
    from adhoc.scripted import is_scripted_spec, load_scripted_population

    if not is_scripted_spec(spec):
        raise UserError(f"--human {spec!r}: give a scripted strategy, scripted:GAME:NAME (adhoc list scripted)")
    pop = load_scripted_population(spec, game)
    if len(pop.strategies) != 1:
        raise UserError(f"--human {spec}: name exactly one strategy (scripted:{game.name}:NAME)")
    strategy = pop.strategies[0]
    if seat not in strategy.seats:
        raise UserError(f"--human {spec}: the strategy plays seat {list(strategy.seats)}, not seat {seat} (--seat)")
    partner = Partner(label="", source=spec, names=pop.names, seats=tuple(strategy.seats), strategies=[strategy])

    def choose(table: "Table", decision: "Decision") -> int:
        logp = partner.log_probs(table.game, table.state, seat, 0, decision.observation, decision.legal_mask)
        p = logp.double().exp().numpy()
        return int(table.rng.choice(len(p), p=p / p.sum()))

    return pop.names[0], choose


# ---------------------------------------------------------------------------- what a person reads
RULES_WORDS = ("?", "rules", "help")  # at the terminal prompt: the rules again (not a move)


def game_rules(game, seat: int) -> str:
    """The rules of ``game`` for a person in ``seat`` (``Game.rules``), shown before the first move and on demand."""
    rules = getattr(game, "rules", None)
    if rules is None:
        return (f"No rules are written for game {game.name!r}: what you see is the text the model reads. You both get "
                "the same reward.")
    return rules(seat)


def show_state(game, state, seat: int) -> str:
    """What ``seat`` knows now in words (``Game.show``, episode 0 of ``state``); the model's observation when the
    game has no ``show``."""
    show = getattr(game, "show", None)
    return (show(state, seat) if show is not None else game.observe(state, seat))[0]


def draw_state(game, state, seat: int) -> dict[str, Any] | None:
    """What ``seat`` knows now as data the browser draws (``Game.draw``, episode 0: a lever's payoffs, a payoff
    table, a grid, a repeated game's rounds); None when the game draws nothing (the page shows words alone)."""
    draw = getattr(game, "draw", None)
    return None if draw is None else draw(state, seat)[0]


def describe_action(game, seat: int, action: int) -> str:
    """A seat's action as a past-tense phrase (``Game.describe_action``; else "played 'A'")."""
    describe = getattr(game, "describe_action", None)
    return describe(seat, action) if describe is not None else f"played {game.action_names(seat)[action]!r}"


def describe_step(game, seat: int, event: "StepEvent") -> str:
    """One step, from ``seat``'s side, in words: what the person did (if it was their turn) and what the partner
    did (if the partner had a choice: a forced, ignored action is not mentioned), then the reward."""
    parts = []
    if event.human_chose:
        parts.append(f"you {describe_action(game, seat, event.action)}")
    if event.partner_chose:
        parts.append(f"your partner {describe_action(game, 1 - seat, event.partner_action)}")
    text = "; ".join(parts) or "nothing to choose"
    return f"{text[0].upper()}{text[1:]}; reward {event.reward:.3f}." if event.reward or event.done \
        else f"{text[0].upper()}{text[1:]}."


# ---------------------------------------------------------------------------- the play loop
@dataclass
class Decision:
    """What the person sees when it is their move: ``view`` in words (``show_state``) and ``drawing`` as data
    (``draw_state``, for the browser); ``observation`` is the model's text for the same state (what is recorded)."""

    t: int
    observation: str
    legal: list[str]  # legal action strings
    legal_index: list[int]  # their indices in the seat's action list
    legal_mask: torch.Tensor
    shown_at: float = field(default_factory=time.time)
    view: str = ""
    drawing: dict[str, Any] | None = None


@dataclass
class StepEvent:
    t: int
    action: int
    action_text: str
    partner_action: int
    partner_action_text: str
    partner_chose: bool  # the partner had a choice (False: it was the person's turn)
    human_chose: bool
    reward: float
    done: bool


class Table:
    """One person (one seat) and one partner, playing episodes one by one into a recording session."""

    def __init__(self, game, partner: Partner, human_seat: int, recorder, session: int, participant: str,
                 rng: np.random.Generator) -> None:
        if human_seat not in (0, 1):
            raise UserError(f"--seat must be 0 or 1 (got {human_seat})")
        if 1 - human_seat not in partner.seats:
            raise UserError(f"partner {partner.source} plays seat {list(partner.seats)} only, so you cannot take "
                            f"seat {human_seat} (try --seat {1 - human_seat})")
        self.game, self.partner, self.seat = game, partner, human_seat
        self.recorder, self.session, self.participant, self.rng = recorder, session, participant, rng
        self.episode_id: int | None = None
        self.episode_number = 0
        self.state = None
        self.member = 0
        self.episode_return = 0.0
        self.returns: list[float] = []  # complete episodes

    @property
    def partner_name(self) -> str:
        return f"{self.partner.label}/{self.partner.names[self.member]}"

    def new_episode(self, number: int | None = None) -> None:
        """Start episode ``number`` of the session (default: this table's next; several tables in one session,
        the browser's partners, number the session's episodes themselves)."""
        self.member = self.partner.draw(self.rng)
        self.state = self.game.reset(1, self.rng)
        self.episode_return = 0.0
        self.episode_number = len(self.returns) + 1 if number is None else number
        self.episode_id = self.recorder.start_episode(self.session, self.episode_number, self.partner_name,
                                                      self.partner.source, self.partner.names[self.member], self.seat)

    @property
    def done(self) -> bool:
        return self.state is None or bool(self.state.done.all()) or self.state.t >= self.game.horizon

    @property
    def rules(self) -> str:
        """The rules for the person's seat (``game_rules``)."""
        return game_rules(self.game, self.seat)

    def _view(self, seat: int) -> Decision:
        mask = self.game.legal_mask(self.state, seat)[0].cpu()
        index = torch.nonzero(mask)[:, 0].tolist()
        names = self.game.action_names(seat)
        mine = seat == self.seat
        return Decision(self.state.t, self.game.observe(self.state, seat)[0], [names[i] for i in index], index, mask,
                        view=show_state(self.game, self.state, seat) if mine else "",
                        drawing=draw_state(self.game, self.state, seat) if mine else None)

    def advance(self) -> tuple[Decision | None, list[StepEvent]]:
        """Play the steps where the person has no choice; the person's next decision (None: the episode is over)
        and the steps played."""
        events = []
        while not self.done:
            view = self._view(self.seat)
            if len(view.legal_index) > 1:
                return view, events
            events.append(self._step(view, view.legal_index[0], forced=True))
        return None, events

    def act(self, decision: Decision, action: int) -> StepEvent:
        """The person's move ``action`` (an index in their seat's action list, legal) at ``decision``."""
        if action not in decision.legal_index:
            raise ValueError(f"action {action} is not legal here ({decision.legal_index})")
        return self._step(decision, action, forced=False)

    def _step(self, view: Decision, action: int, forced: bool) -> StepEvent:
        other = 1 - self.seat
        theirs = self._view(other)
        if len(theirs.legal_index) > 1:
            logp = self.partner.log_probs(self.game, self.state, other, self.member, theirs.observation,
                                          theirs.legal_mask)
            p = logp.exp().double().numpy()
            partner_action = int(self.rng.choice(len(p), p=p / p.sum()))
        else:
            partner_action = theirs.legal_index[0]
        joint = [0, 0]
        joint[self.seat], joint[other] = action, partner_action
        self.state, reward, done = self.game.step(self.state, torch.tensor([joint]))
        reward = float(seat_rewards(reward)[0, self.seat])  # the person's own (the common payoff, or its seat's)
        done = bool(done[0]) or self.state.t >= self.game.horizon
        self.episode_return += reward
        names, partner_names = self.game.action_names(self.seat), self.game.action_names(other)
        now = time.time()
        self.recorder.record_step(self.episode_id, {
            "participant": self.participant, "t": view.t, "seat": self.seat, "observation": view.observation,
            "legal": view.legal, "legal_index": view.legal_index, "action": action, "action_text": names[action],
            "partner_action": partner_action, "partner_action_text": partner_names[partner_action],
            "reward": reward, "done": done, "time": now, "response_s": None if forced else now - view.shown_at,
        }, ends_episode=done)
        if done:
            self.returns.append(self.episode_return)
        return StepEvent(view.t, action, names[action], partner_action, partner_names[partner_action],
                         len(theirs.legal_index) > 1, not forced, reward, done)


def game_of(config_path: str, overrides: list[str]):
    """The game a config plays (a population or learner config; a learner config without a game: None)."""
    from adhoc.config import RunConfig, load_config
    from adhoc.games import build_game

    config = load_config(config_path, overrides)
    spec = config.game if isinstance(config, RunConfig) else getattr(config, "game", None)
    return None if spec is None else build_game(spec)


def people_game(config_path: str | None, overrides: list[str], partner: str):
    """The game people play: the config's, or else the partner population's without its training schedule
    (``TRAINING_SCHEDULE``: a population trained with Overcooked's shaped rewards is played for soups alone).
    A config that turns a schedule on is refused: its weight would fade with every step anyone plays."""
    from adhoc.games import build_game
    from adhoc.games.core import TRAINING_SCHEDULE
    from adhoc.partners import game_itself
    from adhoc.population import Population
    from adhoc.scripted import PREFIX, is_scripted_spec

    game = None if config_path is None else game_of(config_path, overrides)
    if game is not None:  # else a learner config without a game: the partner's
        if scheduled := sorted(TRAINING_SCHEDULE & set(game.params())):
            raise UserError(f"{config_path}: people play the game's own reward, so game.{scheduled[0]} must be off "
                            f"(a training schedule whose weight would fade with every step played); "
                            f"add game.{scheduled[0]}=0")
        return game
    if is_scripted_spec(partner):
        return build_game({"name": partner[len(PREFIX):].partition(":")[0]})
    return build_game(game_itself(Population.load(split_member(partner)[0]).game))


def default_db() -> Path:
    return unique_default("play").with_suffix(".sqlite")


# ---------------------------------------------------------------------------- the terminal
class _EndOfInput(Exception):
    pass


def _ask(decision: Decision, read: Callable[[str], str], write: Callable[[str], None], rules: str = "") -> int:
    """The person's legal action: its number or its text; ``?`` (or ``rules``) shows the rules again and asks
    again; anything else asks again."""
    choices = "  ".join(f"[{i}] {name}" for i, name in zip(decision.legal_index, decision.legal))
    write(f"your actions: {choices}\n")
    while True:
        try:
            answer = read(f"your move ({'/'.join(map(str, decision.legal_index))}, or the action; ? rules; q quits): ").strip()
        except EOFError:
            raise _EndOfInput from None
        if answer.lower() in ("q", "quit", "exit"):
            raise _EndOfInput
        if answer.lower() in RULES_WORDS and answer not in decision.legal:
            write(f"\nRules:\n{rules}\n\n")
            continue
        if answer.lstrip("-").isdigit() and int(answer) in decision.legal_index:
            return int(answer)
        if answer in decision.legal:
            return decision.legal_index[decision.legal.index(answer)]
        write(f"  {answer!r} is not one of your legal actions; type one of the numbers "
              f"{', '.join(map(str, decision.legal_index))}\n")


def play_terminal(game, partner_spec: str, seat: int = 0, episodes: int = 5, db: str | Path | None = None,
                  participant: str | None = None, human: str | None = None, seed: int | None = None,
                  read: Callable[[str], str] = input, write: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Play ``episodes`` episodes with the partner, asking ``read`` for the person's moves (or letting the scripted
    ``human`` play), recording to ``db``. End of input or Ctrl-C ends the session cleanly (what was played is
    saved). Returns a summary (db, session, returns, stopped)."""
    from adhoc.recording import Recorder

    write = write or (lambda text: (sys.stdout.write(text), sys.stdout.flush()))
    if episodes < 1:
        raise UserError(f"--episodes must be >= 1 (got {episodes})")
    if seat not in (0, 1):
        raise UserError(f"--seat must be 0 or 1 (got {seat})")
    chooser = None
    if human is not None:
        name, chooser = scripted_human(human, game, seat)
        participant = participant or f"scripted-{name}"
    participant = check_name(participant or "terminal", "--participant")
    partner = load_partner(partner_spec, game)
    if 1 - seat not in partner.seats:  # refused before the database is opened
        raise UserError(f"partner {partner.source} plays seat {list(partner.seats)} only, so you cannot take "
                        f"seat {seat} (try --seat {1 - seat})")
    db = Path(db) if db is not None else default_db()
    seed = secrets.randbits(32) if seed is None else int(seed)
    recorder = Recorder.open(db)
    rng = np.random.default_rng(seed)
    session = recorder.start_session(participant, "terminal" if human is None else human, _game_dict(game), seat,
                                     consent=human is None, info={"partner": partner_spec, "seed": seed,
                                                                  "episodes": episodes})
    table = Table(game, partner, seat, recorder, session, participant, rng)
    quiet = human is not None
    params = ", ".join(f"{k}={v}" for k, v in game.params().items() if not isinstance(v, (list, dict)))
    write(f"{game.name} ({params}) with {partner_spec}; you are seat {seat}; {episodes} episodes; "
          f"recording to {db}\n")
    if not quiet:
        write(f"\nRules (type ? at the prompt to see them again):\n{table.rules}\n")
    stopped = None
    try:
        for number in range(1, episodes + 1):
            table.new_episode()
            if not quiet:
                write(f"\n=== episode {number} of {episodes} (partner {table.partner_name}) ===\n")
            while True:
                decision, events = table.advance()
                if not quiet:
                    for e in events:
                        write(f"  step {e.t + 1}: {describe_step(game, seat, e)}\n" if e.partner_chose else "")
                if decision is None:
                    break
                if not quiet:
                    write(f"\n--- step {decision.t + 1} of at most {game.horizon}: your turn ---\n{decision.view}\n")
                action = chooser(table, decision) if chooser else _ask(decision, read, write, table.rules)
                e = table.act(decision, action)
                if not quiet:
                    write(f"  {describe_step(game, seat, e)}\n")
                if e.done:
                    break
            total = sum(table.returns)
            write(f"episode {number}: return {table.returns[-1]:.3f}   running score: {total:.3f} over "
                  f"{len(table.returns)} episode{'s' * (len(table.returns) != 1)} (mean {total / len(table.returns):.3f})\n")
    except _EndOfInput:
        stopped = "end of input"
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        recorder.end_session(session)
        recorder.close()
    done = len(table.returns)
    write(f"\n{'stopped (' + stopped + '): ' if stopped else ''}{done} complete episode{'s' * (done != 1)}, "
          f"total return {sum(table.returns):.3f}; recorded in {db} (session {session})\n")
    return {"db": str(db), "session": session, "returns": table.returns, "stopped": stopped}


def play_command(config: str, overrides: list[str], partner: str, seat: int, episodes: int, db: str | None,
                 participant: str | None, human: str | None, seed: int | None) -> int:
    from adhoc.scripted import is_scripted_spec

    if is_scripted_spec(partner) and game_of(config, overrides) is None:  # (people_game reads the config again)
        raise UserError(f"{config} has no game section; add one or give a population partner")
    game = people_game(config, overrides, partner)
    if db is not None:
        check_db_path(db)
    summary = play_terminal(game, partner, seat=seat, episodes=episodes, db=db, participant=participant,
                            human=human, seed=seed)
    return 130 if summary["stopped"] == "interrupted" else 0


def check_db_path(db: str | Path) -> None:
    """Refuse a --db that is not (or cannot become) a recording before anything is played."""
    from adhoc.recording import open_recording

    path = Path(db)
    if path.is_symlink():  # a dangling one would create a file wherever it points
        raise UserError(f"--db {db} is a symbolic link; give the database file itself")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"--db {db} is read-only here; play appends to it: make it writable or choose another --db")
    if path.exists():
        open_recording(path).close()  # one line if it is not ours or of another schema version
