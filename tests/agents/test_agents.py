"""The baseline agents: each runs whole episodes on a small vector env, sends only valid actions, is deterministic
for a seed, and does what its name says (the cheats their one blunt thing, the heuristic its runbook)."""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.agents import AGENTS, AgentError, HeuristicSRE, load_agent
from opsworld.agents.base import context_of
from opsworld.envs.generator import CatalogueGenerator
from opsworld.envs.gym_env import IncidentEnv, IncidentVectorEnv
from opsworld.act.vocabulary import SCALE_FACTORS, VERBS
from opsworld.spec import load_scenario

TEMPLATE = "online-shop"
ENTRIES = ("bad_config_push", "cpu_contention", "no_fault", "node_failure")
HORIZON = 900.0


def _draws():
    scenario = load_scenario(TEMPLATE)
    rng = np.random.default_rng(7)
    return [CatalogueGenerator(entries=[e], onset=(60.0, 120.0)).draw(scenario, rng) for e in ENTRIES]


@pytest.fixture(scope="module")
def env():
    return IncidentVectorEnv(num_envs=len(ENTRIES), scenario=TEMPLATE, horizon=HORIZON)


def _episode(env, agent, seed: int = 3):
    """Run one episode; return (actions [T, N, 3], free [T, N], alerts-visible [T, N], reports)."""
    obs, info = env.reset(seed=11, options={"draws": _draws()})
    agent.reset(context_of(env), seed)
    acts, free, loud = [], [], []
    while True:
        a = np.asarray(agent.act_batch(obs), dtype=np.int64)
        acts.append(a)
        free.append(obs["clock"][:, 1] == 0)
        loud.append(obs["alerts"].any(axis=(1, 2)))
        obs, reward, terminated, _, info = env.step(a)
        assert not obs["clock"][:, 3].any(), "an action was refused as invalid"
        if terminated.all():
            return np.stack(acts), np.stack(free), np.stack(loud), list(info["truth"])


def _valid(masks, a: np.ndarray) -> bool:
    v, t, g = (int(x) for x in a)
    return bool(masks["verb"][v] and masks["target"][v, t] and masks["argument"][v, g])


def _taken(env, acts, free):
    """[(step, world, verb name, target name, argument)] of the actions taken (the responder free), waits left out."""
    ctx = context_of(env)
    out = []
    for t, b in zip(*np.nonzero(free)):
        v, target, g = acts[t, b]
        if VERBS[v] != "wait":
            out.append((int(t), int(b), VERBS[v], ctx.places[target], int(g)))
    return out


@pytest.mark.parametrize("name", list(AGENTS))
def test_every_agent_runs_validly_and_deterministically(env, name):
    masks = context_of(env).masks
    acts, free, _, reports = _episode(env, load_agent(name))
    assert acts.shape == (int(HORIZON / 10), len(ENTRIES), 3)
    taken = acts[free]
    assert all(_valid(masks, a) for a in taken), f"{name} sent an invalid action"
    again, _, _, reports2 = _episode(env, load_agent(name))
    assert np.array_equal(acts, again)
    assert [r["reward"] for r in reports] == [r["reward"] for r in reports2]


@pytest.mark.parametrize("name", list(AGENTS))
def test_act_on_one_world(name):
    single = IncidentEnv(scenario=TEMPLATE, horizon=120.0)
    obs, info = single.reset(seed=1)
    agent = load_agent(name)
    agent.reset(context_of(single), 0)
    for _ in range(5):
        a = np.asarray(agent.act(obs))
        assert a.shape == (3,) and _valid(info["action_mask"], a)
        obs, _, _, _, info = single.step(a)


def test_random_differs_by_seed(env):
    a, _, _, _ = _episode(env, load_agent("random"), seed=1)
    b, _, _, _ = _episode(env, load_agent("random"), seed=2)
    assert not np.array_equal(a, b)


