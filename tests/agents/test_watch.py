"""`opsworld play --watch AGENT`: the agent's actions and the alerts as they come, then the score."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from opsworld.agents import context_of
from opsworld.agents.watch import describe, watch
from opsworld.cli import app
from opsworld.envs.gym_env import IncidentVectorEnv


def test_watch_narrates_the_heuristic_fixing_a_bad_deploy():
    lines: list[str] = []
    report = watch("heuristic-sre", "online-shop", seed=1, fault="bad_deploy_errors", horizon=1800.0,
                   say=lines.append)
    assert any("alert   HighErrorRate" in line for line in lines)
    assert any("heuristic-sre: rollback_deploy" in line for line in lines)
    assert report["mitigated"] and report["fault"] == "error_rate"
    # the same seed, the same story
    again: list[str] = []
    watch("heuristic-sre", "online-shop", seed=1, fault="bad_deploy_errors", horizon=1800.0, say=again.append)
    assert again == lines


def test_describe_reads_arguments_by_verb():
    env = IncidentVectorEnv(num_envs=1, scenario="online-shop", horizon=60.0)
    ctx = context_of(env)
    scale, cart = ctx.verb("scale"), ctx.place("cartservice")
    assert describe(ctx, np.array([scale, cart, 3])) == "scale cartservice x2"
    assert describe(ctx, np.array([ctx.verb("wait"), 0, 3])) == "wait 300s"
    assert describe(ctx, np.array([ctx.verb("page_human"), 0, 0])) == "page_human"


def test_cli_watch_prints_the_score_and_rejects_a_bad_agent():
    runner = CliRunner()
    result = runner.invoke(app, ["play", "--watch", "do-nothing", "--fault", "dns_failure", "--horizon", "15m"])
    assert result.exit_code == 0, result.output
    assert "root cause (truth)" in result.output and "reward" in result.output
    bad = runner.invoke(app, ["play", "--watch", "nobody"])
    assert bad.exit_code == 2 and "no agent named 'nobody'" in bad.output
