"""``openspiel``: any two-player OpenSpiel game (Lanctot et al. 2019): Hanabi, Kuhn and Leduc poker, TicTacToe.

``game=openspiel game.game="hanabi(players=2,colors=2,ranks=2,hand_size=2,max_information_tokens=3,max_life_tokens=1)"``
loads the game string with ``pyspiel.load_game`` (the extra ``pip install -e ".[openspiel]"``; ``import adhoc``
never imports pyspiel). The game must have two players; any other game is refused in one line naming why.

Mapping onto adhoc's batched, simultaneous-move protocol:

- **Turns.** At a sequential node the player to move has its legal actions (``legal_actions``); the other seat
  has one forced action (index 0, ignored by the game and not scored by the rollout). At a simultaneous node
  both seats act and the joint action is applied with ``apply_actions``.
- **Chance.** After every move (and at reset) chance nodes are resolved by sampling ``chance_outcomes()`` with
  a per-episode generator seeded from the run's generator at ``reset``: every episode draws from its own
  stream, so the outcomes are reproducible and the same whether the batch is played whole or cut into shards.
- **Observations.** ``observation: auto`` shows each seat the information-state string where the game
  provides one (kuhn_poker "0pb", tiny_hanabi "p1:d0 p0:a0"), else the observation string (Hanabi's card
  view); ``information_state`` and ``observation`` force one. ``transcript: true`` makes observations
  append-only records (every move as "p0 <action>", and the seat's view before each of its own moves), so a
  seat sees the whole history and the rollout's prefix cache encodes only what was appended. As every move
  is written to both seats, it is refused for games with hidden moves (allowed: perfect information, and
  ``PUBLIC_MOVES``: Hanabi, tiny_hanabi, tiny_bridge_2p).
- **Actions** are ``action_to_string`` of every distinct action (e.g. "(Play 0)", "(Reveal player +1 color
  R)"); a game whose actions do not render as distinct printable strings is refused. The policy scores an
  action string as the sum of its tokens' log-probabilities, so on an untrained base long names start out
  unlikely: Hanabi's hints (17 built-in tokens) get ~0 of the first move's probability against plays (7
  tokens). ``actions: numbered`` lets the policy score equal-length labels a0, a1, ... instead (the
  transcripts, the rules and ``adhoc play`` still write OpenSpiel's strings).
- **Payoffs.** The game's utility type sets ``payoff`` (``adhoc.games.core.payoff_kind``): ``IDENTICAL`` is
  ``common`` (Hanabi, tiny_hanabi: both seats get the same reward), ``ZERO_SUM`` is ``zero_sum`` (kuhn_poker,
  leduc_poker, tic_tac_toe) and ``GENERAL_SUM`` and ``CONSTANT_SUM`` are ``general_sum`` (a constant-sum
  game's rewards add up to a constant that need not be 0, so it is not declared zero-sum). Seat s is
  OpenSpiel's player s.
- **Rewards.** Step reward = the change of ``returns()`` (Hanabi pays per card played and takes the score
  back when the last life token is lost; most games pay only at the end), so an episode's return is the
  game's: [E] (player 0's, which is everyone's) for a common-payoff game, [E, 2] (column s: player s's) for
  the others.
- **Scripted partners** (``scripted:openspiel[:uniform,mcts-N]``): OpenSpiel's uniform random bot (any game)
  and its MCTS bot with N simulations (``MCTSScripted``; sequential perfect-information games only, since it
  searches the true state).
- **Symmetries.** Hanabi declares its colour permutations (``HanabiColours``): a permutation σ of the colours
  maps the colour-hint actions (hint c -> hint σ(c)) and, in ``relabel_observation`` (Other-Play's partner
  view), every colour letter of the observation, as in Hu et al. 2020. Other games declare none.
"""

from __future__ import annotations

import copy
import os
import re
import string
from dataclasses import dataclass
from typing import Any

import numpy as np

