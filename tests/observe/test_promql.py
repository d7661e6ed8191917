"""The PromQL engine on small hand-built stores, against values worked out by hand from Prometheus' rules (and the
OpenMetrics export of such a store)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from opsworld.observe.export import write_openmetrics
from opsworld.observe.promql import Matrix, PromQLError, Scalar, Vector, instant_query, parse, range_query
from opsworld.observe.store import Family, MetricStore

NAN = np.nan
T0 = 1000.0


def make_store(series: dict[tuple[tuple[str, str], ...], list[list[float]]], times: list[float]) -> MetricStore:
    """A store from {labels: samples [T][B]} at `times` (seconds after T0)."""
    labels = [dict(k) for k in series]
    worlds = len(next(iter(series.values()))[0])
    store = MetricStore(labels, [Family("x", "gauge", "")], worlds)
    data = np.array([series[k] for k in series], dtype=float)          # [M, T, B]
    for i, t in enumerate(times):
        store.append(T0 + t, data[:, i, :].T)
    return store


def L(name: str, **labels: str) -> tuple[tuple[str, str], ...]:
    return tuple({"__name__": name, **labels}.items())


def as_dict(result: Vector, world: int) -> dict[tuple[tuple[str, str], ...], float]:
    """{sorted labels: value} of one world's present samples."""
    assert result.present is not None
    return {tuple(sorted(ls.items())): float(result.values[world, i]) for i, ls in enumerate(result.labels)
            if result.present[world, i]}


