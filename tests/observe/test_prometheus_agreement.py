"""Our PromQL engine against a real Prometheus 2.42 on the same samples: a synthetic store built for the edge
cases, and a simulated incident episode with the sensors' own metric names.

One world of a store is exported as OpenMetrics, turned into TSDB blocks by `promtool tsdb create-blocks-from
openmetrics`, served by `prometheus`, and every query of QUERIES is run as instant queries at a few times and as a
range query on both; the results must be the same series with the same values (1e-9 relative). The whole batch is
evaluated at once and its world WORLD compared, so this also checks that worlds do not leak into each other.

`agreement_store()` is the one place that decides the data; replace it to run the same checks on other episodes.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest

from opsworld.engine import Engine
from opsworld.faults.catalogue import entry
from opsworld.faults.injector import Injector
from opsworld.observe.export.openmetrics import write_openmetrics
from opsworld.observe.telemetry import Telemetry
from opsworld.spec import load_scenario
from opsworld.observe.promql import Matrix, Scalar, Vector, instant_query, range_query
from opsworld.observe.store import Family, MetricStore

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None or shutil.which("prometheus") is None,
    reason="needs Prometheus 2.42's `promtool` and `prometheus` on PATH (Debian: apt-get install prometheus; "
           "`make install` does it when run as root)",
)

WORLD = 1
T0 = 1_700_000_000.0          # first scrape (2023-11-14), whole seconds
SCRAPE = 10.0
SCRAPES = 361                 # one hour
BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")
REQ = "http_server_requests_total"
MEM = "container_memory_working_set_bytes"
LAT = "http_server_request_duration_seconds"

QUERIES: list[str] = [
    # selectors, matchers, offset, lookback
    "up",
    f'{REQ}{{code="500"}}',
    f'{REQ}{{code!="200"}}',
    f'{REQ}{{service=~"front.*"}}',
    f'{REQ}{{service!~"front.*", code="200"}}',
    f"{MEM} offset 5m",
    f'{MEM}{{container="sidecar"}} offset 90s',
    # rates and friends
    f"rate({REQ}[5m])",
    f"rate({REQ}[1m])",
    f"irate({REQ}[2m])",
    f"increase({REQ}[10m])",
    f"delta({MEM}[5m])",
    f"idelta({MEM}[3m])",
    "rate(container_cpu_usage_seconds_total[5m] offset 2m)",
    "changes(up[15m])",
    f"resets({REQ}[30m])",
    # *_over_time
    f"avg_over_time({MEM}[5m])",
    f"min_over_time({MEM}[10m])",
    f"max_over_time({MEM}[10m])",
    "sum_over_time(up[5m])",
    f"count_over_time({REQ}[5m])",
    f"last_over_time({MEM}[5m])",
    f"stddev_over_time({MEM}[10m])",
    f"stdvar_over_time({MEM}[10m])",
    f"quantile_over_time(0.9, {MEM}[10m])",
    "quantile_over_time(0.25, container_cpu_usage_seconds_total[3m])",
    "present_over_time(up[2m])",
    'absent_over_time(up{job="checkout"}[5m])',
    'absent_over_time(nonexistent_metric{job="x"}[5m])',
    # histograms
    f"histogram_quantile(0.9, rate({LAT}_bucket[5m]))",
    f"histogram_quantile(0.5, sum by (le) (rate({LAT}_bucket[5m])))",
    f"histogram_quantile(0.9, sum by (le) (rate({LAT}_bucket[5m])))",
    f"histogram_quantile(0.99, sum by (service, le) (increase({LAT}_bucket[10m])))",
    f"histogram_quantile(0, rate({LAT}_bucket[5m]))",
    f"histogram_quantile(1, rate({LAT}_bucket[5m]))",
    f"histogram_quantile(0.001, rate({LAT}_bucket[1m]))",
    f"rate({LAT}_sum[5m]) / rate({LAT}_count[5m])",
    # instant-vector functions
    f"abs(delta({MEM}[5m]))",
    f"clamp(rate({REQ}[5m]), 0.5, 2)",
    f"clamp_min(rate({REQ}[5m]), 1)",
    f"clamp_max(rate({REQ}[5m]), 1)",
    f"ceil(rate({REQ}[5m]))",
    f"floor(rate({REQ}[5m]))",
    f"round(rate({REQ}[5m]), 0.1)",
    f"round({MEM} / 1e6)",
    "sqrt(container_cpu_usage_seconds_total)",
    f"exp(-rate({REQ}[5m]))",
    "ln(container_cpu_usage_seconds_total)",
    'absent(up{job="nope", instance="x"})',
    "absent(up)",
    "scalar(sum(up))",
    'scalar(up{instance="nope"})',
    "vector(1)",
    "time()",
    "vector(time()) - 1",
    f"sort_desc(rate({REQ}[5m]))",
    # aggregations
    f"sum(rate({REQ}[5m]))",
    f"sum by (service) (rate({REQ}[5m]))",
    f"sum without (pod) (rate({REQ}[5m]))",
    f"avg by (container) ({MEM})",
    f"min by (service) (rate({REQ}[5m]))",
    f"max without (container) ({MEM})",
    f"count by (code) ({REQ})",
    f"topk(2, {MEM})",
    f"bottomk(1, {MEM}) by (container)",
    f"topk(1, rate({REQ}[5m])) by (service)",
    f"quantile(0.5, {MEM})",
    f"quantile by (container) (0.75, {MEM})",
    f"stddev({MEM})",
    f"stdvar by (container) ({MEM})",
    "group by (job) (up)",
    "count(up == 1)",
    "sum(up) / count(up)",
    # binary operators and vector matching
    f'sum by (service) (rate({REQ}{{code="500"}}[5m])) / sum by (service) (rate({REQ}[5m]))',
    f"{MEM} > 1.25e8",
    f"1.2e8 < {MEM}",
    f"{MEM} > bool 1.5e8",
    f"rate({REQ}[5m]) >= 1",
    f"rate({REQ}[5m]) != bool 0",
    f"{MEM} / container_spec_memory_limit_bytes > 0.5",
    f"{MEM} >= bool on(pod, container) container_spec_memory_limit_bytes * 0.6",
    f"{MEM} > ignoring(container) group_left {MEM}{{container=\"sidecar\"}}",
    f"rate({REQ}[5m]) * on(pod) group_left(node) kube_pod_info",
    f"kube_pod_info * on(pod) group_right(node) {MEM}",
    f"rate({REQ}[5m]) / ignoring(code) group_left sum without (code) (rate({REQ}[5m]))",
    f"{MEM} - on(pod, container) container_spec_memory_limit_bytes",
    f"sum by (service, pod) (rate({REQ}[5m])) / on(pod) rate(container_cpu_usage_seconds_total[5m])",
    f'{REQ}{{code="200"}} - ignoring(code) {REQ}{{code="500"}}',
    f"container_cpu_usage_seconds_total and on(pod) ({MEM} > 1.2e8)",
    f'{REQ}{{code="500"}} or {REQ}{{code="503"}}',
    f"rate({REQ}[5m]) or on(pod) up",
    "up unless on(instance) up == 0",
    f"-{MEM}",
    f"{MEM} % 7",
    "container_cpu_usage_seconds_total ^ 0.5",
    f"2 * {MEM} + 1",
    "2 ^ 3 + 10 % 3",
    "(1 + 2) * 3 > bool 8",
    f"{MEM} atan2 1e8",
    # NaN samples (0/0) and infinities are values in Prometheus, not absences
    "delta(container_spec_memory_limit_bytes[5m]) / delta(container_spec_memory_limit_bytes[5m])",
    "count by (container) (0 / delta(container_spec_memory_limit_bytes[5m]))",
    "max(0 / delta(container_spec_memory_limit_bytes[5m]))",
    "sum(0 / delta(container_spec_memory_limit_bytes[5m]))",
    f"{MEM} / 0",
    f"-{MEM} / 0 < 0",
    f"histogram_quantile(0.5, rate({LAT}_bucket[5m]) * 0)",
    f"histogram_quantile(1.5, rate({LAT}_bucket[5m]))",
    f"histogram_quantile(-0.5, rate({LAT}_bucket[5m]))",
]


# --------------------------------------------------------------------------------------------------- the store
def _store() -> MetricStore:
    """Two worlds of an hour of telemetry of two services (four pods) at 10 s scrapes, with ms jitter. World 1
    (exported) has a pod restart at 30m (counter reset, up=0, memory gap), a scrape gap of frontend-1 from 20m to
    27m, a sidecar that stops at 50m, a 503 series that starts at 10m and a latency bucket missing from 25m to 32m;
    world 0 differs in values and in which series exist."""
    pods = {"frontend": ["frontend-0", "frontend-1"], "checkout": ["checkout-0", "checkout-1"]}
    nodes = {"frontend-0": "node-a", "frontend-1": "node-b", "checkout-0": "node-a", "checkout-1": "node-c"}
    labels: list[dict[str, str]] = []

    def add(**ls: str) -> int:
        labels.append(ls)
        return len(labels) - 1

    req = {(s, p, c): add(__name__=REQ, service=s, pod=p, code=c)
           for s, ps in pods.items() for p in ps for c in ("200", "500")}
    req[("checkout", "checkout-0", "503")] = add(__name__=REQ, service="checkout", pod="checkout-0", code="503")
    req[("frontend", "frontend-0", "404")] = add(__name__=REQ, service="frontend", pod="frontend-0", code="404")
    cpu = {p: add(__name__="container_cpu_usage_seconds_total", pod=p, container="app") for ps in pods.values()
           for p in ps}
    mem = {(p, c): add(__name__=MEM, pod=p, container=c) for ps in pods.values() for p in ps
           for c in ("app", "sidecar")}
    limit = {(p, c): add(__name__="container_spec_memory_limit_bytes", pod=p, container=c)
             for ps in pods.values() for p in ps for c in ("app", "sidecar")}
    info = {p: add(__name__="kube_pod_info", pod=p, node=nodes[p]) for ps in pods.values() for p in ps}
    up = {p: add(__name__="up", job=s, instance=f"{p}:8080") for s, ps in pods.items() for p in ps}
    bucket = {(s, le): add(__name__=f"{LAT}_bucket", service=s, le=le) for s in pods for le in BUCKETS}
    lat_sum = {s: add(__name__=f"{LAT}_sum", service=s) for s in pods}
    lat_count = {s: add(__name__=f"{LAT}_count", service=s) for s in pods}
    families = [
        Family("http_server_requests", "counter", "HTTP requests served."),
        Family("container_cpu_usage_seconds", "counter", "CPU time used."),
        Family(MEM, "gauge", "Working set memory."),
        Family("container_spec_memory_limit_bytes", "gauge", "Memory limit."),
        Family("kube_pod_info", "gauge", "Pod placement."),
        Family("up", "gauge", "Target scraped."),
        Family(LAT, "histogram", "Request latency."),
    ]

    rng = np.random.default_rng(20231114)
    worlds, n = 2, len(labels)
    minute = np.arange(SCRAPES) * SCRAPE / 60.0
    vals = np.full((SCRAPES, worlds, n), np.nan)
    for w in range(worlds):
        restart = (minute >= 30) & (minute < 30.4) if w == 1 else (minute >= 41) & (minute < 41.2)
        born = np.cumsum(minute >= (30.4 if w == 1 else 41.2)) > 0          # after the restart
        gap = (minute >= 20) & (minute < 27) if w == 1 else np.zeros(SCRAPES, dtype=bool)
        down = {p: (restart if p == "checkout-0" else np.zeros(SCRAPES, dtype=bool)) for ps in pods.values()
                for p in ps}
        missing = {p: down[p] | (gap if p == "frontend-1" else False) for p in down}
        for (s, p, c), col in req.items():
            rate = {"200": 20.0, "500": 0.8, "503": 0.3, "404": 0.5}[c] * (1.5 if s == "frontend" else 1.0)
            inc = rng.poisson(rate * SCRAPE * (1 + 0.3 * np.sin(minute / 7 + w)), SCRAPES).astype(float)
            if p == "checkout-0":
                inc[born.argmax()] = 0.0                                       # counter restarts from 0
                series = np.where(born, np.cumsum(np.where(born, inc, 0)), np.cumsum(np.where(born, 0, inc)))
            else:
                series = np.cumsum(inc) + 1000.0 * (w + 1)
            series[missing[p]] = np.nan
            if c == "503":
                series[(minute < 10) | (w == 0)] = np.nan                      # only in world 1, from 10m
            if c == "404" and w == 1:
                series[:] = np.nan                                             # only in world 0
            vals[:, w, col] = series
        for p, col in cpu.items():
            used = np.cumsum(rng.gamma(2.0, 0.6 if "checkout" in p else 0.3, SCRAPES))
            if p == "checkout-0":
                used = np.where(born, used - used[born.argmax()] + 0.25, used)
            used[missing[p]] = np.nan
            vals[:, w, cpu[p]] = used
        for (p, c), col in mem.items():
            base = 1.2e8 if c == "app" else 3.0e7
            walk = base + np.cumsum(rng.normal(0, 2e6 if c == "app" else 4e5, SCRAPES))
            series = np.round(walk / 4096) * 4096
            series[missing[p]] = np.nan
            if c == "sidecar" and p == "frontend-1":
                series[minute >= (50 if w == 1 else 0)] = np.nan                  # stops at 50m; never in w0
            vals[:, w, col] = series
            vals[:, w, limit[(p, c)]] = 2.5e8 if c == "app" else 6.4e7
        for p, col in info.items():
            vals[:, w, col] = 1.0
        for p, col in up.items():
            vals[:, w, col] = np.where(missing[p], 0.0, 1.0)
        for s in pods:
            obs = rng.poisson(150 if s == "frontend" else 60, SCRAPES)
            lat = [rng.lognormal(-3.0 if s == "frontend" else -2.0, 0.9, k) for k in obs]
            bounds = np.array([float(b) for b in BUCKETS])
            per_bucket = np.array([[np.sum(x <= b) for b in bounds] for x in lat], dtype=float)
            for j, le in enumerate(BUCKETS):
                vals[:, w, bucket[(s, le)]] = np.cumsum(per_bucket[:, j])
            if s == "checkout":         # one bucket not scraped for 7 minutes: sums by le stop being monotonic
                vals[150:192, w, bucket[(s, "0.25")]] = np.nan
            vals[:, w, lat_sum[s]] = np.cumsum([x.sum() for x in lat])
            vals[:, w, lat_count[s]] = np.cumsum(obs.astype(float))

    store = MetricStore(labels, families, worlds)
    jitter = rng.integers(0, 400, SCRAPES) / 1000.0
    for k in range(SCRAPES):
        store.append(T0 + k * SCRAPE + jitter[k], vals[k])
    return store


@pytest.fixture(scope="session")
def agreement_store() -> MetricStore:
    """The store whose world WORLD is served by Prometheus and compared (replace to check other episodes)."""
    return _store()


@pytest.fixture(scope="session")
def incident_store() -> MetricStore:
    """A simulated incident: an hour of the online shop, two worlds, whose cart service's memory creeps until it is
    OOM-killed and crash-loops (counter resets, pods that come and go) while a bad currency deploy fails requests."""
    scenario = load_scenario("online-shop", {"duration": "1h"})
    faults = [entry("memory_creep").make(target="cartservice", page_after="15m", onset="5m"),
              entry("bad_deploy_errors").make(target="currencyservice", onset="20m")]
    telemetry = Telemetry(Injector(Engine(scenario, worlds=2, seed=11), faults), rules=False, text=False)
    telemetry.run()
    return telemetry.store


# ------------------------------------------------------------------------------------------ the real server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 10.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def _serve(store: MetricStore, root) -> Iterator[str]:
    """Base URL of a Prometheus serving world WORLD of the store from promtool-built blocks."""
    om = root / "world.om"
    write_openmetrics(store, WORLD, om)
    data = root / "data"
    built = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    config = root / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n  evaluation_interval: 1h\n")
    port = _free_port()
    log = open(root / "prometheus.log", "w")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={data}",
         "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (root / "prometheus.log").read_text()
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as resp:
                    probe = 'count({__name__=~".+"})'
                    if resp.status == 200 and _prom_instant(base, probe, _times(store)[1])["result"]:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def prometheus(agreement_store: MetricStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(agreement_store, tmp_path_factory.mktemp("prometheus"))


@pytest.fixture(scope="module")
def incident_prometheus(incident_store: MetricStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(incident_store, tmp_path_factory.mktemp("prometheus-incident"))


def _prom_instant(base: str, query: str, at: float) -> dict:
    q = urllib.parse.urlencode({"query": query, "time": f"{at:.3f}"})
    body = _get(f"{base}/api/v1/query?{q}")
    assert body["status"] == "success", body
    return body["data"]


def _prom_range(base: str, query: str, start: float, end: float, step: float) -> dict:
    q = urllib.parse.urlencode({"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}"})
    body = _get(f"{base}/api/v1/query_range?{q}")
    assert body["status"] == "success", body
    return body["data"]


# ------------------------------------------------------------------------------------------------ comparing
Key = tuple[tuple[str, str], ...]


def _key(labels: dict[str, str]) -> Key:
    return tuple(sorted(labels.items()))


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _assert_same(ours: dict[Key, float], theirs: dict[Key, float], what: str) -> None:
    assert set(ours) == set(theirs), (f"{what}: series differ\n  only ours: {sorted(set(ours) - set(theirs))}\n"
                                      f"  only Prometheus: {sorted(set(theirs) - set(ours))}")
    bad = {k: (ours[k], theirs[k]) for k in ours if not _same(ours[k], theirs[k])}
    assert not bad, f"{what}: values differ (ours, Prometheus): {bad}"


def _ours_instant(result: Vector | Scalar) -> dict[Key, float]:
    if isinstance(result, Scalar):
        return {(): float(result.values[WORLD])}
    assert result.present is not None
    return {_key(ls): float(result.values[WORLD, i]) for i, ls in enumerate(result.labels)
            if result.present[WORLD, i]}


def _theirs_instant(data: dict) -> dict[Key, float]:
    if data["resultType"] == "scalar":
        return {(): float(data["result"][1])}
    return {_key(r["metric"]): float(r["value"][1]) for r in data["result"]}


def _ours_range(result: Matrix) -> dict[Key, float]:
    assert result.present is not None
    out: dict[Key, float] = {}
    for i, ls in enumerate(result.labels):
        for k, t in enumerate(result.times):
            if result.present[k, WORLD, i]:
                out[(*_key(ls), ("@", f"{t:.3f}"))] = float(result.values[k, WORLD, i])
    return out


def _theirs_range(data: dict) -> dict[Key, float]:
    return {(*_key(r["metric"]), ("@", f"{float(t):.3f}")): float(v)
            for r in data["result"] for t, v in r["values"]}


def _times(store: MetricStore) -> list[float]:
    """Instant-query times: near the start (windows not yet full), a scrape time exactly (the newest sample at t),
    a scrape time + 5m exactly (a sample on the inclusive left edge of lookback and [5m] ranges), inside the
    range at odd milliseconds, near the end, and, found in the data, just after the first counter reset (irate's
    reset rule), 299.5 s after it (a [5m] window starting on the reset: rate's zero-point clamp) and exactly 5m
    after a series' last sample before a gap (the lookback's inclusive left edge)."""
    times = store.times
    first, last, mid = float(times[0]), float(times[-1]), len(times) // 2
    out = [first + 45.0, float(times[mid]), float(times[mid // 2]) + 300.0, first + 0.62 * (last - first) + 0.123,
           last - 10.0]
    vals = store.values[:, WORLD, :]
    present = ~np.isnan(vals)
    counters = np.array([ls["__name__"].endswith("_total") for ls in store.labels])
    filled = np.where(present, vals, -np.inf)
    np.maximum.accumulate(filled, axis=0, out=filled)           # the counter's high-water mark so far
    dropped = present[1:] & (vals[1:] < filled[:-1]) & counters
    if dropped.any():
        k = int(np.flatnonzero(dropped.any(axis=1))[0]) + 1
        out += [float(times[k]) + 0.5, float(times[k]) + 299.5]
    stops = present[:-1] & ~present[1:]
    stops[times[:-1] + 300.0 > last] = False
    if stops.any():
        out.append(float(times[int(np.flatnonzero(stops.any(axis=1))[0])]) + 300.0)
    return out


def _ranges(store: MetricStore) -> list[tuple[float, float, float]]:
    """Range queries: the whole store at 60 s steps from the first whole second, and a stretch at 30 s steps."""
    first, last = float(np.floor(store.times[0])), float(store.times[-1])
    return [(first, last + 10.0, 60.0), (first + 0.33 * (last - first), first + 0.53 * (last - first), 30.0)]


@pytest.mark.parametrize("query", QUERIES, ids=QUERIES)
def test_instant_query_agrees(query: str, prometheus: str, agreement_store: MetricStore) -> None:
    for at in _times(agreement_store):
        _assert_same(_ours_instant(instant_query(query, agreement_store, at)),
                     _theirs_instant(_prom_instant(prometheus, query, at)), f"{query} @ {at:.3f}")


@pytest.mark.parametrize("query", QUERIES, ids=QUERIES)
def test_range_query_agrees(query: str, prometheus: str, agreement_store: MetricStore) -> None:
    for start, end, step in _ranges(agreement_store):
        _assert_same(_ours_range(range_query(query, agreement_store, start, end, step)),
                     _theirs_range(_prom_range(prometheus, query, start, end, step)),
                     f"{query} over [{start:.3f}, {end:.3f}] step {step:.0f}s")


def test_enough_queries() -> None:
    assert len(QUERIES) >= 60 and len(set(QUERIES)) == len(QUERIES)


def test_batch_equals_single_world(agreement_store: MetricStore) -> None:
    """Evaluating the batch and one world's view give the same answer for that world."""
    one = agreement_store.world(WORLD)
    at = _times(agreement_store)[3]
    for query in QUERIES:
        batch = _ours_instant(instant_query(query, agreement_store, at))
        alone = instant_query(query, one, at)
        single = ({(): float(alone.values[0])} if isinstance(alone, Scalar)
                  else {_key(ls): float(alone.values[0, i]) for i, ls in enumerate(alone.labels)
                        if alone.present is not None and alone.present[0, i]})
        _assert_same(batch, single, query)


