"""Alerting rules generated from a scenario: promtool accepts them for every template's scenario and for a system
written from scratch; they select only series the sensors emit; the burn windows scale with the episode; a scenario
without a hand-written file runs under them; on the same episodes they page whenever the hand-written rules page
(every catalogue fault on its template); and the on-call engineer of the system written from scratch is paged."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import yaml

from opsworld.engine import Engine
from opsworld.faults import CATALOGUE, FAULT_TYPES, Fault
from opsworld.faults.injector import Injector
from opsworld.observe.alerts import PAGER, Notifier, RuleEvaluator, RuleFile, load_rules
from opsworld.observe.alerts.generate import (BURNS, burn_windows, generate_rules, rules_for_scenario,
                                              rules_yaml)
from opsworld.observe.metrics import MetricSensor
from opsworld.observe.promql import parse
from opsworld.observe.promql.nodes import Node, Selector, convert
from opsworld.observe.telemetry import Telemetry
from opsworld.spec import Scenario, load_scenario, templates
from opsworld.spec.generate import TopologyGenerator

TEMPLATES = ["hotel-reservation", "llm-inference", "online-shop", "social-network"]
EPISODE = "45m"          # simulated per episode: the faults start at 10m (02:00 for the certificate, 15m in)
SEED = 3
FASTER = {"memory_creep": {"page_after": "15m"}}     # the 4-hour creep, sped up (as test_fault_signals does)
CONTROLS = {"no_fault", "benign_deploy", "benign_config"}

# A system written from scratch, no template's: a bookshop of 13 components over two zones, with a datastore read
# through replicas, a cache in front of it, a queue to a consumer and two certificates.
SCRATCH = """
name: bookshop
description: An online bookshop, written for the tests.
duration: 45m
tick: 10s
nodes:
  - {name: eu-a-1, zone: eu-west-a, cpu: 8, memory: 32Gi}
  - {name: eu-a-2, zone: eu-west-a, cpu: 8, memory: 32Gi}
  - {name: eu-b-1, zone: eu-west-b, cpu: 8, memory: 32Gi}
  - {name: eu-b-2, zone: eu-west-b, cpu: 8, memory: 32Gi}
components:
  storefront:
    replicas: 3
    concurrency: 64
    service_time: {mean: 3ms, cv: 0.8}
    cpu: "1"
    memory: 512Mi
    health_check: {interval: 10s, timeout: 1s, unhealthy_threshold: 3}
  accounts:
    replicas: 2
    concurrency: 32
    service_time: {mean: 2ms, cv: 0.7}
    cpu: 500m
    dependencies:
      - {target: accounts-db, calls: 1, timeout: 200ms, retries: 1, backoff: 20ms}
  accounts-db:
    kind: datastore
    replicas: 1
    concurrency: 64
    service_time: {mean: 1ms, cv: 0.8}
    cpu: "1"
    memory: 2Gi
    pool_size: 8
    max_connections: 200
  catalog:
    replicas: 2
    concurrency: 64
    service_time: {mean: 2ms, cv: 0.8}
    cpu: 500m
    dependencies:
      - {target: catalog-cache, calls: 2, timeout: 100ms, retries: 1, backoff: 10ms}
  catalog-cache:
    kind: cache
    fronts: catalog-db
    hit_ratio: 85%
    replicas: 1
    concurrency: 128
    service_time: {mean: 300us, cv: 0.6}
    cpu: 500m
    memory: 1Gi
  catalog-db:
    kind: datastore
    replicas: 1
    read_replicas: 2
    concurrency: 64
    service_time: {mean: 2ms, cv: 0.8}
    cpu: "2"
    memory: 4Gi
    disk: 50Gi
    pool_size: 10
    max_connections: 300
  orders:
    replicas: 2
    concurrency: 32
    service_time: {mean: 4ms, cv: 0.9}
    cpu: 500m
    dependencies:
      - {target: payments, calls: 1, timeout: 1s, retries: 0}
      - {target: orders-db, calls: 2, timeout: 300ms, retries: 1, backoff: 50ms}
      - {target: order-events, calls: 1, timeout: 200ms, retries: 2, backoff: 50ms}
  payments:
    replicas: 2
    concurrency: 32
    service_time: {mean: 6ms, cv: 0.8}
    cpu: 500m
  orders-db:
    kind: datastore
    replicas: 1
    concurrency: 64
    service_time: {mean: 3ms, cv: 0.8}
    cpu: "1"
    memory: 2Gi
    pool_size: 8
    max_connections: 200
  order-events:
    kind: queue
    consumer: shipping
    capacity: 50000
    replicas: 1
    concurrency: 128
    service_time: {mean: 1ms, cv: 0.6}
    cpu: 500m
    memory: 1Gi
  shipping:
    replicas: 1
    concurrency: 16
    service_time: {mean: 5ms, cv: 1.0}
    cpu: 500m
    dependencies:
      - {target: orders-db, calls: 1, timeout: 300ms, retries: 1, backoff: 50ms}
