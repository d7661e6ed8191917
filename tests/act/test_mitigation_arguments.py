"""Mitigations with targets and amounts act on the worlds they are given and nowhere else; bad calls change nothing."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from opsworld.act import MITIGATIONS, MitigationError, mitigate
from opsworld.engine import Engine
from opsworld.act.scripted import Order, run_scripted

PICKED, OTHERS = [1, 2], [0, 3]


def _engine(template: str = "online-shop") -> Engine:
    engine = Engine(template, worlds=4, seed=1)
    for _ in range(3):
        engine.step()
    return engine


def _edge(engine: Engine, caller: str, callee: str) -> np.ndarray:
    topo = engine.topology
    return np.flatnonzero((topo.edge_src == topo.index(caller)) & (topo.edge_dst == topo.index(callee)))


def _run(engine: Engine, ticks: int, field: str) -> np.ndarray:
    return np.stack([getattr(engine.step(), field) for _ in range(ticks)])      # [T, B, ...]


def test_every_mitigation_says_what_it_acts_on_and_its_amount() -> None:
    assert {"scale", "rate_limit", "set_pool_size", "disable_retries", "open_circuit", "flush_cache", "warm_cache",
            "page_human", "rotate_credentials", "sync_clock", "dead_letter", "block_client", "raise_limit", "restart",
            "rollback_deploy", "rollback_config", "renew_cert", "drain_node", "reroute_zone",
            "failover_db"} <= set(MITIGATIONS)
    amounts = {m.name: m.amount for m in MITIGATIONS.values() if m.amount}
    assert amounts == {"scale": "replicas", "rate_limit": "rps", "set_pool_size": "connections"}
    assert all(m.takes > 0 and m.target and m.summary for m in MITIGATIONS.values())


def test_scale_sets_the_replicas_asked_for_in_the_chosen_worlds() -> None:
    engine = _engine()
    s = engine.topology.index("cartservice")
    mitigate(engine, "scale", "cartservice", amount=np.array([3.0, 4.0]), worlds=PICKED)
    desired = _run(engine, 5, "desired_replicas")[-1, :, s]
    assert list(desired) == [2, 3, 4, 2]
    assert (engine.knobs.scale_min[s][PICKED] >= [3, 4]).all()      # scaled up: the autoscaler may not go below
    mitigate(engine, "scale", "cartservice", amount=1000, worlds=1)          # clipped to the most it may run
    mitigate(engine, "scale", "cartservice", amount=0, worlds=2)             # and to one
    assert engine.knobs.replicas[s].tolist() == [2, int(engine.topology.max_replicas[s]), 1, 2]
    assert engine.knobs.scale_max[s][2] == 1          # scaled down: the autoscaler may not go above it
    mitigate(engine, "scale", "cartservice", worlds=3)                       # no amount: double
    assert engine.knobs.replicas[s][3] == 4


def test_scale_holds_against_the_autoscaler() -> None:
    engine = _engine()
    s = engine.topology.index("frontend")           # autoscaled
    mitigate(engine, "scale", "frontend", amount=6, worlds=PICKED)
    desired = _run(engine, 30, "desired_replicas")[:, :, s]
    assert (desired[-10:, PICKED] == 6).all()
    assert (desired[-10:, OTHERS] < 6).all()


def test_rate_limit_on_a_component_admits_the_rps_given() -> None:
    engine = _engine()
    s = engine.topology.index("productcatalogservice")
    mitigate(engine, "rate_limit", "productcatalogservice", amount=5.0, worlds=PICKED)
    assert engine.knobs.rate_limit[s][PICKED].tolist() == [5.0, 5.0]
    assert np.isinf(engine.knobs.rate_limit[s][OTHERS]).all()
    failed = _run(engine, 10, "failed").sum(axis=(0, 2))
    assert failed[PICKED].min() > 10 * max(failed[OTHERS].max(), 1.0)
    mitigate(engine, "rate_limit", "productcatalogservice", worlds=0)         # no amount: a capacity estimate
    assert np.isfinite(engine.knobs.rate_limit[s][0]) and engine.knobs.rate_limit[s][0] > 5.0


def test_rate_limit_on_an_endpoint_refuses_users_at_the_door() -> None:
    """An endpoint's limit admits a share of what arrives; the users refused at the door still came (they are in
    `requests` and `users`) and failed (in `failed`): shedding hides no one from the score."""
    engine = _engine()
    p = engine.topology.endpoints.index("GET /product/{id}")
    normal = float(engine.rates[engine.tick][p])
    mitigate(engine, "rate_limit", "GET /product/{id}", amount=normal / 4, worlds=PICKED)
    assert np.allclose(engine.knobs.admit[p][PICKED], 0.25)
    assert np.isinf(engine.knobs.admit[p][OTHERS]).all() and (engine.knobs.traffic[p] == 1.0).all()
    run = engine.run(30)
    requests, users, failed = (getattr(run, f)[:, :, p].mean(axis=0) for f in ("requests", "users", "failed"))
    assert np.array_equal(users, requests)                                     # every arrival is a user's
    assert requests[PICKED].min() > 0.6 * requests[OTHERS].max()               # as many came ...
    assert (failed[PICKED] > 0.6 * requests[PICKED]).all()                     # ... most were turned away
    assert failed[OTHERS].max() < 0.05 * requests[OTHERS].min()
    mitigate(engine, "rate_limit", "GET /product/{id}", amount=1e6, worlds=1)  # never loosens a limit in place
    assert engine.knobs.admit[p][1] == pytest.approx(0.25)


def test_block_client_stops_a_flood_not_a_crowd() -> None:
    """The flooding client's requests are no user's; blocking it leaves the users' demand as it was."""
    engine = _engine()
    p = engine.topology.endpoints.index("GET /product/{id}")
    engine.set("flood", 9.0, "GET /product/{id}", worlds=PICKED)
    engine.set("traffic", 3.0, "GET /product/{id}", worlds=OTHERS)           # a crowd of real users
    run = engine.run(10)
    requests, users = (getattr(run, f)[:, :, p].mean(axis=0) for f in ("requests", "users"))
    assert (requests[PICKED] > 5 * users[PICKED]).all()
    mitigate(engine, "block_client", "GET /product/{id}")
    assert (engine.knobs.flood[p] == 0.0).all() and (engine.knobs.traffic[p][OTHERS] == 3.0).all()
    run = engine.run(10)
    requests, users = (getattr(run, f)[:, :, p].mean(axis=0) for f in ("requests", "users"))
    assert np.array_equal(requests, users)
    assert (requests[OTHERS] > 2 * requests[PICKED].max()).all()


