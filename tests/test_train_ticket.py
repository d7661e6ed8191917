"""The `train-ticket` template (made from the Nezha traces with `opsworld import traces`) runs like the hand-written
ones: simulate, play, the mitigation suite, the audit's suite, the gym env; a healthy hour stays within its
objectives, and a fault that strikes it hurts its users and pages."""

from __future__ import annotations

import json

import gymnasium as gym
from typer.testing import CliRunner

import opsworld  # noqa: F401  (registers the gym environments)
from opsworld.cli import app
from opsworld.spec import load_scenario, templates

runner = CliRunner()


def test_it_is_a_built_in_template_measured_from_traces() -> None:
    sc = load_scenario("train-ticket")
    assert "train-ticket" in templates()
    assert sum(c.kind == "service" for c in sc.components.values()) == 28
    assert sc.components["mysql"].kind == "datastore" and sc.components["food-delivery"].kind == "queue"
    assert sc.components["food-delivery"].consumer == "ts-delivery-service"
    assert len(sc.traffic.endpoints) == 10


def test_simulate_a_healthy_hour_meets_its_objectives() -> None:
    result = runner.invoke(app, ["simulate", "train-ticket", "--duration", "20m", "--worlds", "2", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["slo_attainment"]["mean"] >= 0.995, summary["slo_attainment"]


def test_play_eval_and_the_gym_env_run_on_it() -> None:
    result = runner.invoke(app, ["play", "train-ticket", "--fault", "code_exception:ts-order-service",
                                 "--horizon", "20m"], input="list_alerts\nquit\n")
    assert result.exit_code == 0 and "reward" in result.output, result.output
    result = runner.invoke(app, ["eval", "--suite", "mitigation", "--agent", "heuristic-sre", "--template",
                                 "train-ticket", "--seeds", "1", "--entry", "code_exception", "--entry",
                                 "db_primary_failure", "--json"])
    assert result.exit_code == 0, result.output
    env = gym.make("opsworld/Incident-v0", scenario="train-ticket", faults=["code_exception:ts-order-service"],
                   horizon=600.0)
    obs, info = env.reset(seed=0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    env.close()
