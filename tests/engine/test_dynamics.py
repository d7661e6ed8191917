"""Each mechanism of the engine, driven through its knobs: the symptom must follow from the changed state."""

from __future__ import annotations

import numpy as np
import pytest

from opsworld import Engine, load_scenario
from opsworld.engine import KnobError

from scenarios import chain


def _engine(worlds: int = 2, **over) -> Engine:
    spec = chain(**over)
    spec["traffic"] = {**spec["traffic"], "arrivals": "expected"}
    return Engine(load_scenario(spec), worlds=worlds, seed=1)


def _col(engine: Engine, name: str) -> int:
    return engine.topology.index(name)


def _edge(engine: Engine, src: str, dst: str) -> int:
    t = engine.topology
    return int(np.flatnonzero((t.edge_src == t.index(src)) & (t.edge_dst == t.index(dst)))[0])


def test_healthy_chain_serves_everything_with_expected_loads() -> None:
    engine = _engine()
    truth = engine.run(ticks=30)
    db, cache, worker = _col(engine, "db"), _col(engine, "cache"), _col(engine, "worker")
    rate = truth.offered[-1, 0] / engine.dt
    assert rate[cache] == pytest.approx(200.0, rel=0.01)            # api calls the cache twice per request
    assert rate[db] == pytest.approx(20.0, rel=0.01)                # 10% misses
    assert rate[worker] == pytest.approx(100.0, rel=0.01)           # every published message is consumed
    assert truth.failed[5:].sum() == pytest.approx(0.0, abs=1e-6)
    assert truth.slo_met[5:].sum() / truth.requests[5:].sum() > 0.999
    assert np.allclose(truth.goodput, truth.requests - truth.failed)
    assert (truth.slo_violations >= -1e-3).all() and truth.slo_violations[5:].sum() < 0.001 * truth.requests.sum()


def test_cache_miss_shifts_load_to_the_datastore() -> None:
    engine = _engine()
    engine.run(ticks=5)
    engine.set("hit_ratio", 0.0, "cache", worlds=[1])
    truth = engine.run(ticks=5)
    db = _col(engine, "db")
    assert truth.offered[-1, 1, db] == pytest.approx(10 * truth.offered[-1, 0, db], rel=0.02)


def test_errors_propagate_and_retries_amplify_load() -> None:
    engine = _engine()
    engine.set("error_rate", 0.5, "api", worlds=[1])
    truth = engine.run(ticks=10)
    api = _col(engine, "api")
    # every attempt fails with probability 1/2, so 1 + 1/2 + 1/4 attempts per call, and 1/8 of calls fail
    assert truth.offered[-1, 1, api] / truth.offered[-1, 0, api] == pytest.approx(1.75, rel=0.01)
    assert truth.failed[-1, 1, 0] / truth.requests[-1, 1, 0] == pytest.approx(0.125, rel=0.02)
    assert truth.failed[-1, 0, 0] == pytest.approx(0.0, abs=1e-6)
    assert truth.failed_by_cause[-1, 1, _col(engine, "web"), 1] > 0       # the web tier fails by its dependency


def test_overload_fills_the_backlog_then_drops_and_recovers() -> None:
    engine = _engine()
    engine.run(ticks=5)
    engine.set("capacity", 0.1, "api", worlds=[1])
    hurt = engine.run(ticks=20)
    api = _col(engine, "api")
    assert hurt.backlog[-1, 1, api] > 0
    assert hurt.failed_by_cause[-1, 1, api, 2] > 0                       # timeouts
    assert hurt.failed[-1, 1, 0] / hurt.requests[-1, 1, 0] > 0.3
    engine.set("capacity", 1.0, "api", worlds=[1])
    healed = engine.run(ticks=20)
    assert healed.failed[-1, 1, 0] / healed.requests[-1, 1, 0] < 0.001
    assert healed.backlog[-1, 1, api] == pytest.approx(0.0, abs=1e-6)


def test_memory_leak_ooms_and_restarts() -> None:
    engine = _engine()
    api = _col(engine, "api")
    engine.set("memory_growth", 1e6, "api", worlds=[1])                    # 1 MB/s into a 512Mi limit
    truth = engine.run(ticks=120)
    assert truth.memory_max_fraction[:, 1, api].max() > 0.95
    assert truth.restarts[-1, 1, api] >= 2
    assert truth.ready_replicas[:, 1, api].min() < 2
    assert truth.restarts[-1, 0, api] == 0


def test_crash_loop_takes_replicas_out() -> None:
    engine = _engine()
    engine.set("crash_loop", True, "api", worlds=[1])
    truth = engine.run(ticks=60)
    api = _col(engine, "api")
    assert truth.restarts[-1, 1, api] >= 4
    assert (truth.ready_replicas[10:, 1, api] == 0).mean() > 0.6
    assert truth.failed[20:, 1, 0].sum() / truth.requests[20:, 1, 0].sum() > 0.5