from adhoc._torch import torch
from adhoc.errors import GameError, MissingExtra, UserError
from adhoc.games.core import GameState, checked_actions, number
from adhoc.games.matrix import MAX_ACTIONS, numbered
from adhoc.games.symmetry import PermutationGroup

OBSERVATIONS = ("auto", "information_state", "observation")
ACTION_NAMES = ("openspiel", "numbered")
MAX_HORIZON = 1000  # moves per episode
MAX_ACTION_NAME = 80  # characters
PRINTABLE = set(string.printable) - set("\x0b\x0c\r")
EXTRA = 'pip install -e ".[openspiel]"'
# Imperfect-information games whose every move both players see (bids, hints, plays): a transcript may write
# each move to both seats. In others (coop_box_pushing: each agent sees only its own cell) it would leak.
PUBLIC_MOVES = ("hanabi", "tiny_hanabi", "tiny_bridge_2p")
_PROBED: set[str] = set()  # game strings a forked child has loaded without trouble


@dataclass
class OpenSpielConfig:
    name: str = "openspiel"
    game: str = "tiny_hanabi"  # an OpenSpiel game string, with parameters: "hanabi(colors=2,ranks=2)"
    observation: str = "auto"  # auto | information_state | observation
    transcript: bool = False  # append-only observations: every move, and the seat's view before its own moves
    actions: str = "openspiel"  # openspiel: the policy scores action_to_string; numbered: a0, a1, ... (equal length)


def load_pyspiel():
    """The ``pyspiel`` module, or one line naming the extra that installs it."""
    try:
        import pyspiel
    except ImportError:
        raise MissingExtra(f"game 'openspiel' needs OpenSpiel, which is not installed: {EXTRA}") from None
    return pyspiel


def probe(pyspiel, text: str) -> str | None:
    """Load ``text`` and reach its first decision in a forked child, its stderr captured: None if that works, else
    the first line OpenSpiel printed. OpenSpiel aborts the whole process on some bad parameters
    (``hanabi(colors=9)``) and prints every registered game's name on an unknown one, so neither reaches the user
    from here. Without ``fork`` (Windows) the game is loaded in-process only."""
    if not hasattr(os, "fork"):
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            import faulthandler

            faulthandler.disable()  # an abort is the expected failure here, not a crash to report
            os.close(read)
            os.dup2(write, 2)
            state = pyspiel.load_game(text).new_initial_state()
            for _ in range(MAX_HORIZON):
                if not state.is_chance_node():
                    break
                state.apply_action(state.chance_outcomes()[0][0])
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        printed = pipe.read().decode("utf-8", "replace")
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return None
    lines = [line.strip() for line in printed.splitlines() if line.strip()]
    first = lines[0].removeprefix("OpenSpiel exception:").strip() if lines else "OpenSpiel stopped"
    first = first.removesuffix("Available games are:").strip().rstrip(".")
    return first if len(first) <= 300 else first[:297] + "..."


def check_supported(pyspiel, game, text: str) -> None:
    """Refuse, in one line naming why, a game the bridge cannot play: not 2 players, sampled chance (no outcome
    distribution to draw from), or mean-field dynamics. Any utility type is accepted (``payoff_of``)."""
    kind = game.get_type()
    if game.num_players() != 2:
        raise GameError(f"game.game {text!r} has {game.num_players()} players; adhoc's games have exactly 2 seats")
    payoff_of(pyspiel, game)
    if kind.chance_mode == pyspiel.GameType.ChanceMode.SAMPLED_STOCHASTIC:
        raise GameError(f"game.game {text!r} samples chance internally (no outcome distribution to draw from)")
    if kind.dynamics not in (pyspiel.GameType.Dynamics.SEQUENTIAL, pyspiel.GameType.Dynamics.SIMULTANEOUS):
        raise GameError(f"game.game {text!r} has {kind.dynamics.name.lower()} dynamics; only sequential and "
                        "simultaneous games are supported")


