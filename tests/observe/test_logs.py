"""The log sensor: lines derived lazily from the truth and the system's state, deterministic per world, printing what
the real causes print, queried with LogQL; and, with the trace sensor, naming nothing of the fault machinery."""

from __future__ import annotations

import functools
import json
import re

import pytest

from opsworld.engine import Engine
from opsworld.faults.catalogue import CATALOGUE, FAULT_TYPES, entry
from opsworld.faults.injector import Injector
from opsworld.observe.imperfection import Imperfections
from opsworld.observe.logs import LEVELS, LogLine, LogQueryError, parse_logql, query_logs
from opsworld.observe.recording import Recording, new_recording
from opsworld.observe.traces import query_traces

ONSET = 600.0          # the catalogue examples' faults start 10 minutes in


def build(name: str, ticks: int, worlds: int = 1, seed: int = 0, **params) -> Recording:
    """A recording of a catalogue example (its main fault made with `params` over the presets)."""
    e = entry(name)
    faults = e.example_faults()
    if params:
        faults[0] = e.make(target=e.example.target, **{**e.example.params, **params})
    engine = Engine(e.example.scenario(), worlds=worlds, seed=seed)
    injector = Injector(engine, faults)
    rec = new_recording(engine)
    for _ in range(ticks):
        rec.record(engine, injector.step())
    return rec


@functools.lru_cache(maxsize=None)
def recorded(name: str, ticks: int, worlds: int = 1, seed: int = 0, params: tuple = ()) -> Recording:
    return build(name, ticks, worlds, seed, **dict(params))


def texts(lines: list[LogLine]) -> list[str]:
    return [str(line) for line in lines]


# ---- determinism -----------------------------------------------------------------------------------------------------

def test_same_seed_same_lines_whatever_was_queried_before() -> None:
    a, b = build("dns_failure", 70, worlds=2), build("dns_failure", 70, worlds=2)
    query_logs(b, 0, query='{level="ERROR"}', limit=50)            # another query first must change nothing
    query_logs(b, 0, service="frontend", limit=10)
    first, second = query_logs(a, 0, limit=400), query_logs(b, 0, limit=400)
    assert len(first) == 400 and texts(first) == texts(second)
    assert texts(query_logs(a, 1, limit=400)) != texts(first)      # another world, other lines
    window = query_logs(a, 0, start=a.start + 300, end=a.start + 400, limit=10_000)
    assert set(texts(window)) <= set(texts(query_logs(b, 0, limit=10_000)))


def test_lines_are_newest_first_or_oldest_first_and_well_formed() -> None:
    rec = recorded("dns_failure", 70)
    newest = query_logs(rec, 0, limit=300)
    oldest = query_logs(rec, 0, limit=300, direction="forward")
    assert [x.time for x in newest] == sorted((x.time for x in newest), reverse=True)
    assert [x.time for x in oldest] == sorted(x.time for x in oldest)
    assert oldest[0].time < newest[-1].time
    for line in newest:
        assert line.level in LEVELS and line.pod.startswith(line.service + "-")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARN|ERROR) \S+ .+",
                            str(line).split("\n")[0])
        assert rec.start <= line.time <= rec.start + rec.ticks * rec.dt
    levels = {line.level for line in query_logs(rec, 0, limit=5000)}
    assert levels == set(LEVELS)


# ---- what the causes print -------------------------------------------------------------------------------------------

def _first_time(lines: list[LogLine], text: str) -> float | None:
    times = [line.time for line in lines if text in line.message]
    return min(times) if times else None


def test_dns_failure_prints_no_such_host_in_the_callers_logs_after_onset_only() -> None:
    rec = recorded("dns_failure", 80)
    lines = query_logs(rec, 0, service="checkoutservice", limit=10_000)
    first = _first_time(lines, "no such host")
    assert first is not None and first >= rec.start + ONSET
    assert any("lookup shippingservice on 10.96.0.10:53: no such host" in x.message for x in lines)
    # the callee never saw the calls: nothing about it in its own logs
    assert not query_logs(rec, 0, service="shippingservice", query='|= "no such host"')


