"""Incident generators: which fault each world of a batch gets, where, and when (a small strategy object, as in
Jumanji). The default draws from the fault catalogue's entries on the scenario's template, moves the target to
another component of the same kind when the entry allows, and draws the onset and severity."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np

from opsworld.faults.base import Fault, FaultError
from opsworld.faults.catalogue import CATALOGUE, Entry
from opsworld.spec import Scenario, load_scenario

CONTROLS = ("no_fault", "benign_deploy", "benign_config")     # entries with nothing to mitigate: detection controls
_PINNED = ("caller", "other", "on")        # parameters naming a second place: keep the example's target
# fault kinds that act on any service alike, so they may strike another one than their worked example's
_MOVABLE = ("error_rate", "slowdown", "cpu_hog", "crash_loop", "memory_leak", "deadlock", "wrong_answers",
            "health_check_flap", "benign_change", "fd_exhaustion", "disk_fill")


@dataclass(frozen=True)
class Draw:
    """One world's incident: a catalogue entry, the fault made from it, and the faults it needs beside it (a slow
    callee for a too-long timeout), which start with it."""

    entry: str
    fault: Fault
    also: tuple[Fault, ...] = ()


def entries_for(scenario: Scenario, names: Sequence[str] | None = None, controls: bool = True) -> list[Entry]:
    """Catalogue entries whose worked example runs on this scenario's template (without scenario overrides, which a
    batch cannot give one world alone)."""
    if names is not None:
        unknown = [n for n in names if n not in CATALOGUE]
        if unknown:
            raise FaultError(f"no fault named {', '.join(unknown)} in the catalogue; see `opsworld faults`")
        return [CATALOGUE[n] for n in names]
    chosen = [e for e in CATALOGUE.values() if e.example.template == scenario.name
              and not (e.example.overrides and e.name != "certificate_expiry")]
    return [e for e in chosen if controls or e.name not in CONTROLS]


@dataclass
class CatalogueGenerator:
    """Draw one fault per world from catalogue entries on the scenario's template.

    `onset` is the range of seconds after the start the fault begins; `severity`, if given, the range of its
    strength (each distinct severity costs the injector a little work per tick; the presets are the default);
    `move_target` lets a fault strike another component of the same kind than its worked example.
    """

    entries: Sequence[str] | None = None
    onset: tuple[float, float] = (300.0, 900.0)
    severity: tuple[float, float] | None = None
    move_target: bool = True
    controls: bool = True
    _cache: dict = field(default_factory=dict, repr=False)

    def draw(self, scenario: Scenario, rng: np.random.Generator) -> Draw:
        """One incident for one world."""
        key = scenario.name
        if key not in self._cache:
            self._cache[key] = entries_for(scenario, self.entries, self.controls)
            if not self._cache[key]:
                raise FaultError(f"no catalogue entry has a worked example on '{scenario.name}': name the faults to draw "
                                 f"from (faults=[...] in Python, --fault on the command line; see `opsworld faults`)")
        options = self._cache[key]
        e = options[int(rng.integers(len(options)))]
        params = dict(e.example.params)
        target = e.example.target
        if self.move_target and not (set(params) & set(_PINNED)) and not e.example.also:
            target = self._other_target(e, scenario, target, rng)
        params["onset"] = float(rng.uniform(*self.onset))
        if self.severity is not None and e.name not in CONTROLS and "severity" in e.fault.model_fields:
            params.setdefault("severity", float(rng.uniform(*self.severity)))
        fault = e.make(target=target, **params)
        fault.check(scenario)
        also = tuple(CATALOGUE[n].make(**{**p, "onset": params["onset"]}) for n, p in e.example.also)
        return Draw(e.name, fault, also)

    @staticmethod
    def _other_target(e: Entry, scenario: Scenario, target: str, rng: np.random.Generator) -> str:
        fault = e.fault
        if fault.kind not in _MOVABLE or target not in scenario.components:
            return target
        kind = scenario.components[target].kind
        same = [n for n, c in scenario.components.items() if c.kind == kind]
        return str(same[int(rng.integers(len(same)))])


@dataclass
class PortableGenerator:
    """Draw incidents on any scenario, generated ones included: every catalogue entry whose fault can strike a
    place of the right kind there (a component of its example's kind, a node, a zone, an endpoint, a certificate;
    the caller of a call for a partition; a datastore's client for lock contention), on a place drawn per world.

    controls: share of worlds with nothing to fix (no fault, or a benign change).
    red_herrings: mean number of distractions per world: benign deploys/config pushes and short health-check flaps
      elsewhere, at any time of the episode.
    compound: chance of a second, independent fault on another place, starting within five minutes of the first.
    exclude: entries never drawn (held-out fault classes for a train/test split); `entries`: the only ones drawn.
    """

    onset: tuple[float, float] = (300.0, 900.0)
    controls: float = 0.05
    red_herrings: float = 0.0
    compound: float = 0.0
    entries: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    horizon: float = 3600.0
    _cache: dict = field(default_factory=dict, repr=False)

    def draw(self, scenario: Scenario, rng: np.random.Generator) -> Draw:
        """One incident for one world."""
        faults, controls = self._options(scenario)
        onset = float(rng.uniform(*self.onset))
        pool = controls if (controls and rng.random() < self.controls) or not faults else faults
        name, places = pool[int(rng.integers(len(pool)))]
        fault = CATALOGUE[name].make(**places[int(rng.integers(len(places)))], onset=onset)
        also: list[Fault] = []
        if faults and rng.random() < self.compound:
            others = [(n, [p for p in ps if p.get("target") != fault.target]) for n, ps in faults if n != name]
            others = [(n, ps) for n, ps in others if ps]
            if others:
                n, ps = others[int(rng.integers(len(others)))]
                also.append(CATALOGUE[n].make(**ps[int(rng.integers(len(ps)))],
                                              onset=float(np.clip(onset + rng.uniform(-300, 300), 0, None))))
        also += self._distractions(scenario, rng)
        return Draw(name, fault, tuple(also))

    def _distractions(self, scenario: Scenario, rng: np.random.Generator) -> list[Fault]:
        return background(scenario, rng, self.red_herrings, self.horizon)

    def _options(self, scenario: Scenario) -> tuple[list, list]:
        """(harmful entries, control entries), each as (entry name, [parameters of each place it fits])."""
        key = id(scenario)
        if key not in self._cache:
            faults, controls = [], []
            chosen = [e for e in CATALOGUE.values() if (self.entries is None or e.name in self.entries)
                      and e.name not in self.exclude]
            for e in chosen:
                places = [p for p in _places(e, scenario) if _fits(e, p, scenario)]
                if places:
                    (controls if e.name in CONTROLS else faults).append((e.name, places))
            if not faults and not controls:
                raise FaultError(f"no catalogue entry fits scenario '{scenario.name}'")
            self._cache = {key: (faults, controls)}     # one scenario at a time: a rollout worker moves on
        return self._cache[key]


def background(scenario: Scenario, rng: np.random.Generator, mean: float, horizon: float) -> list[Fault]:
    """What happens in a system beside an incident: `mean` events (Poisson) at random components and times within
    `horizon` — healthy deploys and config pushes (seven in ten), and short health-check flaps that come and go by
    themselves. A real change log is mostly healthy changes; a responder who suspects every change pays for it."""
    names = list(scenario.components)
    out: list[Fault] = []
    for _ in range(int(rng.poisson(mean))):
        target = names[int(rng.integers(len(names)))]
        at = float(rng.uniform(0.0, horizon))
        if rng.random() < 0.7:
            entry = CATALOGUE["benign_deploy" if rng.random() < 0.5 else "benign_config"]
            fault = entry.make(target=target, onset=at)
        else:        # a flap that comes and goes by itself: alerts that fire and resolve
            fault = CATALOGUE["health_check_flapping"].make(target=target, onset=at, share=0.3,
                                                            duration=float(rng.uniform(60, 240)))
        try:
            fault.check(scenario)
        except FaultError:
            continue
        out.append(fault)
    return out


@lru_cache(maxsize=None)
def _template_kinds(template: str) -> dict[str, str]:
    return {name: c.kind for name, c in load_scenario(template).components.items()}


def _example_kind(e: Entry) -> str | None:
    """The kind of component the entry's worked example strikes (service, cache, datastore, queue)."""
    return _template_kinds(e.example.template).get(e.example.target)


def _places(e: Entry, scenario: Scenario) -> list[dict]:
    """Every place in `scenario` the entry's fault could strike, as the parameters naming it."""
    if e.example.also or (e.example.overrides and e.name != "certificate_expiry"):
        return []            # needs a companion fault or a scenario state a batch cannot give one world
    params = {k: v for k, v in e.example.params.items() if k not in ("caller", "on", "other", "onset")}
    strikes = e.fault.strikes
    comps = scenario.components
    if e.name in CONTROLS and e.fault.kind == "no_fault":
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
    kind = _example_kind(e)
    same = [n for n, c in comps.items() if c.kind == kind]
    if "caller" in e.example.params:
        return [{**params, "target": t, "caller": c} for c, comp in comps.items() for d in comp.dependencies
                for t in [d.target] if t in same]
    if "on" in e.example.params:
        return [{**params, "target": c, "on": d.target} for c, comp in comps.items() if comp.kind == "service"
                for d in comp.dependencies if comps[d.target].kind == "datastore"]
    return [{**params, "target": t} for t in same]


def _fits(e: Entry, place: dict, scenario: Scenario) -> bool:
    try:
        e.make(**place).check(scenario)
    except (FaultError, ValueError, KeyError):
        return False
    return True
