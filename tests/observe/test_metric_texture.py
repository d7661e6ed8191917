"""The metric sensor's texture: counting noise, counters that began before the episode, the history before it,
consistent histograms, determinism by key (model only: no recordings needed)."""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.engine import Engine
from opsworld.observe.imperfection import Imperfections
from opsworld.observe.metrics import BUCKETS, HISTORY
from opsworld.observe.telemetry import Telemetry
from opsworld.spec.loader import load_scenario

FRONTEND = 'sum(rate(http_server_requests_total{service="frontend"}[5m]))'


def _run(minutes: int = 20, worlds: int = 1, seed: int = 0, first_world: int = 0, failing: float = 0.0,
         imperfections: Imperfections | None = None) -> Telemetry:
    scenario = load_scenario("online-shop", {"duration": f"{minutes}m"})
    engine = Engine(scenario, worlds=worlds, seed=seed, first_world=first_world)
    if failing:
        engine.set("error_rate", failing, "cartservice")
    telemetry = Telemetry(engine, imperfections, rules=False, text=False)
    telemetry.run()
    return telemetry


@pytest.fixture(scope="module")
def shop() -> Telemetry:
    return _run()


@pytest.fixture(scope="module")
def failing() -> Telemetry:
    return _run(10, failing=0.5)


def _series(t: Telemetry, name: str, **labels: str) -> np.ndarray:
    """[T, n] samples of world 0 of the series matching the labels."""
    idx = t.store.select([("__name__", "=", name)] + [(k, "=", v) for k, v in labels.items()])
    return t.store.values[:, 0, idx]


def test_outcome_series_of_a_half_failing_service_are_not_copies(failing: Telemetry) -> None:
    ok = _series(failing, "http_server_requests_total", service="cartservice", code="200")
    bad = _series(failing, "http_server_requests_total", service="cartservice", code="500")
    inc_ok, inc_bad = np.diff(ok, axis=0), np.diff(bad, axis=0)      # [T - 1, pods] requests per tick
    live = np.isfinite(inc_ok) & np.isfinite(inc_bad)                # pods that ran (replica slots may be empty)
    inc_ok, inc_bad = inc_ok[live], inc_bad[live]
    assert not np.allclose(inc_ok, inc_bad)
    assert (inc_ok != inc_bad).mean() > 0.5
    # counts of requests: whole numbers, about half each, the split varying like a Poisson count's
    assert np.all(inc_ok == np.round(inc_ok)) and np.all(inc_bad == np.round(inc_bad))
    share = inc_bad.sum() / (inc_ok.sum() + inc_bad.sum())
    assert 0.45 < share < 0.55
    # without texture the sensor writes the expected values: the two series are one
    exact = _run(10, failing=0.5, imperfections=Imperfections(texture=False))
    e_ok = _series(exact, "http_server_requests_total", service="cartservice", code="200")
    e_bad = _series(exact, "http_server_requests_total", service="cartservice", code="500")
    np.testing.assert_allclose(np.diff(e_ok, axis=0), np.diff(e_bad, axis=0), rtol=1e-9, equal_nan=True)


def test_rate_is_steady_from_the_first_minute(shop: Telemetry) -> None:
    start = float(shop.engine.scenario.traffic.start)
    first = float(shop.query(FRONTEND, at=start + 60.0).values[0, 0])
    steady = float(shop.query(FRONTEND, at=start + 15 * 60.0).values[0, 0])
    assert steady > 0 and abs(first / steady - 1.0) < 0.1
    # the store holds the scrapes of HISTORY seconds before the episode, at the scrape interval
    times = shop.store.times
    assert times[0] <= start - HISTORY + 2 * shop.engine.dt
    np.testing.assert_allclose(np.diff(times), shop.engine.dt)


def test_counters_begin_with_the_pods_age(shop: Telemetry) -> None:
    start = float(shop.engine.scenario.traffic.start)
    at = int(np.searchsorted(shop.store.times, start + shop.engine.dt))      # the episode's first scrape
    rate = float(shop.query(FRONTEND, at=start + 60.0).values[0, 0])
    total = np.nansum(_series(shop, "http_server_requests_total", service="frontend")[at])
    # the pods had been up a day: their counters hold about a day's requests at the first tick's rate
    assert 0.5 * rate * 86400 < total < 1.5 * rate * 86400
    cpu = _series(shop, "container_cpu_usage_seconds_total")
    up = np.isfinite(cpu[0])                        # replica slots with a pod (the others may start later)
    assert up.sum() >= 10 and np.all(cpu[0, up] > 1000.0)
    steps = np.diff(cpu[:, up], axis=0)
    assert np.all(steps[np.isfinite(steps)] >= 0)


