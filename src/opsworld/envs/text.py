"""What the on-call tools print: query results, logs, traces, alerts, changes and the cluster's objects as text.

Each function turns one tool's result into the text an engineer (or an LLM agent) reads, in the manner of the real
tool: Prometheus' console table, `logcli`/`kubectl logs`, a trace viewer, `amtool alert`, a deploy history,
`kubectl describe`. They are pure (nothing is stepped or changed), deterministic, and bounded: a result longer than
its `limit` is cut, with a line saying how much was left out. Times are UTC.

Nothing here shows what only the simulator knows: the service map is the documented one, and an object's
description holds only what a Kubernetes API would return (never the engine's fault knobs).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Collection

import numpy as np

from opsworld.engine import Engine
from opsworld.engine.changes import Change
from opsworld.engine.replicas import ABSENT, CRASHED, RUNNING
from opsworld.observe.alerts.evaluator import Alert
from opsworld.observe.logs import LogLine
from opsworld.observe.logs.templates import iso
from opsworld.observe.names import Names
from opsworld.observe.promql import Matrix, Scalar, Vector
from opsworld.observe.traces import Trace
from opsworld.spec.loader import service_map
from opsworld.spec.schema import Cache, Datastore, Queue, Scenario

MAX_SPANS = 60          # span lines shown per trace
SEVERITY_ORDER = {"page": 0, "critical": 0, "warning": 1, "ticket": 2, "info": 3}


# ---- small formatting helpers ----------------------------------------------------------------------------------------

def _utc(unix: float, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return datetime.fromtimestamp(float(unix), tz=timezone.utc).strftime(fmt)


def _num(value: float) -> str:
    """A sample value as Prometheus' console prints it, to 4 significant digits."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return "%.4g" % value


def _series(labels: dict[str, str]) -> str:
    """`metric{a="x", b="y"}`, or `{a="x"}` without a metric name."""
    name = labels.get("__name__", "")
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{inner}}}" if inner or not name else name


def _largest_first(value: float, labels: dict[str, str]) -> tuple[bool, float, str]:
    """Sort key: largest value first, NaN last, ties by label set."""
    nan = math.isnan(value)
    return nan, 0.0 if nan else -value, _series(labels)


def _more(n: int, what: str, hint: str = "narrow the query") -> list[str]:
    return [f"... {n} more {what} ({hint})"] if n > 0 else []


def _bytes(n: float) -> str:
    """Bytes as a Kubernetes quantity: 512Mi, 2Gi."""
    for unit, size in (("Ti", 2.0**40), ("Gi", 2.0**30), ("Mi", 2.0**20), ("Ki", 2.0**10)):
        if n >= size:
            return f"{n / size:.4g}{unit}"
    return f"{n:.0f}"


def _duration(seconds: float) -> str:
    """A request's latency as the trace viewer writes it: 78.5ms, or 12.30s."""
    return f"{seconds * 1000.0:.1f}ms" if seconds < 10.0 else f"{seconds:.2f}s"


def _cores(n: float) -> str:
    return f"{n:g}" if float(n).is_integer() else f"{n * 1000:.0f}m"


def _age(seconds: float) -> str:
    """A duration as kubectl's AGE column writes it: 45s, 12m, 3h, 2d."""
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s}s"
    if s < 2 * 3600:
        return f"{s // 60}m"
    if s < 2 * 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns separated by two spaces, kubectl style."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]


# ---- metrics --------------------------------------------------------------------------------------------------------

def render_vector(result: Vector | Scalar, world: int = 0, limit: int = 40) -> str:
    """An instant query's result as Prometheus' console table: one row per series present in `world`,
    `metric{label="v"}  value`, largest value first; a scalar as `scalar  value`."""
    if isinstance(result, Scalar):
        return f"scalar  {_num(float(result.values[world]))}"
    present = np.flatnonzero(result.present[world])
    if present.size == 0:
        return "no data"
    values = result.values[world]
    order = sorted(present, key=lambda i: _largest_first(float(values[i]), result.labels[i]))
    shown = order[:max(limit, 0)]
    names = [_series(result.labels[i]) for i in shown]
    width = min(max((len(n) for n in names), default=0), 120)
    lines = [f"{n.ljust(width)}  {_num(float(values[i]))}" for n, i in zip(names, shown)]
    return "\n".join(lines + _more(len(order) - len(shown), "series"))


