"""The notifier: Alertmanager's grouping, group_wait / group_interval / repeat_interval, resolved notifications,
silences that only mute notifications, acknowledgements that stop repeats, and worlds that do not see each other."""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.observe.alerts import PAGER, TICKET, Notification, Notifier, Route, RuleEvaluator, load_rules
from opsworld.observe.store import Family, MetricStore

T0 = 1_795_000_000.0
STEP = 15.0
LABELS = [
    {"__name__": "errors", "service": "cart", "pod": "cart-0"},
    {"__name__": "errors", "service": "cart", "pod": "cart-1"},
    {"__name__": "errors", "service": "web", "pod": "web-0"},
    {"__name__": "disk_used_ratio", "service": "db", "pod": "db-0"},
]
CART0, CART1, WEB0, DISK = range(4)
RULES = """
groups:
  - name: app
    interval: 15s
    rules:
      - alert: HighErrors
        expr: errors > 0
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.pod }} is failing {{ $value }} requests/s"
      - alert: DiskFilling
        expr: disk_used_ratio > 0.9
        labels: {severity: ticket}
"""
# timings short enough to see repeats in a short run
FAST = Route(receiver=TICKET, group_by=["alertname", "service"], group_wait="30s", group_interval="5m",
             repeat_interval="20m", routes=[Route(receiver=PAGER, matchers=['severity="page"'])])


class Run:
    """Three worlds scraped every 15 s; rules evaluated and the notifier updated every tick."""

    def __init__(self, route: Route | None = FAST, worlds: int = 3) -> None:
        families = [Family("errors", "gauge", "Errors/s."), Family("disk_used_ratio", "gauge", "Disk used.")]
        self.store = MetricStore(LABELS, families, worlds)
        self.ev = RuleEvaluator(load_rules(RULES), self.store)
        self.nt = Notifier(route)
        self.values = np.zeros((worlds, len(LABELS)))
        self.t = T0 - STEP

    def set(self, series: int, value: float, worlds: list[int] | slice = slice(None)) -> "Run":
        self.values[worlds, series] = value
        return self

    def until(self, rel: float) -> "Run":
        while self.t < T0 + rel - 1e-9:
            self.t += STEP
            self.store.append(self.t, self.values)
            self.ev.evaluate(self.t)
            self.nt.update(self.t, self.ev)
        return self

    def sent(self, world: int) -> list[tuple[float, str, str, list[str]]]:
        """(time after T0, receiver, status, [pod:status]) of each notification."""
        return [(n.time - T0, n.receiver, n.status, [f"{a.labels['pod']}:{a.status}" for a in n.alerts])
                for n in self.nt.notifications(world)]


def test_alerts_with_the_same_group_labels_make_one_notification_after_group_wait() -> None:
    run = Run().set(CART0, 2.0, [0]).set(CART1, 3.0, [0])
    run.until(15)
    assert run.nt.notifications(0) == []                     # group_wait: 30 s
    run.until(30)
    [page] = run.nt.pages(0)
    assert isinstance(page, Notification)
    assert (page.time, page.receiver, page.status) == (T0 + 30, PAGER, "firing")
    assert page.group_labels == {"alertname": "HighErrors", "service": "cart"}
    assert sorted(a.labels["pod"] for a in page.alerts) == ["cart-0", "cart-1"]
    assert {a.annotations["summary"] for a in page.alerts} == {"cart-0 is failing 2 requests/s",
                                                              "cart-1 is failing 3 requests/s"}
    assert {a.starts_at for a in page.alerts} == {T0} and {a.ends_at for a in page.alerts} == {None}
    assert page.group_key == '{}/{severity="page"}:{alertname="HighErrors", service="cart"}'
    run.until(300)
    assert len(run.nt.notifications(0)) == 1                  # nothing new: no repeat before repeat_interval


