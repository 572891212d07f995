"""``warehouse``: grounding linguistic feedback, the first cooperative alignment game of the seed paper
("Human-AI value aligned finetuning of LLMs with multiagent RL"), a CIRL game (Hadfield-Menell et al. 2016).

Seats: seat 0 is the robot (the AI), seat 1 the human (the teacher). One game episode is an INTERACTION of
``episodes`` warehouse episodes with the same human and the same hidden type θ:

- θ, a reward vector over the W×H positions, is drawn once per interaction and shown only to the teacher.
  It is parameterised by a goal cell g: ``reward: goal`` gives θ(p) = 1[p = g], ``reward: distance``
  θ(p) = 1 − d(p, g) / (W + H − 2) (d the Manhattan distance). The teacher's observation shows g.
- Each episode places the robot (the pallet) at a random cell; the robot makes ``moves`` moves (up, down,
  left, right, stay; a move into a wall stays put). Before each move the teacher says one label from E
  (``labels``, default Up, Down, Left, Right; any words, e.g. meaningless letters); the robot then moves.
  The team is paid θ(final position) / episodes at the end of each episode, so an interaction's return is
  the mean episode payoff, in [0, 1].
- The robot is never told what a label means: that is a convention between the two seats. Later episodes
  of an interaction show the whole transcript of the earlier ones, so a robot can learn its human's
  convention in context (e.g. from the seed paper's grounding strategy, which names the robot's moves).

Turns within the simultaneous-move protocol: each move takes two steps, the teacher's (the robot's only
legal action is ``stay``) and then the robot's (the teacher's only legal action is label 0, ignored), so
``horizon`` = episodes · 2 · moves. A seat with a single legal action is not scored by ``rollout``.

Observations are append-only transcripts (each extends the seat's previous one), so ``rollout`` can reuse
the encoded prefix across steps::

    robot:   "robot . episode at 0 2 : Right right at 1 2 Down down at 1 1 episode at 2 0 : Up"
    teacher: "teacher reward at 2 1 . episode at 0 2 : reward right Right right at 1 2 reward right Down down
              at 1 1 episode at 2 0 : reward up"

The teacher sees θ as its best cell (the header) and, before each of its turns, as the direction in which
θ increases from the robot's cell along a shortest path ("reward right"; "reward stay" at the goal): the
human's reading of the reward map, rendered so that a tiny LM can use it.

Symmetries: every permutation of the labels (the teacher's actions; the robot's moves are fixed), order n!.
With ``reflections: true`` also the grid's reflections (identity, left-right x -> W-1-x, up-down
y -> H-1-y, both), order 4·n!: a reflection moves θ's goal with the positions, so payoff is unchanged and,
goals and starts being uniform, so is the game's distribution; it permutes the robot's moves (left <-> right,
up <-> down). An element is (robot move permutation [5], label permutation [n]). Other-Play relabels the
teacher seat: ``relabel_observation`` shows the teacher its transcript in its own labels and, given the
element's robot component, in the reflected world (goal, robot positions, "reward <dir>" hints and the
robot's move words reflected); the teacher's actions are labels, so they are mapped by the label part alone.
Reflections are off by default (and then absent from ``params()``, so earlier populations' records match).
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from adhoc._torch import torch
from adhoc.errors import GameError
from adhoc.games.core import GameState, advance, checked_actions, turn_mask
from adhoc.games.symmetry import PermutationGroup

ROBOT, TEACHER = 0, 1
MOVES = ["up", "down", "left", "right", "stay"]
STAY = 4
DELTAS = ((0, 1), (0, -1), (-1, 0), (1, 0), (0, 0))  # (dx, dy) per move; up is y + 1
# The grid's reflections as permutations of the robot's moves, indexed by flip_x + 2 * flip_y: identity,
# left-right (x -> W-1-x), up-down (y -> H-1-y), both. Each is its own inverse.
REFLECTIONS = np.array([[0, 1, 2, 3, 4], [0, 1, 3, 2, 4], [1, 0, 2, 3, 4], [1, 0, 3, 2, 4]])
DEFAULT_LABELS = ["Up", "Down", "Left", "Right"]
LETTER_LABELS = list(string.ascii_uppercase)  # single tokens of the built-in tokenizer, meaningless
RESERVED = set(MOVES) | {"robot", "teacher", "reward", "at", "episode"}  # words of the transcripts
MAX_OBSERVATION = 4000  # characters; PettingZoo's Text space holds 4096
MAX_CELLS = 400


@dataclass
class WarehouseConfig:
    name: str = "warehouse"
    width: int = 3
    height: int = 3
    moves: int = 2  # H: robot moves per episode
    episodes: int = 3  # warehouse episodes per interaction (same human, same θ)
    labels: list[str] = field(default_factory=lambda: list(DEFAULT_LABELS))  # E
    n_labels: Optional[int] = None  # if set: E = the first n of the meaningless labels A, B, C, ...
    reward: str = "distance"  # distance | goal
    reflections: bool = False  # also declare the grid's reflections as symmetries (Other-Play)


class WarehouseSymmetries(PermutationGroup):
    """Every permutation of seat 1's n labels, times (if ``reflections``) the grid's 4 reflections acting on
    seat 0's moves (``REFLECTIONS``; otherwise seat 0's moves are fixed): order n! or 4·n!, sampled exactly
    uniformly (no enumeration, so any n works)."""

    def __init__(self, n_moves: int, n_labels: int, reflections: bool = False) -> None:
        super().__init__([n_moves, n_labels])
        self.move_maps = REFLECTIONS if reflections else REFLECTIONS[:1]  # [4 or 1, 5]: the seat-0 components
        ident, swap, cycle = np.arange(n_labels), np.arange(n_labels), np.roll(np.arange(n_labels), -1)
        swap[[0, 1]] = [1, 0]
        self._generators = [(REFLECTIONS[0], swap)] + ([(REFLECTIONS[0], cycle)] if n_labels > 2 else [])
        if reflections:  # the left-right and up-down flips generate the four reflections
            self._generators += [(REFLECTIONS[1], ident), (REFLECTIONS[2], ident)]

    def order(self) -> int:
        return len(self.move_maps) * math.factorial(self.action_counts[1])

    def sample(self, k: int, rng: np.random.Generator) -> list[np.ndarray]:
        labels = rng.permuted(np.tile(np.arange(self.action_counts[1]), (k, 1)), axis=1)
        moves = self.move_maps[rng.integers(len(self.move_maps), size=k)] if len(self.move_maps) > 1 else \
            np.tile(self.move_maps[0], (k, 1))
        return [moves, labels]

    def contains(self, element) -> bool:
        if len(element) != 2:
            return False
        p0, p1 = (np.asarray(p) for p in element)
        return (p0.shape == (self.action_counts[0],) and p1.shape == (self.action_counts[1],)
                and bool((self.move_maps == p0).all(1).any()) and np.array_equal(np.sort(p1), np.arange(len(p1))))


class WarehouseGame:
    """Batched warehouse interactions. State ``extra``: goal [E, 2], starts [E, K, 2] (each episode's start,
    drawn at reset), pos [E, 2], last_move [E] (-1 at an episode's start), text: per seat, E transcripts
    (without the header)."""

    def __init__(self, cfg: WarehouseConfig, labels: list[str]) -> None:
        self.name = cfg.name
        self.width, self.height, self.moves, self.episodes = cfg.width, cfg.height, cfg.moves, cfg.episodes
        self.labels, self.reward_kind = list(labels), cfg.reward
        self.horizon = self.episodes * 2 * self.moves
        self._label_index = {w: i for i, w in enumerate(self.labels)}
        self.reflections = bool(cfg.reflections)
        self._group = WarehouseSymmetries(len(MOVES), len(self.labels), self.reflections)
        self._params = {"width": self.width, "height": self.height, "moves": self.moves, "episodes": self.episodes,
                        "labels": list(self.labels), "reward": self.reward_kind}
        if self.reflections:  # recorded only when on: populations saved before the option compare equal
            self._params["reflections"] = True

    # ---------------------------------------------------------------- protocol
    def action_names(self, seat: int) -> list[str]:
        return list(MOVES) if seat == ROBOT else list(self.labels)

    def reset(self, n_episodes: int, rng: np.random.Generator) -> GameState:
        goal = torch.stack([torch.as_tensor(rng.integers(self.width, size=n_episodes)),
                            torch.as_tensor(rng.integers(self.height, size=n_episodes))], 1).long()
        starts = torch.stack([torch.as_tensor(rng.integers(self.width, size=(n_episodes, self.episodes))),
                              torch.as_tensor(rng.integers(self.height, size=(n_episodes, self.episodes)))], 2).long()
        state = GameState(n_episodes, extra={"goal": goal, "starts": starts, "text": ([""] * n_episodes,) * 2})
        self._start_episode(state, 0)
        return state

    def phase(self, t: int) -> tuple[int, int, int]:
        """(episode k, move i, seat to act) at step t."""
        k, j = divmod(t, 2 * self.moves)
        return k, j // 2, TEACHER if j % 2 == 0 else ROBOT

    def observe(self, state: GameState, seat: int) -> list[str]:
        return [self._header(seat, state, e) + text for e, text in enumerate(state.extra["text"][seat])]

    def relabel_observation(self, state: GameState, seat: int, maps: torch.Tensor,
                            seat0_maps: torch.Tensor | None = None) -> list[str]:
        """Other-Play: the observations of ``seat`` for a player whose label a is the game's ``maps[e, a]``
        ([E, n_labels]): every label ℓ in the transcript is shown as maps[e]⁻¹(ℓ). ``seat0_maps`` [E, 5]
        (the element's robot component, a row of ``REFLECTIONS``; None: the identity) reflects the world
        the teacher sees: every coordinate pair (the words after "at") and every move word (the robot's
        moves and the "reward <dir>" hints). Labels, move words and "at" are whole words distinct from each
        other and from every other word of the transcript, so word substitution is exact."""
        if seat == ROBOT:
            return self.observe(state, seat)
        inverse = torch.argsort(torch.as_tensor(maps), dim=1).tolist()  # [E, n]: game label -> own label
        reflection = [0] * state.n_episodes if seat0_maps is None else self._reflection_index(seat0_maps)
        out = []
        for e, text in enumerate(self.observe(state, seat)):
            words = [self.labels[inverse[e][self._label_index[w]]] if w in self._label_index else w
                     for w in text.split(" ")]
            if reflection[e]:
                words = self._reflect_words(words, reflection[e])
            out.append(" ".join(words))
        return out

    def _reflection_index(self, seat0_maps: torch.Tensor) -> list[int]:
        """[E] the index into ``REFLECTIONS`` of each row of ``seat0_maps``; refuses any other permutation."""
        rows = torch.as_tensor(seat0_maps).cpu().numpy()
        match = (rows[:, None, :] == self._group.move_maps[None]).all(2)  # [E, allowed]
        if not match.any(1).all():
            bad = rows[~match.any(1)][0].tolist()
            raise GameError(f"{bad} is not a symmetry of the robot's moves in this warehouse "
                            f"(reflections {'on' if self.reflections else 'off'})")
        return match.argmax(1).tolist()

    def _reflect_words(self, words: list[str], flip: int) -> list[str]:
        """A transcript's words in the world reflected by ``REFLECTIONS[flip]`` (its own inverse)."""
        names = {m: MOVES[r] for m, r in zip(MOVES, REFLECTIONS[flip])}
        flip_x, flip_y = flip & 1, flip & 2
        out = [names.get(w, w) for w in words]
        for i, w in enumerate(words):
            if w == "at":  # "at X Y": the only place coordinates appear
                x, y = int(words[i + 1]), int(words[i + 2])
                out[i + 1] = str(self.width - 1 - x if flip_x else x)
                out[i + 2] = str(self.height - 1 - y if flip_y else y)
        return out

    def legal_mask(self, state: GameState, seat: int) -> torch.Tensor:
        # the other seat's turn: one forced, ignored action
        return turn_mask(state, len(self.action_names(seat)), state.t >= self.horizon or self.phase(state.t)[2] == seat,
                         forced=STAY if seat == ROBOT else 0)

    def step(self, state: GameState, actions: torch.Tensor) -> tuple[GameState, torch.Tensor, torch.Tensor]:
        actions = checked_actions(self, state, actions)
        n = state.n_episodes
        reward = torch.zeros(n)
        extra = dict(state.extra)
        robot_text, teacher_text = extra["text"]
        if state.t >= self.horizon:  # finished interactions ignore further actions and pay 0
            new, done = advance(state, actions, extra, self.horizon)  # done: t + 1 > horizon
            return new, reward, done
        k, i, seat = self.phase(state.t)
        if seat == TEACHER:
            words = [self.labels[a] for a in actions[:, TEACHER].tolist()]
            robot_text = [f"{x} {w}" for x, w in zip(robot_text, words)]
            teacher_text = [f"{x} {w}" for x, w in zip(teacher_text, words)]
        else:
            move = actions[:, ROBOT]
            pos = extra["pos"] + torch.tensor(DELTAS)[move]
            pos[:, 0].clamp_(0, self.width - 1)
            pos[:, 1].clamp_(0, self.height - 1)
            extra["pos"], extra["last_move"] = pos, move.clone()
            moved = [f" {MOVES[m]} at {px} {py}" for m, (px, py) in zip(move.tolist(), pos.tolist())]
            robot_text = [x + m for x, m in zip(robot_text, moved)]
            teacher_text = [x + m for x, m in zip(teacher_text, moved)]
            if i == self.moves - 1:  # the episode ends: paid by θ at the final position
                reward = self.theta(extra["goal"], pos) / self.episodes
            else:
                teacher_text = self._hint(teacher_text, extra)
        new, done = advance(state, actions, {**extra, "text": (robot_text, teacher_text)}, self.horizon)
        if seat == ROBOT and i == self.moves - 1 and new.t < self.horizon:
            self._start_episode(new, k + 1)
        return new, reward.float() * (~state.done), done

    def episode_payoffs(self, rewards):
        """The payoff θ(final position) ∈ [0, 1] of each warehouse episode of an interaction: per-step rewards
        [..., T] (numpy or torch) → [..., K]. Their mean is the interaction's return."""
        ends = [k * 2 * self.moves + 2 * self.moves - 1 for k in range(self.episodes)]
        return rewards[..., ends] * self.episodes

    def symmetries(self) -> PermutationGroup:
        return self._group

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    # ---------------------------------------------------------------- for people (play, serve)
    def rules(self, seat: int) -> str:
        W, H, K, M = self.width, self.height, self.episodes, self.moves
        words = ", ".join(self.labels)
        if self.reward_kind == "goal":
            pay = "1 if the robot ends the episode on the goal cell, else 0"
        else:
            pay = (f"1 minus the robot's final distance to the goal (in steps, across plus up) divided by "
                   f"{max(1, W + H - 2)}: 1 on the goal, 0 in the farthest corner from it")
        common = (f"The grid is {W} wide and {H} high; a cell is (x, y), x = 0..{W - 1} from the left, y = 0..{H - 1} "
                  f"from the bottom. There {'are' if K > 1 else 'is'} {K} episode{'s' * (K > 1)}; each starts the robot "
                  f"at a random cell, and the robot makes {M} move{'s' * (M > 1)} (up, down, left, right or stay; a move "
                  f"into a wall stays put). Before each move the teacher says one word: {words}.\n"
                  f"The goal cell is drawn at random and stays the same for all {K} episode{'s' * (K > 1)}; only the "
                  f"teacher sees it. No one is told what the words mean: the teacher decides, and the robot has to "
                  f"work it out from how they are used.\nAt the end of each episode you both get the same reward: "
                  f"{pay}. Your score is the average over the episodes; {self.horizon} turns in all (teacher, robot, "
                  f"teacher, ...).")
        if seat == ROBOT:
            return f"Warehouse game. You are the robot (seat 0); your partner is the teacher. {common}"
        return (f"Warehouse game. You are the teacher (seat 1); your partner is the robot. You see the goal and "
                f"where the robot is; the robot sees neither the goal nor your meaning. {common}")

    def describe_action(self, seat: int, action: int) -> str:
        if seat == ROBOT:
            return "stayed" if action == STAY else f"moved {MOVES[action]}"
        return f"said {self.labels[action]!r}"

    def show(self, state: GameState, seat: int) -> list[str]:
        out = []
        for e in range(state.n_episodes):
            lines = []
            if seat == TEACHER:
                gx, gy = state.extra["goal"][e].tolist()
                lines.append(f"The goal is at ({gx}, {gy}) (the robot does not see it).")
            pos, line = None, ""
            for t, joint in enumerate(state.history):
                k, i, actor = self.phase(t)
                if t % (2 * self.moves) == 0:  # an episode starts
                    if line:
                        lines.append(line)
                    pos = state.extra["starts"][e, k].tolist()
                    line = f"Episode {k + 1} of {self.episodes}: the robot starts at ({pos[0]}, {pos[1]})."
                if actor == TEACHER:
                    line += f" Teacher said {self.labels[int(joint[e, TEACHER])]!r}."
                else:
                    move = int(joint[e, ROBOT])
                    pos = self.moved(pos, move)
                    line += f" Robot {self.describe_action(ROBOT, move)}, now at ({pos[0]}, {pos[1]})."
            if state.t < self.horizon:
                k, i, actor = self.phase(state.t)
                if state.t % (2 * self.moves) == 0:
                    if line:
                        lines.append(line)
                    x, y = state.extra["starts"][e, k].tolist()
                    line = f"Episode {k + 1} of {self.episodes}: the robot starts at ({x}, {y})."
                lines.append(line)
                now = {(TEACHER, TEACHER): "your word for the robot.", (ROBOT, ROBOT): "your move.",
                       (ROBOT, TEACHER): "the teacher speaks.", (TEACHER, ROBOT): "the robot moves."}[seat, actor]
                lines.append(f"Move {i + 1} of {self.moves}: {now}")
            elif line:
                lines.append(line)
            out.append("\n".join(lines))
        return out

    def draw(self, state: GameState, seat: int) -> list[dict[str, Any]]:
        """What the browser draws for ``seat`` (``adhoc serve``), per episode: the grid (``width``, ``height``),
        the robot's cell and its cells so far this episode (``path``, from its start) and the teacher's word
        for the move under way (``said``; None before it speaks), which both seats see; the goal only for the
        teacher (the robot never sees it); and the episode and move under way (1-based; ``move`` None once over)."""
        t = min(state.t, self.horizon - 1)
        k, i, actor = self.phase(t)
        out = []
        for e in range(state.n_episodes):
            path = [state.extra["starts"][e, k].tolist()]
            for u in range(k * 2 * self.moves, min(state.t, self.horizon)):
                if self.phase(u)[2] == ROBOT:
                    path.append(self.moved(path[-1], int(state.history[u][e, ROBOT])))
            said = self.labels[int(state.history[-1][e, TEACHER])] if actor == ROBOT and state.t < self.horizon \
                else None
            drawing = {"kind": "grid", "width": self.width, "height": self.height, "robot": path[-1], "path": path,
                       "said": said, "episode": k + 1, "episodes": self.episodes,
                       "move": i + 1 if state.t < self.horizon else None, "moves": self.moves}
            if seat == TEACHER:
                drawing["goal"] = state.extra["goal"][e].tolist()
            out.append(drawing)
        return out

    # ---------------------------------------------------------------- helpers
    def moved(self, pos: list[int], move: int) -> list[int]:
        """The cell [x, y] the robot reaches from ``pos`` by ``move`` (into a wall: it stays put)."""
        return [min(max(pos[0] + DELTAS[move][0], 0), self.width - 1),
                min(max(pos[1] + DELTAS[move][1], 0), self.height - 1)]

    def theta(self, goal: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """θ_goal(pos): [E] float for goal, pos [E, 2]."""
        dist = (goal - pos).abs().sum(1).float()
        if self.reward_kind == "goal":
            return (dist == 0).float()
        return 1.0 - dist / max(1, self.width + self.height - 2)

    def _header(self, seat: int, state: GameState, e: int) -> str:
        if seat == ROBOT:
            return "robot ."
        gx, gy = state.extra["goal"][e].tolist()
        return f"teacher reward at {gx} {gy} ."

    def _start_episode(self, state: GameState, k: int) -> None:
        """Place the robot at episode k's random start (drawn at reset): pos [E, 2]; the transcript gets it."""
        n = state.n_episodes
        pos = state.extra["starts"][:, k].clone()
        state.extra["pos"] = pos
        state.extra["last_move"] = torch.full((n,), -1, dtype=torch.long)
        start = [f" episode at {px} {py} :" for px, py in pos.tolist()]
        robot_text, teacher_text = state.extra["text"]
        state.extra["text"] = ([x + y for x, y in zip(robot_text, start)],
                               self._hint([x + y for x, y in zip(teacher_text, start)], state.extra))

    def _hint(self, teacher_text: list[str], extra: dict) -> list[str]:
        """The teacher's reading of θ where the robot stands: the direction θ increases along a shortest path
        (stay at the goal), appended before each teacher turn."""
        direction = direction_to_goal(self, extra, stay_at_goal=True).tolist()
        return [f"{x} reward {MOVES[d]}" for x, d in zip(teacher_text, direction)]

    def convention_probes(self) -> dict[str, str]:
        """For reading a member's label convention: one first-turn teacher observation per direction
        (robot in the middle row/column, goal in that direction), keyed by the direction's name."""
        cx, cy = (self.width - 1) // 2, (self.height - 1) // 2
        goals = {"up": (cx, self.height - 1), "down": (cx, 0), "left": (0, cy), "right": (self.width - 1, cy)}
        return {d: f"teacher reward at {gx} {gy} . episode at {cx} {cy} : reward {d}" for d, (gx, gy) in goals.items()
                if (gx, gy) != (cx, cy)}

    def scripted_strategies(self) -> dict[str, "WarehouseTeacher"]:
        return warehouse_teachers(self)

    scripted_pattern = "direct-DDDD / ground-DDDD, D the label index said for up, down, left, right"

    def scripted_strategy(self, name: str) -> Optional["WarehouseTeacher"]:
        """A teacher beyond the registered ones, by its convention's digits: ``direct-DDDD`` / ``ground-DDDD``,
        D the label index said for up, down, left, right (a permutation of 0123: ``ground-1032`` is
        ``ground-swap``); None if ``name`` is not of that form."""
        kind, _, digits = name.partition("-")
        if kind not in ("direct", "ground") or len(digits) != 4 or sorted(digits) != list("0123"):
            return None
        warehouse_teachers(self)  # the label count check
        return WarehouseTeacher(name, tuple(int(d) for d in digits), kind == "ground")

    def max_observation_chars(self) -> int:
        digits = len(str(max(self.width, self.height) - 1))
        label = max(len(w) for w in self.labels)
        per_move = 1 + label + 1 + 5 + 4 + 2 * digits + len(" reward right")
        per_episode = len(" episode at  :") + 2 * digits + self.moves * per_move
        return len("teacher reward at  .") + 2 * digits + self.episodes * per_episode


def _labels(cfg: WarehouseConfig) -> list[str]:
    if cfg.n_labels is not None:
        if cfg.n_labels < 2:
            raise GameError(f"game.n_labels must be >= 2 (got {cfg.n_labels})")
        if cfg.n_labels > len(LETTER_LABELS):
            raise GameError(f"game.n_labels={cfg.n_labels} is more than the {len(LETTER_LABELS)} single-token labels "
                            f"(A..Z) the built-in tokenizer holds; give game.labels explicitly")
        return LETTER_LABELS[: cfg.n_labels]
    labels = [str(w) for w in cfg.labels]
    if len(labels) < 2:
        raise GameError(f"game.labels needs at least 2 labels (got {labels})")
    if len(labels) > len(LETTER_LABELS):
        raise GameError(f"game.labels: {len(labels)} labels is more than the limit of {len(LETTER_LABELS)}")
    for w in labels:
        if not w or not w.isascii() or not all(c.isalpha() for c in w) or len(w) > 12:
            raise GameError(f"game.labels: {w!r} must be a word of 1-12 ASCII letters")
        if w in RESERVED:
            raise GameError(f"game.labels: {w!r} clashes with a word of the transcript ({', '.join(sorted(RESERVED))})")
    if len(set(labels)) != len(labels):
        raise GameError(f"game.labels has duplicates: {sorted({w for w in labels if labels.count(w) > 1})}")
    return labels


def build_warehouse(cfg: WarehouseConfig) -> WarehouseGame:
    for key in ("width", "height", "moves", "episodes"):
        if getattr(cfg, key) < 1:
            raise GameError(f"game.{key} must be >= 1 (got {getattr(cfg, key)})")
    if cfg.width * cfg.height < 2 or cfg.width * cfg.height > MAX_CELLS:
        raise GameError(f"game.width x game.height must be 2..{MAX_CELLS} cells (got {cfg.width}x{cfg.height})")
    if cfg.reward not in ("distance", "goal"):
        raise GameError(f"game.reward must be distance or goal (got {cfg.reward!r})")
    game = WarehouseGame(cfg, _labels(cfg))
    if game.max_observation_chars() > MAX_OBSERVATION:
        raise GameError(f"game.episodes x game.moves too large: observations would exceed {MAX_OBSERVATION} characters")
    return game


# -------------------------------------------------------------------- scripted teachers (human proxies)
# A convention: the label index used for each direction (up, down, left, right).
CONVENTIONS = {"": (0, 1, 2, 3), "swap": (1, 0, 3, 2), "mirror": (0, 1, 3, 2), "rotate": (3, 2, 0, 1)}


def direction_to_goal(game: WarehouseGame, state: GameState | dict, stay_at_goal: bool = False) -> torch.Tensor:
    """[E] the direction (0 up, 1 down, 2 left, 3 right) of a shortest-path move towards the goal: along the
    axis with the larger gap (horizontal on ties). At the goal: 4 (stay) if ``stay_at_goal``, else the
    direction of an adjacent wall (bumping into it stays put), or up in an interior cell (no label means
    stay). ``state``: a GameState or its ``extra`` dict."""
    extra = state.extra if isinstance(state, GameState) else state
    (gx, gy), (x, y) = extra["goal"].T, extra["pos"].T
    dx, dy = gx - x, gy - y
    at_goal_dir = torch.where(y == game.height - 1, 0, torch.where(y == 0, 1, torch.where(
        x == 0, 2, torch.where(x == game.width - 1, 3, 0))))
    vertical = torch.where(dy > 0, 0, 1)
    horizontal = torch.where(dx > 0, 3, 2)
    if stay_at_goal:
        at_goal_dir = torch.full_like(x, STAY)
    return torch.where((dx.abs() >= dy.abs()) & (dx != 0), horizontal, torch.where(dy != 0, vertical, at_goal_dir))


@dataclass
class WarehouseTeacher:
    """A scripted human for the teacher seat (seat 1): says the label (by ``convention``) of the direction
    towards the goal before each move. ``grounding`` (the seed paper's strategy): throughout the first
    episode of an interaction it instead names each of the robot's moves in turn (the label of the move the
    robot just made; stay has no label, so after a stay, and before the first move, it directs), and
    directs from the second episode on."""

    name: str
    convention: tuple[int, int, int, int]
    grounding: bool = False
    seats: tuple[int, ...] = (TEACHER,)

    def log_probs(self, game: WarehouseGame, state: GameState, seat: int) -> torch.Tensor:
        """log π [E, n_labels] in the game's labels (deterministic: 0 on the chosen label, -inf elsewhere)."""
        E, n = state.n_episodes, len(game.labels)
        out = torch.full((E, n), float("-inf"))
        if state.t >= game.horizon or game.phase(state.t)[2] != TEACHER:
            out[:, 0] = 0.0  # not the teacher's turn: the forced label
            return out
        direction = direction_to_goal(game, state)
        if self.grounding and game.phase(state.t)[0] == 0:
            last = state.extra["last_move"]
            direction = torch.where((last >= 0) & (last != STAY), last, direction)
        out[torch.arange(E), torch.tensor(self.convention)[direction]] = 0.0
        return out


def warehouse_teachers(game: WarehouseGame) -> dict[str, WarehouseTeacher]:
    """The registered scripted teachers: ``direct`` and ``ground`` (the seed paper's grounding), each with the
    identity convention (label i means direction i: Up means up) and the ``swap`` (Up<->Down,
    Left<->Right), ``mirror`` (Left<->Right) and ``rotate`` (a quarter turn) conventions."""
    if len(game.labels) < 4:
        raise GameError(f"scripted warehouse teachers need at least 4 labels (the game has {len(game.labels)})")
    out = {}
    for grounding, kind in ((False, "direct"), (True, "ground")):
        for suffix, conv in CONVENTIONS.items():
            name = f"{kind}-{suffix}" if suffix else kind
            out[name] = WarehouseTeacher(name, conv, grounding)
    return out
