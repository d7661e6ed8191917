"""OTLP/JSON export of logs and traces: the structure collectors accept (ids as hex, 64-bit integers as strings)."""

from __future__ import annotations

import functools
import json
import re

from opsworld.engine import Engine
from opsworld.faults.catalogue import entry
from opsworld.faults.injector import Injector
from opsworld.observe.export.otlp import logs_to_otlp, traces_to_otlp
from opsworld.observe.logs import query_logs
from opsworld.observe.recording import Recording, new_recording
from opsworld.observe.traces import query_traces


@functools.lru_cache(maxsize=None)
def recording() -> Recording:
    e = entry("dns_failure")
    engine = Engine(e.example.scenario(), worlds=1, seed=0)
    injector = Injector(engine, e.example_faults())
    rec = new_recording(engine)
    for _ in range(66):
        rec.record(engine, injector.step())
    return rec


def _attrs(kvs: list[dict]) -> dict:
    out = {}
    for kv in kvs:
        assert set(kv) == {"key", "value"} and isinstance(kv["key"], str)
        (kind, value), = kv["value"].items()
        assert kind in ("stringValue", "intValue", "doubleValue", "boolValue", "arrayValue")
        if kind == "intValue":
            assert isinstance(value, str) and re.fullmatch(r"-?\d+", value)
        out[kv["key"]] = value
    return out


def _nanos(text: object) -> int:
    assert isinstance(text, str) and re.fullmatch(r"\d{19}", text)
    return int(text)


def test_logs_as_otlp_json() -> None:
    lines = query_logs(recording(), 0, limit=300)
    doc = json.loads(json.dumps(logs_to_otlp(lines)))
    records = 0
    for resource in doc["resourceLogs"]:
        labels = _attrs(resource["resource"]["attributes"])
        assert labels["service.name"] and labels["k8s.pod.name"].startswith(labels["service.name"])
        (scope,) = resource["scopeLogs"]
        assert scope["scope"]["name"]
        for rec in scope["logRecords"]:
            records += 1
            assert _nanos(rec["timeUnixNano"]) > 1.7e18
            assert rec["severityText"] in ("DEBUG", "INFO", "WARN", "ERROR")
            assert rec["severityNumber"] == {"DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17}[rec["severityText"]]
            assert isinstance(rec["body"]["stringValue"], str) and rec["body"]["stringValue"]
    assert records == len(lines)
    assert logs_to_otlp([]) == {"resourceLogs": []}


def test_traces_as_otlp_json() -> None:
    traces = query_traces(recording(), 0, error=True, limit=10) + query_traces(recording(), 0, limit=10)
    doc = json.loads(json.dumps(traces_to_otlp(traces)))
    spans = []
    for resource in doc["resourceSpans"]:
        service = _attrs(resource["resource"]["attributes"])["service.name"]
        (scope,) = resource["scopeSpans"]
        for span in scope["spans"]:
            spans.append(span)
            assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", span["spanId"])
            assert "parentSpanId" not in span or re.fullmatch(r"[0-9a-f]{16}", span["parentSpanId"])
            assert span["kind"] in (1, 2, 3, 4, 5) and isinstance(span["name"], str)
            assert _nanos(span["startTimeUnixNano"]) <= _nanos(span["endTimeUnixNano"])
            attrs = _attrs(span["attributes"])
            assert span["status"]["code"] in (1, 2)
            if span["status"]["code"] == 2:
                assert span["status"]["message"]
            for event in span["events"]:
                assert event["name"] == "exception" and _nanos(event["timeUnixNano"])
                assert {"exception.type", "exception.message"} <= set(_attrs(event["attributes"]))
            if span["kind"] == 2 and "parentSpanId" not in span:
                assert attrs["http.response.status_code"] in ("200", "500", "504")
            assert service
    assert len(spans) == sum(len(t.spans) for t in traces)
    assert any(s["status"]["code"] == 2 and s["events"] for s in spans)
    roots = [s for s in spans if "parentSpanId" not in s]
    assert len(roots) == len(traces)
