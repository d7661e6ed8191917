"""`opsworld faults` and `opsworld inject` end to end."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from opsworld.cli import app

runner = CliRunner()


def test_faults_lists_the_catalogue_as_json_and_table() -> None:
    result = runner.invoke(app, ["faults", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert len(rows) >= 55
    memory = next(r for r in rows if r["name"] == "memory_creep")
    assert memory["class"] == "MemoryLeak" and memory["fixes"] == ["rollback_deploy"]
    assert memory["parameters"]["page_after"]["value"] == 4 * 3600.0
    table = runner.invoke(app, ["faults"])
    assert table.exit_code == 0 and "certificate_expiry" in table.stdout and "renew_cert" in table.stdout


def test_inject_prints_the_ground_truth_and_a_fix_ends_the_impact() -> None:
    result = runner.invoke(app, ["inject", "bad_deploy_errors", "--duration", "40m", "--json"])
    assert result.exit_code == 0, result.stdout
    truth = json.loads(result.stdout)[0]
    assert truth["root_causes"] == [{"kind": "component", "name": "cartservice"}]
    assert truth["chain"][0]["place"]["name"] == "cartservice" and truth["impact"]["start"] is not None
    fixed = json.loads(runner.invoke(app, ["inject", "bad_deploy_errors", "--duration", "40m", "--json",
                                           "--fix", "rollback_deploy@15m"]).stdout)[0]
    assert fixed["impact"]["end"] < 20 * 60 < truth["impact"]["end"]
    text = runner.invoke(app, ["inject", "cpu_hog", "--target", "frontend", "--duration", "20m"])
    assert text.exit_code == 0 and "causal chain" in text.stdout and "frontend" in text.stdout


def test_inject_mistakes_exit_2_with_one_line() -> None:
    for args, words in [(["inject", "nosuchfault"], "opsworld faults"),
                        (["inject", "cpu_hog", "--target", "nosuch"], "not a component"),
                        (["inject", "cpu_hog", "--duration", "forever"], "duration"),
                        (["inject", "cpu_hog", "--fix", "reboot@10m"], "no mitigation"),
                        (["inject", "cpu_hog", "--fix", "restart"], "ACTION")]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.stdout)
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_calibrate_without_the_data_exits_2(tmp_path) -> None:
    result = runner.invoke(app, ["calibrate", "--nezha", str(tmp_path / "absent")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
