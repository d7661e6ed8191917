"""Observation bundles: what the monitoring shows of one world of a batch when its responder looks (firing alerts,
recent changes, a window of key metrics, log excerpts and the documented service map), as one prompt-ready text and
as structured fields.

A batch of worlds runs once (`Incidents`). A `Recorder` beside it keeps, as arrays over every world, the per-minute
averages of the key signals read off the truth state and when each dashboard alert began firing, and, for the worlds
about to be looked at, the last minute of truth, knobs and replica states. When a world's responder looks,
`Recorder.capture(b)` takes that world's share and `build_bundle` turns it into text and fields: numbers and strings
for one world, never the full telemetry stack (about a hundred times dearer per world and tick). The log excerpts
come from the real log sensor (`observe.logs`) over a one-world recording of that last minute, so they read as the
text tools' do.

Nothing here reads a fault or the ground truth: only the truth state and the system's state (as every sensor does),
the dashboard and the change history.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from opsworld.engine.changes import Change
from opsworld.engine.knobs import Knobs
from opsworld.engine.topology import Topology
from opsworld.engine.truth import TRUTH_FIELDS, Truth
from opsworld.envs.incident import Incidents
from opsworld.envs.text import documented_calls
from opsworld.faults.base import next_version
from opsworld.observe.dashboard import ALERTS, SIGNALS
from opsworld.observe.logs.lines import N_SOURCES, component_lines
from opsworld.observe.logs.templates import iso
from opsworld.observe.logs.view import LOGS, WorldView
from opsworld.observe.names import NAMESPACE
from opsworld.observe.noise import hashed
from opsworld.observe.recording import KNOB_FIELDS, Recording
from opsworld.spec.loader import service_map
from opsworld.spec.schema import Queue, Scenario

WINDOW = 15            # minutes of metrics before the look (fewer when the system has not run that long)
LOG_SECONDS = 30.0     # the log excerpt covers the last half minute
LOG_LINES = 30         # at most this many log lines, newest kept
LOG_SERVICES = 3       # of at most this many services (the log sensor is the dearest part of a bundle)
SHOWN = 8              # components in the metric tables: the ones that stand out, and the entry services
GAP_SCALE = 0.3        # share of samples lost at telemetry_gaps = 1 (as `Difficulty` and the dashboard have it)
ALERTS_SHOWN = 20      # firing alerts listed (critical first, then the oldest); the rest are counted by name
CHANGES_SHOWN = 15     # newest changes listed
MAP_LIMIT = 30         # above this many components the map lists only those in view and their neighbours
MAP_SHOWN = 40
LIST_SHOWN = 12        # endpoints, calls of one component, nodes of one component written out in the map's text


@dataclass(frozen=True)
class Metric:
    """One key metric: what its table is called, the PromQL a dashboard panel would run for it, and its unit."""

    key: str
    title: str
    promql: str
    unit: str          # req/s, %, ms or count: how its table's cells are written


def _ratio(num: str, den: str) -> str:
    return f"sum by (service) (rate({num}[1m])) / sum by (service) (rate({den}[1m]))"


_NS = f'namespace="{NAMESPACE}"'
METRICS = (
    Metric("rps", "Requests per second", f"sum by (service) (rate(http_server_requests_total{{{_NS}}}[1m]))",
           "req/s"),
    Metric("errors", "Requests failing (5xx), %",
           _ratio(f'http_server_requests_total{{{_NS}, code=~"5.."}}', f"http_server_requests_total{{{_NS}}}"), "%"),
    Metric("latency", "Mean response time, ms",
           _ratio(f"http_server_request_duration_seconds_sum{{{_NS}}}",
                  f"http_server_request_duration_seconds_count{{{_NS}}}"), "ms"),
    Metric("cpu", "CPU used, % of limit",
           f"sum by (service) (rate(container_cpu_usage_seconds_total{{{_NS}}}[1m])) / sum by (service) "
           f'(kube_pod_container_resource_limits{{{_NS}, resource="cpu"}})', "%"),
    Metric("memory", "Memory of the fullest pod, % of limit",
           f"max by (service) (container_memory_working_set_bytes{{{_NS}}} / "
           f"container_spec_memory_limit_bytes{{{_NS}}})", "%"),
    Metric("ready", "Ready replicas", f'sum by (service) (kube_pod_status_ready{{{_NS}, condition="true"}})',
           "count"),
    Metric("restarts", "Container restarts per minute",
           f"sum by (service) (increase(kube_pod_container_status_restarts_total{{{_NS}}}[1m]))", "count"),
    Metric("disk", "Disk of the fullest pod, % of volume",
           f"max by (service) (container_fs_usage_bytes{{{_NS}}} / container_fs_limit_bytes{{{_NS}}})", "%"),
    Metric("queue", "Messages waiting", f"sum by (service) (kafka_consumergroup_lag{{{_NS}}})", "count"),
)
# what counts as a change worth noticing, per metric, when picking the components that stand out
_FLOOR = np.array([1.0, 0.01, 0.005, 0.05, 0.05, 0.5, 0.5, 0.05, 10.0])
ALERT_NAMES = tuple(ALERTS)
# the dashboard's alerts as the rule files name their counterparts (`observe/alerts/rules`): what a pager shows
_ALERTS = {
    "HighErrorRate": ("ServiceErrorRatioHigh", "critical", "{s} is failing {v:.1%} of requests"),
    "HighLatency": ("ServiceLatencyHigh", "critical", "{s} responds {v:.1f}x slower than usual"),
    "CPUSaturated": ("ContainerCPUNearLimit", "warning", "{s} is using {v:.0%} of its CPU limit"),
    "MemoryNearLimit": ("ContainerMemoryNearLimit", "warning", "{s} pods are at {v:.0%} of their memory limit"),
    "ReplicasUnavailable": ("DeploymentReplicasUnavailable", "critical", "only {v:.0%} of {s} replicas are ready"),
    "PodRestarting": ("PodRestartingFrequently", "warning", "{s} pods are restarting"),
    "QueueBacklog": ("ConsumerLagHigh", "warning", "{s} backlog is at {v:.0%} of its capacity"),
    "DiskNearlyFull": ("ContainerFilesystemAlmostFull", "warning", "{s} volume is {v:.0%} full"),
    "WorkersExhausted": ("ServiceWorkersSaturated", "warning", "{s} has {v:.0%} of its workers busy"),
    "TrafficSurge": ("ServiceTrafficSpike", "warning", "{s} receives {v:.1f}x its usual traffic"),
    "SLOBurn": ("ErrorBudgetBurnFast", "critical", "{s} burns its error budget {v:.0f}x faster than its SLOs allow"),
}
# how much a firing alert makes its component stand out, by severity
_ALERT_WEIGHT = np.array([10.0 if _ALERTS[k][1] == "critical" else 3.0 for k in ALERT_NAMES])


# ---- recording a batch -----------------------------------------------------------------------------------------------

@dataclass
class Capture:
    """What the monitoring held about one world when its responder looked (arrays over all its components)."""

    world: int                 # index in the batch
    time: float                # seconds since the start
    wall: float                # Unix seconds
    minutes: np.ndarray        # [W] Unix seconds at the end of each one-minute point, oldest first
    metrics: np.ndarray        # [W, S, K] one-minute values of METRICS (NaN: no data)
    firing: np.ndarray         # [S, A] the dashboard's alerts firing now
    since: np.ndarray          # [S, A] Unix seconds each firing alert began firing
    signals: np.ndarray        # [S, F] the dashboard's signals now (what the alerts read)
    changes: list[Change]      # the change history so far
    view: WorldView            # this world alone over the last minute, as the log sensor sees it


class Recorder:
    """Keeps what the bundles need while a batch of incidents runs. Call `step(watch)` after every
    `Incidents.advance()`, with the worlds whose responders may look within the next minute or so: their replica
    states are kept for the log sensor (copying them for every world would cost more than the engine)."""

    def __init__(self, inc: Incidents, window: int = WINDOW) -> None:
        self.inc = inc
        engine = inc.engine
        B, S = inc.worlds, engine.topology.n_components
        self.dt = float(engine.dt)
        self.window = window
        # one slot per minute, a ring of window + 1 slots (the points from now - window to now)
        self.values = np.full((window + 1, B, S, len(METRICS)), np.nan, np.float32)
        self.minute = 0                                       # minutes completed
        self._sums = np.zeros((6, B, S))     # offered, failed, served, response x served, cpu, ready: this minute
        self._peaks = np.zeros((2, B, S))    # memory, disk: the fullest this minute
        self._queue = np.zeros((B, S))
        self._ticks = 0
        self._restarts = np.zeros((B, S))
        self._began = np.zeros((B, S, len(ALERTS)), np.float64)   # when each alert last began firing (Unix)
        self.newly_firing = np.zeros(B, bool)                 # a dashboard alert began firing this tick
        self._firing = np.zeros((B, S, len(ALERTS)), bool)
        self.changes: list[list[Change]] = [[] for _ in range(B)]
        self._changes_read = 0
        self.log_ticks = int(math.ceil(LOG_SECONDS / self.dt))
        self._recent: deque = deque(maxlen=self.log_ticks + 1)
        self._knobs: dict[str, tuple[int, np.ndarray]] = {}
        self._view: WorldView | None = None

    def step(self, watch: np.ndarray | None = None) -> None:
        """Read the tick just run (every world at once); keep the state of the `watch` worlds for their logs."""
        inc, engine = self.inc, self.inc.engine
        t: Truth = inc.last
        now = float(engine.time)
        wall = float(engine.scenario.traffic.start) + now
        s = self._sums
        s[0] += t.offered
        s[1] += t.failed_by_cause.sum(axis=-1)
        s[2] += t.served
        s[3] += t.response_mean * t.served
        s[4] += t.cpu_utilisation
        s[5] += t.ready_replicas
        np.maximum(self._peaks[0], t.memory_max_fraction, out=self._peaks[0])
        np.maximum(self._peaks[1], t.disk_max_fraction, out=self._peaks[1])
        self._queue += t.queue_depth
        self._ticks += 1
        if _on_minute(now):
            self._close_minute(t)
        firing = inc.dashboard.firing
        newly = firing & ~self._firing
        self.newly_firing = newly.reshape(len(newly), -1).any(axis=1)
        np.copyto(self._began, wall, where=newly)
        np.copyto(self._firing, firing)
        self._read_changes()
        # knobs: a copy of each only when it was set since the last one (`Engine.writes` counts the settings)
        for f in KNOB_FIELDS:
            count = engine.writes(f)
            if self._knobs.get(f, (None,))[0] != count:
                self._knobs[f] = (count, getattr(engine.knobs, f).copy())
        w = np.arange(inc.worlds) if watch is None else np.unique(np.asarray(watch, dtype=np.int64))
        self._recent.append((now, t, w, {f: v for f, (_, v) in self._knobs.items()},
                             engine.replicas.state[:, w], engine.replicas.launched[:, w]))

    def _read_changes(self) -> None:
        """File the changes made since the last tick under their worlds, as `ChangeLog.events` reads them. That
        walks the whole log for one world; a batch looks at every world, so the log is read here once, as it grows
        (through its rows, `_chunks`: the log keeps them columnar and offers no other way to read them in bulk)."""
        chunks = self.inc.engine.changes._chunks
        for time, worlds, kind, target, before, after, by, text in chunks[self._changes_read:]:
            if text is not None:
                before, after = text(before), text(after)
            for w, was, now in zip(np.asarray(worlds).tolist(), np.asarray(before).tolist(),
                                   np.asarray(after).tolist()):
                if str(was) != str(now):
                    self.changes[w].append(Change(time, kind, target, str(was), str(now), by,
                                                  self.inc.engine.changes.start + time))
        self._changes_read = len(chunks)

    def _close_minute(self, t: Truth) -> None:
        n = max(self._ticks, 1)
        s = self._sums
        out = np.empty(self.values.shape[1:], np.float32)
        out[..., 0] = s[0] / (n * self.dt)
        out[..., 1] = np.divide(s[1], s[0], out=np.zeros_like(s[1]), where=s[0] > 0)
        out[..., 2] = np.divide(s[3], s[2], out=np.full_like(s[3], np.nan), where=s[2] > 0)
        out[..., 3] = s[4] / n
        out[..., 4] = self._peaks[0]
        out[..., 5] = s[5] / n
        out[..., 6] = t.restarts - self._restarts
        out[..., 7] = self._peaks[1]
        out[..., 8] = self._queue / n
        self.minute += 1
        self.values[self.minute % (self.window + 1)] = out
        self._restarts = t.restarts.astype(np.float64)
        s[:] = 0.0
        self._peaks[:] = 0.0
        self._queue[:] = 0.0
        self._ticks = 0

    def capture(self, b: int) -> Capture:
        """World b's share of what was recorded, as it stands now (call at a whole minute, with b watched over the
        last minute)."""
        inc, engine = self.inc, self.inc.engine
        start = float(engine.scenario.traffic.start)
        now = float(engine.time)
        points = min(self.minute, self.window + 1)
        minutes = np.arange(self.minute - points + 1, self.minute + 1)
        return Capture(
            world=b, time=now, wall=start + now,
            minutes=start + 60.0 * minutes.astype(np.float64),
            metrics=self.values[minutes % (self.window + 1), b].copy(),
            firing=self._firing[b].copy(), since=self._began[b].copy(),
            signals=inc.dashboard.signals[b].copy(),
            changes=list(self.changes[b]),
            view=self._one_world(b))

    def _one_world(self, b: int) -> WorldView:
        """World b over the last minute, as the log sensor sees it: a one-world recording (its noise is keyed by its
        global number, so its lines are those the full stack prints for it). Ticks before the kept ones repeat the
        oldest kept: the excerpt never reads them."""
        engine = self.inc.engine
        recent = list(self._recent)
        first = int(round(recent[0][0] / self.dt)) - 1          # tick index of the oldest kept
        frames, knobs, states, launched = [], [], [], []
        for _, t, w, k, st, la in recent:
            j = int(np.searchsorted(w, b))
            if j >= len(w) or w[j] != b:
                raise RuntimeError(f"world {b} was not watched over the minute before its look")
            frames.append(_one_truth(t, b))
            knobs.append(Knobs(**{f: v[..., b:b + 1] for f, v in k.items()}))
            states.append(st[:, j:j + 1])
            launched.append(la[:, j:j + 1])
        rec = Recording(
            topology=engine.topology, seed=engine.seed, first_world=engine.first_world + b,
            start=float(engine.scenario.traffic.start), dt=self.dt, frames=[frames[0]] * first + frames,
            knob_times=[now - self.dt for now, *_ in recent], knob_snapshots=knobs,
            replica_state=[states[0]] * first + states, replica_launched=[launched[0]] * first + launched,
            changes=engine.changes, versions=engine.versions)
        if self._view is None:
            self._view = WorldView(rec, 0)
        return _ViewOf(self._view, rec)


class _ViewOf(WorldView):
    """A `WorldView` of another recording of the same topology, sharing the static facts of `template` (names,
    profiles, call lists): building them costs milliseconds on a large system, once per batch is enough."""

    def __init__(self, template: WorldView, rec: Recording) -> None:
        # not the parent's __init__: it would rebuild what `template` holds
        self.__dict__.update(template.__dict__)
        self.rec, self.world, self.gworld = rec, 0, rec.first_world
        self._ticks = {}


def _on_minute(seconds: float) -> bool:
    return abs(seconds / 60.0 - round(seconds / 60.0)) < 1e-6


def next_minute(seconds: float | np.ndarray) -> float | np.ndarray:
    """The first whole minute at or after `seconds` (the metrics are read at whole minutes)."""
    return np.ceil(np.asarray(seconds) / 60.0 - 1e-9) * 60.0


def _one_truth(t: Truth, b: int) -> Truth:
    return dataclasses.replace(t, **{f: getattr(t, f)[b:b + 1] for f in TRUTH_FIELDS})


# ---- the static side of a batch --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MapRow:
    name: str
    kind: str
    replicas: int
    calls: tuple[str, ...]     # documented calls, with how they are made: `x`, `q (publish)`, `db (on miss)`
    nodes: tuple[str, ...]     # where its pods are scheduled


class Layout:
    """What every world of a batch shares: names, the documented service map, where pods run."""

    def __init__(self, scenario: Scenario, topology: Topology) -> None:
        self.scenario, self.topology = scenario, topology
        self.components = list(topology.components)
        self.index = {n: i for i, n in enumerate(self.components)}
        documented = service_map(scenario)
        comps = scenario.components
        calls_of = documented_calls(scenario)
        rows = []
        for name, comp in comps.items():
            calls = calls_of[name]
            s = topology.index(name)
            slots = np.flatnonzero((topology.replica_component == s)
                                   & (topology.replica_index < topology.replicas[s]))
            nodes = tuple(dict.fromkeys(topology.nodes[int(topology.replica_node[r])] for r in slots))
            rows.append(MapRow(name, comp.kind, int(comp.instances), tuple(calls), nodes))
        self.rows = rows
        self.neighbours: dict[str, set[str]] = {n: set() for n in comps}
        for src, dst in documented:
            self.neighbours[src].add(dst)
            self.neighbours[dst].add(src)
        self.endpoints = [(ep.name, ep.service) for ep in scenario.traffic.endpoints]
        self.entry = list(dict.fromkeys(service for _, service in self.endpoints))
        self.zones = {z: [n.name for n in scenario.nodes if n.zone == z]
                      for z in scenario.zones}
        self.queues = {n for n, c in comps.items() if isinstance(c, Queue)}
        self.versions = set(topology.deploy) | set(topology.config)     # what the system runs before any change


# ---- one world's bundle ----------------------------------------------------------------------------------------------

@dataclass
class Bundle:
    """One world's observation: the text, and the same as structured fields (plain lists and dicts)."""

    text: str
    fields: dict


