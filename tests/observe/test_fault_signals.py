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
from opsworld.observe.logs import query_logs
from opsworld.observe.telemetry import Telemetry
from opsworld.observe.traces import query_traces

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


# The panels of a team's RED and USE dashboards: what an engineer looks at beside the alerts. A panel reveals a
# fault when one of its series departs from the same world's without it (relative change, and an absolute floor).
DASHBOARDS = {
    "p99 latency": ("histogram_quantile(0.99, sum by (service, le) "
                    "(rate(http_server_request_duration_seconds_bucket[5m])))", 0.5, 0.005),
    "error ratio": ('sum by (service) (rate(http_server_requests_total{code=~"5.."}[5m])) / '
                    "sum by (service) (rate(http_server_requests_total[5m]))", 0.0, 0.01),
    "call latency": ("sum by (service, target) (rate(http_client_request_duration_seconds_sum[5m])) / "
                     "sum by (service, target) (rate(http_client_request_duration_seconds_count[5m]))", 0.5, 0.005),
    "CPU": ("sum by (container) (rate(container_cpu_usage_seconds_total[5m]))", 0.5, 0.05),
    "replicas available": ("sum by (deployment) (kube_deployment_status_replicas_available)", 0.0, 0.5),
    "GPU links": ("sum by (Hostname) (rate(DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL[5m]))", 0.5, 1e6),
}


def moved_panels(telemetry: Telemetry, base: Telemetry) -> list[str]:
    out = []
    for panel, (query, relative, floor) in DASHBOARDS.items():
        ours, theirs = telemetry.query(query), base.query(query)
        before = {tuple(sorted(ls.items())): theirs.values[0, i] for i, ls in enumerate(theirs.labels)}
        for i, labels in enumerate(ours.labels):
            now, was = ours.values[0, i], before.get(tuple(sorted(labels.items())), np.nan)
            if np.isnan(now) or np.isnan(was):
                continue
            if abs(now - was) > max(relative * abs(was), floor):
                out.append(f"{panel} {dict(labels)}: {was:.4g} -> {now:.4g}")
    return out


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
    if not telemetry.reachable(0):        # the tools themselves go dark: every query fails, as in 2021
        return signals + ["the monitoring cannot be reached"]
    signals += moved_panels(telemetry, base)
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
# whole words only: "CrashLoopBackOff" is Kubernetes' own word, not the class CrashLoop; "default" is no "fault"
FORBIDDEN = re.compile(
    r"(?<![A-Za-z0-9_])(?:(?i:" + "|".join(map(re.escape, [*IDS, "inject", "injected", "injection", "chaos", "fault",
                                                          "faults"])) + ")|"
    + "|".join(map(re.escape, CLASSES)) + r")(?![A-Za-z0-9_])")


def seams(telemetry: Telemetry) -> list[str]:
    """Names of the fault machinery found anywhere in the telemetry an agent can read."""
    start = telemetry.engine.scenario.traffic.start
    texts = [json.dumps(telemetry.store.labels), json.dumps(telemetry.evaluator.alerts_json(0)),
             json.dumps(telemetry.evaluator.rules_json(0)), json.dumps([str(p) for p in telemetry.pages(0)])]
    # read past the tools (which go dark when no route is left): everything the sensors could ever show
    rec = telemetry.recording
    texts += [c.describe() for c in telemetry.engine.changes.events(0)]
    texts += [str(line) for line in query_logs(rec, 0, start=start, end=telemetry.now, limit=5000)]
    for trace in query_traces(rec, 0, start=start, end=telemetry.now, limit=100):
        texts.append(trace.render())
        texts += [json.dumps({"name": s.operation, "attributes": s.attributes, "events": s.events,
                              "status": s.status_message}, default=str) for s in trace.spans]
    blob = "\n".join(texts)
    return sorted({m.group(0) for m in FORBIDDEN.finditer(blob)})


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
    assert moved_panels(telemetry, base) == [], name
    assert seams(telemetry) == [], name