def render_matrix(result: Matrix, world: int = 0, limit: int = 20, points: int = 12) -> str:
    """A range query's result: per series its label set, its values at up to `points` evenly spread steps
    (`HH:MM:SS value`, UTC), and min / max / last; the series with the largest last value first."""
    present = result.present[:, world, :]                   # [K, n]
    values = result.values[:, world, :]
    has = np.flatnonzero(present.any(axis=0))
    if has.size == 0:
        return "no data"

    def last(i: int) -> float:
        return float(values[np.flatnonzero(present[:, i])[-1], i])

    order = sorted(has, key=lambda i: _largest_first(last(i), result.labels[i]))
    shown = order[:max(limit, 0)]
    lines: list[str] = []
    for i in shown:
        steps = np.flatnonzero(present[:, i])
        pick = steps[np.unique(np.linspace(0, len(steps) - 1, min(points, len(steps))).round().astype(int))]
        cells = [f"{_utc(result.times[k], '%H:%M:%S')} {_num(float(values[k, i]))}" for k in pick]
        finite = values[steps, i][~np.isnan(values[steps, i])]
        low = _num(float(finite.min())) if finite.size else "NaN"
        high = _num(float(finite.max())) if finite.size else "NaN"
        lines.append(_series(result.labels[i]))
        lines += ["  " + "   ".join(cells[j:j + 6]) for j in range(0, len(cells), 6)]
        lines.append(f"  min {low}  max {high}  last {_num(last(i))}  ({len(steps)} points)")
    return "\n".join(lines + _more(len(order) - len(shown), "series"))


# ---- logs and traces -------------------------------------------------------------------------------------------------

def render_logs(lines: list[LogLine], limit: int = 100) -> str:
    """Log lines as a log viewer prints them: timestamp, `service/pod`, level, message (in the order given)."""
    if not lines:
        return "no log lines"
    shown = lines[:max(limit, 0)]
    out = [f"{iso(ln.time)}  {ln.service}/{ln.pod}  {ln.level:<5}  {ln.message}" for ln in shown]
    return "\n".join(out + _more(len(lines) - len(shown), "lines"))


def render_traces(traces: list[Trace], limit: int = 10) -> str:
    """Traces as a trace viewer lists them: a header per trace (root operation, duration, error flag), then its
    span tree (`Trace.render`, which starts with the trace id), traces separated by blank lines."""
    if not traces:
        return "no traces"
    shown = traces[:max(limit, 0)]
    blocks = []
    for n, trace in enumerate(shown, 1):
        root = trace.root
        status = "ERROR" if trace.has_error else "OK"
        body = trace.render().splitlines()
        body = body[:MAX_SPANS + 1] + _more(len(body) - MAX_SPANS - 1, "spans", "see the trace by its id")
        header = (f"[{n}/{len(shown)}] trace {trace.trace_id}  {root.service}: {root.operation}  "
                  f"{_duration(trace.duration)}  {status}")
        blocks.append("\n".join([header, *body]))
    return "\n\n".join(blocks + _more(len(traces) - len(shown), "traces"))


# ---- alerts and changes ----------------------------------------------------------------------------------------------

def render_alerts(alerts: list[Alert], silenced: Collection[str] = (), show_silenced: bool = True,
                  limit: int = 50) -> str:
    """Active alerts as Alertmanager lists them: firing before pending, pages first, oldest first; state,
    alertname, severity, key labels, summary and active-since time. An alert whose fingerprint is in `silenced`
    is marked `[silenced]` (or left out with `show_silenced=False`)."""
    silenced = set(silenced)
    active = [a for a in alerts if a.state in ("firing", "pending")
              and (show_silenced or a.fingerprint not in silenced)]
    if not active:
        return "no active alerts"
    active.sort(key=lambda a: (a.state != "firing", SEVERITY_ORDER.get(a.labels.get("severity", ""), 4),
                               a.active_at, a.name, a.fingerprint))
    shown = active[:max(limit, 0)]
    out = []
    for a in shown:
        keys = {k: v for k, v in sorted(a.labels.items()) if k not in ("alertname", "severity", "job")}
        mark = "  [silenced]" if a.fingerprint in silenced else ""
        out.append(f"{a.state.upper():<7}  {a.name}  severity={a.labels.get('severity', 'none')}  "
                   f"{_series(keys)}  since {_utc(a.active_at)}{mark}")
        summary = a.annotations.get("summary")
        if summary:
            out.append(f"         {summary}")
    return "\n".join(out + _more(len(active) - len(shown), "alerts", "filter by name or label"))


