"""Property tests: whatever scenario the loader is fed, it either loads it or raises one `ScenarioError` whose
message is a single line naming the source, the field path and the fix; never another exception."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from opsworld.spec import schema
from opsworld.spec.loader import ScenarioError, find_call_cycle, load_scenario
from opsworld.spec.schema import Scenario

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MODELS = [m for m in vars(schema).values() if isinstance(m, type) and issubclass(m, schema.Spec)]
FIELDS = sorted({name for model in MODELS for name in model.model_fields})
UNIT_STRINGS = [
    "5ms", "2s", "1h30m", "-1s", "0s", "512Mi", "2Gi", "-1Gi", "500m", "2", "200/s", "3/min", "-5/s", "99.9%",
    "150%", "0.5", "14:00", "25:00", "2026-11-25T02:00:00Z", "2026-13-45", "1e400s", "9" * 400 + "s", "", " ",
    "service", "cache", "datastore", "queue", "web", "db", "node-1", "zone-a", "default", "sequential", "parallel",
]

# --- strategies ------------------------------------------------------------------------------------------------

names = st.sampled_from(["web", "db", "cache", "queue", "service", "api.v1", "a", "0", "x-1", "node-1", "w_2"]) | st.from_regex(
    r"\A[a-z0-9]([a-z0-9._-]{0,6}[a-z0-9])?\Z")
nasty_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.sampled_from([-1, 0, 1, 2**31, 2**63, -(2**63), 10**30, 10**400])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(UNIT_STRINGS)
    | st.dates()
)
keys = st.sampled_from(FIELDS) | names | st.text(max_size=8) | st.sampled_from([0, 1, None, True, 1.5])
nasty_values = st.recursive(
    nasty_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


def known_or(values: st.SearchStrategy, good: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly plausible values, sometimes anything, so that validation gets past the first field."""
    return st.one_of(good, good, values)


@st.composite
def scenario_like(draw) -> dict[Any, Any]:
    """A dict shaped roughly like a scenario: known top-level keys, random nesting and random types."""
    component_fields = sorted(schema.Cache.model_fields | schema.Queue.model_fields | schema.Datastore.model_fields)
    component = st.dictionaries(
        st.sampled_from(component_fields) | keys,
        known_or(nasty_values, st.sampled_from(UNIT_STRINGS) | st.fixed_dictionaries({"mean": st.sampled_from(UNIT_STRINGS)})),
        max_size=6,
    )
    top = {
        "name": known_or(nasty_values, names),
        "nodes": known_or(nasty_values, st.lists(st.dictionaries(st.sampled_from(sorted(schema.Node.model_fields)) | keys,
                                                                 known_or(nasty_values, names), max_size=4), max_size=3)),
        "components": known_or(nasty_values, st.dictionaries(names | keys, known_or(nasty_values, component), max_size=4)),
        "traffic": known_or(nasty_values, st.dictionaries(st.sampled_from(sorted(schema.Traffic.model_fields)) | keys,
                                                          nasty_values, max_size=4)),
    }
    out: dict[Any, Any] = {}
    for key, strategy in top.items():
        if draw(st.sampled_from([True, True, True, True, False])):
            out[key] = draw(strategy)
    out.update(draw(st.dictionaries(keys, nasty_values, max_size=3)))
    return out


DURATIONS = st.builds("{}{}".format, st.integers(0, 500), st.sampled_from(["us", "ms", "s", "m", "min", "h"]))


