"""The trace sensor: sampled traces that follow the call graph, draw their timing and failures from the truth of
their tick, tell the span where an error begins from those that pass it on, and are the same for the same world."""

from __future__ import annotations

import functools

import numpy as np

from opsworld.engine import Engine
from opsworld.engine.topology import CONSUME, MISS
from opsworld.faults.catalogue import entry
from opsworld.faults.injector import Injector
from opsworld.observe.imperfection import Imperfections
from opsworld.observe.recording import Recording, new_recording
from opsworld.observe.traces import DOWNSTREAM, Span, Trace, query_traces

ONSET = 600.0


@functools.lru_cache(maxsize=None)
def recorded(name: str, ticks: int, worlds: int = 1, seed: int = 0, extra: tuple = ()) -> Recording:
    """A recording of a catalogue example, with extra faults given as (entry name, parameters) pairs."""
    e = entry(name)
    faults = e.example_faults() + [entry(n).make(**dict(p)) for n, p in extra]
    engine = Engine(e.example.scenario(), worlds=worlds, seed=seed)
    injector = Injector(engine, faults)
    rec = new_recording(engine)
    for _ in range(ticks):
        rec.record(engine, injector.step())
    return rec


def fingerprint(traces: list[Trace]) -> list:
    return [(t.trace_id, [(s.span_id, s.parent_id, s.service, s.operation, round(s.start, 9), round(s.duration, 9),
                           s.status, s.status_message, s.attributes, s.events) for s in t.spans]) for t in traces]


def origins(trace: Trace) -> list[Span]:
    return [s for s in trace.spans if any(ev["name"] == "exception" for ev in s.events)]


# ---- determinism -----------------------------------------------------------------------------------------------------

def test_same_seed_same_traces_other_world_other_traces() -> None:
    a = recorded("bad_deploy_errors", 66, worlds=2)
    b = recorded.__wrapped__("bad_deploy_errors", 66, worlds=2)         # built again, not from the cache
    query_traces(b, 0, error=True, limit=3)                              # an earlier query changes nothing
    first, second = query_traces(a, 0, limit=40), query_traces(b, 0, limit=40)
    assert len(first) == 40 and fingerprint(first) == fingerprint(second)
    failed = [fingerprint(query_traces(rec, 0, error=True, limit=10)) for rec in (a, b)]
    assert failed[0] == failed[1]
    other = query_traces(a, 1, limit=40)
    assert {t.trace_id for t in other}.isdisjoint({t.trace_id for t in first})


def test_traces_are_newest_first_with_well_formed_ids() -> None:
    rec = recorded("bad_deploy_errors", 66)
    traces = query_traces(rec, 0, limit=60)
    starts = [t.root.start for t in traces]
    assert starts == sorted(starts, reverse=True)
    for t in traces:
        assert len(t.trace_id) == 32 and int(t.trace_id, 16) >= 0
        ids = {s.span_id for s in t.spans}
        assert len(ids) == len(t.spans) and all(len(i) == 16 for i in ids)
        assert all(s.trace_id == t.trace_id for s in t.spans)
        assert [s for s in t.spans if s.parent_id is None] == [t.root]
        assert all(s.parent_id in ids for s in t.spans if s.parent_id is not None)
        assert t.root.kind == "SERVER" and t.root.operation in rec.topology.endpoints
        assert t.duration == t.root.duration > 0
        text = t.render()
        assert t.trace_id in text and len(text.splitlines()) == len(t.spans) + 1


# ---- the call graph --------------------------------------------------------------------------------------------------

def _pairs(rec: Recording, kinds: tuple[int, ...]) -> set[tuple[str, str]]:
    topo = rec.topology
    return {(topo.components[int(a)], topo.components[int(b)])
            for a, b, k in zip(topo.edge_src, topo.edge_dst, topo.edge_kind) if k in kinds}