def test_do_nothing_only_waits(env):
    acts, free, _, reports = _episode(env, load_agent("do-nothing"))
    assert not _taken(env, acts, free)
    assert not any(r["mitigated"] or r["submitted"] for r in reports)


def _first_alert(free, loud, b):
    steps = np.flatnonzero(loud[:, b] & free[:, b])
    return int(steps[0]) if len(steps) else None


def test_silence_all_silences_whatever_shows_and_nothing_else(env):
    acts, free, loud, reports = _episode(env, load_agent("silence-all"))
    taken = _taken(env, acts, free)
    assert taken and {v for _, _, v, _, _ in taken} == {"silence_alert"}
    assert any(u["rule"] == "silenced_while_users_hurt" for r in reports for u in r["unsafe"])
    assert not any(r["mitigated"] for r in reports)


@pytest.mark.parametrize("name, verbs, argument", [("restart-all", ("restart",), 0),
                                                   ("rollback-all", ("rollback_deploy", "rollback_config"), 0),
                                                   ("scale-max", ("scale",), len(SCALE_FACTORS) - 1)])
def test_sweeps_touch_every_component(env, name, verbs, argument):
    """From the first alert, one action per component (per verb), back to back, until done or the episode ends."""
    ctx = context_of(env)
    acts, free, loud, _ = _episode(env, load_agent(name))
    taken = _taken(env, acts, free)
    plan = [(v, c, argument) for c in ctx.components for v in verbs]
    for b in range(len(ENTRIES)):
        first = _first_alert(free, loud, b)
        mine = [(v, target, g) for _, w, v, target, g in taken if w == b]
        if first is None:
            assert not mine
            continue
        room = (len(acts) - first + 5) // 6          # each mitigation keeps the responder 6 ticks
        assert mine == plan[:min(len(plan), room)]
        assert [t for t, w, *_ in taken if w == b][0] == first


def test_page_at_once_pages_at_the_first_alert(env):
    acts, free, loud, reports = _episode(env, load_agent("page-at-once"))
    taken = _taken(env, acts, free)
    for b in range(len(ENTRIES)):
        first = _first_alert(free, loud, b)
        mine = [(t, v) for t, w, v, _, _ in taken if w == b]
        assert mine == ([] if first is None else [(first, "page_human")])
        assert reports[b]["paged"] == (first is not None)


def test_blame_most_alerting_submits_at_once_without_mitigating(env):
    obs, _ = env.reset(seed=11, options={"draws": _draws()})
    acts, free, loud, reports = _episode(env, load_agent("blame-most-alerting"))
    taken = _taken(env, acts, free)
    for b in range(len(ENTRIES)):
        first = _first_alert(free, loud, b)
        mine = [(t, v) for t, w, v, _, _ in taken if w == b]
        assert mine == ([] if first is None else [(first, "submit")])
        assert reports[b]["submitted"] == (first is not None)
        assert reports[b]["terms"]["mitigation"] == 0.0


def test_heuristic_never_silences_and_rolls_back_the_bad_push(env):
    acts, free, _, reports = _episode(env, HeuristicSRE())
    taken = _taken(env, acts, free)
    assert "silence_alert" not in {v for _, _, v, _, _ in taken}
    b = ENTRIES.index("bad_config_push")
    target = env.inc.draws[b].fault.target
    assert ("rollback_config", target) in [(v, t) for _, w, v, t, _ in taken if w == b]
    assert reports[b]["mitigated"] and reports[b]["fault_class_correct"]
    control = ENTRIES.index("no_fault")
    looks = ("query_metrics", "read_logs", "get_traces", "submit")
    assert not [v for _, w, v, _, _ in taken if w == control and v not in looks]     # it looked, did nothing
    assert reports[control]["diagnosis"]["fault_class"] == "no_fault"
    assert all(not r["unsafe"] for r in reports)


def test_heuristic_runbook_is_its_docstring():
    doc = HeuristicSRE.__doc__
    assert all(f"{i}. " in doc for i in range(1, 8)) and "Never silence" in doc


