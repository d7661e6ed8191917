"""The Prometheus-compatible HTTP API, read by a real Prometheus client library (prometheus-api-client) and promtool.

One short episode (online-shop, 20 min, a bad deploy raising errors on cartservice at 10 min) is served on a free
port for the whole module; every answer must equal what `Telemetry` says directly.
"""

from __future__ import annotations

import math
import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests
from prometheus_api_client import PrometheusConnect
from typer.testing import CliRunner

import opsworld.cli as cli
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
    # an instant query of up[5m] answers a matrix (test_instant_query_of_a_range_vector_answers_a_matrix); a range
    # query of it is still refused, as Prometheus refuses it
    ("/api/v1/query_range", {"query": "up[5m]", "start": "0", "end": "60", "step": "1"}, 400, "range vector"),
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


# ---- range vectors in instant queries, disconnecting clients, the CLI's port, the rest of Grafana's API ------------
CART = [("__name__", "=", "up"), ("job", "=", "cartservice")]


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _raw_samples(telemetry: Telemetry, matchers: list[tuple[str, str, str]], lo: float, hi: float
                 ) -> dict[tuple, list[tuple[float, float]]]:
    """Every stored sample of the matching series with lo <= time <= hi, read from the store itself."""
    store = telemetry.visible(0)
    out = {}
    for c in store.select(matchers):
        labels = tuple(sorted((k, v) for k, v in store.labels[c].items() if v != ""))
        points = [(float(t), float(v)) for t, v in zip(store.times, store.values[:, 0, c])
                  if lo <= t <= hi and not math.isnan(v)]
        if points:
            out[labels] = points
    return out


def _matrix(answer: requests.Response) -> dict[tuple, list[tuple[float, float]]]:
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["resultType"] == "matrix", data
    return {tuple(sorted(r["metric"].items())): [(float(t), float(v)) for t, v in r["values"]]
            for r in data["result"]}


def test_instant_query_of_a_range_vector_answers_a_matrix(server: PrometheusServer, telemetry: Telemetry) -> None:
    url, at = server.url, telemetry.now - 300.5            # between two scrapes

    def matrix(query: str, post: bool = False, time: float = at) -> dict[tuple, list[tuple[float, float]]]:
        form = {"query": query, "time": time}
        return _matrix(requests.post(f"{url}/api/v1/query", data=form, timeout=30) if post
                       else requests.get(f"{url}/api/v1/query", params=form, timeout=30))

    # the raw samples in [time - 1m, time], with the metric name, as Prometheus answers `up[1m]`
    raw = matrix('up{job="cartservice"}[1m]')
    assert len(raw) == 2 and raw == _raw_samples(telemetry, CART, at - 60, at)
    # the engine's window functions see the same window
    counts = _expected_instant(telemetry, 'count_over_time(up{job="cartservice"}[1m])', at)
    assert {k[1:]: float(len(v)) for k, v in raw.items()} == counts         # k[0] is __name__
    assert matrix('(up{job="cartservice"}[1m])', post=True) == raw
    # offset and @ move the window; @ overrides the query's time; @ end() is the query's time
    earlier = _raw_samples(telemetry, CART, at - 180, at - 120)
    assert earlier and matrix('up{job="cartservice"}[1m] offset 2m') == earlier
    assert matrix(f'up{{job="cartservice"}}[1m] @ {at - 120}', time=telemetry.now) == earlier
    assert matrix('up{job="cartservice"}[1m] @ end()') == raw
    assert matrix('up{job="cartservice"}[1m]', time=float(telemetry.store.times[0]) - 3600) == {}

    # a subquery: the inner query at the multiples of its step in [time - 5m, time]
    query = 'sum by (job) (up{job=~"cart.*|front.*"})'
    first = math.ceil((at - 300) / 60) * 60
    want = telemetry.query_range(query, first, at, 60.0, 0)
    expected = {tuple(sorted(ls.items())): [(float(t), float(want.values[k, 0, i])) for k, t in enumerate(want.times)]
                for i, ls in enumerate(want.labels)}
    assert len(expected) == 2 and all(len(points) == 5 for points in expected.values())
    assert matrix(f"{query}[5m:1m]") == expected
    assert matrix(f"({query})[5m:1m] offset 1m @ {at + 60}", time=telemetry.now) == expected
    assert matrix(f"{query}[5m:]") == expected                               # default step: 1m

    # what is still an error stays one, as Prometheus reports it
    for bad, words in (('up{job="cartservice"}[1m', "parse error"), ("sum(up[5m])", "matrix"),
                       ("(1)[5m:1m]", "subquery"), ("up[1y:1s]", "steps")):
        answer = requests.get(f"{url}/api/v1/query", params={"query": bad}, timeout=30)
        assert answer.status_code == 400 and answer.json()["errorType"] == "bad_data", answer.text
        assert words in answer.json()["error"], answer.text
    ranged = requests.get(f"{url}/api/v1/query_range", timeout=30,
                          params={"query": "up[5m]", "start": at - 60, "end": at, "step": 15})
    assert ranged.status_code == 400 and 'invalid expression type "range vector"' in ranged.json()["error"]