def test_spans_follow_the_topologys_edges() -> None:
    for name in ("bad_deploy_errors", "cache_hit_ratio_drop", "kv_cache_exhaustion"):
        rec = recorded(name, 66)
        topo = rec.topology
        calls = _pairs(rec, (0, 1))                                       # CALL, PUBLISH
        consumed = _pairs(rec, (CONSUME,))
        misses = _pairs(rec, (MISS,))
        cache_aside = {(caller, store) for caller, cache in calls for c2, store in misses if c2 == cache}
        seen_kinds = set()
        for t in query_traces(rec, 0, limit=200, imperfections=Imperfections(trace_sample=0.5)):
            by_id = {s.span_id: s for s in t.spans}
            assert t.root.service == topo.components[int(topo.endpoint_component[topo.endpoints.index(
                t.root.operation)])]
            for s in t.spans:
                seen_kinds.add(s.kind)
                parent = by_id.get(s.parent_id)
                if s.kind in ("CLIENT", "PRODUCER"):
                    pair = (s.service, s.attributes["peer.service"])
                    assert pair in calls or pair in cache_aside, (name, pair)
                    assert parent is not None and parent.kind in ("SERVER", "CONSUMER") and \
                        parent.service == s.service
                    assert parent.start <= s.start and s.end <= parent.end + 1e-9 or s.kind == "PRODUCER"
                elif s.kind == "SERVER" and parent is not None:
                    assert parent.kind == "CLIENT" and parent.attributes["peer.service"] == s.service
                    assert parent.start <= s.start
                elif s.kind == "CONSUMER":
                    queue = parent.attributes["peer.service"]
                    assert parent.kind == "PRODUCER" and (queue, s.service) in consumed
                    assert s.start >= parent.end
        assert {"SERVER", "CLIENT"} <= seen_kinds, name


def test_otel_attributes() -> None:
    rec = recorded("cache_hit_ratio_drop", 66)
    spans = [s for t in query_traces(rec, 0, limit=100) for s in t.spans]
    roots = [s for s in spans if s.parent_id is None]
    assert all({"http.request.method", "http.route", "http.response.status_code"} <= set(s.attributes)
               for s in roots)
    rpc = [s for s in spans if "rpc.system" in s.attributes]
    assert rpc and all(s.attributes["rpc.system"] == "apache_thrift" and s.attributes["rpc.method"] for s in rpc)
    db = [s for s in spans if "db.system" in s.attributes]
    assert {s.attributes["db.system"] for s in db} >= {"memcached", "mongodb", "redis"}
    assert all(s.kind == "CLIENT" and s.attributes["server.address"] for s in db)
    queues = [s for s in spans if "messaging.system" in s.attributes]
    assert {s.attributes["messaging.operation.type"] for s in queues} == {"send", "process"}


# ---- where an error begins -------------------------------------------------------------------------------------------

def test_a_name_that_does_not_resolve_is_the_origin_on_the_callers_client_span() -> None:
    # one attempt per call on the broken edge, so that a failed checkout has exactly one origin
    once = (("retries_without_backoff", (("target", "shippingservice"), ("caller", "checkoutservice"),
                                         ("retries", 0), ("onset", "1m"))),)
    rec = recorded("dns_failure", 66, extra=once)
    failed = query_traces(rec, 0, operation="POST /cart/checkout", error=True, limit=20)
    assert failed
    for t in failed:
        (origin,) = origins(t)
        assert origin.kind == "CLIENT" and origin.service == "checkoutservice"
        assert origin.attributes["peer.service"] == "shippingservice"
        assert "lookup shippingservice on 10.96.0.10:53: no such host" in origin.status_message
        (event,) = origin.events
        assert event["attributes"]["exception.message"] == origin.status_message
        assert event["attributes"]["exception.type"]
        by_id = {s.span_id: s for s in t.spans}
        chain, span = [], by_id.get(origin.parent_id)
        while span is not None:
            chain.append(span)
            span = by_id.get(span.parent_id)
        assert [s.service for s in chain] == ["checkoutservice", "frontend", "frontend"]
        assert all(s.is_error and s.status_message == DOWNSTREAM and not s.events for s in chain)
        assert {s.span_id for s in t.spans if s.is_error} == {origin.span_id} | {s.span_id for s in chain}
        assert t.root.attributes["http.response.status_code"] == 500
    before = query_traces(rec, 0, end=rec.start + ONSET - 30, error=True, limit=5)
    assert not any("no such host" in s.status_message for t in before for s in t.spans)


def test_errors_propagate_from_origins_with_exception_events_only() -> None:
    rec = recorded("service_partition", 66)
    failed = query_traces(rec, 0, error=True, limit=40, start=rec.start + ONSET)
    assert failed
    edge_origins = 0
    for t in failed:
        kids: dict[str, list[Span]] = {}
        for s in t.spans:
            kids.setdefault(s.parent_id, []).append(s)
        for s in t.spans:
            if not s.is_error:
                assert not s.events
            elif s.events:                                  # an origin: its own message and an exception event
                assert s.status_message != DOWNSTREAM and s.attributes["error.type"]
                edge_origins += (s.service, s.attributes.get("peer.service")) == \
                    ("recommendationservice", "productcatalogservice")
            else:                                           # passing it on: some child failed
                assert s.status_message == DOWNSTREAM
                assert any(c.is_error for c in kids.get(s.span_id, []))
        assert origins(t)
    assert edge_origins
    # the partition drops packets: the caller's connection attempts time out
    messages = {s.status_message for t in failed for s in origins(t)
                if s.attributes.get("peer.service") == "productcatalogservice"}
    assert any("i/o timeout" in m for m in messages)


