"""The range functions read from the store's running counts (`promql.ends`) give what the general path gives.

The same random samples go into a store with running counts (and one with running sums too) and into one without
(`cumulative=False`, which takes the general path: every sample of the window); every range function must agree
to 1e-12 relative on stores with gaps, absent series, counter resets (also at a window's first sample and just
after it), NaN-only columns, worlds that differ, ring wrap-around, `world(b)`/`until(t)` views, and a store filled
in place through `next_rows`.
"""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.observe.promql import Scalar, Vector, instant_query, range_query
from opsworld.observe.store import Family, MetricStore

T0 = 1_700_000_000.0
SCRAPE = 10.0
FUNCTIONS = ["rate", "increase", "delta", "irate", "idelta", "changes", "resets", "avg_over_time", "min_over_time",
             "max_over_time", "sum_over_time", "count_over_time", "last_over_time", "present_over_time",
             "stddev_over_time", "stdvar_over_time", "absent_over_time"]
METRICS = ["c_total", "g"]
FAMILIES = [Family("c", "counter", "A counter."), Family("g", "gauge", "A gauge.")]


def samples(rng: np.random.Generator, scrapes: int, worlds: int, per_metric: int) -> tuple[np.ndarray, list[dict]]:
    """[T, B, M] samples of `per_metric` counters then as many gauges, NaN = no sample: every (series, world) is
    full, absent, gappy, bursty, late or early, and each metric has a column that is NaN in every world."""
    labels = [{"__name__": name, "i": str(i)} for name in METRICS for i in range(per_metric)]
    vals = np.full((scrapes, worlds, len(labels)), np.nan)
    t = np.arange(scrapes)
    for m, ls in enumerate(labels):
        counter = ls["__name__"] == "c_total"
        if int(ls["i"]) == per_metric - 1:
            continue                                             # NaN in every world
        for b in range(worlds):
            if counter:
                series = np.cumsum(rng.poisson(rng.uniform(0.5, 40.0), scrapes)).astype(float) + rng.integers(0, 999)
                for at in rng.choice(scrapes, rng.integers(0, 4), replace=False):       # restarts from ~0
                    series[at:] -= series[at] - rng.integers(0, 3)
            else:
                series = 100.0 + np.cumsum(rng.normal(0, 3, scrapes)) + rng.normal(0, 10, scrapes)
                series = np.round(series, int(rng.integers(0, 4)))                      # repeats for changes()
            kind = rng.choice(["full", "full", "absent", "gappy", "bursty", "late", "early"])
            if kind == "absent":
                series[:] = np.nan
            elif kind == "gappy":
                series[rng.random(scrapes) < 0.2] = np.nan
            elif kind == "bursty":
                for start in rng.choice(scrapes, 3):
                    series[start:start + rng.integers(1, 40)] = np.nan
            elif kind == "late":
                series[t < rng.integers(0, scrapes)] = np.nan
            elif kind == "early":
                series[t >= rng.integers(0, scrapes)] = np.nan
            vals[:, b, m] = series
    return vals, labels


def fill(vals: np.ndarray, labels: list[dict], retention: int | None = None, **kw: bool) -> MetricStore:
    store = MetricStore(labels, FAMILIES, vals.shape[1], retention, **kw)
    jitter = np.random.default_rng(7).integers(0, 400, len(vals)) / 1000.0
    for k in range(len(vals)):
        store.append(T0 + k * SCRAPE + jitter[k], vals[k])
    return store


def assert_same(fast: Vector | Scalar, slow: Vector | Scalar, what: str) -> None:
    if isinstance(slow, Scalar):
        assert isinstance(fast, Scalar), what
        np.testing.assert_allclose(fast.values, slow.values, rtol=1e-12, atol=0, equal_nan=True, err_msg=what)
        return
    assert isinstance(fast, Vector), what
    assert fast.labels == slow.labels, what
    np.testing.assert_array_equal(fast.present, slow.present, err_msg=what)
    np.testing.assert_allclose(fast.values, slow.values, rtol=1e-12, atol=0, equal_nan=True, err_msg=what)


