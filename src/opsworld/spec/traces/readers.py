"""Readers of recorded distributed traces: files in, one `Spans` table out.

Formats read (`read_spans(path, format)`; `format=None` detects it from the content):
- "otlp": OpenTelemetry OTLP JSON (`{"resourceSpans": [...]}`), one object per file or one per line (JSON Lines, as the
  collector's file exporter writes); `scopeSpans` and the older `instrumentationLibrarySpans`.
- "jaeger": Jaeger JSON as the Jaeger UI / query API `/api/traces` returns it (`{"data": [{"spans", "processes"}]}`).
- "zipkin": Zipkin v2 JSON: a list of spans, or a list of traces (lists of spans) as `/api/v2/traces` returns.
- "nezha": the Nezha RCA dataset's trace CSV (`TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,
  EndTimeUnixNano,Duration`), plain or gzipped.
Any of them may be gzipped. A folder is read as all its trace files (by name order) in one table; parents are linked
across the folder's files, and a span recorded twice (same trace and span id, as minute-sliced dumps repeat a trace
that straddles two minutes) is kept once, at its first row.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from opsworld.spec.traces.spans import CLIENT, CONSUMER, INTERNAL, KINDS, PRODUCER, SERVER, UNKNOWN, Spans, empty

FORMATS = ("otlp", "jaeger", "zipkin", "nezha")
_TITLES = {"otlp": "OTLP JSON", "jaeger": "Jaeger JSON", "zipkin": "Zipkin v2 JSON", "nezha": "Nezha CSV"}
UNKNOWN_SERVICE = "unknown_service"     # OpenTelemetry's name for a service that did not say its name
NEZHA_COLUMNS = ("TraceID", "SpanID", "ParentID", "PodName", "OperationName", "StartTimeUnixNano")
_NAMES = (".json", ".jsonl", ".ndjson", ".csv")     # a folder's trace files, each maybe with .gz after
_EXPECTED = ("expected OTLP JSON with resourceSpans, Jaeger JSON with data, a Zipkin v2 JSON list, or a Nezha CSV; "
             "name the format with --format")
_SEP = "\x1f"       # between trace and span id in a join key; ids are hex or printable, never a control character

# (trace, span, parent span id, service, instance, operation, kind, start s, duration s, error, zipkin shared)
_Row = tuple[str, str, str, str, str, str, str, float, float, bool, bool]


class TraceFormatError(ValueError):
    """A trace file opsworld cannot read; the message is one line: the file, what is wrong, how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def read_spans(path: str | Path, format: str | None = None) -> Spans:
    """The spans recorded in `path` (a trace file, or a folder of them), in the order read.

    `format` is one of FORMATS, or None to detect each file's format from its content. Raises TraceFormatError
    (one line naming the file) for anything it cannot read."""
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise TraceFormatError(f"{path}: unknown trace format {format!r} (expected one of {', '.join(FORMATS)})")
    if not path.exists():
        raise TraceFormatError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.is_file() and _is_trace_name(p.name)), key=lambda p: p.name)
        if not files:
            raise TraceFormatError(f"{path}: no trace file in this folder (expected *.json, *.jsonl, *.ndjson or "
                                   "*.csv files, optionally .gz); point at a trace file or a folder of them")
    else:
        files = [path]
    parts = [_read_file(f, format) for f in files]
    return _link(Spans.concat([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                 np.concatenate([p[2] for p in parts]))


def detect_format(path: str | Path) -> str:
    """The format (one of FORMATS) of the trace file at `path`, from its content; TraceFormatError if none fits."""
    path = Path(path)
    if _looks_like_csv(path):
        return "nezha"
    fmt = _json_format(_load_json(path))
    if fmt is None:
        raise TraceFormatError(f"{path}: not a trace file opsworld reads ({_EXPECTED})")
    return fmt


_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"    # the alphabet Kubernetes draws pod-name hashes from (no vowels, 0, 1, 3)
_DEPLOYMENT_POD = re.compile(rf"^(.+)-(?:{_SAFE}{{5,10}}|[0-9]{{6,10}})-{_SAFE}{{5}}$")   # name-<rs hash>-<pod>
_STATEFUL_POD = re.compile(r"^(.+)-[0-9]+$")                                             # name-<ordinal>
_SUFFIXED_POD = re.compile(rf"^(.+)-{_SAFE}{{5}}$")                       # DaemonSet, bare ReplicaSet: name-<pod>


def service_of_pod(pod: str) -> str:
    """The workload a Kubernetes pod belongs to: `frontend-579b9bff58-t2dbm` -> `frontend` (Deployment),
    `redis-0` -> `redis` (StatefulSet), `node-exporter-x7k2p` -> `node-exporter` (DaemonSet); a name of no such shape
    is returned unchanged."""
    for pattern in (_DEPLOYMENT_POD, _STATEFUL_POD, _SUFFIXED_POD):
        if m := pattern.match(pod):
            return m.group(1)
    return pod


# --- files ----------------------------------------------------------------------------------------------------------

def _is_trace_name(name: str) -> bool:
    name = name.lower()
    return not name.startswith(".") and name.removesuffix(".gz").endswith(_NAMES)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _head(path: Path, size: int = 4096) -> str:
    """The first `size` bytes of the file as text (after gunzip when gzipped), for detection."""
    try:
        with (gzip.open(path, "rb") if _is_gzip(path) else path.open("rb")) as f:
            return f.read(size).decode("utf-8-sig", errors="replace")
    except (OSError, EOFError, zlib.error) as e:
        raise TraceFormatError(f"{path}: cannot read it ({e})") from None


def _looks_like_csv(path: Path) -> bool:
    # CSV is only the Nezha format here; a CSV missing some column is still read as Nezha so the error names the column
    if path.name.lower().removesuffix(".gz").endswith(".csv"):
        return True
    first = _head(path).lstrip().split("\n", 1)[0]
    return "," in first and "TraceID" in first.replace('"', "").split(",")


def _load_json(path: Path) -> list[Any]:
    """The JSON documents in the file: the whole file as one, else one per non-blank line (JSON Lines)."""
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("utf-8-sig")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise TraceFormatError(f"{path}: cannot read it as text ({e})") from None
    if not text.strip():
        raise TraceFormatError(f"{path}: the file is empty; nothing to read")
    if text.lstrip()[0] not in "{[":
        raise TraceFormatError(f"{path}: not a trace file opsworld reads ({_EXPECTED})")
    try:
        return [json.loads(text)]
    except json.JSONDecodeError as whole:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if len(lines) < 2:
            raise TraceFormatError(f"{path}: not valid JSON ({whole.msg} at line {whole.lineno} column "
                                   f"{whole.colno})") from None
        docs = []
        for n, line in lines:
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise TraceFormatError(f"{path}: line {n} is not valid JSON ({e.msg} at column {e.colno}); a JSON "
                                       "Lines file needs one whole JSON object on each line") from None
        return docs


def _json_format(docs: list[Any]) -> str | None:
    doc = docs[0]
    if isinstance(doc, dict) and "resourceSpans" in doc:
        return "otlp"
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        return "jaeger"
    if isinstance(doc, list):
        first = doc[0] if doc else {}
        first = (first[0] if first else {}) if isinstance(first, list) else first
        if isinstance(first, dict) and (not first or ("traceId" in first and "id" in first)):
            return "zipkin"
    return None


def _read_file(path: Path, fmt: str | None) -> tuple[Spans, np.ndarray, np.ndarray]:
    """One file's spans (parents not linked yet), each span's parent id ("" for none), and its Zipkin `shared` flag."""
    try:
        return _read_any(path, fmt)
    except OSError as e:    # unreadable (permissions, a vanished file): the file and why, not a stack trace
        raise TraceFormatError(f"{path}: cannot read it ({e.strerror or e})") from None


def _read_any(path: Path, fmt: str | None) -> tuple[Spans, np.ndarray, np.ndarray]:
    if fmt == "nezha" or (fmt is None and _looks_like_csv(path)):
        return _read_nezha(path)
    docs = _load_json(path)
    fmt = fmt or _json_format(docs)
    if fmt is None:
        raise TraceFormatError(f"{path}: not a trace file opsworld reads ({_EXPECTED})")
    readers: dict[str, Callable[[Path, list[Any]], list[_Row]]] = {
        "otlp": _otlp_rows, "jaeger": _jaeger_rows, "zipkin": _zipkin_rows}
    try:
        rows = readers[fmt](path, docs)
    except TraceFormatError:
        raise
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as e:
        # a field of the wrong JSON type somewhere deep: say so in one line rather than with a stack trace
        raise TraceFormatError(f"{path}: malformed {_TITLES[fmt]} ({type(e).__name__}: {e}); fix the file, or name "
                               "the right format with --format") from None
    return _part(rows)


def _part(rows: list[_Row]) -> tuple[Spans, np.ndarray, np.ndarray]:
    if not rows:
        return empty(), np.array([], dtype=object), np.array([], dtype=bool)
    cols = list(zip(*rows))

    def obj(i: int) -> np.ndarray:
        out = np.empty(len(rows), dtype=object)
        out[:] = cols[i]
        return out

    spans = Spans(trace=obj(0), span=obj(1), parent=np.full(len(rows), -1, dtype=np.int64), service=obj(3),
                  instance=obj(4), operation=obj(5), kind=obj(6), start=np.array(cols[7], dtype=np.float64),
                  duration=np.array(cols[8], dtype=np.float64), error=np.array(cols[9], dtype=bool))
    return spans, obj(2), np.array(cols[10], dtype=bool)


def _link(spans: Spans, parent_id: np.ndarray, shared: np.ndarray) -> Spans:
    """Drop repeated spans and point each span at its parent's row (hash joins in Arrow: folders hold millions)."""
    if not len(spans):
        return spans
    trace, span = pa.array(spans.trace, pa.string()), pa.array(spans.span, pa.string())
    key = pc.binary_join_element_wise(trace, span, _SEP)
    if shared.any():
        # Zipkin's shared spans: the server half of an RPC reuses the client half's span id. Children name that id and
        # belong to the server half, so the client half is renamed `<id>:client` and the server half points to it.
        client = ~shared & pc.is_in(key, value_set=key.filter(pa.array(shared))).to_numpy(zero_copy_only=False)
        paired = shared & pc.is_in(key, value_set=key.filter(pa.array(client))).to_numpy(zero_copy_only=False)
        parent_id = np.where(paired, spans.span + ":client", parent_id)
        spans = replace(spans, span=np.where(client, spans.span + ":client", spans.span))
        key = pc.binary_join_element_wise(trace, pa.array(spans.span, pa.string()), _SEP)
    first = pc.index_in(key, value_set=key).to_numpy(zero_copy_only=False)
    keep = first == np.arange(len(spans))
    if not keep.all():
        spans, parent_id = spans.take(keep), parent_id[keep]
        trace, key = trace.filter(pa.array(keep)), key.filter(pa.array(keep))
    parent_key = pc.binary_join_element_wise(trace, pa.array(parent_id, pa.string()), _SEP)
    row = pc.index_in(parent_key, value_set=key).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    # no parent named (some tracers write an all-zero id for none), or a span naming itself
    none = pc.match_substring_regex(pa.array(parent_id, pa.string()), "^0*$").to_numpy(zero_copy_only=False)
    row[none | (row == np.arange(len(row)))] = -1
    return replace(spans, parent=row)


# --- Nezha CSV ------------------------------------------------------------------------------------------------------

def _strings(column: pa.ChunkedArray, fold: Callable[[str], str] | None = None) -> np.ndarray:
    """An Arrow string column as an object array of str (`fold` applied), converting each distinct value once."""
    encoded = column.combine_chunks().dictionary_encode()
    values = np.empty(len(encoded.dictionary), dtype=object)
    values[:] = [fold(v) for v in encoded.dictionary.to_pylist()] if fold else encoded.dictionary.to_pylist()
    return values[encoded.indices.to_numpy(zero_copy_only=False)]


def _read_nezha(path: Path) -> tuple[Spans, np.ndarray, np.ndarray]:
    types = {c: pa.string() for c in NEZHA_COLUMNS[:5]}
    types |= {"StartTimeUnixNano": pa.int64(), "EndTimeUnixNano": pa.int64(), "Duration": pa.float64()}
    try:
        with pa.input_stream(str(path), compression="gzip" if _is_gzip(path) else None) as stream:
            table = pcsv.read_csv(stream, convert_options=pcsv.ConvertOptions(column_types=types))
    except (pa.ArrowException, OSError, EOFError) as e:
        raise TraceFormatError(f"{path}: cannot read it as a Nezha trace CSV ({e})") from None
    names = set(table.column_names)
    for column in NEZHA_COLUMNS:
        if column not in names:
            raise TraceFormatError(f"{path}: the Nezha trace CSV has no {column} column (its header must start "
                                   f"{','.join(NEZHA_COLUMNS)}, then EndTimeUnixNano and/or Duration)")
    if "EndTimeUnixNano" not in names and "Duration" not in names:
        raise TraceFormatError(f"{path}: the Nezha trace CSV has neither an EndTimeUnixNano nor a Duration column; "
                               "add either to give each span its duration")
    n = table.num_rows
    if n == 0:
        return empty(), np.array([], dtype=object), np.array([], dtype=bool)
    trace, span = _strings(table["TraceID"]), _strings(table["SpanID"])
    for column, values in (("TraceID", trace), ("SpanID", span)):
        if (bad := np.flatnonzero(values == "")).size:
            raise TraceFormatError(f"{path}: line {bad[0] + 2} has no {column}; every span needs its trace and span id")
    start = table["StartTimeUnixNano"].combine_chunks()
    if start.null_count:
        bad = int(np.flatnonzero(start.is_null().to_numpy(zero_copy_only=False))[0])
        raise TraceFormatError(f"{path}: line {bad + 2} has no StartTimeUnixNano; every span needs its start time")
    start_ns = start.to_numpy().astype(np.int64)
    duration = np.full(n, np.nan)
    if "EndTimeUnixNano" in names:
        end = table["EndTimeUnixNano"].combine_chunks()
        end_ns = end.fill_null(0).to_numpy().astype(np.int64)
        # the difference in integer nanoseconds, then seconds: exact, where float seconds of 1.6e9 would not be
        duration = np.where(end.is_valid().to_numpy(zero_copy_only=False), (end_ns - start_ns) / 1e9, np.nan)
    if "Duration" in names and np.isnan(duration).any():
        micros = table["Duration"].combine_chunks().to_numpy(zero_copy_only=False).astype(np.float64)
        duration = np.where(np.isnan(duration), micros / 1e6, duration)
    if np.isnan(duration).any():
        bad = int(np.flatnonzero(np.isnan(duration))[0])
        raise TraceFormatError(f"{path}: line {bad + 2} has neither EndTimeUnixNano nor Duration; give one")

    parent_id = _strings(table["ParentID"])
    parent_id[parent_id == "root"] = ""
    spans = Spans(trace=trace, span=span, parent=np.full(n, -1, dtype=np.int64),
                  service=_strings(table["PodName"], _pod_service), instance=_strings(table["PodName"]),
                  operation=_strings(table["OperationName"]),
                  kind=np.full(n, UNKNOWN, dtype=object),     # the format does not record span kinds
                  start=start_ns / 1e9, duration=duration,
                  error=np.zeros(n, dtype=bool))              # nor span status
    return spans, parent_id, np.zeros(n, dtype=bool)


def _pod_service(pod: str) -> str:
    return service_of_pod(pod) if pod else UNKNOWN_SERVICE


# --- JSON formats ---------------------------------------------------------------------------------------------------

_KIND_NAMES = {k: k for k in KINDS if k} | {"unspecified": UNKNOWN}
_OTLP_KINDS = {0: UNKNOWN, 1: INTERNAL, 2: SERVER, 3: CLIENT, 4: PRODUCER, 5: CONSUMER}


def _kind(value: Any) -> str:
    """A span kind from an OTLP enum number or any of the formats' names for it ("SPAN_KIND_SERVER", "server")."""
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return _OTLP_KINDS.get(int(value), UNKNOWN)
    if isinstance(value, str):
        return _KIND_NAMES.get(value.lower().removeprefix("span_kind_"), UNKNOWN)
    return UNKNOWN


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _http_failed(tags: dict[str, Any]) -> bool:
    """An HTTP 5xx response recorded in the span's attributes (old or new semantic-convention name)."""
    return any((code := _as_int(tags.get(k))) is not None and code >= 500
               for k in ("http.status_code", "http.response.status_code"))


def _first(tags: dict[str, Any], keys: tuple[str, ...]) -> str:
    return next((str(tags[k]) for k in keys if tags.get(k) not in (None, "")), "")


def _ids(path: Path, where: str, trace: Any, span: Any) -> tuple[str, str]:
    if not trace:
        raise TraceFormatError(f"{path}: {where} has no trace id; every span needs its trace's id")
    if not span:
        raise TraceFormatError(f"{path}: {where} has no span id; every span needs its own id")
    return str(trace), str(span)


def _where(n: int, line: int, lines: int) -> str:
    return f"span #{n} (line {line})" if lines > 1 else f"span #{n}"


def _otlp_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    for k in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if k in value:
            return value[k]
    return None


def _otlp_attrs(attributes: Any) -> dict[str, Any]:
    return {a["key"]: _otlp_value(a.get("value")) for a in attributes or [] if isinstance(a, dict) and "key" in a}


def _not_a(path: Path, line: int, lines: int, what: str) -> TraceFormatError:
    """One document of a file that is not the format it was read as."""
    at = f"line {line}" if lines > 1 else "the file"
    return TraceFormatError(f"{path}: {at} is not {what}; name the right format with --format")


def _otlp_rows(path: Path, docs: list[Any]) -> list[_Row]:
    rows: list[_Row] = []
    for line, doc in enumerate(docs, 1):
        if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
            raise _not_a(path, line, len(docs), "OTLP JSON (no resourceSpans list)")
        for resource_spans in doc["resourceSpans"]:
            resource = _otlp_attrs((resource_spans.get("resource") or {}).get("attributes"))
            service = _first(resource, ("service.name",)) or UNKNOWN_SERVICE
            instance = _first(resource, ("service.instance.id", "k8s.pod.name", "host.name"))
            scopes = (resource_spans.get("scopeSpans") or []) + (resource_spans.get("instrumentationLibrarySpans")
                                                                 or [])
            for scope in scopes:
                for s in scope.get("spans") or []:
                    where = _where(len(rows) + 1, line, len(docs))
                    trace, span = _ids(path, where, s.get("traceId"), s.get("spanId"))
                    if s.get("startTimeUnixNano") in (None, ""):
                        raise TraceFormatError(f"{path}: {where} has no startTimeUnixNano")
                    start = int(s["startTimeUnixNano"])
                    end = int(s.get("endTimeUnixNano") or start)
                    attrs = _otlp_attrs(s.get("attributes"))
                    code = (s.get("status") or {}).get("code")
                    error = code in (2, "2", "STATUS_CODE_ERROR", "ERROR") or _http_failed(attrs)
                    rows.append((trace, span, str(s.get("parentSpanId") or ""), service, instance,
                                 str(s.get("name") or ""), _kind(s.get("kind")), start / 1e9, (end - start) / 1e9,
                                 error, False))
    return rows


def _jaeger_tags(tags: Any) -> dict[str, Any]:
    return {t["key"]: t.get("value") for t in tags or [] if isinstance(t, dict) and "key" in t}


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _jaeger_rows(path: Path, docs: list[Any]) -> list[_Row]:
    rows: list[_Row] = []
    for line, doc in enumerate(docs, 1):
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise _not_a(path, line, len(docs), "Jaeger JSON (no data list of traces)")
        for trace_obj in doc["data"]:
            processes = trace_obj.get("processes") or {}
            for s in trace_obj.get("spans") or []:
                where = _where(len(rows) + 1, line, len(docs))
                trace, span = _ids(path, where, s.get("traceID") or trace_obj.get("traceID"), s.get("spanID"))
                refs = [r for r in s.get("references") or [] if isinstance(r, dict)]
                ref = next((r for r in refs if r.get("refType") == "CHILD_OF"), refs[0] if refs else {})
                parent = ref.get("spanID") or s.get("parentSpanID") or ""
                process = processes.get(s.get("processID")) or s.get("process") or {}
                ptags = _jaeger_tags(process.get("tags"))
                tags = _jaeger_tags(s.get("tags"))
                if s.get("startTime") in (None, ""):
                    raise TraceFormatError(f"{path}: {where} has no startTime")
                error = (_truthy(tags.get("error")) or _http_failed(tags)
                         or str(tags.get("otel.status_code", "")).upper() == "ERROR")
                rows.append((trace, span, str(parent),
                             str(process.get("serviceName") or UNKNOWN_SERVICE),
                             _first(ptags, ("hostname", "ip", "pod", "service.instance.id", "k8s.pod.name",
                                            "host.name")),
                             str(s.get("operationName") or ""), _kind(tags.get("span.kind")),
                             int(s["startTime"]) / 1e6, int(s.get("duration") or 0) / 1e6, error, False))
    return rows


def _zipkin_rows(path: Path, docs: list[Any]) -> list[_Row]:
    rows: list[_Row] = []
    for line, doc in enumerate(docs, 1):
        if not isinstance(doc, list):
            raise _not_a(path, line, len(docs), "Zipkin v2 JSON (not a list of spans)")
        spans = [s for item in doc for s in (item if isinstance(item, list) else [item])]   # a list of traces too
        for s in spans:
            where = _where(len(rows) + 1, line, len(docs))
            if not isinstance(s, dict):
                raise TraceFormatError(f"{path}: {where} is not a JSON object; Zipkin v2 spans are objects")
            trace, span = _ids(path, where, s.get("traceId"), s.get("id"))
            if s.get("timestamp") in (None, ""):
                raise TraceFormatError(f"{path}: {where} has no timestamp")
            endpoint = s.get("localEndpoint") or {}
            ip, port = endpoint.get("ipv4") or "", endpoint.get("port")
            if not ip and endpoint.get("ipv6"):
                ip = f"[{endpoint['ipv6']}]" if port else endpoint["ipv6"]
            tags = s.get("tags") or {}
            error = ("error" in tags and str(tags["error"]).lower() != "false") or _http_failed(tags) or \
                str(tags.get("otel.status_code", "")).upper() == "ERROR"
            rows.append((trace, span, str(s.get("parentId") or ""),
                         str(endpoint.get("serviceName") or UNKNOWN_SERVICE), f"{ip}:{port}" if ip and port else ip,
                         str(s.get("name") or ""), _kind(s.get("kind")), int(s["timestamp"]) / 1e6,
                         int(s.get("duration") or 0) / 1e6, error, bool(s.get("shared"))))
    return rows