def test_misconfigured_address_prints_connection_refused_with_the_callees_address() -> None:
    rec = recorded("misconfigured_address", 70)
    ip = rec.names.service_ip(rec.topology.index("redis-cart"))
    lines = query_logs(rec, 0, query='{service="cartservice", level="error"} |= "connection refused"', limit=50)
    assert lines and all(f"dial tcp {ip}:6379: connect: connection refused" in x.message for x in lines)
    assert all(x.time >= rec.start + ONSET for x in lines)


def test_expired_certificate_prints_x509_at_the_callers() -> None:
    rec = recorded("certificate_expiry", 100)       # traffic starts 01:45, the certificate expires at 02:00
    lines = query_logs(rec, 0, query='|= "x509: certificate has expired or is not yet valid"', limit=50)
    assert lines and {x.service for x in lines} <= {"frontend", "checkoutservice"}
    assert all(re.search(r"current time 2026-11-25T02:\d\d:\d\dZ is after 2026-11-25T02:00:00Z", x.message)
               for x in lines)
    handshakes = query_logs(rec, 0, service="cartservice", query='|= "TLS handshake error"', limit=5)
    assert handshakes


def test_memory_leak_ends_in_oom_kills_and_back_off() -> None:
    rec = recorded("memory_creep", 110, params=(("page_after", "5m"),))
    lines = query_logs(rec, 0, service="productcatalogservice", limit=10_000)
    killed = [x for x in lines if "OOMKilled" in x.message]
    assert killed and all("exitCode=137" in x.message for x in killed)
    assert any("Memory cgroup out of memory: Killed process" in x.message for x in lines)
    assert min(x.time for x in killed) > rec.start + ONSET


def test_fd_exhaustion_prints_too_many_open_files() -> None:
    rec = recorded("fd_exhaustion", 90, params=(("ramp", "3m"),))
    lines = query_logs(rec, 0, query='{service="shippingservice"} |= "too many open files"', limit=20)
    assert lines and all(x.level == "ERROR" for x in lines)
    assert min(x.time for x in lines) >= rec.start + ONSET


def test_bad_deploy_errors_print_stack_traces() -> None:
    rec = recorded("bad_deploy_errors", 70)
    lines = query_logs(rec, 0, query='{service="cartservice", level="ERROR"}', limit=50)
    traces = [x for x in lines if "\n   at " in x.message]            # .NET stack frames
    assert traces and all(re.search(r"System\.\w+Exception: ", x.message) for x in traces)
    before = query_logs(rec, 0, query='{service="cartservice"} |= "   at "', end=rec.start + ONSET - 60)
    assert not before


def test_queue_consumer_stall_shows_failing_readiness_probes() -> None:
    rec = recorded("queue_consumer_stall", 70)
    lines = query_logs(rec, 0, query='{service="write-home-timeline-service"} |= "Readiness probe failed"')
    assert lines and all("context deadline exceeded" in x.message for x in lines)


def test_wrong_answers_are_caught_now_and_then_by_the_callers_validation() -> None:
    rec = recorded("corrupt_responses", 70)
    lines = query_logs(rec, 0, query='{level="WARN"} |= "invalid response from productcatalogservice"', limit=100)
    assert lines and {x.service for x in lines} <= {"frontend", "recommendationservice", "checkoutservice"}
    assert min(x.time for x in lines) >= rec.start + ONSET


def test_controls_print_no_cause_lines() -> None:
    rec = recorded("no_fault", 70)
    bad = query_logs(rec, 0, query='|~ "no such host|connection refused|x509|OOMKilled|too many open files|invalid '
                                   'response"')
    assert bad == []


# ---- LogQL -----------------------------------------------------------------------------------------------------------