def test_set_pool_size_sets_the_services_datastore_pools() -> None:
    engine = _engine()
    e = _edge(engine, "cartservice", "redis-cart")
    mitigate(engine, "set_pool_size", "cartservice", amount=[2, 64], worlds=PICKED)
    pool = engine.knobs.pool_size[e]
    assert pool[:, 1].tolist() == [2] * len(e) and pool[:, 2].tolist() == [64] * len(e)
    assert (pool[:, OTHERS] == 16).all()


def test_disable_retries_on_one_edge_or_every_edge_into_a_component() -> None:
    engine = _engine()
    front, checkout = _edge(engine, "frontend", "cartservice"), _edge(engine, "checkoutservice", "cartservice")
    before = engine.knobs.retries.copy()
    mitigate(engine, "disable_retries", "frontend->cartservice", worlds=PICKED)
    assert (engine.knobs.retries[np.ix_(front, PICKED)] == 0).all()
    assert (engine.knobs.retries[:, OTHERS] == before[:, OTHERS]).all()
    assert (engine.knobs.retries[checkout] == before[checkout]).all()
    mitigate(engine, "disable_retries", ("checkoutservice", "cartservice"), worlds=[1])
    assert (engine.knobs.retries[checkout, 1] == 0).all() and (engine.knobs.retries[checkout, 2] > 0).all()
    mitigate(engine, "disable_retries", "cartservice", worlds=[2])
    assert (engine.knobs.retries[np.concatenate([front, checkout]), 2] == 0).all()