def queries(ranges: list[str]) -> list[str]:
    out = [f"{f}({m}[{r}])" for f in FUNCTIONS for m in METRICS for r in ranges]
    out += [f"quantile_over_time(0.3, {m}[{r}])" for m in METRICS for r in ranges]
    out += [f"rate(c_total[{ranges[0]}] offset 1m)", "g", "c_total offset 2m", "g offset 90s"]
    return out


def compare(stores: list[MetricStore], slow: MetricStore, qs: list[str], times: list[float]) -> None:
    for query in qs:
        for at in times:
            want = instant_query(query, slow, at)
            for store in stores:
                assert_same(instant_query(query, store, at), want, f"{query} @ {at:.3f}")


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, list[dict]]:
    return samples(np.random.default_rng(20240601), scrapes=150, worlds=5, per_metric=9)


def test_every_range_function_agrees(data: tuple[np.ndarray, list[dict]]) -> None:
    vals, labels = data
    slow = fill(vals, labels, cumulative=False)
    fast, summed = fill(vals, labels), fill(vals, labels, sums=True)
    assert fast.cumulative and not slow.cumulative and fast.sums is None and summed.sums is not None
    times = fast.times
    at = [float(times[0]), float(times[1]) + 0.5, float(times[40]), float(times[77]) + 3.217, float(times[-1]),
          float(times[-1]) + 55.0, float(times[-1]) + 400.0]
    compare([fast, summed], slow, queries(["10s", "1m", "5m", "17m", "2h"]), at)


def test_resets_at_and_after_the_first_sample_of_a_window() -> None:
    """A drop at the window's first sample (from a sample before the window) is no reset in it; one at its second
    sample is; and a window starting just after the drop does not see it."""
    scrapes, k = 60, 30
    counter = np.cumsum(np.full(scrapes, 5.0)) + 100.0
    counter[k:] -= counter[k] - 1.0                                  # drops to 1 at scrape k
    gaps = counter.copy()
    gaps[k - 3:k] = np.nan                                           # the drop follows a gap
    vals = np.stack([np.stack([counter, gaps], axis=1), np.stack([gaps, counter], axis=1)], axis=1)   # [T, 2, 2]
    labels = [{"__name__": "c_total", "i": "0"}, {"__name__": "c_total", "i": "1"}]
    slow, fast = fill(vals, labels, cumulative=False), fill(vals, labels)
    times = fast.times
    for r in (60, 300):
        at = [float(times[k]) + r, float(times[k - 1]) + r, float(times[k]) + r + 0.001, float(times[k - 4]) + r]
        qs = [f"{f}(c_total[{r}s])" for f in ("rate", "increase", "resets", "irate", "changes")]
        compare([fast], slow, qs, at)
    # a window whose only sample is its last scrape, and that sample is the drop
    qs = [f"{f}(c_total[25s])" for f in ("rate", "resets", "count_over_time", "last_over_time")]
    compare([fast], slow, qs, [float(times[k])])
    # the reset counts themselves: none in the window that starts at the drop; one in the window that starts a
    # scrape earlier, where the series has that sample (world 0 column 0, world 1 column 1)
    resets = instant_query("resets(c_total[60s])", fast, float(times[k]) + 60).values
    assert resets.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    resets = instant_query("resets(c_total[60s])", fast, float(times[k - 1]) + 60).values
    assert resets.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_ring_wrap_around(data: tuple[np.ndarray, list[dict]]) -> None:
    """A retention ring slides several times; the counts slide with the samples (and the count before the ring's
    first slot is long gone)."""
    vals, labels = data
    slow = fill(vals, labels, retention=37, cumulative=False)
    fast, summed = fill(vals, labels, retention=37), fill(vals, labels, retention=37, sums=True)
    assert len(fast.times) == 37 and fast._start > 0 or fast._end < fast._cap
    times = fast.times
    compare([fast, summed], slow, queries(["1m", "5m", "1h"]),
            [float(times[0]) + 30.0, float(times[20]) + 0.25, float(times[-1])])


