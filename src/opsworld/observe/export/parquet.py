"""One world of an episode as Parquet tables, for pandas, Polars, DuckDB or Spark.

`write_parquet(telemetry, world, out_dir)` writes:

    metrics.parquet   long format, one row per sample: time (timestamp[ms, UTC]), series (int32, the store's
                      column), name, labels (JSON of the label set less `__name__`), value (float64); rows in
                      time order, then series order; NaN (no sample: a failed scrape, a pod not running) left out
    logs.parquet      time, service, pod, level, message (the first files.EXPORT_LOG_LIMIT lines)
    traces.parquet    one row per span: trace_id, span_id, parent_id (null at the root), service, operation, start,
                      duration (seconds), status (OK, ERROR), status_message, attributes (JSON), kind (SERVER,
                      CLIENT...), events (JSON) (the newest files.EXPORT_TRACE_LIMIT traces)
    changes.parquet   time, kind, target, before, after, by
    alerts.parquet    the alert history: one row per alert in each notification sent (source "notification"), then
                      the alerts pending or firing at the end (source "end")

Metrics are every sample scraped into the store (no ingestion delay applied); logs, traces and changes are read the
way the tools read them, so a world whose monitoring is dark at the end raises ToolsUnavailable.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from opsworld.observe.export.files import check_world, episode_logs, episode_traces
from opsworld.observe.telemetry import Telemetry

_TIME = pa.timestamp("ms", tz="UTC")


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None or not math.isfinite(seconds) else int(round(seconds * 1000.0))


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def metrics_table(telemetry: Telemetry, world: int) -> pa.Table:
    """Every sample of one world, long format."""
    store = telemetry.store.world(world)
    values = store.values[:, 0, :]                             # [T, M]
    t_idx, m_idx = np.nonzero(~np.isnan(values))
    names = pa.array([ls["__name__"] for ls in store.labels], pa.string())
    labels = pa.array([_json({k: v for k, v in ls.items() if k != "__name__" and v != ""})
                       for ls in store.labels], pa.string())
    series = pa.array(m_idx.astype(np.int32))
    times_ms = np.round(store.times * 1000.0).astype(np.int64)
    return pa.table({
        "time": pa.array(times_ms[t_idx], _TIME),
        "series": series,
        "name": names.take(series),                            # take: no Python string per row
        "labels": labels.take(series),
        "value": pa.array(values[t_idx, m_idx], pa.float64()),
    })


def changes_table(telemetry: Telemetry, world: int) -> pa.Table:
    """The change history of one world."""
    start = float(telemetry.engine.scenario.traffic.start)
    rows = telemetry.changes(world)
    return pa.table({
        "time": pa.array([_ms(start + c.time) for c in rows], _TIME),
        **{f: pa.array([str(getattr(c, f)) for c in rows], pa.string())
           for f in ("kind", "target", "before", "after", "by")},
    })


def logs_table(telemetry: Telemetry, world: int, lines: list[Any] | None = None) -> pa.Table:
    """The episode's log lines (the oldest EXPORT_LOG_LIMIT), oldest first; `lines`: already read."""
    lines = episode_logs(telemetry, world) if lines is None else lines
    return pa.table({
        "time": pa.array([_ms(line.time) for line in lines], _TIME),
        **{f: pa.array([str(getattr(line, f)) for line in lines], pa.string())
           for f in ("service", "pod", "level", "message")},
    })


def traces_table(telemetry: Telemetry, world: int, traces: list[Any] | None = None) -> pa.Table:
    """One row per span of the episode's sampled traces (the newest EXPORT_TRACE_LIMIT traces); `traces`: already
    read."""
    traces = episode_traces(telemetry, world) if traces is None else traces
    spans = [span for trace in traces for span in trace.spans]
    return pa.table({
        **{f: pa.array([getattr(s, f) for s in spans], pa.string())
           for f in ("trace_id", "span_id", "parent_id", "service", "operation")},      # parent_id None: the root
        "start": pa.array([_ms(s.start) for s in spans], _TIME),
        "duration": pa.array([float(s.duration) for s in spans], pa.float64()),
        "status": pa.array([str(s.status) for s in spans], pa.string()),
        "status_message": pa.array([s.status_message or "" for s in spans], pa.string()),
        "attributes": pa.array([_json(s.attributes) for s in spans], pa.string()),
        "kind": pa.array([s.kind for s in spans], pa.string()),
        "events": pa.array([_json(s.events) for s in spans], pa.string()),
    })


_ALERT_SCHEMA = pa.schema([
    ("time", _TIME), ("source", pa.string()), ("receiver", pa.string()), ("alertname", pa.string()),
    ("state", pa.string()), ("labels", pa.string()), ("annotations", pa.string()), ("value", pa.float64()),
    ("starts_at", _TIME), ("ends_at", _TIME), ("fingerprint", pa.string()),
])


def alerts_table(telemetry: Telemetry, world: int) -> pa.Table:
    """The notifications sent (one row per alert in each) and the alerts pending or firing at the end."""
    rows: list[dict[str, Any]] = []
    if telemetry.notifier is not None:
        for note in telemetry.notifier.notifications(world):
            for a in note.alerts:
                rows.append({"time": _ms(note.time), "source": "notification", "receiver": note.receiver,
                             "alertname": a.labels.get("alertname", ""), "state": a.status,
                             "labels": _json(a.labels), "annotations": _json(a.annotations), "value": a.value,
                             "starts_at": _ms(a.starts_at), "ends_at": _ms(a.ends_at),
                             "fingerprint": a.fingerprint})
    for alert in telemetry.alerts(world):
        rows.append({"time": _ms(telemetry.now), "source": "end", "receiver": None, "alertname": alert.name,
                     "state": alert.state, "labels": _json(alert.labels), "annotations": _json(alert.annotations),
                     "value": alert.value, "starts_at": _ms(alert.active_at), "ends_at": _ms(alert.resolved_at),
                     "fingerprint": alert.fingerprint})
    return pa.Table.from_pylist(rows, schema=_ALERT_SCHEMA)


def write_parquet(telemetry: Telemetry, world: int, out_dir: str | Path, lines: list[Any] | None = None,
                  traces: list[Any] | None = None) -> list[Path]:
    """Write the five tables of one world into `out_dir` (created); returns the paths written. `lines`/`traces`:
    the episode's logs and traces if already read (`files.episode_logs`/`episode_traces`)."""
    check_world(telemetry, world)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"metrics": metrics_table(telemetry, world), "logs": logs_table(telemetry, world, lines),
              "traces": traces_table(telemetry, world, traces), "changes": changes_table(telemetry, world),
              "alerts": alerts_table(telemetry, world)}
    paths = []
    for name, table in tables.items():
        path = out / f"{name}.parquet"
        pq.write_table(table, path, compression="zstd")
        paths.append(path)
    return paths
