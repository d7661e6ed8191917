"""Exports of one episode: Parquet tables, OTLP/JSON logs and traces, OpenMetrics text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from opsworld.observe.episode import load_episode
from opsworld.observe.export.files import FORMATS, episode_logs, episode_traces, export
from opsworld.observe.telemetry import Telemetry


@pytest.fixture(scope="module")
def telemetry() -> Telemetry:
    # 2% of requests traced (not 10%): fewer spans to write, the same code paths
    episode = load_episode("online-shop", seed=5, duration="20m", telemetry={"trace_sample": 0.02},
                           faults=[{"fault": "bad_deploy_errors", "target": "cartservice"}])
    return episode.run(worlds=2)


@pytest.fixture(scope="module")
def written(telemetry: Telemetry, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    paths = export(telemetry, 1, out, FORMATS)
    assert sorted(p.name for p in paths) == sorted([
        "metrics.om.txt", "logs.json", "traces.json", "metrics.parquet", "logs.parquet", "traces.parquet",
        "changes.parquet", "alerts.parquet"])
    return out


def _columns(table: pa.Table) -> dict[str, str]:
    return {f.name: str(f.type) for f in table.schema}


def test_metrics_parquet_is_every_sample_of_the_world(written: Path, telemetry: Telemetry) -> None:
    table = pq.read_table(written / "metrics.parquet")
    assert _columns(table) == {"time": "timestamp[ms, tz=UTC]", "series": "int32", "name": "string",
                               "labels": "string", "value": "double"}
    store = telemetry.store.world(1)
    values = store.values[:, 0, :]
    assert table.num_rows == int((~np.isnan(values)).sum()) > 0
    assert not np.isnan(table["value"].to_numpy()).any()
    rows = table.slice(0, 2000).to_pylist() + table.slice(table.num_rows - 2000).to_pylist()
    times = {round(t * 1000): k for k, t in enumerate(store.times)}
    for row in rows:
        labels = store.labels[row["series"]]
        assert row["name"] == labels["__name__"]
        assert json.loads(row["labels"]) == {k: v for k, v in labels.items() if k != "__name__" and v != ""}
        k = times[round(row["time"].timestamp() * 1000)]
        assert row["value"] == values[k, row["series"]]


def test_log_trace_change_and_alert_tables(written: Path, telemetry: Telemetry) -> None:
    logs = pq.read_table(written / "logs.parquet")
    assert _columns(logs) == {"time": "timestamp[ms, tz=UTC]", "service": "string", "pod": "string",
                              "level": "string", "message": "string"}
    lines = episode_logs(telemetry, 1)
    assert logs.num_rows == len(lines) > 100
    assert logs.slice(0, 1).to_pylist()[0]["message"] == lines[0].message
    assert "cartservice" in set(logs["service"].to_pylist()) and "ERROR" in set(logs["level"].to_pylist())

    spans = pq.read_table(written / "traces.parquet")
    assert set(_columns(spans)) == {"trace_id", "span_id", "parent_id", "service", "operation", "start", "duration",
                                    "status", "status_message", "attributes", "kind", "events"}
    assert _columns(spans)["start"] == "timestamp[ms, tz=UTC]" and _columns(spans)["duration"] == "double"
    traces = episode_traces(telemetry, 1)
    assert spans.num_rows == sum(len(t.spans) for t in traces) > 0
    assert len(set(spans["trace_id"].to_pylist())) == len(traces)
    assert all(isinstance(json.loads(a), dict) for a in spans["attributes"].to_pylist()[:100])

    changes = pq.read_table(written / "changes.parquet").to_pylist()
    assert [(c["kind"], c["target"], c["by"]) for c in changes] == [("deploy", "cartservice", "deploy-pipeline")]
    assert changes[0]["time"].timestamp() == telemetry.engine.scenario.traffic.start + 600

    alerts = pq.read_table(written / "alerts.parquet")
    rows = alerts.to_pylist()
    assert {"notification", "end"} <= {r["source"] for r in rows}
    sent = [r for r in rows if r["source"] == "notification"]
    assert len(sent) == sum(len(n.alerts) for n in telemetry.notifier.notifications(1))
    end = [r for r in rows if r["source"] == "end"]
    assert sorted(r["fingerprint"] for r in end) == sorted(a.fingerprint for a in telemetry.alerts(1))
    assert all(json.loads(r["labels"])["alertname"] == r["alertname"] for r in rows)


def test_openmetrics_file(written: Path) -> None:
    text = (written / "metrics.om.txt").read_text(encoding="utf-8")
    assert text.endswith("# EOF\n") and "# TYPE http_server_requests counter" in text


def test_otlp_files_hold_the_same_lines_and_spans(written: Path) -> None:
    logs = json.loads((written / "logs.json").read_text(encoding="utf-8"))
    traces = json.loads((written / "traces.json").read_text(encoding="utf-8"))
    records = [r for rl in logs["resourceLogs"] for sl in rl["scopeLogs"] for r in sl["logRecords"]]
    spans = [s for rs in traces["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert len(records) == pq.read_metadata(written / "logs.parquet").num_rows > 0
    span_ids = pq.read_table(written / "traces.parquet", columns=["span_id"])["span_id"].to_pylist()
    assert sorted(s["spanId"] for s in spans) == sorted(span_ids)


def test_unknown_format_or_world_is_refused(telemetry: Telemetry, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="csv"):
        export(telemetry, 0, tmp_path, ["csv"])
    for fmt in FORMATS:
        with pytest.raises(ValueError, match="world"):
            export(telemetry, 2, tmp_path, [fmt])
    assert not any(tmp_path.iterdir())