def test_views(data: tuple[np.ndarray, list[dict]]) -> None:
    vals, labels = data
    slow, fast = fill(vals, labels, retention=90, cumulative=False), fill(vals, labels, retention=90)
    cut = float(fast.times[60]) + 1.0
    for b in (0, 3):
        compare([fast.world(b)], slow.world(b), queries(["1m", "17m"]), [float(fast.times[-1]), cut])
        compare([fast.world(b).until(cut)], slow.world(b).until(cut), queries(["5m"]), [cut, cut + 100.0])
    compare([fast.until(cut)], slow.until(cut), queries(["3m", "1h"]), [cut])
    with pytest.raises(ValueError):
        fast.world(0).next_rows(T0)


def test_range_queries(data: tuple[np.ndarray, list[dict]]) -> None:
    vals, labels = data
    slow, fast = fill(vals, labels, cumulative=False), fill(vals, labels)
    start, end = float(fast.times[5]), float(fast.times[-1]) + 30.0
    for query in ("sum by (i) (rate(c_total[3m]))", "irate(g[1m])", "max_over_time(g[2m]) - min_over_time(g[2m])",
                  "last_over_time(c_total[45s])", "count_over_time(g[5m]) / 30"):
        want, got = range_query(query, slow, start, end, 17.0), range_query(query, fast, start, end, 17.0)
        assert got.labels == want.labels, query
        np.testing.assert_array_equal(got.present, want.present, err_msg=query)
        np.testing.assert_allclose(got.values, want.values, rtol=1e-12, atol=0, equal_nan=True, err_msg=query)


def test_filled_in_place_and_read_between_scrapes(data: tuple[np.ndarray, list[dict]]) -> None:
    """A sensor fills `next_rows` in place and the store is read after each scrape: the running counts are the
    ones `append` gives, and the answers too."""
    vals, labels = data
    appended = fill(vals, labels, retention=64, sums=True)
    inplace = MetricStore(labels, FAMILIES, vals.shape[1], 64, sums=True)
    jitter = np.random.default_rng(7).integers(0, 400, len(vals)) / 1000.0
    for k in range(len(vals)):
        row = inplace.next_rows(T0 + k * SCRAPE + jitter[k])
        row[...] = 123.0                                   # whatever is there until the sensor writes
        row[...] = vals[k].T
        if k % 7 == 3:
            instant_query("rate(c_total[1m])", inplace, float(inplace.times[-1]))
    for mine, theirs in zip(inplace.counts, appended.counts):
        np.testing.assert_array_equal(mine, theirs)
    assert inplace.sums is not None and appended.sums is not None
    for mine, theirs in zip(inplace.sums, appended.sums):
        np.testing.assert_array_equal(mine, theirs)
    compare([inplace], fill(vals, labels, retention=64, cumulative=False), queries(["2m"]),
            [float(appended.times[-1])])


def test_counts_are_the_running_counts(data: tuple[np.ndarray, list[dict]]) -> None:
    """Differences of the counts over the ring are the samples and the drops between them, counted directly."""
    vals, labels = data
    store = fill(vals, labels, retention=50)
    count, resets = store.counts
    rows = store.rows                                      # [T, M, B]
    valid = ~np.isnan(rows)
    np.testing.assert_array_equal((count[1:] - count[:-1]).astype(np.int64), valid[1:].astype(np.int64))
    last = np.full(rows.shape[1:], np.nan)              # the newest sample before each slot, from the whole history
    before = []
    for k in range(len(vals)):
        before.append(last.copy())
        last = np.where(np.isnan(vals[k].T), last, vals[k].T)
    before = np.array(before)[-len(rows):]
    dropped = rows < before
    np.testing.assert_array_equal((resets[1:] - resets[:-1]).astype(np.int64), dropped[1:].astype(np.int64))