def build_bundle(cap: Capture, layout: Layout, rng: np.random.Generator, gaps: float = 0.0) -> Bundle:
    """The observation of one captured world. `gaps` is `Difficulty.telemetry_gaps`: GAP_SCALE x gaps of the metric
    samples and log lines are lost (drawn from `rng`, so the same item loses the same ones)."""
    gaps = GAP_SCALE * gaps
    shown = _stand_out(cap, layout)
    names = [layout.components[s] for s in shown]
    metrics = cap.metrics[:, shown, :].astype(np.float64)
    if gaps > 0:
        metrics[rng.random(metrics.shape) < gaps] = np.nan
    times = [_clock(t) for t in cap.minutes]
    firing = _alerts(cap, layout)
    alerts = firing[:ALERTS_SHOWN]
    history = _renamed([c for c in cap.changes if c.time <= cap.time + 1e-6], layout.versions)
    changes = history[-CHANGES_SHOWN:]
    earlier = len(history) - len(changes)
    read = _log_services(cap, layout, shown, alerts)
    logs = _logs(cap, layout, read, rng, gaps)
    in_view = names + [a["service"] for a in alerts] + read + [c.target for c in changes]
    rows = _map_rows(layout, in_view)
    stored = _rounded(metrics)
    metric_rows = [{"metric": m.key, "query": m.promql, "unit": _UNITS[m.unit], "service": name,
                    "values": stored[:, j, k].tolist()}
                   for k, m in enumerate(METRICS) if _applies(m, names, layout)
                   for j, name in enumerate(names)]
    change_rows = [{"time": _utc(cap.wall - cap.time + c.time), "kind": c.kind, "target": c.target,
                    "before": c.before, "after": c.after, "by": c.by} for c in changes]
    fields = {
        "now": _utc(cap.wall),
        "alerts": alerts,
        "alerts_firing": len(firing),
        "changes": change_rows,
        "metric_times": [_utc(t) for t in cap.minutes],
        "metrics": metric_rows,
        "logs": logs,
        "service_map": [{"name": r.name, "kind": r.kind, "replicas": r.replicas, "calls": list(r.calls),
                         "nodes": list(r.nodes)} for r in rows],
        "endpoints": [{"name": n, "service": s} for n, s in layout.endpoints],
    }
    text = "\n".join([
        f"It is {_utc(cap.wall)} UTC. You are the on-call engineer for this system (Kubernetes namespace "
        f"{NAMESPACE}). " + ("Alerts are firing." if alerts else "Nothing is alerting, but you were asked to take "
                                                                 "a look."),
        "",
        "== Firing alerts ==",
        _alerts_text(alerts, firing),
        "",
        "== Recent changes (newest last) ==",
        _changes_text(change_rows, earlier),
        "",
        f"== Key metrics: one-minute values, {times[0]} to {times[-1]} UTC ('-': no data) ==",
        _metrics_text(metric_rows, times, names),
        "",
        f"== Log excerpts: warnings and errors over the last {LOG_SECONDS:.0f} seconds of {_list(read)} ==",
        _logs_text(logs),
        "",
        "== Service map (as documented) ==",
        _map_text(layout, rows),
    ])
    return Bundle(text, fields)


