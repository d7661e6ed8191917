"""The rule evaluator on a hand-built metric store of 3 worlds: Prometheus' pending -> firing -> resolved state
machine per world, labels and templated annotations, the API views, and rules that fail at evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.observe.alerts import RuleEvaluator, load_rules
from opsworld.observe.alerts.evaluator import FIRING, INACTIVE, PENDING, RESOLVED
from opsworld.observe.alerts.wire import rfc3339
from opsworld.observe.store import Family, MetricStore

T0 = 1_795_000_000.0
STEP = 15.0
LABELS = [
    {"__name__": "queue_depth", "service": "cart", "pod": "cart-0", "job": "cart"},
    {"__name__": "queue_depth", "service": "cart", "pod": "cart-1", "job": "cart"},
    {"__name__": "queue_depth", "service": "web", "pod": "web-0", "job": "web"},
]
CART0, CART1, WEB0 = 0, 1, 2
RULES = """
groups:
  - name: queues
    interval: 30s
    rules:
      - alert: QueueDeep
        expr: queue_depth > 10
        for: 1m
        labels:
          severity: ticket
          team: "{{ $labels.service }}-team"
        annotations:
          summary: "{{ $labels.pod }} has {{ $value }} queued"
          description: "{{ $labels.service }} queue at {{ $value | humanize }} (job {{ $labels.job }})"
      - alert: Broken
        expr: queue_depth[5m]
      - alert: QueueHuge
        expr: max by (service) (queue_depth) > 100
        labels:
          severity: page
