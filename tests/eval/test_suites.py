"""The evaluation suites (detection, localization, RCA, mitigation) and the leaderboard, through the API and the
command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from opsworld.cli import app
from opsworld.eval.suites import SUITES, SuiteError, evaluate, leaderboard

# a clean change log: these check the metrics' arithmetic on episodes the heuristic is known to handle
HOTEL = dict(templates=("hotel-reservation",), entries=("db_connection_limit", "int32_id_overflow"), background=0.0)


def test_detection_counts_faults_and_controls():
    r = evaluate("detection", "heuristic-sre", seeds=1, **HOTEL)
    m = r.metrics
    assert m["faults"] == 2 and m["controls"] == 2            # two no-fault controls per seed where none exist
    assert r.episodes == 4 and r.primary == "detection_accuracy"
    assert m["true_positive_rate"] == 1.0 and m["false_positive_rate"] == 0.0 and m["detection_accuracy"] == 1.0
    assert m["ttd_s"] is not None and m["ttd_s"] > 0
    idle = evaluate("detection", "do-nothing", seeds=1, **HOTEL).metrics
    assert idle["true_positive_rate"] == 0.0 and idle["detection_accuracy"] == 0.5 and idle["ttd_s"] is None


def test_an_agent_that_always_acts_raises_false_alarms():
    m = evaluate("detection", "opsworld.agents.random:RandomAgent", seeds=1, **HOTEL).metrics
    assert m["false_positive_rate"] == 1.0


def test_localization_rca_and_mitigation_metrics():
    loc = evaluate("localization", "heuristic-sre", seeds=1, **HOTEL).metrics
    assert loc["exact_match"] == 1.0 and loc["subset_match"] == 1.0 and loc["ntam"] == 1.0 and loc["ttl_s"] > 0
    rca = evaluate("rca", "heuristic-sre", seeds=1, **HOTEL).metrics
    assert rca["rca_accuracy"] == 1.0 and rca["class_accuracy"] == 1.0
    mit = evaluate("mitigation", "heuristic-sre", seeds=1, **HOTEL).metrics
    assert mit["mitigation_rate"] == 1.0 and mit["ttm_s"] > 0 and mit["unsafe_per_episode"] == 0.0
    blame = evaluate("rca", "blame-most-alerting", seeds=1, **HOTEL).metrics
    assert blame["rca_accuracy"] < 1.0


def test_leaderboard_is_sorted_by_the_primary_metric():
    board = leaderboard("mitigation", agents=["do-nothing", "heuristic-sre"], seeds=1, **HOTEL)
    assert [r.agent for r in board.rows] == ["heuristic-sre", "do-nothing"]
    assert board.primary == "mitigation_rate"


def test_unknown_suite():
    with pytest.raises(SuiteError, match="no suite named"):
        evaluate("nope", "do-nothing")
    assert set(SUITES) == {"detection", "localization", "rca", "mitigation"}


def test_cli_eval():
    runner = CliRunner()
    base = ["eval", "--seeds", "1", "--template", "hotel-reservation", "--entry", "db_connection_limit",
            "--difficulty", "easy"]          # the catalogue's example, which the heuristic diagnoses
    result = runner.invoke(app, base + ["--suite", "rca", "--agent", "heuristic-sre", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert data["suite"] == "rca" and data["metrics"]["rca_accuracy"] == 1.0
    table = runner.invoke(app, base + ["--suite", "mitigation", "--agent", "page-at-once"])
    assert table.exit_code == 0 and "mitigation_rate" in table.stdout
    assert runner.invoke(app, base + ["--suite", "nope"]).exit_code == 2
    bad = runner.invoke(app, base + ["--suite", "rca", "--agent", "nobody"])
    assert bad.exit_code == 2 and "no agent named" in bad.output


def test_cli_eval_takes_several_agents_and_puts_named_ones_on_the_leaderboard():
    """A repeated --agent scores every one of them (not only the last); --leaderboard ranks the named agents, a
    module:Class among them, beside every registered one."""
    from opsworld.agents import AGENTS
    runner = CliRunner()
    base = ["eval", "--seeds", "1", "--template", "hotel-reservation", "--entry", "db_connection_limit",
            "--suite", "mitigation", "--json"]
    both = runner.invoke(app, base + ["--agent", "do-nothing", "--agent", "heuristic-sre"])
    assert both.exit_code == 0, both.output
    rows = json.loads(both.stdout[both.stdout.index("["):])
    assert [r["agent"] for r in rows] == ["do-nothing", "heuristic-sre"]
    mine = "opsworld.agents.random:RandomAgent"
    board = runner.invoke(app, base + ["--leaderboard", "--agent", mine])
    assert board.exit_code == 0, board.output
    agents = [r["agent"] for r in json.loads(board.stdout[board.stdout.index("["):])]
    assert mine in agents and set(AGENTS) <= set(agents) and len(agents) == len(AGENTS) + 1
