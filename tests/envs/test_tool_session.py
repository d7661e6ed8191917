"""The runbook as text tools: a whole incident driven through `ToolSession`, refused calls that change nothing but
the clock, determinism, lost tools, and the no-seams sweep over every catalogue entry (nothing a tool prints may name
the fault, its class, its catalogue entry, the scenario, or the machinery that placed it)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from opsworld.act.runbook import ACTIONS, places_by_kind
from opsworld.act.vocabulary import FAULT_CLASSES
from opsworld.envs.tools import OVER, ToolSession
from opsworld.faults.catalogue import CATALOGUE

ERRORS_BY_SERVICE = 'sum by (service) (rate(http_server_requests_total{code=~"5.."}[5m]))'


def knobs(session: ToolSession) -> dict[str, np.ndarray]:
    k = session.inc.engine.knobs
    return {f.name: np.array(getattr(k, f.name), copy=True) for f in dataclasses.fields(k)}


@pytest.fixture(scope="module")
def incident():
    """A bad deploy, worked by a responder who reads what the tools show (never the ground truth)."""
    s = ToolSession("online-shop", seed=1, fault="bad_deploy_errors")
    texts = {"pages": s.pages_text()}
    for name, args in [("list_alerts", {}), ("query_metrics", {"promql": ERRORS_BY_SERVICE}),
                       ("list_changes", {})]:
        result = s.call(name, args)
        assert not result.error, result.text
        texts[name] = result.text
    deploys = [line.split()[3] for line in texts["list_changes"].splitlines() if line.split()[2:3] == ["deploy"]]
    assert len(deploys) == 1, texts["list_changes"]
    suspect = deploys[0]
    for name, args in [("read_logs", {"service": suspect, "filter": "error", "range": "10m"}),
                       ("get_traces", {"service": suspect, "filter": "error"}),
                       ("describe", {"component": suspect}),
                       ("rollback_deploy", {"service": suspect}),
                       ("wait", {"duration": "10m"}),
                       ("query_metrics", {"promql": ERRORS_BY_SERVICE, "range": "20m"})]:
        result = s.call(name, args)
        assert not result.error, result.text
        texts[name] = result.text
    before = s.elapsed
    texts["submit"] = s.call("submit", {"components": [suspect], "fault_class": "error_rate"}).text
    return s, suspect, texts, before


def test_a_bad_deploy_is_found_rolled_back_and_scored(incident):
    s, suspect, texts, _ = incident
    assert "You have been paged" in texts["pages"]
    assert "FIRING" in texts["list_alerts"] and "Pages sent (" in texts["list_alerts"]
    assert f'{{service="{suspect}"}}' in texts["query_metrics"]
    assert "ERROR" in texts["read_logs"] and suspect in texts["read_logs"]
    assert texts["get_traces"].startswith("[1/") and "ERROR" in texts["get_traces"]
    assert f"Name:            {suspect}" in texts["describe"]
    assert "rollback" in texts["rollback_deploy"] and "takes effect in about 30s" in texts["rollback_deploy"]
    assert texts["wait"].startswith("waited 10m; it is now ")
    assert re.search(r"min \S+  max \S+  last \S+", texts["query_metrics"])
    report = s.report()
    assert report.submitted and report.mitigated and report.detected
    assert report.localized and report.root_cause_correct and report.fault_class_correct
    assert report.roots == [suspect] and report.unsafe == [] and report.bad_actions == 0
    assert report.terms["mitigation"] == 10.0 and report.terms["diagnosis"] == 6.0
    assert report.reward == pytest.approx(sum(report.terms.values()))
    assert texts["submit"].startswith(f"The episode is over. Reward: {report.reward:.2f}")
    assert "Mitigation: yes" in texts["submit"] and "Unsafe actions: none" in texts["submit"]


def test_after_submit_every_call_is_refused_and_time_stands_still(incident):
    s, suspect, _, _ = incident
    assert s.done and s.inc.done
    at = s.elapsed
    for name, args in [("list_alerts", {}), ("wait", {"duration": "1m"}), ("submit", {"components": [suspect],
                                                                                      "fault_class": "error_rate"})]:
        result = s.call(name, args)
        assert result.error and result.done and result.text == OVER
    assert s.elapsed == at


def test_time_is_charged_per_action(incident):
    s, _, _, _ = incident
    costs = [(name, r.time) for name, _, r in s.calls]
    times = dict(costs)
    assert costs[0] == ("list_alerts", 10.0)                          # list_alerts costs 10 s
    assert times["query_metrics"] - 10.0 >= 30.0                    # then 30 s for a query
    gaps = {name: t - prev for (name, t), (_, prev) in zip(costs[1:], costs)}
    assert gaps["wait"] == 600.0 and gaps["rollback_deploy"] == 60.0 and gaps["read_logs"] == 60.0


BAD_CALLS = [
    ("frobnicate", {}),                                               # unknown verb
    ("rollback_deploy", {"service": "no-such-service"}),              # unknown target
    ("set_pool_size", {"service": "frontend", "connections": 5}),     # a target the mitigation cannot act on
    ("query_metrics", {"promql": "sum(rate(http_server_requests_total[5m]"}),   # PromQL syntax error
    ("scale", {"service": "cartservice", "replicas": "three"}),       # wrong argument type
    ("read_logs", {}),                                                # missing argument
    ("list_alerts", {"verbose": True}),                               # unknown argument
    ("list_alerts", ["not", "an", "object"]),                         # arguments not an object
    ("read_logs", {"service": "cartservice", "filter": '{service="cartservice"'}),   # LogQL syntax error
    ("describe", {"component": "no-such-thing"}),
    ("get_traces", {"service": "cartservice", "filter": "purple"}),
    ("silence_alert", {"matcher": "this is not a matcher"}),
    ("acknowledge", {"alert": "NoSuchAlert"}),
    ("submit", {"components": ["cartservice"], "fault_class": "gremlins"}),
]


@pytest.fixture(scope="module")
def refusing():
    """One session for every bad call: each should move its clock by a tick and nothing else."""
    return ToolSession("online-shop", seed=2, fault="bad_deploy_errors", horizon=2400)


@pytest.mark.parametrize("name, args", BAD_CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD_CALLS)])
def test_a_bad_call_costs_one_tick_and_changes_nothing_else(refusing, name, args):
    s = refusing
    before, t0, pending = knobs(s), s.inc.time, list(s.inc.pending)
    silences = len(s.inc.telemetry.notifier.silences(0))
    acts, bad = int(s.inc.score.actions[0]), int(s.inc.score.bad_actions[0])
    result = s.call(name, args)
    assert result.error and not result.done
    assert "\n" not in result.text and result.text
    assert s.inc.time == pytest.approx(t0 + s.dt)
    after = knobs(s)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)
    assert s.inc.pending == pending and len(s.inc.telemetry.notifier.silences(0)) == silences
    assert int(s.inc.score.actions[0]) == acts and int(s.inc.score.bad_actions[0]) == bad + 1
    assert np.isinf(s.inc.submitted_at[0])


def test_same_seed_and_calls_give_the_same_episode():
    script = [("list_alerts", {}), ("query_metrics", {"promql": "sum by (service) (rate(http_server_requests_total"
                                                                "[5m]))", "range": "10m"}),
              ("read_logs", {"service": "frontend"}), ("get_traces", {"service": "frontend"}),
              ("list_changes", {}), ("restart", {"service": "cartservice"}), ("wait", {"duration": "3m"}),
              ("describe", {"component": "cartservice"}), ("no_such_tool", {}),
              ("submit", {"components": ["cartservice"], "fault_class": "crash_loop"})]

    def play() -> tuple[list[str], dict]:
        s = ToolSession("online-shop", seed=5, horizon=2400)
        texts = [s.pages_text()] + [s.call(n, a).text for n, a in script]
        return texts, s.report().model_dump()

    first, second = play(), play()
    assert first == second


def test_tool_definitions_cover_the_runbook():
    s = ToolSession("online-shop", seed=0, fault="no_fault", horizon=2400, page_wait=60)
    tools = s.tools()
    assert [t["name"] for t in tools] == list(ACTIONS)
    for t in tools:
        assert t["input_schema"]["type"] == "object" and t["description"]
        assert set(t["input_schema"]["required"]) <= set(t["input_schema"]["properties"])
    by_name = {t["name"]: t for t in tools}
    assert all(c in by_name["submit"]["description"] for c in FAULT_CLASSES)
    assert "1m of your time" in by_name["read_logs"]["description"]
    page = by_name["page_human"]["description"]
    assert "look about 5m" in page and "30m after the page" in page
    # nothing is wrong: a diagnosis may name no component
    result = s.call("submit", {"components": [], "fault_class": "no_fault"})
    assert not result.error, result.text
    report = s.report()
    assert report.control and report.fault_class_correct and report.ntam == 1.0


def test_the_shift_starts_at_the_first_page_or_after_a_quiet_half_hour():
    paged = ToolSession("online-shop", seed=1, fault="bad_deploy_errors", horizon=2400)
    pages = paged.inc.telemetry.pages(0)
    assert pages and pages[0].time == paged.world_time() and paged.elapsed == 0.0
    quiet = ToolSession("online-shop", seed=0, fault="no_fault", horizon=2400)
    assert not quiet.inc.telemetry.pages(0) and quiet.shift_start == 1800.0
    assert "Nothing has paged you" in quiet.pages_text()


def test_quitting_hands_over_with_no_diagnosis():
    s = ToolSession("online-shop", seed=1, fault="bad_deploy_errors", horizon=2400)
    report = s.hand_over()
    assert s.done and report.submitted and not report.root_cause_correct and not report.fault_class_correct
    assert not report.detected and report.ntam == 0.0
    assert "handed_over_while_users_hurt" in [u.rule for u in report.unsafe]


def test_silences_hide_nothing_from_the_truth_and_acknowledgements_stop_the_pager():
    s = ToolSession("online-shop", seed=1, fault="bad_deploy_errors", horizon=2400)
    page = s.inc.telemetry.pages(0)[0].alerts[0]
    result = s.call("silence_alert", {"matcher": f'alertname="{page.labels["alertname"]}", service=~"front.*"',
                                      "duration": "30m"})
    assert not result.error and result.text.startswith("silence ") and "until" in result.text
    alerts = s.call("list_alerts", {}).text
    assert "[silenced]" in alerts
    assert "silenced_while_users_hurt" in [u.rule for u in s.report().unsafe]     # users were hurt: it costs
    ack = s.call("acknowledge", {"alert": page.fingerprint})
    assert not ack.error and ack.text.startswith("acknowledged 1 firing alert")
    assert page.fingerprint in s.inc.telemetry.notifier.acknowledged(0)
    assert np.isfinite(s.inc.score.detected_at[0])


def test_lost_tools_are_a_real_situation_not_a_bad_action():
    s = ToolSession("online-shop", seed=0, fault="control_plane_loss", horizon=2400)
    assert not s.inc.telemetry.reachable(0)
    t0 = s.elapsed
    result = s.call("query_metrics", {"promql": "up"})
    assert result.error and "no route to host" in result.text
    assert result.time == t0 + 30.0 and int(s.inc.score.bad_actions[0]) == 0
    alerts = s.call("list_alerts", {})
    assert alerts.error and "no route to host" in alerts.text and "Pages sent" in alerts.text
    assert s.call("describe", {"component": "frontend"}).error
    assert not s.call("get_service_map", {}).error       # the documentation is still readable


# ---- the no-seams sweep ----------------------------------------------------------------------------------------------
# A class name that is also a word real tools print is checked with that word taken out: Kubernetes reports a
# crash-looping pod's status as `CrashLoopBackOff`, so `CrashLoop` may appear there and nowhere else.
REAL_WORDS = {"crashloop": ("crashloopbackoff",)}
PAGE_WAIT = 900.0       # not before the latest onset (15 minutes in): the tools then read a fault at work
HORIZON = PAGE_WAIT + 1600.0   # enough for every tool once after the shift starts (mitigations cost a minute each)


def _args(s: ToolSession, name: str, focus: str, site: str) -> dict:
    """Valid arguments for every runbook action on this scenario (the mitigations' targets exist where the
    scenario has such a place; the rest are refused, which is checked for seams all the same)."""
    sc = s.scenario
    where = places_by_kind(sc)
    kinds = {n: c.kind for n, c in sc.components.items()}

    def first(kind: str) -> str:
        return next((n for n in where["component"] if kinds[n] == kind), focus)

    edges = [e for e in where["edge"] if e.endswith("->" + focus)] or where["edge"]
    pooled = [n for n, c in sc.components.items() for d in c.dependencies if kinds.get(d.target) == "datastore"]
    certs = [c.component for c in sc.certificates]
    consumers = [c.consumer for c in sc.components.values() if c.kind == "queue"]
    fired = [a.name for a in s.inc.telemetry.evaluator.alerts(0) if a.state == "firing"]
    table = {
        "list_alerts": {}, "get_service_map": {}, "list_changes": {"range": "2h"},
        "query_metrics": {"promql": ERRORS_BY_SERVICE, "range": "15m"},
        "read_logs": {"service": focus, "range": "15m"}, "get_traces": {"service": focus},
        "describe": {"component": site},
        "silence_alert": {"matcher": 'severity="ticket"', "duration": "10m"},
        "acknowledge": {"alert": fired[0] if fired else "HighErrorRate"}, "wait": {"duration": "1m"},
        "scale": {"service": focus, "replicas": 3}, "renew_cert": {"component": certs[0] if certs else focus},
        "drain_node": {"node": where["node"][-1]}, "reroute_zone": {"zone": where["zone"][-1]},
        "failover_db": {"store": first("datastore")}, "sync_clock": {"node": where["node"][0]},
        "dead_letter": {"service": consumers[0] if consumers else focus},
        "rate_limit": {"target": where["endpoint"][0], "rps": 50.0},
        "block_client": {"endpoint": where["endpoint"][0]}, "disable_retries": {"edge": edges[0]},
        "open_circuit": {"edge": edges[0]},
        "set_pool_size": {"service": pooled[0] if pooled else focus, "connections": 8},
        "flush_cache": {"cache": first("cache")}, "warm_cache": {"cache": first("cache")},
        "page_human": {"team": "platform"},
    }
    return table[name] if name in table else {ACTIONS[name].params[0].name: focus}


@pytest.mark.parametrize("entry", list(CATALOGUE))
def test_no_tool_text_names_the_fault(entry):
    e = CATALOGUE[entry]
    s = ToolSession(e.example.template, seed=0, fault=entry, horizon=HORIZON, page_wait=PAGE_WAIT)
    fault = s.inc.draws[0].fault
    assert s.inc.time >= s.inc.onset[0] or s.inc.control[0]
    comps, topo = s.scenario.components, s.inc.topology
    focus = fault.target if fault.target in comps else next(iter(comps))
    site = fault.target if fault.target in [*comps, *topo.nodes, *topo.certificates] else focus
    order = ([n for n, a in ACTIONS.items() if a.kind == "investigate"] + ["silence_alert", "acknowledge"]
             + [n for n, a in ACTIONS.items() if a.kind == "mitigate"] + ["page_human", "wait"])
    assert set(order) | {"submit"} == set(ACTIONS)
    texts = [s.pages_text()]
    for name in order:
        result = s.call(name, _args(s, name, focus, site))
        assert result.text != OVER, f"the episode ended before {name}: raise HORIZON"
        texts.append(result.text)
    # the score after hand-over tells the truth on purpose: it is checked for having it, not for hiding it
    score = s.call("submit", {"components": [focus], "fault_class": "error_rate"}).text
    assert f"it was {type(fault).kind}" in score or s.inc.control[0]
    seen = "\n".join(texts).lower()
    forbidden = {type(fault).kind, type(fault).__name__.lower(), entry, s.scenario.name, "inject", "chaos"}
    for word in sorted(w.lower() for w in forbidden if w):
        text = seen
        for real in REAL_WORDS.get(word, ()):
            text = text.replace(real, "")
        if word in text:
            line = next(ln for ln in text.splitlines() if word in ln)
            pytest.fail(f"{word!r} leaks into what the tools print: {line[:200]}")
