"""A scenario from recorded spans: what traces measure, written down, and what they cannot show, assumed and said.

Measured (per the recording): the services (pods folded to their deployment) and their replicas; the entry endpoints
(root operations; a catch-all route such as `/*` named by the first operation it calls); the request rate and each
endpoint's share; the call graph, per endpoint at the entry service and per service below it, with the mean calls
per request; each service's own time per request (its spans' duration outside the calls it waits on: the union of
its children's intervals is taken out, so parallel calls count once) as a mean and a coefficient of variation;
calls made in parallel; retries (a failed call repeated under the same parent); error ratios where the format
records errors. Assumed (traces do not show them): concurrency, CPU and memory limits, nodes and zones, timeouts and
objectives (from the observed latency), and the kind of each component (every component is a service: datastores,
caches and queues are rarely traced from their own side). The YAML says which is which in comments.

    spans = read_spans("traces/")
    model = build(spans, name="my-system")
    text = model.yaml()                       # a scenario file, with comments
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass, field

import numpy as np

from opsworld.spec.traces.spans import Spans

CATCH_ALL = re.compile(r"\*")                        # a route template that names no page: `/*`, `/**`
SQL = re.compile(r"^(SELECT|INSERT|UPDATE|DELETE|REPLACE|UPSERT|MERGE|CALL)\s+(?:INTO\s+|FROM\s+)?([\w$.]+)?",
                 re.IGNORECASE)         # a database client's span: `SELECT ts.orders`, `INSERT shop`
HTTP_METHOD = re.compile(r"^(?:HTTP )?(GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS)\b", re.IGNORECASE)
MIN_SHARE = 0.001          # endpoints rarer than this share of the roots are left out
MIN_CV, MAX_CV = 0.1, 2.0
HANDLER_SHARE = 0.01       # operations rarer than this share of a service's requests are not listed as its handlers
BODY = 0.95                # own times above this quantile are left out of the mean and cv: a recording holds its
                           # incidents too, and their slowest requests would make the healthy system look slow
CORES_PER_NODE = 8


@dataclass
class Edge:
    """Calls from one caller (a service, or an entry endpoint) to one callee, as measured."""

    target: str
    calls: float             # mean calls per request of the caller (first attempts: retries counted apart)
    p99: float               # seconds: the 99th percentile of these calls, or of all the callee served if larger
                             # (the model's callee is one law over all its operations; a timeout must hold it)
    parallel: float          # share of the calls that overlapped a sibling call to another target
    retried: float           # share of failed calls repeated under the same parent
    errors: float            # share of the calls that recorded an error


@dataclass
class ServiceModel:
    name: str
    replicas: int
    rate: float              # requests per second it served (entry spans)
    own_mean: float          # seconds of its own work per request: the mean of the Gamma law fitted to it
    own_cv: float
    own_p50: float           # seconds, the measured median of its own work
    p50: float               # seconds, whole request as it served it
    p99: float
    error_rate: float        # share of its requests that recorded an error
    dependencies: list[Edge] = field(default_factory=list)
    handlers: dict[str, float] = field(default_factory=dict)   # its operations' shares of its requests (>= 1%)
    kind: str = "service"    # "datastore" for a database seen only through its clients' query spans
    seen: str = "traces"     # "traces", or "pods": listed beside the traces, never in one (idle while recorded)


@dataclass
class EndpointModel:
    name: str
    service: str
    share: float
    p50: float
    p95: float
    p99: float
    calls: list[Edge]


@dataclass
class TraceModel:
    """What the traces measured, ready to be written as a scenario."""

    name: str
    source: str
    spans: int
    traces: int
    seconds: float           # recorded time the rates are over (whole minutes with spans)
    base_rate: float
    services: dict[str, ServiceModel]
    endpoints: list[EndpointModel]
    notes: list[str]

    def yaml(self) -> str:
        """The scenario file: measured values, assumptions in comments."""
        return _write(self)


def build(spans: Spans, name: str = "imported", source: str = "traces", pods: list[str] | None = None) -> TraceModel:
    """Measure a scenario's structure and rates from `spans` (see the module docstring for what is assumed).
    `pods`: services known to run beside the traced ones (a deployment's pod list); those no trace shows become
    idle components, so that the scenario holds the whole system."""
    if len(spans) == 0:
        raise ValueError(f"{source}: no spans to build a scenario from")
    notes: list[str] = []
    service = np.array([_name(s) for s in spans.service.tolist()], dtype=object)
    # a query span on a client is a call to the database behind it, named by the schema it names (`SELECT ts.x`)
    # (an ORM's span around the driver's names an entity, not a schema: it goes to the one schema when there is one)
    queries = {i: q for i, op in enumerate(spans.operation.tolist())
               if (q := SQL.match(op)) is not None and spans.kind[i] in ("client", "")}
    schema = {i: q.group(2).split(".")[0] for i, q in queries.items() if q.group(2) and "." in q.group(2)}
    only = next(iter(set(schema.values()))) if len(set(schema.values())) == 1 else ""
    databases: dict[str, str] = {}
    for i in queries:
        db = schema.get(i, only)
        service[i] = databases.setdefault(db, _name(f"{db}-db" if db else "database"))
    parent = spans.parent
    has_parent = parent >= 0
    # an entry span: where a request arrives at a service (a root, or a child of another service's span)
    entry = ~has_parent | (service != service[np.maximum(parent, 0)])
    owner = _owners(parent, entry)                          # [S] the entry span each span's work belongs to
    caller = np.where(entry & has_parent, owner[np.maximum(parent, 0)], -1)   # [S] the entry span that called it
    roots = np.flatnonzero(~has_parent)
    orphans = len(roots) - len(np.unique(spans.trace[roots]))      # more roots than traces: parents not recorded
    if orphans > 0:
        notes.append(f"{orphans} spans whose parent was not recorded are treated as roots of their own")

    # time covered: whole minutes in which a span started (recordings often have gaps)
    minutes = np.unique(np.floor(spans.start / 60.0))
    seconds = 60.0 * len(minutes)

    # ---- endpoints: root operations (a catch-all route named by the first operation it calls) ----
    ep_name = _endpoint_names(spans, service, roots, caller, entry)
    ep_of = np.full(len(spans), -1, dtype=np.int64)          # [S] endpoint index of each root entry span
    labels, inverse, counts = np.unique(ep_name, return_inverse=True, return_counts=True)
    ep_of[roots] = inverse
    ep_service = {i: service[roots[inverse == i][0]] for i in range(len(labels))}

    # ---- each call: (caller entry span, callee entry span) ----
    calls = np.flatnonzero(entry & has_parent)               # callee entry spans
    src = caller[calls]
    call_dur = spans.duration[calls]
    sibling = _overlaps(spans, calls, src)                   # [C] overlaps a call to another target
    retried, retry = _retried(spans, calls, src, service)    # [C] a failed call repeated after; [C] the repeat
    entries = np.flatnonzero(entry)
    own = _own_time(spans, entries, calls, src)              # [E] own work of each entry span

    services: dict[str, ServiceModel] = {}
    for s in sorted(set(service[entries].tolist())):
        mine = entries[service[entries] == s]
        o = own[service[entries] == s]
        mean, cv, median = _own_time_law(o)
        services[s] = ServiceModel(
            name=s, replicas=max(1, len(set(spans.instance[mine].tolist()) - {""})), rate=len(mine) / seconds,
            own_mean=mean, own_cv=cv, own_p50=median,
            p50=float(np.median(spans.duration[mine])), p99=float(np.quantile(spans.duration[mine], 0.99)),
            error_rate=float(spans.error[mine].mean()), handlers=_handlers(spans.operation[mine]))
    for db in databases.values():
        services[db].kind, services[db].replicas = "datastore", 1
        notes.append(f"{db}: a database seen only through its clients' query spans (replicas and limits assumed)")
    idle = sorted({_name(p) for p in pods or []} - set(services))
    for s in idle:
        services[s] = ServiceModel(name=s, replicas=1, rate=0.0, own_mean=0.005, own_cv=1.0, own_p50=0.0, p50=0.0,
                                   p99=0.0, error_rate=0.0, seen="pods")
    if idle:
        notes.append(f"{len(idle)} services run beside the traced ones but no trace reached them while recorded; "
                     "they are idle components with an assumed 5ms service time")
    entry_services = set(ep_service.values())
    # calls made by the entry service's root spans go to their endpoint; every other call to its caller service
    from_root = ep_of[src] >= 0
    for s, model in services.items():
        made = (service[src] == s) & ~from_root
        model.dependencies = _edges(service, calls, made, call_dur, sibling, retried, retry, spans.error,
                                    n_requests=_requests(service, entries, ep_of, s, entry_services))
    endpoints = []
    total = len(roots)
    for i, label in enumerate(labels.tolist()):
        rows = roots[inverse == i]
        made = from_root & (ep_of[src] == i)
        endpoints.append(EndpointModel(
            name=label.split(" ", 1)[1], service=ep_service[i], share=float(counts[i]) / total,
            p50=float(np.median(spans.duration[rows])), p95=float(np.quantile(spans.duration[rows], 0.95)),
            p99=float(np.quantile(spans.duration[rows], 0.99)),
            calls=_edges(service, calls, made, call_dur, sibling, retried, retry, spans.error, n_requests=len(rows))))
    endpoints = _fold_rare(endpoints, notes)
    for edge in [e for m in services.values() for e in m.dependencies] + [e for ep in endpoints for e in ep.calls]:
        edge.p99 = max(edge.p99, services[edge.target].p99)
    _break_cycles(services, endpoints, notes)
    return TraceModel(name=_name(name), source=source, spans=len(spans), traces=len(np.unique(spans.trace)),
                      seconds=seconds, base_rate=total / seconds, services=services, endpoints=endpoints,
                      notes=notes)


# ---- measuring -------------------------------------------------------------------------------------------------------
def _name(text: str) -> str:
    """A component or scenario name the schema accepts: lower case, [a-z0-9._-], at most 63 characters."""
    out = re.sub(r"[^a-z0-9._-]+", "-", str(text).lower()).strip("-._")[:63].strip("-._")
    return out or "unnamed"


def _owners(parent: np.ndarray, entry: np.ndarray) -> np.ndarray:
    """[S] for each span, the nearest entry span at or above it (pointer jumping: log of the depth passes)."""
    owner = np.where(entry, np.arange(len(parent)), parent)
    owner = np.where(owner < 0, np.arange(len(parent)), owner)
    while True:
        nxt = np.where(entry[owner], owner, owner[owner])
        if np.array_equal(nxt, owner):
            return owner
        owner = nxt


def _endpoint_names(spans: Spans, service: np.ndarray, roots: np.ndarray, caller: np.ndarray,
                    entry: np.ndarray) -> np.ndarray:
    """[R] "service operation" of each root; a catch-all route takes its first call's operation (and the HTTP
    method of the client span that made it, when its name says)."""
    ops = spans.operation[roots].astype(object)
    out = np.array([f"{service[r]} {op}" for r, op in zip(roots.tolist(), ops.tolist())], dtype=object)
    vague = np.array([bool(CATCH_ALL.search(op)) for op in ops.tolist()])
    if vague.any():
        first: dict[int, int] = {}
        callees = np.flatnonzero(entry & (caller >= 0))
        for c in callees[np.argsort(spans.start[callees], kind="stable")].tolist():
            first.setdefault(int(caller[c]), c)
        for k in np.flatnonzero(vague).tolist():
            c = first.get(int(roots[k]))
            if c is None:
                continue
            method = HTTP_METHOD.match(str(spans.operation[spans.parent[c]]))
            op = str(spans.operation[c])
            out[k] = f"{service[roots[k]]} {method.group(1).upper() + ' ' if method else ''}{op}"
    return out


def _overlaps(spans: Spans, calls: np.ndarray, src: np.ndarray) -> np.ndarray:
    """[C] whether each call overlapped in time another call made by the same request (fan-out in parallel)."""
    order = np.lexsort((spans.start[calls], src))
    s, start = src[order], spans.start[calls][order]
    end = start + spans.duration[calls][order]
    same = s[1:] == s[:-1]
    overlap = same & (start[1:] < end[:-1])
    out = np.zeros(len(calls), dtype=bool)
    hit = np.zeros(len(order), dtype=bool)
    hit[1:] |= overlap
    hit[:-1] |= overlap
    out[order] = hit
    return out


def _retried(spans: Spans, calls: np.ndarray, src: np.ndarray, service: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[C] whether a failed call was followed, in the same request, by another call to the same operation; and
    [C] whether a call is such a repeat (a retry, not a call of its own)."""
    key = np.array([f"{a}\0{service[c]}\0{spans.operation[c]}" for a, c in zip(src.tolist(), calls.tolist())],
                   dtype=object)
    order = np.lexsort((spans.start[calls], key))
    k = key[order]
    repeat = (k[1:] == k[:-1]) & spans.error[calls][order][:-1]
    again, retry = np.zeros(len(calls), dtype=bool), np.zeros(len(calls), dtype=bool)
    again[order[:-1]] = repeat
    retry[order[1:]] = repeat
    return again, retry


