"""Partners: the frozen strategies a learner is trained with or evaluated against, loaded from specs.

A spec is a population folder (every member becomes a partner). ``load_partners(specs)`` is the ONE place
that turns the user's specs into partners, so other kinds of partner (e.g. scripted teachers,
``scripted:<game>``) plug in here through ``PARTNER_SOURCES`` without touching the recipes.

All partners and the agent(s) that play with them sit in ONE AdapterBank over one base model, so the
populations must agree on the game, the base model (fingerprint) and the adapter shape; every disagreement
is one ``UserError`` line naming both populations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from adhoc.errors import UserError
from adhoc.population import Population

# scheme -> loader for specs written "scheme:rest" that are not folders (none yet: scripted teachers come later)
PARTNER_SOURCES: dict[str, Callable[[str], Population]] = {}


def _plain(value: Any) -> Any:
    """YAML round trip, so a game's params() and a manifest read back compare equal (tuples, numpy floats)."""
    return yaml.safe_load(yaml.safe_dump(value))


def same_game(a: dict, b: dict) -> bool:
    return _plain(a) == _plain(b)


def describe_game_difference(a: dict, b: dict) -> str:
    """Short text of how two recorded games differ: their names, or the first differing parameter."""
    a, b = _plain(a), _plain(b)
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
    """Partner populations stacked in order: partner k is ``names[k]`` (``label/member``)."""

    populations: list[Population]
    labels: list[str]
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def game(self) -> dict:
        return self.populations[0].game

    @property
    def base_model(self) -> dict:
        return self.populations[0].base_model

    @property
    def adapter(self) -> dict:
        return self.populations[0].manifest["adapter"]

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
                 "members": pop.names} for pop, label in zip(self.populations, self.labels)]


def load_spec(spec: str) -> Population:
    spec = str(spec).strip()
    if not spec:
        raise UserError("empty partner spec (give a population folder: partners=DIR)")
    scheme, sep, rest = spec.partition(":")
    if not Path(spec).exists() and sep and len(scheme) > 1:  # "C:\..." is a drive, not a scheme
        if scheme not in PARTNER_SOURCES:
            known = ", ".join(f"{k}:..." for k in sorted(PARTNER_SOURCES)) or "none yet"
            raise UserError(f"unknown partner source '{scheme}' in {spec!r} (partners are population folders; "
                            f"other sources: {known})")
        return PARTNER_SOURCES[scheme](rest)
    return Population.load(spec)


def load_partners(specs: list[str], game: dict | None = None) -> Partners:
    """Load and check the partner specs. ``game`` (a game's ``params() | {name}``), when given, is the game
    the partners must play."""
    specs = list(specs or [])
    if not specs:
        raise UserError("no partners: give at least one partner population (partners=DIR)")
    pops = [load_spec(s) for s in specs]
    check_compatible(pops, "playing with one agent")
    if game is not None and not same_game(pops[0].game, game):
        raise UserError(f"partner population {pops[0].path} plays {describe_game_difference(pops[0].game, game)} "
                        f"as configured")
    taken: set[str] = set()
    labels = [population_label(p.path, taken) for p in pops]
    names = [f"{label}/{n}" for pop, label in zip(pops, labels) for n in pop.names]
    return Partners(populations=pops, labels=labels, names=names)


def returns_with_partners(game, policy, agent: int, n_partners: int, episodes: int, rng,
                          self_play: bool = False):
    """Episode returns of the agent (bank slot ``agent``) with partners 0..P-1: [P, 2, E] (axis 1: the agent
    in seat 0, in seat 1), or [P, 3, E] with ``self_play`` (index 2: the partner with itself). numpy."""
    import torch

    from adhoc.rollout import episode_returns

    partners = torch.arange(n_partners)
    me = torch.full_like(partners, agent)
    blocks = [torch.stack([me, partners], 1), torch.stack([partners, me], 1)]
    if self_play:
        blocks.append(torch.stack([partners, partners], 1))
    r = episode_returns(game, policy, torch.cat(blocks), episodes, rng).numpy()  # [S·P, E]
    return r.reshape(len(blocks), n_partners, episodes).transpose(1, 0, 2)
