"""A Prometheus-compatible HTTP API over one world of a simulated episode, so that real tools (Grafana, promtool,
Prometheus client libraries) can read it.

    server = make_server(telemetry, world=0, port=0)      # port 0: any free port; server.url says which
    threading.Thread(target=server.serve_forever, daemon=True).start()

Endpoints (GET, or POST with a form-encoded body), answering in the JSON of Prometheus' HTTP API:

    /api/v1/query  /api/v1/query_range  /api/v1/series  /api/v1/labels  /api/v1/label/<name>/values
    /api/v1/metadata  /api/v1/query_exemplars (always empty)  /api/v1/alerts  /api/v1/rules
    /api/v1/status/buildinfo  /-/ready  /-/healthy

and for the rest of the episode's telemetry, in the same envelope (`data`: a list of JSON objects):

    /api/v1/logs     query (LogQL: stream selector and line filters), start, end, limit, direction
    /api/v1/traces   service, operation, start, end, minDuration, error, limit
    /api/v1/changes  start, end

and, for Grafana's Loki data source, /loki/api/v1/query_range (log queries; Loki's `streams`),
/loki/api/v1/labels and /loki/api/v1/label/<name>/values. `/` answers a line of text (clients probe it).
Times default to the end of the episode (instant queries) or to all of it (ranges).

An instant query of a range vector (`up[5m]`, with offset or `@`, or a subquery `q[5m:1m]`) answers a matrix, the
raw samples of the window ending at `time`, as Prometheus does (prometheus-api-client's get_metric_range_data reads
samples this way). Bad input is answered as Prometheus answers it,
`{"status":"error","errorType":"bad_data","error":"..."}` with HTTP 400 (PromQL errors included); unknown paths get
404, an unreachable monitoring (`ToolsUnavailable`) 503. A client that closes or resets its connection is not an
error: it is logged at debug level, never as a traceback.
The telemetry is read-only while served; evaluations run one at a time under a lock, because the PromQL engine and
the lazy log/trace sensors cache plans and text on shared objects.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import sys
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import numpy as np
import promql_parser as pp

from opsworld.observe.alerts.wire import go_quote, rfc3339
from opsworld.observe.promql import Matrix, PromQLError, Scalar, Vector, parse
from opsworld.observe.promql.nodes import _selector
from opsworld.observe.promql.selectors import blocks, index_range
from opsworld.observe.telemetry import Telemetry, ToolsUnavailable

PROMETHEUS_VERSION = "2.42.0"        # the release whose PromQL the engine follows; Grafana picks features by it
MAX_POINTS = 11_000                  # Prometheus' cap on points per series in a range query
MAX_BODY = 16 * 2**20                # bytes of form body read from a POST
SUBQUERY_STEP = 60.0                 # a subquery's step when it names none: Prometheus' default evaluation_interval
LOG_LIMIT = 1000                     # default lines of /api/v1/logs (Loki's default is 100; a page of a log view)
TRACE_LIMIT = 20                     # default traces of /api/v1/traces (Jaeger's search default)
# Prometheus' "min/max time" sentinels, which clients such as Grafana send for "everything"
_MIN_TIME, _MAX_TIME = "-292273086-05-16T16:47:06Z", "292277025-08-18T07:12:54.999999999Z"
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_DURATION_UNITS = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 1e-3)
# One lock for every server in the process: query plans are cached on shared (lru-cached) query trees.
_EVALUATION = threading.Lock()
_log = logging.getLogger(__name__)

Params = dict[str, list[str]]


class ApiError(Exception):
    """An answer other than success: HTTP status, Prometheus' errorType and a one-line message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_data", message)