def payoff_of(pyspiel, game) -> str:
    """The adhoc payoff kind of an OpenSpiel game's utility type: IDENTICAL -> ``common``, ZERO_SUM ->
    ``zero_sum``, GENERAL_SUM and CONSTANT_SUM -> ``general_sum`` (per-seat rewards that add up to a constant,
    not necessarily 0)."""
    utility = pyspiel.GameType.Utility
    kinds = {utility.IDENTICAL: "common", utility.ZERO_SUM: "zero_sum", utility.GENERAL_SUM: "general_sum",
             utility.CONSTANT_SUM: "general_sum"}
    kind = game.get_type().utility
    if kind not in kinds:
        raise GameError(f"game.game {str(game)!r} has utility type {kind.name}, which adhoc does not know")
    return kinds[kind]


def action_strings(pyspiel, game, text: str) -> list[list[str]]:
    """Each seat's action names, ``action_to_string`` of every distinct action at the first decision state;
    refused unless they are distinct, non-empty, printable and at most ``MAX_ACTION_NAME`` characters."""
    state = game.new_initial_state()
    while state.is_chance_node():
        state.apply_action(state.chance_outcomes()[0][0])
    n = game.num_distinct_actions()
    if not 2 <= n <= MAX_ACTIONS:
        raise GameError(f"game.game {text!r} has {n} distinct actions (allowed 2..{MAX_ACTIONS})")
    names = []
    for seat in (0, 1):
        try:
            seat_names = [state.action_to_string(seat, a) for a in range(n)]
        except pyspiel.SpielError as exc:
            raise GameError(f"game.game {text!r}: its actions cannot be rendered ({exc})") from None
        bad = [s for s in seat_names if not s.strip() or len(s) > MAX_ACTION_NAME or not set(s) <= PRINTABLE]
        if bad or len(set(seat_names)) != n:
            why = f"{bad[0]!r} is empty, too long or not printable" if bad else "two actions render the same"
            raise GameError(f"game.game {text!r}: its actions cannot be rendered as distinct strings ({why})")
        names.append(seat_names)
    return names


