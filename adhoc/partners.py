"""Partners: the frozen strategies a learner is trained with or evaluated against, loaded from specs.

A spec is a population folder (every member becomes a partner) or ``scheme:rest`` for another source in
``PARTNER_SOURCES``: ``scripted:<game>[:name,name]``, the game's scripted strategies (``adhoc.scripted``, e.g.
the warehouse teachers). ``load_partners(specs)`` is the ONE place that turns the user's specs into
partners.

All LoRA partners and the agent(s) that play with them sit in ONE AdapterBank over one base model, so the
populations must agree on the game, the base model (fingerprint) and the adapter shape; every disagreement
is one ``UserError`` line naming both populations.

Partner order and member ids: the population members first (bank slots 0..N−1, in spec order), then the
scripted strategies (in spec order), which are not LoRA slots: ``member_ids(policy)`` appends them to
``policy.scripted`` and they get member ids bank size + j. A scripted strategy plays only its declared
``seats`` (a warehouse teacher: seat 1), so an agent plays only the other seat with it, and it has no
self-play return (``returns_with_partners`` leaves those entries NaN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from adhoc.errors import UserError
from adhoc.games.core import TRAINING_SCHEDULE, own_seat, payoff_kind
from adhoc.paths import split_member
from adhoc.population import Population
from adhoc.scripted import ScriptedPopulation, load_scripted_population

SEATS = (0, 1)


def _scripted_source(spec: str, game: dict | None) -> ScriptedPopulation:
    """``scripted:<game>[:a,b]`` → the game's scripted strategies; the game (its parameters) is ``game``, the
    one the learner config (train-learner) or the agent (evaluate) plays."""
    from adhoc.games import GameError, build_game

    if game is None:
        raise UserError(f"{spec}: scripted partners take their game from the learner config's game section, "
                        f"and this config has none (add e.g. game: {spec.split(':')[1] or 'warehouse'})")
    try:
        built = build_game(dict(game))
    except GameError as exc:
        raise UserError(f"{spec}: {exc}") from None
    return load_scripted_population(spec, built)


# scheme -> loader(full spec, game dict or None) for specs written "scheme:rest" that are not folders
PARTNER_SOURCES: dict[str, Callable[[str, dict | None], Population | ScriptedPopulation]] = {
    "scripted": _scripted_source,
}


def _plain(value: Any) -> Any:
    """YAML round trip, so a game's params() and a manifest read back compare equal (tuples, numpy floats)."""
    return yaml.safe_load(yaml.safe_dump(value))


def game_itself(game: dict) -> dict:
    """A recorded game without its training schedule (``TRAINING_SCHEDULE``: Overcooked's shaped rewards): the game
    people play, and what two games must share to be the same game."""
    return {k: v for k, v in _plain(game).items() if k not in TRAINING_SCHEDULE}


def same_game(a: dict, b: dict) -> bool:
    return game_itself(a) == game_itself(b)


def describe_game_difference(a: dict, b: dict) -> str:
    """Short text of how two recorded games differ: their names, or the first differing parameter."""
    a, b = game_itself(a), game_itself(b)
    if a.get("name") != b.get("name"):
        return f"{a.get('name')}, not {b.get('name')}"
    key = next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
    return f"{a['name']} with {key}={a.get(key)}, not {key}={b.get(key)}"


def check_compatible(pops: list[Population], what: str = "playing together") -> None:
    """The populations must play the same game on the same base model with the same adapter shape."""
    first = pops[0]
    for pop in pops[1:]:
        if not same_game(pop.game, first.game):
            raise UserError(f"{pop.path} plays {describe_game_difference(pop.game, first.game)} as {first.path} "
                            f"does: {what} needs the same game")
        if pop.base_model["fingerprint"] != first.base_model["fingerprint"]:
            raise UserError(f"{pop.path} and {first.path} were trained on different base models "
                            f"({pop.base_model['id']} vs {first.base_model['id']})")
        if _plain(pop.manifest["adapter"]) != _plain(first.manifest["adapter"]):
            raise UserError(f"{pop.path} and {first.path} use different adapter shapes "
                            f"({pop.manifest['adapter']} vs {first.manifest['adapter']}); they cannot share one bank")


