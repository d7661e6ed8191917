"""The trace readers: OTLP, Jaeger, Zipkin and Nezha files become one table of spans, field for field; bad input is
refused in one line naming the file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from opsworld.spec.traces import Spans, TraceFormatError, read_spans
from opsworld.spec.traces.readers import detect_format, service_of_pod
from opsworld.spec.traces.spans import link_parents

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"      # ../shared/data beside the checkout

T1, T2 = "0af7651916cd43dd8448eb211c80319c", "1bf7651916cd43dd8448eb211c80319d"
BASE_US = 1_700_000_000_000_000     # a Unix time in microseconds

# Two traces: the frontend calls cart and currency (currency fails: an error status on its server span, HTTP 503 on
# the frontend's client span); then the frontend calls cart alone. In file order, one row each.
SPANS: list[dict[str, Any]] = [
    dict(trace=T1, span="a000000000000001", parent=None, service="frontend", op="GET /cart", kind="server",
         start=0, dur=50_000),
    dict(trace=T1, span="a000000000000002", parent=0, service="frontend", op="cart/GetCart", kind="client",
         start=5_000, dur=20_000),
    dict(trace=T1, span="a000000000000003", parent=1, service="cart", op="cart/GetCart", kind="server",
         start=7_000, dur=15_000),
    dict(trace=T1, span="a000000000000004", parent=0, service="frontend", op="currency/Convert", kind="client",
         start=30_000, dur=10_000, http=503),
    dict(trace=T1, span="a000000000000005", parent=3, service="currency", op="currency/Convert", kind="server",
         start=31_000, dur=8_000, failed=True),
    dict(trace=T2, span="b000000000000001", parent=None, service="frontend", op="GET /", kind="server",
         start=1_000_000, dur=30_000),
    dict(trace=T2, span="b000000000000002", parent=5, service="frontend", op="cart/GetCart", kind="client",
         start=1_002_000, dur=20_000),
    dict(trace=T2, span="b000000000000003", parent=6, service="cart", op="cart/GetCart", kind="server",
         start=1_004_000, dur=15_000),
]
PARENTS = [-1, 0, 1, 0, 3, -1, 5, 6]
ERRORS = [False, False, False, True, True, False, False, False]
PODS = {"frontend": "frontend-579b9bff58-t2dbm", "cart": "cart-7f8d7d756d-k7b9j", "currency": "currency-0"}


def parent_id(s: dict[str, Any]) -> str | None:
    return None if s["parent"] is None else SPANS[s["parent"]]["span"]


# --- writers: the same two traces in each format -------------------------------------------------------------------

OTLP_RESOURCES = {    # each service names its instance by a different attribute, to exercise the fallbacks
    "frontend": {"service.instance.id": "frontend-1", "host.name": "node-a"},
    "cart": {"k8s.pod.name": "cart-pod", "host.name": "node-b"},
    "currency": {"host.name": "node-c"},
}
OTLP_INSTANCES = {"frontend": "frontend-1", "cart": "cart-pod", "currency": "node-c"}


def otlp(spans: list[dict[str, Any]], *, enums_as_names: bool = False, old_scope: bool = False) -> dict[str, Any]:
    """One OTLP export: a resourceSpans entry per run of spans of one service (as an SDK batch would group them)."""
    kinds = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
    out: list[dict[str, Any]] = []
    for s in spans:
        span: dict[str, Any] = {
            "traceId": s["trace"], "spanId": s["span"], "parentSpanId": parent_id(s) or "", "name": s["op"],
            "kind": f"SPAN_KIND_{s['kind'].upper()}" if enums_as_names else kinds[s["kind"]],
            "startTimeUnixNano": (BASE_US + s["start"]) * 1000,
            "endTimeUnixNano": (BASE_US + s["start"] + s["dur"]) * 1000,
            "attributes": [{"key": "rpc.system", "value": {"stringValue": "grpc"}}],
            "status": {"code": ("STATUS_CODE_ERROR" if enums_as_names else 2) if s.get("failed") else 0},
        }
        if not enums_as_names:      # the protobuf JSON mapping writes 64-bit integers as strings
            for key in ("startTimeUnixNano", "endTimeUnixNano"):
                span[key] = str(span[key])
        if s.get("http"):
            span["attributes"].append({"key": "http.status_code", "value": {"intValue": str(s["http"])}})
        if out and out[-1]["service"] == s["service"]:
            out[-1]["spans"].append(span)
        else:
            out.append({"service": s["service"], "spans": [span]})
    scope_key = "instrumentationLibrarySpans" if old_scope else "scopeSpans"
    return {"resourceSpans": [
        {"resource": {"attributes": [{"key": k, "value": {"stringValue": v}} for k, v in
                                     {"service.name": r["service"], **OTLP_RESOURCES[r["service"]]}.items()]},
         scope_key: [{"scope": {"name": "test"}, "spans": r["spans"]}]} for r in out]}


JAEGER_PROCESSES = {"frontend": ("p1", [{"key": "hostname", "value": "frontend-1"},
                                         {"key": "ip", "value": "10.0.0.1"}]),
                    "cart": ("p2", [{"key": "ip", "value": "10.0.0.2"}]),
                    "currency": ("p3", [{"key": "jaeger.version", "value": "Go-2.30"}])}
JAEGER_INSTANCES = {"frontend": "frontend-1", "cart": "10.0.0.2", "currency": ""}


def jaeger(spans: list[dict[str, Any]]) -> dict[str, Any]:
    data = []
    for trace in dict.fromkeys(s["trace"] for s in spans):
        out = []
        for s in (s for s in spans if s["trace"] == trace):
            tags: list[dict[str, Any]] = [{"key": "span.kind", "value": s["kind"]}]
            if s.get("failed"):
                tags.append({"key": "error", "value": True})
            if s.get("http"):
                tags.append({"key": "http.status_code", "value": s["http"]})
            refs = [] if s["parent"] is None else [
                {"refType": "FOLLOWS_FROM", "traceID": trace, "spanID": "ffffffffffffffff"},   # CHILD_OF wins
                {"refType": "CHILD_OF", "traceID": trace, "spanID": parent_id(s)}]
            out.append({"traceID": trace, "spanID": s["span"], "operationName": s["op"], "references": refs,
                        "startTime": BASE_US + s["start"], "duration": s["dur"], "tags": tags, "logs": [],
                        "processID": JAEGER_PROCESSES[s["service"]][0], "warnings": None})
        processes = {pid: {"serviceName": name, "tags": tags} for name, (pid, tags) in JAEGER_PROCESSES.items()}
        data.append({"traceID": trace, "spans": out, "processes": processes, "warnings": None})
    return {"data": data, "total": 0, "limit": 0, "offset": 0, "errors": None}


ZIPKIN_ENDPOINTS = {"frontend": {"serviceName": "frontend", "ipv4": "10.0.0.1", "port": 8080},
                    "cart": {"serviceName": "cart", "ipv6": "fd00::2"},
                    "currency": {"serviceName": "currency"}}
ZIPKIN_INSTANCES = {"frontend": "10.0.0.1:8080", "cart": "fd00::2", "currency": ""}


def zipkin(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for s in spans:
        span: dict[str, Any] = {"traceId": s["trace"], "id": s["span"], "name": s["op"], "kind": s["kind"].upper(),
                                "timestamp": BASE_US + s["start"], "duration": s["dur"],
                                "localEndpoint": ZIPKIN_ENDPOINTS[s["service"]], "tags": {}}
        if s["parent"] is not None:
            span["parentId"] = parent_id(s)
        if s.get("failed"):
            span["tags"]["error"] = "connection refused"
        if s.get("http"):
            span["tags"]["http.status_code"] = str(s["http"])
        out.append(span)
    return out


NEZHA_HEADER = "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration"


def nezha(spans: list[dict[str, Any]]) -> str:
    lines = [NEZHA_HEADER]
    for s in spans:
        start_ns = (BASE_US + s["start"]) * 1000 + 123     # nanoseconds past the microsecond, as Go SDKs record
        lines.append(f"{s['trace']},{s['span']},{parent_id(s) or 'root'},{PODS[s['service']]},{s['op']},"
                     f"{start_ns},{start_ns + s['dur'] * 1000},{s['dur']}")
    return "\n".join(lines) + "\n"


# --- checks --------------------------------------------------------------------------------------------------------

def check(table: Spans, *, instances: dict[str, str], kinds: bool = True, errors: bool = True) -> None:
    """Every field of `table` against SPANS, row for row."""
    assert len(table) == len(SPANS)
    assert table.trace.tolist() == [s["trace"] for s in SPANS]
    assert table.span.tolist() == [s["span"] for s in SPANS]
    assert table.parent.dtype == np.int64 and table.parent.tolist() == PARENTS
    assert table.service.tolist() == [s["service"] for s in SPANS]
    assert table.instance.tolist() == [instances[s["service"]] for s in SPANS]
    assert table.operation.tolist() == [s["op"] for s in SPANS]
    assert table.kind.tolist() == ([s["kind"] for s in SPANS] if kinds else [""] * len(SPANS))
    assert table.start.dtype == np.float64
    np.testing.assert_allclose(table.start, [(BASE_US + s["start"]) / 1e6 for s in SPANS], rtol=0, atol=1e-6)
    np.testing.assert_allclose(table.duration, [s["dur"] / 1e6 for s in SPANS], rtol=0, atol=1e-9)
    assert table.error.dtype == bool and table.error.tolist() == (ERRORS if errors else [False] * len(SPANS))
    for column in (table.trace, table.span, table.service, table.instance, table.operation, table.kind):
        assert column.dtype == object


def refused(path: Path, fmt: str | None = None) -> str:
    """The message read_spans refuses `path` with: one line, naming the file."""
    with pytest.raises(TraceFormatError) as info:
        read_spans(path, fmt)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def write(path: Path, content: Any) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


# --- the four formats ----------------------------------------------------------------------------------------------

def test_otlp_json(tmp_path: Path) -> None:
    path = write(tmp_path / "spans.json", otlp(SPANS))
    assert detect_format(path) == "otlp"
    check(read_spans(path), instances=OTLP_INSTANCES)
    check(read_spans(str(path), "otlp"), instances=OTLP_INSTANCES)


def test_otlp_json_lines(tmp_path: Path) -> None:
    """The collector's file exporter: one export per line; enum names, integer times and the pre-1.0 scope key."""
    lines = [otlp(SPANS[:5], enums_as_names=True, old_scope=True), otlp(SPANS[5:], enums_as_names=True)]
    path = write(tmp_path / "otel.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    assert detect_format(path) == "otlp"
    check(read_spans(path), instances=OTLP_INSTANCES)


def test_jaeger_json(tmp_path: Path) -> None:
    path = write(tmp_path / "traces.json", jaeger(SPANS))
    assert detect_format(path) == "jaeger"
    check(read_spans(path), instances=JAEGER_INSTANCES)
    check(read_spans(path, "jaeger"), instances=JAEGER_INSTANCES)


def test_zipkin_json(tmp_path: Path) -> None:
    path = write(tmp_path / "zipkin.json", zipkin(SPANS))
    assert detect_format(path) == "zipkin"
    check(read_spans(path), instances=ZIPKIN_INSTANCES)
    # the /api/v2/traces answer: a list of traces, each a list of spans
    nested = write(tmp_path / "nested.json", [zipkin(SPANS[:5]), zipkin(SPANS[5:])])
    check(read_spans(nested, "zipkin"), instances=ZIPKIN_INSTANCES)


def test_zipkin_shared_span_becomes_a_client_and_a_server_row(tmp_path: Path) -> None:
    """Brave's shared spans: the server half reuses the client's id; both rows stay, the server under the client."""
    spans = [
        {"traceId": T1, "id": "01", "name": "get /", "kind": "SERVER", "timestamp": BASE_US, "duration": 900,
         "localEndpoint": {"serviceName": "frontend"}},
        {"traceId": T1, "id": "02", "parentId": "01", "name": "get", "kind": "CLIENT", "timestamp": BASE_US + 100,
         "duration": 500, "localEndpoint": {"serviceName": "frontend"}},
        {"traceId": T1, "id": "02", "parentId": "01", "name": "get", "kind": "SERVER", "shared": True,
         "timestamp": BASE_US + 200, "duration": 300, "localEndpoint": {"serviceName": "cart"}},
        {"traceId": T1, "id": "03", "parentId": "02", "name": "query", "kind": "CLIENT", "timestamp": BASE_US + 250,
         "duration": 100, "localEndpoint": {"serviceName": "cart"}},
    ]
    table = read_spans(write(tmp_path / "shared.json", spans))
    assert table.span.tolist() == ["01", "02:client", "02", "03"]
    assert table.service.tolist() == ["frontend", "frontend", "cart", "cart"]
    assert table.parent.tolist() == [-1, 0, 1, 2]


def test_nezha_csv(tmp_path: Path) -> None:
    path = write(tmp_path / "00_00_trace.csv", nezha(SPANS))
    assert detect_format(path) == "nezha"
    check(read_spans(path), instances=PODS, kinds=False, errors=False)
    assert read_spans(path).start[0] == pytest.approx(BASE_US / 1e6 + 123e-9, abs=1e-6)
    # gzipped, as the dataset ships them; and under a name that does not say CSV (the header says Nezha)
    zipped = tmp_path / "00_00_trace.csv.gz"
    zipped.write_bytes(gzip.compress(nezha(SPANS).encode()))
    check(read_spans(zipped), instances=PODS, kinds=False, errors=False)
    plain = write(tmp_path / "dump.txt", nezha(SPANS))
    check(read_spans(plain), instances=PODS, kinds=False, errors=False)


def test_nezha_csv_duration_when_end_time_is_missing(tmp_path: Path) -> None:
    text = nezha(SPANS).splitlines()
    header, rows = text[0].split(","), [line.split(",") for line in text[1:]]
    rows[2][6] = ""    # one span's end time left out: its Duration (microseconds) is used instead
    csv = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    table = read_spans(write(tmp_path / "x.csv", csv))
    np.testing.assert_allclose(table.duration, [s["dur"] / 1e6 for s in SPANS], atol=1e-9)
    no_end = "\n".join(",".join(r[:6] + r[7:]) for r in [header, *rows]) + "\n"
    table = read_spans(write(tmp_path / "y.csv", no_end))
    np.testing.assert_allclose(table.duration, [s["dur"] / 1e6 for s in SPANS], atol=1e-9)


# --- folders -------------------------------------------------------------------------------------------------------

def test_folder_concatenates_its_files_in_name_order(tmp_path: Path) -> None:
    """Two files of different formats; rows follow file names, parents point at the right rows of the whole table."""
    write(tmp_path / "b-second.json", jaeger(SPANS[5:]))
    write(tmp_path / "a-first.jsonl", json.dumps(otlp(SPANS[:5])) + "\n")
    write(tmp_path / "notes.md", "not a trace file, and not read")
    table = read_spans(tmp_path)
    assert table.span.tolist() == [s["span"] for s in SPANS]
    assert table.parent.tolist() == PARENTS
    assert table.instance.tolist() == [OTLP_INSTANCES[s["service"]] for s in SPANS[:5]] + \
        [JAEGER_INSTANCES[s["service"]] for s in SPANS[5:]]
    assert table.error.tolist() == ERRORS


def test_folder_links_across_files_and_keeps_a_repeated_span_once(tmp_path: Path) -> None:
    """Minute files: a trace that straddles two minutes is in both; its child in the second file finds its parent."""
    lines = nezha(SPANS).splitlines()
    write(tmp_path / "00_01_trace.csv", "\n".join(lines[:7]) + "\n")                 # header + spans 0..5
    write(tmp_path / "00_02_trace.csv", "\n".join([lines[0], *lines[6:]]) + "\n")    # header + spans 5..7
    table = read_spans(tmp_path)
    check(table, instances=PODS, kinds=False, errors=False)
    ref = link_parents(table.trace, table.span, np.array(
        [table.span[p] if p >= 0 else "" for p in table.parent], dtype=object))
    assert ref.tolist() == table.parent.tolist()


# --- refusals ------------------------------------------------------------------------------------------------------

def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    assert refused(path) == f"{path}: no such file or folder"


def test_unrecognised_json(tmp_path: Path) -> None:
    message = refused(write(tmp_path / "x.json", {"traces": []}))
    assert "not a trace file opsworld reads" in message and "--format" in message
    assert "not a trace file" in refused(write(tmp_path / "y.json", [{"name": "no ids"}]))
    assert "not a trace file" in refused(write(tmp_path / "z.json", "hello"))


def test_nezha_csv_missing_a_column(tmp_path: Path) -> None:
    csv = nezha(SPANS).replace(",PodName", ",Pod")
    assert "PodName" in refused(write(tmp_path / "00_00_trace.csv", csv))


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no traces here")
    assert "no trace file" in refused(tmp_path)


def test_span_without_an_id_is_named(tmp_path: Path) -> None:
    doc = otlp(SPANS)
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = ""
    assert "span #2" in refused(write(tmp_path / "a.json", doc)) and "trace id" in refused(tmp_path / "a.json")
    lines = [json.dumps(otlp(SPANS[:5])), json.dumps(otlp(SPANS[5:]))]
    bad = json.loads(lines[1])
    del bad["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"]
    assert "(line 2)" in refused(write(tmp_path / "b.jsonl", lines[0] + "\n" + json.dumps(bad) + "\n"))
    zip_spans = zipkin(SPANS)
    del zip_spans[3]["traceId"]
    assert "span #4" in refused(write(tmp_path / "c.json", zip_spans))
    csv = nezha(SPANS).splitlines()
    csv[3] = "," + csv[3].split(",", 1)[1]
    assert "line 4 has no TraceID" in refused(write(tmp_path / "d.csv", "\n".join(csv) + "\n"))


def test_other_bad_input_is_refused_in_one_line(tmp_path: Path) -> None:
    otlp_file = write(tmp_path / "otlp.json", otlp(SPANS))
    assert "not Jaeger JSON" in refused(otlp_file, "jaeger")
    assert "unknown trace format" in refused(otlp_file, "parquet")
    assert "malformed OTLP JSON" in refused(write(tmp_path / "m.json", {"resourceSpans": [1, 2]}))
    assert "line 2 is not valid JSON" in refused(write(tmp_path / "j.jsonl", json.dumps(otlp(SPANS)) + "\n{oops\n"))
    assert "empty" in refused(write(tmp_path / "e.json", "  \n"))
    (tmp_path / "g.json.gz").write_bytes(b"\x1f\x8b" + b"garbage")
    refused(tmp_path / "g.json.gz")
    assert "Expected 8 columns" in refused(write(tmp_path / "r.csv", nezha(SPANS) + "x,y\n"))


def test_valid_but_empty_files_give_an_empty_table(tmp_path: Path) -> None:
    assert len(read_spans(write(tmp_path / "a.json", {"resourceSpans": []}))) == 0
    assert len(read_spans(write(tmp_path / "b.json", []))) == 0
    assert len(read_spans(write(tmp_path / "c.csv", NEZHA_HEADER + "\n"))) == 0


# --- pod names -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pod, service", [
    ("frontend-579b9bff58-t2dbm", "frontend"),                  # Deployment: name-<ReplicaSet hash>-<pod suffix>
    ("ts-auth-service-7f8d7d756d-k7b9j", "ts-auth-service"),
    ("ts-gateway-service-6f6cfc45b-h5m2n", "ts-gateway-service"),
    ("currencyservice-cf787dd48-vpjrd", "currencyservice"),
    ("redis-0", "redis"),                                       # StatefulSet: name-<ordinal>
    ("ts-order-mongo-12", "ts-order-mongo"),
    ("node-exporter-x7k2p", "node-exporter"),                   # DaemonSet: name-<pod suffix>
    ("frontend", "frontend"),                                   # no pod shape: unchanged
    ("ts-auth-service", "ts-auth-service"),
    ("ts-travel2-service", "ts-travel2-service"),
    ("cart-v2", "cart-v2"),
])
def test_service_of_pod(pod: str, service: str) -> None:
    assert service_of_pod(pod) == service