class OpenSpielGame:
    """Batched episodes of one OpenSpiel game. State ``extra``: ``states`` (E pyspiel states) and ``rngs`` (E numpy
    generators, one chance stream per episode), neither ever mutated (``step`` clones a state, and copies a
    generator before drawing from it, so stepping one state twice draws the same outcomes), ``returns`` (the
    return so far: [E] for a common-payoff game, [E, 2] per seat otherwise) and, with ``transcript``, ``text``
    (per seat, E append-only records). ``payoff``: ``common``, ``zero_sum`` or ``general_sum`` (``payoff_of``)."""

    def __init__(self, pyspiel, game, text: str, observation: str, transcript: bool, actions: str) -> None:
        self._pyspiel, self._game = pyspiel, game
        self.kind = game.get_type()
        self.payoff = payoff_of(pyspiel, game)
        self.game_string = str(game)
        self.name = "openspiel"
        self.horizon = game.max_game_length()
        self.observation, self.transcript = observation, transcript
        self._info_state = observation == "information_state" or (
            observation == "auto" and self.kind.provides_information_state_string)
        self.actions = actions
        self._strings = action_strings(pyspiel, game, text)  # OpenSpiel's names, for transcripts and people
        n = len(self._strings[0])
        self._actions = [numbered(n, "a")] * 2 if actions == "numbered" else self._strings
        self._simultaneous = self.kind.dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS
        self._group = HanabiColours(self._strings[0]) if self.kind.short_name == "hanabi" else None

    # ------------------------------------------------------------------ protocol
    def action_names(self, seat: int) -> list[str]:
        return self._actions[seat]

    def params(self) -> dict[str, Any]:
        return {"game": self.game_string, "observation": self.observation, "transcript": self.transcript,
                "actions": self.actions}

    def symmetries(self) -> PermutationGroup | None:
        return None if self._group is None else self._group.group

    def reset(self, n_episodes: int, rng: np.random.Generator) -> GameState:
        seeds = rng.integers(2**63 - 1, size=n_episodes)
        rngs = [np.random.default_rng(int(s)) for s in seeds]
        states = []
        for gen in rngs:
            s = self._game.new_initial_state()
            _resolve_chance(s, gen)
            states.append(s)
        width = () if self.payoff == "common" else (2,)
        extra = {"states": states, "rngs": rngs, "returns": torch.zeros(n_episodes, *width, dtype=torch.float64)}
        if self.transcript:
            extra["text"] = tuple([self._transcript_start(s, seat) for s in states] for seat in (0, 1))
        return GameState(n_episodes, done=torch.tensor([s.is_terminal() for s in states], dtype=torch.bool),
                         extra=extra)

    def observe(self, state: GameState, seat: int) -> list[str]:
        if self.transcript:
            return list(state.extra["text"][seat])
        return [self._view(s, seat) for s in state.extra["states"]]

    def legal_mask(self, state: GameState, seat: int) -> torch.Tensor:
        mask = torch.zeros(state.n_episodes, len(self._actions[seat]), dtype=torch.bool)
        for e, s in enumerate(state.extra["states"]):
            legal = s.legal_actions(seat) if self._to_move(s, seat) else []
            mask[e, legal if legal else [0]] = True  # not this seat's move: one forced action, ignored
        return mask

    def step(self, state: GameState, actions: torch.Tensor) -> tuple[GameState, torch.Tensor, torch.Tensor]:
        actions = checked_actions(self, state, actions).tolist()
        states, rngs, returns = [], [], state.extra["returns"].clone()
        text = tuple(list(t) for t in state.extra["text"]) if self.transcript else None
        for e, (old, gen) in enumerate(zip(state.extra["states"], state.extra["rngs"])):
            if old.is_terminal():
                states.append(old)
                rngs.append(gen)
                continue
            s = old.clone()
            moves = self._apply(s, actions[e])
            if s.is_chance_node():  # draw from a copy: the old state's stream stays where it was
                gen = copy.deepcopy(gen)
                _resolve_chance(s, gen)
            states.append(s)
            rngs.append(gen)
            if self.payoff == "common":
                returns[e] = s.returns()[0]
            else:
                returns[e] = torch.tensor(s.returns()[:2], dtype=torch.float64)
            if text is not None:
                for seat in (0, 1):
                    text[seat][e] += self._transcript_step(s, seat, moves)
        reward = (returns - state.extra["returns"]).float()
        done = torch.tensor([s.is_terminal() for s in states], dtype=torch.bool)
        extra = {"states": states, "rngs": rngs, "returns": returns}
        if text is not None:
            extra["text"] = text
        return GameState(state.n_episodes, t=state.t + 1, done=done,
                         history=state.history + [torch.tensor(actions, dtype=torch.long)], extra=extra), reward, done

    # ------------------------------------------------------------------ for people
    def rules(self, seat: int) -> str:
        kind = self.kind
        moves = "at the same time" if self._simultaneous else "in turns"
        names = self._strings[seat] if self.actions == "openspiel" else \
            [f"{a} {s}" for a, s in zip(self._actions[seat], self._strings[seat])]
        shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
        goal = {"common": f"you and your partner move {moves} and both get the same reward.",
                "zero_sum": f"you and your opponent move {moves}; the game is competitive and zero-sum: your gain "
                            "is your opponent's loss.",
                "general_sum": f"you and the other player move {moves} and each gets their own reward (not "
                               "necessarily what the other gets, nor its opposite)."}[self.payoff]
        return (f"{kind.long_name} from OpenSpiel ({self.game_string}). You are player {seat + 1} of 2 (p{seat}); "
                f"{goal}\n"
                f"Your actions: {shown}. Each turn you see {'the game so far' if self._info_state else 'the table'} "
                f"as OpenSpiel writes it from your side. At most {self.horizon} moves; scores range from "
                f"{number(self._game.min_utility())} to {number(self._game.max_utility())}.")

    def show(self, state: GameState, seat: int) -> list[str]:
        out = []
        for s in state.extra["states"]:
            if s.is_terminal():
                out.append(f"{self._view(s, seat)}\nGame over: you scored {number(s.returns()[seat])}.")
            else:
                turn = "Your move." if self._to_move(s, seat) else f"Your {self._other}'s move."
                out.append(f"{self._view(s, seat)}\n{turn}")
        return out

    @property
    def _other(self) -> str:
        """The other seat, for a person: partner, opponent or other player."""
        return {"common": "partner", "zero_sum": "opponent", "general_sum": "other player"}[self.payoff]

    def describe_action(self, seat: int, action: int) -> str:
        return f"played {self._strings[seat][action]}"

    # ------------------------------------------------------------------ Other-Play
    def relabel_observation(self, state: GameState, seat: int, maps: torch.Tensor,
                            seat0_maps: torch.Tensor | None = None) -> list[str]:
        """Other-Play: the observations of ``seat`` for a player whose action a is the game's ``maps[e, a]``:
        each episode's colour permutation σ is read off its colour-hint actions, and every colour letter of
        the observation is shown as σ⁻¹ of it (``HanabiColours.relabel_text``)."""
        if self._group is None:
            raise GameError(f"game.game {self.game_string!r} declares no symmetries to relabel by")
        texts = self.observe(state, seat)
        return [self._group.relabel_text(t, self._group.colour_map(m), inverse=True)
                for t, m in zip(texts, torch.as_tensor(maps).tolist())]

    # ------------------------------------------------------------------ scripted partners (OpenSpiel's bots)
    def scripted_strategies(self) -> dict[str, Any]:
        """``uniform`` for every game; on a sequential perfect-information game also ``mcts-100``."""
        found: dict[str, Any] = {"uniform": UniformScripted()}
        if self._mcts_refusal() is None:
            found["mcts-100"] = MCTSScripted("mcts-100", 100)
        return found

    scripted_pattern = "mcts-N (OpenSpiel's MCTS bot, N simulations with random rollouts; perfect information)"

    def scripted_strategy(self, name: str) -> Any | None:
        """``mcts-N`` for N >= 1 (refused in one line on games MCTS would cheat at or cannot search); None for
        a name this game does not know."""
        match = re.fullmatch(r"mcts-(\d+)", name)
        if match is None:
            return None
        n = int(match.group(1))
        if not 1 <= n <= MAX_SIMULATIONS:
            raise UserError(f"scripted strategy '{name}': N must be 1..{MAX_SIMULATIONS} simulations")
        if (why := self._mcts_refusal()) is not None:
            raise UserError(f"scripted strategy '{name}' cannot play game.game {self.game_string!r}: {why}")
        return MCTSScripted(name, n)

    def _mcts_refusal(self) -> str | None:
        """Why OpenSpiel's MCTS bot may not play this game (None: it may): it searches the true state, which in
        an imperfect-information game would read the opponent's hidden cards."""
        kind, pyspiel = self.kind, self._pyspiel
        if self._simultaneous:
            return "its moves are simultaneous (MCTS searches sequential games)"
        if kind.information != pyspiel.GameType.Information.PERFECT_INFORMATION:
            return "it has imperfect information (MCTS would search the true state and see hidden information)"
        if kind.reward_model != pyspiel.GameType.RewardModel.TERMINAL:
            return "it pays rewards before the end (OpenSpiel's MCTS needs terminal rewards)"
        return None

    def pyspiel_game(self):
        """The loaded ``pyspiel.Game``."""
        return self._game

    # ------------------------------------------------------------------ internals
    def _to_move(self, s, seat: int) -> bool:
        if s.is_terminal():
            return False
        if s.is_simultaneous_node():
            return bool(s.legal_actions(seat))
        return s.current_player() == seat

    def _view(self, s, seat: int) -> str:
        return s.information_state_string(seat) if self._info_state else s.observation_string(seat)

    def _transcript_start(self, s, seat: int) -> str:
        """A transcript's first line, "you p<seat>", and the seat's view if it moves first (s: after chance)."""
        return f"you p{seat}" + (f"\n{self._view(s, seat)}" if self._to_move(s, seat) else "")

    def _transcript_step(self, s, seat: int, moves: list[tuple[int, str]]) -> str:
        """What a step appends to a transcript: every move, then the seat's view if it is to move in s."""
        return "".join(f"\np{p} {name}" for p, name in moves) + (f"\n{self._view(s, seat)}"
                                                                 if self._to_move(s, seat) else "")

    def render(self, s, seat: int) -> str:
        """The observation ``observe`` gives ``seat`` in any episode that has reached the pyspiel state ``s`` (a
        decision node, as a rollout sees one: chance resolved), with this game's settings: the information-state
        or observation string or, with ``transcript``, the transcript, rebuilt by replaying ``s.history()`` from
        the initial state the way ``reset`` and ``step`` write it (player moves apply as ``step`` applies them,
        the chance outcomes that follow each move are resolved before the text is appended)."""
        if not self.transcript:
            return self._view(s, seat)
        history = s.history()
        r, i = self._game.new_initial_state(), 0
        while r.is_chance_node():
            r.apply_action(history[i])
            i += 1
        text = self._transcript_start(r, seat)
        while i < len(history):
            if r.is_simultaneous_node():
                raise GameError(f"game.game {self.game_string!r}: transcripts of simultaneous moves cannot be "
                                "rebuilt from a state's history")
            joint = [0, 0]
            joint[r.current_player()] = history[i]
            moves = self._apply(r, joint)
            i += 1
            while r.is_chance_node():
                r.apply_action(history[i])
                i += 1
            text += self._transcript_step(r, seat, moves)
        return text

    def _apply(self, s, joint: list[int]) -> list[tuple[int, str]]:
        """Apply one move (the mover's action, or both at a simultaneous node); the moves as (player, name)."""
        if s.is_simultaneous_node():
            legal = [s.legal_actions(seat) for seat in (0, 1)]
            for seat in (0, 1):
                if legal[seat] and joint[seat] not in legal[seat]:
                    raise ValueError(f"seat {seat} action {joint[seat]} is not legal in this state")
            joint = [a if legal[p] else 0 for p, a in enumerate(joint)]
            s.apply_actions(joint)
            return [(p, self._strings[p][joint[p]]) for p in (0, 1) if legal[p]]
        p = s.current_player()
        if joint[p] not in s.legal_actions(p):
            raise ValueError(f"seat {p} action {joint[p]} is not legal in this state")
        name = self._strings[p][joint[p]]
        s.apply_action(joint[p])
        return [(p, name)]