# ------------------------------------------------------------------------------------ a simulated incident
R, L, M, C = ("http_server_requests_total", "http_server_request_duration_seconds",
              "container_memory_working_set_bytes", "container_cpu_usage_seconds_total")
INCIDENT_QUERIES: list[str] = [
    # selectors, matchers, offset
    "up == 0", f'{R}{{service="cartservice", code="200"}}', f'{R}{{service="frontend", code!="200"}}',
    f'{R}{{service=~"cart.*|currency.*", code=~"5.."}}', f'{M}{{container!~"front.*"}}', f"{M} offset 10m",
    'kube_pod_container_status_restarts_total{container="cartservice"}',
    # rates
    f"rate({R}[5m])", f'irate({R}{{service="cartservice"}}[1m])', f"increase({R}[15m])", f"delta({M}[10m])",
    f"idelta({M}[2m])", f"rate({C}[5m] offset 5m)", f'resets({R}{{service="cartservice"}}[1h])',
    'changes(kube_pod_status_ready[30m])', "increase(kube_pod_container_status_restarts_total[1h])",
    # *_over_time
    f"avg_over_time({M}[10m])", f"min_over_time({M}[10m])", f"max_over_time({M}[30m])",
    "sum_over_time(up[5m])", f'count_over_time({R}{{code="200"}}[5m])', f"last_over_time({M}[5m])",
    f"stddev_over_time({M}[15m])", f"stdvar_over_time({M}[15m])", f"quantile_over_time(0.95, {M}[20m])",
    "present_over_time(kube_pod_container_status_waiting_reason[10m])",
    'absent_over_time(up{job="cartservice", instance="10.9.9.9:8080"}[5m])',
    # histograms
    f"histogram_quantile(0.99, sum by (service, le) (rate({L}_bucket[5m])))",
    f'histogram_quantile(0.9, sum by (endpoint, le) (rate({L}_bucket{{service="frontend"}}[10m])))',
    f"histogram_quantile(0.5, rate({L}_bucket[5m]))",
    f"sum by (service) (rate({L}_sum[5m])) / sum by (service) (rate({L}_count[5m]))",
    # functions
    f"abs(delta({M}[5m]))", f"clamp(rate({R}[5m]), 1, 50)", f"clamp_min(rate({R}[5m]), 5)",
    f"clamp_max(rate({R}[5m]), 5)", f"ceil(rate({C}[5m]) * 100)", f"floor({M} / 1e6)", f"round({M} / 1e6, 0.5)",
    f"sqrt(rate({C}[5m]))", f"exp(-rate({C}[5m]))", f"ln({M})", 'absent(up{job="nope"})', "absent(up)",
    "scalar(sum(up == 1))", "vector(3)", "time() - max(probe_ssl_earliest_cert_expiry) * 0",
    # aggregations
    f"sum(rate({R}[5m]))", f"sum by (service, code) (rate({R}[5m]))", f"sum without (pod, instance, node, zone) (rate({R}[5m]))",
    f"avg by (container) ({M})", f"min by (service) (rate({R}[5m]))", f"max without (pod, node) ({M})",
    f"count by (code) ({R})", f"topk(3, rate({C}[5m]))", f"bottomk(2, {M})",
    f"topk(1, rate({R}[5m])) by (service)", f"quantile(0.9, {M})", f"quantile by (container) (0.5, {M})",
    f"stddev by (container) ({M})", f"stdvar({M})", "group by (job) (up)", "count(up == 1)",
    # binary operators and matching
    f'sum by (service) (rate({R}{{code=~"5.."}}[5m])) / sum by (service) (rate({R}[5m])) > 0.01',
    f"{M} / container_spec_memory_limit_bytes > 0.5",
    f"{M} / on(pod, container) container_spec_memory_limit_bytes",
    f"{M} > bool 2e8", f"rate({R}[5m]) >= 10", f"rate({R}[5m]) != bool 0",
    f'rate({R}{{code="500"}}[5m]) / ignoring(code) group_left rate({R}{{code="200"}}[5m])',
    f"sum by (pod) (rate({R}[5m])) * on(pod) group_left(node) max by (pod, node) ({M} * 0 + 1)",
    f"max by (pod, node) ({M} * 0 + 1) * on(pod) group_right(node) sum by (pod) (rate({R}[5m]))",
    f'{R}{{code="200"}} - ignoring(code) {R}{{code="500"}}',
    f"{C} and on(pod) ({M} > 1e8)", f'{R}{{code="500"}} or {R}{{code="502"}}',
    "kube_pod_status_ready unless on(pod) kube_pod_container_status_waiting_reason == 1",
    f"-{M}", f"{M} % 1000", f"rate({C}[5m]) ^ 2", f"2 * {M} + 1", f"{M} atan2 1e8",
    f"rate({R}[5m]) / rate({R}[5m])",
    f"{M} <= 1.5e8", f"{M} < bool 1e8", f'avg(rate({R}{{code="200"}}[5m]))', "count_over_time(up[30m]) == 180",
]


