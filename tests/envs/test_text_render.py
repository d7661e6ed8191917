"""The text the on-call tools print: real telemetry from a faulty shop, rendered and checked for content, bounds and
seams (nothing may name the scenario, the fault or the machinery that placed it)."""

from __future__ import annotations

import re

import pytest
import yaml

from opsworld.engine import Engine
from opsworld.faults.catalogue import entry
from opsworld.faults.injector import Injector
from opsworld.observe.telemetry import Telemetry
from opsworld.envs.text import (render_alerts, render_changes, render_component, render_logs, render_matrix,
                                render_service_map, render_traces, render_vector)
from opsworld.spec import load_scenario
from opsworld.spec.loader import template_path

TEMPLATE = "online-shop"
RATE = "sum by (service) (rate(http_server_requests_total[5m]))"
FAULT_KNOBS = ("error_rate", "capacity", "latency", "cpu_hog", "hang_after", "flap", "wrong", "memory_growth",
               "disk_growth", "crash_loop", "blocked", "cpu_steal", "isolated", "gpu_health")


@pytest.fixture(scope="module")
def shop():
    """Ten minutes of the shop with a build that crash-loops in cartservice from the first minute."""
    fault = entry("bad_deploy_crashloop").make(target="cartservice", onset=60)
    eng = Engine(TEMPLATE, worlds=1, seed=3)
    tel = Telemetry(Injector(eng, [fault]))
    tel.run(60)
    return eng, tel, fault


def assert_no_seams(text: str, fault) -> None:
    low = text.lower()
    for word in (TEMPLATE, fault.kind.lower(), "inject", "chaos", "bad_deploy"):
        assert word not in low, f"{word!r} leaks into:\n{text}"


def test_vector_is_a_console_table_sorted_and_bounded(shop):
    eng, tel, fault = shop
    result = tel.query(RATE)
    text = render_vector(result, limit=4)
    rows = text.splitlines()
    assert len(rows) == 5 and rows[-1] == f"... {len(result.labels) - 4} more series (narrow the query)"
    values = [float(r.rsplit(None, 1)[1]) for r in rows[:4]]
    assert values == sorted(values, reverse=True)
    assert rows[0].startswith('{service="')
    full = render_vector(result, limit=100)
    assert '{service="frontend"}' in full and "more series" not in full
    named = render_vector(tel.query("kube_pod_container_status_restarts_total"), limit=100)
    assert 'kube_pod_container_status_restarts_total{container="cartservice"' in named
    assert render_vector(tel.query("no_such_metric_total")) == "no data"
    assert render_vector(tel.query("scalar(sum(up))")).startswith("scalar  ")
    assert render_vector(result, limit=4) == text          # deterministic
    assert_no_seams(full + named, fault)


def test_matrix_shows_chosen_steps_and_a_summary(shop):
    eng, tel, fault = shop
    result = tel.query_range(RATE, tel.now - 600, tel.now, 30)
    text = render_matrix(result, limit=2, points=5)
    lines = text.splitlines()
    assert lines[-1] == f"... {len(result.labels) - 2} more series (narrow the query)"
    heads = [ln for ln in lines if ln.startswith("{")]
    assert len(heads) == 2
    stamps = re.findall(r"\b\d\d:\d\d:\d\d [-+\d.eNa]+", text)
    assert 2 <= len(stamps) <= 10                        # at most 5 points per series
    assert len(re.findall(r"^  min \S+  max \S+  last \S+  \(\d+ points\)$", text, re.M)) == 2
    assert "08:10:00" in text                            # the last step (UTC) is always shown
    assert render_matrix(tel.query_range("no_such_metric", tel.now - 60, tel.now, 30)) == "no data"
    assert_no_seams(text, fault)


def test_logs_read_like_a_log_viewer(shop):
    eng, tel, fault = shop
    lines = tel.logs(0, service="cartservice", limit=50)
    text = render_logs(lines, limit=10)
    rows = text.splitlines()
    assert rows[-1] == f"... {len(lines) - 10} more lines (narrow the query)"
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  cartservice/cartservice-\d", r) for r in rows[:10])
    assert any(lvl in text for lvl in ("WARN", "ERROR", "INFO"))
    assert render_logs([]) == "no log lines"
    assert_no_seams(render_logs(lines, limit=50), fault)


def test_traces_have_a_header_each_and_are_bounded(shop):
    eng, tel, fault = shop
    traces = tel.traces(0, limit=3)
    text = render_traces(traces, limit=2)
    blocks = text.split("\n\n")
    assert len(blocks) == 3 and blocks[-1] == "... 1 more traces (narrow the query)"
    for n, (block, trace) in enumerate(zip(blocks[:2], traces), 1):
        head = block.splitlines()[0]
        assert head.startswith(f"[{n}/2] trace {trace.trace_id}  {trace.root.service}: {trace.root.operation}")
        assert head.endswith("ERROR" if trace.has_error else "OK")
        assert trace.render().splitlines()[0] in block
    assert render_traces([]) == "no traces"
    assert_no_seams(text, fault)