def _resolve_chance(s, gen: np.random.Generator) -> None:
    """Sample chance nodes from their own distribution until a player moves or the game ends."""
    while s.is_chance_node():
        outcomes, probs = zip(*s.chance_outcomes())
        cdf = np.cumsum(probs)
        i = min(int(np.searchsorted(cdf, gen.random() * cdf[-1], side="right")), len(outcomes) - 1)
        s.apply_action(outcomes[i])


# ---------------------------------------------------------------------- OpenSpiel's bots as scripted partners
MAX_SIMULATIONS = 100_000
UCT_C = 2.0  # the exploration constant of the MCTS bot (OpenSpiel's examples use 2)


def _movers(game: OpenSpielGame, state: GameState, seat: int) -> list[int]:
    """The episodes in which ``seat`` is to move (not terminal, its turn or a simultaneous node)."""
    return [e for e, s in enumerate(state.extra["states"]) if game._to_move(s, seat)]


@dataclass
class UniformScripted:
    """OpenSpiel's uniform random bot: every legal action of the seat with equal probability.
    ``log_probs`` [E, A]: -log(number of legal actions) on the legal ones, -inf elsewhere (a seat not to move:
    its one forced action, log π = 0)."""

    name: str = "uniform"
    seats: tuple[int, ...] = (0, 1)

    def log_probs(self, game: OpenSpielGame, state: GameState, seat: int) -> torch.Tensor:
        legal = game.legal_mask(state, seat)  # [E, A]
        n = legal.sum(1, keepdim=True).float()
        return torch.where(legal, -torch.log(n), float("-inf"))