def key(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


# ------------------------------------------------------------------------------------------------- stores
TIMES = [0, 10, 20, 30, 40]


@pytest.fixture
def store() -> MetricStore:
    """Two worlds. World 1 lacks the 500 series and one memory sample, and has no +Inf bucket."""
    return make_store({
        L("http_requests_total", job="api", instance="a", code="200"): [[0, 0], [10, 1], [20, 2], [5, 3], [15, 4]],
        L("http_requests_total", job="api", instance="b", code="200"): [[100, 7], [110, 7], [120, 7], [130, 7],
                                                                        [140, 7]],
        L("http_requests_total", job="api", instance="a", code="500"): [[1, NAN], [2, NAN], [3, NAN], [4, NAN],
                                                                        [5, NAN]],
        L("memory_bytes", instance="a"): [[50, 60], [51, 61], [52, 62], [53, 63], [54, NAN]],
        L("memory_bytes", instance="b"): [[80, 90], [81, 91], [82, 92], [83, 93], [84, 94]],
        L("node_info", instance="a", node="n1"): [[1, 1]] * 5,
        L("node_info", instance="b", node="n2"): [[1, 1]] * 5,
        L("lat_bucket", le="0.1"): [[10, 10]] * 5,
        L("lat_bucket", le="0.5"): [[30, 30]] * 5,
        L("lat_bucket", le="1"): [[40, 40]] * 5,
        L("lat_bucket", le="+Inf"): [[40, NAN]] * 5,
    }, TIMES)


# ---------------------------------------------------------------------------------------------- selectors
def test_selector_returns_newest_sample_per_world(store: MetricStore) -> None:
    r = instant_query("memory_bytes", store, T0 + 45)
    assert as_dict(r, 0) == {key(__name__="memory_bytes", instance="a"): 54,
                             key(__name__="memory_bytes", instance="b"): 84}
    # world 1 has no sample of instance a at 40 s, so the one at 30 s is within the 5 m lookback
    assert as_dict(r, 1)[key(__name__="memory_bytes", instance="a")] == 63


@pytest.mark.parametrize("query, instances", [
    ('memory_bytes{instance="a"}', {"a"}),
    ('memory_bytes{instance!="a"}', {"b"}),
    ('memory_bytes{instance=~"a|b"}', {"a", "b"}),
    ('memory_bytes{instance!~"a.*"}', {"b"}),
    ('{__name__="memory_bytes", instance=~"b"}', {"b"}),
])
def test_label_matchers(store: MetricStore, query: str, instances: set[str]) -> None:
    r = instant_query(query, store, T0 + 40)
    assert {ls["instance"] for ls in r.labels} == instances


def test_lookback_is_five_minutes_inclusive(store: MetricStore) -> None:
    last = T0 + 40
    assert instant_query("memory_bytes", store, last + 300).values[0].tolist() == [54, 84]
    assert instant_query("memory_bytes", store, last + 300.001).labels == []        # dropped: absent everywhere
    assert instant_query("memory_bytes", store, T0 - 0.001).labels == []            # before the first sample


def test_offset_moves_the_evaluation_time(store: MetricStore) -> None:
    r = instant_query("memory_bytes offset 20s", store, T0 + 40)
    assert r.values[0].tolist() == [52, 82]
    assert r.labels[0]["__name__"] == "memory_bytes"


def test_series_absent_in_one_world_is_nan_there(store: MetricStore) -> None:
    r = instant_query('http_requests_total{code="500"}', store, T0 + 40)
    assert r.values[:, 0].tolist()[0] == 5 and math.isnan(r.values[1, 0])
    assert r.present is not None and r.present[:, 0].tolist() == [True, False]


# ---------------------------------------------------------------------------------------------- rates
def test_increase_and_rate_with_counter_reset(store: MetricStore) -> None:
    # world 0, instance a: 0, 10, 20, 5, 15 at 0..40 s; the reset adds the 20 before it: 15 - 0 + 20 = 35.
    # The window [0, 40] has samples on both edges, so nothing is extrapolated.
    sel = '{instance="a", code="200"}'
    assert instant_query(f"increase(http_requests_total{sel}[40s])", store, T0 + 40).values[0, 0] == 35
    assert instant_query(f"rate(http_requests_total{sel}[40s])", store, T0 + 40).values[0, 0] == pytest.approx(35 / 40)


def test_rate_extrapolation_and_zero_point_clamp(store: MetricStore) -> None:
    # At 45 s over [1m]: window [-15, 45]. The end is 5 s away (< 1.1 * 10 s): extrapolate 5 s. The start is 15 s
    # away (> 11 s) which would add half an interval, but the counter's first value is 0, so the zero point
    # (0 s before the first sample) is the start: 40 + 0 + 5 = 45 s of 40 s sampled.
    sel = '{instance="a", code="200"}'
    assert instant_query(f"increase(http_requests_total{sel}[1m])", store, T0 + 45).values[0, 0] == 35 * 45 / 40
    # world 1, same series, 0..4: no clamp needed either way (first value 0): 4 * 45 / 40
    assert instant_query(f"increase(http_requests_total{sel}[1m])", store, T0 + 45).values[1, 0] == 4 * 45 / 40
    # instance b starts at 100 (zero point 400 s back, beyond the start): extrapolate half an interval, 5 s
    got = instant_query('increase(http_requests_total{instance="b"}[1m])', store, T0 + 45)
    assert got.values[0, 0] == pytest.approx(40 * 50 / 40)


def test_rate_needs_two_samples_and_drops_the_name(store: MetricStore) -> None:
    r = instant_query("rate(memory_bytes[10s])", store, T0 + 5)
    assert r.labels == []
    r = instant_query("rate(memory_bytes[15s])", store, T0 + 40)
    assert all("__name__" not in ls for ls in r.labels)


def test_irate_uses_the_last_two_samples(store: MetricStore) -> None:
    sel = '{instance="a", code="200"}'
    assert instant_query(f"irate(http_requests_total{sel}[1m])", store, T0 + 40).values[0, 0] == 10 / 10
    # at 30 s the last two samples are 20 then 5: a reset, so the rate is 5 / 10 s
    assert instant_query(f"irate(http_requests_total{sel}[1m])", store, T0 + 30).values[0, 0] == 0.5
    assert instant_query(f"idelta(http_requests_total{sel}[1m])", store, T0 + 30).values[0, 0] == -15


def test_over_time_functions(store: MetricStore) -> None:
    at = T0 + 40
    sel = 'memory_bytes{instance="a"}[20s]'                    # world 0: 52, 53, 54; world 1: 62, 63
    assert instant_query(f"avg_over_time({sel})", store, at).values[:, 0].tolist() == [53, 62.5]
    assert instant_query(f"sum_over_time({sel})", store, at).values[:, 0].tolist() == [159, 125]
    assert instant_query(f"count_over_time({sel})", store, at).values[:, 0].tolist() == [3, 2]
    assert instant_query(f"min_over_time({sel})", store, at).values[:, 0].tolist() == [52, 62]
    assert instant_query(f"max_over_time({sel})", store, at).values[:, 0].tolist() == [54, 63]
    assert instant_query(f"last_over_time({sel})", store, at).values[:, 0].tolist() == [54, 63]
    assert instant_query(f"stdvar_over_time({sel})", store, at).values[:, 0].tolist() == [2 / 3, 0.25]
    assert instant_query(f"quantile_over_time(0.25, {sel})", store, at).values[:, 0].tolist() == [52.5, 62.25]
    assert instant_query(f"last_over_time({sel})", store, at).labels[0]["__name__"] == "memory_bytes"


# ----------------------------------------------------------------------------------------- histogram_quantile
@pytest.mark.parametrize("q, expected", [(0.5, 0.3), (0.95, 0.9), (0.05, 0.02), (1.0, 1.0), (1.5, math.inf),
                                         (-1, -math.inf)])
def test_histogram_quantile_interpolates_within_buckets(store: MetricStore, q: float, expected: float) -> None:
    # buckets 0.1: 10, 0.5: 30, 1: 40, +Inf: 40. q=0.5: rank 20 falls in (0.1, 0.5]: 0.1 + 0.4 * (10 / 20).
    r = instant_query(f"histogram_quantile({q}, lat_bucket)", store, T0 + 40)
    assert r.labels == [{}]
    assert r.values[0, 0] == pytest.approx(expected)
    # world 1 lacks the +Inf bucket: Prometheus returns a NaN sample (q outside [0, 1] is checked first)
    assert r.present is not None and r.present[1, 0]
    assert r.values[1, 0] == expected if abs(expected) == math.inf else math.isnan(r.values[1, 0])


def test_histogram_quantile_fixes_non_monotonic_buckets() -> None:
    store = make_store({L("h", le="1"): [[10]], L("h", le="2"): [[8]], L("h", le="4"): [[20]],
                        L("h", le="+Inf"): [[20]]}, [0])
    # le=2 is raised to 10 (ensureMonotonic), so rank 15 (q=0.75) in (2, 4] gives 2 + 2 * (15 - 10) / (20 - 10);
    # unfixed it would be 2 + 2 * 7 / 12
    assert instant_query("histogram_quantile(0.75, h)", store, T0).values[0, 0] == 3.0
    assert instant_query("histogram_quantile(0.5, h)", store, T0).values[0, 0] == 1.0


# ----------------------------------------------------------------------------------------------- aggregation
def test_aggregations_by_and_without(store: MetricStore) -> None:
    at = T0 + 40
    assert as_dict(instant_query("sum by (instance) (http_requests_total)", store, at), 0) == {
        key(instance="a"): 20, key(instance="b"): 140}
    assert as_dict(instant_query("sum without (code, job) (http_requests_total)", store, at), 1) == {
        key(instance="a"): 4, key(instance="b"): 7}
    assert as_dict(instant_query("count by (code) (http_requests_total)", store, at), 1) == {key(code="200"): 2}
    assert as_dict(instant_query("avg(memory_bytes)", store, at), 0) == {(): 69}
    assert as_dict(instant_query("max(memory_bytes)", store, at), 1) == {(): 94}
    assert as_dict(instant_query("min by (instance) (memory_bytes)", store, at), 0)[key(instance="a")] == 54


def test_topk_and_bottomk_keep_series_labels(store: MetricStore) -> None:
    r = instant_query("topk(1, http_requests_total)", store, T0 + 40)
    assert as_dict(r, 0) == {key(__name__="http_requests_total", job="api", instance="b", code="200"): 140}
    r = instant_query("bottomk(1, memory_bytes) by (instance)", store, T0 + 40)
    assert len(as_dict(r, 0)) == 2 and r.labels[0]["__name__"] == "memory_bytes"


def test_quantile_and_stddev_aggregations(store: MetricStore) -> None:
    r = instant_query("quantile(0.5, memory_bytes)", store, T0 + 40)
    # world 0: 54 and 84 -> halfway; world 1: 63 (its 40 s sample is missing) and 94
    assert r.values[:, 0].tolist() == [69, 78.5]
    assert instant_query("stddev(memory_bytes)", store, T0 + 40).values[0, 0] == 15


# ----------------------------------------------------------------------------------------- binary operators
def test_comparison_filters_but_bool_returns_zero_or_one(store: MetricStore) -> None:
    at = T0 + 40
    filtered = instant_query("memory_bytes > 60", store, at)
    assert as_dict(filtered, 0) == {key(__name__="memory_bytes", instance="b"): 84}
    flags = instant_query("memory_bytes > bool 60", store, at)
    assert as_dict(flags, 0) == {key(instance="a"): 0, key(instance="b"): 1}
    # scalar on the left: the vector's value is kept
    assert as_dict(instant_query("60 < memory_bytes", store, at), 1) == {
        key(__name__="memory_bytes", instance="a"): 63, key(__name__="memory_bytes", instance="b"): 94}


def test_arithmetic_drops_the_name_and_matches_labels(store: MetricStore) -> None:
    r = instant_query('memory_bytes - on(instance) http_requests_total{code="200"}', store, T0 + 40)
    assert as_dict(r, 0) == {key(instance="a"): 54 - 15, key(instance="b"): 84 - 140}
    assert as_dict(instant_query("-memory_bytes", store, T0 + 40), 0)[key(instance="a")] == -54


def test_group_left_copies_labels_from_the_one_side(store: MetricStore) -> None:
    r = instant_query("http_requests_total * on(instance) group_left(node) node_info", store, T0 + 40)
    assert as_dict(r, 0) == {
        key(job="api", instance="a", code="200", node="n1"): 15,
        key(job="api", instance="b", code="200", node="n2"): 140,
        key(job="api", instance="a", code="500", node="n1"): 5,
    }
    r = instant_query("node_info * on(instance) group_right(node) http_requests_total", store, T0 + 40)
    assert as_dict(r, 1) == {key(job="api", instance="a", code="200", node="n1"): 4,
                             key(job="api", instance="b", code="200", node="n2"): 7}


def test_set_operators(store: MetricStore) -> None:
    at = T0 + 40
    both = instant_query('memory_bytes and on(instance) http_requests_total{code="500"}', store, at)
    assert as_dict(both, 0) == {key(__name__="memory_bytes", instance="a"): 54}
    assert as_dict(both, 1) == {}                        # no 500 series in world 1
    rest = instant_query('memory_bytes unless on(instance) http_requests_total{code="500"}', store, at)
    assert set(as_dict(rest, 1)) == {key(__name__="memory_bytes", instance="a"),
                                     key(__name__="memory_bytes", instance="b")}
    either = instant_query('http_requests_total{code="500"} or on(instance) memory_bytes', store, at)
    assert set(as_dict(either, 0)) == {key(__name__="http_requests_total", job="api", instance="a", code="500"),
                                       key(__name__="memory_bytes", instance="b")}


def test_scalar_arithmetic_and_functions(store: MetricStore) -> None:
    at = T0 + 40
    assert instant_query("2 ^ 3 + 10 % 3", store, at).values.tolist() == [9, 9]
    assert instant_query("time()", store, at).values.tolist() == [at, at]
    assert instant_query('scalar(memory_bytes{instance="b"})', store, at).values.tolist() == [84, 94]
    assert np.isnan(instant_query("scalar(memory_bytes)", store, at).values).all()       # two series
    v = instant_query("vector(3) * 2", store, at)
    assert isinstance(v, Vector) and v.labels == [{}] and v.values.tolist() == [[6], [6]]
    assert instant_query("clamp(memory_bytes, 55, 90)", store, at).values[0].tolist() == [55, 84]
    assert instant_query("clamp_max(memory_bytes, 60)", store, at).values[1].tolist() == [60, 60]
    assert instant_query("round(memory_bytes / 7, 0.5)", store, at).values[0].tolist() == [7.5, 12.0]
    assert instant_query("abs(-memory_bytes)", store, at).values[0].tolist() == [54, 84]


def test_absent(store: MetricStore) -> None:
    at = T0 + 40
    r = instant_query('absent(nothing{job="x", instance=~"a"})', store, at)
    assert r.labels == [{"job": "x"}] and r.values.tolist() == [[1], [1]]
    assert instant_query("absent(memory_bytes)", store, at).labels == []
    # a label matched twice, or by a regex, is left out
    assert instant_query('absent(nothing{job="x", job!="y", zone="z"})', store, at).labels == [{"zone": "z"}]
    r = instant_query('absent(http_requests_total{code="500"})', store, at)
    assert as_dict(r, 0) == {} and as_dict(r, 1) == {key(code="500"): 1}


# --------------------------------------------------------------------------------------------- range query
def test_range_query_steps_and_series(store: MetricStore) -> None:
    m = range_query('memory_bytes{instance="a"}', store, T0, T0 + 40, 15)
    assert isinstance(m, Matrix)
    assert m.times.tolist() == [T0, T0 + 15, T0 + 30]
    assert m.values[:, 0, 0].tolist() == [50, 51, 53]
    assert m.values[:, 1, 0].tolist() == [60, 61, 63]
    s = range_query("time()", store, T0, T0 + 20, 10)
    assert s.labels == [{}] and s.values[:, 0, 0].tolist() == [T0, T0 + 10, T0 + 20]


def test_range_query_matches_instant_queries(store: MetricStore) -> None:
    q = "sum by (instance) (rate(http_requests_total[30s])) > bool 0.5"
    m = range_query(q, store, T0 + 10, T0 + 40, 10)
    for k, t in enumerate(m.times):
        inst = instant_query(q, store, t)
        assert isinstance(inst, Vector)
        for w in range(2):
            got = {tuple(sorted(ls.items())): float(m.values[k, w, i]) for i, ls in enumerate(m.labels)
                   if not np.isnan(m.values[k, w, i])}
            assert got == as_dict(inst, w)


# --------------------------------------------------------------------------------------------------- errors
def test_parse_error_is_one_line() -> None:
    with pytest.raises(PromQLError, match="^parse error") as info:
        parse("sum(rate(x[5m])")
    assert "\n" not in str(info.value)


def test_unsupported_function_is_named(store: MetricStore) -> None:
    with pytest.raises(PromQLError, match=r"unsupported function 'predict_linear' \(supported: rate, irate"):
        instant_query("predict_linear(memory_bytes[5m], 60)", store, T0)


@pytest.mark.parametrize("query, message", [
    ("memory_bytes[1m]", "range vector"),
    ("memory_bytes[1m:10s]", "subquer"),
    ("memory_bytes @ 100", "'@'"),
    ('count_values("v", memory_bytes)', "unsupported aggregation 'count_values'"),
    ("label_replace(memory_bytes, \"a\", \"b\", \"c\", \"d\")", "unsupported function 'label_replace'"),
])
def test_unsupported_parts_raise(store: MetricStore, query: str, message: str) -> None:
    with pytest.raises(PromQLError, match=message):
        instant_query(query, store, T0 + 40)


def test_many_to_many_matching_raises(store: MetricStore) -> None:
    with pytest.raises(PromQLError, match="many-to-many matching not allowed"):
        instant_query("memory_bytes * on(job) http_requests_total", store, T0 + 40)
    with pytest.raises(PromQLError, match="many-to-one matching must be explicit"):
        instant_query("http_requests_total * on(instance) node_info", store, T0 + 40)


def test_results_are_scalars_or_vectors(store: MetricStore) -> None:
    assert isinstance(instant_query("1", store, T0), Scalar)
    assert isinstance(instant_query("memory_bytes", store, T0), Vector)


# ----------------------------------------------------------------------------------------- OpenMetrics export
def test_openmetrics_export_of_one_world() -> None:
    labels = [{"__name__": "req_total", "code": "200"}, {"__name__": "temp", "room": 'a"b'},
              {"__name__": "lat_bucket", "le": "+Inf"}, {"__name__": "orphan"}]
    store = MetricStore(labels, [Family("req", "counter", "Requests."), Family("temp", "gauge", "Line\nbreak"),
                                 Family("lat", "histogram", "")], worlds=2)
    store.append(T0 + 0.25, np.array([[1.0, 0.1 + 0.2, 3.0, 4.0], [9.0, 9.0, 9.0, 9.0]]))
    store.append(T0 + 10, np.array([[2.0, np.nan, np.inf, 5.0], [9.0, 9.0, 9.0, 9.0]]))
    out = io.StringIO()
    write_openmetrics(store, 0, out)
    assert out.getvalue().splitlines() == [
        "# TYPE req counter", "# HELP req Requests.",
        'req_total{code="200"} 1.0 1000.250', 'req_total{code="200"} 2.0 1010.000',
        "# TYPE temp gauge", "# HELP temp Line\\nbreak",
        'temp{room="a\\"b"} 0.30000000000000004 1000.250',
        "# TYPE lat histogram",
        'lat_bucket{le="+Inf"} 3.0 1000.250', 'lat_bucket{le="+Inf"} +Inf 1010.000',
        "# TYPE orphan unknown", "orphan 4.0 1000.250", "orphan 5.0 1010.000",
        "# EOF",
    ]
