"""Incident generators: which fault each world of a batch gets, where, and when (a small strategy object, as in
Jumanji). The default draws from the fault catalogue's entries on the scenario's template, moves the target to
another component of the same kind when the entry allows, and draws the onset and severity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from opsworld.faults.base import Fault, FaultError
from opsworld.faults.catalogue import CATALOGUE, Entry
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