def test_a_restarted_pod_counts_again_from_zero() -> None:
    scenario = load_scenario("online-shop", {"duration": "5m"})
    engine = Engine(scenario, worlds=1, seed=0)
    telemetry = Telemetry(engine, rules=False, text=False)
    telemetry.run(3)
    engine.set("kill_at", engine.time, "cartservice")
    telemetry.run(12)
    cpu = _series(telemetry, "container_cpu_usage_seconds_total", pod="cartservice-0")[:, 0]
    finite = cpu[np.isfinite(cpu)]
    assert finite[0] > 1000.0 and finite[-1] < 100.0      # began a day ago; began again in the episode


def test_histograms_stay_consistent(shop: Telemetry) -> None:
    fam = "http_server_request_duration_seconds"
    store = shop.store
    counts = store.select([("__name__", "=", fam + "_count")])
    assert counts.size
    for i in counts:
        lab = {k: v for k, v in store.labels[i].items() if k != "__name__"}
        matchers = [("__name__", "=", fam + "_bucket")] + [(k, "=", v) for k, v in lab.items()]
        rows = store.select(matchers)
        les = [store.labels[r]["le"] for r in rows]
        order = [les.index(repr(float(b))) for b in BUCKETS] + [les.index("+Inf")]
        buckets = store.values[:, 0, rows[order]]                              # [T, le]
        assert np.all(np.diff(buckets, axis=1) >= 0), lab                      # monotone in le
        assert np.all(np.diff(buckets, axis=0) >= 0), lab                      # counters never fall
        np.testing.assert_array_equal(buckets[:, -1], store.values[:, 0, i])   # _count is the +Inf bucket
        sums = store.values[:, 0, store.select([("__name__", "=", fam + "_sum")] +
                                               [(k, "=", v) for k, v in lab.items()])[0]]
        assert np.all(np.diff(sums) >= 0) and np.all(sums >= 0)
    # and PromQL's quantiles still read them: a P90 per service, finite and within the buckets
    p90 = shop.query(f"histogram_quantile(0.9, sum by (service, le) (rate({fam}_bucket[5m])))")
    values = p90.values[0]
    assert values.size and np.all(np.isfinite(values)) and np.all((values > 0) & (values <= BUCKETS[-1]))


def test_same_seed_and_world_give_the_same_telemetry_in_any_batch() -> None:
    alone = _run(5, worlds=1, seed=7, first_world=2)
    batch = _run(5, worlds=3, seed=7, first_world=0)
    np.testing.assert_array_equal(alone.store.times, batch.store.times)
    np.testing.assert_array_equal(alone.store.values[:, 0], batch.store.values[:, 2])
    again = _run(5, worlds=1, seed=7, first_world=2)
    np.testing.assert_array_equal(alone.store.values, again.store.values)
    other = _run(5, worlds=1, seed=8, first_world=2)
    cpu = alone.store.select([("__name__", "=", "container_cpu_usage_seconds_total")])
    assert not np.array_equal(alone.store.values[:, 0, cpu], other.store.values[:, 0, cpu])
    # worlds of one batch differ from each other too
    assert not np.array_equal(batch.store.values[:, 0, cpu], batch.store.values[:, 1, cpu])


def test_pods_keep_levels_of_their_own(shop: Telemetry) -> None:
    memory = _series(shop, "container_memory_working_set_bytes", container="frontend")      # [T, pods]
    memory = memory[:, np.isfinite(memory).all(axis=0)]                                     # pods up throughout
    level = np.nanmedian(memory, axis=0)
    assert len(level) >= 2 and np.ptp(level) / np.mean(level) > 1e-3
    # ... and wander only a little around them (the recordings: a one-minute CV of a few 1e-4)
    assert np.all(np.nanstd(memory, axis=0) / level < 0.01)


def test_broken_series_read_zero_throughout() -> None:
    t = _run(3, imperfections=Imperfections(broken_series=0.3))
    cpu = _series(t, "container_cpu_usage_seconds_total")
    zero = np.all(cpu == 0.0, axis=0)
    assert zero.any() and not zero.all()
