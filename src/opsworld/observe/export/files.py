"""One world of an episode written as files, in the formats other tools read.

    export(telemetry, world, out_dir, ["openmetrics", "otlp", "parquet"])

- `openmetrics`: `metrics.om.txt`, for `promtool tsdb create-blocks-from openmetrics metrics.om.txt DIR`
- `otlp`: `logs.json` and `traces.json`, OTLP/JSON (`ExportLogsServiceRequest`, `ExportTraceServiceRequest`)
- `parquet`: `metrics/logs/traces/changes/alerts.parquet` (see `export.parquet`)

Logs and traces of the whole episode are read with a cap: the oldest EXPORT_LOG_LIMIT (100,000) lines and the newest
EXPORT_TRACE_LIMIT (10,000) sampled traces (the trace sensor searches newest first); an export of a longer, busier
episode is truncated there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from opsworld.observe.telemetry import Telemetry

FORMATS = ("openmetrics", "otlp", "parquet")
EXPORT_LOG_LIMIT = 100_000       # log lines read for a whole episode: the cap keeps a long episode's export bounded
EXPORT_TRACE_LIMIT = 10_000      # traces read for a whole episode (sampled traces; many spans each)


def check_world(telemetry: Telemetry, world: int) -> None:
    """ValueError unless `world` is one of the batch's (a store view of a missing world would be silently empty)."""
    if not 0 <= world < telemetry.engine.worlds:
        raise ValueError(f"world must be in 0..{telemetry.engine.worlds - 1}, got {world}")


def episode_logs(telemetry: Telemetry, world: int) -> list[Any]:
    """Every log line of the episode, up to EXPORT_LOG_LIMIT, oldest first."""
    return telemetry.logs(world, limit=EXPORT_LOG_LIMIT, direction="forward", **_whole(telemetry))


def episode_traces(telemetry: Telemetry, world: int) -> list[Any]:
    """Every sampled trace of the episode, up to EXPORT_TRACE_LIMIT (the newest), newest first."""
    return telemetry.traces(world, limit=EXPORT_TRACE_LIMIT, **_whole(telemetry))


def _whole(telemetry: Telemetry) -> dict[str, float]:
    return {"start": float(telemetry.engine.scenario.traffic.start), "end": telemetry.now}


def write_openmetrics_file(telemetry: Telemetry, world: int, out_dir: str | Path) -> list[Path]:
    """`metrics.om.txt`: one world's samples as OpenMetrics text."""
    from opsworld.observe.export.openmetrics import write_openmetrics

    check_world(telemetry, world)
    path = _folder(out_dir) / "metrics.om.txt"
    write_openmetrics(telemetry.store, world, path)
    return [path]


def write_otlp(telemetry: Telemetry, world: int, out_dir: str | Path, lines: list[Any] | None = None,
               traces: list[Any] | None = None) -> list[Path]:
    """`logs.json` and `traces.json`: the episode's logs and sampled traces as OTLP/JSON (`lines`/`traces`: already
    read with `episode_logs`/`episode_traces`)."""
    from opsworld.observe.export.otlp import logs_to_otlp, traces_to_otlp

    check_world(telemetry, world)
    folder = _folder(out_dir)
    lines = episode_logs(telemetry, world) if lines is None else lines
    traces = episode_traces(telemetry, world) if traces is None else traces
    paths = [folder / "logs.json", folder / "traces.json"]
    for path, body in zip(paths, (logs_to_otlp(lines), traces_to_otlp(traces))):
        path.write_text(json.dumps(body, separators=(",", ":")), encoding="utf-8")
    return paths


def export(telemetry: Telemetry, world: int, out_dir: str | Path, formats: Iterable[str]) -> list[Path]:
    """Write one world in each of `formats` (see FORMATS) into `out_dir`; returns the paths written."""
    from opsworld.observe.export.parquet import write_parquet      # pyarrow is imported only when it is needed

    check_world(telemetry, world)
    chosen = list(dict.fromkeys(formats))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format {', '.join(unknown)}; use {', '.join(FORMATS)}")
    text: dict[str, Any] = {}
    if "otlp" in chosen and "parquet" in chosen:      # read the logs and traces once for both
        text = {"lines": episode_logs(telemetry, world), "traces": episode_traces(telemetry, world)}
    paths: list[Path] = []
    for name in chosen:
        if name == "openmetrics":
            paths += write_openmetrics_file(telemetry, world, out_dir)
        elif name == "otlp":
            paths += write_otlp(telemetry, world, out_dir, **text)
        else:
            paths += write_parquet(telemetry, world, out_dir, **text)
    return paths


def _folder(out_dir: str | Path) -> Path:
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