certificates:
  - {name: shop-tls, component: storefront, not_after: "2027-06-01T00:00:00Z"}
  - {name: payments-mtls, component: payments, not_after: "2027-03-01T00:00:00Z"}
traffic:
  base_rate: 60/s
  start: "2026-12-01T09:00:00Z"
  diurnal: {amplitude: 0.2, peak: "13:00"}
  noise: 0.05
  endpoints:
    - name: GET /books/{id}
      service: storefront
      share: 0.7
      timeout: 5s
      slo: {availability: 99.9%, latency: 250ms, percentile: 0.99}
      calls:
        - {target: catalog, calls: 1, timeout: 300ms, retries: 1, backoff: 20ms}
        - {target: accounts, calls: 1, timeout: 300ms, retries: 1, backoff: 20ms}
    - name: POST /orders
      service: storefront
      share: 0.1
      timeout: 10s
      slo: {availability: 99.5%, latency: 1s, percentile: 0.99}
      calls:
        - {target: accounts, calls: 1, timeout: 300ms, retries: 1, backoff: 20ms}
        - {target: orders, calls: 1, timeout: 2s, retries: 0}
    - name: GET /account
      service: storefront
      share: 0.2
      timeout: 5s
      slo: {availability: 99.9%, latency: 300ms, percentile: 0.95}
      calls:
        - {target: accounts, calls: 1, timeout: 300ms, retries: 1, backoff: 20ms}
