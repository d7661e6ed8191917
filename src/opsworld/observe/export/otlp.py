"""Logs and traces as OTLP/JSON, the OpenTelemetry protocol's JSON encoding that collectors and backends accept
(`POST /v1/logs`, `POST /v1/traces`, or files for `otelcol`'s file receiver).

Follows the protobuf JSON mapping the OTLP specification prescribes: 64-bit integers (nanosecond timestamps,
`intValue`) as decimal strings, trace and span ids as lowercase hex, enums as their numbers. Records are grouped
by resource: one per pod for logs (`service.name`, `k8s.pod.name`), one per service for spans.
"""

from __future__ import annotations

from typing import Iterable

from opsworld.observe.logs import LogLine
from opsworld.observe.traces import Trace

SCOPE = {"name": "opsworld", "version": "0.1.0"}
SEVERITY = {"DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17}      # SeverityNumber of each level's first value
SPAN_KIND = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
STATUS_OK, STATUS_ERROR = 1, 2


def _nanos(seconds: float) -> str:
    return str(int(round(seconds * 1e9)))


def _value(value: object) -> dict:
    """An OTLP AnyValue."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    return {"stringValue": str(value)}


def attributes(values: dict) -> list[dict]:
    """A mapping as an OTLP KeyValue list."""
    return [{"key": str(k), "value": _value(v)} for k, v in values.items()]


def logs_to_otlp(lines: Iterable[LogLine], namespace: str = "prod") -> dict:
    """Log lines as an OTLP/JSON `ExportLogsServiceRequest`."""
    by_pod: dict[tuple[str, str], list[dict]] = {}
    for line in lines:
        by_pod.setdefault((line.service, line.pod), []).append({
            "timeUnixNano": _nanos(line.time),
            "observedTimeUnixNano": _nanos(line.time),
            "severityNumber": SEVERITY[line.level],
            "severityText": line.level,
            "body": {"stringValue": line.message},
        })
    return {"resourceLogs": [
        {"resource": {"attributes": attributes({"service.name": service, "k8s.pod.name": pod,
                                                "k8s.namespace.name": namespace})},
         "scopeLogs": [{"scope": dict(SCOPE), "logRecords": records}]}
        for (service, pod), records in by_pod.items()]}


def traces_to_otlp(traces: Iterable[Trace]) -> dict:
    """Traces as an OTLP/JSON `ExportTraceServiceRequest`."""
    by_service: dict[str, list[dict]] = {}
    for trace in traces:
        for span in trace.spans:
            out = {
                "traceId": span.trace_id,
                "spanId": span.span_id,
                "name": span.operation,
                "kind": SPAN_KIND.get(span.kind, 1),
                "startTimeUnixNano": _nanos(span.start),
                "endTimeUnixNano": _nanos(span.end),
                "attributes": attributes(span.attributes),
                "events": [{"timeUnixNano": _nanos(ev["time"]), "name": ev["name"],
                            "attributes": attributes(ev.get("attributes", {}))} for ev in span.events],
                "status": ({"code": STATUS_ERROR, "message": span.status_message} if span.is_error
                           else {"code": STATUS_OK}),
            }
            if span.parent_id:
                out["parentSpanId"] = span.parent_id
            by_service.setdefault(span.service, []).append(out)
    return {"resourceSpans": [
        {"resource": {"attributes": attributes({"service.name": service})},
         "scopeSpans": [{"scope": dict(SCOPE), "spans": spans}]}
        for service, spans in by_service.items()]}