# --- the real recordings -------------------------------------------------------------------------------------------

def test_nezha_train_ticket_recordings() -> None:
    folder = DATA / "nezha-train-ticket" / "trace"
    if not folder.is_dir():
        pytest.skip(f"no Nezha Train Ticket recordings at {folder}")
    table = read_spans(folder)
    # 28 services recorded spans that day (the deployment has about 45; the others, datastores and the UI, did not)
    assert len(set(table.service.tolist())) >= 25
    assert all(s.startswith("ts-") and s.endswith("-service") for s in set(table.service.tolist()))
    linked = table.parent >= 0
    assert (table.trace[table.parent[linked]] == table.trace[linked]).all()
    assert (table.parent != np.arange(len(table))).all()
    keys = list(zip(table.trace.tolist(), table.span.tolist()))
    assert len(set(keys)) == len(keys)
    raw = pa.concat_tables([pcsv.read_csv(f, convert_options=pcsv.ConvertOptions(
        column_types={"TraceID": pa.string(), "SpanID": pa.string(), "ParentID": pa.string()}))
        .select(["TraceID", "SpanID", "ParentID"]) for f in sorted(folder.glob("*.csv.gz"))])
    raw_keys = set(zip(raw["TraceID"].to_pylist(), raw["SpanID"].to_pylist()))
    assert set(keys) == raw_keys        # every recorded span once; repeats across minute files dropped
    roots = {k for k, p in zip(zip(raw["TraceID"].to_pylist(), raw["SpanID"].to_pylist()), raw["ParentID"].to_pylist())
             if p == "root"}
    assert {k for k, r in zip(keys, linked.tolist()) if not r} == roots
    assert (table.duration > 0).all() and np.isfinite(table.start).all()
    assert 1.67e9 < table.start.min() < table.start.max() < 1.68e9     # 2023-01-29


def test_an_all_zero_parent_id_means_a_root(tmp_path: Path) -> None:
    spans = zipkin(SPANS)
    spans[0]["parentId"] = "0000000000000000"
    assert read_spans(write(tmp_path / "z.json", spans)).parent.tolist() == PARENTS