def test_certificate_expiry_fails_requests_at_its_wall_clock_time() -> None:
    engine = _engine(duration="3h")                                        # starts 2026-01-01T00:00, expires 02:00
    truth = engine.run()
    failed = truth.failed[:, 0, 0] / truth.requests[:, 0, 0]
    before, after = truth.time <= 2 * 3600, truth.time > 2 * 3600 + engine.dt
    assert failed[before].max() < 1e-6
    assert failed[after].min() == pytest.approx(1.0)
    assert truth.slo_violations[after].sum() == pytest.approx(truth.requests[after].sum(), rel=1e-5)
    assert truth.slo_breached[before].max() == 0.0 and truth.slo_breached[after].min() == 1.0
    engine2 = _engine(duration="3h")
    engine2.set("cert_not_after", 4e9, "web-tls")                          # renewed
    assert engine2.run().failed.sum() == pytest.approx(0.0, abs=1e-6)


def test_zone_partition_fails_cross_zone_calls() -> None:
    engine = _engine()
    engine.set("partition", True, ("zone-a", "zone-b"), worlds=[1])
    engine.set("partition", True, ("zone-b", "zone-a"), worlds=[1])
    truth = engine.run(ticks=10)
    assert truth.failed[-1, 0, 0] == pytest.approx(0.0, abs=1e-6)
    assert truth.failed[-1, 1, 0] / truth.requests[-1, 1, 0] > 0.2


def test_autoscaler_adds_replicas_under_load() -> None:
    spec = chain()
    spec["components"]["web"]["autoscaler"] = {"min": 2, "max": 8, "target_cpu": 0.5}
    spec["components"]["web"]["startup"] = "10s"
    engine = Engine(load_scenario(spec), worlds=2, seed=1)
    engine.set("traffic", 8.0, "GET /", worlds=[1])       # web CPU to 0.8, target 0.5
    truth = engine.run(ticks=30)
    web = _col(engine, "web")
    assert truth.desired_replicas[-1, 1, web] > 2
    assert truth.ready_replicas[-1, 1, web] > 2
    assert truth.desired_replicas[-1, 0, web] == 2


def test_hung_replica_times_out_until_the_health_check_ejects_it() -> None:
    engine = _engine()
    engine.set("hung", True, ("api", 0), worlds=[1])
    truth = engine.run(ticks=10)
    failed = truth.failed[:, 1, 0] / truth.requests[:, 1, 0]
    assert failed[0] > 0.05                        # half the api traffic goes to a replica that never answers
    assert failed[-1] < 1e-6                       # ejected after 3 failed 10 s probes
    assert truth.ready_replicas[-1, 1, _col(engine, "api")] == 1


def test_queue_backs_up_when_its_consumer_slows_without_hurting_the_publisher() -> None:
    engine = _engine()
    engine.set("capacity", 0.1, "worker", worlds=[1])
    truth = engine.run(ticks=20)
    jobs = _col(engine, "jobs")
    assert truth.queue_depth[-1, 1, jobs] > truth.queue_depth[-5, 1, jobs] > 1000
    assert truth.queue_depth[-1, 0, jobs] < 1
    assert truth.failed[:, 1, 0].sum() == pytest.approx(0.0, abs=1e-6)


def test_a_full_queue_refuses_publishes() -> None:
    spec = chain()
    spec["components"]["jobs"]["capacity"] = 2000
    spec["traffic"] = {**spec["traffic"], "arrivals": "expected"}
    engine = Engine(load_scenario(spec), worlds=2, seed=1)
    engine.set("capacity", 0.1, "worker", worlds=[1])
    truth = engine.run(ticks=20)
    jobs = _col(engine, "jobs")
    assert truth.queue_depth[:, 1, jobs].max() >= 2000
    assert truth.failed_by_cause[-1, 1, jobs, 3] > 0                 # publishes refused at the door
    assert truth.failed[-1, 1, 0] > 0                                # and the publish is a required call
    assert truth.failed[:, 0, 0].sum() == pytest.approx(0.0, abs=1e-6)


def test_full_disk_makes_writes_fail() -> None:
    engine = _engine()
    engine.set("disk_growth", 1e9, "db", worlds=[1])
    truth = engine.run(ticks=30)
    db = _col(engine, "db")
    assert truth.disk_max_fraction[-1, 1, db] == pytest.approx(1.0)
    assert truth.failed_by_cause[-1, 1, db, 0] > 0
    assert truth.failed[-1, 1, 0] > 0


def test_small_connection_pool_adds_waiting() -> None:
    engine = _engine()
    engine.set("capacity", 0.2, "db")                                      # slow queries hold connections longer
    engine.set("pool_size", 1, ("cache", "db"), worlds=[1])
    truth = engine.run(ticks=10)
    api = _col(engine, "api")
    assert truth.response_mean[-1, 1, api] > 1.2 * truth.response_mean[-1, 0, api]