def test_sums_with_infinities_fall_back(data: tuple[np.ndarray, list[dict]]) -> None:
    """An infinite sample makes the running sum useless from then on: those series take the general path."""
    vals, labels = data
    vals = vals.copy()
    g = labels.index({"__name__": "g", "i": "0"})
    vals[20, :, g], vals[21, 1, g] = np.inf, -np.inf
    slow, summed = fill(vals, labels, cumulative=False), fill(vals, labels, sums=True)
    times = summed.times
    qs = [f"{f}(g[{r}])" for f in ("sum_over_time", "avg_over_time") for r in ("1m", "5m", "1h")]
    compare([summed], slow, qs, [float(times[15]), float(times[22]), float(times[-1])])


def test_sums_keep_what_a_huge_sample_would_swallow() -> None:
    """After a sample of 1e17 a plain running sum no longer changes by the small samples that follow (they are
    below its rounding); the compensated one still gives their window sums."""
    scrapes = 80
    labels = [{"__name__": "g", "i": "0"}]
    vals = np.full((scrapes, 1, 1), 1.37) + np.random.default_rng(5).normal(0, 0.01, (scrapes, 1, 1))
    vals[10] = 1e17
    slow, summed = fill(vals, labels, cumulative=False), fill(vals, labels, sums=True)
    times = summed.times
    qs = [f"{f}(g[{r}])" for f in ("sum_over_time", "avg_over_time") for r in ("1m", "5m")]
    compare([summed], slow, qs, [float(times[40]), float(times[-1])])


def test_counts_wrap_past_two_to_the_sixteen() -> None:
    """The counts are modulo 2**16: windows over the wrap are still right, and a window of 2**16 scrapes or more
    takes the general path."""
    scrapes = (1 << 16) + 700
    rng = np.random.default_rng(3)
    labels = [{"__name__": "c_total", "i": "0"}, {"__name__": "g", "i": "0"}]
    vals = np.empty((scrapes, 2, 2))
    vals[:, :, 0] = np.cumsum(rng.integers(0, 5, (scrapes, 2)), axis=0)
    vals[:, :, 0][rng.random((scrapes, 2)) < 0.1] = np.nan
    vals[:, :, 1] = rng.normal(0, 1, (scrapes, 2))
    vals[-500:, 0, 1] = np.nan
    fast = MetricStore(labels, FAMILIES, 2)
    slow = MetricStore(labels, FAMILIES, 2, cumulative=False)
    times = T0 + np.arange(scrapes) * SCRAPE
    for store in (fast, slow):
        for k in range(scrapes):
            store.append_rows(float(times[k]), vals[k].T)
    end = float(times[-1])
    qs = [f"{f}({m}[{r}])" for f in ("rate", "count_over_time", "last_over_time", "resets") for m in METRICS
          for r in ("2h", "200h")] + ["g", "c_total"]
    compare([fast], slow, qs, [end, end - 123.0])


def test_window_results_shared_between_queries_and_dropped_by_a_scrape(data: tuple[np.ndarray, list[dict]]) -> None:
    """Queries at one time share window results per column (overlapping selectors); a new scrape empties them, even
    one that lands inside a window already asked about."""
    vals, labels = data
    slow, fast = fill(vals[:-1], labels, cumulative=False), fill(vals[:-1], labels)
    at = float(fast.times[-1]) + 25.0
    qs = ['rate(c_total{i=~"1|2"}[5m])', "rate(c_total[5m])", 'last_over_time(c_total{i=~"1|2"}[5m])',
          'last_over_time({__name__=~"c_total|g", i!="3"}[5m])', 'sum_over_time(g{i="2"}[2m])', "sum_over_time(g[2m])",
          "count_over_time(g[5m])", "absent_over_time(g[5m])"]
    compare([fast], slow, qs, [at])
    assert fast.memo
    for store in (slow, fast):
        store.append(at - 5.0, vals[-1])
    assert not fast.memo
    compare([fast], slow, qs, [at])