def _renamed(changes: list[Change], originals: set[str]) -> list[Change]:
    """The history with the versions a batch made renamed as this world alone would have them: the engine numbers
    new versions across the whole batch (`v1.4.37` where one world would say `v1.4.2`), and an item must not depend on
    the batch it ran in."""
    names: dict[str, str] = {}
    out = []
    for c in changes:
        if c.kind not in ("deploy", "config"):
            out.append(c)
            continue
        before = names.get(c.before, c.before)
        if c.after not in names and c.after not in originals:
            salt = 0
            while next_version(before, salt) in names.values():
                salt += 1
            names[c.after] = next_version(before, salt)
        out.append(dataclasses.replace(c, before=before, after=names.get(c.after, c.after)))
    return out


def _stand_out(cap: Capture, layout: Layout) -> np.ndarray:
    """The components shown in the metric tables, in the service map's order: every one in a small system, else those
    with firing alerts and the largest moves over the window, and the entry services."""
    S = len(layout.components)
    if S <= SHOWN:
        return np.array([layout.index[r.name] for r in layout.rows])
    v = cap.metrics.astype(np.float64)                       # [W, S, K]
    v = np.where(np.isfinite(v), v, 0.0)
    k = min(3, len(v))
    early, late = v[:k].mean(axis=0), v[-k:].mean(axis=0)     # [S, K]
    move = np.minimum(np.abs(late - early) / (np.abs(early) + _FLOOR), 10.0).sum(axis=1)
    alerts = (cap.firing * _ALERT_WEIGHT).sum(axis=1)
    score = alerts + 50.0 * late[:, 1] + move
    chosen = [layout.index[n] for n in layout.entry[:2]]
    for s in np.lexsort((np.arange(S), -score)):
        if len(chosen) >= SHOWN:
            break
        if int(s) not in chosen:
            chosen.append(int(s))
    order = {layout.index[r.name]: i for i, r in enumerate(layout.rows)}
    return np.array(sorted(chosen, key=order.__getitem__))