# ---- parameters, the way Prometheus' web/api/v1 parses them ------------------------------------------------------
def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_time(text: str) -> float:
    """Unix seconds (rounded to ms) or RFC 3339, as Prometheus' parseTime; ValueError naming the text if neither."""
    value = _float(text)
    if value is not None:
        if not math.isfinite(value):
            raise ValueError(f"cannot parse {go_quote(text)} to a valid timestamp")
        return round(value * 1000.0) / 1000.0
    if text == _MIN_TIME:
        return -math.inf
    if text == _MAX_TIME:
        return math.inf
    # fromisoformat reads RFC 3339 (with `Z`) to microseconds: trim the nanoseconds Go allows
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text.strip())
    parsed = None
    if re.match(r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d", trimmed):
        try:
            parsed = datetime.fromisoformat(trimmed.replace("z", "Z"))
        except ValueError:
            parsed = None
    if parsed is None:
        raise ValueError(f"cannot parse {go_quote(text)} to a valid timestamp")
    if parsed.tzinfo is None:
        raise ValueError(f"cannot parse {go_quote(text)} to a valid timestamp (RFC 3339 needs a zone, e.g. Z)")
    return round(parsed.timestamp() * 1000.0) / 1000.0


def parse_duration(text: str) -> float:
    """Seconds from a float (`30`, `0.5`) or a Prometheus duration (`30s`, `1m30s`, `2h`), as Prometheus'
    parseDuration; ValueError naming the text otherwise."""
    value = _float(text)
    if value is None:
        match = _DURATION.match(text) if text else None
        if match is None or not any(match.groups()):
            raise ValueError(f"cannot parse {go_quote(text)} to a valid duration")
        return sum(int(g) * unit for g, unit in zip(match.groups(), _DURATION_UNITS) if g)
    if not math.isfinite(value) or abs(value) > 9.2e9:    # Go's time.Duration overflows int64 nanoseconds
        raise ValueError(f"cannot parse {go_quote(text)} to a valid duration. It overflows int64")
    return value


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it (Go's strconv.FormatFloat(v, 'f', -1, 64)): `NaN`, `+Inf`, `-Inf`,
    otherwise the shortest decimal that reads back to the same float, without an exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return format(Decimal(repr(float(value))).normalize(), "f")


def format_time(seconds: float) -> int | float:
    """A timestamp as Prometheus writes it in results: Unix seconds with at most three decimals."""
    ms = int(round(seconds * 1000.0))
    return ms // 1000 if ms % 1000 == 0 else ms / 1000.0


def _first(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _time(params: Params, name: str, default: float | None) -> float | None:
    text = _first(params, name)
    if text is None or text == "":
        return default
    try:
        return parse_time(text)
    except ValueError as exc:
        raise _bad(f'invalid parameter "{name}": {exc}') from None


def _duration(params: Params, name: str) -> float | None:
    text = _first(params, name)
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise _bad(f'invalid parameter "{name}": {exc}') from None


def _int(params: Params, name: str, default: int) -> int:
    text = _first(params, name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise _bad(f'invalid parameter "{name}": cannot parse {go_quote(text)} to an integer') from None
    if value <= 0:
        raise _bad(f'invalid parameter "{name}": must be a positive integer, got {value}')
    return value


def _bool(params: Params, name: str) -> bool | None:
    text = _first(params, name)
    if text is None or text == "":
        return None
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise _bad(f'invalid parameter "{name}": cannot parse {go_quote(text)} to a boolean (true or false)')


def _query(params: Params) -> str:
    text = _first(params, "query")
    if text is None or not text.strip():
        raise _bad('invalid parameter "query": 1:1: parse error: no expression found in input')
    return text


def range_vector(text: str) -> Any | None:
    """The parsed query when it is a range vector (a matrix selector or a subquery, in parentheses or not), else
    None; PromQLError when it does not parse."""
    if "[" not in text:           # every range vector has a bracket: most queries skip a second parse
        return None
    expr = parse(text)
    while isinstance(expr, pp.ParenExpr):
        expr = expr.expr
    return expr if isinstance(expr, (pp.MatrixSelector, pp.SubqueryExpr)) else None


def _ms(delta: timedelta | None) -> int:
    """A parser duration in whole milliseconds, as the engine converts offsets and ranges."""
    return 0 if delta is None else delta // timedelta(milliseconds=1)


def _at_ms(modifier: Any, default_ms: int) -> int:
    """The evaluation time an `@` modifier sets; `@ start()` and `@ end()` are the query's own time in an instant
    query. Read from its text (`@ 1000.500`): the parser's `.at` panics, with a Rust backtrace on stderr, for a time
    before 1970."""
    if modifier is None or str(modifier.type) != "AtModifierType.At":
        return default_ms
    return int(round(float(str(modifier).lstrip("@ ")) * 1000.0))


# ---- results -----------------------------------------------------------------------------------------------------
def vector_json(value: Vector | Scalar, at: float) -> dict[str, Any]:
    """`data` of an instant query: samples absent in the world (not `present`) are left out, as Prometheus has no
    sample there; a computed NaN sample (0/0) is kept and written "NaN"."""
    ts = format_time(at)
    if isinstance(value, Scalar):
        return {"resultType": "scalar", "result": [ts, format_value(float(value.values[0]))]}
    assert value.present is not None
    result = [{"metric": dict(labels), "value": [ts, format_value(float(value.values[0, i]))]}
              for i, labels in enumerate(value.labels) if value.present[0, i]]
    return {"resultType": "vector", "result": result}


def matrix_json(value: Matrix) -> dict[str, Any]:
    """`data` of a range query: one entry per series with a point at some step, sorted by label set."""
    assert value.present is not None
    times = [format_time(t) for t in value.times]
    result = []
    for i, labels in enumerate(value.labels):
        steps = np.flatnonzero(value.present[:, 0, i])
        if steps.size:
            result.append({"metric": dict(labels),
                           "values": [[times[k], format_value(float(value.values[k, 0, i]))] for k in steps]})
    result.sort(key=lambda r: sorted(r["metric"].items()))
    return {"resultType": "matrix", "result": result}


def jsonable(value: Any) -> Any:
    """Dataclasses, numpy scalars and non-finite floats as plain JSON (a NaN float is written as the string "NaN")."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return format_value(value)
    return value


def _encode(body: dict[str, Any]) -> bytes:
    # allow_nan=False: a bare NaN is not JSON; values are strings, so one here is a bug, reported as a 500
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


# ---- the API -----------------------------------------------------------------------------------------------------
class PrometheusAPI:
    """The endpoints as functions from request parameters to a JSON answer, independent of HTTP."""

    def __init__(self, telemetry: Telemetry, world: int = 0) -> None:
        if not 0 <= world < telemetry.engine.worlds:
            raise ValueError(f"world must be in 0..{telemetry.engine.worlds - 1}, got {world}")
        self.telemetry, self.world = telemetry, world
        self.start = float(telemetry.engine.scenario.traffic.start)     # the episode's first second
        self._routes: dict[str, Callable[[Params], Any]] = {
            "/api/v1/query": self.query, "/api/v1/query_range": self.query_range, "/api/v1/series": self.series,
            "/api/v1/labels": self.labels, "/api/v1/metadata": self.metadata,
            "/api/v1/query_exemplars": self.exemplars, "/api/v1/alerts": self.alerts, "/api/v1/rules": self.rules,
            "/api/v1/status/buildinfo": self.buildinfo, "/api/v1/logs": self.logs, "/api/v1/traces": self.traces,
            "/api/v1/changes": self.changes, "/loki/api/v1/query_range": self.loki_query_range,
            "/loki/api/v1/labels": self.loki_labels,
        }

    def handle(self, path: str, params: Params) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) for a request; never raises for bad input."""
        if path == "/":           # Prometheus redirects to its UI; clients probe it to check the connection
            return 200, "text/plain; charset=utf-8", (
                f"opsworld: {self.telemetry.engine.scenario.name}, world {self.world}, as a Prometheus HTTP API "
                f"(/api/v1/query, /api/v1/query_range, /api/v1/series, /api/v1/labels, /api/v1/alerts, "
                f"/api/v1/rules, /api/v1/logs, /api/v1/traces, /api/v1/changes)\n").encode()
        if path in ("/-/ready", "/-/healthy"):
            word = "Ready" if path == "/-/ready" else "Healthy"
            return 200, "text/plain; charset=utf-8", f"Prometheus Server is {word}.\n".encode()
        try:
            route = self._routes.get(path)
            args: tuple[str, ...] = ()
            if route is None:
                match = re.fullmatch(r"/(api|loki/api)/v1/label/([^/]+)/values", path)
                if match is None:
                    raise ApiError(404, "not_found", f"no endpoint {path}")
                route, args = (self.label_values if match[1] == "api" else self.loki_label_values), (match[2],)
            with _EVALUATION:
                data = route(params, *args)
            return 200, "application/json", _encode({"status": "success", "data": data})
        except ApiError as exc:
            status, error_type, message = exc.status, exc.error_type, exc.message
        except PromQLError as exc:
            status, error_type, message = 400, "bad_data", str(exc)
        except ToolsUnavailable as exc:
            status, error_type, message = 503, "unavailable", str(exc)
        except Exception as exc:        # a bug in the simulator: say so, keep serving
            _log.exception("%s failed", path)
            status, error_type, message = 500, "internal", f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        return status, "application/json", _encode({"status": "error", "errorType": error_type, "error": message})

    def _reachable(self) -> None:
        # Telemetry's own check, so that the store-backed endpoints fail as its query methods do (same message)
        self.telemetry.check(self.world)

    # -- metrics
    def query(self, params: Params) -> dict[str, Any]:
        """`/api/v1/query`: query, time (default: the end of the episode), timeout (checked, not enforced). A range
        vector (`up[5m]`, a subquery) answers a matrix, as Prometheus does: clients read raw samples this way."""
        text = _query(params)
        at = _time(params, "time", self.telemetry.now)
        _duration(params, "timeout")
        assert at is not None
        if not math.isfinite(at):
            raise _bad('invalid parameter "time": must be a finite time')
        expr = range_vector(text)
        if isinstance(expr, pp.MatrixSelector):
            return self._samples(expr, int(round(at * 1000.0)))
        if isinstance(expr, pp.SubqueryExpr):
            return self._subquery(expr, int(round(at * 1000.0)))
        return vector_json(self.telemetry.query(text, self.world, at), at)

    def _samples(self, expr: Any, t_ms: int) -> dict[str, Any]:
        """A matrix selector at t_ms: every raw sample in [t - range, t] (both ends, as Prometheus 2.42 and the
        engine's range functions read a window), after `@` and `offset`."""
        vs = expr.vector_selector
        # the engine's own selector conversion (matchers, offset, what it refuses); '@' is resolved here
        selector = _selector(SimpleNamespace(name=vs.name, matchers=vs.matchers, offset=vs.offset, at=None))
        end = _at_ms(vs.at, t_ms) - selector.offset_ms
        self._reachable()
        store = self.telemetry.visible(self.world)
        i0, i1 = index_range(store, end - _ms(expr.range), end)
        cols = store.select(list(selector.matchers))
        values = np.full((max(i1 - i0, 0), 1, len(cols)), np.nan)
        if i1 > i0 and len(cols):
            for bs, cs, block in blocks(store, i0, i1, cols):
                values[:, bs, cs] = block
        samples = Matrix([self._labels_of(c) for c in cols], store.times[i0:i1], values)
        return matrix_json(samples)

    def _subquery(self, expr: Any, t_ms: int) -> dict[str, Any]:
        """A subquery `q[range:step]` at t_ms: q evaluated as a range query at the multiples of step in
        [t - range, t] (after `@` and `offset`), as Prometheus aligns them."""
        inner = expr.expr.prettify()       # the parser has already refused a subquery of anything but a vector
        step = _ms(expr.step) or int(SUBQUERY_STEP * 1000)
        end = _at_ms(expr.at, t_ms) - _ms(expr.offset)
        start = -(-(end - _ms(expr.range)) // step) * step          # the first multiple of step in the window
        if (end - start) // step >= MAX_POINTS:
            raise _bad(f"a subquery of more than {MAX_POINTS:,} steps: use a longer step or a shorter range")
        if start > end:
            return {"resultType": "matrix", "result": []}
        return matrix_json(self.telemetry.query_range(inner, start / 1000.0, end / 1000.0, step / 1000.0,
                                                      self.world))

    def query_range(self, params: Params) -> dict[str, Any]:
        """`/api/v1/query_range`: query, start, end, step (seconds or a duration), timeout (checked)."""
        start, end = _time(params, "start", None), _time(params, "end", None)
        if start is None:
            raise _bad('invalid parameter "start": cannot parse "" to a valid timestamp')
        if end is None:
            raise _bad('invalid parameter "end": cannot parse "" to a valid timestamp')
        if not (math.isfinite(start) and math.isfinite(end)):
            raise _bad("start and end must be finite times")
        if end < start:
            raise _bad('invalid parameter "end": end timestamp must not be before start time')
        step = _duration(params, "step")
        if step is None:
            raise _bad('invalid parameter "step": cannot parse "" to a valid duration')
        if step <= 0:
            raise _bad('invalid parameter "step": zero or negative query resolution step widths are not accepted. '
                       'Try a positive integer')
        if (end - start) / step > MAX_POINTS:
            raise _bad(f"exceeded maximum resolution of {MAX_POINTS:,} points per timeseries. Try decreasing the "
                       f"query resolution (?step=XX)")
        _duration(params, "timeout")
        text = _query(params)
        if range_vector(text) is not None:
            raise _bad('invalid expression type "range vector" for range query, must be Scalar or instant Vector')
        return matrix_json(self.telemetry.query_range(text, start, end, step, self.world))

    def _matched(self, params: Params, required: bool) -> np.ndarray:
        """Columns of the series matching any `match[]` selector with a sample in [start, end] in this world."""
        from opsworld.observe.promql.nodes import Selector
        from opsworld.observe.promql.query import compile_query

        selectors = params.get("match[]", [])
        if required and not selectors:
            raise _bad("no match[] parameter provided")
        start, end = _time(params, "start", -math.inf), _time(params, "end", math.inf)
        assert start is not None and end is not None
        if end < start:
            raise _bad('invalid parameter "end": end timestamp must not be before start time')
        self._reachable()
        store = self.telemetry.visible(self.world)
        if selectors:
            keep = np.zeros(len(store.labels), dtype=bool)
            for text in selectors:
                try:
                    node = compile_query(text)
                except PromQLError as exc:
                    raise _bad(f'invalid parameter "match[]": {exc}') from None
                if not isinstance(node, Selector):
                    raise _bad(f'invalid parameter "match[]": {go_quote(text)} is not a series selector such as '
                               f'up{{job="x"}}')
                keep[store.select(list(node.matchers))] = True
        else:
            keep = np.ones(len(store.labels), dtype=bool)
        times = store.times
        window = (times >= start) & (times <= end)
        has = ~np.isnan(store.values[window, 0, :]).all(axis=0) if window.any() else np.zeros_like(keep)
        return np.flatnonzero(keep & has)

    def _labels_of(self, column: int) -> dict[str, str]:
        # a label with an empty value does not exist in Prometheus
        return {k: v for k, v in self.telemetry.store.labels[column].items() if v != ""}

    def series(self, params: Params) -> list[dict[str, str]]:
        """`/api/v1/series`: match[] (one or more), start, end."""
        # sorted by label set, as Prometheus merges series
        return sorted((self._labels_of(c) for c in self._matched(params, required=True)),
                      key=lambda ls: sorted(ls.items()))

    def labels(self, params: Params) -> list[str]:
        """`/api/v1/labels`: every label name (match[], start, end optional)."""
        return sorted({k for c in self._matched(params, required=False) for k in self._labels_of(c)})

    def label_values(self, params: Params, name: str) -> list[str]:
        """`/api/v1/label/<name>/values` (match[], start, end optional)."""
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
            raise _bad(f"invalid label name: {go_quote(name)}")
        return sorted({ls[name] for c in self._matched(params, required=False)
                       if name in (ls := self._labels_of(c))})

    def metadata(self, params: Params) -> dict[str, list[dict[str, str]]]:
        """`/api/v1/metadata`: each family's type and help (metric, limit optional: as in Prometheus, a negative
        limit is none and 0 answers nothing)."""
        wanted = _first(params, "metric")
        text = _first(params, "limit") or "-1"
        try:
            limit = int(text)
        except ValueError:
            raise _bad(f'invalid parameter "limit": cannot parse {go_quote(text)} to an integer') from None
        if limit < 0:
            limit = 1 << 62
        store = self.telemetry.store
        names = set(store.label_values("__name__"))
        out = {}
        for family in store.families.values():
            # a counter's metadata goes by its sample name (`x_total`), as a text-format scrape declares it
            name = f"{family.name}_total" if family.type == "counter" and f"{family.name}_total" in names \
                else family.name
            out[name] = [{"type": family.type, "help": family.help, "unit": ""}]
        return {k: out[k] for k in [k for k in sorted(out) if wanted in (None, "", k)][:limit]}

    def exemplars(self, params: Params) -> list[Any]:
        """`/api/v1/query_exemplars`: the simulator keeps no exemplars; start, end and the query are still checked,
        as Prometheus checks them."""
        start, end = _time(params, "start", -math.inf), _time(params, "end", math.inf)
        assert start is not None and end is not None
        if end < start:
            raise _bad("end timestamp must not be before start timestamp")
        parse(_query(params))
        return []

    # -- alerting
    def alerts(self, params: Params) -> dict[str, Any]:
        """`/api/v1/alerts`: the pending and firing alerts now (at the end of the episode)."""
        self._reachable()
        evaluator = self.telemetry.evaluator
        return evaluator.alerts_json(self.world)["data"] if evaluator is not None else {"alerts": []}

    def rules(self, params: Params) -> dict[str, Any]:
        """`/api/v1/rules`: rule groups with health, state and alerts; `type=alert|record` filters."""
        self._reachable()
        kind = _first(params, "type")
        if kind not in (None, "", "alert", "record"):
            raise _bad(f'invalid parameter "type": {go_quote(kind)} is not "alert" or "record"')
        evaluator = self.telemetry.evaluator
        groups = evaluator.rules_json(self.world)["data"]["groups"] if evaluator is not None else []
        if kind:
            wanted = "alerting" if kind == "alert" else "recording"
            groups = [{**g, "rules": [r for r in g["rules"] if r["type"] == wanted]} for g in groups]
            groups = [g for g in groups if g["rules"]]
        return {"groups": groups}

    def buildinfo(self, params: Params) -> dict[str, str]:
        """`/api/v1/status/buildinfo`: what Grafana reads to pick the PromQL features it offers."""
        return {"version": PROMETHEUS_VERSION, "revision": "opsworld", "branch": "opsworld", "buildUser": "opsworld",
                "buildDate": "20230101-00:00:00", "goVersion": "go1.19"}

    # -- the rest of the episode's telemetry
    def changes(self, params: Params) -> list[dict[str, Any]]:
        """`/api/v1/changes`: the change history (deploys, config pushes, scaling...) between start and end."""
        start, end = _time(params, "start", None), _time(params, "end", None)
        return [change_json(c, self.start) for c in self.telemetry.changes(self.world, start, end)]

    def _log_lines(self, params: Params, default_limit: int) -> list[Any]:
        from opsworld.observe.logs import LogQueryError

        filters: dict[str, Any] = {"limit": _int(params, "limit", default_limit)}
        text = _first(params, "query")
        if text:
            filters["query"] = text
        for name in ("start", "end"):
            value = _time(params, name, None)
            if value is not None:
                filters[name] = value
        direction = _first(params, "direction")
        if direction:
            filters["direction"] = direction.lower()
        try:
            return self.telemetry.logs(self.world, **filters)
        except LogQueryError as exc:
            name = "direction" if "direction" in str(exc) else "query"
            raise _bad(f'invalid parameter "{name}": {exc}') from None

    def logs(self, params: Params) -> list[dict[str, Any]]:
        """`/api/v1/logs`: query (LogQL: a stream selector and line filters), start, end, limit, direction
        (backward: newest first, the default; forward): the matching lines as JSON objects."""
        return [log_json(line) for line in self._log_lines(params, LOG_LIMIT)]

    def loki_query_range(self, params: Params) -> dict[str, Any]:
        """`/loki/api/v1/query_range` in Loki's format: streams (by service, pod and level) of [nanosecond string,
        line] pairs. Log queries only: Loki's metric queries over logs are not supported."""
        params = dict(params)
        for name in ("start", "end"):
            text = _first(params, name)
            if text:
                params[name] = [repr(_loki_time(text, name))]
        lines = self._log_lines(params, 100)                       # Loki's default limit
        streams: dict[tuple[str, str, str], list[list[str]]] = {}
        for line in lines:                                          # already in the asked direction
            key = (line.service, line.pod, line.level.lower())
            streams.setdefault(key, []).append([str(int(round(line.time * 1e6)) * 1000), line.message])
        result = [{"stream": {"service": service, "pod": pod, "level": level}, "values": values}
                  for (service, pod, level), values in streams.items()]
        return {"resultType": "streams", "result": result, "stats": {}}

    def loki_labels(self, params: Params) -> list[str]:
        """`/loki/api/v1/labels`: the labels a log stream selector may use."""
        return sorted(_LOG_LABELS)

    def loki_label_values(self, params: Params, name: str) -> list[str]:
        """`/loki/api/v1/label/<name>/values`: the values a log label takes."""
        from opsworld.observe.logs import LEVELS

        if name == "level":
            return sorted(level.lower() for level in LEVELS)
        if name in ("service", "app", "container"):
            return sorted(self.telemetry.engine.topology.components)
        return self.telemetry.store.label_values(name) if name in _LOG_LABELS else []

    def traces(self, params: Params) -> list[dict[str, Any]]:
        """`/api/v1/traces`: service, operation, start, end, minDuration (seconds or a duration), error, limit."""
        filters: dict[str, Any] = {"limit": _int(params, "limit", TRACE_LIMIT)}
        for name in ("service", "operation"):
            text = _first(params, name)
            if text:
                filters[name] = text
        for name in ("start", "end"):
            value = _time(params, name, None)
            if value is not None:
                filters[name] = value
        shortest = _duration(params, "minDuration")
        if shortest is not None:
            filters["min_duration"] = shortest
        failed = _bool(params, "error")
        if failed is not None:
            filters["error"] = failed
        return [trace_json(t) for t in self.telemetry.traces(self.world, **filters)]


_LOG_LABELS = ("app", "container", "level", "namespace", "node", "pod", "service", "zone")   # logs.py's stream labels


def _loki_time(text: str, name: str) -> float:
    """Loki's times: RFC 3339, float seconds, integer seconds (up to 10 digits) or integer nanoseconds."""
    if re.fullmatch(r"\d{11,}", text):
        return int(text) / 1e9
    value = _time({name: [text]}, name, None)
    assert value is not None
    return value


def change_json(change: Any, start: float) -> dict[str, Any]:
    """A change as JSON, with its Unix time and RFC 3339 timestamp."""
    at = start + float(change.time)
    return {"time": format_time(at), "timestamp": rfc3339(at), "kind": change.kind, "target": change.target,
            "before": change.before, "after": change.after, "by": change.by}


def log_json(line: Any) -> dict[str, Any]:
    """A log line as a JSON object: time (Unix seconds), service, pod, level, message."""
    return jsonable(line)


def trace_json(trace: Any) -> dict[str, Any]:
    """A trace as a JSON object: trace_id, duration (the root span's, seconds), error (any span failed) and its
    spans (parents before children) with every field."""
    return {"trace_id": trace.trace_id, "duration": trace.duration, "error": trace.has_error,
            "spans": jsonable(trace.spans)}


# ---- HTTP --------------------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into `PrometheusAPI.handle` calls."""

    protocol_version = "HTTP/1.1"     # keep-alive: Grafana and client libraries reuse connections
    server_version = "opsworld-prometheus/" + PROMETHEUS_VERSION
    server: PrometheusServer

    def do_GET(self) -> None:
        self._answer(b"")

    def do_HEAD(self) -> None:
        self._answer(b"")

    def do_OPTIONS(self) -> None:
        # a browser's CORS preflight before a form POST: Prometheus answers every OPTIONS with an empty success
        self._send(200, "application/json", _encode({"status": "success", "data": None}), {
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Accept, Authorization, Content-Type, Origin"})

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True      # the body cannot be skipped safely: end the connection after this
            self._send(400 if length < 0 else 413, "application/json", _encode(
                {"status": "error", "errorType": "bad_data",
                 "error": f"a form body needs a Content-Length of at most {MAX_BODY} bytes"}))
            return
        body = self.rfile.read(length)
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        self._answer(body if content_type in ("", "application/x-www-form-urlencoded") else b"")

    def _answer(self, body: bytes) -> None:
        url = urlsplit(self.path)
        params: Params = {}
        # like Go's ParseForm: values from the body first, then the URL's
        for source in (body.decode("utf-8", "replace"), url.query):
            for name, values in parse_qs(source, keep_blank_values=True).items():
                params.setdefault(name, []).extend(values)
        api = self.server.api
        if api is None:          # bound, but the episode is still being simulated
            status, content_type, payload = 503, "application/json", _encode(
                {"status": "error", "errorType": "unavailable", "error": "the episode is still being simulated"})
        else:
            status, content_type, payload = api.handle(url.path.rstrip("/") or "/", params)
        self._send(status, content_type, payload)

    def _send(self, status: int, content_type: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # to a logger, not stderr: a dashboard polls many times a second
        _log.debug("%s %s", self.address_string(), format % args)


class PrometheusServer(ThreadingHTTPServer):
    """A threaded HTTP server (daemon threads) over one world of a Telemetry.

    Made without an `api`, it only holds the port (binding fails at once if it is taken); set `api` before
    `serve_forever()`. Clients that connect meanwhile wait in the listen queue."""

    daemon_threads = True
    request_queue_size = 256          # many clients connecting at once are queued, not refused
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: PrometheusAPI | None = None) -> None:
        super().__init__(address, _Handler)
        self.api = api

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that closed or reset its connection (mid-request or mid-answer) is routine: one debug line, not
        socketserver's traceback on stderr. Anything else is a bug and keeps the traceback."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            _log.debug("%s went away: %s", client_address, sys.exc_info()[1])
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        """The base URL to give a client (`http://127.0.0.1:9090`)."""
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def make_server(telemetry: Telemetry, world: int = 0, host: str = "127.0.0.1", port: int = 9090) -> PrometheusServer:
    """A server bound to host:port (port 0: a free one) answering for one world; call `serve_forever()` on it."""
    return PrometheusServer((host, port), PrometheusAPI(telemetry, world))


def serve(telemetry: Telemetry, world: int = 0, host: str = "127.0.0.1", port: int = 9090) -> None:
    """Serve one world until interrupted (KeyboardInterrupt propagates after the socket is closed)."""
    server = make_server(telemetry, world, host, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