def test_groups_split_by_service_and_receivers_by_severity() -> None:
    run = Run().set(CART0, 1.0).set(WEB0, 1.0).set(DISK, 0.95)
    run.until(30)
    for w in range(3):
        groups = sorted((n.receiver, n.group_labels["alertname"], n.group_labels["service"])
                        for n in run.nt.notifications(w))
        assert groups == [(PAGER, "HighErrors", "cart"), (PAGER, "HighErrors", "web"), (TICKET, "DiskFilling", "db")]
        assert len(run.nt.pages(w)) == 2


def test_a_new_alert_in_a_notified_group_waits_for_group_interval() -> None:
    run = Run().set(CART0, 1.0, [1])
    run.until(60)
    run.set(CART1, 1.0, [1]).until(600)
    assert run.sent(1) == [(30.0, PAGER, "firing", ["cart-0:firing"]),
                           (330.0, PAGER, "firing", ["cart-0:firing", "cart-1:firing"])]


def test_repeat_interval_and_resolved_notification() -> None:
    run = Run().set(CART0, 1.0, [2])
    run.until(1300)
    # flushes every 5 min after the first; the repeat is due 20 min after the first send
    assert [t for t, *_ in run.sent(2)] == [30.0, 1230.0]
    run.set(CART0, 0.0, [2]).until(1600)
    last = run.nt.notifications(2)[-1]
    assert (last.time, last.status) == (T0 + 1530, "resolved")
    [alert] = last.alerts
    assert (alert.status, alert.ends_at, alert.starts_at) == ("resolved", T0 + 1320, T0)
    run.until(4000)
    assert len(run.nt.notifications(2)) == 3                 # the resolution is sent once


def test_default_route_timings() -> None:
    run = Run(route=None).set(CART0, 1.0, [0])
    run.until(29 * 60)
    assert [t for t, *_ in run.sent(0)] == [30.0]            # repeat_interval 4h
    default = run.nt.route
    assert (default.group_by, default.group_wait, default.group_interval, default.repeat_interval) == (
        ["alertname", "service"], 30.0, 300.0, 4 * 3600.0)


def test_silence_mutes_the_notification_and_nothing_else() -> None:
    run = Run().set(CART0, 1.0).set(WEB0, 1.0)
    sid = run.nt.silence([("service", "=", "cart"), ("alertname", "=~", "High.*")], T0, T0 + 3600, "alice",
                         "deploying a fix", worlds=[1])
    run.until(400)
    # world 1: the web page only; worlds 0 and 2 get both
    assert [n.group_labels["service"] for n in run.nt.pages(1)] == ["web"]
    assert sorted(n.group_labels["service"] for n in run.nt.pages(0)) == ["cart", "web"]
    # the evaluator still fires the silenced alert and lists it
    cart0 = next(a for a, i in enumerate(run.ev.instances) if i.labels.get("pod") == "cart-0")
    assert run.ev.firing()[1, cart0]
    assert any(a.labels.get("pod") == "cart-0" and a.state == "firing" for a in run.ev.alerts(1))
    listed = [a for a in run.ev.alerts_json(1)["data"]["alerts"] if a["labels"].get("pod") == "cart-0"]
    assert [a["state"] for a in listed] == ["firing"]
    # the notifier's own view marks it suppressed, by that silence, in world 1 only
    view = {a["labels"]["pod"]: a["status"] for a in run.nt.alerts_json(1)}
    assert view["cart-0"] == {"state": "suppressed", "silencedBy": [sid], "inhibitedBy": [], "mutedBy": []}
    assert view["web-0"]["state"] == "active"
    assert {a["status"]["state"] for a in run.nt.alerts_json(0)} == {"active"}
    [silence] = run.nt.silences(1)
    assert (silence.id, silence.state(run.nt.now), silence.created_by) == (sid, "active", "alice")
    assert run.nt.silences(0) == []
    # expiring it lets the page through at the next group flush
    run.nt.expire(sid)
    assert run.nt.silences(1)[0].state(run.nt.now) == "expired"
    run.until(700)
    assert [(n.time - T0, n.group_labels["service"]) for n in run.nt.pages(1)] == [(30.0, "web"), (630.0, "cart")]
    with pytest.raises(ValueError, match="already expired"):
        run.nt.expire(sid)