def render_changes(changes: list[Change], start: float, limit: int = 50) -> str:
    """The change history as a table, oldest first: time (UTC), kind, target, before -> after, by. `start` is the
    Unix time the history's clock counts from; over `limit` rows, the newest are kept."""
    if not changes:
        return "no changes"
    ordered = sorted(changes, key=lambda c: c.time)
    shown = ordered[-max(limit, 1):]
    rows = [[_utc(start + c.time), c.kind, c.target, f"{c.before} -> {c.after}", c.by] for c in shown]
    left = len(ordered) - len(shown)
    head = [f"... {left} earlier changes (narrow the time range)"] if left > 0 else []
    return "\n".join(head + _table(["TIME (UTC)", "KIND", "TARGET", "CHANGE", "BY"], rows))


# ---- the cluster's objects -------------------------------------------------------------------------------------------

def documented_calls(scenario: Scenario) -> dict[str, list[str]]:
    """Every component's documented calls, each with how it is made: `cartservice`, `orders (publish)`,
    `postgres (on miss)`, and a queue's `worker (consumer)`."""
    comps = scenario.components
    out: dict[str, list[str]] = {name: [] for name in comps}
    for src, dst in service_map(scenario):
        comp = comps[src]
        if isinstance(comp, Queue) and dst == comp.consumer:
            out[src].append(f"{dst} (consumer)")
        elif isinstance(comp, Cache) and dst == comp.fronts:
            out[src].append(f"{dst} (on miss)")
        elif isinstance(comps[dst], Queue):
            out[src].append(f"{dst} (publish)")
        else:
            out[src].append(dst)
    return out


def render_service_map(scenario: Scenario, limit: int = 200) -> str:
    """The documented service map: entry endpoints, components with their kind and calls, and the nodes by zone.
    Couplings marked `documented: false` in the scenario are not shown."""
    lines = ["Entry endpoints:"]
    eps = scenario.traffic.endpoints
    width = max(len(ep.name) for ep in eps)
    lines += [f"  {ep.name.ljust(width)}  -> {ep.service}" for ep in eps]
    names = list(scenario.components)
    shown = names[:max(limit, 0)]
    lines.append(f"Components ({len(names)}):")
    width = max(len(n) for n in shown) if shown else 0
    calls_of = documented_calls(scenario)
    for name in shown:
        comp = scenario.components[name]
        calls = calls_of[name]
        lines.append(f"  {name.ljust(width)}  {comp.kind:<9}  x{comp.instances}"
                     + (f"  -> {', '.join(calls)}" if calls else ""))
    lines += _more(len(names) - len(shown), "components", "describe one by name")
    lines.append(f"Nodes ({len(scenario.nodes)}):")
    zones = scenario.zones
    for zone in zones:
        here = [n.name for n in scenario.nodes if n.zone == zone]
        lines.append(f"  {zone}: {', '.join(here)}")
    return "\n".join(lines)


def _pod_node(engine: Engine, r: int, world: int) -> int | None:
    """The node a replica runs on: its own, or, once evicted from a drained or lost node, the first node of its
    component's that can take it (None: nowhere to schedule it)."""
    topo, knobs = engine.topology, engine.knobs
    home = int(topo.replica_node[r])
    if not engine.replicas.moved[r, world]:
        return home
    comp = int(topo.replica_component[r])
    slots = np.flatnonzero(topo.replica_component == comp)
    candidates = [int(n) for n in dict.fromkeys(topo.replica_node[slots])
                  if not knobs.drained[n, world] and not knobs.node_down[n, world]]
    return candidates[int(topo.replica_index[r]) % len(candidates)] if candidates else None