def population_label(path: str | Path, taken: set[str]) -> str:
    """The folder's name, made unique among ``taken`` (name#2, name#3, ...)."""
    name = Path(path).resolve().name
    label, k = name, 2
    while label in taken:
        label, k = f"{name}#{k}", k + 1
    taken.add(label)
    return label


@dataclass
class Partners:
    """Partner populations stacked in order, then scripted strategies: partner k is ``names[k]``
    (``label/member``)."""

    populations: list[Population]
    labels: list[str]
    names: list[str] = field(default_factory=list)
    scripted: list[ScriptedPopulation] = field(default_factory=list)
    scripted_labels: list[str] = field(default_factory=list)
    game_spec: dict | None = None  # the game when there are only scripted partners

    def __len__(self) -> int:
        return len(self.names)

    @property
    def n_lora(self) -> int:
        """How many partners are LoRA members (bank slots 0..n_lora−1)."""
        return sum(len(pop.members) for pop in self.populations)

    @property
    def game(self) -> dict:
        return self.populations[0].game if self.populations else self.game_spec

    @property
    def base_model(self) -> dict | None:
        return self.populations[0].base_model if self.populations else None

    @property
    def adapter(self) -> dict | None:
        return self.populations[0].manifest["adapter"] if self.populations else None

    def seats(self) -> list[tuple[int, ...]]:
        """The seats each partner can play, in partner order (LoRA members: both)."""
        return [SEATS] * self.n_lora + [tuple(s.seats) for pop in self.scripted for s in pop.strategies]

    def member_ids(self, policy) -> "torch.Tensor":
        """Member ids [P] of the partners in ``policy``: slots 0..n_lora−1, then the scripted strategies, which
        this appends to ``policy.scripted`` (ids bank size + j)."""
        import torch

        from adhoc.scripted import scripted_ids

        ids = [torch.arange(self.n_lora)] + [scripted_ids(policy, pop) for pop in self.scripted]
        return torch.cat(ids)

    def load_into(self, bank, first_slot: int = 0) -> list[int]:
        """Import every partner into consecutive bank slots from ``first_slot``; returns the slots."""
        slot = first_slot
        for pop in self.populations:
            pop.load_into(bank, list(range(slot, slot + len(pop.members))))
            slot += len(pop.members)
        return list(range(first_slot, slot))

    def describe(self) -> list[dict[str, Any]]:
        """Plain-YAML record of where the partners came from (for manifests and reports)."""
        return [{"population": str(pop.path), "label": label, "method": pop.manifest["method"].get("name"),
                 "members": pop.names} for pop, label in zip(self.populations, self.labels)] + [
                {"scripted": pop.spec, "label": label, "method": "scripted", "members": list(pop.names),
                 "seats": [list(s.seats) for s in pop.strategies]}
                for pop, label in zip(self.scripted, self.scripted_labels)]


def load_spec(spec: str, game: dict | None = None) -> Population | ScriptedPopulation:
    """One spec → a Population (folder) or what its ``PARTNER_SOURCES`` loader gives (``game``: the game
    scripted strategies play)."""
    spec = str(spec).strip()
    if not spec:
        raise UserError("empty partner spec (give a population folder: partners=DIR)")
    folder, members = split_member(spec)
    if members is not None and Path(folder).is_dir():  # DIR:a,b: those members of a population
        return Population.load(folder).select([m.strip() for m in members.split(",") if m.strip()])
    scheme, sep, rest = spec.partition(":")
    if not Path(spec).exists() and sep and len(scheme) > 1:  # "C:\..." is a drive, not a scheme
        if scheme not in PARTNER_SOURCES:
            known = ", ".join(f"{k}:..." for k in sorted(PARTNER_SOURCES)) or "none yet"
            raise UserError(f"unknown partner source '{scheme}' in {spec!r} (partners are population folders; "
                            f"other sources: {known})")
        return PARTNER_SOURCES[scheme](spec, game)
    return Population.load(spec)