"""


def depth(t: float) -> np.ndarray:
    """[3 worlds, 3 series]: world 0 has cart-0 deep from the start; world 1 is quiet; world 2 has cart-1 deep from
    30s to 150s and web-0 huge from 60s to 90s."""
    rel = t - T0
    values = np.ones((3, 3))
    values[0, CART0] = 50.0
    if 30 <= rel < 150:
        values[2, CART1] = 20.0
    if 60 <= rel < 90:
        values[2, WEB0] = 500.0
    return values


class Run:
    """A store scraped every 15 s and an evaluator called every tick, as the environment calls them."""

    def __init__(self, rules: str = RULES, values=depth, labels: list[dict[str, str]] = LABELS,
                 worlds: int = 3) -> None:
        self.store = MetricStore(labels, [Family("queue_depth", "gauge", "Queued jobs.")], worlds)
        self.ev = RuleEvaluator(load_rules(rules), self.store)
        self.values = values
        self.t = T0 - STEP

    def until(self, rel: float) -> RuleEvaluator:
        while self.t < T0 + rel - 1e-9:
            self.t += STEP
            self.store.append(self.t, self.values(self.t))
            self.ev.evaluate(self.t)
        return self.ev

    def instance(self, alertname: str, **labels: str) -> int:
        found = [a for a, inst in enumerate(self.ev.instances) if inst.labels["alertname"] == alertname
                 and all(inst.labels.get(k) == v for k, v in labels.items())]
        assert len(found) == 1, (alertname, labels, [i.labels for i in self.ev.instances])
        return found[0]


def test_pending_then_firing_after_for_in_the_worlds_where_the_condition_holds() -> None:
    run = Run()
    ev = run.until(0)
    [alert] = ev.alerts(0)
    assert (alert.name, alert.state, alert.active_at, alert.value) == ("QueueDeep", "pending", T0, 50.0)
    assert ev.alerts(1) == [] and ev.alerts(2) == []
    ev = run.until(30)
    assert [a.state for a in ev.alerts(0)] == ["pending"]
    [w2] = ev.alerts(2)
    assert (w2.state, w2.active_at, w2.labels["pod"]) == ("pending", T0 + 30, "cart-1")
    ev = run.until(60)
    [alert] = ev.alerts(0)
    assert (alert.state, alert.active_at, alert.fired_at, alert.value) == ("firing", T0, T0 + 60, 50.0)
    states = {(a.name, a.labels.get("pod", "")): a.state for a in ev.alerts(2)}
    assert states == {("QueueDeep", "cart-1"): "pending", ("QueueDeep", "web-0"): "pending",
                      ("QueueHuge", ""): "firing"}
    ev = run.until(90)
    states = {(a.name, a.labels.get("pod", "")): a.state for a in ev.alerts(2)}
    assert states[("QueueDeep", "cart-1")] == "firing"
    assert ev.alerts(1) == []


def test_labels_values_and_templated_annotations() -> None:
    ev = Run().until(60)
    [alert] = ev.alerts(0)
    assert alert.labels == {"alertname": "QueueDeep", "severity": "ticket", "team": "cart-team", "service": "cart",
                            "pod": "cart-0", "job": "cart"}
    assert alert.annotations == {"summary": "cart-0 has 50 queued", "description": "cart queue at 50 (job cart)"}
    run = Run()
    run.until(60)
    huge = [a for a in run.ev.alerts(2) if a.name == "QueueHuge"]
    # `for` 0 fires at once; the aggregation's labels replace the series'
    assert [(a.state, a.labels, a.value, a.fired_at) for a in huge] == [
        ("firing", {"alertname": "QueueHuge", "severity": "page", "service": "web"}, 500.0, T0 + 60)]


def test_resolved_when_the_condition_clears_and_forgotten_after_15_minutes() -> None:
    run = Run()
    run.until(150)
    a = run.instance("QueueDeep", pod="cart-1")
    huge = run.instance("QueueHuge", service="web")
    ev = run.ev
    assert ev.state[2, a] == RESOLVED and ev.resolved_at[2, a] == T0 + 150 and ev.fired_at[2, a] == T0 + 90
    assert ev.state[2, huge] == RESOLVED and ev.resolved_at[2, huge] == T0 + 90
    assert [x.name for x in ev.alerts(2)] == []                 # resolved alerts are not listed
    assert ev.alert(a, 2).state == "resolved"
    # other worlds were never affected
    assert ev.state[1, a] == INACTIVE and ev.state[0, a] == INACTIVE
    assert ev.state[0, run.instance("QueueDeep", pod="cart-0")] == FIRING
    run.until(150 + 15 * 60)
    assert ev.state[2, a] == INACTIVE and np.isnan(ev.resolved_at[2, a])


def test_firing_matrix_follows_the_instances() -> None:
    run = Run()
    ev = run.until(90)
    firing = ev.firing()
    assert firing.shape == (3, len(ev.instances)) and firing.dtype == bool
    cart0, cart1 = run.instance("QueueDeep", pod="cart-0"), run.instance("QueueDeep", pod="cart-1")
    assert firing[0].nonzero()[0].tolist() == [cart0]
    assert not firing[1].any()
    assert firing[2, cart1] and not firing[2, cart0]
    by_rule = ev.firing_by_rule()
    assert by_rule.shape == (3, 3) and by_rule[:, 0].tolist() == [True, False, True]
    assert ev.pending()[2].sum() == 0
    assert ev.state.dtype == np.int8 and set(np.unique(ev.state)) <= {INACTIVE, PENDING, FIRING, RESOLVED}


def test_groups_run_on_their_interval() -> None:
    run = Run()
    ev = run.until(45)
    assert ev.rules[0].last_evaluation == T0 + 30          # ticks at 15 s, the group every 30 s
    assert ev.rules_json(0)["data"]["groups"][0]["lastEvaluation"] == rfc3339(T0 + 30)
    ev = run.until(60)
    assert ev.rules[0].last_evaluation == T0 + 60


def test_runtime_error_marks_the_rule_unhealthy_and_the_others_still_run() -> None:
    ev = Run().until(60)
    rules = {r["name"]: r for r in ev.rules_json(0)["data"]["groups"][0]["rules"]}
    assert rules["Broken"]["health"] == "err"
    assert "range vector" in rules["Broken"]["lastError"]
    assert rules["QueueDeep"]["health"] == "ok" and "lastError" not in rules["QueueDeep"]
    assert rules["QueueDeep"]["state"] == "firing"
    assert ev.rules_json(1)["data"]["groups"][0]["rules"][0]["state"] == "inactive"


def test_duplicate_label_sets_after_rule_labels_are_an_error() -> None:
    rules = """
groups:
  - name: g
    rules:
      - alert: Collide
        expr: queue_depth{service="cart"} > 0
        labels: {pod: all}
"""
    ev = Run(rules).until(0)
    assert ev.rules[0].health == "err" and "same labelset" in ev.rules[0].last_error
    assert not ev.firing().any()


def test_keep_firing_for_and_scalar_results() -> None:
    rules = """