"""


def scratch() -> Scenario:
    return load_scenario(yaml.safe_load(SCRATCH))


MY_SYSTEM = Path(__file__).parents[1] / "data" / "my-system.yaml"      # the repository's own non-template example


def scenario_named(name: str) -> Scenario:
    """A template's scenario, the scratch system, the repository's `my-system`, or a topology drawn from a seed
    (`drawn-<seed>`)."""
    if name == "scratch":
        return scratch()
    if name == "my-system":
        return load_scenario(MY_SYSTEM)
    if name.startswith("drawn-"):
        return TopologyGenerator(services=(5, 40)).draw(int(name.split("-")[1]))
    return load_scenario(name)


SCENARIOS = [*TEMPLATES, "scratch", "my-system", "drawn-1", "drawn-2"]


def test_scratch_is_what_the_brief_needs() -> None:
    sc = scratch()
    kinds = [c.kind for c in sc.components.values()]
    assert sc.name not in templates() and len(sc.components) >= 8
    assert {"datastore", "cache", "queue"} <= set(kinds)
    assert any(c.kind == "datastore" and c.read_replicas > 0 for c in sc.components.values())
    assert len(sc.zones) == 2 and sc.certificates


# ---- the rule files themselves ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCENARIOS)
def test_generated_rules_pass_promtool(tmp_path: Path, name: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (the Makefile installs it from Debian's `prometheus` package)")
    rules = generate_rules(scenario_named(name))
    path = tmp_path / "rules.yaml"
    path.write_text(rules_yaml(rules), encoding="utf-8")
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules.alert_names)} rules found" in done.stdout


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_yaml_loads_back_as_the_same_rules(name: str) -> None:
    rules = generate_rules(scenario_named(name))
    again = load_rules(rules_yaml(rules))
    assert again.model_dump() == rules.model_dump()


def _selectors(node: Node) -> list[Selector]:
    if isinstance(node, Selector):
        return [node]
    out = []
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, Node):
                out += _selectors(child)
    return out


def _matches(matchers: tuple[tuple[str, str, str], ...], labels: dict[str, str]) -> bool:
    for name, op, value in matchers:
        got = labels.get(name, "")
        hit = got == value if op in ("=", "!=") else re.fullmatch(value, got) is not None
        if hit != (op in ("=", "=~")):
            return False
    return True


@pytest.mark.parametrize("name", SCENARIOS)
def test_generated_rules_select_only_series_the_sensors_emit(name: str) -> None:
    """Every selector of every rule selects at least one series of this system's catalogue: no metric name the model
    does not emit, no label value it does not write."""
    scenario = scenario_named(name)
    catalogue = MetricSensor(Engine(scenario, worlds=1, seed=0)).labels
    emitted = {lab["__name__"] for lab in catalogue}
    for group in generate_rules(scenario).groups:
        for rule in group.rules:
            for sel in _selectors(convert(parse(rule.expr))):
                names = [v for n, op, v in sel.matchers if n == "__name__"]
                assert names and names[0] in emitted, (rule.alert, names)
                assert any(_matches(sel.matchers, lab) for lab in catalogue), (name, rule.alert, sel.matchers)


# the words of the fault machinery, which no rule an agent reads may contain (as test_alert_rules checks by hand)
WORDS = {e.lower() for e in CATALOGUE} | {t.kind for t in FAULT_TYPES} | {t.__name__.lower() for t in FAULT_TYPES}
FORBIDDEN = re.compile(r"fault|inject|chaos|scenario|experiment", re.IGNORECASE)


@pytest.mark.parametrize("name", SCENARIOS)
def test_generated_rules_keep_the_house_style(name: str) -> None:
    squash = lambda text: re.sub(r"[^a-z0-9]", "", text.lower())   # noqa: E731
    rules = generate_rules(scenario_named(name))
    assert rules.source == f"generated/{scenario_named(name).name}.yaml"
    for group in rules.groups:
        for rule in group.rules:
            assert rule.labels["severity"] in ("page", "ticket"), rule.alert
            assert {"summary", "description"} <= set(rule.annotations), rule.alert
            assert "{{" in rule.annotations["summary"], rule.alert       # templated values
            text = " ".join([rule.alert, group.name, *rule.labels.values(), *rule.annotations.values()])
            assert not FORBIDDEN.search(text), (rule.alert, FORBIDDEN.search(text))
            found = {w for w in WORDS if w in text.lower() or squash(w) in squash(text)}
            assert not found, (rule.alert, found)


def _groups(rules: RuleFile) -> set[str]:
    return {g.name for g in rules.groups}


def test_parts_get_rules_only_where_the_system_has_them() -> None:
    always = {"slo", "services", "kubernetes", "nodes"}
    assert _groups(generate_rules(load_scenario("online-shop"))) == always | {"datastores", "certificates"}
    assert _groups(generate_rules(load_scenario("hotel-reservation"))) == always | {"datastores", "caches",
                                                                                   "certificates"}
    assert _groups(generate_rules(load_scenario("llm-inference"))) == always | {"datastores", "queues", "gpus",
                                                                               "certificates"}
    own = generate_rules(scratch())
    assert _groups(own) == always | {"datastores", "caches", "queues", "certificates"}
    names = set(own.alert_names)
    assert {"DatastoreReplicaStale", "CacheHitRatioLow", "ConsumerLagCritical", "QueueNearlyFull",
            "CertificateExpired", "ZoneNodesNotReady", "ConnectionPoolRequestsWaiting"} <= names
    # a bare system: one zone, no datastore, cache, queue or certificate
    bare = yaml.safe_load(SCRATCH)
    bare["nodes"] = [n for n in bare["nodes"] if n["zone"] == "eu-west-a"]
    bare["components"] = {k: v for k, v in bare["components"].items() if k in ("storefront", "payments")}
    bare["certificates"] = []
    for ep in bare["traffic"]["endpoints"]:
        ep["calls"] = [{"target": "payments", "timeout": "1s"}]
    rules = generate_rules(load_scenario(bare))
    assert _groups(rules) == always
    assert not {"ZoneNodesNotReady", "ConnectionPoolRequestsWaiting"} & set(rules.alert_names)


def test_slo_rules_follow_each_endpoint_objective() -> None:
    rules = [r for g in generate_rules(scratch()).groups for r in g.rules]
    fast = {r.labels["objective"]: r for r in rules if r.alert == "ErrorBudgetBurnFast"}
    assert set(fast) == {"99.9%", "99.5%"}
    assert "(14.4 * 0.005)" in fast["99.5%"].expr and 'endpoint="POST /orders"' in fast["99.5%"].expr
    assert "(14.4 * 0.001)" in fast["99.9%"].expr and 'endpoint!="POST /orders"' in fast["99.9%"].expr
    # the 45-minute episode's windows (see burn_windows)
    assert "[8m]" in fast["99.9%"].expr and "[1m]" in fast["99.9%"].expr and fast["99.9%"].for_ == 30.0
    assert all(r.labels["service"] == "storefront" for r in fast.values())
    latency = {r.labels["objective"]: r for r in rules if r.alert == "LatencyObjectiveBreached"}
    assert set(latency) == {"p99 250ms", "p99 1s", "p95 300ms"}
    assert latency["p95 300ms"].expr.strip().endswith("> 0.3") and "0.95," in latency["p95 300ms"].expr
    assert all(r.labels["severity"] == "page" for r in latency.values())
    # past the histogram's largest finite bucket the share of slow requests is read instead of a quantile
    llm = [r for g in generate_rules(load_scenario("llm-inference")).groups for r in g.rules
           if r.alert == "LatencyObjectiveBreached"]
    assert len(llm) == 1 and 'le="10.0"' in llm[0].expr and llm[0].expr.strip().endswith("> 0.03")


def test_burn_windows_are_the_standard_ones_for_a_long_episode() -> None:
    got = {w.burn.alert: (w.long, w.short, w.hold) for w in burn_windows(30 * 86400.0)}
    assert got == {"ErrorBudgetBurnFast": (3600.0, 300.0, 120.0),
                   "ErrorBudgetBurnSustained": (6 * 3600.0, 1800.0, 900.0),
                   "ErrorBudgetBurnElevated": (86400.0, 7200.0, 3600.0),
                   "ErrorBudgetBurnSlow": (3 * 86400.0, 6 * 3600.0, 3 * 3600.0)}
    assert [(b.severity, b.factor) for b in BURNS] == [("page", 14.4), ("page", 6.0), ("ticket", 3.0),
                                                       ("ticket", 1.0)]


@pytest.mark.parametrize("duration", [300.0, 1800.0, 2700.0, 3600.0, 4 * 3600.0, 6 * 3600.0, 86400.0])
def test_burn_windows_scale_down_to_fit_the_episode(duration: float) -> None:
    windows = burn_windows(duration, tick=10.0)
    standard = burn_windows(30 * 86400.0)
    for w, full in zip(windows, standard):
        assert w.long <= max(duration, 60.0) and w.long <= full.long and w.short <= full.short
        assert 60.0 <= w.short <= w.long and w.long % 60 == 0 and w.short % 60 == 0
        assert 30.0 <= w.hold <= max(30.0, w.short / 2)
    fast, sustained = windows[0], windows[1]
    # the fast page reacts sooner than the sustained one, which reads as much of the episode as it can
    assert fast.long < sustained.long or duration >= 6 * 3600.0
    assert sustained.long == min(duration, 6 * 3600.0)
    assert burn_windows(2700.0, tick=60.0)[0].short == 240.0      # 4 scrapes of a minute


# ---- which rules a scenario runs under -------------------------------------------------------------------------------
def test_templates_keep_their_hand_written_rules_and_other_scenarios_get_generated_ones() -> None:
    assert rules_for_scenario(load_scenario("online-shop")).source == "rules/online-shop.yaml"
    assert Telemetry(Engine("hotel-reservation", worlds=1, seed=0)).rules.source == "rules/hotel-reservation.yaml"
    telemetry = Telemetry(Engine(scratch(), worlds=1, seed=0))
    assert telemetry.rules is not None and telemetry.rules.source == "generated/bookshop.yaml"
    assert telemetry.notifier is not None
    # a template copied under a name of one's own is a system of one's own
    renamed = load_scenario("online-shop", {"name": "my-shop"})
    assert Telemetry(Engine(renamed, worlds=1, seed=0)).rules.source == "generated/my-shop.yaml"
    assert Telemetry(Engine(scratch(), worlds=1, seed=0), rules=False).rules is None


# ---- (b) the same episodes under both rule sets ----------------------------------------------------------------------
class Outcome(NamedTuple):
    hand: frozenset[str]          # alert names paged after the fault's onset, hand-written rules
    generated: frozenset[str]     # the same under the generated rules


def faults_of(name: str) -> list[Fault]:
    entry = CATALOGUE[name]
    main, *beside = entry.example_faults()
    if name in FASTER:
        main = entry.make(target=entry.example.target, **{**entry.example.params, **FASTER[name]})
    return [main, *beside]


def paged(notifier: Notifier, world: int, after: float) -> frozenset[str]:
    """Alerts a page was sent for in one world from `after` (Unix seconds) on."""
    return frozenset(a.labels["alertname"] for n in notifier.pages(world) if n.receiver == PAGER and n.time >= after
                     for a in n.alerts if a.status == "firing" and a.labels.get("severity") == "page")


@pytest.fixture(scope="module")
def agreement() -> dict[str, Outcome]:
    """Every catalogue entry's example on its template, one world each, batched per template (and overrides): the
    hand-written rules run in the Telemetry, the generated ones beside them on the same store."""
    batches: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, entry in CATALOGUE.items():
        batches[(entry.example.template, json.dumps(entry.example.overrides, sort_keys=True))].append(name)
    out: dict[str, Outcome] = {}
    for (template, overrides), names in batches.items():
        scenario = load_scenario(template, {**json.loads(overrides), "duration": EPISODE})
        engine = Engine(scenario, worlds=len(names), seed=SEED)
        injector = Injector(engine)
        for world, name in enumerate(names):
            for fault in faults_of(name):
                injector.add(fault, [world])
        telemetry = Telemetry(injector, text=False)
        assert telemetry.rules is not None and telemetry.rules.source == f"rules/{template}.yaml"
        generated = RuleEvaluator(generate_rules(scenario), telemetry.store)
        notifier = Notifier()
        for _ in range(engine.ticks):
            telemetry.step()
            generated.evaluate(telemetry.now)
            notifier.update(telemetry.now, generated)
        assert telemetry.notifier is not None
        for world, name in enumerate(names):
            onset = scenario.traffic.start + faults_of(name)[0].onset_seconds(scenario)
            out[name] = Outcome(paged(telemetry.notifier, world, onset), paged(notifier, world, onset))
    return out


def _report(agreement: dict[str, Outcome]) -> str:
    both = sorted(n for n, o in agreement.items() if o.hand and o.generated)
    hand = sorted(n for n, o in agreement.items() if o.hand and not o.generated)
    generated = sorted(n for n, o in agreement.items() if o.generated and not o.hand)
    neither = sorted(n for n, o in agreement.items() if not o.hand and not o.generated)
    lines = [f"{len(agreement)} catalogue faults, {EPISODE} each: paged under both {len(both)}, only the hand-written "
             f"{len(hand)} {hand}, only the generated {len(generated)} {generated}, neither {len(neither)}"]
    lines += [f"  {n}: hand-written {sorted(agreement[n].hand)}, generated {sorted(agreement[n].generated)}"
              for n in hand + generated]
    return "\n".join(lines)


def test_generated_rules_page_whenever_the_hand_written_do(agreement: dict[str, Outcome]) -> None:
    report = _report(agreement)
    print("\n" + report)
    assert set(agreement) == set(CATALOGUE)
    missed = [n for n, o in agreement.items() if o.hand and not o.generated]
    assert not missed, report
    assert sum(bool(o.hand) for o in agreement.values()) >= len(agreement) // 2, report   # the measure measures


def test_controls_page_under_neither_rule_set(agreement: dict[str, Outcome]) -> None:
    for name in sorted(CONTROLS):
        assert agreement[name] == Outcome(frozenset(), frozenset()), (name, agreement[name])


# ---- (c) the system written from scratch -----------------------------------------------------------------------------
SCRATCH_FAULTS: dict[str, dict] = {          # catalogue entry -> its target (and parameters) on the scratch system
    "bad_deploy_errors": {"target": "catalog"},
    "queue_consumer_stall": {"target": "shipping"},
    "certificate_expiry": {"target": "payments-mtls", "onset": "09:10"},
    "zone_outage": {"target": "eu-west-b"},
}


class ScratchEpisode(NamedTuple):
    telemetry: Telemetry
    worlds: list[str | None]          # the catalogue entry each world runs (None: no fault)
    fired: list[set[str]]             # per world, every alert that fired at some point


@pytest.fixture(scope="module")
def scratch_episode() -> ScratchEpisode:
    """World 0 runs without a fault, each other world with one fault of SCRATCH_FAULTS, under the default rules."""
    worlds: list[str | None] = [None, *SCRATCH_FAULTS]
    engine = Engine(scratch(), worlds=len(worlds), seed=SEED)
    injector = Injector(engine)
    for world, name in enumerate(worlds):
        if name is not None:
            injector.add(CATALOGUE[name].make(**SCRATCH_FAULTS[name]), [world])
    telemetry = Telemetry(injector, text=False)
    assert telemetry.evaluator is not None
    fired: list[set[str]] = [set() for _ in worlds]
    for _ in range(engine.ticks):
        telemetry.step()
        for world, alert in zip(*np.nonzero(telemetry.evaluator.firing())):
            fired[world].add(telemetry.evaluator.instances[alert].labels["alertname"])
    return ScratchEpisode(telemetry, worlds, fired)


def test_the_scratch_on_call_engineer_is_paged_for_a_fault(scratch_episode: ScratchEpisode) -> None:
    telemetry, worlds, _ = scratch_episode
    assert telemetry.rules is not None and telemetry.rules.source == "generated/bookshop.yaml"
    assert telemetry.pages(0) == [], [str(p) for p in telemetry.pages(0)]           # no fault, no page
    for world, name in enumerate(worlds[1:], start=1):
        pages = [a for n in telemetry.pages(world) if n.receiver == PAGER for a in n.alerts]
        assert pages and all(a.labels["severity"] == "page" for a in pages), name
        assert all(a.annotations["summary"] and "{{" not in a.annotations["summary"] for a in pages), name


def test_the_scratch_parts_raise_their_own_alerts(scratch_episode: ScratchEpisode) -> None:
    fired = dict(zip(scratch_episode.worlds, scratch_episode.fired))
    assert fired[None] == set(), fired[None]
    assert {"ErrorBudgetBurnFast", "ServiceErrorRatioHigh"} <= fired["bad_deploy_errors"]
    assert {"ConsumerLagCritical", "ConsumerLagGrowing"} <= fired["queue_consumer_stall"]
    assert {"CertificateExpired", "BlackboxProbeFailed"} <= fired["certificate_expiry"]
    assert {"ZoneNodesNotReady", "KubeNodeNotReady"} <= fired["zone_outage"]
