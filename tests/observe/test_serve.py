"""The Prometheus-compatible HTTP API, read by a real Prometheus client library (prometheus-api-client) and promtool.

One short episode (online-shop, 20 min, a bad deploy raising errors on cartservice at 10 min) is served on a free
port for the whole module; every answer must equal what `Telemetry` says directly.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import requests
from prometheus_api_client import PrometheusConnect

from opsworld.observe.episode import load_episode
from opsworld.observe.promql import Scalar
from opsworld.observe.serve import PrometheusServer, format_value, make_server, parse_duration, parse_time
from opsworld.observe.telemetry import Telemetry

QUERIES = [
    'sum by (service) (rate(http_server_requests_total{code=~"5.."}[5m]))',
    "sum by (job) (up)",
    'histogram_quantile(0.99, sum by (le, service) (rate(http_server_request_duration_seconds_bucket[2m])))',
    'kube_pod_status_ready{condition="true"}',
    "count(up) / 2",
]


@pytest.fixture(scope="module")
def telemetry() -> Telemetry:
    episode = load_episode("online-shop", seed=3, duration="20m",
                           faults=[{"fault": "bad_deploy_errors", "target": "cartservice"}])
    return episode.run(worlds=1)


@pytest.fixture(scope="module")
def server(telemetry: Telemetry) -> Iterator[PrometheusServer]:
    srv = make_server(telemetry, world=0, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def prom(server: PrometheusServer) -> PrometheusConnect:
    return PrometheusConnect(url=server.url, disable_ssl=True)


def _by_labels(rows: list[dict], field: str = "value") -> dict[tuple, object]:
    return {tuple(sorted(r["metric"].items())): r[field] for r in rows}


def _expected_instant(telemetry: Telemetry, query: str, at: float) -> dict[tuple, float]:
    result = telemetry.query(query, 0, at)
    assert not isinstance(result, Scalar)
    return {tuple(sorted(ls.items())): float(result.values[0, i])
            for i, ls in enumerate(result.labels) if result.present[0, i]}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_instant_and_range_queries_equal_the_telemetry(prom: PrometheusConnect, telemetry: Telemetry) -> None:
    assert prom.check_prometheus_connection()
    at = telemetry.now - 300
    for query in QUERIES:
        got = _by_labels(prom.custom_query(query, params={"time": at}))
        want = _expected_instant(telemetry, query, at)
        assert got.keys() == want.keys() and want, query
        for key, (ts, text) in got.items():
            assert ts == at and _same(float(text), want[key]), (query, key)
    # the default time is the end of the episode
    default = _by_labels(prom.custom_query("sum by (job) (up)"))
    assert {k: float(v[1]) for k, v in default.items()} == _expected_instant(telemetry, "sum by (job) (up)",
                                                                             telemetry.now)
    # a scalar is [time, "value"]
    assert prom.custom_query("scalar(count(up))", params={"time": at}) == [at, format_value(
        float(telemetry.query("scalar(count(up))", 0, at).values[0]))]

    start = datetime.fromtimestamp(telemetry.now - 900, tz=timezone.utc)
    end = datetime.fromtimestamp(telemetry.now, tz=timezone.utc)
    for query in QUERIES[:3]:
        rows = prom.custom_query_range(query, start_time=start, end_time=end, step="1m")
        want = telemetry.query_range(query, start.timestamp(), end.timestamp(), 60.0, 0)
        expected = {tuple(sorted(ls.items())): [(float(t), float(want.values[k, 0, i]))
                                                 for k, t in enumerate(want.times) if want.present[k, 0, i]]
                    for i, ls in enumerate(want.labels)}
        got_rows = _by_labels(rows, "values")
        assert got_rows.keys() == {k for k, v in expected.items() if v}, query
        for key, points in got_rows.items():
            assert len(points) == len(expected[key])
            assert all(t == et and _same(float(v), ev) for (t, v), (et, ev) in zip(points, expected[key]))
        assert [r["metric"] for r in rows] == sorted((r["metric"] for r in rows), key=lambda m: sorted(m.items()))


def test_metadata_endpoints_through_the_client(prom: PrometheusConnect, telemetry: Telemetry) -> None:
    store = telemetry.store
    assert prom.all_metrics() == store.label_values("__name__")
    names = prom.get_label_names()
    assert "__name__" in names and "service" in names and names == sorted(names)
    assert prom.get_label_values("job") == sorted(set(store.label_values("job")) - {""})
    up = prom.get_current_metric_value("up", label_config={"job": "cartservice"})
    assert len(up) == 2 and all(r["metric"]["job"] == "cartservice" and r["value"][1] == "1" for r in up)
    first = datetime.fromtimestamp(float(store.times[0]), tz=timezone.utc)
    last = datetime.fromtimestamp(telemetry.now, tz=timezone.utc)
    series = prom.get_series(first, last, params={"match[]": ['up{job="cartservice"}',
                                                               'kube_pod_status_ready{pod=~"cart.*"}']})
    assert {s["__name__"] for s in series} == {"up", "kube_pod_status_ready"}
    assert all(s.get("job") == "cartservice" or s["pod"].startswith("cart") for s in series)
    meta = prom.get_metric_metadata("http_server_requests_total")
    assert meta and meta[0]["type"] == "counter"


def test_alerting_status_and_episode_endpoints(server: PrometheusServer, telemetry: Telemetry) -> None:
    url = server.url
    alerts = requests.get(f"{url}/api/v1/alerts", timeout=10).json()
    assert alerts["status"] == "success"
    assert alerts["data"] == telemetry.evaluator.alerts_json(0)["data"]
    assert any(a["state"] == "firing" for a in alerts["data"]["alerts"])
    rules = requests.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert rules and all(r["type"] == "alerting" for g in rules for r in g["rules"])
    assert requests.get(f"{url}/api/v1/rules", params={"type": "record"}, timeout=10).json()["data"] == {"groups": []}
    assert requests.get(f"{url}/api/v1/status/buildinfo", timeout=10).json()["data"]["version"].startswith("2.")
    for path, word in (("/-/ready", "Ready"), ("/-/healthy", "Healthy")):
        answer = requests.get(url + path, timeout=10)
        assert answer.status_code == 200 and word in answer.text
    changes = requests.get(f"{url}/api/v1/changes", timeout=10).json()["data"]
    assert [(c["kind"], c["target"]) for c in changes] == [("deploy", "cartservice")]
    assert changes[0]["time"] == telemetry.engine.scenario.traffic.start + 600
    later = requests.get(f"{url}/api/v1/changes", params={"start": changes[0]["time"] + 1}, timeout=10)
    assert later.json()["data"] == []
    # POST with a form body, as Grafana sends queries
    posted = requests.post(f"{url}/api/v1/query", data={"query": "count(up)", "time": str(telemetry.now)}, timeout=10)
    assert posted.status_code == 200 and posted.json()["data"]["result"][0]["value"][1] == format_value(
        float(telemetry.query("count(up)").values[0, 0]))


@pytest.mark.parametrize("path, params, status, words", [
    ("/api/v1/query", {"query": "sum(rate(up[5m]"}, 400, "parse error"),
    ("/api/v1/query", {}, 400, '"query"'),
    ("/api/v1/query", {"query": "up", "time": "yesterday"}, 400, '"time"'),
    ("/api/v1/query", {"query": "up[5m]"}, 400, "range vector"),
    ("/api/v1/query", {"query": "up", "timeout": "soon"}, 400, '"timeout"'),
    ("/api/v1/query_range", {"query": "up", "start": "0", "end": "60", "step": "fast"}, 400, '"step"'),
    ("/api/v1/query_range", {"query": "up", "start": "0", "end": "60", "step": "-1"}, 400, "negative"),
    ("/api/v1/query_range", {"query": "up", "start": "60", "end": "0", "step": "1"}, 400, "before start"),
    ("/api/v1/query_range", {"query": "up", "end": "60", "step": "1"}, 400, '"start"'),
    ("/api/v1/query_range", {"query": "up", "start": "0", "end": "100000", "step": "1"}, 400, "11,000"),
    ("/api/v1/series", {}, 400, "match[]"),
    ("/api/v1/series", {"match[]": "sum(up)"}, 400, "series selector"),
    ("/api/v1/label/1bad/values", {}, 400, "label name"),
    ("/api/v1/rules", {"type": "both"}, 400, '"type"'),
    ("/api/v1/nothing", {}, 404, "/api/v1/nothing"),
    ("/metrics", {}, 404, "/metrics"),
])
def test_malformed_requests_get_prometheus_errors(server: PrometheusServer, path: str, params: dict, status: int,
                                                  words: str) -> None:
    answer = requests.get(server.url + path, params=params, timeout=10)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["status"] == "error" and words in body["error"], body
    assert body["errorType"] == ("bad_data" if status == 400 else "not_found")
    # and the server keeps answering
    assert requests.get(f"{server.url}/api/v1/query", params={"query": "1"}, timeout=10).status_code == 200


def test_unreachable_monitoring_is_503(server: PrometheusServer, telemetry: Telemetry,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "reachable", lambda world: False)
    for path, params in (("/api/v1/query", {"query": "up"}), ("/api/v1/series", {"match[]": "up"}),
                         ("/api/v1/alerts", {})):
        answer = requests.get(server.url + path, params=params, timeout=10)
        assert answer.status_code == 503 and answer.json()["errorType"] == "unavailable", answer.text
    monkeypatch.undo()
    assert requests.get(f"{server.url}/api/v1/query", params={"query": "up"}, timeout=10).status_code == 200


def test_200_concurrent_queries_all_answer_correctly(server: PrometheusServer, telemetry: Telemetry) -> None:
    ats = [telemetry.now - 60 * k for k in range(8)]
    expected = {(q, at): _expected_instant(telemetry, q, at) for q in QUERIES for at in ats}
    jobs = [(i, QUERIES[i % len(QUERIES)], ats[i % len(ats)]) for i in range(200)]

    def ask(job: tuple[int, str, float]) -> bool:
        i, query, at = job
        # POST half of them, each on a connection of its own (no session shared across threads)
        if i % 2:
            answer = requests.post(f"{server.url}/api/v1/query", data={"query": query, "time": at}, timeout=60)
        else:
            answer = requests.get(f"{server.url}/api/v1/query", params={"query": query, "time": at}, timeout=60)
        got = {k: float(v[1]) for k, v in _by_labels(answer.json()["data"]["result"]).items()}
        want = expected[query, at]
        return answer.status_code == 200 and got.keys() == want.keys() and all(_same(got[k], want[k]) for k in got)

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(ask, jobs))
    assert all(results) and len(results) == 200


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_reads_the_server(server: PrometheusServer, telemetry: Telemetry) -> None:
    def promtool(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["promtool", "query", *args], capture_output=True, text=True, timeout=60)

    instant = promtool("instant", server.url, "sum by (job) (up)", f"--time={telemetry.now}")
    assert instant.returncode == 0 and '{job="cartservice"} => 2' in instant.stdout, instant.stderr
    labels = promtool("labels", server.url, "job")
    assert labels.returncode == 0 and "cartservice" in labels.stdout.split()
    bad = promtool("instant", server.url, "sum(")
    assert bad.returncode != 0 and "bad_data" in bad.stderr


def test_wire_formats() -> None:
    assert [format_value(v) for v in (5.0, 0.1, 1e-7, 1e21, -0.0, math.nan, math.inf, -math.inf, 1 / 3)] == [
        "5", "0.1", "0.0000001", "1000000000000000000000", "-0", "NaN", "+Inf", "-Inf", "0.3333333333333333"]
    assert parse_time("1795594800.5") == 1795594800.5
    assert parse_time("2026-11-25T08:00:00Z") == parse_time("2026-11-25T09:00:00+01:00") == 1795593600.0
    assert parse_time("2026-11-25T08:00:00.123456789Z") == 1795593600.123
    assert parse_duration("1m30s") == 90 and parse_duration("0.5") == 0.5 and parse_duration("2h") == 7200
    for bad in ("", "1x", "m", "nan"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    for bad in ("", "noon", "2026-11-25T08:00:00", "inf"):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_logs_as_json_and_in_lokis_format(server: PrometheusServer, telemetry: Telemetry) -> None:
    url, end = server.url, telemetry.now
    query = '{service="cartservice", level="error"}'
    params = {"query": query, "start": end - 300, "end": end, "limit": 20}
    lines = requests.get(f"{url}/api/v1/logs", params=params, timeout=30).json()["data"]
    want = telemetry.logs(0, query=query, start=end - 300, end=end, limit=20)
    assert lines and [(x["time"], x["pod"], x["message"]) for x in lines] == [(w.time, w.pod, w.message) for w in want]
    assert all(x["service"] == "cartservice" and x["level"] == "ERROR" for x in lines)
    loki = requests.get(f"{url}/loki/api/v1/query_range", timeout=30, params={
        "query": query, "start": str(int((end - 300) * 1e9)), "end": str(int(end * 1e9)), "limit": 20}).json()
    assert loki["status"] == "success" and loki["data"]["resultType"] == "streams"
    entries = [(int(ns), text) for stream in loki["data"]["result"] for ns, text in stream["values"]]
    assert sorted(text for _, text in entries) == sorted(w.message for w in want)
    assert all(s["stream"]["service"] == "cartservice" and s["stream"]["level"] == "error"
               for s in loki["data"]["result"])
    assert "level" in requests.get(f"{url}/loki/api/v1/labels", timeout=10).json()["data"]
    assert "cartservice" in requests.get(f"{url}/loki/api/v1/label/service/values", timeout=10).json()["data"]
    for bad in ({"query": '{service="cartservice"'}, {"query": "{}", "direction": "sideways"},
                {"query": "{}", "limit": "many"}):
        answer = requests.get(f"{url}/api/v1/logs", params=bad, timeout=10)
        assert answer.status_code == 400 and answer.json()["errorType"] == "bad_data", answer.text


def test_traces_as_json(server: PrometheusServer, telemetry: Telemetry) -> None:
    url, end = server.url, telemetry.now
    params = {"service": "cartservice", "error": "true", "start": end - 600, "end": end, "limit": 5,
              "minDuration": "1ms"}
    got = requests.get(f"{url}/api/v1/traces", params=params, timeout=30).json()["data"]
    want = telemetry.traces(0, service="cartservice", error=True, start=end - 600, end=end, limit=5,
                            min_duration=0.001)
    assert got and [t["trace_id"] for t in got] == [t.trace_id for t in want]
    assert all(t["error"] and t["duration"] >= 0.001 for t in got)
    first = got[0]["spans"][0]
    assert first["parent_id"] is None and first["trace_id"] == got[0]["trace_id"]
    assert {"span_id", "service", "operation", "start", "duration", "status", "attributes", "kind"} <= first.keys()
    assert any(s["service"] == "cartservice" and s["status"] == "ERROR" for t in got for s in t["spans"])
    for bad in ({"minDuration": "long"}, {"error": "maybe"}, {"limit": "0"}, {"start": "then"}):
        answer = requests.get(f"{url}/api/v1/traces", params=bad, timeout=10)
        assert answer.status_code == 400 and answer.json()["errorType"] == "bad_data", answer.text