groups:
  - name: g
    interval: 15s
    rules:
      - alert: Sticky
        expr: queue_depth{pod="web-0"} > 100
        keep_firing_for: 1m
      - alert: Always
        expr: "1"
"""
    run = Run(rules)
    run.until(60)
    sticky = run.instance("Sticky")
    ev = run.ev
    assert ev.state[2, sticky] == FIRING
    run.until(120)                                  # cleared at 90 s, kept firing until 150 s
    assert ev.state[2, sticky] == FIRING and ev.alert(sticky, 2).keep_firing_since == T0 + 90
    [listed] = [a for a in ev.alerts_json(2)["data"]["alerts"] if a["labels"]["alertname"] == "Sticky"]
    assert listed["keepFiringSince"] == rfc3339(T0 + 90) and listed["state"] == "firing"
    run.until(150)
    assert ev.state[2, sticky] == RESOLVED and ev.resolved_at[2, sticky] == T0 + 150
    always = run.instance("Always")
    assert ev.instances[always].labels == {"alertname": "Always"}
    assert ev.firing()[:, always].all()


def test_alerts_json_and_rules_json_formats() -> None:
    ev = Run().until(60)
    body = ev.alerts_json(0)
    assert body["status"] == "success"
    [alert] = body["data"]["alerts"]
    assert alert == {"labels": {"alertname": "QueueDeep", "severity": "ticket", "team": "cart-team",
                                "service": "cart", "pod": "cart-0", "job": "cart"},
                     "annotations": {"summary": "cart-0 has 50 queued", "description": "cart queue at 50 (job cart)"},
                     "state": "firing", "activeAt": rfc3339(T0), "value": "5e+01"}
    group = ev.rules_json(0)["data"]["groups"][0]
    assert (group["name"], group["file"], group["interval"]) == ("queues", "<rules>", 30.0)
    deep = group["rules"][0]
    assert (deep["name"], deep["type"], deep["duration"], deep["query"]) == ("QueueDeep", "alerting", 60.0,
                                                                             "queue_depth > 10")
    assert deep["labels"] == {"severity": "ticket", "team": "{{ $labels.service }}-team"}
    assert [a["labels"]["pod"] for a in deep["alerts"]] == ["cart-0"]
    with pytest.raises(IndexError):
        ev.alerts(3)


def test_before_any_evaluation_rules_are_unknown() -> None:
    run = Run()
    group = run.ev.rules_json(0)["data"]["groups"][0]
    assert {r["health"] for r in group["rules"]} == {"unknown"}
    assert group["lastEvaluation"] == "0001-01-01T00:00:00Z"
    assert run.ev.firing().shape == (3, 0)


def test_batched_evaluation_equals_one_world_at_a_time() -> None:
    """Vectorised state transitions give each world exactly what evaluating it alone gives."""
    rng = np.random.default_rng(7)
    B, ticks = 6, 80
    series = rng.uniform(0, 30, size=(ticks, B, 3))
    series[rng.random((ticks, B, 3)) < 0.1] = np.nan           # missed scrapes
    rules = RULES.replace("interval: 30s", "interval: 15s")

    def values(t: float, b: int | None = None) -> np.ndarray:
        row = series[int(round((t - T0) / STEP))]
        return row if b is None else row[b:b + 1]

    batched = Run(rules, values, worlds=B)
    batched.until((ticks - 1) * STEP)
    for b in range(B):
        alone = Run(rules, lambda t, b=b: values(t, b), worlds=1)
        alone.until((ticks - 1) * STEP)
        got = {(a.name, tuple(sorted(a.labels.items()))): (a.state, a.active_at, a.value) for a in batched.ev.alerts(b)}
        want = {(a.name, tuple(sorted(a.labels.items()))): (a.state, a.active_at, a.value) for a in alone.ev.alerts(0)}
        assert got == want
        for i, inst in enumerate(alone.ev.instances):
            j = next(k for k, x in enumerate(batched.ev.instances) if x.labels == inst.labels)
            assert batched.ev.state[b, j] == alone.ev.state[0, i]
            np.testing.assert_array_equal(batched.ev.resolved_at[b, j], alone.ev.resolved_at[0, i])