@st.composite
def valid_scenarios(draw) -> dict[str, Any]:
    """A valid scenario: unique names, references that exist and point at the right kinds, no call cycle."""
    node_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    nodes = [{"name": n, "zone": draw(st.sampled_from(["zone-a", "zone-b"]))} for n in node_names]
    for node in nodes:
        if draw(st.booleans()):
            node["cpu"] = draw(st.sampled_from([2, 16, "500m", "8"]))
        if draw(st.booleans()):
            node["memory"] = draw(st.sampled_from(["64Gi", "512Mi", "1T"]))
    comp_names = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    components: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    for i in reversed(range(len(comp_names))):  # a component only calls those defined after it: no cycle
        name, later = comp_names[i], comp_names[i + 1:]
        options = ["service", "datastore"]
        if any(kinds[c] in ("service", "datastore") for c in later):
            options.append("cache")
        if any(kinds[c] == "service" for c in later):
            options.append("queue")
        kind = kinds[name] = draw(st.sampled_from(options))
        comp: dict[str, Any] = {"service_time": {"mean": draw(DURATIONS)}}
        if kind != "service" or draw(st.booleans()):
            comp["kind"] = kind
        if kind == "cache":
            comp["fronts"] = draw(st.sampled_from([c for c in later if kinds[c] in ("service", "datastore")]))
            comp["hit_ratio"] = draw(st.sampled_from(["90%", 0.5, "99.9%", 1]))
        if kind == "queue":
            comp["consumer"] = draw(st.sampled_from([c for c in later if kinds[c] == "service"]))
        targets = draw(st.lists(st.sampled_from(later), unique=True, max_size=3)) if later else []
        if targets:
            comp["dependencies"] = [
                {"target": t, **draw(st.fixed_dictionaries({}, optional={
                    "timeout": DURATIONS, "retries": st.integers(0, 10), "calls": st.floats(0.01, 100),
                    "mode": st.sampled_from(["sequential", "parallel"]), "required": st.booleans(),
                    "circuit_breaker": st.fixed_dictionaries({}, optional={"failure_ratio": st.sampled_from(["50%", 0.2])}),
                }))}
                for t in targets
            ]
        comp.update(draw(st.fixed_dictionaries({}, optional={
            "replicas": st.integers(1, 1000), "concurrency": st.integers(1, 100_000),
            "cpu": st.sampled_from(["500m", "250m", 1, 2.5, "4"]), "memory": st.sampled_from(["512Mi", "2Gi", "100M"]),
            "error_rate": st.sampled_from([0, 0.01, "1%", "0.5%"]), "startup": DURATIONS,
            "nodes": st.lists(st.sampled_from(node_names), min_size=1, unique=True),
            "autoscaler": st.fixed_dictionaries({"min": st.integers(0, 5), "max": st.integers(5, 50)}),
            "deploy": st.text(max_size=10), "config": st.text(max_size=10),
        })))
        components[name] = comp
    components = {n: components[n] for n in comp_names}
    endpoints = [
        {"name": draw(st.text(min_size=1, max_size=20)), "service": draw(st.sampled_from(comp_names)),
         **draw(st.fixed_dictionaries({}, optional={"share": st.floats(0.01, 10), "timeout": DURATIONS}))}
        for _ in range(draw(st.integers(1, 3)))
    ]
    traffic = {"base_rate": draw(st.builds("{}/{}".format, st.integers(0, 10_000), st.sampled_from(["s", "min", "h"]))),
               "endpoints": endpoints}
    traffic.update(draw(st.fixed_dictionaries({}, optional={
        "start": st.sampled_from(["2026-11-25T02:00:00Z", "2026-01-01T00:00:00+02:00", "2026-03-01"]),
        "diurnal": st.fixed_dictionaries({"amplitude": st.sampled_from([0, 0.3, "40%"]),
                                          "peak": st.sampled_from(["14:00", "09:30", "0:00"])}),
        "noise": st.floats(0, 1),
    })))
    scenario = {"name": draw(names), "nodes": nodes, "components": components, "traffic": traffic}
    scenario.update(draw(st.fixed_dictionaries({}, optional={
        "description": st.text(max_size=40), "duration": st.sampled_from(["1h", "6h", "1d"]),
        "tick": st.sampled_from(["1s", "10s", "1m"]),
    })))
    return scenario


# --- the property --------------------------------------------------------------------------------------------


def loads_or_refuses(source: Any, label: str = "<scenario>") -> Scenario | ScenarioError:
    """Load `source`; any exception but a one-line ScenarioError fails the test."""
    try:
        return load_scenario(source)
    except ScenarioError as error:
        message = str(error)
        assert len(message.splitlines()) == 1, message
        assert message.startswith(f"{label}: "), message
        assert error.problem and error.fix, message
        assert len(message) < 1000, message
        return error


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location in a nested structure of dicts and lists, as a tuple of keys and indexes."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        out.append(prefix + (key,))
        out.extend(paths(child, prefix + (key,)))
    return out


def parent_of(root: Any, path: tuple) -> Any:
    for part in path[:-1]:
        root = root[part]
    return root


@st.composite
def mutated(draw, base: st.SearchStrategy) -> dict[str, Any]:
    scenario = copy.deepcopy(draw(base))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["delete", "set", "set", "rename", "edge", "edge", "retarget", "duplicate"]))
        where = paths(scenario)
        comps = scenario.get("components")
        comp_names = list(comps) if isinstance(comps, dict) else []
        if op in ("delete", "set", "rename") and where:
            path = draw(st.sampled_from(where))
            parent = parent_of(scenario, path)
            key = path[-1]
            if op == "delete":
                del parent[key]
            elif op == "set":
                parent[key] = draw(nasty_values)
            elif isinstance(parent, dict):
                new_key = draw(keys | st.builds(lambda k: k[:-1] + "x" if k else "x", st.just(str(key))))
                parent[new_key] = parent.pop(key)
        elif op == "edge" and comp_names:
            # a new dependency, to an existing component (perhaps closing a cycle) or to a made-up one
            source = draw(st.sampled_from(comp_names))
            target = draw(st.sampled_from(comp_names) | names)
            comp = comps[source]
            if isinstance(comp, dict):
                deps = comp.setdefault("dependencies", [])
                if isinstance(deps, list):
                    deps.append({"target": target})
        elif op == "retarget" and comp_names:
            source = draw(st.sampled_from(comp_names))
            comp = comps[source]
            if isinstance(comp, dict):
                field = draw(st.sampled_from(["fronts", "consumer"]))
                comp[field] = draw(st.sampled_from(comp_names) | names)
                if draw(st.booleans()):
                    comp["kind"] = {"fronts": "cache", "consumer": "queue"}[field]
        elif op == "duplicate" and isinstance(scenario.get("nodes"), list) and scenario["nodes"]:
            scenario["nodes"].append(copy.deepcopy(draw(st.sampled_from(scenario["nodes"]))))
    return scenario