def _pod_status(engine: Engine, r: int, world: int) -> tuple[str, str]:
    """A pod's STATUS column and its last termination reason (`-` if it never terminated)."""
    reps, knobs, topo = engine.replicas, engine.knobs, engine.topology
    s = int(topo.replica_component[r])
    # the kubelet knows why a container died: over its memory limit, or an exit of its own
    oom = knobs.memory_growth[s, world] > 0 and not knobs.crash_loop[s, world]
    reason = ("OOMKilled" if oom else "Error") if reps.restarts[r, world] > 0 else "-"
    state = int(reps.state[r, world])
    if state == RUNNING:
        return "Running", reason
    if state == CRASHED and reps.moved[r, world] and knobs.node_down[int(topo.replica_node[r]), world]:
        return "Unknown", reason              # its node stopped answering; the pod will be rescheduled
    if state == CRASHED:                      # the first exit shows its reason, later ones the back-off
        return ("CrashLoopBackOff" if reps.streak[r, world] >= 2 else reason if reason != "-" else "Error"), reason
    return "Pending", reason                  # starting, not ready yet


def _pod_rows(engine: Engine, slots: list[int], world: int, with_node: bool = True) -> list[list[str]]:
    names, reps, topo = Names(engine.topology), engine.replicas, engine.topology
    rows = []
    for r in slots:
        status, reason = _pod_status(engine, r, world)
        node = _pod_node(engine, r, world)
        row = [names.pod(r), status, "1/1" if reps.state[r, world] == RUNNING else "0/1",
               str(int(reps.restarts[r, world])), reason, _age(engine.time - float(reps.launched[r, world]))]
        if with_node:
            row.insert(1, topo.nodes[node] if node is not None else "<none>")
        rows.append(row)
    return rows


def _describe_component(engine: Engine, name: str, world: int) -> list[str]:
    topo, knobs, scenario = engine.topology, engine.knobs, engine.scenario
    s = topo.index(name)
    comp = scenario.components[name]
    workload = "StatefulSet" if isinstance(comp, (Datastore, Cache, Queue)) else "Deployment"
    slots = [int(r) for r in np.flatnonzero(topo.replica_component == s) if engine.replicas.state[r, world] != ABSENT]
    ready = sum(int(engine.replicas.state[r, world] == RUNNING) for r in slots)
    lines = [f"Name:            {name}",
             f"Namespace:       {Names.namespace}",
             f"Kind:            {comp.kind} ({workload})",
             f"Version:         {engine.versions[int(knobs.deploy[s, world])]}",
             f"Config:          {engine.versions[int(knobs.config[s, world])]}",
             f"Replicas:        {int(knobs.replicas[s, world])} desired | {len(slots)} total | {ready} ready",
             f"Limits:          cpu {_cores(comp.cpu)}, memory {_bytes(comp.memory)}"
             + (f", nvidia.com/gpu {comp.gpu.count}" if comp.gpu else "")]
    if comp.autoscaler is not None:
        lines.append(f"Autoscaler:      min {int(knobs.scale_min[s, world])}, max {int(knobs.scale_max[s, world])}, "
                     f"target CPU {comp.autoscaler.target_cpu:.0%}")
    if isinstance(comp, Datastore):
        lines.append(f"Datastore:       {comp.read_replicas} read replica(s), max_connections {comp.max_connections}, "
                     f"client pool {comp.pool_size}")
    if isinstance(comp, Cache):
        lines.append(f"Cache for:       {comp.fronts}")
    if isinstance(comp, Queue):
        lines.append(f"Consumer:        {comp.consumer}")
    calls = documented_calls(scenario)[name]
    lines.append(f"Calls:           {', '.join(calls) if calls else '<none>'}")
    certs = [c for c in range(len(topo.certificates)) if int(topo.cert_component[c]) == s]
    if certs:
        lines.append(f"Certificates:    {', '.join(topo.certificates[c] for c in certs)}")
    lines.append("Pods:")
    if slots:
        lines += ["  " + row for row in _table(["NAME", "NODE", "STATUS", "READY", "RESTARTS", "LAST TERMINATED",
                                                "AGE"], _pod_rows(engine, slots, world))]
    else:
        lines.append("  <none>")
    return lines


