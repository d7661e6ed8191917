"""The issue's named behaviours with figures: memory creep pages 3-5 h after onset, certificates fail every
handshake from their not-after on, the metastable retry storm outlives its trigger."""

from __future__ import annotations

import numpy as np

from opsworld.engine import Engine
from opsworld.act.scripted import Order, run_scripted
from opsworld.faults import CATALOGUE, Injector, impaired_share
from opsworld.faults.process import MemoryLeak

HOUR = 3600.0


def test_memory_creep_pages_between_three_and_five_hours_then_ooms_and_crash_loops() -> None:
    fault = CATALOGUE["memory_creep"].make(target="productcatalogservice", onset="10m")
    engine = Engine("online-shop", worlds=2, seed=5)
    injector = Injector(engine, [fault])
    trajectory = injector.run(ticks=int(6.5 * HOUR / 10), fields=("memory_max_fraction", "restarts",
                                                                   "ready_replicas"))
    s = engine.topology.index("productcatalogservice")
    memory = trajectory.memory_max_fraction[:, :, s]
    crossed = trajectory.time[np.argmax(memory >= 0.9, axis=0)] - 600.0
    assert np.all((crossed >= 3 * HOUR) & (crossed <= 5 * HOUR)), crossed / HOUR
    restarts = trajectory.restarts[:, :, s]
    assert restarts[-1].min() >= 2                        # the kernel kills them...
    assert np.all(restarts[trajectory.time < 600.0 + 3 * HOUR] == 0)   # ...only once they ran out
    # the refilled replicas leak again: a cycle of OOM kills
    late = trajectory.time > 600 + 5 * HOUR
    assert (np.diff(restarts[late], axis=0) > 0).any()


def test_restart_only_masks_a_leak_while_rollback_ends_it() -> None:
    fault = MemoryLeak(target="cartservice", onset="1m", page_after="20m")
    masked = run_scripted("online-shop", [fault], ticks=int(1.2 * HOUR / 10), seed=1,
                         orders=[Order(900.0, "restart", "cartservice")])
    fixed = run_scripted("online-shop", [fault], ticks=int(1.2 * HOUR / 10), seed=1,
                        orders=[Order(900.0, "rollback_deploy", "cartservice")])
    s = masked.injector.engine.topology.index("cartservice")
    late = masked.trajectory.time > 0.9 * HOUR
    assert masked.trajectory.memory_max_fraction[late, 0, s].max() > 0.9     # it creeps back
    assert fixed.trajectory.memory_max_fraction[late, 0, s].max() < 0.5      # a fresh, healthy build
    assert [f.action for f in masked.truth[0].faults[0].fixes] == ["rollback_deploy"]
    assert [f.action for f in masked.truth[0].faults[0].masks] == ["restart"]


def test_certificate_fails_every_handshake_from_not_after_and_none_before() -> None:
    entry = CATALOGUE["certificate_expiry"]
    scenario = entry.example.scenario()               # starts at 01:45; the certificate expires at 02:00
    fault = entry.make(target="cartservice-tls", onset="02:00")
    engine = Engine(scenario, worlds=3, seed=2)
    trajectory = Injector(engine, [fault]).run(ticks=180, fields=("edge_failure", "edge_attempts"))
    topo = engine.topology
    into = np.flatnonzero(topo.edge_dst == topo.index("cartservice"))
    start = trajectory.time - 10.0                     # each tick's start, seconds after 01:45
    before, after = start < 900.0, start >= 900.0
    assert trajectory.edge_failure[before][:, :, into].max() < 0.01
    assert np.all(trajectory.edge_failure[after][:, :, into] == 1.0)
    assert trajectory.edge_attempts[after][:, :, into].sum() > 0


def _storm(orders=()):
    entry = CATALOGUE["metastable_retry_storm"]
    return run_scripted(entry.example.scenario(), entry.example_faults(), ticks=240, seed=4, orders=orders)


def test_metastable_retry_storm_outlives_its_trigger() -> None:
    ep = _storm()
    share = impaired_share(ep.trajectory, ep.baseline)[:, 0]
    trigger_gone = 600.0 + 120.0
    after = ep.trajectory.time > trigger_gone + 60.0
    assert share[after].min() > 0.5                    # still overloaded to the end, with the trigger long gone
    s = ep.injector.engine.topology.index("productcatalogservice")
    assert ep.injector.engine.knobs.capacity[s, 0] == 1.0     # the slowdown was undone


def test_metastable_retry_storm_ends_when_retries_are_shed_or_capacity_added() -> None:
    for action in ("disable_retries", "scale"):
        order = Order(1200.0, action, "productcatalogservice")
        ep = _storm([order])
        share = impaired_share(ep.trajectory, ep.baseline)[:, 0]
        assert share[(ep.trajectory.time > 900.0) & (ep.trajectory.time < order.time)].min() > 0.5
        assert share[ep.trajectory.time > order.lands + 60.0].max() < 0.01, action