# --- tests ---------------------------------------------------------------------------------------------------


@SETTINGS
@given(scenario_like())
def test_random_scenario_like_dicts(data):
    result = loads_or_refuses(data)
    if isinstance(result, ScenarioError):
        head = re.split(r"[.\[]", result.path, maxsplit=1)[0]
        assert head in {str(k) for k in data} | set(Scenario.model_fields) | {""}, str(result)


@SETTINGS
@given(nasty_values)
def test_anything_at_all(value):
    if isinstance(value, dict):
        loads_or_refuses(value)
    else:
        with pytest.raises(ScenarioError):
            load_scenario(value if not isinstance(value, str) else {"name": value})


@SETTINGS
@given(valid_scenarios())
def test_valid_scenarios_load(scenario):
    loaded = load_scenario(scenario)
    assert set(loaded.components) == set(scenario["components"])
    assert find_call_cycle(loaded) == []


@SETTINGS
@given(mutated(valid_scenarios()))
def test_mutated_scenarios(scenario):
    result = loads_or_refuses(scenario)
    if isinstance(result, ScenarioError):
        head = re.split(r"[.\[]", result.path, maxsplit=1)[0]
        assert head in {str(k) for k in scenario} | set(Scenario.model_fields) | {""}, str(result)


def has_cycle(edges: dict[str, list[str]]) -> bool:
    """An independent check: repeatedly remove components nobody calls; what remains is on a cycle."""
    remaining = {n: set(t) for n, t in edges.items()}
    while True:
        called = {t for targets in remaining.values() for t in targets}
        leaves = [n for n in remaining if n not in called]
        if not leaves:
            return bool(remaining)
        for n in leaves:
            del remaining[n]


@SETTINGS
@given(st.data())
def test_added_edges_are_refused_exactly_when_they_close_a_cycle(data):
    scenario = data.draw(valid_scenarios())
    comps = scenario["components"]
    graph = {n: [d["target"] for d in c.get("dependencies", [])] for n, c in comps.items()}
    for name, comp in comps.items():
        graph[name] += [comp[f] for f in ("fronts", "consumer") if f in comp]
    pairs = [(a, b) for a in comps for b in comps if a != b]
    assume(pairs)
    for source, target in data.draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=3)):
        comps[source].setdefault("dependencies", []).append({"target": target})
        graph[source].append(target)
    result = loads_or_refuses(scenario)
    if has_cycle(graph):
        assert isinstance(result, ScenarioError) and "call cycle" in result.problem, result
        match = re.fullmatch(r"components\.(.+)\.(dependencies\[\d+\]\.target|fronts|consumer)", result.path)
        assert match and match.group(1) in comps, result
    else:
        assert isinstance(result, Scenario), result


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_duplicate_nodes_are_refused(data):
    scenario = data.draw(valid_scenarios())
    scenario["nodes"].append(dict(data.draw(st.sampled_from(scenario["nodes"])), zone="zone-c"))
    result = loads_or_refuses(scenario)
    assert isinstance(result, ScenarioError) and result.path == "nodes" and "defined twice" in result.problem


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scenarios")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=valid_scenarios())
def test_valid_scenario_round_trips_through_yaml(folder, scenario):
    path = folder / "round-trip.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    assert load_scenario(path) == load_scenario(scenario)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=mutated(valid_scenarios()) | scenario_like())
def test_mutated_yaml_files(folder, scenario):
    path = folder / "mutated.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    loads_or_refuses(path, label=str(path))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")), valid=valid_scenarios(),
       cut=st.integers(0, 2000))
def test_random_and_truncated_yaml_text(folder, text, valid, cut):
    path = folder / "text.yaml"
    for content in (text, yaml.safe_dump(valid, sort_keys=False)[:cut] + text):
        try:
            path.write_text(content, encoding="utf-8", errors="surrogatepass")
        except UnicodeEncodeError:
            continue
        loads_or_refuses(path, label=str(path))