def _own_time(spans: Spans, entries: np.ndarray, calls: np.ndarray, src: np.ndarray) -> np.ndarray:
    """[E] each entry span's duration less the union of the calls it waited on (clipped to its own interval)."""
    dur = spans.duration[entries]
    if len(calls) == 0:
        return dur.copy()
    row = np.full(len(spans), -1, dtype=np.int64)
    row[entries] = np.arange(len(entries))
    p = row[src]                                            # [C] index into entries of each call's caller
    # intervals relative to the caller's start, in integer microseconds so a running max can restart per caller
    t0 = spans.start[entries][p]
    lo = np.clip(np.round((spans.start[calls] - t0) * 1e6), 0, None).astype(np.int64)
    hi = np.minimum(np.round((spans.start[calls] + spans.duration[calls] - t0) * 1e6).astype(np.int64),
                    np.round(dur[p] * 1e6).astype(np.int64))
    hi = np.maximum(hi, lo)
    order = np.lexsort((lo, p))
    p, lo, hi = p[order], lo[order], hi[order]
    span = int(max(hi.max(), 1)) + 1
    shifted_hi = hi + p * span                              # callers' blocks never mix in the running max
    reach = np.maximum.accumulate(shifted_hi) - p * span
    before = np.concatenate(([0], reach[:-1]))
    before = np.where(np.concatenate(([True], p[1:] != p[:-1])), 0, before)
    covered = np.maximum(hi - np.maximum(lo, before), 0)
    waited = np.bincount(p, weights=covered, minlength=len(entries)) / 1e6
    return np.maximum(dur - waited, 0.0)