@dataclass
class MCTSScripted:
    """OpenSpiel's MCTS bot (``open_spiel.python.algorithms.mcts.MCTSBot``): UCT with c = ``UCT_C``,
    ``simulations`` simulations per move, each leaf valued by one random rollout (``RandomRolloutEvaluator``),
    solved subtrees kept (``solve=True``). It searches the true state, so only perfect-information sequential
    games are played (``OpenSpielGame.scripted_strategy`` refuses others). ``log_probs`` [E, A]: 0 on the move
    the search picks, -inf elsewhere (one-hot). Reproducible: each search's random state is seeded from the
    episode's own generator (``state.extra["rngs"][e]``, read from a copy so the game's chance stream is
    untouched) and the number of moves so far, so the same run seed gives the same moves."""

    name: str
    simulations: int
    seats: tuple[int, ...] = (0, 1)

    def log_probs(self, game: OpenSpielGame, state: GameState, seat: int) -> torch.Tensor:
        from open_spiel.python.algorithms import mcts  # only when the bot plays: import adhoc never needs it

        out = torch.where(game.legal_mask(state, seat), 0.0, float("-inf"))  # forced rows: the one action
        for e in _movers(game, state, seat):
            s, gen = state.extra["states"][e], state.extra["rngs"][e]
            seed = int(copy.deepcopy(gen).integers(2**31 - 1)) ^ len(s.history())
            random_state = np.random.RandomState(seed)
            bot = mcts.MCTSBot(game.pyspiel_game(), UCT_C, self.simulations,
                               mcts.RandomRolloutEvaluator(n_rollouts=1, random_state=random_state),
                               solve=True, random_state=random_state)
            action = bot.step(s.clone())
            out[e] = float("-inf")
            out[e, action] = 0.0
        return out