@pytest.mark.parametrize("query", INCIDENT_QUERIES, ids=INCIDENT_QUERIES)
def test_incident_instant_query_agrees(query: str, incident_prometheus: str, incident_store: MetricStore) -> None:
    for at in _times(incident_store):
        _assert_same(_ours_instant(instant_query(query, incident_store, at)),
                     _theirs_instant(_prom_instant(incident_prometheus, query, at)), f"{query} @ {at:.3f}")


@pytest.mark.parametrize("query", INCIDENT_QUERIES, ids=INCIDENT_QUERIES)
def test_incident_range_query_agrees(query: str, incident_prometheus: str, incident_store: MetricStore) -> None:
    for start, end, step in _ranges(incident_store):
        _assert_same(_ours_range(range_query(query, incident_store, start, end, step)),
                     _theirs_range(_prom_range(incident_prometheus, query, start, end, step)),
                     f"{query} over [{start:.3f}, {end:.3f}] step {step:.0f}s")


def test_enough_incident_queries(incident_store: MetricStore) -> None:
    assert len(INCIDENT_QUERIES) >= 60 and len(set(INCIDENT_QUERIES)) == len(INCIDENT_QUERIES)
    restarts = instant_query("max(kube_pod_container_status_restarts_total)", incident_store,
                             float(incident_store.times[-1]))
    assert restarts.values[WORLD].max() >= 1, "the incident should OOM-kill the cart service at least once"