def _handlers(operations: np.ndarray) -> dict[str, float]:
    """The operations a service served and their shares of its requests, the rarest (under HANDLER_SHARE) left
    out; none when it serves one operation only (one handler for everything)."""
    names, counts = np.unique(operations.astype(str), return_counts=True)
    share = counts / counts.sum()
    kept = {str(n): round(float(x), 4) for n, x in sorted(zip(names, share), key=lambda nx: -nx[1])
            if x >= HANDLER_SHARE}
    return kept if len(kept) > 1 else {}


def _own_time_law(own: np.ndarray) -> tuple[float, float, float]:
    """The mean and cv of the Gamma law the engine draws a service's own time from, fitted to the measured own
    times: the cv of the body (the slowest 1 - BODY left out, and at most MAX_CV: the Wilson-Hilferty median the
    engine's percentiles use is meaningless past it), and the mean that puts the law's median on the measured one
    (a recording's mean is pulled up by its incidents; its median is not)."""
    body = own[own <= np.quantile(own, BODY)]
    centre = float(body.mean())
    cv = float(np.clip(body.std() / centre, MIN_CV, MAX_CV)) if centre > 0 else 1.0
    median = float(np.median(own))
    ratio = (1.0 - cv * cv / 9.0) ** 3                 # the Gamma's median over its mean (Wilson-Hilferty)
    return (median / ratio if median > 0 else centre), cv, median