# ---------------------------------------------------------------------- Hanabi's colours
HANABI_COLOURS = "RYGWB"  # OpenSpiel's (the Hanabi Learning Environment's) colour letters, in colour order
_COLOUR_HINT = re.compile(r"color ([RYGWB])\)$")
# A card or card-knowledge token: colour letters (or X, unknown) then optional rank digits (or X).
_CARD = re.compile(r"(?<![A-Za-z0-9])([RYGWB]+|X)([0-9]+|X)?(?![A-Za-z0-9])")


class HanabiColours:
    """Every permutation of Hanabi's colours: ``group`` acts on both seats' actions (the colour hints; plays,
    discards and rank hints are fixed) and ``relabel_text`` on observations (card colours, the sets of
    colours a card may still have, the fireworks, the discards). Order colours!, enumerated."""

    def __init__(self, names: list[str]) -> None:
        hints = {m.group(1): a for a, name in enumerate(names) if (m := _COLOUR_HINT.search(name))}
        self.colours = "".join(c for c in HANABI_COLOURS if c in hints)
        if len(self.colours) != len(hints) or self.colours != HANABI_COLOURS[:len(hints)]:
            raise GameError(f"Hanabi colour hints {sorted(hints)} are not the first colours of {HANABI_COLOURS}")
        self._hint = [hints[c] for c in self.colours]
        n = len(names)
        self.group = PermutationGroup.from_generators([n, n], [(p, p) for p in self._generator_maps(n)])

    def _generator_maps(self, n: int) -> list[np.ndarray]:
        k = len(self.colours)
        perms = [] if k < 2 else [(1, 0, *range(2, k))] + ([(*range(1, k), 0)] if k > 2 else [])
        return [self.action_map(p, n) for p in perms]

    def action_map(self, sigma, n: int) -> np.ndarray:
        """The action permutation of colour permutation ``sigma`` (colour i -> sigma[i])."""
        out = np.arange(n)
        for i, j in enumerate(sigma):
            out[self._hint[i]] = self._hint[j]
        return out

    def colour_map(self, action_map) -> list[int]:
        """σ as a list (colour i -> σ[i]), read off an action permutation's colour hints."""
        where = {a: i for i, a in enumerate(self._hint)}
        return [where[int(action_map[a])] for a in self._hint]

    def relabel_text(self, text: str, sigma: list[int], inverse: bool = False) -> str:
        """``text`` with every colour c written as σ(c) (σ⁻¹(c) if ``inverse``); sets of colours and the
        fireworks are written back in colour order, as OpenSpiel writes them."""
        if inverse:
            sigma = list(np.argsort(sigma))
        letter = {c: self.colours[sigma[i]] for i, c in enumerate(self.colours)}
        order = {c: i for i, c in enumerate(self.colours)}

        def card(m: re.Match) -> str:
            colours, rank = m.group(1), m.group(2) or ""
            if colours == "X":
                return m.group(0)
            return "".join(sorted((letter.get(c, c) for c in colours), key=lambda c: order.get(c, 99))) + rank

        lines = []
        for line in text.split("\n"):
            line = _CARD.sub(card, line)
            if line.startswith("Fireworks:"):
                cards = line[len("Fireworks:"):].split()
                line = "Fireworks: " + "".join(c + " " for c in sorted(cards, key=lambda c: order.get(c[0], 99)))
            lines.append(line)
        return "\n".join(lines)


