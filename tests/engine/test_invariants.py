"""Property tests: random scenarios and random knob settings never give NaN, negative counts or impossible ratios."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsworld import Engine, load_scenario
from opsworld.engine.truth import TRUTH_FIELDS

KINDS = ["service", "service", "cache", "datastore", "queue"]


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    n = draw(st.integers(2, 7))
    names = [f"c{i}" for i in range(n)]
    kinds = ["service"] + [draw(st.sampled_from(KINDS)) for _ in range(n - 1)]
    components: dict = {}
    for i, (name, kind) in enumerate(zip(names, kinds)):
        comp: dict = {
            "kind": kind,
            "replicas": draw(st.integers(1, 4)),
            "concurrency": draw(st.integers(1, 64)),
            "cpu": draw(st.sampled_from(["250m", "500m", "1", "2"])),
            "service_time": {"mean": f"{draw(st.floats(0.1, 50)):.3f}ms", "cv": draw(st.floats(0, 2))},
            "dependencies": [],
        }
        later = list(range(i + 1, n))
        for j in draw(st.lists(st.sampled_from(later), max_size=3, unique=True)) if later else []:
            comp["dependencies"].append({
                "target": names[j], "calls": draw(st.floats(0.1, 3)),
                "mode": draw(st.sampled_from(["sequential", "parallel"])),
                "timeout": f"{draw(st.integers(5, 2000))}ms", "retries": draw(st.integers(0, 3)),
                "backoff": f"{draw(st.integers(0, 100))}ms", "required": draw(st.booleans()),
            })
        if kind == "cache":
            later_stores = [names[j] for j in range(i + 1, n) if kinds[j] in ("datastore", "service")]
            if not later_stores:
                comp["kind"] = "service"
            else:
                comp["fronts"] = draw(st.sampled_from(later_stores))
                comp["hit_ratio"] = draw(st.floats(0, 1))
        if kind == "queue":
            consumers = [names[j] for j in range(i + 1, n) if kinds[j] == "service"]
            if not consumers:
                comp["kind"] = "service"
            else:
                comp["consumer"] = draw(st.sampled_from(consumers))
        if comp["kind"] == "service":
            comp.pop("fronts", None), comp.pop("hit_ratio", None), comp.pop("consumer", None)
        components[name] = comp
    return {
        "name": "random",
        "duration": "5m",
        "nodes": [{"name": "n1", "zone": "z1", "cpu": 8}, {"name": "n2", "zone": "z2", "cpu": 8}],
        "components": components,
        "certificates": [{"name": "tls", "component": "c0", "not_after": "2026-01-01T00:02:00Z"}],
        "traffic": {"base_rate": f"{draw(st.floats(0.5, 2000)):.2f}/s", "noise": draw(st.floats(0, 0.5)),
                    "endpoints": [{"name": "GET /", "service": "c0", "timeout": f"{draw(st.integers(50, 30000))}ms"}]},
    }


KNOB_VALUES = {
    "capacity": [0.0, 0.01, 0.5, 3.0], "error_rate": [0.0, 0.3, 1.0], "latency": [0.0, 0.5, 5.0],
    "replicas": [0, 1, 3], "memory_growth": [0.0, 5e7], "disk_growth": [0.0, 1e9], "hit_ratio": [0.0, 1.0],
    "crash_loop": [True, False], "cpu_steal": [0.0, 50.0], "traffic": [0.0, 10.0],
    "cpu_hog": [0.0, 0.5, 0.99], "flap": [0.0, 0.7, 1.0], "wrong": [0.0, 0.4, 1.0], "rate_limit": [0.0, 5.0, np.inf],
    "hang_after": [0.0, 30.0, np.inf], "request_size": [1.0, 50.0], "node_down": [True, False],
    "drained": [True, False], "restart_at": [0.0, 60.0], "kill_at": [0.0, 30.0], "scale_max": [0, 1, 4],
}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=scenarios(), knobs=st.lists(st.tuples(st.sampled_from(sorted(KNOB_VALUES)), st.integers(0, 6),
                                                  st.integers(0, 3)), max_size=4))
def test_truth_stays_finite_and_consistent(spec: dict, knobs: list) -> None:
    engine = Engine(load_scenario(spec), worlds=3, seed=1)
    names = engine.topology.components
    for knob, column, choice in knobs:
        values = KNOB_VALUES[knob]
        node = engine.topology.nodes[column % 2]
        target = {"cpu_steal": node, "node_down": node, "drained": node, "traffic": "GET /"}.get(
            knob, names[column % len(names)])
        engine.set(knob, values[choice % len(values)], target, worlds=[1])
    if engine.topology.n_edges:
        engine.set("partition", True, ("z1", "z2"), worlds=[2])
    truth = engine.run(ticks=20)
    for name in TRUTH_FIELDS:
        assert np.isfinite(getattr(truth, name)).all(), name
    for name in ("latency_p50", "latency_p99", "response_p50", "response_p99", "goodput", "slo_violations"):
        assert np.isfinite(getattr(truth, name)).all(), name
    tol = 1e-3 * (1.0 + truth.requests)
    assert (truth.failed >= -tol).all() and (truth.failed <= truth.requests + tol).all()
    assert (truth.slo_met >= -tol).all() and (truth.slo_met <= truth.requests - truth.failed + tol).all()
    assert (truth.offered >= 0).all() and (truth.served >= 0).all() and (truth.backlog >= 0).all()
    assert (truth.failed_by_cause >= -1e-3).all()
    assert ((truth.edge_failure >= 0) & (truth.edge_failure <= 1 + 1e-6)).all()
    assert (truth.wrong >= -tol).all() and (truth.wrong <= truth.requests - truth.failed + tol).all()
    assert (truth.latency_p50 <= truth.latency_p99 + 1e-6).all()


def test_a_full_disk_behind_flapping_health_checks_fails_no_more_than_every_request() -> None:
    """Found by the property test above: a flap took replicas out of the denominator but not out of the full disks,
    so more requests failed than arrived."""
    spec = {"name": "disk-flap", "duration": "5m", "nodes": [{"name": "n1", "zone": "z1", "cpu": 8}],
            "components": {"c0": {"kind": "service", "replicas": 3, "concurrency": 16, "cpu": "1",
                                  "service_time": {"mean": "5ms", "cv": 1.0}}},
            "traffic": {"base_rate": "20/s", "endpoints": [{"name": "GET /", "service": "c0", "timeout": "1s"}]}}
    engine = Engine(load_scenario(spec), worlds=1, seed=1)
    engine.set("disk_growth", 1e9, "c0")
    engine.set("flap", 0.7, "c0")
    truth = engine.run(ticks=20)
    assert truth.failed.max() > 0          # the disk did fill
    assert (truth.failed <= truth.requests * (1 + 1e-3) + 1e-3).all()