def test_open_circuit_stops_the_calls_to_the_callee() -> None:
    engine = _engine()
    a = engine.topology.index("adservice")
    e = _edge(engine, "frontend", "adservice")
    mitigate(engine, "open_circuit", "frontend->adservice", worlds=PICKED)
    assert engine.knobs.breaker_open[np.ix_(e, PICKED)].all() and not engine.knobs.breaker_open[:, OTHERS].any()
    offered = _run(engine, 5, "offered")[-1, :, a]
    assert offered[PICKED].max() == 0.0 and offered[OTHERS].min() > 1.0


def _cache_engine() -> tuple[Engine, int, int]:
    engine = _engine("hotel-reservation")
    topo = engine.topology
    return engine, topo.index("memcached-rate"), topo.index("mongodb-rate")


def test_flush_cache_restarts_it_empty_and_the_misses_fall_through() -> None:
    engine, cache, db = _cache_engine()
    mitigate(engine, "flush_cache", "memcached-rate", worlds=PICKED)
    assert (engine.knobs.kill_at[cache][PICKED] == engine.time).all()
    assert np.isinf(engine.knobs.kill_at[cache][OTHERS]).all()
    restarts = _run(engine, 10, "restarts")[-1, :, cache]
    assert (restarts[PICKED] > 0).all() and (restarts[OTHERS] == 0).all()
    offered = _run(engine, 3, "offered")[:, :, db].mean(axis=0)
    assert offered[PICKED].min() > 5 * offered[OTHERS].max()


def test_warm_cache_after_a_flush_restores_the_hit_ratio_at_once() -> None:
    engine, cache, db = _cache_engine()
    mitigate(engine, "flush_cache", "memcached-rate")
    _run(engine, 4, "offered")                         # the replicas come back, empty
    assert (engine.replicas.state[engine.topology.replica_component == cache] != 0).any()
    mitigate(engine, "warm_cache", "memcached-rate", worlds=PICKED)
    offered = _run(engine, 4, "offered")[1:, :, db].mean(axis=0)   # after one tick of last tick's retries
    assert offered[OTHERS].min() > 5 * offered[PICKED].max()
    baseline = Engine("hotel-reservation", worlds=4, seed=1)
    normal = _run(baseline, 10, "offered")[3:, :, db].mean(axis=0)
    assert offered[PICKED].max() < 1.5 * normal.max()


def test_warming_a_full_cache_changes_nothing() -> None:
    warmed, plain = Engine("hotel-reservation", worlds=4, seed=1), Engine("hotel-reservation", worlds=4, seed=1)
    mitigate(warmed, "warm_cache", "memcached-rate", worlds=PICKED)
    a, b = _run(warmed, 20, "offered"), _run(plain, 20, "offered")
    assert np.array_equal(a, b)


def test_page_human_takes_a_team_or_nothing() -> None:
    engine = _engine()
    mitigate(engine, "page_human", "payments-team", worlds=PICKED)
    mitigate(engine, "page_human")
    with pytest.raises(MitigationError, match="team"):
        mitigate(engine, "page_human", 42)


def test_an_order_carries_its_amount_through_an_episode() -> None:
    ep = run_scripted("online-shop", [], worlds=4, seed=1, ticks=20,
                     orders=[Order(60.0, "scale", "cartservice", worlds=PICKED, amount=[3, 4])])
    s = ep.injector.engine.topology.index("cartservice")
    assert ep.trajectory.desired_replicas[-1, :, s].tolist() == [2, 3, 4, 2]