def test_a_silence_that_ends_lets_the_page_through() -> None:
    run = Run().set(CART0, 1.0, [0])
    run.nt.silence([("pod", "=", "cart-0")], T0, T0 + 200, "bob", "maintenance")
    run.until(700)
    assert [(t, status) for t, _, status, _ in run.sent(0)] == [(330.0, "firing")]


def test_bad_silences_are_refused() -> None:
    nt = Notifier()
    for matchers, words in (([], "at least one matcher"), ([("pod", "=~", ".*")], "empty string"),
                            ([("pod", "~", "x")], "unknown matcher op"), ([("pod", "=~", "(")], "bad regex")):
        with pytest.raises(ValueError, match=words):
            nt.silence(matchers, T0, T0 + 60, "me", "")
    with pytest.raises(ValueError, match="before it starts"):
        nt.silence([("pod", "=", "x")], T0, T0, "me", "")
    run = Run()
    run.until(0)
    with pytest.raises(IndexError):
        run.nt.silence([("pod", "=", "x")], T0, T0 + 60, "me", "", worlds=[5])
    with pytest.raises(KeyError):
        run.nt.expire("no-such-id")


def test_acknowledge_stops_repeats_in_that_world_only() -> None:
    run = Run().set(CART0, 1.0, [0, 1])
    run.until(60)
    [page] = run.nt.pages(0)
    assert run.nt.acknowledge(page.group_key, 0) == 1
    assert run.nt.acknowledged(0) == [page.alerts[0].fingerprint]
    run.until(2500)
    assert [t for t, *_ in run.sent(0)] == [30.0]             # acknowledged: no repeats
    assert [t for t, *_ in run.sent(1)] == [30.0, 1230.0, 2430.0]
    # a new alert in the acknowledged group still pages
    run.set(CART1, 1.0, [0]).until(2800)
    assert run.sent(0)[-1][3] == ["cart-0:firing", "cart-1:firing"]
    # acknowledging by fingerprint; the acknowledgement lapses when the alert resolves
    fp = next(a.fingerprint for a in run.nt.pages(1)[0].alerts)
    assert run.nt.acknowledge(fp, 1) == 1
    run.set(CART0, 0.0, [1]).until(2900)
    assert run.nt.acknowledged(1) == []
    with pytest.raises(KeyError):
        run.nt.acknowledge("0123456789abcdef", 1)


def test_worlds_are_independent() -> None:
    run = Run().set(CART0, 1.0, [0]).set(WEB0, 1.0, [2])
    run.until(100)
    assert [n.group_labels["service"] for n in run.nt.pages(0)] == ["cart"]
    assert run.nt.pages(1) == []
    assert [n.group_labels["service"] for n in run.nt.pages(2)] == ["web"]
    # identical alerts have identical fingerprints in every world
    fp0 = run.nt.pages(0)[0].alerts[0].fingerprint
    run.set(CART0, 1.0, [1]).until(200)
    assert run.nt.pages(1)[0].alerts[0].fingerprint == fp0


def test_nothing_changes_nothing_is_touched() -> None:
    """The common tick: no alert starts or stops and no timer is due; update touches no world."""
    run = Run().set(CART0, 1.0, [0])
    run.until(30)
    before = [list(run.nt.notifications(w)) for w in range(3)]
    flushes = []
    original = run.nt._flush
    run.nt._flush = lambda *args: flushes.append(args) or original(*args)   # type: ignore[method-assign]
    run.until(300 - STEP)
    assert flushes == [] and [run.nt.notifications(w) for w in range(3)] == before
    run.until(330)
    assert [(b, g) for b, g, *_ in flushes] == [(0, 0)]
