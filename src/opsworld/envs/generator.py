"""Incident generators: which fault each world of a batch gets, where, and when (a small strategy object, as in
Jumanji). The default draws from the fault catalogue's entries on the scenario's template, moves the target to
another component of the same kind when the entry allows, and draws the onset and severity; with `spread`, also
each fault's strength within its documented range (`faults.ranges`). Beside the fault: a change log of healthy
changes (`background`), a second harmful fault (`compound`, in `Draw.others`), a benign anomaly (`anomaly`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from opsworld.engine.topology import topology_of
from opsworld.faults.base import Fault, FaultError
from opsworld.faults.catalogue import CATALOGUE, Entry
from opsworld.faults.placement import example_fits, fitting, parse_fault, place, placements
from opsworld.faults.ranges import draw_params
from opsworld.faults.traffic import LoadLevel
from opsworld.spec import Scenario

CONTROLS = ("no_fault", "benign_deploy", "benign_config")     # entries with nothing to mitigate: detection controls
_PINNED = ("caller", "other", "on")        # parameters naming a second place: keep the example's target
# fault kinds that act on any service alike, so they may strike another one than their worked example's
_MOVABLE = ("error_rate", "slowdown", "cpu_hog", "crash_loop", "memory_leak", "deadlock", "wrong_answers",
            "health_check_flap", "benign_change", "fd_exhaustion", "disk_fill")
# with a spread, kinds that may also strike any place they fit by role (`placements`: a call pair, a datastore, a
# queue's consumer, an endpoint): their effect shows wherever the check passes. Left out: faults on a node or zone
# (a node may run nothing), a certificate (its onset is a wall-clock time), the control plane, GPUs.
_MOVABLE_BY_ROLE = ("unreachable", "expired_credentials", "network_delay", "packet_loss", "zone_partition",
                    "lock_contention", "connection_pool_leak", "connection_limit", "hard_limit", "cache_failure",
                    "primary_failure", "replication_lag", "consumer_stall", "poison_message", "early_return",
                    "uneven_balancing", "capacity_removal", "quota_exhaustion", "client_flood")
_PATHS = ("unreachable", "expired_credentials", "network_delay", "packet_loss")   # act on the calls into the target
COMPOUND_WINDOW = 300.0          # seconds either side of the first fault's onset the second one starts


@dataclass(frozen=True)
class Draw:
    """One world's incident: a catalogue entry, the fault made from it, and the faults beside it: `also`, what is not
    scored (the companions it needs, such as a slow callee for a too-long timeout, which start with it; healthy
    changes; a benign anomaly), and `others`, further harmful faults (a compound incident), each with its own
    ground truth and scored as the drawn one is."""

    entry: str
    fault: Fault
    also: tuple[Fault, ...] = ()
    others: tuple[Fault, ...] = ()


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
    `spread` (0..1): how much of each parameter's documented range (`faults.ranges`) the draws cover, quantised to
    `levels` points (0: the presets); above 0, more kinds of fault move to any place they fit by role.
    `background`: mean number of healthy changes and short flaps beside the fault, some near its onset;
    `compound`: chance of a second harmful fault elsewhere, within five minutes of the first (`Draw.others`);
    `anomaly`: chance of a benign anomaly the system absorbs (a mild traffic bump, a slightly slow optional
    dependency); `unlogged`: chance that a fault carried by a deploy or config push was pushed by hand, so that the
    culprit is missing from the change log (the running version and the pods' ages still show it); `load`: how far
    the day's traffic is drawn from the scenario's (`day_load`).
    With all of them 0 (the default), the draws are those of before, rng call for rng call.
    """

    entries: Sequence[str] | None = None
    onset: tuple[float, float] = (300.0, 900.0)
    severity: tuple[float, float] | None = None
    move_target: bool = True
    controls: bool = True
    spread: float = 0.0
    levels: int = 8
    background: float = 0.0
    compound: float = 0.0
    anomaly: float = 0.0
    unlogged: float = 0.0
    load: float = 0.0
    horizon: float = 3600.0
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
            if self.spread > 0 and self.move_target and e.fault.kind in _MOVABLE_BY_ROLE and not e.example.also:
                params.update(self._other_place(e, scenario, rng))
                target = params["target"]
            elif self.move_target and not (set(params) & set(_PINNED)) and not e.example.also:
                target = self._other_target(e, scenario, target, rng)
            params["target"] = target
        else:                    # by role: one of the places it fits
            params = dict(spots[int(rng.integers(len(spots)))])
        params["onset"] = float(rng.uniform(*self.onset))
        if self.severity is not None and e.name not in CONTROLS and "severity" in e.fault.model_fields:
            params.setdefault("severity", float(rng.uniform(*self.severity)))
        if self.spread > 0 and e.name not in CONTROLS:
            params = draw_params(e, params, rng, self.spread, self.levels)
        fault = _by_hand(e.make(**params), rng, self.unlogged)
        fault.check(scenario)
        also = (tuple(CATALOGUE[n].make(**{**p, "onset": params["onset"]}) for n, p in e.example.also)
                if spots is None else ())
        others: tuple[Fault, ...] = ()
        if self.compound > 0 and e.name not in CONTROLS and rng.random() < self.compound:
            second = self._second(scenario, fault, rng)
            others = (second,) if second is not None else ()
        extra: list[Fault] = []
        if self.anomaly > 0 and rng.random() < self.anomaly:
            extra += [f for f in [benign_anomaly(scenario, rng, self.horizon)] if f is not None]
        if self.background > 0:
            avoid = {f.change_target for f in (fault, *also, *others)}
            extra += background(scenario, rng, self.background, self.horizon, onset=fault.onset_seconds(scenario),
                                avoid=avoid)
        extra += [f for f in [day_load(rng, self.load, self.levels)] if f is not None]
        return Draw(e.name, fault, also + tuple(extra), others)

    def _other_place(self, e: Entry, scenario: Scenario, rng: np.random.Generator) -> dict:
        """Another place the entry fits by role (its example's, where none other is safe)."""
        key = ("places", scenario.name, e.name)
        if key not in self._cache:
            self._cache[key] = _safe_places(e, scenario) or [{"target": e.example.target,
                                                              **{k: v for k, v in e.example.params.items()
                                                                 if k in _PINNED}}]
        places = self._cache[key]
        return dict(places[int(rng.integers(len(places)))])

    def _second(self, scenario: Scenario, first: Fault, rng: np.random.Generator) -> Fault | None:
        """A second harmful fault on another place (no root in common with the first), starting within five minutes
        of it; None where the scenario offers none. An entry is drawn first, then one of its places."""
        key = ("second", scenario.name)
        if key not in self._cache:
            by_entry: dict[str, tuple[Entry, list]] = {}
            for e, p, roots in _harmful_places(scenario, self.entries):
                by_entry.setdefault(e.name, (e, []))[1].append((p, roots))
            self._cache[key] = list(by_entry.values())
        roots = set(first.roots(scenario))
        pool = [(e, ps) for e, places in self._cache[key] if (ps := [p for p, r in places if not r & roots])]
        if not pool:
            return None
        e, places = pool[int(rng.integers(len(pool)))]
        params = {**places[int(rng.integers(len(places)))], "onset": float(np.clip(
            first.onset_seconds(scenario) + rng.uniform(-COMPOUND_WINDOW, COMPOUND_WINDOW), 0.0, None))}
        if self.spread > 0:
            params = draw_params(e, params, rng, self.spread, self.levels)
        fault = e.make(**params)
        fault.check(scenario)
        return fault

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
    compound: chance of a second, independent fault on another place, starting within five minutes of the first
      (in `Draw.others`: scored too).
    exclude: entries never drawn (held-out fault classes for a train/test split); `entries`: the only ones drawn.
    spread: how much of each fault parameter's documented range the draws cover (0: the presets), in `levels` steps.
    anomaly: chance of a benign anomaly the system absorbs (a mild traffic bump, a slightly slow optional
      dependency), in `also`.
    unlogged: chance that a fault carried by a deploy or config push was pushed by hand (not in the change log).
    load: how far the day's traffic is drawn from the scenario's (`day_load`), in `also`.
    """

    onset: tuple[float, float] = (300.0, 900.0)
    controls: float = 0.05
    red_herrings: float = 0.0
    compound: float = 0.0
    entries: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    horizon: float = 3600.0
    spread: float = 0.0
    levels: int = 8
    anomaly: float = 0.0
    unlogged: float = 0.0
    load: float = 0.0
    _cache: dict = field(default_factory=dict, repr=False)

    def draw(self, scenario: Scenario, rng: np.random.Generator) -> Draw:
        """One incident for one world."""
        faults, controls = self._options(scenario)
        onset = float(rng.uniform(*self.onset))
        pool = controls if (controls and rng.random() < self.controls) or not faults else faults
        name, places = pool[int(rng.integers(len(pool)))]
        fault = self._make(name, {**places[int(rng.integers(len(places)))], "onset": onset}, rng)
        fault = _by_hand(fault, rng, self.unlogged)
        others: list[Fault] = []
        if faults and rng.random() < self.compound:
            pairs = [(n, [p for p in ps if p.get("target") != fault.target]) for n, ps in faults if n != name]
            pairs = [(n, ps) for n, ps in pairs if ps]
            if pairs:
                n, ps = pairs[int(rng.integers(len(pairs)))]
                others.append(self._make(n, {**ps[int(rng.integers(len(ps)))], "onset": float(np.clip(
                    onset + rng.uniform(-COMPOUND_WINDOW, COMPOUND_WINDOW), 0, None))}, rng))
        if name in CONTROLS:       # nothing is wrong in a control: its draws are made (the stream stays) and dropped
            others = []
        also = self._distractions(scenario, rng)
        if self.anomaly > 0 and rng.random() < self.anomaly:
            also += [f for f in [benign_anomaly(scenario, rng, self.horizon)] if f is not None]
        also += [f for f in [day_load(rng, self.load, self.levels)] if f is not None]
        return Draw(name, fault, tuple(also), tuple(others))

    def _make(self, name: str, params: dict, rng: np.random.Generator) -> Fault:
        e = CATALOGUE[name]
        if self.spread > 0 and name not in CONTROLS:
            params = draw_params(e, params, rng, self.spread, self.levels)
        return e.make(**params)

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


def background(scenario: Scenario, rng: np.random.Generator, mean: float, horizon: float,
               onset: float | None = None, avoid: Sequence[str] = ()) -> list[Fault]:
    """What happens in a system beside an incident: `mean` events (Poisson) at random components and times within
    `horizon` — healthy deploys and config pushes (seven in ten), and short health-check flaps that come and go by
    themselves. A real change log is mostly healthy changes; a responder who suspects every change pays for it.

    Given the fault's `onset`, half the events fall within five minutes either side of it (the bad change is then
    not always the last one, and often not alone), a fifth are autoscaler settings raised (a healthy change the
    autoscaler's history records), and none touches a component in `avoid` (a later deploy over the fault's own
    would replace it). Without `onset`, the draws are those of before."""
    if onset is None:
        return _background_anywhere(scenario, rng, mean, horizon)
    names = [n for n in scenario.components if n not in avoid]
    scalable = [n for n in names if scenario.components[n].autoscaler is not None]
    out: list[Fault] = []
    for _ in range(int(rng.poisson(mean))):
        if not names:
            break
        target = names[int(rng.integers(len(names)))]
        near = rng.random() < 0.5
        at = float(np.clip(onset + rng.uniform(-COMPOUND_WINDOW, COMPOUND_WINDOW), 0.0, horizon) if near
                   else rng.uniform(0.0, horizon))
        u = rng.random()
        if u < 0.2 and scalable:      # someone gives the autoscaler more room: more headroom, never less
            target = scalable[int(rng.integers(len(scalable)))]
            most = scenario.components[target].autoscaler.max + int(rng.integers(1, 4))
            fault = CATALOGUE["autoscaler_scale_to_zero"].make(target=target, most=most, onset=at)
        elif u < 0.8:
            fault = CATALOGUE["benign_deploy" if rng.random() < 0.5 else "benign_config"].make(target=target, onset=at)
        else:        # a flap that comes and goes by itself; few distinct durations (one injector entry each)
            fault = CATALOGUE["health_check_flapping"].make(target=target, onset=at, share=0.3,
                                                            duration=float(60 * int(rng.integers(1, 5))))
        if _fits(fault, scenario):
            out.append(fault)
    return out


def _fits(fault: Fault, scenario: Scenario) -> bool:
    """Whether a fault can act on the scenario (a background event that cannot is skipped)."""
    try:
        fault.check(scenario)
    except FaultError:
        return False
    return True


def _background_anywhere(scenario: Scenario, rng: np.random.Generator, mean: float, horizon: float) -> list[Fault]:
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
        if _fits(fault, scenario):
            out.append(fault)
    return out


# the day's load at `load` 1: exp(+-0.25) of the scenario's rate, 0.78-1.28x (no template breaks an SLO at 1.5x)
LOAD_SWING = 0.25
# a benign anomaly: mild enough that the system absorbs it (checked on online-shop in tests/envs/test_fault_draws.py)
BUMP_FACTORS = (1.2, 1.3, 1.4, 1.5)          # a traffic bump, well inside what the autoscaler and headroom take
BUMP_MINUTES = (5, 10, 15)
SLOW_DELAYS = (0.01, 0.02, 0.03)             # seconds a dependency is slower, all episode long


def day_load(rng: np.random.Generator, load: float, levels: int = 8) -> Fault | None:
    """The day's traffic level (`LoadLevel`): a factor within exp(+-LOAD_SWING * load) of the scenario's rate, one
    of `levels` points (few distinct values, so a batch makes few distinct faults); None (and no draw) at 0."""
    if load <= 0:
        return None
    points = np.exp(np.linspace(-LOAD_SWING, LOAD_SWING, max(levels, 2)) * load)
    return LoadLevel(factor=round(float(points[int(rng.integers(len(points)))]), 4))


def _by_hand(fault: Fault, rng: np.random.Generator, share: float) -> Fault:
    """The fault, with chance `share` (when a deploy or config push carries it) pushed by hand, past the pipeline:
    the culprit is not in the change log. No draw at all when `share` is 0, so the stream stays as before."""
    if share > 0 and fault.change != "none" and rng.random() < share:
        return fault.model_copy(update={"logged": False})
    return fault


def benign_anomaly(scenario: Scenario, rng: np.random.Generator, horizon: float) -> Fault | None:
    """Something unusual that is no incident: a mild traffic bump on one endpoint for a few minutes (the autoscaler
    may scale out for it), or, half the time where there is one, a dependency a little slow all episode that only
    optional calls reach (a slow required dependency can exhaust its callers' slots: that is an incident). Few
    distinct values, so a batch makes few distinct faults. None where the scenario has no such place."""
    optional = optional_callees(scenario)
    if optional and rng.random() < 0.5:
        target = optional[int(rng.integers(len(optional)))]
        delay = SLOW_DELAYS[int(rng.integers(len(SLOW_DELAYS)))]
        fault = CATALOGUE["third_party_slowness"].make(target=target, delay=delay, onset=0.0)
    else:
        endpoints = [ep.name for ep in scenario.traffic.endpoints]
        if not endpoints:
            return None
        target = endpoints[int(rng.integers(len(endpoints)))]
        factor = BUMP_FACTORS[int(rng.integers(len(BUMP_FACTORS)))]
        duration = 60.0 * BUMP_MINUTES[int(rng.integers(len(BUMP_MINUTES)))]
        at = float(rng.uniform(0.0, max(horizon - duration, 0.0)))
        fault = CATALOGUE["flash_crowd"].make(target=target, factor=factor, duration=duration, onset=at)
    try:
        fault.check(scenario)
    except FaultError:
        return None
    return fault


def optional_callees(scenario: Scenario) -> list[str]:
    """Components every call to which is optional (`required: false`): their slowness cannot fail a request."""
    calls: dict[str, list[bool]] = {}
    for c in scenario.components.values():
        for d in c.dependencies:
            calls.setdefault(d.target, []).append(d.required)
    for ep in scenario.traffic.endpoints:
        for d in ep.calls or ():
            calls.setdefault(d.target, []).append(d.required)
    return [n for n, req in calls.items() if n in scenario.components and not any(req)]


def _callees(scenario: Scenario) -> set[str]:
    """Components something calls."""
    out = {d.target for c in scenario.components.values() for d in c.dependencies}
    return out | {d.target for ep in scenario.traffic.endpoints for d in ep.calls or ()}


def _safe_places(e: Entry, scenario: Scenario, places: list[dict] | None = None) -> list[dict]:
    """The places (default: every one it fits by role) where the entry's effect shows: calls into the target exist
    (a path fault with no caller named), more than one replica to balance unevenly, replicas on a node."""
    out = []
    called = _callees(scenario)
    topo = topology_of(scenario)
    running = topo.replica_index < topo.replicas[topo.replica_component]
    busy = {topo.nodes[int(n)] for n in np.unique(topo.replica_node[running])}
    for p in placements(e, scenario) if places is None else places:
        target = p.get("target")
        if e.fault.strikes == "node" and target not in busy:
            continue
        if e.fault.kind in _PATHS and "caller" not in p and target not in called:
            continue
        if e.fault.kind == "uneven_balancing" and getattr(scenario.components.get(target), "replicas", 1) < 2:
            continue
        out.append(p)
    return out


def _harmful_places(scenario: Scenario, names: Sequence[str] | None) -> list[tuple[Entry, dict, frozenset]]:
    """Every harmful entry's places on the scenario (by role, else its worked example where it runs as written),
    each with the roots a fault there has: the pool a compound incident's second fault is drawn from."""
    chosen = [parse_fault(n).entry for n in names] if names is not None else list(CATALOGUE.values())
    out = []
    for e in chosen:
        if e.name in CONTROLS or e.example.also:
            continue
        places = _safe_places(e, scenario)
        if not places and example_fits(e, scenario) and not (e.example.overrides and e.name != "certificate_expiry"):
            places = [{k: v for k, v in e.example.params.items() if k != "onset"} | {"target": e.example.target}]
        for p in places:
            try:
                fault = e.make(**p)
                fault.check(scenario)
            except FaultError:
                continue
            out.append((e, p, frozenset(fault.roots(scenario))))
    return out