def test_selectors_and_line_filters() -> None:
    rec = recorded("dns_failure", 70)
    everything = query_logs(rec, 0, limit=100_000)
    cart = query_logs(rec, 0, query='{service="cartservice"}', limit=100_000)
    assert cart and {x.service for x in cart} == {"cartservice"}
    assert len(cart) == sum(x.service == "cartservice" for x in everything)
    not_cart = query_logs(rec, 0, query='{service!="cartservice"}', limit=100_000)
    assert len(cart) + len(not_cart) == len(everything)
    regex = query_logs(rec, 0, query='{service=~"cart.*|frontend", level=~"warn|error"}', limit=100_000)
    assert {x.service for x in regex} == {"cartservice", "frontend"} and {x.level for x in regex} <= {"WARN", "ERROR"}
    assert query_logs(rec, 0, query='{level="error"}', limit=100_000) == \
        query_logs(rec, 0, query='{level="ERROR"}', limit=100_000) == query_logs(rec, 0, level="error", limit=100_000)
    no_debug = query_logs(rec, 0, query='{level!~"DEBUG|INFO"}', limit=100_000)
    assert {x.level for x in no_debug} <= {"WARN", "ERROR"}
    pods = query_logs(rec, 0, query='{pod="frontend-1"}', limit=100_000)
    assert pods and {x.pod for x in pods} == {"frontend-1"}
    hosts = query_logs(rec, 0, query='{service="checkoutservice"} |= "lookup" != "GetQuote" |~ "no such h.st"'
                                     ' !~ "^retrying"', limit=100_000)
    assert hosts and all("no such host" in x.message and "GetQuote" not in x.message for x in hosts)
    assert query_logs(rec, 0, query='{service="nonexistent"}') == []
    assert len(query_logs(rec, 0, limit=7)) == 7
    assert query_logs(rec, 0, query='{service="cartservice"} |= `Checking CartService Health`', limit=100_000)


@pytest.mark.parametrize("query, bad", [
    ('service="x"', "'{'"),
    ('{service="x"', "',' or '}'"),
    ('{service=="x"}', "quoted string"),
    ('{service~"x"}', "after label 'service'"),
    ('{="x"}', "label name"),
    ('{service="x} |= "a"', "',' or '}'"),
    ('{service="x"} | json', "line filter"),
    ('{service="x"} |= ', "quoted string"),
    ('{service=~"("}', "invalid regular expression"),
    ('{service="x"} |= "unterminated', "unterminated string"),
])
def test_malformed_queries_raise_a_clear_one_line_error(query: str, bad: str) -> None:
    rec = recorded("no_fault", 10)
    with pytest.raises(LogQueryError) as info:
        query_logs(rec, 0, query=query)
    message = str(info.value)
    assert bad in message and "\n" not in message
    assert isinstance(info.value, ValueError)


def test_parse_keeps_the_parts() -> None:
    q = parse_logql('{service=~"a|b", level!="DEBUG"} |= "x" !~ "y+"')
    assert [(m.label, m.op, m.value) for m in q.matchers] == [("service", "=~", "a|b"), ("level", "!=", "DEBUG")]
    assert [(f.op, f.value) for f in q.filters] == [("|=", "x"), ("!~", "y+")]


# ---- imperfections ---------------------------------------------------------------------------------------------------