def test_own_errors_begin_on_the_server_span_with_the_runtimes_exception() -> None:
    rec = recorded("bad_deploy_errors", 70)
    failed = query_traces(rec, 0, service="cartservice", error=True, limit=30, start=rec.start + ONSET + 60)
    servers = [s for t in failed for s in origins(t) if s.kind == "SERVER" and s.service == "cartservice"]
    assert servers
    for s in servers:
        attrs = s.events[0]["attributes"]
        assert attrs["exception.type"].startswith("System.") and "\n   at " in attrs["exception.stacktrace"]
        assert s.attributes["rpc.grpc.status_code"] == 2


# ---- filters and sampling --------------------------------------------------------------------------------------------

def test_filters() -> None:
    rec = recorded("bad_deploy_latency", 70)
    slow = query_traces(rec, 0, min_duration=0.3, limit=30)
    assert slow and all(t.duration >= 0.3 for t in slow)
    failed = query_traces(rec, 0, error=True, limit=30)
    assert failed and all(t.has_error for t in failed)
    fine = query_traces(rec, 0, error=False, limit=30)
    assert fine and not any(t.has_error for t in fine)
    assert any(s.service == "emailservice" for t in query_traces(rec, 0, service="emailservice", limit=5)
               for s in t.spans)
    shipping = query_traces(rec, 0, service="shippingservice", limit=30)
    assert shipping and all(any(s.service == "shippingservice" for s in t.spans) for t in shipping)
    ops = query_traces(rec, 0, operation="hipstershop.CartService/EmptyCart", limit=10)
    assert ops and all(any(s.operation == "hipstershop.CartService/EmptyCart" for s in t.spans) for t in ops)
    lo, hi = rec.start + 300.0, rec.start + 360.0
    window = query_traces(rec, 0, start=lo, end=hi, limit=1000)
    assert window and all(lo <= t.root.start <= hi for t in window)
    assert query_traces(rec, 0, service="no-such-service") == []
    assert len(query_traces(rec, 0, limit=3)) == 3


def test_head_sampling_rate_sets_how_many_requests_are_traced() -> None:
    rec = recorded("bad_deploy_latency", 70)
    lo, hi = rec.start + 200.0, rec.start + 260.0
    counts = [len(query_traces(rec, 0, start=lo, end=hi, limit=100_000, imperfections=Imperfections(trace_sample=r)))
              for r in (0.02, 0.1, 0.5)]
    requests = rec.trajectory().requests[20:26, 0].sum()
    assert counts[0] < counts[1] < counts[2]
    assert abs(counts[1] / requests - 0.1) < 0.02 and abs(counts[2] / requests - 0.5) < 0.05
    few = {t.trace_id for t in query_traces(rec, 0, start=lo, end=hi, limit=100_000,
                                            imperfections=Imperfections(trace_sample=0.1))}
    many = {t.trace_id for t in query_traces(rec, 0, start=lo, end=hi, limit=100_000,
                                             imperfections=Imperfections(trace_sample=0.5))}
    assert few <= many                                   # a request kept at 10% is kept at 50% too


def test_error_share_and_latency_follow_the_truth() -> None:
    rec = recorded("bad_deploy_errors", 70)
    traces = query_traces(rec, 0, operation="GET /cart", start=rec.start + 600.0, limit=100_000,
                          imperfections=Imperfections(trace_sample=0.5))
    truth = rec.trajectory()
    ep = rec.topology.endpoints.index("GET /cart")
    mine = [t for t in traces if t.root.operation == "GET /cart"]
    share = np.mean([t.root.is_error for t in mine])
    expected = truth.failed[60:, 0, ep].sum() / truth.requests[60:, 0, ep].sum()
    assert len(mine) > 500 and abs(share - expected) < 0.05
    ok = [t.duration for t in mine if not t.root.is_error]     # requests that succeed, retries and all
    assert abs(np.mean(ok) / np.average(truth.latency_mean[60:, 0, ep], weights=truth.requests[60:, 0, ep]) - 1) < 0.15


def test_search_over_an_hour(benchmark) -> None:
    """Timed with `pytest --benchmark-enable` (about 0.35 s on a 2-core machine); asserts only the answer."""
    rec = recorded("no_fault", 360)
    assert benchmark(lambda: query_traces(rec, 0, error=True, limit=20)) == []   # the whole hour is searched
    assert len(query_traces(rec, 0, limit=20)) == 20
