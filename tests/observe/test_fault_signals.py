"""Every fault type of the catalogue shows in the telemetry as it would in production (an alert that fires, error
lines that the cause prints, traces with errors), compared with the same world without it; controls show nothing of
the kind; and no telemetry anywhere names the fault, its class, the catalogue or the injection machinery."""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pytest

from opsworld.engine import Engine
from opsworld.faults import CATALOGUE
from opsworld.faults.catalogue import FAULT_TYPES
from opsworld.faults.injector import Injector
from opsworld.observe.telemetry import Telemetry

CONTROLS = {"no_fault", "benign_deploy", "benign_config"}
FAULTS = sorted(set(CATALOGUE) - CONTROLS)
FASTER = {"memory_creep": {"page_after": "15m"}}     # the 4-hour creep, sped up
WATCH = 1200.0            # seconds watched after onset
SEED = 3


def faults_of(name: str) -> list:
    entry = CATALOGUE[name]
    main, *beside = entry.example_faults()
    if name in FASTER:
        main = entry.make(target=entry.example.target, **{**entry.example.params, **FASTER[name]})
    return [main, *beside]


def watch(telemetry: Telemetry, ticks: int) -> list[set[str]]:
    """Run and return, per tick, the alert instances firing (by fingerprint)."""
    firing = []
    for _ in range(ticks):
        telemetry.step()
        on = telemetry.evaluator.firing()[0]
        firing.append({telemetry.evaluator.instances[a].fingerprint for a in np.flatnonzero(on)})
    return firing


def ticks_for(name: str) -> tuple[float, int]:
    scenario = CATALOGUE[name].example.scenario()
    onset = faults_of(name)[0].onset_seconds(scenario)
    return onset, int((onset + WATCH) // scenario.tick)


@functools.lru_cache(maxsize=None)
def baseline(template: str, overrides: str, ticks: int) -> tuple[Telemetry, list[set[str]]]:
    """The same world without the fault: same template, overrides and seed."""
    example = next(e.example for e in CATALOGUE.values()
                   if e.example.template == template and json.dumps(e.example.overrides, sort_keys=True) == overrides)
    telemetry = Telemetry(Engine(example.scenario(), worlds=1, seed=SEED))
    return telemetry, watch(telemetry, ticks)


def observed(name: str) -> tuple[Telemetry, list[set[str]], Telemetry, list[set[str]], float]:
    example = CATALOGUE[name].example
    onset, ticks = ticks_for(name)
    telemetry = Telemetry(Injector(Engine(example.scenario(), worlds=1, seed=SEED), faults_of(name)))
    firing = watch(telemetry, ticks)
    base, base_firing = baseline(example.template, json.dumps(example.overrides, sort_keys=True), ticks)
    return telemetry, firing, base, base_firing, onset


def _shape(message: str) -> str:
    """A log message with its numbers, addresses and ids blanked, so that two lines of one kind compare equal."""
    return re.sub(r"[0-9a-f]{8,}|\d+(\.\d+)?", "#", message.splitlines()[0] if message else "")


def revealed(telemetry: Telemetry, firing: list[set[str]], base: Telemetry, base_firing: list[set[str]],
             onset: float) -> list[str]:
    """What an on-call engineer would see that the same world without the fault does not show."""
    start = telemetry.engine.scenario.traffic.start
    after = int(onset // telemetry.engine.dt)
    signals = []
    new_alerts = set().union(*firing[after:]) - set().union(*base_firing)
    if new_alerts:
        names = {a.labels["alertname"] for a in telemetry.evaluator.instances if a.fingerprint in new_alerts}
        signals.append(f"alerts {sorted(names)}")
    window = dict(start=start + onset, end=telemetry.now, limit=3000)
    lines = telemetry.logs(0, query='{level=~"ERROR|WARN"}', **window)
    base_shapes = {_shape(line.message) for line in base.logs(0, query='{level=~"ERROR|WARN"}', **window)}
    new_lines = sorted({_shape(line.message) for line in lines} - base_shapes)
    if new_lines:
        signals.append(f"log lines {new_lines[:3]}")
    errors = len(telemetry.traces(0, error=True, limit=200, start=start + onset, end=telemetry.now))
    base_errors = len(base.traces(0, error=True, limit=200, start=start + onset, end=telemetry.now))
    if errors > 2 * base_errors + 2:
        signals.append(f"error traces {errors} vs {base_errors}")
    return signals


# ids (snake_case catalogue names and kinds) in any case; class names as written (`Deadlock`, not the English word)
IDS = sorted({n for n in (*CATALOGUE, *(t.kind for t in FAULT_TYPES)) if "_" in n})
CLASSES = sorted({t.__name__ for t in FAULT_TYPES})


def seams(telemetry: Telemetry) -> list[str]:
    """Names of the fault machinery found anywhere in the telemetry an agent can read."""
    start = telemetry.engine.scenario.traffic.start
    texts = [json.dumps(telemetry.store.labels), json.dumps(telemetry.evaluator.alerts_json(0)),
             json.dumps(telemetry.evaluator.rules_json(0)), json.dumps([str(p) for p in telemetry.pages(0)])]
    texts += [c.describe() for c in telemetry.changes(0)]
    texts += [str(line) for line in telemetry.logs(0, start=start, end=telemetry.now, limit=5000)]
    for trace in telemetry.traces(0, start=start, end=telemetry.now, limit=100):
        texts.append(trace.render())
        texts += [json.dumps({"name": s.operation, "attributes": s.attributes, "events": s.events,
                              "status": s.status_message}, default=str) for s in trace.spans]
    found = set()
    blob = "\n".join(texts)
    words = [(w, re.IGNORECASE) for w in [*IDS, "inject", "injected", "injection", "chaos", "fault", "faults"]]
    for word, flags in words + [(c, 0) for c in CLASSES]:
        # whole words: "CrashLoopBackOff" is Kubernetes' own word, not the class CrashLoop; "default" is no "fault"
        if re.search(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", blob, flags=flags):
            found.add(word)
    return sorted(found)


@pytest.mark.parametrize("name", FAULTS)
def test_fault_shows_in_telemetry_and_names_nothing(name: str) -> None:
    telemetry, firing, base, base_firing, onset = observed(name)
    assert revealed(telemetry, firing, base, base_firing, onset), f"{name}: nothing in the telemetry shows it"
    assert seams(telemetry) == [], name


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_controls_raise_no_alert_and_name_nothing(name: str) -> None:
    telemetry, firing, base, base_firing, onset = observed(name)
    after = int(onset // telemetry.engine.dt)
    assert not (set().union(*firing[after:]) - set().union(*base_firing)), name
    assert seams(telemetry) == [], name
