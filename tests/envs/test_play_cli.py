"""`opsworld play`: a person on call at a prompt, scripted through typer's CliRunner."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from opsworld.cli import _play_line, app

runner = CliRunner()
ARGS = ["play", "--fault", "bad_deploy_errors", "--seed", "1", "--horizon", "40m", "--difficulty", "easy"]   # the example as published


def test_a_shift_at_the_prompt_ends_with_the_score():
    script = "\n".join([
        "help",
        "help read_logs",
        "list_alerts",
        "query_metrics promql='sum by (service) (rate(http_server_requests_total{code=~\"5..\"}[5m]))'",
        "list_changes",
        "read_logs paymentservice filter=error range=10m",
        "bogus thing",                                   # refused by the runbook: one line, then go on
        "query_metrics 'sum(('",                         # a PromQL syntax error
        "read_logs service='unbalanced",                 # a line the prompt cannot read
        "rollback_deploy service=paymentservice",
        "wait 10m",
        '{"name": "submit", "args": {"components": ["paymentservice"], "fault_class": "error_rate"}}',
    ]) + "\n"
    result = runner.invoke(app, ARGS, input=script)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "You have been paged" in out and "runbook actions" in out
    assert "filter (string, optional)" in out                     # help NAME
    assert "FIRING" in out and '{service="paymentservice"}' in out
    assert "v0.10.1 -> v0.10.2" in out                             # the change history
    assert "error: unknown action 'bogus'" in out
    assert "error: query_metrics: parse error" in out
    assert "error: cannot read that line" in out
    assert "rollback of paymentservice" in out and "waited 10m" in out
    assert re.search(r"reward [+-]\d", out) and "mitigation" in out and "root cause correct" in out
    assert "unsafe control actions: none" in out


def test_quit_hands_over_with_no_diagnosis():
    result = runner.invoke(app, ARGS, input="list_alerts\nquit\n")
    assert result.exit_code == 0, result.output
    assert "handed_over_while_users_hurt" in result.output and "reward " in result.output


def test_end_of_input_is_a_quit():
    result = runner.invoke(app, ARGS, input="")
    assert result.exit_code == 0 and "handed over" in result.output


def test_an_unknown_fault_is_one_line_and_exit_2():
    result = runner.invoke(app, ["play", "--fault", "gremlins"])
    assert result.exit_code == 2 and "no catalogue entry 'gremlins'" in result.output


@pytest.mark.parametrize("line, expected", [
    ("read_logs cartservice", ("read_logs", {"service": "cartservice"})),
    ("read_logs service=cartservice filter='connection refused'",
     ("read_logs", {"service": "cartservice", "filter": "connection refused"})),
    ("query_metrics 'up{job=\"x\"}' range=30m", ("query_metrics", {"promql": 'up{job="x"}', "range": "30m"})),
    ("scale cartservice replicas=4", ("scale", {"service": "cartservice", "replicas": 4})),
    ("submit components=cartservice,redis-cart fault_class=crash_loop",
     ("submit", {"components": ["cartservice", "redis-cart"], "fault_class": "crash_loop"})),
    ('{"name": "wait", "args": {"duration": "2m"}}', ("wait", {"duration": "2m"})),
    ("frobnicate now", ("frobnicate", {})),
])
def test_prompt_lines_become_calls(line, expected):
    assert _play_line(line) == expected


@pytest.mark.parametrize("line", ["read_logs 'open", "{not json", '{"args": {}}', '{"name": "wait", "args": [1]}',
                                  "list_alerts extra"])
def test_unreadable_lines_are_one_line_errors(line):
    with pytest.raises(ValueError) as info:
        _play_line(line)
    assert "\n" not in str(info.value)
