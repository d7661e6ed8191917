"""The attack on the reward: compositions are named like agents; a habit that acts hides the world from the base (which
then holds its plan) and its own action is what the env receives; every habit issues only valid actions, at its
timing, on every template; the search is deterministic for a seed; and its checks catch a reward that pays for a
habit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from opsworld.agents import AgentError, IdleAgent, agent_factory, load_agent
from opsworld.agents.base import context_of
from opsworld.cli import app
from opsworld.agents.habits import (ALERT_DELAY, END_TICKS, HABITS, TIMINGS, WithHabits, habit_timings,
                                    parse_composition)
from opsworld.act.vocabulary import VERBS
from opsworld.eval import attack as attack_module
from opsworld.eval.attack import AttackError, attack, habit_choices, zero_knowledge
from opsworld.eval.audit import TEMPLATES, make_env, run_agent, suite
from opsworld.score.reward import RewardWeights

HOTEL = dict(templates=("hotel-reservation",), entries=("db_connection_limit", "slow_query_schema_change"))
SHORT = 1200.0          # seconds: long enough for alerts, a hand-over and the 10-minute timing


# ---- names -----------------------------------------------------------------------------------------------------------
def test_composed_names_resolve():
    agent = load_agent("heuristic-sre+page@first_alert+shed@start")
    assert isinstance(agent, WithHabits) and agent.habits == [("page", "first_alert"), ("shed", "start")]
    assert parse_composition("idle+silence@every") == ("idle", [("silence", "every")])
    assert isinstance(agent_factory("idle")(), IdleAgent)
    assert len(habit_timings()) == sum(len(h.timings) for h in HABITS.values())
    assert all(set(h.timings) <= set(TIMINGS) for h in HABITS.values())


@pytest.mark.parametrize("name, names", [
    ("heuristic-sre+nap@start", ["page", "shed", "preempt", "blame_zone"]),        # no such habit: the habits
    ("heuristic-sre+page@noon", ["start", "first_alert", "alert_10m", "end"]),    # a timing it does not take
    ("idle+rollback_changes@start", ["every"]),
    ("idle+page", ["page@TIMING"]),                                               # no timing at all
    ("nobody+page@start", ["registered"]),                                        # the base is checked too
])
def test_bad_names_give_one_line_naming_the_choices(name, names):
    with pytest.raises(AgentError) as err:
        agent_factory(name)
    message = str(err.value)
    assert "\n" not in message and all(n in message for n in names), message


def test_the_attack_refuses_bad_input_before_running():
    with pytest.raises(AttackError, match="no habit 'nap'"):
        habit_choices(["nap"])
    with pytest.raises(AttackError, match="takes no timing 'noon'"):
        habit_choices(["page@noon"])
    assert habit_choices(["page@end", "acknowledge"]) == [("page", "end"), ("acknowledge", "first_alert"),
                                                          ("acknowledge", "every")]
    with pytest.raises(AttackError, match="nobody"):
        attack(bases=("nobody",), budget=0, seeds=1, **HOTEL)


def test_zero_knowledge_is_read_off_the_base():
    assert zero_knowledge("idle+page@start") and zero_knowledge("random") and zero_knowledge("silence-all")
    assert not zero_knowledge("heuristic-sre+page@start") and not zero_knowledge("ppo+shed@start")
    assert not zero_knowledge("out/policy.pt")


# ---- the busy-mask mechanic ------------------------------------------------------------------------------------------
class _Recorder:
    """A base that queries a metric at every free step and counts the steps it was free for (its plan's progress)."""

    last: "_Recorder | None" = None

    def reset(self, context, seed=0):
        type(self).last = self
        self.query = np.array([context.verb("query_metrics"), 0, 0])
        self.seen_busy: list[np.ndarray] = []
        self.progress = None

    def act_batch(self, obs):
        busy = obs["clock"][:, 1] > 0
        self.progress = np.zeros(len(busy), int) if self.progress is None else self.progress
        self.progress += ~busy                                 # a busy responder waits, its plan stays put
        self.seen_busy.append(busy.copy())
        return np.tile(self.query, (len(busy), 1))

    def act(self, obs):
        return self.act_batch({k: v[None] for k, v in obs.items()})[0]


class _Submitter(_Recorder):
    """Hands over at its first free step, naming the first component that alerts (else the first component)."""

    def act_batch(self, obs):
        out = super().act_batch(obs)
        loud = obs["alerts"].any(axis=2)                     # [N, S]
        for b in np.flatnonzero(loud.any(axis=1)):
            out[b] = (VERBS.index("submit"), int(np.argmax(loud[b])), 3)
        return out


@pytest.fixture(scope="module")
def hotel():
    eps = suite(1, **HOTEL)["hotel-reservation"]
    return eps, make_env("hotel-reservation", len(eps), horizon=SHORT)


def test_a_habit_that_acts_holds_the_base_and_its_action_goes_to_the_env(hotel):
    eps, env = hotel
    run = run_agent(lambda: WithHabits(_Recorder, [("page", "start"), ("acknowledge", "every")]),
                    "hotel-reservation", eps, env=env)
    base = _Recorder.last
    page, ack, query = VERBS.index("page_human"), VERBS.index("acknowledge"), VERBS.index("query_metrics")
    assert (run.actions[0, :, 0] == page).all() and base.seen_busy[0].all()       # step 0: the page, base held
    habit = run.free & np.isin(run.actions[..., 0], [page, ack])                   # [T, N] the habits' steps
    assert (habit.sum(axis=0) >= 2).all()                                          # the page and an acknowledgement
    shown_busy = np.stack(base.seen_busy)                                          # [T, N]
    assert np.array_equal(shown_busy, ~run.free | habit)                           # busy exactly there ...
    assert np.array_equal(base.progress, (run.free & ~habit).sum(axis=0))          # ... so its plan never moved on
    assert (run.actions[run.free & ~habit][:, 0] == query).all()                   # elsewhere the base's own action
    assert all(r["paged"] for r in run.reports)


def test_blame_zone_rewrites_the_hand_over_to_a_zone(hotel):
    eps, env = hotel
    run = run_agent(lambda: WithHabits(_Submitter, [("blame_zone", "end")]), "hotel-reservation", eps, env=env)
    ctx = context_of(env)
    submit = run.free & (run.actions[..., 0] == VERBS.index("submit"))
    assert submit.any(axis=0).all()
    for t, b in zip(*np.nonzero(submit)):
        verb, target, arg = run.actions[t, b]
        assert ctx.kinds[target] == "zone" and arg == 3                           # a zone, the base's class kept
    assert all(r["submitted"] for r in run.reports)


# ---- every habit, every template: valid actions at their timing ------------------------------------------------------
_ENTRIES = {"online-shop": ("bad_config_push", "bad_deploy_errors", "node_failure", "no_fault"),
            "hotel-reservation": ("db_connection_limit", "slow_query_schema_change"),
            "social-network": ("db_primary_failure", "queue_consumer_stall"),
            "llm-inference": ("expired_credentials", "bad_model_rollout", "gpu_xid_error")}


@pytest.fixture(scope="module", params=TEMPLATES)
def idle_stream(request):
    """One template's idle episodes, step by step: the context and every observation [T] of the batch."""
    template = request.param
    eps = suite(1, templates=(template,), entries=_ENTRIES[template])[template]
    env = make_env(template, len(eps), horizon=2400.0)
    obs, _ = env.reset(seed=3, options={"draws": [e.draw for e in eps]})
    ctx = context_of(env)
    wait = np.tile([ctx.verb("wait"), 0, 0], (len(eps), 1))
    stream = []
    while True:
        stream.append({k: v.copy() for k, v in obs.items()})
        obs, _, done, _, _ = env.step(wait)
        if done.all():
            return template, ctx, stream


_ON_WHAT_ALERTS = ("restart_alerting", "silence", "acknowledge", "drain_loudest")


def _expected(ctx, stream, habit: str, timing: str) -> np.ndarray:
    """[N] the step each world's first habit action is due at (-1: never), from the observations alone."""
    clock = np.stack([o["clock"] for o in stream])                        # [T, N, 4]
    t = clock[..., 0].astype(float) * ctx.horizon                         # [T, N]
    loud = np.stack([o["alerts"].any(axis=(1, 2)) for o in stream])       # [T, N]
    first = np.where(loud.any(axis=0), loud.argmax(axis=0), -1)           # [N]
    T, N = loud.shape

    def first_step(mask: np.ndarray) -> np.ndarray:
        return np.where(mask.any(axis=0), mask.argmax(axis=0), -1)

    if timing == "start":
        return np.zeros(N, int)
    if timing == "end":
        return first_step(t >= ctx.horizon - END_TICKS * ctx.dt - 1e-6)
    if timing == "first_alert" or (timing == "every" and habit != "rollback_changes"):
        return first
    if timing == "alert_10m":
        at = np.where(first >= 0, t[np.maximum(first, 0), np.arange(N)], np.inf)
        due = first_step(t >= at + ALERT_DELAY)
        if habit in _ON_WHAT_ALERTS:            # it acts on what alerts then: with nothing alerting, on nothing
            due = np.where((due >= 0) & loud[np.maximum(due, 0), np.arange(N)], due, -1)
        return due
    changes = np.stack([o["changes"] for o in stream])                    # [T, N, S, 2]
    rose = np.zeros((T, N), bool)
    rose[1:] = (changes[1:] > changes[:-1] + 1e-3).any(axis=(2, 3))
    return first_step(rose)


def test_every_habit_acts_validly_at_its_timing(idle_stream):
    template, ctx, stream = idle_stream
    masks = ctx.masks
    wait = ctx.verb("wait")
    for item in habit_timings():
        habit, _, timing = item.partition("@")
        agent = WithHabits(IdleAgent, [(habit, timing)])
        agent.reset(ctx, 0)
        acts = np.stack([agent.act_batch(o) for o in stream])             # [T, N, 3]
        acted = acts[..., 0] != wait
        v, g, a = acts[acted].T
        assert (masks["verb"][v] > 0).all() and (masks["target"][v, g] > 0).all() \
            and (masks["argument"][v, a] > 0).all(), f"{item} sent an invalid action on {template}"
        due = _expected(ctx, stream, habit, timing)
        began = np.where(acted.any(axis=0), acted.argmax(axis=0), -1)
        assert (began[due < 0] == -1).all(), f"{item} acted with nothing due on {template}"
        assert (began[due >= 0] == due[due >= 0]).all(), f"{item} on {template}: began {began}, due {due}"
        if timing in ("start", "end"):                                  # always due: every habit does something
            assert (began >= 0).all(), f"{item} never acted on {template}"


# ---- the search ------------------------------------------------------------------------------------------------------
_SEARCH = dict(seeds=1, horizon=SHORT, workers=1, **HOTEL)


def test_the_search_is_deterministic_for_a_seed():
    """The same seed: the same compositions, in the same order, with the same figures — in one process or two."""
    habits = ["page@first_alert", "acknowledge@every", "silence@first_alert"]
    one = attack(habits=habits, budget=3, seed=7, agents=["do-nothing"], **_SEARCH)
    two = attack(habits=habits, budget=3, seed=7, agents=["do-nothing"], **{**_SEARCH, "workers": 2})
    assert [(c.name, c.stage, c.mean_reward, c.margin_se) for c in one.compositions] == \
        [(c.name, c.stage, c.mean_reward, c.margin_se) for c in two.compositions]
    stages = [c.stage for c in one.compositions]
    assert stages[:2] == ["base", "base"] and stages.count("single") == 2 * len(habits)
    assert len(one.compositions) == 2 + 2 * len(habits) + 3                       # the budget, spent
    assert {c.name for c in one.compositions if c.stage in ("greedy", "random")}.isdisjoint(
        c.name for c in one.compositions if c.stage != "greedy" and c.stage != "random")
    h = one.of("heuristic-sre")
    assert h.diff == 0.0 and h.margin_se == 0.0 and not h.zero_knowledge
    assert one.of("do-nothing").stage == "agent" and one.of("do-nothing").zero_knowledge
    assert [c.name for c in one.checks] == [c.name for c in two.checks] and len(one.checks) == 3
    data = json.loads(one.model_dump_json())
    assert data["best"] and "rewards" not in data["compositions"][0]
    assert all(len(c.rewards) == one.episodes for c in one.compositions)


def test_the_checks_catch_a_reward_that_pays_for_pages():
    """A reward that pays 50 points per page: the single habit `page` lifts the heuristic far beyond noise, so (h)
    and (f) fail — a passing attack means something."""
    paying = attack(habits=["page@first_alert"], budget=0, weights=RewardWeights(page=-50.0), **_SEARCH)
    gain = paying.of("heuristic-sre+page@first_alert")
    assert gain.diff > 0 and gain.margin_se > 2.0
    checks = {c.name: c for c in paying.checks}
    assert not checks["no single habit raises the heuristic's reward"].passed
    assert not checks["no composition beats the heuristic by more than noise"].passed
    assert paying.best == "heuristic-sre+page@first_alert"


def test_reference_rewards_join_check_g_and_must_match_the_suite():
    ref = {"do-nothing": [0.0, 0.0], "ppo": [1e6, 1e6], "idle+page@start": [-1.0, -2.0], "my.module:Agent": [0, 0]}
    found = attack(habits=["silence@first_alert"], budget=0, reference=ref, **_SEARCH)
    g = found.checks[1]
    assert g.detail["trained"] == ["ppo"] and g.detail["policies"] == 4     # idle, idle+silence; 2 of the agents
    assert {"ppo over idle+silence@first_alert", "heuristic-sre over do-nothing",
            "heuristic-sre over idle+page@start"} <= set(g.detail["closest_margins_se"])
    assert [a.name for a in found.agents] == list(ref)
    with pytest.raises(AttackError, match="2 episodes"):
        attack(habits=["silence@first_alert"], budget=0, reference={"random": [1.0]}, **_SEARCH)


def test_cli_attack_prints_the_attackers_and_every_check(monkeypatch):
    small = attack_module.attack

    def tiny(**kwargs):           # the CLI's search, on two habits and one worker
        return small(**{**kwargs, "habits": ["page@first_alert", "acknowledge@every"], "workers": 1,
                        "horizon": SHORT})

    monkeypatch.setattr(attack_module, "attack", tiny)
    args = ["audit", "--seeds", "1", "--agent", "do-nothing", "--template", "hotel-reservation",
            "--entry", "db_connection_limit", "--attack", "--budget", "1", "--search-seed", "3"]
    runner = CliRunner()
    table = runner.invoke(app, args + ["--report-only"])        # one episode: some checks fail, a report exits 0
    assert table.exit_code == 0, table.output
    for text in ("best attackers", "best attacker:", "no composition beats the heuristic", "no single habit"):
        assert text in table.stdout
    assert table.stdout.count("PASS") + table.stdout.count("FAIL") == 7
    data = json.loads(runner.invoke(app, args + ["--json"]).stdout)
    assert len(data["checks"]) == 4 and len(data["attack"]["checks"]) == 3
    assert data["attack"]["seed"] == 3 and data["attack"]["budget"] == 1

