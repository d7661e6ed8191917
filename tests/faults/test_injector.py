"""The injector's contract: no seams, determinism, compound faults, hidden couplings, clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from opsworld.act import MitigationError, mitigate
from opsworld.engine import Engine
from opsworld.act.scripted import run_scripted
from opsworld.faults import CATALOGUE, FAULT_TYPES, FaultError, Injector, fault_from, impaired_share
from opsworld.faults.network import NetworkDelay
from opsworld.faults.process import CpuHog, ErrorRate
from opsworld.spec import load_scenario, service_map


def _strings(value, depth: int = 0):
    """Every string reachable from an object's public state (attributes not starting with '_')."""
    if depth > 6:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, np.ndarray):
        if value.dtype.kind in "UO":
            yield from (str(v) for v in value.ravel())
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v, depth + 1)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            yield from _strings(v, depth + 1)
    elif dataclasses.is_dataclass(value) or hasattr(value, "__dict__"):
        items = vars(value).items() if hasattr(value, "__dict__") else ()
        for k, v in items:
            if not k.startswith("_") and k not in ("scenario", "topology"):   # the system's own description
                yield from _strings(v, depth + 1)


@pytest.mark.parametrize("template", ["online-shop", "hotel-reservation", "social-network", "llm-inference"])
def test_engine_state_names_no_fault(template: str) -> None:
    engine = Engine(template, worlds=2, seed=0)
    injector = Injector(engine)
    for entry in CATALOGUE.values():
        if entry.example.template == template and not entry.example.overrides:
            for fault in entry.example_faults():
                injector.add(fault)
    injector.run(ticks=90)
    forbidden = ({e.lower() for e in CATALOGUE} | {t.kind for t in FAULT_TYPES} | {t.__name__.lower() for t in FAULT_TYPES}
                 | {"fault", "inject", "chaos"})
    found = {s for s in _strings(engine) for word in forbidden if word in s.lower()}
    assert not found, found
    assert engine.versions and all(v.startswith(("v", "cfg", "rabbitmq", "mongo", "redis", "memcached", "vllm",
                                                 "nginx", "openresty", "postgres", "qdrant", "tei", "envoy",
                                                 "kong", "triton"))
                                   or v[0].isalnum() for v in engine.versions)


def test_same_faults_and_seed_give_a_bit_identical_episode() -> None:
    faults = CATALOGUE["connection_pool_leak"].example_faults() + CATALOGUE["cpu_hog"].example_faults()
    one, two = (run_scripted("online-shop", faults, worlds=3, seed=9, ticks=150) for _ in range(2))
    for name, values in one.trajectory.arrays.items():
        assert np.array_equal(values, two.trajectory.arrays[name]), name
    assert [t.model_dump() for t in one.truth] == [t.model_dump() for t in two.truth]


def test_faults_can_strike_some_worlds_only() -> None:
    ep = run_scripted("online-shop", [(ErrorRate(target="cartservice", rate=0.5), [1])], worlds=3, seed=0, ticks=90)
    share = impaired_share(ep.trajectory, ep.baseline)
    assert share[:, [0, 2]].max() == 0.0 and share[70:, 1].min() > 0.01
    assert ep.truth[0].faults == [] and ep.truth[0].chain == [] and ep.truth[1].faults


def test_compound_faults_have_both_roots_in_the_chain() -> None:
    faults = [CpuHog(target="checkoutservice", onset="5m"),
              NetworkDelay(target="productcatalogservice", onset="12m", delay=0.1)]
    ep = run_scripted("online-shop", faults, seed=1, ticks=120)
    truth = ep.truth[0]
    assert {p.name for p in truth.root_causes} == {"checkoutservice", "productcatalogservice"}
    chained = [link.place.name for link in truth.chain]
    assert chained[0] == "checkoutservice" and "productcatalogservice" in chained
    assert [f.onset for f in truth.faults] == [300.0, 720.0]


def test_hidden_coupling_is_missing_from_the_service_map_but_in_the_ground_truth() -> None:
    hidden = {"components": {"shippingservice": {"dependencies": [
        {"target": "redis-cart", "timeout": "100ms", "documented": False}]}}}
    scenario = load_scenario("online-shop", hidden)
    assert ("shippingservice", "redis-cart") not in service_map(scenario)
    assert ("cartservice", "redis-cart") in service_map(scenario)
    ep = run_scripted(scenario, [ErrorRate(target="redis-cart", rate=0.9, onset="2m")], seed=0, ticks=40)
    assert "shippingservice" in {link.place.name for link in ep.truth[0].chain}


def test_impact_persists_without_a_fix() -> None:
    """The fix tests are not trivial: left alone, these faults keep hurting users to the end."""
    for name in ("bad_config_push", "bad_deploy_crashloop", "zone_partition", "regex_cpu_exhaustion", "quota_exhaustion"):
        entry = CATALOGUE[name]
        ep = run_scripted(entry.example.scenario(), entry.example_faults(), seed=3, ticks=200)
        assert impaired_share(ep.trajectory, ep.baseline)[-30:, 0].mean() > 0.05, name


def test_bad_faults_and_mitigations_get_one_line_errors() -> None:
    engine = Engine("online-shop", worlds=1)
    injector = Injector(engine)
    cases = [
        (lambda: injector.add(CpuHog(target="nosuchservice")), "not a component"),
        (lambda: injector.add(CATALOGUE["db_primary_failure"].make(target="frontend")), "datastore"),
        (lambda: injector.add(CATALOGUE["noisy_neighbour"].make(target="node-z9")), "not a node"),
        (lambda: CATALOGUE["cpu_hog"].make(target="frontend", share=3.0), "share"),
        (lambda: CATALOGUE["memory_creep"].make(target="frontend", onset="soon"), "onset"),
        (lambda: fault_from({"fault": "nosuchfault", "target": "x"}), "opsworld faults"),
        (lambda: fault_from({"target": "x"}), "fault:"),
    ]
    for call, words in cases:
        with pytest.raises(FaultError) as info:
            call()
        assert words in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert injector.running == []
    with pytest.raises(MitigationError, match="no mitigation"):
        mitigate(engine, "reboot_the_internet", "frontend")
    with pytest.raises(MitigationError, match="not a node"):
        mitigate(engine, "drain_node", "frontend")


def test_fault_from_builds_catalogue_entries_and_types() -> None:
    fault = fault_from({"fault": "memory_creep", "target": "cartservice", "onset": "02:00", "page_after": "3h"})
    assert fault.page_after == 3 * 3600.0 and fault.onset == "02:00" and fault.change == "deploy"
    assert fault_from({"fault": "cpu_hog", "target": "frontend", "share": 0.5}).share == 0.5