def _requests(service: np.ndarray, entries: np.ndarray, ep_of: np.ndarray, s: str, entry_services: set[str]) -> int:
    """Requests of `s` whose calls go to its component-level dependencies (an entry service's roots go to their
    endpoints instead)."""
    mine = entries[service[entries] == s]
    if s in entry_services:
        mine = mine[ep_of[mine] < 0]
    return len(mine)


def _edges(service: np.ndarray, calls: np.ndarray, made: np.ndarray, dur: np.ndarray, sibling: np.ndarray,
           retried: np.ndarray, retry: np.ndarray, error: np.ndarray, n_requests: int) -> list[Edge]:
    """The calls selected by `made` ([C]), grouped by callee service."""
    if n_requests == 0 or not made.any():
        return []
    targets = service[calls[made]]
    out = []
    for t in sorted(set(targets.tolist())):
        m = np.flatnonzero(made)[targets == t]
        failed = error[calls[m]]
        out.append(Edge(target=t, calls=int((~retry[m]).sum()) / n_requests, p99=float(np.quantile(dur[m], 0.99)),
                        parallel=float(sibling[m].mean()),
                        retried=float(retried[m][failed].mean()) if failed.any() else 0.0,
                        errors=float(failed.mean())))
    return out


def _fold_rare(endpoints: list[EndpointModel], notes: list[str]) -> list[EndpointModel]:
    """Endpoints under MIN_SHARE of the roots are dropped, their share given to the rest (a note says so)."""
    keep = [e for e in endpoints if e.share >= MIN_SHARE] or sorted(endpoints, key=lambda e: -e.share)[:1]
    dropped = len(endpoints) - len(keep)
    if dropped:
        lost = 1.0 - sum(e.share for e in keep)
        notes.append(f"{dropped} endpoints rarer than {MIN_SHARE:.1%} of the requests left out "
                     f"({lost:.2%} of them); the others' shares scaled up")
        for e in keep:
            e.share /= 1.0 - lost
    return keep