def test_noisy_neighbour_slows_a_node() -> None:
    engine = _engine()
    for node in engine.topology.nodes:
        engine.set("cpu_steal", 30.0, node, worlds=[1])                   # 16-core nodes asked for 30 more
    truth = engine.run(ticks=5)
    api = _col(engine, "api")
    assert truth.response_mean[-1, 1, api] > 1.5 * truth.response_mean[-1, 0, api]


def test_bad_knob_requests_are_refused_and_change_nothing() -> None:
    engine = _engine()
    before = engine.knobs.copy()
    for call in (lambda: engine.set("nonsense", 1.0),
                 lambda: engine.set("capacity", 0.5, "no-such-service"),
                 lambda: engine.set("timeout", 1.0, ("db", "web")),
                 lambda: engine.set("capacity", 0.5, "api", worlds=[7]),
                 lambda: engine.set("partition", True, ("zone-a", "zone-q")),
                 lambda: engine.set("capacity", [1.0, 2.0, 3.0], "api")):
        with pytest.raises(KnobError):
            call()
    for name in ("capacity", "timeout", "partition"):
        assert np.array_equal(getattr(before, name), getattr(engine.knobs, name))


def test_kv_cache_that_outgrows_gpu_memory_fails_requests() -> None:
    spec = {
        "name": "gpu", "duration": "10m",
        "nodes": [{"name": "gpu-1", "zone": "zone-a", "pool": "gpu", "cpu": 32, "gpus": 8}],
        "components": {"model": {
            "node_pool": "gpu", "replicas": 1, "concurrency": 16, "cpu": 8, "service_time": {"mean": "1s", "cv": 0.5},
            "gpu": {"count": 1, "memory": "10Gi", "model_memory": "8Gi", "kv_cache_per_request": "1Gi"}}},
        "traffic": {"base_rate": "1/s", "arrivals": "expected",
                    "endpoints": [{"name": "POST /v1/chat", "service": "model", "timeout": "60s"}]},
    }
    engine = Engine(load_scenario(spec), worlds=2, seed=1)
    engine.set("traffic", 4.0, "POST /v1/chat", worlds=[1])     # about 4 requests in flight need 4Gi of KV cache
    truth = engine.run(ticks=10)
    assert truth.gpu_memory_fraction[-1, 0, 0] == pytest.approx((8 + 1) / 10, rel=0.05)
    assert truth.gpu_memory_fraction[-1, 1, 0] > 1.0
    assert truth.failed_by_cause[-1, 0, 0, 0] == pytest.approx(0.0, abs=1e-6)
    assert truth.failed_by_cause[-1, 1, 0, 0] / truth.served[-1, 1, 0] == pytest.approx(0.5, abs=0.1)


def _shop(**endpoint_calls) -> dict:
    """web serves a cheap page (no calls), a search page (calls search) and the default (calls api)."""
    spec = chain()
    spec["components"]["search"] = {"replicas": 2, "cpu": 1, "service_time": {"mean": "20ms"}}
    spec["traffic"] = {"base_rate": "100/s", "arrivals": "expected", "endpoints": [
        {"name": "GET /", "service": "web", "share": 0.5, "timeout": "5s"},
        {"name": "GET /health", "service": "web", "share": 0.2, "timeout": "5s", "calls": []},
        {"name": "GET /search", "service": "web", "share": 0.3, "timeout": "5s",
         "calls": [{"target": "search", "timeout": "1s"}]},
    ]}
    return spec


def test_endpoints_with_their_own_calls_differ() -> None:
    engine = Engine(load_scenario(_shop()), worlds=2, seed=1)
    engine.set("error_rate", 1.0, "search", worlds=[1])
    truth = engine.run(ticks=10)
    home, health, search = 0, 1, 2
    p50 = truth.latency_p50[-1, 0]
    assert p50[health] < p50[home] and p50[health] < 0.005          # own work only: about 2 ms
    assert truth.latency_mean[-1, 0, search] > 0.022                 # own 2 ms, then search's 20 ms
    t = engine.topology
    rate = truth.offered[-1, 0] / engine.dt
    assert rate[t.index("search")] == pytest.approx(30.0, rel=0.01)  # only the search page calls search
    assert rate[t.index("api")] == pytest.approx(50.0, rel=0.01)     # only the default page calls api
    errors = truth.failed[-1, 1] / truth.requests[-1, 1]
    assert errors[search] == pytest.approx(1.0, abs=1e-3)
    assert errors[home] < 1e-6 and errors[health] < 1e-6              # the broken backend hurts one page only
    assert truth.failed_by_cause[-1, 1, t.index("web"), 1] == pytest.approx(0.3 * truth.served[-1, 1, t.index("web")],
                                                                           rel=0.01)