BAD_CALLS = [
    ("online-shop", "reboot_the_internet", "frontend", None, PICKED, "no mitigation"),
    ("online-shop", "scale", "nosuchservice", 3, PICKED, "not a component"),
    ("online-shop", "scale", None, 3, PICKED, "needs a component"),
    ("online-shop", "scale", "frontend", "3", PICKED, "number"),
    ("online-shop", "scale", "frontend", True, PICKED, "number"),
    ("online-shop", "scale", "frontend", [1, 2, 3], PICKED, "2 worlds"),
    ("online-shop", "scale", "frontend", np.ones((2, 2)), PICKED, "2 worlds"),
    ("online-shop", "scale", "frontend", np.nan, PICKED, "finite"),
    ("online-shop", "scale", "frontend", [3, np.inf], PICKED, "finite"),
    ("online-shop", "scale", "frontend", 3, [7], "worlds"),
    ("online-shop", "restart", "frontend", 2, PICKED, "takes no amount"),
    ("online-shop", "restart", "nosuchservice", None, PICKED, "not a component"),
    ("online-shop", "rollback_deploy", "nosuchservice", None, PICKED, "not a component"),
    ("online-shop", "rate_limit", "GET /nowhere", 10, PICKED, "endpoints: GET /"),
    ("online-shop", "rate_limit", "frontend", -1, PICKED, "at least 0"),
    ("online-shop", "rate_limit", "GET /", [5, -5], PICKED, "at least 0"),
    ("online-shop", "set_pool_size", "frontend", 4, PICKED, "cartservice"),
    ("online-shop", "set_pool_size", "cartservice", None, PICKED, "amount"),
    ("online-shop", "set_pool_size", "cartservice", 0, PICKED, "at least 1"),
    ("online-shop", "set_pool_size", "cartservice", [4, 0.2], PICKED, "at least 1"),
    ("online-shop", "disable_retries", "frontend->redis-cart", None, PICKED, "does not call"),
    ("online-shop", "disable_retries", "nosuch->cartservice", None, PICKED, "not a component"),
    ("online-shop", "open_circuit", "frontend", None, PICKED, "nothing calls"),
    ("online-shop", "open_circuit", 7, None, PICKED, "not a component"),
    ("online-shop", "flush_cache", "redis-cart", None, PICKED, "not a cache"),
    ("hotel-reservation", "flush_cache", "mongodb-rate", None, PICKED, "memcached-rate"),
    ("hotel-reservation", "warm_cache", "frontend", None, PICKED, "memcached-rate"),
    ("online-shop", "failover_db", "frontend", None, PICKED, "redis-cart"),
    ("online-shop", "dead_letter", "frontend", None, PICKED, "consumes no queue"),
    ("online-shop", "drain_node", "frontend", None, PICKED, "not a node"),
    ("online-shop", "reroute_zone", "mars-1a", None, PICKED, "not a zone"),
    ("online-shop", "renew_cert", "nosuchcert", None, PICKED, "certificate"),
    ("online-shop", "block_client", "frontend", None, PICKED, "not an endpoint"),
    ("online-shop", "sync_clock", "frontend", None, PICKED, "not a node"),
    ("online-shop", "page_human", 42, None, PICKED, "team"),
]


@pytest.mark.parametrize("template,name,target,amount,worlds,words", BAD_CALLS,
                         ids=[f"{c[1]}-{c[2]}-{c[3]!r}" for c in BAD_CALLS])
def test_bad_calls_raise_one_line_and_change_nothing(template, name, target, amount, worlds, words) -> None:
    engine = _engine(template)
    knobs = engine.knobs.copy()
    warmed, changes = engine.replicas.warmed_at.copy(), len(engine.changes)
    if name in MITIGATIONS:                 # the check alone refuses it too
        with pytest.raises(MitigationError):
            MITIGATIONS[name].check(engine, target, amount, worlds)
    with pytest.raises(MitigationError) as info:
        mitigate(engine, name, target, amount=amount, worlds=worlds)
    message = str(info.value)
    assert words in message and "\n" not in message, message
    for f in fields(knobs):
        assert np.array_equal(getattr(knobs, f.name), getattr(engine.knobs, f.name)), f.name
    assert np.array_equal(warmed, engine.replicas.warmed_at)
    assert len(engine.changes) == changes


def test_check_alone_takes_the_target_before_the_amount_is_known() -> None:
    engine = _engine()
    MITIGATIONS["set_pool_size"].check(engine, "cartservice")           # the amount comes with the order
    MITIGATIONS["rate_limit"].check(engine, "GET /cart")
    MITIGATIONS["scale"].check(engine, None)
    with pytest.raises(MitigationError, match="cartservice"):
        MITIGATIONS["set_pool_size"].check(engine, "frontend")
    with pytest.raises(MitigationError, match="amount"):
        MITIGATIONS["set_pool_size"].check(engine, "cartservice", None)