def _break_cycles(services: dict[str, ServiceModel], endpoints: list[EndpointModel], notes: list[str]) -> None:
    """A scenario's call graph has no cycle: drop the rarest edge of each cycle found (a note names it)."""
    while True:
        cycle = _find_cycle({s: [e.target for e in m.dependencies] for s, m in services.items()})
        if cycle is None:
            return
        edges = [(a, b) for a, b in zip(cycle, cycle[1:] + cycle[:1])]
        a, b = min(edges, key=lambda ab: next(e.calls * services[ab[0]].rate for e in services[ab[0]].dependencies
                                               if e.target == ab[1]))
        services[a].dependencies = [e for e in services[a].dependencies if e.target != b]
        notes.append(f"calls {a} -> {b} left out: they close a cycle ({' -> '.join(cycle + cycle[:1])}), "
                     "which a scenario cannot hold")
        for ep in endpoints:
            if ep.service == a:
                ep.calls = [e for e in ep.calls if e.target != b]


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in graph.get(n, []):
            if state.get(m) == 1:
                return stack[stack.index(m):]
            if m not in state and (found := visit(m)) is not None:
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)) is not None:
            return found
    return None


# ---- writing ---------------------------------------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    """A duration as a scenario writes it: 300us, 4.5ms, 1.2s."""
    if seconds < 1e-3:
        return f"{max(seconds * 1e6, 1.0):.0f}us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g}ms"
    return f"{seconds:.3g}s"


def _timeout(p99: float) -> float:
    """Assumed: a call's timeout at 3x the slowest 1% of what was seen, at least 100 ms, rounded up."""
    t = max(3.0 * p99, 0.1)
    step = 0.05 if t < 1.0 else 0.5
    return math.ceil(t / step) * step


def _objective(e: EndpointModel) -> float:
    """Assumed latency objective of an endpoint (its p99 must be under it): the larger of twice its p95 and 1.2x its
    p99, rounded up as `_timeout` rounds, so that the healthy system the recording shows meets it."""
    t = max(2.0 * e.p95, 1.2 * e.p99, 0.05)
    step = 0.05 if t < 1.0 else 0.5
    return math.ceil(t / step) * step


def _dep(e: Edge) -> str:
    parts = [f"target: {e.target}", f"calls: {round(e.calls, 3):g}", f"timeout: {_duration(_timeout(e.p99))}"]
    if e.retried >= 0.5:
        parts += ["retries: 1", "backoff: 20ms"]
    if e.parallel >= 0.5:
        parts.append("mode: parallel")
    return "{" + ", ".join(parts) + "}"