def build_openspiel(cfg: OpenSpielConfig) -> OpenSpielGame:
    if cfg.observation not in OBSERVATIONS:
        raise GameError(f"game.observation must be one of {', '.join(OBSERVATIONS)} (got {cfg.observation!r})")
    if cfg.actions not in ACTION_NAMES:
        raise GameError(f"game.actions must be one of {', '.join(ACTION_NAMES)} (got {cfg.actions!r})")
    text = str(cfg.game).strip()
    if not text or len(text) > 500 or not set(text) <= PRINTABLE - set("\n\t"):
        raise GameError("game.game must be an OpenSpiel game string of at most 500 printable characters")
    pyspiel = load_pyspiel()
    if text not in _PROBED:  # once per game string and process
        failed = probe(pyspiel, text)
        if failed is not None:
            raise GameError(f"OpenSpiel rejects game.game {text!r}: {failed}")
        _PROBED.add(text)
    try:
        game = pyspiel.load_game(text)
    except (pyspiel.SpielError, RuntimeError, ValueError) as exc:
        raise GameError(f"OpenSpiel rejects game.game {text!r}: {str(exc).strip().splitlines()[0]}") from None
    check_supported(pyspiel, game, text)
    kind = game.get_type()
    want_info = cfg.observation == "information_state" or (cfg.observation == "auto" and kind.provides_information_state_string)
    provided = kind.provides_information_state_string if want_info else kind.provides_observation_string
    if not provided:
        raise GameError(f"game.game {text!r} provides no {'information-state' if want_info else 'observation'} "
                        "string (try game.observation=auto)")
    if cfg.transcript and kind.information != pyspiel.GameType.Information.PERFECT_INFORMATION \
            and kind.short_name not in PUBLIC_MOVES:
        raise GameError(f"game.transcript writes every move to both seats, and {kind.short_name}'s moves are not all "
                        f"public (transcripts: perfect-information games and {', '.join(PUBLIC_MOVES)})")
    if not 1 <= game.max_game_length() <= MAX_HORIZON:
        raise GameError(f"game.game {text!r} lasts up to {game.max_game_length()} moves (allowed 1..{MAX_HORIZON})")
    return OpenSpielGame(pyspiel, game, text, cfg.observation, bool(cfg.transcript), cfg.actions)


__all__ = ["HanabiColours", "OpenSpielConfig", "OpenSpielGame", "build_openspiel", "payoff_of"]
