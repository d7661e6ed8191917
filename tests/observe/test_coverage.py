"""Monitoring as organisations have it (`observe.coverage`): cause alerts missing or mis-tuned, flapping background
noise, silences left from days before; symptom alerts always there; `Coverage()` changes nothing."""

from __future__ import annotations

import functools

import numpy as np
import pydantic
import pytest

from opsworld.act.system import ModelSystem
from opsworld.engine import Engine
from opsworld.faults.catalogue import entry
from opsworld.faults.injector import Injector
from opsworld.observe.alerts.generate import rules_yaml
from opsworld.observe.alerts.notifier import Notifier
from opsworld.observe.alerts.rules import load_rules, rules_for, templates
from opsworld.observe.coverage import (Coverage, alert_class, apply_silences, covered_rules, mistune_expr,
                                       stale_silences, thresholds)
from opsworld.observe.dashboard import ALERTS, Dashboard
from opsworld.observe.telemetry import Telemetry

NAMES = list(ALERTS)
CAUSES = np.array([alert_class(n) == "cause" for n in NAMES])
DISK_TICKS = 240      # the disk of the worked example fills in 15 minutes: full well within 40


def _disk_run(coverage: Coverage | None, fault: bool = True, worlds: int = 2, seed: int = 3,
              ticks: int = DISK_TICKS) -> tuple[np.ndarray, Dashboard]:
    """[T, B, S, A] the dashboard's firing alerts over the disk-filling example (or the same system, no fault)."""
    example = entry("disk_filling")
    engine = Engine(example.example.scenario(), worlds=worlds, seed=seed)
    injector = Injector(engine, example.example_faults() if fault else [])
    dashboard = Dashboard(engine, coverage=coverage)
    firing = []
    for _ in range(ticks):
        dashboard.update(injector.step())
        firing.append(dashboard.firing.copy())
    return np.array(firing), dashboard


def _fired(firing: np.ndarray, dashboard: Dashboard, world: int = 0) -> set[tuple[str, str]]:
    comps = dashboard.engine.topology.components
    return {(comps[s], NAMES[a]) for s, a in zip(*np.nonzero(firing[:, world].any(axis=0)))}


# ---- settings and classification ---------------------------------------------------------------------------------------
def test_coverage_settings_are_checked_and_default_is_off() -> None:
    assert Coverage().off and not Coverage(noisy=0.5).off
    with pytest.raises(pydantic.ValidationError):
        Coverage(missng=0.5)
    with pytest.raises(pydantic.ValidationError):
        Coverage(missing=1.5)
    with pytest.raises(pydantic.ValidationError):
        Coverage().missing = 0.3       # frozen


def test_symptoms_and_causes_are_told_apart() -> None:
    assert {n for n in NAMES if alert_class(n) == "symptom"} == {"HighErrorRate", "HighLatency", "SLOBurn"}
    for name in ("ErrorBudgetBurnFast", "LatencyObjectiveBreached", "FrontDoorDown", "BlackboxProbeFailed"):
        assert alert_class(name) == "symptom"
    for name in ("ContainerFilesystemFull", "CertificateExpired", "ContainerOOMKilled", "KubeNodeNotReady",
                 "ConnectionPoolRequestsWaiting", "TargetDown", "QueueNearlyFull"):
        assert alert_class(name) == "cause"
    assert alert_class("MyCheckout", {"slo": "availability"}) == "symptom"
    assert alert_class("ErrorBudgetBurnFast", {"alert_class": "cause"}) == "cause"


# ---- the default changes nothing ---------------------------------------------------------------------------------------
def test_default_coverage_leaves_the_dashboard_as_it_was() -> None:
    plain, _ = _disk_run(None)
    default, dash = _disk_run(Coverage())
    assert plain.any() and np.array_equal(plain, default)
    assert dash.coverage is None


def test_default_coverage_leaves_the_rules_and_silences_as_they_were() -> None:
    rules = rules_for("online-shop")
    assert covered_rules(rules, Coverage(), seed=1, world=0) is rules
    assert stale_silences(rules, Coverage(), 1, 0, 1.7e9) == []
    engine = Engine("online-shop", worlds=1, seed=1)
    telemetry = Telemetry(engine, text=False, coverage=Coverage())
    assert telemetry.rules == Telemetry(Engine("online-shop", worlds=1, seed=1), text=False).rules
    assert telemetry.notifier.silences(0) == []


