"""Incident generators: which fault each world of a batch gets, where, and when (a small strategy object, as in
Jumanji). The default draws from the fault catalogue's entries on the scenario's template, moves the target to
another component of the same kind when the entry allows, and draws the onset and severity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from opsworld.faults.base import Fault, FaultError
from opsworld.faults.catalogue import CATALOGUE, Entry
from opsworld.faults.placement import example_fits, fitting, parse_fault, place, placements
from opsworld.spec import Scenario

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


def entries_for(scenario: Scenario, controls: bool = True) -> list[Entry]:
    """Catalogue entries whose worked example runs on this scenario's template (without scenario overrides, which a
    batch cannot give one world alone)."""
    chosen = [e for e in CATALOGUE.values() if e.example.template == scenario.name
              and not (e.example.overrides and e.name != "certificate_expiry")]
    return [e for e in chosen if controls or e.name not in CONTROLS]


@dataclass
class CatalogueGenerator:
    """Draw one fault per world from catalogue entries: `NAME` or `NAME:TARGET` (`faults.placement`).

    On a template, an entry without a target runs its worked example, and `move_target` lets it strike another
    component of the same kind. Elsewhere (a user's own system), or with a target, it strikes a place of the role it
    needs, drawn per world among those it fits. Without `entries`: the entries written for the scenario's template,
    or on any other scenario every entry that fits somewhere in it.
    `onset` is the range of seconds after the start the fault begins; `severity`, if given, the range of its
    strength (each distinct severity costs the injector a little work per tick; the presets are the default).
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
            self._cache[key] = self._options(scenario)
        options = self._cache[key]
        e, spots = options[int(rng.integers(len(options)))]
        if spots is None:        # its worked example, on its template
            params = dict(e.example.params)
            target = e.example.target
            if self.move_target and not (set(params) & set(_PINNED)) and not e.example.also:
                target = self._other_target(e, scenario, target, rng)
            params["target"] = target
        else:                    # by role: one of the places it fits
            params = dict(spots[int(rng.integers(len(spots)))])
        params["onset"] = float(rng.uniform(*self.onset))
        if self.severity is not None and e.name not in CONTROLS and "severity" in e.fault.model_fields:
            params.setdefault("severity", float(rng.uniform(*self.severity)))
        fault = e.make(**params)
        fault.check(scenario)
        also = (tuple(CATALOGUE[n].make(**{**p, "onset": params["onset"]}) for n, p in e.example.also)
                if spots is None else ())
        return Draw(e.name, fault, also)

    def _options(self, scenario: Scenario) -> list[tuple[Entry, list[dict] | None]]:
        """Each entry drawn from, with the places it strikes by role (None: its worked example)."""
        if self.entries is None:
            chosen = entries_for(scenario, self.controls)
            if chosen:
                return [(e, None) for e in chosen]
            out = [(CATALOGUE[n], spots) for n, spots in fitting(scenario) if self.controls or n not in CONTROLS]
            if not out:
                raise FaultError(f"no catalogue entry can strike '{scenario.name}' (see `opsworld faults --scenario`)")
            return out
        out = []
        for text in self.entries:
            spec = parse_fault(text)
            if spec.target is None and example_fits(spec.entry, scenario):
                out.append((spec.entry, None))
                continue
            place(spec, scenario)            # a one-line FaultError naming where it could strike instead
            spots = placements(spec.entry, scenario)
            out.append((spec.entry, [p for p in spots if spec.target is None or p.get("target") == spec.target]))
        return out

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
                places = placements(e, scenario)
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