def _describe_node(engine: Engine, n: int, world: int) -> list[str]:
    topo, knobs, scenario = engine.topology, engine.knobs, engine.scenario
    spec = scenario.nodes[n]
    down, drained = bool(knobs.node_down[n, world]), bool(knobs.drained[n, world])
    slots = [int(r) for r in range(len(topo.replica_component))
             if engine.replicas.state[r, world] != ABSENT and _pod_node(engine, r, world) == n]
    lines = [f"Name:            {spec.name}",
             f"Zone:            {spec.zone}",
             f"Pool:            {spec.pool}",
             f"Capacity:        cpu {_cores(spec.cpu)}, memory {_bytes(spec.memory)}, disk {_bytes(spec.disk)}"
             + (f", nvidia.com/gpu {spec.gpus}" if spec.gpus else ""),
             f"Ready:           {'False (NodeStatusUnknown: kubelet stopped posting node status)' if down else 'True'}",
             f"Unschedulable:   {'true (cordoned, drained)' if drained else 'false'}",
             f"Pods ({len(slots)}):"]
    if slots:
        lines += ["  " + row for row in _table(["NAME", "STATUS", "READY", "RESTARTS", "LAST TERMINATED", "AGE"],
                                               _pod_rows(engine, slots, world, with_node=False))]
    else:
        lines.append("  <none>")
    return lines


def _describe_certificate(engine: Engine, c: int, world: int) -> list[str]:
    topo = engine.topology
    not_after = float(engine.knobs.cert_not_after[c, world])
    now = float(engine.scenario.traffic.start + engine.time)
    valid = now < not_after
    return [f"Name:            {topo.certificates[c]}",
            f"Namespace:       {Names.namespace}",
            f"Used by:         {topo.components[int(topo.cert_component[c])]}",
            f"Not After:       {_utc(not_after)} UTC",
            "Ready:           " + ("True (certificate is up to date and has not expired)" if valid
                                    else "False (Expired)")]


def _describe_endpoint(engine: Engine, p: int, world: int) -> list[str]:
    """The ingress route of an entry endpoint: its backend, timeout and objective as configured, and the front
    door's rate limit when one is set (what `kubectl describe ingress` and its annotations show)."""
    topo = engine.topology
    ep = engine.scenario.traffic.endpoints[p]
    admit = float(engine.knobs.admit[p, world])
    normal = float(engine.scenario.traffic.base_rate * ep.share)
    limit = f"{admit * normal:.4g} requests/s" if math.isfinite(admit) else "<none>"
    return [f"Name:            {ep.name}",
            f"Namespace:       {Names.namespace}",
            "Kind:            Ingress route",
            f"Backend:         {topo.components[int(topo.endpoint_component[p])]}",
            f"Timeout:         {ep.timeout:g}s",
            f"Objective:       {100 * ep.slo.availability:g}% available, p{100 * ep.slo.percentile:g} under "
            f"{1000 * ep.slo.latency:g}ms",
            f"Rate limit:      {limit}"]


def render_component(engine: Engine, name: str, world: int = 0) -> str:
    """`kubectl describe` of a component (its workload and pods), a node, an entry endpoint (its ingress route) or a
    certificate, as world `world` has it now. Shows only what the Kubernetes API would: versions, replicas, pod
    states, limits, documented calls. An unknown name raises ValueError listing the known ones."""
    topo = engine.topology
    if not 0 <= world < engine.worlds:
        raise ValueError(f"world must be in 0..{engine.worlds - 1}, got {world}")
    if name in topo.components:
        return "\n".join(_describe_component(engine, name, world))
    if name in topo.nodes:
        return "\n".join(_describe_node(engine, topo.nodes.index(name), world))
    if name in topo.certificates:
        return "\n".join(_describe_certificate(engine, topo.certificates.index(name), world))
    if name in topo.endpoints:
        return "\n".join(_describe_endpoint(engine, topo.endpoints.index(name), world))
    known = [*engine.scenario.components, *topo.nodes, *topo.endpoints, *topo.certificates]
    raise ValueError(f"no component, node, endpoint or certificate named '{name}'; known: {', '.join(known)}")