def test_imperfections_drop_sample_skew_and_delay() -> None:
    rec = recorded("dns_failure", 70)
    full = query_logs(rec, 0, limit=100_000)
    dropped = query_logs(rec, 0, limit=100_000, imperfections=Imperfections(log_drop=0.5))
    assert 0.4 * len(full) < len(dropped) < 0.6 * len(full)
    assert set(texts(dropped)) <= set(texts(full))
    sampled = query_logs(rec, 0, limit=100_000, imperfections=Imperfections(log_sample=0.2))
    count = lambda lines, lv: sum(x.level in lv for x in lines)      # noqa: E731
    assert count(sampled, ("WARN", "ERROR")) == count(full, ("WARN", "ERROR"))
    assert count(sampled, ("INFO", "DEBUG")) < 0.3 * count(full, ("INFO", "DEBUG"))
    skewed = query_logs(rec, 0, limit=100_000, imperfections=Imperfections(clock_skew=5.0))
    offsets = {}
    for service in {x.service for x in full}:     # the same lines, each service's shifted by one fixed offset
        mine = [x for x in full if x.service == service]
        shifted = [x for x in skewed if x.service == service]
        assert [x.message for x in reversed(mine)] == [x.message for x in reversed(shifted)]
        offsets[service] = {round(b.time - a.time, 3) for a, b in zip(mine, shifted)}
    assert all(len(o) == 1 and abs(next(iter(o))) <= 5.0 for o in offsets.values())
    assert len({next(iter(o)) for o in offsets.values()}) > 1
    delayed = query_logs(rec, 0, limit=100_000, imperfections=Imperfections(ingestion_delay=120.0))
    end = rec.start + rec.ticks * rec.dt
    assert max(x.time for x in delayed) <= end - 120.0 < max(x.time for x in full)


def test_query_over_an_hour(benchmark) -> None:
    """Timed with `pytest --benchmark-enable` (about 0.1-0.2 s on a 2-core machine); asserts only the answer."""
    rec = recorded("dns_failure", 360)
    found = benchmark(lambda: query_logs(rec, 0, query='{level="ERROR"} |= "nothing prints this"'))  # the whole hour
    assert found == [] and len(query_logs(rec, 0, limit=500)) == 500


# ---- no seams: nothing names the machinery ---------------------------------------------------------------------------

# Whole words, any case: every catalogue entry name, fault kind and fault class name, and any word that begins with
# fault, inject or chaos ("default" is not one; "faulty" is). Kubernetes' `CrashLoopBackOff` is not the class name
# `CrashLoop` (a longer word).
_NAMES = sorted({*CATALOGUE, *(t.kind for t in FAULT_TYPES), *(t.__name__ for t in FAULT_TYPES)}, key=len,
                reverse=True)
SEAM = re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(map(re.escape, _NAMES)) + r")(?![A-Za-z0-9_])"
                  r"|(?<![A-Za-z0-9_])(?:fault|inject|chaos)\w*", re.IGNORECASE)


def seams(text: str) -> set[str]:
    return {m.group(0) for m in SEAM.finditer(text)}


def test_seam_rule_catches_names_and_spares_common_words() -> None:
    assert seams("dns_failure in frontend; an injected Deadlock; faults; chaos-monkey") == \
        {"dns_failure", "injected", "Deadlock", "faults", "chaos"}
    assert not seams("default CrashLoopBackOff pagefaults_total")


WATCH_AFTER = 300.0     # seconds of each example watched after its onset


def test_no_text_names_a_fault_a_catalogue_entry_or_the_machinery() -> None:
    found = {}
    for name, e in CATALOGUE.items():
        faults = e.example_faults()
        engine = Engine(e.example.scenario(), worlds=1, seed=1)
        onset = faults[0].onset_seconds(engine.scenario)
        injector = Injector(engine, faults)
        rec = new_recording(engine)
        for _ in range(int((onset + WATCH_AFTER) // engine.dt)):
            rec.record(engine, injector.step())
        lo = rec.start + onset - 60.0
        blob = [str(x) for x in query_logs(rec, 0, start=lo, limit=3000)]
        for trace in query_traces(rec, 0, start=lo, limit=15) + query_traces(rec, 0, start=lo, error=True, limit=15):
            blob.append(trace.render())
            blob += [json.dumps([s.service, s.operation, s.status_message, s.attributes, s.events], default=str)
                     for s in trace.spans]
        hits = seams("\n".join(blob))
        if hits:
            found[name] = hits
    assert found == {}