def test_alerts_firing_first_with_silences(shop):
    eng, tel, fault = shop
    alerts = tel.alerts(0)
    assert {a.state for a in alerts} == {"firing", "pending"}
    text = render_alerts(alerts, limit=len(alerts))
    states = [ln.split()[0] for ln in text.splitlines() if not ln.startswith(" ")]
    assert states == sorted(states, key=lambda s: s != "FIRING") and len(states) == len(alerts)
    assert "ContainerRestartBackOff" in text and 'pod="cartservice-0"' in text
    assert "keeps restarting" in text and "since 2026-" in text
    quiet = next(a for a in alerts if a.name == "ContainerRestartBackOff")
    marked = render_alerts(alerts, silenced=[quiet.fingerprint], limit=len(alerts))
    assert marked.count("[silenced]") == 1
    hidden = render_alerts(alerts, silenced=[quiet.fingerprint], show_silenced=False, limit=len(alerts))
    assert len(hidden.splitlines()) == len(text.splitlines()) - 2 and "[silenced]" not in hidden
    short = render_alerts(alerts, limit=3).splitlines()
    assert short[-1] == f"... {len(alerts) - 3} more alerts (filter by name or label)"
    assert render_alerts([]) == "no active alerts"
    assert_no_seams(text, fault)


def test_changes_table(shop):
    eng, tel, fault = shop
    changes = tel.changes(0)
    text = render_changes(changes, eng.scenario.traffic.start)
    header, row = text.splitlines()[:2]
    assert header.split() == ["TIME", "(UTC)", "KIND", "TARGET", "CHANGE", "BY"]
    deploy = changes[0]
    assert row.startswith("2026-11-25 08:01:00  deploy  cartservice")
    assert f"{deploy.before} -> {deploy.after}" in row and deploy.by in row
    many = render_changes(changes * 5, eng.scenario.traffic.start, limit=2).splitlines()
    assert many[0] == f"... {len(changes) * 5 - 2} earlier changes (narrow the time range)" and len(many) == 4
    assert render_changes([], 0.0) == "no changes"
    assert_no_seams(text, fault)


def test_service_map_leaves_out_hidden_couplings():
    raw = yaml.safe_load(template_path(TEMPLATE).read_text())
    raw["components"]["recommendationservice"]["dependencies"].append({"target": "redis-cart", "documented": False})
    raw["components"]["adservice"]["dependencies"] = [{"target": "currencyservice", "documented": False}]
    scenario = load_scenario(raw)
    text = render_service_map(scenario)
    rows = {ln.split()[0]: ln for ln in text.splitlines() if ln.startswith("  ") and "->" in ln}
    assert rows["recommendationservice"].endswith("-> productcatalogservice")
    assert "adservice" not in rows and re.search(r"^  adservice +service +x1$", text, re.M)
    assert "redis-cart" in rows["cartservice"]
    assert "GET /cart" in text and "us-central1-a: node-a1, node-a2" in text
    assert TEMPLATE not in text and scenario.description[:30] not in text
    # a queue's consumer and a cache's datastore are part of the map
    social = render_service_map(load_scenario("social-network"))
    assert "write-home-timeline-rabbitmq (publish)" in social and "(consumer)" in social
    assert "(on miss)" in render_service_map(load_scenario("hotel-reservation"))


def test_describe_component_node_and_certificate(shop):
    eng, tel, fault = shop
    text = render_component(eng, "cartservice")
    assert "Kind:            service (Deployment)" in text
    assert f"Version:         {eng.versions[int(eng.knobs.deploy[eng.topology.index('cartservice'), 0])]}" in text
    assert "Replicas:        2 desired" in text and "0 ready" in text
    assert re.search(r"cartservice-0  node-\w+  CrashLoopBackOff  0/1", text)
    assert "Calls:           redis-cart" in text and "memory 512Mi" in text
    node = render_component(eng, "node-a1")
    assert "Zone:            us-central1-a" in node and "Unschedulable:   false" in node
    assert re.search(r"^  cartservice-0 ", node, re.M)
    cert = render_component(eng, "cartservice-tls")
    assert "Used by:         cartservice" in cert and "Not After:" in cert
    store = render_component(eng, "redis-cart")
    assert "datastore (StatefulSet)" in store and "redis-cart-0" in store
    for out in (text, node, cert, store):
        assert_no_seams(out, fault)
        assert not any(k in out for k in FAULT_KNOBS), out
    with pytest.raises(ValueError, match=r"no component, node, endpoint or certificate named 'nope'; "
                                         r"known: frontend.*node-a1.*GET /cart"):
        render_component(eng, "nope")


def test_describe_shows_oom_kills_and_drained_nodes():
    eng = Engine(TEMPLATE, worlds=2, seed=1)
    eng.set("memory_growth", 64 * 2.0**20, "cartservice", worlds=[1])    # 64 MiB/s: over its limit in seconds
    eng.set("drained", True, "node-a1", worlds=[1], by="j.ortiz")
    eng.run(6)
    text = render_component(eng, "cartservice", world=1)
    assert "OOMKilled" in text and "memory_growth" not in text
    assert "OOMKilled" not in render_component(eng, "cartservice", world=0)
    node = render_component(eng, "node-a1", world=1)
    assert "Unschedulable:   true" in node and "Pods (0):" in node
    assert not re.search(r"node-a1  ", text)        # its pods were rescheduled elsewhere
    assert "Pods (0):" not in render_component(eng, "node-a1", world=0)
    with pytest.raises(ValueError):
        render_component(eng, "cartservice", world=2)