# ---- missing cause alerts --------------------------------------------------------------------------------------------
def test_missing_cause_alerts_leave_the_symptoms_to_page_on_a_full_disk() -> None:
    plain, dash = _disk_run(None)
    assert ("shippingservice", "DiskNearlyFull") in _fired(plain, dash)
    firing, dash = _disk_run(Coverage(missing=1.0))
    assert not firing[..., CAUSES].any()                  # no disk, CPU, ... alert anywhere
    fired = _fired(firing, dash)
    assert ("frontend", "SLOBurn") in fired               # the users are hurt: the symptoms still fire
    assert ("shippingservice", "HighErrorRate") in fired
    # symptoms are exactly what they were
    assert np.array_equal(firing[..., ~CAUSES], plain[..., ~CAUSES])


def test_missing_cause_rules_are_removed_and_symptom_rules_kept() -> None:
    rules = rules_for("online-shop")
    covered = covered_rules(rules, Coverage(missing=1.0), seed=0, world=0)
    kept = [r for g in rules.groups for r in g.rules if alert_class(r.alert, r.labels) == "symptom"]
    assert [r for g in covered.groups for r in g.rules] == kept
    some = covered_rules(rules, Coverage(missing=0.5), seed=0, world=0)
    assert len(kept) < len(some.alert_names) < len(rules.alert_names)


def test_missing_cause_rules_on_a_full_disk_page_through_symptoms() -> None:
    example = entry("disk_filling")
    engine = Engine(example.example.scenario(), worlds=1, seed=3)
    telemetry = Telemetry(Injector(engine, example.example_faults()), text=False, coverage=Coverage(missing=1.0))
    telemetry.run(DISK_TICKS)
    fired = {telemetry.evaluator.instances[a].labels["alertname"]
             for a in np.flatnonzero(~np.isnan(telemetry.evaluator.fired_at[0]))}
    assert fired and all(alert_class(n) == "symptom" for n in fired)
    assert not any(n.startswith("ContainerFilesystem") for n in fired)
    pages = {a.labels["alertname"] for p in telemetry.pages(0) for a in p.alerts}
    assert pages and all(alert_class(n) == "symptom" for n in pages)


# ---- mis-tuned thresholds ----------------------------------------------------------------------------------------------
def test_thresholds_are_the_constants_of_the_top_comparisons() -> None:
    assert [t[2:] for t in thresholds("a / (b > 0) > 0.9")] == [(">", 0.9)]
    assert [t[2:] for t in thresholds("x - time() < 14 * 86400\nand\nx - time() > 2 * 86400")] == [
        ("<", 14 * 86400.0), (">", 2 * 86400.0)]
    assert thresholds("up == 0") == [] and thresholds('rate(x{a=">1"}[5m]) > y') == []
    assert [t[2:] for t in thresholds("x > bool 3")] == [(">", 3.0)]
    assert mistune_expr("a / (b > 0) > 0.9\n", 2.0) == "a / (b > 0) > 1.8\n"
    assert mistune_expr("x < 0.1", 2.0) == "x < 0.05"      # lax: a fall must go further
    assert mistune_expr("x - time() < 14 * 86400", 0.5) == "x - time() < 2419000"   # four figures, as a person writes it


def _mistuned_dashboard(worlds: int, first_world: int, seed: int = 5) -> Dashboard:
    engine = Engine("online-shop", worlds=worlds, seed=seed, first_world=first_world)
    return Dashboard(engine, coverage=Coverage(mistuned=1.0, mistune_factor=3.0))