def load_partners(specs: list[str], game: dict | None = None, scripted_game: dict | None = None) -> Partners:
    """Load and check the partner specs. ``game`` (a game's ``params() | {name}``), when given, is the game
    the partners must play; scripted specs are built for ``scripted_game`` (default ``game``)."""
    specs = list(specs or [])
    if not specs:
        raise UserError("no partners: give at least one partner population (partners=DIR)")
    scripted_game = game if scripted_game is None else scripted_game
    loaded = [load_spec(s, scripted_game) for s in specs]
    seen: dict[tuple[str, str], str] = {}
    for spec, p in zip(specs, loaded):  # one partner given twice would silently count double in every mean
        where = str(p.path.resolve()) if isinstance(p, Population) else ":".join(str(getattr(p, "spec", spec)).split(":")[:2])
        for name in getattr(p, "names", []):
            if (where, name) in seen:
                raise UserError(f"partner {name} of {spec} is given twice (also by {seen[where, name]}): "
                                f"{len(loaded)} partner specs name it; give each population or member once")
            seen[where, name] = spec
    pops = [p for p in loaded if isinstance(p, Population)]
    scripted = [p for p in loaded if isinstance(p, ScriptedPopulation)]
    if pops:
        check_compatible(pops, "playing with one agent")
        if game is not None and not same_game(pops[0].game, game):
            raise UserError(f"partner population {pops[0].path} plays "
                            f"{describe_game_difference(pops[0].game, game)} as configured")
        if scripted and not same_game(pops[0].game, scripted_game):
            raise UserError(f"partner population {pops[0].path} plays "
                            f"{describe_game_difference(pops[0].game, scripted_game)} as {scripted[0].spec} does")
    taken: set[str] = set()
    labels = [population_label(p.path, taken) for p in pops]
    scripted_labels = [population_label("scripted-" + p.spec.split(":")[1], taken) for p in scripted]
    names = [f"{label}/{n}" for pop, label in zip(pops, labels) for n in pop.names]
    names += [f"{label}/{n}" for pop, label in zip(scripted, scripted_labels) for n in pop.names]
    return Partners(populations=pops, labels=labels, names=names, scripted=scripted, scripted_labels=scripted_labels,
                    game_spec=_plain(dict(scripted_game)) if scripted and not pops else None)


def seats_beside(seats: list[tuple[int, ...]], agent_seat: int | None, names: list[str]) -> list[tuple[int, ...]]:
    """The seats each partner plays when the agent takes only ``agent_seat`` (None: any): every seat of
    partner i but ``agent_seat``. UserError (one line) for a partner that can only play the agent's seat."""
    if agent_seat is None:
        return [tuple(s) for s in seats]
    out = [tuple(x for x in s if x != agent_seat) for s in seats]
    for name, s in zip(names, out):
        if not s:
            raise UserError(f"partner {name} plays only seat {agent_seat}, the seat the agent is to play")
    return out