def _applies(m: Metric, names: list[str], layout: Layout) -> bool:
    return m.key != "queue" or any(n in layout.queues for n in names)


def _alerts(cap: Capture, layout: Layout) -> list[dict]:
    out = []
    for s, a in zip(*np.nonzero(cap.firing)):
        key, service = ALERT_NAMES[a], layout.components[s]
        name, severity, summary = _ALERTS[key]
        value = float(cap.signals[s, SIGNALS.index(ALERTS[key][0])])
        if ALERTS[key][0] in ("error_ratio", "ready"):     # shares: the sensor's noise must not pass 100%
            value = min(value, 1.0)
        out.append({"alertname": name, "severity": severity, "service": service, "since": _utc(cap.since[s, a]),
                    "summary": summary.format(s=service, v=value)})
    order = {"critical": 0, "warning": 1}
    out.sort(key=lambda r: (order[r["severity"]], r["since"], r["alertname"], r["service"]))
    return out


def _log_services(cap: Capture, layout: Layout, shown: np.ndarray, alerts: list[dict]) -> list[str]:
    """The services whose logs the excerpt reads, as an engineer would pick them from the dashboard (at most
    LOG_SERVICES): those alerting (critical first), then those of the shown ones whose errors, latency, readiness or
    restarts moved; when nothing stands out, the first entry service."""
    last = cap.metrics[-1]                                      # [S, K]
    first = cap.metrics[0]
    with np.errstate(invalid="ignore"):
        moved = ((last[:, 1] > 0.005) | (last[:, 2] > 1.5 * first[:, 2]) | (last[:, 5] < first[:, 5] - 0.5)
                 | (last[:, 6] > 0))
    ranked = [a["service"] for a in alerts] + [layout.components[s] for s in shown if moved[s]]
    picked = set(list(dict.fromkeys(ranked))[:LOG_SERVICES]) or set(layout.entry[:1])
    return [r.name for r in layout.rows if r.name in picked]