def test_get_metric_range_data_reads_the_raw_samples(prom: PrometheusConnect, telemetry: Telemetry) -> None:
    end = float(int(telemetry.now) - 120)
    start = end - 900
    rows = prom.get_metric_range_data("up", label_config={"job": "cartservice"}, start_time=_utc(start),
                                      end_time=_utc(end), chunk_size=timedelta(minutes=5))
    assert len(rows) == 2 * 3                                # two series, three 5-minute chunks
    merged: dict[tuple, dict[float, float]] = {}
    for row in rows:              # each chunk holds both ends of its window: a boundary sample comes twice
        merged.setdefault(tuple(sorted(row["metric"].items())), {}).update(
            {float(t): float(v) for t, v in row["values"]})
    want = _raw_samples(telemetry, CART, start, end)
    assert len(want) == 2 and {k: sorted(v.items()) for k, v in merged.items()} == want


def test_a_client_that_goes_away_leaves_no_traceback(server: PrometheusServer, capfd: pytest.CaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    finished: set[int] = set()
    done = threading.Condition()
    original = server.process_request_thread

    def process_request_thread(request: socket.socket, client_address: tuple) -> None:
        try:
            original(request, client_address)       # socketserver reports a failure in here, before we hear of it
        finally:
            with done:
                finished.add(client_address[1])
                done.notify_all()

    monkeypatch.setattr(server, "process_request_thread", process_request_thread)
    request = b"GET /api/v1/query?query=up HTTP/1.1\r\nHost: test\r\n\r\n"

    def go_away(payload: bytes, read: bool, reset: bool) -> None:
        client = socket.create_connection(server.server_address[:2], timeout=60)
        port = client.getsockname()[1]
        client.sendall(payload)
        if read:
            assert client.recv(1) == b"H"           # the answer has begun; the connection stays open (keep-alive)
        if reset:     # linger 0: close with a reset, as a killed client or a client's timeout does
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        with done:
            assert done.wait_for(lambda: port in finished, timeout=120), "the server never finished the connection"

    go_away(b"GET /api/v1/qu", read=False, reset=True)        # a partial request
    go_away(b"GET /api/v1/qu", read=False, reset=False)
    go_away(request, read=False, reset=True)                  # before reading the answer
    go_away(request, read=True, reset=True)                   # mid-answer, or idle between keep-alive requests
    go_away(request, read=True, reset=False)
    assert requests.get(f"{server.url}/api/v1/query", params={"query": "count(up)"}, timeout=30).status_code == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err


def test_serve_reports_a_taken_port_before_simulating(telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    simulated: list[tuple] = []
    monkeypatch.setattr(cli, "_telemetry", lambda *args, **kwargs: simulated.append(args) or telemetry)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = CliRunner().invoke(cli.app, ["serve", "online-shop", "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert simulated == []                                    # it failed before simulating anything
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port 0" in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_serve_binds_then_simulates_then_serves(telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def serve_forever(self: PrometheusServer, poll_interval: float = 0.5) -> None:
        seen["api"] = self.api
        seen["status"] = self.api.handle("/api/v1/query", {"query": ["count(up)"]})[0]
        raise KeyboardInterrupt                               # Ctrl-C

    monkeypatch.setattr(cli, "_telemetry", lambda *args, **kwargs: telemetry)
    monkeypatch.setattr(PrometheusServer, "serve_forever", serve_forever)
    result = CliRunner().invoke(cli.app, ["serve", "online-shop", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert seen["api"].telemetry is telemetry and seen["status"] == 200
    assert "serving" in result.stdout and "stopped" in result.stdout


def test_the_api_grafana_calls(server: PrometheusServer, telemetry: Telemetry) -> None:
    url, end = server.url, telemetry.now
    start = end - 600
    # start and end as RFC 3339 or Unix seconds; GET or a POSTed form
    rfc = {"start": _utc(start).isoformat().replace("+00:00", "Z"), "end": _utc(end).isoformat().replace("+00:00", "Z")}
    unix = {"start": str(start), "end": str(end)}
    match = {"match[]": ['up{job="cartservice"}', 'kube_pod_status_ready{pod=~"cart.*"}']}

    def data(path: str, params: dict, post: bool = False) -> object:
        answer = (requests.post(url + path, data=params, timeout=30) if post
                  else requests.get(url + path, params=params, timeout=30))
        assert answer.status_code == 200 and answer.json()["status"] == "success", answer.text
        return answer.json()["data"]

    labels = data("/api/v1/labels", {**rfc, **match})
    assert labels == data("/api/v1/labels", {**unix, **match}, post=True) and {"__name__", "job", "pod"} <= set(labels)
    assert "up" in data("/api/v1/label/__name__/values", unix)
    assert data("/api/v1/label/job/values", {**rfc, "match[]": "up"}) == sorted(
        set(telemetry.store.label_values("job")) - {""})
    series = data("/api/v1/series", {**rfc, **match})
    assert series == data("/api/v1/series", {**unix, **match}, post=True)
    assert {s["__name__"] for s in series} == {"up", "kube_pod_status_ready"}
    assert data("/api/v1/status/buildinfo", {})["version"].startswith("2.")
    for post in (False, True):
        assert data("/api/v1/query_exemplars", {"query": "up", **rfc}, post=post) == []
        instant = data("/api/v1/query", {"query": "sum(up)", "time": rfc["end"]}, post=post)
        total = format_value(float(telemetry.query("sum(up)", 0, end).values[0, 0]))
        assert instant["result"][0]["value"] == [end, total]
        ranged = data("/api/v1/query_range", {"query": "sum(up)", **(rfc if post else unix), "step": "1m"}, post=post)
        assert [t for t, _ in ranged["result"][0]["values"]] == [start + 60 * k for k in range(11)]

    # metadata's limit as Prometheus reads it: 0 is nothing, a negative one no limit
    everything = data("/api/v1/metadata", {})
    assert len(everything) > 2 and data("/api/v1/metadata", {"limit": "-1"}) == everything
    assert data("/api/v1/metadata", {"limit": "0"}) == {} and len(data("/api/v1/metadata", {"limit": "2"})) == 2
    # query_exemplars checks start and end as Prometheus does
    for bad in ({"query": "up", "start": "then"}, {"query": "up", "start": str(end), "end": str(start)},
                {"query": "up{", **rfc}, {"query": "up", "limit": "many"}):
        path = "/api/v1/metadata" if "limit" in bad else "/api/v1/query_exemplars"
        answer = requests.get(url + path, params=bad, timeout=30)
        assert answer.status_code == 400 and answer.json()["errorType"] == "bad_data", answer.text
    # a browser's CORS preflight before a POST
    preflight = requests.options(f"{url}/api/v1/query", timeout=30)
    assert preflight.status_code == 200 and "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