def test_mistuned_dashboard_thresholds_differ_per_world_and_not_per_batch() -> None:
    whole = _mistuned_dashboard(4, 0)
    part = _mistuned_dashboard(2, 2)
    thr, hold = whole._alert_threshold, whole._alert_hold               # [B, S, A]
    assert thr.shape == (4, whole.engine.topology.n_components, len(NAMES))
    assert np.array_equal(part._alert_threshold, thr[2:]) and np.array_equal(part._alert_hold, hold[2:])
    assert not np.array_equal(thr[0], thr[1])
    base = np.array([a[1] for a in ALERTS.values()], np.float32)
    base_hold = np.array([a[3] for a in ALERTS.values()])
    assert np.array_equal(thr[..., ~CAUSES], np.broadcast_to(base[~CAUSES], thr[..., ~CAUSES].shape))
    off = (thr != base) | (hold != base_hold)
    # mistuned=1: nearly every cause alert is off (a one-tick hold made a bit laxer can round back to one tick)
    assert off[..., CAUSES].mean() > 0.8
    lower, higher = (thr < base)[..., CAUSES], (thr > base)[..., CAUSES]
    assert lower.any() and higher.any()                 # in either direction
    assert not np.array_equal(_mistuned_dashboard(4, 0, seed=6)._alert_threshold, thr)


def test_mistuned_rules_differ_per_world_and_are_deterministic() -> None:
    rules = rules_for("online-shop")
    c = Coverage(mistuned=1.0)
    w0, w1 = covered_rules(rules, c, 7, 0), covered_rules(rules, c, 7, 1)
    assert w0 == covered_rules(rules, c, 7, 0) and w0 != w1
    assert w0.alert_names == rules.alert_names
    changed = 0
    for old, new in zip((r for g in rules.groups for r in g.rules), (r for g in w0.groups for r in g.rules)):
        if alert_class(old.alert, old.labels) == "symptom":
            assert new == old
            continue
        changed += new != old
        before, after = thresholds(old.expr), thresholds(new.expr)
        assert [t[2] for t in before] == [t[2] for t in after]
        ratios = {round(b[3] / a[3], 2) if a[3] else None for b, a in zip(before, after) if b[3]}
        assert len(ratios) <= 1                    # one factor for the whole rule
    assert changed > 10


def test_telemetry_runs_world_zero_rules_of_a_batch() -> None:
    c = Coverage(mistuned=1.0, missing=0.3)
    engine = Engine("online-shop", worlds=2, seed=4, first_world=3)
    telemetry = Telemetry(engine, text=False, coverage=c)
    assert telemetry.rules == covered_rules(rules_for("online-shop"), c, 4, 3, engine.topology.components)


# ---- noise ----------------------------------------------------------------------------------------------------------
def _flaps(series: np.ndarray) -> bool:
    """Whether a [T] bool series fires, resolves and fires again."""
    changes = np.flatnonzero(np.diff(series.astype(np.int8)) != 0)
    return bool(series[0] and changes.size >= 2 or changes.size >= 3)


def test_noise_alerts_flap_on_a_quiet_dashboard() -> None:
    quiet, dash = _disk_run(None, fault=False)
    noisy, dash = _disk_run(Coverage(noisy=3.0), fault=False)
    assert dash._noise_alert is not None
    extra = noisy & ~quiet                                                       # [T, B, S, A]
    assert extra.any()
    b, s, a = np.nonzero(dash._noise_alert)
    assert any(_flaps(noisy[:, w, c, k]) for w, c, k in zip(b, s, a))
    assert not (extra & ~dash._noise_alert[None]).any()       # nothing else changed


def test_noise_rules_flap_and_never_page() -> None:
    c = Coverage(noisy=3.0)
    engine = Engine("online-shop", worlds=1, seed=2)
    telemetry = Telemetry(engine, text=False, coverage=c)
    noise = [r for g in telemetry.rules.groups for r in g.rules if r.labels.get("severity") == "warning"]
    assert noise
    for rule in noise:
        assert any(name in rule.expr for name in engine.topology.components)
    names = {r.alert for r in noise}
    history = []
    for _ in range(240):
        telemetry.step()
        ev = telemetry.evaluator
        history.append({i.fingerprint for i, on in zip(ev.instances, ev.firing()[0]) if on
                        and i.labels["alertname"] in names})
    fingerprints = set().union(*history)
    assert fingerprints
    assert any(_flaps(np.array([f in h for h in history])) for f in fingerprints)
    assert all(a.labels["alertname"] not in names for p in telemetry.pages(0) for a in p.alerts)