def returns_with_partners(game, policy, agent: int, partners, episodes: int, rng, self_play: bool = False,
                          seats: list[tuple[int, ...]] | None = None, agent_seat: int | None = None,
                          per_step: bool = False):
    """Episode returns of the agent (bank slot ``agent``) with the partners: [P, 2, E] (axis 1: the agent
    in seat 0, in seat 1), or [P, 3, E] with ``self_play`` (index 2: the partner with itself). numpy.

    ``partners``: their member ids [P] (a tensor or list), or an int P for slots 0..P−1. ``seats`` (per
    partner, default both): a partner that cannot play seat s leaves the agent's seat-(1−s) entries NaN, and
    its self-play NaN unless it plays both seats; those pairs are not played. ``agent_seat`` (0 or 1): the
    agent plays only that seat (its other seating NaN); partners' self-play is unaffected. ``per_step``: the
    rewards of every step, [P, 2 or 3, E, T], instead of the returns."""
    import numpy as np
    import torch

    partners = torch.arange(partners) if isinstance(partners, int) else torch.as_tensor(partners).long().cpu()
    P = len(partners)
    pairs, mask = partner_pairs([agent], partners, seats, agent_seat, self_play)
    out = play_playable(game, policy, pairs, mask, episodes, rng, per_step, seat_of=agent_seats(1, P, self_play))
    return np.swapaxes(out.reshape(len(mask) // P, P, *out.shape[1:]), 0, 1)


def play_playable(game, policy, pairs, playable, episodes: int, rng, per_step: bool = False, play=None,
                  seat_of=None):
    """Episode returns of ``pairs`` [B, 2] where ``playable`` [B] (``partner_pairs``), NaN elsewhere, all played
    in one call: [B, E] numpy, or [B, E, T] rewards per step with ``per_step``. ``play`` (default
    ``adhoc.rollout.episode_returns``): called as ``play(game, policy, pairs, episodes, rng, per_step=...)``.
    In a game that pays each seat its own reward, pair b reports seat ``seat_of[b]``'s (the agent's, from
    ``agent_seats``; default seat 0), played with ``seats=True``."""
    import numpy as np
    import torch

    from adhoc.rollout import episode_returns

    out = np.full((len(playable), episodes, *((game.horizon,) if per_step else ())), np.nan)
    if bool(playable.any()):
        if payoff_kind(game) == "common":
            played = (play or episode_returns)(game, policy, pairs[playable], episodes, rng, per_step=per_step)
        else:
            both = (play or episode_returns)(game, policy, pairs[playable], episodes, rng, per_step=per_step,
                                             seats=True)  # [b, E, (T,) 2]
            own = (torch.zeros(len(playable), dtype=torch.long) if seat_of is None else seat_of)[playable]
            played = own_seat(both, own)
        out[playable.numpy()] = played.numpy()
    return out


def agent_seats(n_agents: int, n_partners: int, self_play: bool = False):
    """The seat whose reward each of ``partner_pairs``' pairs reports: the agent's (0 in each agent's first block
    of ``n_partners`` pairs, 1 in its second), and seat 0 in the partners' self-play. LongTensor [B]."""
    import torch

    seats = torch.arange(2).repeat_interleave(n_partners).repeat(n_agents)
    return torch.cat([seats, torch.zeros(n_partners if self_play else 0, dtype=torch.long)])


def partner_pairs(agents: list[int], partners, seats: list[tuple[int, ...]] | None = None,
                  agent_seat: int | None = None, self_play: bool = False):
    """The pairs of agents (bank slots) with partners (member ids [P]), in blocks of P: for each agent, the agent
    in seat 0, then in seat 1; with ``self_play`` last the partners with themselves. (pairs [B·P, 2], playable
    [B·P] bool): a partner that cannot play the other seat, or an agent held to ``agent_seat``, leaves a pair
    unplayable, and a partner's self-play needs both seats (``returns_with_partners`` says what is NaN)."""
    import torch

    partners = torch.as_tensor(partners).long().cpu()
    seats = [SEATS] * len(partners) if seats is None else [tuple(s) for s in seats]
    agent_first = [1 in s and agent_seat != 1 for s in seats]
    agent_second = [0 in s and agent_seat != 0 for s in seats]
    blocks, playable = [], []
    for agent in agents:
        me = torch.full_like(partners, agent)
        blocks += [torch.stack([me, partners], 1), torch.stack([partners, me], 1)]
        playable += [agent_first, agent_second]
    if self_play:
        blocks.append(torch.stack([partners, partners], 1))
        playable.append([0 in s and 1 in s for s in seats])
    return torch.cat(blocks), torch.tensor(playable).reshape(-1)
