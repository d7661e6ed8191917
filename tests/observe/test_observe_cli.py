"""`opsworld query/logs/traces/alerts/export/serve` end to end, on short episodes."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsworld.cli import app
from opsworld.observe.serve import PrometheusServer

runner = CliRunner()
SHOP = ["online-shop", "--duration", "15m", "--seed", "2"]
BROKEN = [*SHOP, "--fault", "bad_deploy_errors:cartservice"]


def _one_line_error(args: list[str], words: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (args, result.stdout, result.stderr)
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_query_instant_range_and_json() -> None:
    query = 'sum by (service) (rate(http_server_requests_total{code=~"5.."}[2m]))'
    result = runner.invoke(app, ["query", query, *BROKEN, "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["resultType"] == "vector"
    failing = {r["metric"]["service"]: float(r["value"][1]) for r in data["result"]}
    assert failing["cartservice"] > 1.0 and failing["emailservice"] == 0.0
    table = runner.invoke(app, ["query", query, *BROKEN, "--at", "5m"])
    assert table.exit_code == 0 and 'service="cartservice"' in table.stdout and "+5m" in table.stdout
    ranged = runner.invoke(app, ["query", "sum(up)", *SHOP, "--range", "1m:10m:1m", "--json"])
    assert ranged.exit_code == 0, ranged.stderr
    points = json.loads(ranged.stdout)["result"][0]["values"]
    assert len(points) == 10 and points[1][0] - points[0][0] == 60
    whole = runner.invoke(app, ["query", "sum(up)", *SHOP, "--range", "::5m"])
    assert whole.exit_code == 0 and "points" in whole.stdout


def test_query_mistakes_exit_2_with_one_line() -> None:
    _one_line_error(["query", "sum(rate(up[5m])", *SHOP], "parse error")
    _one_line_error(["query", "up[5m]", *SHOP], "range vector")
    _one_line_error(["query", "up", *SHOP, "--fault", "no_such_fault"], "opsworld faults")
    _one_line_error(["query", "up", *SHOP, "--fault", "cpu_hog:nowhere"], "nowhere")
    _one_line_error(["query", "up", *SHOP, "--at", "teatime"], "--at")
    _one_line_error(["query", "up", *SHOP, "--range", "1m-2m"], "START:END:STEP")
    _one_line_error(["query", "up", *SHOP, "--range", "1m:2m:0s"], "STEP")
    _one_line_error(["query", "up", "no-such-template"], "no-such-template")
    _one_line_error(["query", "up", "online-shop", "--duration", "forever"], "duration")


def test_query_reads_an_episode_file(write_yaml) -> None:
    path = write_yaml({"scenario": "online-shop", "seed": 1, "duration": "15m",
                       "faults": [{"fault": "bad_deploy_errors", "target": "cartservice", "onset": "5m"}]},
                      name="episode.yaml")
    result = runner.invoke(app, ["query", 'sum(rate(http_server_requests_total{service="cartservice",'
                                          'code=~"5.."}[2m]))', str(path), "--at", "4m", "--json"])
    assert result.exit_code == 0, result.stderr
    assert float(json.loads(result.stdout)["result"][0]["value"][1]) == 0.0

    def value(query: str, *extra: str) -> float:
        answer = runner.invoke(app, ["query", query, str(path), "--json", *extra])
        assert answer.exit_code == 0, answer.stderr
        return float(json.loads(answer.stdout)["result"][0]["value"][1])

    # --fault adds to the file's faults: the file's bad deploy still fails requests, and frontend's CPU goes up
    cpu = 'sum(rate(container_cpu_usage_seconds_total{container="frontend"}[2m]))'
    assert value(cpu, "--fault", "cpu_hog:frontend") > 1.5 * value(cpu)
    assert value('sum(rate(http_server_requests_total{service="cartservice", code=~"5.."}[2m]))',
                 "--fault", "cpu_hog:frontend") > 1.0


def test_logs_and_traces() -> None:
    result = runner.invoke(app, ["logs", *BROKEN, "--service", "cartservice", "--level", "error", "--limit", "5"])
    assert result.exit_code == 0, result.stderr
    heads = [line for line in result.stdout.splitlines() if line[:4].isdigit()]
    assert len(heads) == 5 and all(" ERROR cartservice-" in line for line in heads)
    assert heads == sorted(heads)                       # oldest first
    queried = runner.invoke(app, ["logs", *BROKEN, "--query", '{service="frontend"} |= "cartservice"',
                                  "--since", "2m", "--limit", "3"])
    assert queried.exit_code == 0 and "frontend-" in queried.stdout, queried.stderr
    _one_line_error(["logs", *SHOP, "--query", '{service="frontend"'], "--query")
    _one_line_error(["logs", *SHOP, "--since", "a while"], "--since")

    traces = runner.invoke(app, ["traces", *BROKEN, "--service", "frontend", "--error", "--limit", "2"])
    assert traces.exit_code == 0, traces.stderr
    assert "frontend" in traces.stdout and "cartservice" in traces.stdout
    as_json = json.loads(runner.invoke(app, ["traces", *BROKEN, "--operation", "HGETALL", "--limit", "3",
                                             "--json"]).stdout)
    assert len(as_json) == 3 and all(any(s["operation"] == "HGETALL" for s in t["spans"]) for t in as_json)
    lines = json.loads(runner.invoke(app, ["logs", *SHOP, "--level", "warn", "--limit", "4", "--json"]).stdout)
    assert len(lines) == 4 and {x["level"] for x in lines} == {"WARN"}
    slow = runner.invoke(app, ["traces", *SHOP, "--min-duration", "1h", "--limit", "2"])
    assert slow.exit_code == 0 and "no traces match" in slow.stderr
    _one_line_error(["traces", *SHOP, "--min-duration", "slow"], "--min-duration")


def test_alerts_table_and_json() -> None:
    result = runner.invoke(app, ["alerts", *BROKEN, "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert any(a["state"] == "firing" for a in data["alerts"])
    assert all(p["receiver"] for p in data["pages"])
    table = runner.invoke(app, ["alerts", *BROKEN])
    assert table.exit_code == 0 and "firing" in table.stdout and "ServiceErrorRatioHigh" in table.stdout
    calm = runner.invoke(app, ["alerts", "online-shop", "--duration", "5m"])
    assert calm.exit_code == 0 and "no pages sent" in calm.stdout


def test_export_formats(tmp_path: Path) -> None:
    out = tmp_path / "dump"
    result = runner.invoke(app, ["export", "online-shop", "--duration", "4m", "--format", "parquet",
                                 "--format", "openmetrics,otlp", "--out", str(out), "--world", "1"])
    assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["alerts.parquet", "changes.parquet", "logs.json", "logs.parquet", "metrics.om.txt",
                     "metrics.parquet", "traces.json", "traces.parquet"]
    assert "wrote" in result.stdout
    _one_line_error(["export", *SHOP, "--format", "csv", "--out", str(out)], "csv")
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    _one_line_error(["export", *SHOP, "--format", "parquet", "--out", str(blocked / "x")], "--out")


def test_serve_prints_how_to_connect_and_stops_on_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: PrometheusServer, poll_interval: float = 0.5) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(PrometheusServer, "serve_forever", interrupted)
    result = runner.invoke(app, ["serve", *SHOP, "--port", "0"])
    assert result.exit_code == 0, result.stderr
    assert "http://127.0.0.1:" in result.stdout and "promtool query instant" in result.stdout
    assert "stopped" in result.stdout
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        _one_line_error(["serve", *SHOP, "--port", str(port)], "--port")