# ---- covered rule files are valid ----------------------------------------------------------------------------------
@pytest.mark.parametrize("template", templates())
def test_covered_rules_load_back(template: str) -> None:
    c = Coverage(missing=0.4, mistuned=0.6, noisy=4.0, stale_silence=1.0)
    for world in range(3):
        covered = covered_rules(rules_for(template), c, 11, world, ["frontend", "api-gateway"])
        again = load_rules(rules_yaml(covered))
        assert again.alert_names == covered.alert_names
        assert [r.expr for g in again.groups for r in g.rules] == [r.expr for g in covered.groups for r in g.rules]


def test_covered_rules_evaluate() -> None:
    c = Coverage(missing=0.4, mistuned=1.0, noisy=4.0)
    engine = Engine("online-shop", worlds=2, seed=8)
    telemetry = Telemetry(engine, text=False, coverage=c)
    telemetry.run(60)
    rules = [r for g in telemetry.evaluator.rules_json(0)["data"]["groups"] for r in g["rules"]]
    assert len(rules) == len(telemetry.rules.alert_names)
    assert all(r["health"] == "ok" for r in rules), [r.get("lastError") for r in rules if r["health"] != "ok"]


# ---- stale silences ------------------------------------------------------------------------------------------------
def test_stale_silences_exist_before_the_start_with_who_and_why() -> None:
    engine = Engine("online-shop", worlds=2, seed=1)
    start = float(engine.scenario.traffic.start)
    telemetry = Telemetry(engine, text=False, coverage=Coverage(stale_silence=1.0))
    for world in (0, 1):
        silences = telemetry.notifier.silences(world)
        assert silences
        for s in silences:
            assert s.starts_at < start - 86400 < start < s.ends_at and s.worlds == (world,)
            assert s.created_by and "OPS-" in s.comment
        cert = [s for s in silences if s.matches({"alertname": "CertificateExpired", "service": "cartservice"})]
        assert cert and cert[0].matches({"alertname": "CertificateExpiringSoon"})
        listed = telemetry.notifier.silences_json(world)
        assert {(x["createdBy"], x["comment"]) for x in listed} == {(s.created_by, s.comment) for s in silences}
    telemetry.step()
    assert all(s.state(telemetry.notifier.now) == "active" for s in telemetry.notifier.silences(0))


def test_apply_silences_to_a_notifier() -> None:
    rules = rules_for("online-shop")
    silences = stale_silences(rules, Coverage(stale_silence=1.0), 3, 0, 1.8e9)
    assert {s.matchers[0][2] for s in silences} == {
        "CertificateExpiringSoon|CertificateRenewalOverdue|CertificateExpired",
        "ContainerFilesystemAlmostFull|ContainerFilesystemFull"}
    notifier = Notifier()
    ids = apply_silences(notifier, silences)
    assert [s.id for s in notifier.silences(0)] == ids
    assert stale_silences(rules, Coverage(stale_silence=1.0), 3, 0, 1.8e9) == silences       # deterministic


def _session(coverage: Coverage | None, monkeypatch: pytest.MonkeyPatch):
    import opsworld.envs.tools as tools
    if coverage is not None:
        config = tools.IncidentConfig
        monkeypatch.setattr(tools, "IncidentConfig", lambda **kw: config(
            backend=functools.partial(ModelSystem, coverage=coverage), **kw))
    return tools.ToolSession("online-shop", fault="certificate_expiry")


def test_an_expired_certificate_under_a_stale_silence_pages_through_symptoms(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _session(None, monkeypatch)
    first = {a.labels["alertname"] for a in plain.inc.telemetry.pages(0)[0].alerts}
    assert "CertificateExpired" in first
    session = _session(Coverage(stale_silence=1.0), monkeypatch)
    telemetry = session.inc.telemetry
    pages = telemetry.pages(0)
    assert pages and session.shift_start > plain.shift_start
    paged = {a.labels["alertname"] for p in pages for a in p.alerts}
    assert all(alert_class(n) == "symptom" for n in paged)
    text = session.pages_text()
    assert "ErrorBudgetBurn" in text and "Certificate" not in text
    # the cause alert still fires: only its notification is muted
    expired = [a for a in telemetry.notifier.alerts_json(0) if a["labels"]["alertname"] == "CertificateExpired"]
    assert expired and all(a["status"]["state"] == "suppressed" and a["status"]["silencedBy"] for a in expired)
