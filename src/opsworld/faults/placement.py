"""Where a catalogue fault can strike a scenario, by the role a place plays there: a service, a datastore, a cache,
a queue, a node, a zone, an endpoint, a certificate, a call between two components. Every entry's worked example
names a place in one template; by role, the same failure runs on any scenario that has such a place — a user's own
system included. `NAME[:TARGET]` is the one spelling of "this fault, there" everywhere (CLI and Python)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from opsworld.faults.base import FaultError
from opsworld.faults.catalogue import CATALOGUE, Entry
from opsworld.spec import Scenario, load_scenario

_SECOND_PLACE = ("caller", "on", "other")       # parameters naming a second place, fixed per placement


@dataclass(frozen=True)
class FaultSpec:
    """`NAME[:TARGET]`: a catalogue entry and, optionally, the place it strikes."""

    name: str
    target: str | None = None

    @property
    def entry(self) -> Entry:
        return CATALOGUE[self.name]

    def __str__(self) -> str:
        return self.name if self.target is None else f"{self.name}:{self.target}"


def parse_fault(text: str) -> FaultSpec:
    """`memory_creep` or `memory_creep:cartservice` -> a `FaultSpec`; a FaultError (one line, with the closest
    names) for an entry the catalogue does not have."""
    name, _, target = str(text).strip().partition(":")
    if name not in CATALOGUE:
        close = difflib.get_close_matches(name, CATALOGUE, n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise FaultError(f"no catalogue entry '{name}'; {hint}see `opsworld faults`")
    return FaultSpec(name, target.strip() or None)


def example_fits(entry: Entry, scenario: Scenario) -> bool:
    """Whether the entry's worked example runs as written on this scenario (its template, or one with the same
    place of the same role)."""
    ex = entry.example
    if ex.template == scenario.name:
        return True
    return ex.target in _names(scenario) and _fits(entry, {**ex.params, "target": ex.target}, scenario)


def placements(entry: Entry, scenario: Scenario) -> list[dict[str, Any]]:
    """Every place in `scenario` the entry's fault can strike, as the parameters that name it (`target`, and
    `caller`, `on` or `other` where the fault needs a second place). Empty where the scenario has no such place, or
    where the failure needs a companion fault or a scenario state that cannot be placed by role."""
    if entry.example.also or (entry.example.overrides and entry.name != "certificate_expiry"):
        return []
    return [p for p in _candidates(entry, scenario) if _fits(entry, p, scenario)]


def place(spec: FaultSpec, scenario: Scenario, rng: np.random.Generator | None = None) -> dict[str, Any]:
    """The parameters of the fault `spec` names on `scenario`: the worked example on its own template (unless a
    target is named); else the placement at the named target, or one drawn with `rng` (the first without)."""
    e = spec.entry
    if spec.target is None and example_fits(e, scenario):
        return {**e.example.params, "target": e.example.target}
    options = placements(e, scenario)
    if spec.target is not None:
        chosen = [p for p in options if p.get("target") == spec.target]
        if not chosen:
            targets = sorted({str(p.get("target")) for p in options})
            where = f"it can strike: {', '.join(targets)}" if targets else "nothing in it has the role it needs"
            role = e.fault.strikes          # component, node, zone, endpoint, certificate...
            raise FaultError(f"{spec}: '{spec.target}' is not a {role} of {scenario.name} that {spec.name} can "
                             f"strike; {where}")
        options = chosen
    if not options:
        raise FaultError(f"{spec.name} cannot strike {scenario.name}: {why_not(e, scenario)}")
    return dict(options[int(rng.integers(len(options)))] if rng is not None else options[0])


def why_not(entry: Entry, scenario: Scenario) -> str:
    """One line: why an entry has no placement on a scenario."""
    if entry.example.also:
        return "it needs a companion fault beside it (run its worked example: `opsworld inject NAME`)"
    if entry.example.overrides and entry.name != "certificate_expiry":
        return f"it needs its template in a particular state ({entry.example.template}, with overrides)"
    strikes = entry.fault.strikes
    if strikes == "component":
        kind = example_kind(entry)
        return f"it strikes a {kind} that can carry it, and {scenario.name} has none that fits"
    if strikes == "zone":
        return "it needs two zones or more"
    return f"it strikes a {strikes}, and {scenario.name} has none that fits"


def fitting(scenario: Scenario, names: Sequence[str] | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    """Each catalogue entry (or each of `names`) with the places it can strike on `scenario`, those with none
    left out."""
    chosen = [CATALOGUE[n] for n in names] if names is not None else list(CATALOGUE.values())
    out = []
    for e in chosen:
        options = placements(e, scenario)
        if options:
            out.append((e.name, options))
    return out


@lru_cache(maxsize=None)
def _template_kinds(template: str) -> dict[str, str]:
    return {name: c.kind for name, c in load_scenario(template).components.items()}


def example_kind(e: Entry) -> str | None:
    """The kind of component the entry's worked example strikes (service, cache, datastore, queue)."""
    return _template_kinds(e.example.template).get(e.example.target)


def _names(scenario: Scenario) -> set[str]:
    return {*scenario.components, *(n.name for n in scenario.nodes), *scenario.zones,
            *(ep.name for ep in scenario.traffic.endpoints), *(c.name for c in scenario.certificates)}


def _candidates(e: Entry, scenario: Scenario) -> list[dict[str, Any]]:
    """Every place of the role the entry's fault strikes, as parameters (whether it fits is checked after)."""
    params = {k: v for k, v in e.example.params.items() if k not in (*_SECOND_PLACE, "onset")}
    strikes = e.fault.strikes
    comps = scenario.components
    if e.fault.kind == "no_fault":
        return [{}]
    if strikes == "node":
        return [{**params, "target": n.name} for n in scenario.nodes]
    if strikes == "endpoint":
        return [{**params, "target": ep.name} for ep in scenario.traffic.endpoints]
    if strikes == "certificate":
        return [{**params, "target": c.name} for c in scenario.certificates]
    if strikes == "zone":
        zones = scenario.zones
        if "other" in e.example.params:
            return [{**params, "target": a, "other": b} for a in zones for b in zones if a != b]
        return [{**params, "target": z} for z in zones] if len(zones) > 1 else []
    kind = example_kind(e)
    same = [n for n, c in comps.items() if c.kind == kind]
    if "caller" in e.example.params:
        return [{**params, "target": t, "caller": c} for c, comp in comps.items() for d in comp.dependencies
                for t in [d.target] if t in same]
    if "on" in e.example.params:
        return [{**params, "target": c, "on": d.target} for c, comp in comps.items() if comp.kind == "service"
                for d in comp.dependencies if comps[d.target].kind == "datastore"]
    return [{**params, "target": t} for t in same]


def _fits(e: Entry, params: dict[str, Any], scenario: Scenario) -> bool:
    try:
        e.make(**params).check(scenario)
    except (FaultError, ValueError, KeyError):
        return False
    return True