def _logs(cap: Capture, layout: Layout, read: list[str], rng: np.random.Generator, gaps: float) -> list[dict]:
    """Warnings and errors of the `read` services over the last LOG_SECONDS, oldest first: the newest LOG_LINES the log
    sensor writes (as `observe.logs.query_logs` walks them, newest tick first)."""
    view = cap.view
    rec = view.rec
    services = np.array(sorted(layout.index[n] for n in read))
    sources = np.arange(N_SOURCES)
    last = rec.ticks - 1
    found: list[tuple[float, int, str, str, str]] = []
    for k in range(last, last - int(math.ceil(LOG_SECONDS / rec.dt)), -1):
        if len(found) >= LOG_LINES:
            break
        ts = view.tick(k)
        bases = hashed(rec.seed, LOGS, view.gworld, k, services[:, None], sources[None, :]).tolist()
        for j, s in enumerate(services):
            for time, r, level, message, _ in component_lines(ts, int(s), {"WARN", "ERROR"}, bases[j]):
                found.append((time, int(s), view.pod_names[r], level, message))
    found.sort(key=lambda x: x[0], reverse=True)
    found = found[:LOG_LINES]
    if gaps > 0 and found:
        keep = rng.random(len(found)) >= gaps
        found = [line for line, k in zip(found, keep) if k]
    return [{"time": iso(round(t, 6)), "service": layout.components[s], "pod": pod, "level": level,
             "message": message} for t, s, pod, level, message in reversed(found)]


