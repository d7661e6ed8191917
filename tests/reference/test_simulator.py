"""Targeted checks of the reference simulator: each scenario is small and would fail if one rule of docs/model.md
were broken. Seeds are fixed, so every run is deterministic; tolerances on random quantities are several standard
deviations wide."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from opsworld.reference import ReferenceSimulator, Slowdown
from opsworld.spec.loader import load_scenario

EP = "GET /"


def svc(mean: str, cv: float = 0.0, deps: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    """A component with plenty of slots and cores unless the test says otherwise (so only the rule under test
    shapes the result)."""
    out: dict[str, Any] = {"replicas": 1, "concurrency": 1000, "cpu": 16, "service_time": {"mean": mean, "cv": cv}}
    if deps:
        out["dependencies"] = deps
    out.update(fields)
    return out


def scenario(components: dict[str, Any], rate: float, duration: str = "60s", timeout: str = "10s",
             entry: str = "api") -> Any:
    return load_scenario({
        "name": "t",
        "duration": duration,
        "tick": "10s",
        "nodes": [{"name": "n1", "zone": "z1"}],
        "components": components,
        "traffic": {"base_rate": f"{rate}/s",
                    "endpoints": [{"name": EP, "service": entry, "timeout": timeout, "slo": {"latency": "100ms"}}]},
    })


def quiet_tail(rate: float, ticks: int = 6, quiet: int = 1) -> np.ndarray:
    """Rates with the last `quiet` ticks silent, so every request has settled inside the counted ticks."""
    rates = np.full((ticks, 1), rate)
    rates[ticks - quiet:] = 0.0
    return rates


def col(result: Any, name: str) -> int:
    return result.components.index(name)


def test_same_seed_gives_identical_results_and_another_seed_differs() -> None:
    comps = {
        "api": svc("2ms", 1.0, [{"target": "db", "calls": 1.5, "retries": 1, "timeout": "30ms"},
                                {"target": "cache", "mode": "parallel"}, {"target": "q", "mode": "parallel"}],
                   error_rate=0.05),
        "cache": {"kind": "cache", "fronts": "db", "hit_ratio": 0.5, "service_time": {"mean": "1ms"}},
        "db": {"kind": "datastore", "pool_size": 2, "cpu": 2, "service_time": {"mean": "5ms", "cv": 1.5}},
        "q": {"kind": "queue", "consumer": "worker", "service_time": {"mean": "1ms"}},
        "worker": svc("20ms", 1.0, error_rate=0.1),
    }
    sc = scenario(comps, 60.0, duration="20s")
    a, b = (ReferenceSimulator(sc, seed=7).run() for _ in range(2))
    c = ReferenceSimulator(sc, seed=8).run()
    for field in ("requests", "failed", "slo_met", "offered", "served", "component_failed"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert all(np.array_equal(x, y) for x, y in zip(a.latencies, b.latencies))
    assert all(np.array_equal(x, y) for x, y in zip(a.arrival_times, b.arrival_times))
    assert a.events == b.events
    assert not np.array_equal(a.latencies[0], c.latencies[0])
    # The same simulator object runs afresh from its seed each time.
    sim = ReferenceSimulator(sc, seed=7)
    assert np.array_equal(sim.run().latencies[0], sim.run().latencies[0])


def test_timeout_shorter_than_the_work_fails_every_call_while_the_callee_still_works() -> None:
    comps = {"api": svc("1ms", deps=[{"target": "slow", "timeout": "20ms", "network_latency": "0ms"}]),
             "slow": svc("100ms")}
    r = ReferenceSimulator(scenario(comps, 50.0), seed=1, rates=quiet_tail(50.0)).run()
    n = r.requests.sum()
    assert n > 2000
    assert r.failed.sum() == n and r.error_rate(EP) == 1.0
    # The caller gives up at the timeout: 1 ms of own work + 20 ms, for every request.
    assert np.allclose(r.latencies[0], 0.021)
    slow = col(r, "slow")
    # The callee was not dropped (it got a slot before its deadline) and did all the work, successfully.
    assert r.offered[:, slow].sum() == n
    assert r.served[:, slow].sum() == n
    assert r.component_failed[:, slow].sum() == 0
    assert r.component_failed[:, col(r, "api")].sum() == n


def test_requests_whose_deadline_passed_in_the_queue_are_dropped_without_work() -> None:
    # One slot, 100 ms of work, 20 ms timeout at 20/s: most attempts wait past their deadline in the queue.
    comps = {"api": svc("1ms", deps=[{"target": "slow", "timeout": "20ms"}]),
             "slow": svc("100ms", concurrency=1, cpu=1)}
    r = ReferenceSimulator(scenario(comps, 20.0), seed=2, rates=quiet_tail(20.0)).run()
    slow = col(r, "slow")
    offered, served, dropped = (x[:, slow].sum() for x in (r.offered, r.served, r.component_failed))
    assert dropped > 0.5 * offered
    # Every attempt either did its work (and answered success, too late) or was dropped at dequeue.
    assert served + dropped == offered
    # Capacity is 10/s; dropped attempts cost nothing, so the slot works at most 100 ms per served request.
    assert served <= 10.0 * 50.0 + 1


def test_retries_multiply_the_callees_attempts_when_every_attempt_fails() -> None:
    comps = {"api": svc("1ms", deps=[{"target": "flaky", "retries": 2, "backoff": "1ms", "network_latency": "0ms"}]),
             "flaky": svc("1ms", error_rate="100%")}
    r = ReferenceSimulator(scenario(comps, 50.0), seed=3, rates=quiet_tail(50.0)).run()
    calls = r.served[:, col(r, "api")].sum()
    assert calls > 2000
    assert r.offered[:, col(r, "flaky")].sum() == 3 * calls
    assert r.error_rate(EP) == 1.0
    # Own work + three 1 ms attempts + backoffs of 1 ms and 2 ms.
    assert np.allclose(r.latencies[0], 0.001 + 3 * 0.001 + 0.001 + 0.002)


@pytest.mark.parametrize("required", [False, True])
def test_only_a_required_dependency_failure_fails_the_caller(required: bool) -> None:
    comps = {"api": svc("1ms", deps=[{"target": "fine"}, {"target": "broken", "required": required}]),
             "fine": svc("1ms"), "broken": svc("1ms", error_rate="100%")}
    r = ReferenceSimulator(scenario(comps, 30.0, duration="20s"), seed=4).run()
    assert r.requests.sum() > 300
    assert r.error_rate(EP) == (1.0 if required else 0.0)
    assert r.component_failed[:, col(r, "broken")].sum() == r.offered[:, col(r, "broken")].sum()


def test_error_rate_gives_that_fraction_of_failures() -> None:
    r = ReferenceSimulator(scenario({"api": svc("1ms", error_rate=0.2)}, 100.0), seed=5).run()
    n = r.requests.sum()
    assert n > 5000
    assert r.error_rate(EP) == pytest.approx(0.2, abs=0.025)  # std 0.0055
    assert r.failed.sum() / n == pytest.approx(r.error_rate(EP))


def test_cache_sends_misses_to_the_component_it_fronts() -> None:
    comps = {"api": svc("1ms", deps=[{"target": "cache"}]),
             "cache": {"kind": "cache", "fronts": "db", "hit_ratio": "75%", "service_time": {"mean": "1ms"}},
             "db": {"kind": "datastore", "cpu": 4, "service_time": {"mean": "5ms"}}}
    r = ReferenceSimulator(scenario(comps, 100.0), seed=6, rates=quiet_tail(100.0)).run()
    lookups, misses = r.offered[:, col(r, "cache")].sum(), r.offered[:, col(r, "db")].sum()
    assert lookups > 4000
    assert misses / lookups == pytest.approx(0.25, abs=0.03)  # std 0.007
    assert r.error_rate(EP) == 0.0


def test_queue_consumer_failures_never_reach_the_publisher() -> None:
    comps = {"api": svc("1ms", deps=[{"target": "q", "network_latency": "0ms"}]),
             "q": {"kind": "queue", "consumer": "worker", "cpu": 16, "service_time": {"mean": "1ms", "cv": 0}},
             "worker": svc("100ms", error_rate="100%")}
    r = ReferenceSimulator(scenario(comps, 50.0), seed=7, rates=quiet_tail(50.0)).run()
    published, consumed = r.served[:, col(r, "q")].sum(), r.offered[:, col(r, "worker")].sum()
    assert published > 2000
    assert consumed == published  # one consumer request per published message
    assert r.component_failed[:, col(r, "worker")].sum() == consumed
    assert r.error_rate(EP) == 0.0
    # The publisher waits for the broker's 1 ms only, not for the consumer's 100 ms.
    assert np.allclose(r.latencies[0], 0.002)


def test_slowdown_raises_latency_only_inside_its_window() -> None:
    sc = scenario({"api": svc("10ms", 0.25)}, 20.0)
    r = ReferenceSimulator(sc, seed=8, slowdowns=[Slowdown("api", 20.0, 40.0, 5.0)]).run()
    before, inside, after = (r.percentile(EP, 0.5, a, b) for a, b in ((0, 19.5), (20.5, 39.5), (40.5, 60)))
    assert before == pytest.approx(0.010, rel=0.1)
    assert inside == pytest.approx(0.050, rel=0.1)
    assert after == pytest.approx(0.010, rel=0.1)
    with pytest.raises(ValueError):
        ReferenceSimulator(sc, slowdowns=[Slowdown("nope", 0.0, 1.0, 2.0)])


def test_datastore_pool_of_one_makes_callers_wait() -> None:
    def run(pool: int) -> float:
        comps = {"api": svc("1ms", deps=[{"target": "db", "timeout": "5s"}]),
                 "db": {"kind": "datastore", "pool_size": pool, "concurrency": 1000, "cpu": 16,
                        "service_time": {"mean": "50ms", "cv": 0}}}
        r = ReferenceSimulator(scenario(comps, 10.0), seed=9).run()
        assert r.error_rate(EP) == 0.0
        return r.mean_latency(EP)

    # One connection per caller replica turns the roomy datastore into an M/D/1 queue at utilisation 0.5:
    # about 25 ms of waiting for the connection on top of the 50 ms query.
    wide, narrow = run(100), run(1)
    assert wide == pytest.approx(0.0515, abs=0.001)
    assert narrow > wide + 0.015


def test_waiting_for_a_connection_counts_against_the_timeout() -> None:
    comps = {"api": svc("1ms", deps=[{"target": "db", "timeout": "60ms"}]),
             "db": {"kind": "datastore", "pool_size": 1, "cpu": 16, "service_time": {"mean": "50ms", "cv": 0}}}
    r = ReferenceSimulator(scenario(comps, 15.0), seed=10, rates=quiet_tail(15.0)).run()
    # Any request that waited more than 10 ms for the connection times out; with the pool busy 75% of the time
    # that is many of them, and none succeeds later than 1 + 60 ms.
    assert r.error_rate(EP) > 0.3
    ok = r.succeeded[0]
    assert np.all(r.latencies[0][ok] <= 0.0615)
    assert np.allclose(r.latencies[0][~ok], 0.061)


def test_an_attempt_still_waiting_for_a_connection_at_its_timeout_gives_up_unsent() -> None:
    # Two parallel calls share the one connection: the first holds it for its 50 ms query, the second gives up
    # after 5 ms in the pool's queue without reaching the datastore. (With a single timeout per pool this cannot
    # happen: FIFO means the holder's deadline always comes before the waiter's.)
    comps = {"api": svc("1ms", deps=[{"target": "db", "mode": "parallel", "timeout": "1s"},
                                     {"target": "db", "mode": "parallel", "timeout": "5ms"}]),
             "db": {"kind": "datastore", "pool_size": 1, "cpu": 16, "service_time": {"mean": "50ms", "cv": 0}}}
    r = ReferenceSimulator(scenario(comps, 2.0), seed=10, rates=quiet_tail(2.0)).run()
    n = r.requests.sum()
    sent = r.offered[:, col(r, "db")].sum()
    # Requests rarely overlap at 2/s, so nearly always only the first call is sent, and the second always fails.
    assert n * 0.95 < sent < n * 1.05
    assert r.error_rate(EP) == 1.0
    assert r.percentile(EP, 0.5) == pytest.approx(0.001 + 0.0505)  # the request waits for the slower call


def test_parallel_calls_wait_for_the_slowest_and_sequential_calls_add_up() -> None:
    def latency(mode: str) -> float:
        comps = {"api": svc("1ms", deps=[{"target": "a", "mode": mode, "network_latency": "0ms"},
                                         {"target": "b", "mode": mode, "network_latency": "0ms"}]),
                 "a": svc("30ms"), "b": svc("50ms")}
        r = ReferenceSimulator(scenario(comps, 10.0, duration="20s"), seed=11).run()
        return r.percentile(EP, 0.5)

    assert latency("parallel") == pytest.approx(0.051)
    assert latency("sequential") == pytest.approx(0.081)


def test_fractional_calls_and_cpu_quota() -> None:
    comps = {"api": svc("1ms", deps=[{"target": "half", "calls": 1.5}]), "half": svc("10ms", cpu="500m")}
    r = ReferenceSimulator(scenario(comps, 20.0, duration="40s"), seed=12, rates=quiet_tail(20.0, ticks=4)).run()
    calls = r.offered[:, col(r, "half")].sum() / r.requests.sum()
    assert calls == pytest.approx(1.5, abs=0.05)
    # Half a core: the 10 ms of work takes 20 ms; one or two sequential calls each add it (+0.5 ms round trip).
    single = r.percentile(EP, 0.0)
    assert single == pytest.approx(0.001 + 0.0205, rel=1e-6)


def test_rates_profile_shapes_arrivals_and_is_checked() -> None:
    sc = scenario({"api": svc("1ms")}, 10.0)
    rates = np.array([[0.0], [100.0], [0.0], [0.0], [50.0], [0.0]])
    r = ReferenceSimulator(sc, seed=13, rates=rates).run()
    assert r.requests[[0, 2, 3, 5], 0].sum() == 0
    assert r.requests[1, 0] == pytest.approx(1000, rel=0.15)
    assert r.requests[4, 0] == pytest.approx(500, rel=0.15)
    with pytest.raises(ValueError):
        ReferenceSimulator(sc, rates=np.ones((3, 1))).run()  # 60 s needs 6 ticks
    with pytest.raises(ValueError):
        ReferenceSimulator(sc, rates=np.ones((6, 2)))


def test_requests_still_in_flight_at_their_deadline_time_out() -> None:
    # One slot, 100 ms of work at 20/s: the queue grows without bound, so most requests time out at 1 s, some of
    # them still queued when arrivals stop; every arrival still gets a latency.
    r = ReferenceSimulator(scenario({"api": svc("100ms", concurrency=1, cpu=1)}, 20.0, duration="20s", timeout="1s"),
                           seed=14).run()
    lat = r.latencies[0]
    assert lat.size == r.requests.sum() and not np.any(np.isnan(lat))
    assert np.all(lat <= 1.0)
    assert r.error_rate(EP) > 0.4
    assert np.allclose(lat[~r.succeeded[0]], 1.0)
    assert r.slo_met.sum() <= r.requests.sum() - r.failed.sum()