def test_load_agent_by_module_path_and_errors():
    agent = load_agent("opsworld.agents.idle:DoNothingAgent")
    assert type(agent).__name__ == "DoNothingAgent"
    with pytest.raises(AgentError, match="no agent named"):
        load_agent("nobody")
    with pytest.raises(AgentError, match="cannot import"):
        load_agent("no.such.module:Thing")
    with pytest.raises(AgentError, match="has no"):
        load_agent("opsworld.agents.idle:Nothing")


def test_an_agent_loads_from_the_working_directory(tmp_path, monkeypatch):
    """`--agent mypkg.agents:MyAgent` run beside `mypkg/` finds it, as `python -m` would (no PYTHONPATH needed)."""
    import subprocess
    import sys
    pkg = tmp_path / "mypkg_here"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "agents.py").write_text("from opsworld.agents.idle import DoNothingAgent\n\n\n"
                                   "class MyAgent(DoNothingAgent):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert type(load_agent("mypkg_here.agents:MyAgent")).__name__ == "MyAgent"
    with pytest.raises(AgentError, match="cannot import"):       # a module that is nowhere is still an error
        load_agent("mypkg_here.nothing:MyAgent")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", "import sys, opsworld.cli; sys.argv = ['opsworld', 'eval', "
                          "'--suite', 'detection', '--agent', 'mypkg_here.agents:MyAgent', '--seeds', '1', "
                          "'--template', 'online-shop', '--entry', 'memory_creep']; "
                          "opsworld.cli.app()"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


def test_heuristic_finds_a_cause_the_service_map_does_not_show():
    """The documented map omits cartservice -> redis-cart; the heuristic still fails the right datastore over."""
    from opsworld.envs.generator import Draw
    from opsworld.envs.incident import IncidentConfig
    from opsworld.faults.catalogue import CATALOGUE
    hidden = {"target": "redis-cart", "calls": 1.5, "timeout": "100ms", "retries": 1, "backoff": "20ms",
              "documented": False}
    scenario = load_scenario(TEMPLATE, {"components": {"cartservice": {"dependencies": [hidden]}}})
    fault = CATALOGUE["db_primary_failure"].make(target="redis-cart", onset=60)
    env = IncidentVectorEnv(num_envs=1, config=IncidentConfig(scenario=scenario, horizon=900.0))
    obs, _ = env.reset(seed=1, options={"draws": [Draw("db_primary_failure", fault)]})
    ctx = context_of(env)
    assert ("cartservice", "redis-cart") not in ctx.calls
    agent = HeuristicSRE()
    agent.reset(ctx, 0)
    while True:
        obs, _, terminated, _, info = env.step(agent.act_batch(obs))
        if terminated.all():
            break
    report = info["truth"][0]
    assert report["mitigated"] and report["diagnosis"]["components"] == ["redis-cart"]


def _case(agent: HeuristicSRE, **signals: np.ndarray):
    """A fresh incident state of world 0 with query results `signals` (name -> [S])."""
    st = agent._fresh(0)
    st.signals = dict(signals)
    st.t = 1000.0
    return st


@pytest.fixture(scope="module")
def responder(env):
    agent = HeuristicSRE()
    agent.reset(context_of(env), 0)
    return agent


def test_heuristic_blames_a_change_only_for_what_it_explains(responder):
    """A change's component erroring while what it calls errors too, or while its own lines speak only of failing
    calls, is its callees' failure passing through; a deploy still rolling out is not judged on its latency (its replicas restart), a config change is."""
    a = responder
    s, callee = a.index["frontend"], a.index["cartservice"]
    names = a.context.log_signatures
    err = np.zeros(a.S)
    err[s] = 0.2
    st = _case(a, error_ratio=err)
    assert "errors" not in a._change_looks_wrong(st, s, 1)            # its own lines not read yet
    st.logs[s] = np.zeros(len(names))
    assert "errors" in a._change_looks_wrong(st, s, 1)
    st.logs[s][names.index("upstream_error")] = 0.3                 # they speak only of failing calls
    assert "errors" not in a._change_looks_wrong(st, s, 1)
    st = _case(a, error_ratio=err.copy())
    st.logs[s] = np.zeros(len(names))
    st.signals["error_ratio"][callee] = 0.3
    assert "errors" not in a._change_looks_wrong(st, s, 1)
    lat = np.ones(a.S)
    lat[s] = 2.0
    st = _case(a, latency_ratio=lat)
    st.changed[s] = st.t - 120.0                      # deployed and configured two minutes ago
    assert "latency" not in a._change_looks_wrong(st, s, 0) and "latency" in a._change_looks_wrong(st, s, 1)
    st.changed[s] = st.t - 2 * a.verify_after         # the rollout long done
    assert "latency" in a._change_looks_wrong(st, s, 0)


def test_heuristic_holds_a_change_found_well_only_to_what_grows_with_uptime(responder):
    """A change verified well once baked is blamed later only for a leak, a filling disk or a draining pool: errors
    that begin after a clean verification are something else's doing."""
    a = responder
    s = a.index["cartservice"]
    err, mem = np.zeros(a.S), np.full(a.S, 0.2)
    err[s] = 0.2
    st = _case(a, error_ratio=err, memory=mem)
    st.logs[s] = np.zeros(len(a.context.log_signatures))           # read: nothing of its own
    st.changed[s, 0] = st.t - 900.0
    assert "errors" in a._change_looks_wrong(st, s, 0)
    st.clean.add((s, 0, round(st.t - 900.0)))
    assert a._change_looks_wrong(st, s, 0) == []
    mem[s] = 0.8
    assert a._change_looks_wrong(st, s, 0) == ["memory"]
    st.changed[s, 0] = st.t - 300.0                    # a later change of the same component is judged afresh
    assert "errors" in a._change_looks_wrong(st, s, 0)


def test_heuristic_suspects_only_changes_made_before_the_alerts_began(responder):
    """An incident begins when its alerts began firing, not when they had held long enough to be believed: a change
    pushed in between (somebody's routine work, landing mid-incident) is no suspect."""
    a = responder
    s = a.index["cartservice"]
    st = _case(a)
    alerts = np.zeros_like(st.seen)
    alerts[s, a.A["HighErrorRate"]] = True
    st.firing_since[s, a.A["HighErrorRate"]] = st.t - 150.0
    st.changed[s, 1] = st.t - 60.0                      # a config pushed after the errors began
    a._open(st, alerts)
    assert st.start == st.t - 150.0 and not st.candidates
    st = _case(a)
    st.firing_since[s, a.A["HighErrorRate"]] = st.t - 150.0
    st.changed[s, 1] = st.t - 400.0                     # one pushed before them
    a._open(st, alerts)
    assert [(c.verb, c.target) for c in st.candidates] == [("rollback_config", "cartservice")]


def test_heuristic_looks_at_what_changed_below_users_burning_with_nothing_else_alerting(responder):
    """The users' alert alone (wrong answers, which no component's alert shows) points at what changed below the
    burning entry before the burn began: each such change is looked at before it is undone; none: localise."""
    a = responder
    entry, below = a.index["frontend"], a.index["productcatalogservice"]
    st = _case(a)
    alerts = np.zeros_like(st.seen)                      # the users' alert is kept out of the components' alerts
    st.firing_since[entry, a.users_alert] = st.burning_since = st.t - 60.0
    st.changed[below, 0] = st.t - 300.0
    a._open(st, alerts)
    assert [(c.verb, c.target, c.look) for c in st.candidates] == [("rollback_deploy", "productcatalogservice", True)]
    assert st.phase == "act" and VERBS[int(a._mitigate(st)[0])] == "read_logs"      # a look, not a rollback
    st = _case(a)
    st.firing_since[entry, a.users_alert] = st.burning_since = st.t - 200.0
    st.changed[below, 0] = st.t - 100.0                  # pushed well after the burn began: no suspect
    a._open(st, alerts)
    assert not st.candidates and st.phase == "localise"


def test_heuristic_blames_wrong_answers_on_the_latest_change_below(responder):
    """A caller's complaints of wrong answers count against the callee of its that changed last, not another."""
    a = responder
    caller = a.index["frontend"]
    first, last = a.callees[caller][:2]
    names = a.context.log_signatures
    st = _case(a)
    st.logs[caller] = np.zeros(len(names))
    st.logs[caller][names.index("invalid_response")] = 0.2
    st.changed[first, 0], st.changed[last, 0] = st.t - 900.0, st.t - 400.0
    for d in (first, last):
        st.logs[d] = np.zeros(len(names))
    assert "logs" in a._change_looks_wrong(st, last, 0) and "logs" not in a._change_looks_wrong(st, first, 0)
    found = a._wrong_answers_below(st, caller)
    assert (found.verb, found.target) == ("rollback_deploy", a.context.components[last])


def test_heuristic_turns_from_a_change_to_what_its_lines_name(responder):
    """A suspect whose own lines name what no push makes (a wrapped counter) is not rolled back: the incident is
    localised afresh; with lines a push does make, its change is undone."""
    a = responder
    s = a.index["cartservice"]
    names = a.context.log_signatures
    for line, rolled in (("wraparound", False), ("exception", True)):
        st = _case(a)
        st.changed[s, 0] = st.t - 400.0
        st.logs[s] = np.zeros(len(names))
        st.logs[s][names.index(line)] = 0.5
        st.seen[s, a.A["HighErrorRate"]] = True
        st.candidates = a._changes_suspected(st, st.seen.any(axis=1))
        st.phase = "act"
        verb = VERBS[int(a._mitigate(st)[0])]
        assert (verb == "rollback_deploy") == rolled and (st.phase == "localise") != rolled


def test_heuristic_pages_for_a_quiet_burn_it_cannot_place(responder):
    """The users' SLOs burning on two glances with no alert opens an incident; localised to nothing, it is paged."""
    a = responder
    burn = np.zeros(a.S)
    burn[a.entries[0]] = 3.0
    st = _case(a, slo_burn=burn)
    quiet = np.zeros_like(st.seen)
    st.phase = "sweep"
    for _ in range(2):
        st.signals = {"slo_burn": burn, "cpu": np.full(a.S, 0.2)}
        a._sweep(st)
    assert st.phase == "localise" and st.burning_quietly and st.users_hurt
    st.plan = []
    st.signals = {"error_ratio": np.zeros(a.S), "latency_ratio": np.ones(a.S)}
    assert VERBS[int(a._localise(st, quiet)[0])] == "page_human" and st.paged


def test_heuristic_fails_over_only_a_datastore_that_fails(responder):
    """A datastore only slow, with what runs beside it on its node slow too, is its node's doing: drain the node,
    never fail a healthy primary over; one whose requests fail is failed over."""
    a = responder
    ds = a.index["redis-cart"]
    (node,) = a.placement["redis-cart"]
    beside = next(c for c, nodes in a.placement.items() if node in nodes and c != "redis-cart")
    lat = np.ones(a.S)
    lat[a.index[beside]] = 2.5
    st = _case(a, latency_ratio=lat)
    st.root = "redis-cart"
    alerts = np.zeros_like(st.seen)
    st.seen[ds, a.A["HighLatency"]] = True
    slow = [(c.verb, c.target) for c in a._diagnose(st, alerts)]
    assert ("drain_node", node) in slow and not any(v == "failover_db" for v, _ in slow)
    st.seen[ds, a.A["HighErrorRate"]] = True
    alerts[ds, a.A["HighErrorRate"]] = True
    assert ("failover_db", "redis-cart") in [(c.verb, c.target) for c in a._diagnose(st, alerts)]