def _map_rows(layout: Layout, in_view: list[str]) -> list[MapRow]:
    """Every row of a small system's map; of a large one (at most MAP_SHOWN rows, in the map's order) the entry
    services, the components in view (in the order given), then their documented neighbours."""
    if len(layout.rows) <= MAP_LIMIT:
        return layout.rows
    wanted = list(dict.fromkeys(n for n in [*layout.entry, *in_view] if n in layout.neighbours))[:MAP_SHOWN]
    near = sorted({m for n in wanted for m in layout.neighbours[n]} - set(wanted), key=layout.index.__getitem__)
    names = set(wanted) | set(near[:max(MAP_SHOWN - len(wanted), 0)])
    return [r for r in layout.rows if r.name in names]


# ---- text ------------------------------------------------------------------------------------------------------------

_UNITS = {"req/s": "requests/s", "%": "ratio", "ms": "seconds", "count": "count"}


def _utc(unix: float) -> str:
    return datetime.fromtimestamp(float(unix), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _clock(unix: float) -> str:
    return datetime.fromtimestamp(float(unix), tz=timezone.utc).strftime("%H:%M")


def _list(names: list[str]) -> str:
    return ", ".join(names)


def _rounded(values: np.ndarray) -> np.ndarray:
    """Samples as stored: 4 significant digits (a dashboard's precision; it keeps the files small), None for no
    data (an object array)."""
    finite = np.isfinite(values)
    safe = np.where(finite & (values != 0), np.abs(values), 1.0)
    scale = 10.0 ** (3 - np.floor(np.log10(safe)))
    out = np.where(finite, np.round(values * scale) / scale, 0.0).astype(object)
    out[~finite] = None
    return out


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ratio":
        v = 100.0 * value
        return f"{v:.1f}" if v < 10 else f"{v:.0f}"
    if unit == "seconds":
        v = 1000.0 * value
        return f"{v:.1f}" if v < 10 else f"{v:.0f}"
    if value < 10 and not float(value).is_integer():
        return f"{value:.2f}" if value < 1 else f"{value:.1f}"
    return f"{value:.0f}" if value < 100_000 else f"{value / 1000:.0f}k"


def _alerts_text(alerts: list[dict], firing: list[dict]) -> str:
    if not alerts:
        return "no active alerts"
    out = []
    for a in alerts:
        out.append(f"FIRING  {a['alertname']}  severity={a['severity']}  {{namespace=\"{NAMESPACE}\", "
                   f"service=\"{a['service']}\"}}  since {a['since']}")
        out.append(f"         {a['summary']}")
    if len(firing) > len(alerts):
        more = Counter(a["alertname"] for a in firing[len(alerts):])
        out.append(f"... {len(firing) - len(alerts)} more firing alerts: "
                   + ", ".join(f"{name} x{n}" for name, n in sorted(more.items(), key=lambda kv: (-kv[1], kv[0]))))
    return "\n".join(out)


def _changes_text(rows: list[dict], earlier: int) -> str:
    if not rows:
        return "no changes"
    table = [["TIME (UTC)", "KIND", "TARGET", "CHANGE", "BY"]]
    table += [[r["time"], r["kind"], r["target"], f"{r['before']} -> {r['after']}", r["by"]] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(([f"... {earlier} earlier changes"] if earlier else []) + lines)


def _metrics_text(rows: list[dict], times: list[str], names: list[str]) -> str:
    width = max(len(n) for n in names) if names else 7
    header = "service".ljust(width) + "".join(f"{t:>7}" for t in times)
    out = []
    by_metric: dict[str, list[dict]] = {}
    for r in rows:
        by_metric.setdefault(r["metric"], []).append(r)
    for m in METRICS:
        if m.key not in by_metric:
            continue
        out += [f"{m.title}  [{m.promql}]", header]
        for r in by_metric[m.key]:
            out.append(r["service"].ljust(width) + "".join(f"{_cell(v, r['unit']):>7}" for v in r["values"]))
        out.append("")
    return "\n".join(out).rstrip()


def _logs_text(logs: list[dict]) -> str:
    if not logs:
        return "no log lines"
    return "\n".join(f"{ln['time']}  {ln['service']}/{ln['pod']}  {ln['level']:<5}  {ln['message']}" for ln in logs)


def _some(items: list[str] | tuple[str, ...], first: set[str], sep: str = ", ") -> str:
    """At most LIST_SHOWN of `items` (those in `first` first, then in order), and how many more there are."""
    if len(items) <= LIST_SHOWN:
        return sep.join(items)
    ranked = sorted(range(len(items)), key=lambda i: (items[i].split(" ")[0] not in first, i))[:LIST_SHOWN]
    return sep.join(items[i] for i in sorted(ranked)) + f"{sep}+{len(items) - LIST_SHOWN} more"


def _map_text(layout: Layout, rows: list[MapRow]) -> str:
    """The documented map as text. On a large system the lists are cut (the structured field keeps them whole):
    the endpoints and calls of the components listed come first."""
    listed = {r.name for r in rows}
    endpoints = layout.endpoints
    if len(endpoints) > LIST_SHOWN:
        order = sorted(range(len(endpoints)), key=lambda i: (endpoints[i][1] not in listed, i))[:LIST_SHOWN]
        endpoints = [endpoints[i] for i in sorted(order)]
    lines = ["Entry endpoints" + (f" ({len(layout.endpoints)}, {len(endpoints)} shown):"
                                  if len(endpoints) < len(layout.endpoints) else ":")]
    width = max(len(n) for n, _ in endpoints)
    lines += [f"  {n.ljust(width)}  -> {s}" for n, s in endpoints]
    lines.append(f"Components ({len(layout.rows)}; pods on nodes; documented calls):")
    width = max(len(r.name) for r in rows)
    for r in rows:
        lines.append(f"  {r.name.ljust(width)}  {r.kind:<9}  x{r.replicas}  on {_some(r.nodes, set(), ',') or '-'}"
                     + (f"  -> {_some(r.calls, listed)}" if r.calls else ""))
    if len(rows) < len(layout.rows):
        lines.append(f"  ... {len(layout.rows) - len(rows)} more components, none of them in view above")
    lines.append("Nodes by zone:")
    lines += [f"  {zone}: {', '.join(nodes)}" for zone, nodes in layout.zones.items()]
    return "\n".join(lines)