def _write(m: TraceModel) -> str:
    lines = [
        f"# Imported from {m.source} by `opsworld import traces`: {m.spans:,} spans in {m.traces:,} traces over",
        f"# {m.seconds / 60:.0f} recorded minutes. Measured: services and replicas, endpoints and their shares, the",
        "# call graph and calls per request, own service times, parallel calls, retries, error ratios. Assumed",
        "# (traces do not show them; review by hand): concurrency, cpu and memory, nodes and zones, timeouts,",
        "# objectives, and component kinds (all are services: mark datastores, caches and queues yourself).",
        *[f"# Note: {n}" for n in m.notes],
        f"name: {m.name}",
        f"description: imported from recorded traces ({len(m.services)} services, {len(m.endpoints)} endpoints)",
        "duration: 1h",
        "tick: 10s",
        "",
        "# assumed: enough 8-core nodes for the replicas' cpu, spread over two zones",
        "nodes:",
    ]
    cores = sum(s.replicas * _cores(s.rate * s.own_mean / s.replicas) for s in m.services.values())
    n_nodes = max(2, math.ceil(1.5 * cores / CORES_PER_NODE))
    lines += [f"  - {{name: node-{i + 1}, zone: zone-{'ab'[i % 2]}, cpu: {CORES_PER_NODE}, memory: 32Gi}}"
              for i in range(n_nodes)]
    lines += ["", "components:"]
    entry = {e.service for e in m.endpoints}          # an entry service's handlers are its endpoints
    for s in m.services.values():
        busy = s.rate * s.own_mean / s.replicas          # Little's law: requests in own work per replica
        lines.append(f"  {s.name}:")
        if s.seen == "pods":
            lines.append("    # listed beside the traces, never in one: idle while recorded; all assumed")
        elif s.kind == "datastore":
            lines += [f"    # measured from its clients' query spans: {s.rate:.3g} queries/s, p50 {_duration(s.p50)} "
                      "a query (network included); replicas assumed", "    kind: datastore"]
        else:
            lines.append(f"    # measured: {s.rate:.3g} requests/s over {s.replicas} replicas, p50 {_duration(s.p50)} "
                         f"as served; own work (outside its calls) p50 {_duration(s.own_p50)}, the law below fitted "
                         f"to it (cv of the fastest {BODY:.0%}); ~{busy:.2g} busy per replica")
        lines += [
            f"    replicas: {s.replicas}",
            "    concurrency: 64          # assumed",
            f"    service_time: {{mean: {_duration(max(s.own_mean, 1e-5))}, cv: {s.own_cv:.2f}}}",
            f'    cpu: "{_cores(busy)}"                 # assumed: its own work keeps a replica under half busy',
            "    memory: 512Mi            # assumed",
        ]
        if s.error_rate > 0:
            lines.append(f"    error_rate: {s.error_rate:.4f}    # measured: share of its spans with an error")
        if s.handlers and s.name not in entry:
            lines.append("    handlers:                # measured: its operations' shares of its requests")
            lines += [f"      {_quote(h)}: {share:g}" for h, share in s.handlers.items()]
        if s.dependencies:
            lines.append("    dependencies:")
            lines += [f"      - {_dep(e)}" for e in s.dependencies]
    start = "2026-01-01T00:00:00Z"
    lines += ["", "traffic:", f"  base_rate: {m.base_rate:.4g}/s      # measured: root spans per recorded second",
              f'  start: "{start}"', "  endpoints:"]
    for e in m.endpoints:
        slo_latency = _duration(_objective(e))
        lines += [
            f"    - name: {_quote(e.name)}",
            f"      # measured: p50 {_duration(e.p50)}, p95 {_duration(e.p95)}, p99 {_duration(e.p99)}; objective "
            "assumed (the larger of twice the p95 and 1.2x the p99: a healthy system meets it)",
            f"      service: {e.service}",
            f"      share: {e.share:.4f}",
            f"      slo: {{availability: 99.9%, latency: {slo_latency}, percentile: 0.99}}",
        ]
        lines += ["      calls:"] + [f"        - {_dep(d)}" for d in e.calls] if e.calls else ["      calls: []"]
    return "\n".join(w for line in lines for w in _wrapped(line)) + "\n"


def _wrapped(line: str, width: int = 118) -> list[str]:
    """A comment line folded to `width`, each piece a comment at the same indent (YAML as people write it)."""
    text = line.lstrip()
    if len(line) <= width or not text.startswith("# "):
        return [line]
    lead = line[: len(line) - len(text)] + "# "
    return textwrap.wrap(text[2:], width=width, initial_indent=lead, subsequent_indent=lead)


def _cores(busy: float) -> int:
    """Cores per replica for `busy` requests in own work at once: at most half of them busy (traces cannot tell
    CPU from waiting in a service's own time; the assumption keeps a waiting service from looking saturated)."""
    return max(1, math.ceil(2.0 * busy))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
