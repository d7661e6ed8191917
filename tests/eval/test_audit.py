"""The reward audit: a small audit runs end to end and reports every figure; its margins are paired over the same
episodes and its Spearman check pools the registered baselines only; replaying recorded actions is exact; silencing
alerts where the responder idled never raises the reward — and the same machinery does catch a reward that paid for
silence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from opsworld.agents import AGENTS, HeuristicSRE
from opsworld.agents.base import context_of
from opsworld.cli import app
from opsworld.envs.generator import CatalogueGenerator
from opsworld.envs.incident import IncidentConfig, Incidents
from opsworld.eval.audit import (AuditResult, audit, make_env, paired, paired_margin, rank, replay, run_agent,
                                  spearman, suite, with_silences)
from opsworld.score.reward import RewardWeights
from opsworld.spec import load_scenario

SMALL = dict(templates=("hotel-reservation",), entries=("db_connection_limit", "int32_id_overflow"))


@pytest.fixture(scope="module")
def small_audit() -> AuditResult:
    return audit(agents=["do-nothing", "random", "page-at-once"], seeds=1, **SMALL)


def test_small_audit_reports_every_figure(small_audit):
    data = json.loads(small_audit.model_dump_json())
    assert data["episodes"] == 2 and data["templates"] == {"hotel-reservation": 2}
    agents = {a["agent"]: a for a in data["agents"]}
    assert set(agents) == {"heuristic-sre", "do-nothing", "random", "page-at-once"}
    for a in agents.values():
        for key in ("mean_reward", "se_reward", "mitigation_rate", "detection_rate", "rca_accuracy", "mean_impact",
                    "unsafe_per_episode"):
            assert isinstance(a[key], float)
    assert agents["do-nothing"]["mitigation_rate"] == 0.0
    assert {r["entry"] for r in data["heuristic_classes"]} == set(SMALL["entries"])
    names = [c["name"] for c in data["checks"]]
    assert len(names) == 4 and any("silenc" in n for n in names) and any("Spearman" in n for n in names)
    for c in data["checks"]:
        assert isinstance(c["passed"], bool) and c["target"]
    silence = next(c for c in data["checks"] if "silenc" in c["name"])
    assert silence["passed"] and silence["detail"]["identity_replay_max_gap"] == 0.0
    assert silence["detail"]["silences"] > 0
    assert set(data["spearman"]) == {"hotel-reservation"}
    assert data["runtime_s"] > 0


def test_suite_is_fixed_and_covers_the_catalogue():
    a, b = suite(2), suite(2)
    assert [e.draw.fault for e in a["online-shop"]] == [e.draw.fault for e in b["online-shop"]]
    assert sum(len(v) for v in suite(5).values()) >= 300
    assert {t for t in a} == {"online-shop", "hotel-reservation", "social-network", "llm-inference"}
    shop = a["online-shop"]
    assert len({e.draw.fault.onset for e in shop}) > len(shop) // 2      # onsets drawn, not one value


@pytest.fixture(scope="module")
def shop_run():
    eps = [e for e in suite(1, templates=("online-shop",),
                            entries=("bad_config_push", "certificate_expiry", "no_fault"))["online-shop"]]
    env = make_env("online-shop", len(eps))
    return eps, env, run_agent(HeuristicSRE, "online-shop", eps, env=env)


def test_replay_is_exact_and_silences_never_pay(shop_run):
    eps, env, run = shop_run
    assert np.array_equal(replay("online-shop", eps, run.actions, env=env), run.rewards)
    acts, inserted = with_silences(run, context_of(env))
    assert (inserted > 0).all()
    silenced = replay("online-shop", eps, acts, env=env)
    assert (silenced <= run.rewards + 1e-9).all()
    assert (silenced < run.rewards).any()           # silences cost something, more so while users are hurt


def test_silence_keeps_every_other_action_at_its_tick(shop_run):
    eps, env, run = shop_run
    ctx = context_of(env)
    acts, _ = with_silences(run, ctx)
    wait, silence = ctx.verb("wait"), ctx.verb("silence_alert")
    acted = run.free & (run.actions[..., 0] != wait)
    assert np.array_equal(acts[acted], run.actions[acted])          # non-waits untouched ...
    changed = (acts != run.actions).any(axis=2)
    assert not (changed & acted).any()
    assert ((acts[..., 0] == silence) <= (changed | (run.actions[..., 0] == silence))).all()


def test_the_check_would_catch_a_reward_that_paid_for_silence(shop_run):
    """With a reward that credited silences (a negative coordination cost, no unsafe penalty), the same replay finds
    the rise — so a passing silence check means something."""
    eps, _, run = shop_run
    paying = make_env("online-shop", len(eps), weights=RewardWeights(coordinate=-1.0, unsafe=0.0))
    base = replay("online-shop", eps, run.actions, env=paying)
    acts, inserted = with_silences(run, context_of(paying))
    assert (replay("online-shop", eps, acts, env=paying) - base).max() >= 1.0 - 1e-9


def test_silencing_while_users_hurt_changes_no_impact_and_costs():
    """The same world twice: silencing every alert while users are hurt leaves the impact exactly as it was and
    only lowers the reward (the silence's cost and the unsafe-action penalty)."""
    scenario = load_scenario("online-shop")
    draw = CatalogueGenerator(entries=["bad_config_push"], onset=(60.0, 60.0)).draw(scenario,
                                                                                     np.random.default_rng(1))

    def episode(silence: bool):
        inc = Incidents(IncidentConfig(scenario="online-shop", horizon=900.0), worlds=1, seed=5)
        inc.reset(5, draws=[draw])
        done = False
        while not inc.done:
            if silence and not done and inc.score.hurting[0] and inc.dashboard.firing[0].any():
                for c in np.flatnonzero(inc.dashboard.firing[0].any(axis=1)):
                    inc.silence(np.array([0]), 3600.0, components=np.array([c]))
                assert not inc.alerts_seen()[0].any() and inc.dashboard.firing[0].any()
                done = True
            inc.advance()
        return inc.reports()[0]

    quiet, loud = episode(True), episode(False)
    assert quiet.impact_minutes == loud.impact_minutes and quiet.terms["impact"] == loud.terms["impact"]
    assert quiet.reward < loud.reward
    assert any(u.rule == "silenced_while_users_hurt" for u in quiet.unsafe)


def test_spearman_matches_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert list(rank([3.0, 1.0, 3.0, 2.0])) == [3.5, 1.0, 3.5, 2.0]
    # ties get average ranks: x -> [1, 2.5, 2.5, 4, 5], y -> [2, 1, 4.5, 4.5, 3]; Pearson of those = 3.75 / 9.5
    assert spearman([1, 2, 2, 3, 5], [2, 1, 4, 4, 3]) == pytest.approx(3.75 / 9.5)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_cli_audit_json_and_table():
    runner = CliRunner()
    args = ["audit", "--seeds", "1", "--agent", "do-nothing", "--template", "hotel-reservation",
            "--entry", "db_connection_limit"]
    result = runner.invoke(app, args + ["--json"])
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert data["episodes"] == 1 and len(data["checks"]) == 4
    # the exit code tells the truth: 1 when a check fails (one episode is too few for some), unless a report
    assert result.exit_code == (0 if all(c["passed"] for c in data["checks"]) else 1), result.output
    table = runner.invoke(app, args + ["--report-only"])
    assert table.exit_code == 0 and "heuristic-sre" in table.stdout and "PASS" in table.stdout
    bad = runner.invoke(app, ["audit", "--agent", "nobody"])
    assert bad.exit_code == 2 and "unknown agent" in bad.output
    habit = runner.invoke(app, ["audit", "--agent", "idle+page@noon"])
    assert habit.exit_code == 2 and "first_alert" in habit.output


def test_registry_covers_the_brief():
    assert set(AGENTS) - {"ppo"} == {"random", "do-nothing", "idle", "heuristic-sre", "silence-all", "restart-all",
                                     "rollback-all", "scale-max", "page-at-once", "blame-most-alerting"}


def test_paired_standard_errors():
    a, b = [3.0, 5.0, 4.0, 8.0], [1.0, 4.0, 2.0, 5.0]
    diff, se = paired(a, b)
    d = np.subtract(a, b)
    assert diff == pytest.approx(d.mean()) and se == pytest.approx(d.std(ddof=1) / 2.0)
    assert paired_margin(a, b) == pytest.approx(diff / se)
    # what the episodes share cancels: a constant lead has no noise at all, however spread the episodes are
    assert paired([10.0, -50.0, 7.0], [9.0, -51.0, 6.0])[1] == 0.0
    assert paired_margin([10.0, -50.0, 7.0], [9.0, -51.0, 6.0]) == math.inf
    assert paired_margin(a, a) == 0.0


def test_audit_margins_are_paired_and_spearman_pools_only_baselines(small_audit):
    """(a)'s margins are paired over the same episodes; (b) pools the registered baselines only, so a policy added
    to the audit (here a composition) leaves its figure where it was, and shows in the detail alone."""
    r = small_audit.rewards
    assert set(r) == {"heuristic-sre", "do-nothing", "random", "page-at-once"} and len(r["random"]) == 2
    margins = next(c for c in small_audit.checks if c.name.startswith("heuristic beats")).detail["margins_se"]
    assert margins["do-nothing"] == pytest.approx(round(paired_margin(r["heuristic-sre"], r["do-nothing"]), 2))
    assert "rewards" not in json.loads(small_audit.model_dump_json())
    more = audit(agents=["do-nothing", "random", "page-at-once", "idle+page@first_alert"], seeds=1,
                 silence_agents=(), **SMALL)
    rho = lambda res: next(c for c in res.checks if "Spearman" in c.name).detail   # noqa: E731
    assert rho(more)["per_template"] == rho(small_audit)["per_template"]
    assert "idle+page@first_alert" in rho(more)["per_agent"]["hotel-reservation"]
    assert "idle+page@first_alert" not in rho(more)["pooled_agents"]


class _OnlyAct:
    """An agent with `act` and no `act_batch`: the audit gives each world its own instance."""

    instances = 0

    def reset(self, context, seed=0):
        type(self).instances += 1
        self.wait = np.array([context.verb("wait"), 0, 0])

    def act(self, observation):
        assert observation["alerts"].ndim == 2           # one world's observation
        return self.wait


def test_agents_without_act_batch_run_one_instance_per_world():
    eps = suite(1, templates=("hotel-reservation",), entries=SMALL["entries"])["hotel-reservation"]
    _OnlyAct.instances = 0
    run = run_agent(_OnlyAct, "hotel-reservation", eps)
    assert _OnlyAct.instances == len(eps) and len(run.reports) == len(eps)
    assert (run.actions[..., 0] == 0).all()
