"""The metric sensors: what Prometheus would scrape from a system's exporters, read off the truth state each tick.

`MetricSensor(engine)` fixes the series catalogue of a topology (names, types and labels as the real exporters
write them: the service's own RED metrics, cAdvisor, kube-state-metrics, node-exporter, postgres/redis/kafka
exporters, blackbox probes, NVIDIA DCGM; `docs/telemetry.md` lists them) and `scrape(truth)` turns one tick of truth
and replica state into one sample row [B, M] for every world at once. Counters accumulate between scrapes and start
again from zero when their pod restarts; a pod that is gone, a target whose scrape failed or a missing series has no
sample (NaN). Nothing here reads a fault: only the truth, the replicas and the knobs (the system's state).

Texture (`Imperfections.texture`, on by default): counters count whole events (Poisson draws around the expected
increase), CPU, bytes and GC seconds jitter, pods keep levels of their own, the working set wanders, latencies
breathe and now and then stall; the constants under "texture" below name the recorded figures they come from
(`calibration.texture` measures both sides). The exporters ran before the episode: counters begin at what their pod's
age accumulated, and the first scrape writes HISTORY seconds of earlier scrapes into the store, so range functions
are steady from the start. Every draw is keyed (`observe.noise`): a world's telemetry does not depend on its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from opsworld.engine import queueing as qt
from opsworld.engine.knobs import GPU_HEALTH
from opsworld.engine.real import REAL
from opsworld.engine.segments import Segments
from opsworld.engine.replicas import ABSENT, CRASHED, RUNNING, STARTING
from opsworld.engine.topology import CALL, CONSUME, KINDS, MISS, PUBLISH
from opsworld.engine.truth import Truth
from opsworld.observe.imperfection import Imperfections
from opsworld.observe.names import Names
from opsworld.observe.noise import TEXTURE, hashed, uniform
from opsworld.observe.store import Family, MetricStore

if TYPE_CHECKING:
    from opsworld.engine import Engine

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)   # Prometheus' default histogram buckets
CODES = ("200", "500", "502", "503", "504")   # success, then the truth's failure causes in CAUSES order
PROBES = 1.0                      # checks a second of each entry endpoint by the correctness prober
PROBE_RESULTS = ("ok", "wrong", "error")
SLOW_QUERY = 1.0                  # seconds: the datastores' slow-query log threshold
REQUEST_BYTES, RESPONSE_BYTES = 2_000.0, 8_000.0
MIB = 2.0 ** 20
BALANCE = 0.2          # replicas' shares of their component's requests vary by up to +-10% around an even split
LOAD, WORKING_SET = 3, 4   # what the sensors' coin flips are about (see observe.noise)

# ---- texture: what makes scraped telemetry more than its expected value (issue 20) ----------------------------------
# Measured on Nezha's recordings by `calibration.texture` (per-series medians over calm 10-minute windows, one-minute
# points); `opsworld`'s texture report puts the model's figures beside them.
EXACT_COUNT = 10.0        # a count with a smaller mean is drawn exactly (inverse Poisson CDF), a larger one from a
                          # skew-corrected normal (its error in any quantile is under a count)
# a pod's CPU seconds over one 10-s tick vary by a lognormal factor: the recordings' one-minute CPU CV is 0.19
# (Online Boutique) to 0.33 (Train Ticket), and 0.45 / sqrt(6 ticks) = 0.18 a minute before the load's own noise
CPU_JITTER = 0.45
# ... and now and then a burst of background work (GC, a cron, a log flush) multiplies one tick's CPU 4-10 times:
# the recordings' one-minute CPU outlier rates (beyond 5 MADs of an 11-minute running median, pooled over pods) are
# 0.005 (Online Boutique) and 0.053 (Train Ticket); 0.005 a tick gives about 2% of the minutes (their geometric mean)
CPU_BURST, CPU_BURST_SIZE = 0.005, (4.0, 10.0)
# the working set wanders as caches and heaps breathe: a moving average of MEMORY_TICKS ticks' draws, sd
# MEMORY_WANDER; the recordings' one-minute memory CV is 0.0000 (Online Boutique: often the same value minute
# after minute) to 0.0003 (Train Ticket), with lag-1 autocorrelation 0.57 and 0.48 (windows of 10 minutes)
MEMORY_WANDER, MEMORY_TICKS = 0.0004, 18
# each pod of a deployment keeps a level of its own (its share of hot keys, its heap, its caches): sd of a fixed
# factor on its CPU and working set. Not measurable in the recordings (one pod per service there): an assumption
# sized from the replica-to-replica spread usual in Kubernetes dashboards
POD_CPU_LEVEL, POD_MEMORY_LEVEL = 0.08, 0.05
BYTES_JITTER = 0.05       # request and response sizes vary: sd of the factor on a tick's network bytes (assumed)
GC_JITTER = 0.3           # stop-the-world pauses come in lumps: sd of the factor on a tick's GC seconds (assumed)
LATENCY_CV = 1.0          # a histogram's `_sum` varies as N requests' durations do (about exponential, CV 1)
# stray latency outliers: with chance STALL a tick, a service stalls (CPU throttling, a GC pause, a slow disk) and a
# share STALL_SHARE of the tick's requests take STALL_SECONDS more; the recordings' one-minute server P90 outlier rates
# (pooled) are 0.050 (Online Boutique) and 0.19 (Train Ticket, where pods serve under a request a second and one slow
# call moves the P90); with the counting noise and the pace below the model shows 0.04 and 0.08
STALL, STALL_SHARE, STALL_SECONDS = 0.004, (0.3, 1.0), (0.25, 2.5)
# a service's latencies breathe from tick to tick (scheduling, noisy neighbours, cache state): one tick's durations
# scaled by a lognormal factor of this sd (mean 1). The recordings' one-minute server P90 CV is 0.18 (Online
# Boutique) and 0.51 (Train Ticket), with no persistence (lag-1 -0.10, -0.13): 0.45 / sqrt(6 ticks) = 0.18
LATENCY_JITTER = 0.45
HISTORY = 1800.0          # seconds of scrapes before the episode starts that the store holds (30 min: longer than
                          # any rule's or common query's range, so `rate(x[5m])` is steady from the first minute)
AGE = 86400.0             # seconds exporters without a pod of their own had been up when the episode began
_TICK0 = 2 ** 20          # the texture's draws are keyed by `_TICK0 + tick`: history ticks (tick < 0) are keys too
# what a texture draw is about, beside the series and the tick
_COUNT, _BURST, _BURST_SIZE, _STALL, _STALL_SHARE, _STALL_SIZE, _SUM, _WANDER, _LEVEL, _BEFORE, _PACE = range(11)


class Tick:
    """What one tick's sensors read, world axis last (as the engine holds it): `tick.x` is the truth field `x` as
    [S, B] (or [E, B], [N, B], [P, B]; [S, 4, B] for causes), plus the replicas' state [R, B]."""

    def __init__(self, truth: Truth, engine: "Engine", now: float, share: np.ndarray) -> None:
        self.truth, self.engine, self.dt, self.now = truth, engine, engine.dt, now
        self.knobs = engine.knobs
        self.state = engine.replicas.state          # [R, B]
        self.memory = engine.replicas.memory        # [R, B] bytes
        self.share = share                          # [R, B] each running replica's share of its component's requests
        self.worlds = engine.worlds
        self._cache: dict[str, object] = {}

    def __getattr__(self, name: str) -> np.ndarray:
        value = getattr(self.truth, name)
        return value.transpose(1, 2, 0) if value.ndim == 3 else value.T

    def cached(self, key: str, make: Callable[[], object]) -> object:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


@dataclass
class Block:
    """Rows of one metric family that one formula fills: `value(tick)` -> [n, B] (for counters, the increase
    over the tick), `present(tick)` -> [n, B] bool or None (always present), `pods` [n] the replica slot whose restart
    resets a counter (-1: none), `target` [n] the scrape target each column comes from."""

    family: str
    series: str
    labels: list[dict[str, str]]
    value: Callable[[Tick], np.ndarray]
    counter: bool = False
    present: Callable[[Tick], np.ndarray] | None = None
    pods: np.ndarray | None = None
    target: np.ndarray | None = None


class MetricSensor:
    """The exporters of one topology and Prometheus' scrapes of them, for a batch of worlds."""

    def __init__(self, engine: "Engine", imperfections: Imperfections | None = None,
                 retention: int | None = None) -> None:
        self.engine = engine
        self.topology = topo = engine.topology
        self.imperfections = imperfections or Imperfections()
        self.names = Names(topo)
        self.targets: list[dict[str, str]] = []       # scrape targets: job, instance
        self._target_pod: list[int] = []             # the replica slot a target runs in (-1: none)
        self._target_node: list[int] = []            # the node an exporter runs on (-1: none)
        self.families: list[Family] = []
        self.blocks: list[Block] = []
        B = engine.worlds
        self._world = (engine.first_world + np.arange(B))[None, :]
        self._slot = np.arange(len(topo.replica_component))[:, None]
        textured = self.imperfections.texture
        # each pod's own level of CPU and working set (a fixed factor, sd POD_*_LEVEL; 1 without texture)
        self._cpu_level, self._memory_level = (                                                      # [R, B]
            1.0 + (level * _normal(uniform(engine.seed, TEXTURE, self._world, self._slot, _LEVEL, k))
                   if textured else 0.0) for k, level in ((0, POD_CPU_LEVEL), (1, POD_MEMORY_LEVEL)))
        self._build()
        # counters first, so that their running totals are one contiguous slice of every row
        self.blocks.sort(key=lambda b: not b.counter)
        self.labels = [lab for b in self.blocks for lab in b.labels]
        self._slices, start = [], 0
        for b in self.blocks:
            self._slices.append(slice(start, start + len(b.labels)))
            start += len(b.labels)
        self.store = MetricStore(self.labels, self.families, B, retention)
        self._counters = slice(0, sum(len(b.labels) for b in self.blocks if b.counter))
        self._pod = np.concatenate([b.pods if b.pods is not None else np.full(len(b.labels), -1)
                                    for b in self.blocks])
        self._target = np.concatenate([b.target if b.target is not None else np.full(len(b.labels), -1)
                                       for b in self.blocks])
        self.totals = np.zeros((self._counters.stop, B))   # counters' running totals
        self._series_of = [np.flatnonzero(self._target == k) for k in range(len(self.targets))]   # each target's
        self._up_rows = next(s for b, s in zip(self.blocks, self._slices) if b.series == "up")
        self._target_pod, self._target_node = np.array(self._target_pod), np.array(self._target_node)
        self._pod_targets = np.flatnonzero(self._target_pod >= 0)
        self._target_place = np.where(self._target_pod >= 0, self.topology.replica_node[np.maximum(self._target_pod, 0)],
                                      np.maximum(self._target_node, 0))  # the node a target runs on (exporters: any)
        self._node_targets = np.flatnonzero(self._target_node >= 0)
        self._launched = engine.replicas.launched.copy()    # [R, B] to see pod restarts
        self._texture = _Texture(self) if textured else None
        self._begun = False           # whether the first scrape (and the history before it) is written
        self._imperfect = self.imperfections.for_catalogue(self.labels, len(self.targets), engine.seed,
                                                           engine.first_world, B)

    # ---- scraping ------------------------------------------------------------------------------------------------
    def scrape(self, truth: Truth) -> np.ndarray:
        """Account one tick of truth; store the scrape at its end and return it, world-last: [M, B], NaN = no
        sample."""
        engine, reps = self.engine, self.engine.replicas
        # a load balancer never splits exactly evenly: each running replica takes a share that wanders a little
        comp = self.topology.replica_component
        weight = reps.running * (1.0 + BALANCE * (uniform(engine.seed, LOAD, self._world, engine.tick,
                                                          self._slot) - 0.5))
        share = weight / np.maximum(reps.per_component(weight)[comp], 1e-12)           # [R, B], 1 per component
        tick = Tick(truth, engine, engine.scenario.traffic.start + truth.time, share)
        first = not self._begun
        # the first scrape is made aside: the history before it goes into the store first
        row = np.empty((len(self.labels), engine.worlds)) if first else self.store.next_rows(tick.now)
        for block, rows in zip(self.blocks, self._slices):
            row[rows] = block.value(tick)
        up = self._up(tick)                                                  # [targets, B], NaN = no target
        if first:
            self._history(row.copy(), tick, up)
        # counting noise, jitter, bursts and stalls on this tick's increments and gauges
        if self._texture is not None:
            self._texture.apply(row[None], np.array([_TICK0 + engine.tick]))
        # counters: add the tick's increase; a restarted pod's counters start again from zero
        restarted = reps.launched != self._launched                          # [R, B]
        if restarted.any():
            self._launched = reps.launched.copy()
            counted = self._pod[self._counters]
            pods = counted >= 0
            reset = np.zeros(self.totals.shape, dtype=bool)
            reset[pods] = restarted[counted[pods]]
            self.totals[reset] = 0.0
        self.totals += row[self._counters]
        row[self._counters] = self.totals
        self._blank(row, tick, up)
        self._imperfect.apply(row)
        if first:
            self.store.append_rows(tick.now, row)
            self._begun = True
        return row

    def _blank(self, row: np.ndarray, tick: Tick, up: np.ndarray) -> None:
        """What is not there, in place on a row [M, B]: a pod that is not running, a target whose scrape failed or
        timed out (a hung process); and `up` itself."""
        for block, rows in zip(self.blocks, self._slices):
            if block.present is not None:
                np.copyto(row[rows], np.nan, where=~block.present(tick))
        row[self._up_rows] = up
        scraped = up > 0                                                     # NaN compares false: absent too
        nowhere = ~scraped.any(axis=1)
        partly = np.flatnonzero(~nowhere & ~scraped.all(axis=1))
        if nowhere.any():
            row[np.concatenate([self._series_of[k] for k in np.flatnonzero(nowhere)])] = np.nan
        if partly.size:
            rows = np.concatenate([self._series_of[k] for k in partly])
            row[rows] += np.where(scraped, 0.0, np.nan)[self._target[rows]]

    def _history(self, expected: np.ndarray, tick: Tick, up: np.ndarray) -> None:
        """Write the scrapes of the HISTORY seconds before the first one (the exporters ran before the episode):
        counters count up to the first tick at its rate, from the count accumulated over their pod's age (exporters
        without a pod: AGE); gauges read as at the first tick; both with their texture. Leaves the counters'
        running totals at the last of them. `expected` [M, B]: the first tick's expected increments and gauges."""
        engine, dt, C = self.engine, self.engine.dt, self._counters.stop
        retention = self.store.retention
        H = int(round(HISTORY / dt))
        if retention is not None:
            H = min(H, retention - 1)
        # when each series' process began, seconds on the episode's clock: its pod's launch, else AGE ago
        pod = self._pod
        born = np.where((pod >= 0)[:, None], engine.replicas.launched[np.maximum(pod, 0)], -AGE)       # [M, B]
        oldest = engine.time - H * dt                                        # the time of the first history scrape
        gone = np.zeros_like(expected)
        self._blank(gone, tick, up)
        gone = np.isnan(gone)                                                # [M, B] no sample at the first tick
        self.store.reserve(H + 1 + max(engine.ticks - engine.tick, 0))   # the history, this scrape and the rest
        # the count accumulated before the oldest history scrape, at the first tick's rate
        start = expected.copy()
        before = np.maximum((oldest - dt - born[:C]) / dt, 0.0)              # [C, B] ticks before it
        if self._texture is not None:
            self._texture.apply(start[None], np.array([_TICK0 + engine.tick]), ticks=before, what=_BEFORE)
        else:
            start[:C] *= before
        self.totals = start[:C].copy()
        # then H scrapes at the first tick's rate, in chunks of ticks (arrays [h, M, B] of bounded size)
        chunk = max(1, min(H, 2 ** 22 // max(expected.size, 1)))
        for k0 in range(H, 0, -chunk):
            ks = np.arange(k0, max(k0 - chunk, 0), -1)                       # [h] ticks before the first, oldest first
            rows = np.repeat(expected[None], len(ks), axis=0)                # [h, M, B]
            if self._texture is not None:
                self._texture.apply(rows, _TICK0 + engine.tick - ks)
            when = engine.time - ks * dt                                     # [h] seconds on the episode's clock
            alive = when[:, None, None] > born[None]                         # [h, M, B] the process was up
            rows[:, :C] *= alive[:, :C]
            totals = self.totals + np.cumsum(rows[:, :C], axis=0)            # [h, C, B]
            self.totals = totals[-1].copy()
            rows[:, :C] = totals
            rows[~alive | gone[None]] = np.nan
            for values in rows:
                self._imperfect.apply(values)
                values[self._up_rows] = up
            self.store.extend_rows(tick.now - ks * dt, rows)

    def _up(self, tick: Tick) -> np.ndarray:
        """[targets, B]: 1 scraped, 0 failed (timed out), NaN no such target now."""
        up = np.ones((len(self.targets), tick.worlds))
        pods, nodes = self._pod_targets, self._node_targets
        if pods.size:
            p = self._target_pod[pods]
            hung = self.engine.replicas.hung_since[p] <= self.engine.time - self.engine.dt
            up[pods] = np.where(tick.state[p] == RUNNING, np.where(hung, 0.0, 1.0), np.nan)
        knobs = self.engine.knobs
        if nodes.size:
            up[nodes] = np.where(knobs.node_down[self._target_node[nodes]], 0.0, 1.0)
        if knobs.isolated.any():     # no route to a node: nothing on it can be scraped (nor anything, if none is left)
            cut = knobs.isolated[self._target_place]                          # [targets, B]
            up = np.where(cut | knobs.isolated.all(axis=0), np.where(np.isnan(up), np.nan, 0.0), up)
        return self._imperfect.fail_scrapes(up, self.engine.tick)

    # ---- the catalogue ---------------------------------------------------------------------------------------------
    def _family(self, name: str, kind: str, help: str) -> None:
        self.families.append(Family(name, kind, help))  # type: ignore[arg-type]

    def _target_for(self, job: str, instance: str, pod: int = -1, node: int = -1) -> int:
        self.targets.append({"job": job, "instance": instance})
        self._target_pod.append(pod)
        self._target_node.append(node)
        return len(self.targets) - 1

    def _build(self) -> None:
        topo, names = self.topology, self.names
        S = topo.n_components
        comp = topo.replica_component
        pods = np.arange(len(comp))
        pod_target = np.array([self._target_for(names.component(int(comp[r])), names.instance(r), pod=r)
                               for r in pods], dtype=np.int64)
        ksm = self._target_for("kube-state-metrics", "kube-state-metrics:8080")
        kubelet = np.array([self._target_for("kubelet", names.node_instance(n, 10250), node=n)
                            for n in range(len(topo.nodes))], dtype=np.int64)
        node_exporter = np.array([self._target_for("node-exporter", names.node_instance(n, 9100), node=n)
                                  for n in range(len(topo.nodes))], dtype=np.int64)
        entry = np.unique(topo.endpoint_component)
        kinds = np.array(KINDS)[topo.kind]
        self._red(pods, pod_target, entry)
        self._histograms(entry)
        self._clients()
        self._containers(pods, kubelet)
        self._kube_state(pods, ksm)
        self._runtime(pods, pod_target)
        self._datastores([s for s in range(S) if kinds[s] == "datastore"])
        self._caches([s for s in range(S) if kinds[s] == "cache"])
        self._queues()
        self._certificates()
        self._correctness()
        self._nodes(node_exporter)
        self._gpus()
        self._up_block()

    def _pod_labels(self, r: int, **extra: str) -> dict[str, str]:
        names, topo = self.names, self.topology
        c = int(topo.replica_component[r])
        return {"namespace": names.namespace, "service": names.component(c), "pod": names.pod(r),
                "node": names.node(int(topo.replica_node[r])),
                "zone": topo.zones[int(topo.node_zone[topo.replica_node[r]])], **extra}

    def _add(self, family: str, series: str, labels: list[dict[str, str]], value: Callable[[Tick], np.ndarray],
             counter: bool = False, present: Callable[[Tick], np.ndarray] | None = None,
             pods: np.ndarray | None = None, target: np.ndarray | None = None) -> None:
        if labels:
            full = [{"__name__": series, **lab} for lab in labels]
            self.blocks.append(Block(family, series, full, value, counter, present,
                                     None if pods is None else np.asarray(pods, dtype=np.int64),
                                     None if target is None else np.asarray(target, dtype=np.int64)))

    def _red(self, pods: np.ndarray, pod_target: np.ndarray, entry: np.ndarray) -> None:
        topo, names = self.topology, self.names
        self._family("http_server_requests", "counter", "Requests served, by response status code.")
        comp = topo.replica_component
        # internal services: per pod and code, from the component's outcome counts
        rows, labels = [], []
        for r in pods[~np.isin(comp[pods], entry)]:
            job = {"job": names.component(int(comp[r])), "instance": names.instance(int(r))}
            for k, code in enumerate(CODES):
                labels.append({**self._pod_labels(int(r), code=code), **job})
                rows.append((int(r), k))
        if rows:
            rr, kk = (np.array(x) for x in zip(*rows))
            cc = comp[rr]
            self._add("http_server_requests", "http_server_requests_total", labels,
                      lambda t: _outcomes(t)[cc, kk] * t.share[rr], counter=True, pods=rr, target=pod_target[rr])
        # entry services: per pod, endpoint and code; the endpoint's failures split like the service's causes
        rows, labels = [], []
        for r in pods[np.isin(comp[pods], entry)]:
            job = {"job": names.component(int(comp[r])), "instance": names.instance(int(r))}
            for p in np.flatnonzero(topo.endpoint_component == comp[r]):
                for k, code in enumerate(CODES):
                    labels.append({**self._pod_labels(int(r), endpoint=names.route(int(p)), code=code), **job})
                    rows.append((int(r), int(p), k))
        if rows:
            er, pp, ek = (np.array(x) for x in zip(*rows))
            hosts = topo.endpoint_component

            def endpoint_outcomes(t: Tick) -> np.ndarray:
                causes = t.failed_by_cause[hosts]                                    # [P, 4, B]
                total = causes.sum(axis=1, keepdims=True)
                mix = np.where(total > 0, causes / np.maximum(total, 1e-12), _FIRST_CAUSE)
                failed = t.failed[:, None, :]
                ok = np.maximum(t.requests[:, None, :] - failed, 0.0)
                return np.concatenate([ok, failed * mix], axis=1)[pp, ek]          # [n, B]

            self._add("http_server_requests", "http_server_requests_total", labels,
                      lambda t: endpoint_outcomes(t) * t.share[er], counter=True, pods=er, target=pod_target[er])

    def _histograms(self, entry: np.ndarray) -> None:
        topo, names = self.topology, self.names
        fam = "http_server_request_duration_seconds"
        self._family(fam, "histogram", "Duration of the requests served successfully, seconds.")
        les = np.array(BUCKETS, dtype=REAL)[None, :, None]     # the truth's precision: a histogram is coarse
        inner = np.array([s for s in range(topo.n_components) if s not in set(entry.tolist())], dtype=np.int64)

        def job(s: int) -> dict[str, str]:
            return {"job": names.component(s), "namespace": names.namespace, "service": names.component(s)}

        groups = (
            ([job(int(s)) for s in inner],
             lambda t: 1.0 - qt.gamma_sf(t.response_mean[inner][:, None], t.response_var[inner][:, None], les),
             lambda t: _outcomes(t)[inner, 0],
             lambda t: t.response_mean[inner]),
            ([{**job(int(topo.endpoint_component[p])), "endpoint": names.route(p)} for p in range(len(topo.endpoints))],
             lambda t: 1.0 - qt.skewed_sf(t.latency_mean[:, None], t.latency_var[:, None], t.latency_third[:, None],
                                          les),
             lambda t: np.maximum(t.requests - t.failed, 0.0),
             lambda t: t.latency_mean))
        for group, cdf, ok, mean in groups:
            if not group:
                continue
            labels = [{**g, "le": _le(le)} for g in group for le in BUCKETS] + [{**g, "le": "+Inf"} for g in group]

            def buckets(t: Tick, cdf=cdf, ok=ok) -> np.ndarray:
                n = ok(t)
                c = n[:, None, :] * cdf(t)                                           # [n, buckets, B]
                return np.concatenate([c.reshape(-1, t.worlds), n], axis=0)

            self._add(fam, fam + "_bucket", labels, buckets, counter=True)
            self._add(fam, fam + "_sum", group, lambda t, ok=ok, mean=mean: ok(t) * mean(t), counter=True)
            self._add(fam, fam + "_count", group, ok, counter=True)

    def _clients(self) -> None:
        topo, names = self.topology, self.names
        calls = np.isin(topo.edge_kind, (CALL, PUBLISH))
        pairs = sorted({(int(topo.edge_src[e]), int(topo.edge_dst[e])) for e in np.flatnonzero(calls)})
        if not pairs:
            return
        of_pair = [np.flatnonzero((topo.edge_src == a) & (topo.edge_dst == b) & calls) for a, b in pairs]
        first = np.array([e[0] for e in of_pair])
        dst = np.array([b for _, b in pairs])
        by_pair = Segments.of(np.concatenate(of_pair), np.concatenate([np.full(len(e), i)
                                                                        for i, e in enumerate(of_pair)]))
        self._family("http_client_requests", "counter", "Calls made to other services, by outcome.")
        self._family("http_client_request_duration_seconds", "summary", "Duration of calls to other services, seconds.")
        base = [{"namespace": names.namespace, "job": names.component(a), "service": names.component(a),
                 "target": names.component(b)} for a, b in pairs]

        def attempts(t: Tick) -> np.ndarray:
            return t.cached("client_attempts", lambda: by_pair.sum(t.edge_attempts))

        def duration(t: Tick) -> np.ndarray:
            return t.response_mean[dst] + topo.edge_network[first][:, None] + t.knobs.network_latency[first]

        outcome = [{**b, "outcome": "success"} for b in base] + [{**b, "outcome": "failure"} for b in base]
        self._add("http_client_requests", "http_client_requests_total", outcome,
                  lambda t: np.concatenate([attempts(t) * (1.0 - t.edge_failure[first]),
                                            attempts(t) * t.edge_failure[first]]), counter=True)
        self._add("http_client_request_duration_seconds", "http_client_request_duration_seconds_sum", base,
                  lambda t: attempts(t) * duration(t), counter=True)
        self._add("http_client_request_duration_seconds", "http_client_request_duration_seconds_count", base,
                  attempts, counter=True)

    def _containers(self, pods: np.ndarray, kubelet: np.ndarray) -> None:
        topo, names = self.topology, self.names
        comp, node = topo.replica_component, topo.replica_node
        labels = [{"namespace": names.namespace, "pod": names.pod(int(r)), "container": names.component(int(comp[r])),
                   "node": names.node(int(node[r])), "job": "kubelet"} for r in pods]
        for name, kind, help in (
                ("container_cpu_usage_seconds", "counter", "Cumulative CPU time consumed, seconds."),
                ("container_memory_working_set_bytes", "gauge", "Current working set, bytes."),
                ("container_spec_memory_limit_bytes", "gauge", "Memory limit, bytes."),
                ("container_fs_usage_bytes", "gauge", "Bytes used on the container's filesystem."),
                ("container_fs_limit_bytes", "gauge", "Size of the container's filesystem, bytes."),
                ("container_network_receive_bytes", "counter", "Bytes received."),
                ("container_network_transmit_bytes", "counter", "Bytes transmitted.")):
            self._family(name, kind, help)

        def alive(t: Tick) -> np.ndarray:
            return (t.state == RUNNING) | (t.state == STARTING)

        cores = topo.cpu[comp].astype(float)[:, None]
        limit = topo.memory_limit[comp].astype(float)[:, None]
        disk = topo.disk[comp].astype(float)[:, None]
        kw = dict(present=alive, pods=pods, target=kubelet[node[pods]])
        self._add("container_cpu_usage_seconds", "container_cpu_usage_seconds_total", labels,
                  lambda t: np.minimum(t.cpu_utilisation[comp] * _load(t) * self._cpu_level, 1.0) * cores * t.dt,
                  counter=True, **kw)
        if self.imperfections.texture:    # the pod's own level here; the wander and the 4 KiB pages: _Texture
            memory = lambda t: t.memory * self._memory_level   # noqa: E731
        else:   # the working set a kubelet reads wanders by a percent or so around the process's footprint
            memory = lambda t: 4096.0 * np.round(t.memory * (1.0 + 0.02 * (uniform(   # noqa: E731
                t.engine.seed, WORKING_SET, self._world, t.engine.tick, self._slot) - 0.5)) / 4096.0)
        self._add("container_memory_working_set_bytes", "container_memory_working_set_bytes", labels, memory, **kw)
        self._add("container_spec_memory_limit_bytes", "container_spec_memory_limit_bytes", labels,
                  lambda t: limit, **kw)
        self._add("container_fs_usage_bytes", "container_fs_usage_bytes", labels,
                  lambda t: t.engine.replicas.disk, **kw)
        self._add("container_fs_limit_bytes", "container_fs_limit_bytes", labels, lambda t: disk, **kw)
        self._add("container_network_receive_bytes", "container_network_receive_bytes_total", labels,
                  lambda t: t.offered[comp] * t.share * REQUEST_BYTES, counter=True, **kw)
        self._add("container_network_transmit_bytes", "container_network_transmit_bytes_total", labels,
                  lambda t: t.served[comp] * t.share * RESPONSE_BYTES, counter=True, **kw)

    def _kube_state(self, pods: np.ndarray, ksm: int) -> None:
        topo, names = self.topology, self.names
        comp = topo.replica_component
        ns = names.namespace
        pod_labels = [{"namespace": ns, "pod": names.pod(int(r)), "container": names.component(int(comp[r])),
                       "job": "kube-state-metrics"} for r in pods]
        for name, kind, help in (
                ("kube_pod_container_status_restarts", "counter", "Restarts of the container."),
                ("kube_pod_status_ready", "gauge", "Whether the pod is ready to serve requests."),
                ("kube_pod_container_status_waiting_reason", "gauge", "Why the container is waiting."),
                ("kube_pod_container_status_last_terminated_reason", "gauge", "Why the container last terminated."),
                ("kube_deployment_spec_replicas", "gauge", "Desired replicas."),
                ("kube_deployment_status_replicas_available", "gauge", "Available replicas."),
                ("kube_node_status_condition", "gauge", "The node's conditions."),
                ("kube_node_spec_unschedulable", "gauge", "Whether the node is cordoned."),
                ("kube_pod_container_resource_limits", "gauge", "The container's resource limits.")):
            self._family(name, kind, help)
        cpu = topo.cpu[comp].astype(float)[:, None]
        memory = topo.memory_limit[comp].astype(float)[:, None]

        def exists(t: Tick) -> np.ndarray:
            return t.state != ABSENT

        kw = dict(present=exists, target=np.full(len(pods), ksm))
        # kube-state-metrics outlives the pods: the restart count is the kubelet's, a gauge-like counter
        self._add("kube_pod_container_status_restarts", "kube_pod_container_status_restarts_total", pod_labels,
                  lambda t: t.engine.replicas.restarts, **kw)
        self._add("kube_pod_status_ready", "kube_pod_status_ready",
                  [{**lab, "condition": "true"} for lab in pod_labels], lambda t: t.state == RUNNING, **kw)
        self._add("kube_pod_container_status_waiting_reason", "kube_pod_container_status_waiting_reason",
                  [{**lab, "reason": "CrashLoopBackOff"} for lab in pod_labels], lambda t: t.state == CRASHED, **kw)
        self._add("kube_pod_container_resource_limits", "kube_pod_container_resource_limits",
                  [{**lab, "resource": r, "unit": u} for r, u in (("cpu", "core"), ("memory", "byte"))
                   for lab in pod_labels],
                  lambda t: np.concatenate([np.broadcast_to(cpu, t.state.shape), np.broadcast_to(memory, t.state.shape)]),
                  present=lambda t: np.concatenate([t.state != ABSENT] * 2), target=np.full(2 * len(pods), ksm))
        limit = topo.memory_limit[comp].astype(float)[:, None]
        B = self.engine.worlds
        seen = {"oom": np.zeros((len(pods), B)), "memory": self.engine.replicas.memory.copy(),
                "restarts": self.engine.replicas.restarts.copy()}

        def oom(t: Tick) -> np.ndarray:      # the last termination was for memory: it died at its limit
            restarts = t.engine.replicas.restarts
            died = restarts > seen["restarts"]
            if died.any():
                seen["oom"] = np.where(died, (seen["memory"] >= limit).astype(float), seen["oom"])
                seen["restarts"] = restarts.copy()
            seen["memory"] = t.memory.copy()
            return seen["oom"]

        self._add("kube_pod_container_status_last_terminated_reason",
                  "kube_pod_container_status_last_terminated_reason",
                  [{**lab, "reason": "OOMKilled"} for lab in pod_labels], oom, **kw)
        deploys = [{"namespace": ns, "deployment": names.component(s), "job": "kube-state-metrics"}
                   for s in range(topo.n_components)]
        at_ksm = np.full(len(deploys), ksm)
        self._add("kube_deployment_spec_replicas", "kube_deployment_spec_replicas", deploys,
                  lambda t: t.knobs.replicas, target=at_ksm)
        self._add("kube_deployment_status_replicas_available", "kube_deployment_status_replicas_available", deploys,
                  lambda t: t.ready_replicas, target=at_ksm)
        nodes = [{"node": names.node(n), "job": "kube-state-metrics"} for n in range(len(topo.nodes))]
        at_ksm = np.full(len(nodes), ksm)
        self._add("kube_node_status_condition", "kube_node_status_condition",
                  [{**n, "condition": "Ready", "status": "true"} for n in nodes], lambda t: ~t.knobs.node_down,
                  target=at_ksm)
        self._add("kube_node_spec_unschedulable", "kube_node_spec_unschedulable", nodes, lambda t: t.knobs.drained,
                  target=at_ksm)

    def _runtime(self, pods: np.ndarray, pod_target: np.ndarray) -> None:
        topo, names = self.topology, self.names
        comp = topo.replica_component
        labels = [{"namespace": names.namespace, "service": names.component(int(comp[r])), "pod": names.pod(int(r)),
                   "job": names.component(int(comp[r])), "instance": names.instance(int(r))} for r in pods]
        conc = topo.concurrency[comp].astype(float)[:, None]
        limit = topo.memory_limit[comp].astype(float)[:, None]
        self._family("process_threads", "gauge", "OS threads in the process.")
        self._family("runtime_gc_pause_seconds", "counter", "Time spent in stop-the-world garbage collection.")
        self._add("process_threads", "process_threads", labels,
                  lambda t: 12.0 + np.round(np.minimum(t.slot_utilisation[comp] * _load(t), 1.0) * conc), pods=pods,
                  target=pod_target)
        # collectors work harder as the heap fills: about 1% of the time at rest, up to a fifth near the limit
        self._add("runtime_gc_pause_seconds", "runtime_gc_pause_seconds_total", labels,
                  lambda t: t.dt * (0.01 + 0.2 * np.clip((t.memory / limit - 0.7) / 0.3, 0.0, 1.0)),
                  counter=True, pods=pods, target=pod_target)
        # connection pools on the callers' side, per (caller, datastore)
        pooled = np.flatnonzero(topo.edge_pool > 0)
        pairs = sorted({(int(topo.edge_src[e]), int(topo.edge_dst[e])) for e in pooled})
        if not pairs:
            return
        first = np.array([pooled[(topo.edge_src[pooled] == a) & (topo.edge_dst[pooled] == b)][0] for a, b in pairs])
        src, dst = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
        base = [{"namespace": names.namespace, "service": names.component(a), "job": names.component(a),
                 "pool_name": names.component(b)} for a, b in pairs]
        for name, help in (("db_client_connections_usage", "Connections in the pool, by state."),
                           ("db_client_connections_max", "The most connections the pool opens."),
                           ("db_client_connections_pending_requests", "Requests waiting for a connection.")):
            self._family(name, "gauge", help)

        def pool(t: Tick) -> tuple[np.ndarray, np.ndarray]:
            def make() -> tuple[np.ndarray, np.ndarray]:
                size = t.knobs.pool_size[first] * t.ready_replicas[src]
                busy = t.edge_attempts[first] / t.dt * t.response_mean[dst]       # Little's law
                return size, busy
            return t.cached("pool", make)  # type: ignore[return-value]

        states = [{**b, "state": "used"} for b in base] + [{**b, "state": "idle"} for b in base]
        self._add("db_client_connections_usage", "db_client_connections_usage", states,
                  lambda t: np.concatenate([np.minimum(pool(t)[1], pool(t)[0]),
                                            np.maximum(pool(t)[0] - pool(t)[1], 0.0)]))
        self._add("db_client_connections_max", "db_client_connections_max", base, lambda t: pool(t)[0])
        self._add("db_client_connections_pending_requests", "db_client_connections_pending_requests", base,
                  lambda t: np.maximum(pool(t)[1] - pool(t)[0], 0.0))

    def _datastores(self, stores: list[int]) -> None:
        if not stores:
            return
        topo, names = self.topology, self.names
        s = np.array(stores)
        labels = [{"service": names.component(c), "job": "postgres-exporter",
                   "instance": f"{names.component(c)}-exporter:9187"} for c in stores]
        target = np.array([self._target_for("postgres-exporter", lab["instance"]) for lab in labels])
        for name, kind, help in (("pg_stat_activity_count", "gauge", "Connections open on the server."),
                                 ("pg_replication_lag_seconds", "gauge", "Replication lag behind the primary."),
                                 ("pg_slow_queries", "counter", "Queries slower than the slow-query threshold."),
                                 ("pg_settings_max_connections", "gauge", "The server's connection limit.")):
            self._family(name, kind, help)
        self._add("pg_settings_max_connections", "pg_settings_max_connections", labels, lambda t: connections(t)[1],
                  target=target)
        pools = [np.flatnonzero((topo.edge_dst == c) & (topo.edge_pool > 0)) for c in stores]

        def connections(t: Tick) -> tuple[np.ndarray, np.ndarray]:
            """[stores, B] the connections the callers' pools hold open (at most the limit), and the limit: sized
            with headroom over the pools, unless lowered below them (then the refused share of calls shows it)."""
            def make() -> tuple[np.ndarray, np.ndarray]:
                demand = np.stack([(t.knobs.pool_size[e] * t.ready_replicas[topo.edge_src[e]]).sum(axis=0)
                                   if e.size else np.zeros(t.worlds) for e in pools])
                refused = np.stack([t.knobs.blocked[e].max(axis=0) if e.size else np.zeros(t.worlds) for e in pools])
                limit = np.where(refused > 0, np.round(demand * (1.0 - refused)), np.round(1.25 * demand) + 10.0)
                busy = np.round(t.offered[s] / t.dt * t.response_mean[s])          # queries in flight
                return np.minimum(np.maximum(demand, busy), limit) + 1.0, np.maximum(limit, 1.0)
            return t.cached("connections", make)  # type: ignore[return-value]

        self._add("pg_stat_activity_count", "pg_stat_activity_count", labels, lambda t: connections(t)[0],
                  target=target)
        self._add("pg_replication_lag_seconds", "pg_replication_lag_seconds", labels,
                  lambda t: t.knobs.replication_lag[s], target=target)
        self._add("pg_slow_queries", "pg_slow_queries_total", labels,
                  lambda t: t.served[s] * qt.gamma_sf(t.response_mean[s], t.response_var[s], np.array(SLOW_QUERY)),
                  counter=True, target=target)

    def _caches(self, caches: list[int]) -> None:
        if not caches:
            return
        topo, names = self.topology, self.names
        c = np.array(caches)
        miss = [np.flatnonzero((topo.edge_src == x) & (topo.edge_kind == MISS)) for x in caches]
        miss_edge = np.array([m[0] if m.size else -1 for m in miss])
        labels = [{"service": names.component(x), "job": "redis-exporter",
                   "instance": f"{names.component(x)}-exporter:9121"} for x in caches]
        target = np.array([self._target_for("redis-exporter", lab["instance"]) for lab in labels])
        clients = np.array([float(topo.replicas[np.unique(topo.edge_src[topo.edge_dst == x])].sum())
                            for x in caches])[:, None]
        for name, kind, help in (("redis_keyspace_hits", "counter", "Lookups answered from the cache."),
                                 ("redis_keyspace_misses", "counter", "Lookups not found in the cache."),
                                 ("redis_evicted_keys", "counter", "Keys evicted to make room."),
                                 ("redis_connected_clients", "gauge", "Client connections.")):
            self._family(name, kind, help)

        def misses(t: Tick) -> np.ndarray:
            m = np.where(miss_edge[:, None] >= 0, t.edge_attempts[np.maximum(miss_edge, 0)], 0.0)
            return np.minimum(m, t.served[c])

        self._add("redis_keyspace_hits", "redis_keyspace_hits_total", labels,
                  lambda t: np.maximum(t.served[c] - misses(t), 0.0), counter=True, target=target)
        self._add("redis_keyspace_misses", "redis_keyspace_misses_total", labels, misses, counter=True, target=target)
        self._add("redis_evicted_keys", "redis_evicted_keys_total", labels, lambda t: 0.05 * misses(t), counter=True,
                  target=target)
        self._add("redis_connected_clients", "redis_connected_clients", labels,
                  lambda t: clients * (t.ready_replicas[c] > 0), target=target)

    def _queues(self) -> None:
        topo, names = self.topology, self.names
        consume = np.flatnonzero(topo.edge_kind == CONSUME)
        if not consume.size:
            return
        pairs = sorted({(int(topo.edge_src[e]), int(topo.edge_dst[e])) for e in consume})
        queue = np.array([a for a, _ in pairs])
        self._family("kafka_consumergroup_lag", "gauge", "Messages the consumer group is behind.")
        labels = [{"topic": names.component(a), "consumergroup": names.component(b), "job": "kafka-exporter",
                   "instance": "kafka-exporter:9308"} for a, b in pairs]
        target = self._target_for("kafka-exporter", "kafka-exporter:9308")
        self._add("kafka_consumergroup_lag", "kafka_consumergroup_lag", labels,
                  lambda t: np.round(t.queue_depth[queue]), target=np.full(len(pairs), target))

    def _certificates(self) -> None:
        topo, names = self.topology, self.names
        if not topo.certificates:
            return
        target = self._target_for("blackbox", "blackbox-exporter:9115")
        labels = [{"instance": f"https://{names.component(int(c))}:443", "service": names.component(int(c)),
                   "job": "blackbox"} for c in topo.cert_component]
        self._family("probe_ssl_earliest_cert_expiry", "gauge", "Earliest certificate expiry, Unix seconds.")
        self._family("probe_success", "gauge", "Whether the probe succeeded.")
        at = np.full(len(labels), target)
        self._add("probe_ssl_earliest_cert_expiry", "probe_ssl_earliest_cert_expiry", labels,
                  lambda t: t.knobs.cert_not_after, target=at)
        self._add("probe_success", "probe_success", labels, lambda t: t.knobs.cert_not_after > t.now, target=at)

    def _correctness(self) -> None:
        """The correctness prober (the SRE workbook's correctness SLI): from outside the cluster it sends every entry
        endpoint known requests, `PROBES` a second, and checks each answer against the known right one — ok, wrong
        (a success with the wrong content: only a checker that knows the answer sees it; the services' own counters
        count it as a success) or error (failed, refused, timed out). Its checks fare as the users' requests do."""
        topo, names = self.topology, self.names
        P = len(topo.endpoint_component)
        if not P:
            return
        instance = "prober:9313"
        target = self._target_for("prober", instance)
        self._family("probe_checks", "counter", "Answers of an entry endpoint checked by the correctness prober, "
                                                "by result.")
        labels, rows = [], []
        for p in range(P):
            where = {"namespace": names.namespace, "service": names.component(int(topo.endpoint_component[p])),
                     "endpoint": names.route(p), "job": "prober", "instance": instance}
            for k, result in enumerate(PROBE_RESULTS):
                labels.append({**where, "result": result})
                rows.append((p, k))
        pp, kk = (np.array(x) for x in zip(*rows))

        def results(t: Tick) -> np.ndarray:
            sent = t.requests                                                  # [P, B]
            wrong = np.where(sent > 0, t.wrong / np.maximum(sent, 1e-12), 0.0)
            failed = np.where(sent > 0, t.failed / np.maximum(sent, 1e-12), 0.0)
            ok = np.maximum(1.0 - wrong - failed, 0.0)
            return np.stack([ok, wrong, failed], axis=1)[pp, kk] * (PROBES * t.dt)      # [n, B]

        self._add("probe_checks", "probe_checks_total", labels, results, counter=True,
                  target=np.full(len(labels), target))

    def _nodes(self, node_exporter: np.ndarray) -> None:
        topo, names = self.topology, self.names
        N = len(topo.nodes)
        base = [{"node": names.node(n), "zone": topo.zones[int(topo.node_zone[n])], "job": "node-exporter",
                 "instance": names.node_instance(n, 9100)} for n in range(N)]
        cores = topo.node_cpu.astype(float)[:, None]
        memory = topo.node_memory.astype(float)[:, None]
        for name, kind, help in (("node_cpu_seconds", "counter", "Seconds the CPUs spent in each mode."),
                                 ("node_memory_MemTotal_bytes", "gauge", "Memory, bytes."),
                                 ("node_memory_MemAvailable_bytes", "gauge", "Memory available, bytes."),
                                 ("node_load1", "gauge", "1-minute load average.")):
            self._family(name, kind, help)

        def modes(t: Tick) -> np.ndarray:
            used = np.minimum(t.node_cpu, cores)
            steal = np.minimum(t.knobs.cpu_steal, cores)
            return np.concatenate([np.maximum(cores - used - steal, 0.0), used, steal]) * t.dt

        self._add("node_cpu_seconds", "node_cpu_seconds_total",
                  [{**b, "mode": m} for m in ("idle", "user", "steal") for b in base], modes, counter=True,
                  target=np.tile(node_exporter, 3))
        self._add("node_memory_MemTotal_bytes", "node_memory_MemTotal_bytes", base, lambda t: memory,
                  target=node_exporter)
        self._add("node_memory_MemAvailable_bytes", "node_memory_MemAvailable_bytes", base,
                  lambda t: np.maximum(memory - t.node_memory, 0.0), target=node_exporter)
        self._add("node_load1", "node_load1", base, lambda t: t.node_cpu + t.knobs.cpu_steal, target=node_exporter)

    def _gpus(self) -> None:
        topo, names = self.topology, self.names
        comp = topo.replica_component
        slots = [(int(r), g) for r in range(len(comp)) for g in range(int(topo.gpu_count[comp[r]]))]
        if not slots:
            return
        rr = np.array([r for r, _ in slots])
        cc = comp[rr]
        labels = [{"gpu": str(g), "UUID": names.gpu_uuid(r, g), "Hostname": names.node(int(topo.replica_node[r])),
                   "namespace": names.namespace, "pod": names.pod(r), "container": names.component(int(comp[r])),
                   "job": "dcgm-exporter"} for r, g in slots]
        on_node = {n: self._target_for("dcgm-exporter", names.node_instance(n, 9400), node=n)
                   for n in sorted({int(topo.replica_node[r]) for r, _ in slots})}
        target = np.array([on_node[int(topo.replica_node[r])] for r, _ in slots])
        memory = (topo.gpu_memory[cc].astype(float) / MIB)[:, None]
        for name, kind, help in (("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
                                 ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
                                 ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
                                 ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
                                 ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
                                 ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
                                 ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Double-bit ECC errors, volatile."),
                                 ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter", "NVLink bandwidth, all lanes.")):
            self._family(name, kind, help)
        host = topo.replica_node[rr]
        health = lambda t: t.knobs.gpu_health[host]   # noqa: E731  [n, B] what ails each GPU's node

        def util(t: Tick) -> np.ndarray:
            return np.round(100.0 * np.clip(t.cpu_utilisation[cc], 0.0, 1.0))

        def used(t: Tick) -> np.ndarray:
            return np.round(np.clip(t.gpu_memory_fraction[cc], 0.0, 1.0) * memory)

        kw = dict(present=lambda t: t.state[rr] == RUNNING, pods=rr, target=target)
        self._add("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_GPU_UTIL", labels, util, **kw)
        self._add("DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_USED", labels, used, **kw)
        self._add("DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_FREE", labels, lambda t: memory - used(t), **kw)
        # a throttling GPU runs hot at half its clock; ECC double-bit errors raise XID 48, a lost GPU XID 79;
        # a degraded NVLink carries a fraction of its usual traffic
        thermal, ecc, link, lost = (GPU_HEALTH.index(h) for h in ("thermal", "ecc", "interconnect", "lost"))
        self._add("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_GPU_TEMP", labels,
                  lambda t: np.where(health(t) == thermal, 91.0, np.round(34.0 + 0.45 * util(t))), **kw)
        self._add("DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_SM_CLOCK", labels,
                  lambda t: np.where(health(t) == thermal, 990.0, 1980.0), **kw)
        self._add("DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_XID_ERRORS", labels,
                  lambda t: np.select([health(t) == ecc, health(t) == lost], [48.0, 79.0], 0.0), **kw)
        self._add("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", labels,
                  lambda t: (health(t) == ecc) * 0.2 * t.dt, counter=True, **kw)
        self._add("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", labels,
                  lambda t: util(t) * 2.5e8 * t.dt * np.where(health(t) == link, 0.2, 1.0), counter=True, **kw)

    def _up_block(self) -> None:
        self._family("up", "gauge", "1 if the target's last scrape succeeded, 0 if it failed.")
        self.blocks.append(Block("up", "up", [{"__name__": "up", **t} for t in self.targets], lambda t: 0.0))

    def __len__(self) -> int:
        return len(self.labels)


# ---- texture --------------------------------------------------------------------------------------------------------
_COUNTED = ("http_server_requests_total", "http_client_requests_total", "probe_checks_total",
            "pg_slow_queries_total", "redis_keyspace_hits_total", "redis_keyspace_misses_total",
            "redis_evicted_keys_total", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL")   # counts of discrete events: Poisson-like
_SCALED = {"container_cpu_usage_seconds_total": CPU_JITTER, "container_network_receive_bytes_total": BYTES_JITTER,
           "container_network_transmit_bytes_total": BYTES_JITTER, "runtime_gc_pause_seconds_total": GC_JITTER,
           "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": BYTES_JITTER}  # amounts: a lognormal factor of this sd
_HISTOGRAM = "http_server_request_duration_seconds"
_CLIENT = "http_client_request_duration_seconds"
# node_cpu_seconds_total stays exact: its modes add up to the node's cores


class _Texture:
    """Which rows of a catalogue get which texture, and the draws, keyed by (seed, world, series, tick, what): the
    same world gets the same telemetry in any batch. Rows are handled with a leading axis of ticks, [h, M, B]."""

    def __init__(self, sensor: "MetricSensor") -> None:
        engine, topo = sensor.engine, sensor.topology
        self.seed, self.world, self.slot = engine.seed, sensor._world, sensor._slot
        M = len(sensor.labels)
        self.base = hashed(engine.seed, TEXTURE, sensor._world, np.arange(M)[:, None])        # [M, B] per series
        rows_of = {id(b): np.arange(sl.start, sl.stop) for b, sl in zip(sensor.blocks, sensor._slices)}
        by_series: dict[str, list[Block]] = {}
        for b in sensor.blocks:
            by_series.setdefault(b.series, []).append(b)
        rows = lambda series: np.concatenate([rows_of[id(b)] for b in by_series.get(series, [])] or  # noqa: E731
                                             [np.zeros(0, np.int64)])
        self.count = np.concatenate([rows(n) for n in _COUNTED])                              # [n]
        self.scaled = np.concatenate([rows(n) for n in _SCALED])                              # [n]
        self.sigma = np.concatenate([np.full(len(rows(n)), s) for n, s in _SCALED.items()])[:, None]   # [n, 1]
        comp = topo.replica_component
        cpu = by_series.get("container_cpu_usage_seconds_total", [])
        self.cpu = rows("container_cpu_usage_seconds_total")
        self.cpu_cap = (topo.cpu[comp[cpu[0].pods]].astype(float)[:, None] * engine.dt if cpu   # [n, 1] seconds
                        else np.zeros((0, 1)))
        memory = by_series.get("container_memory_working_set_bytes", [])
        self.memory = rows("container_memory_working_set_bytes")
        self.memory_slot = memory[0].pods[:, None] if memory else np.zeros((0, 1), np.int64)   # [n, 1]
        self.memory_cap = (topo.memory_limit[comp[memory[0].pods]].astype(float)[:, None] if memory
                           else np.zeros((0, 1)))
        # histograms, group by group: [G, buckets + 1] rows of the cumulative buckets (+Inf last), [G] _sum, _count
        groups = zip(by_series.get(_HISTOGRAM + "_bucket", []), by_series.get(_HISTOGRAM + "_sum", []),
                     by_series.get(_HISTOGRAM + "_count", []))
        hist, hsum, hcount = [], [], []
        for bb, sb, cb in groups:
            n, r = len(cb.labels), rows_of[id(bb)]
            hist.append(np.concatenate([r[:n * len(BUCKETS)].reshape(n, len(BUCKETS)), r[n * len(BUCKETS):, None]],
                                       axis=1))
            hsum.append(rows_of[id(sb)])
            hcount.append(rows_of[id(cb)])
        self.hist = np.concatenate(hist) if hist else np.zeros((0, len(BUCKETS) + 1), np.int64)
        self.hsum = np.concatenate(hsum) if hsum else np.zeros(0, np.int64)
        self.hcount = np.concatenate(hcount) if hcount else np.zeros(0, np.int64)
        self.les = np.array(BUCKETS)
        # the clients' summaries follow their outcome counts: _count = success + failure
        calls = rows("http_client_requests_total")
        half = len(calls) // 2
        self.calls = (calls[:half], calls[half:])
        self.csum, self.ccount = rows(_CLIENT + "_sum"), rows(_CLIENT + "_count")

    def u(self, rows: np.ndarray, keys: np.ndarray, what: int) -> np.ndarray:
        """[h, *rows.shape, B] uniform draws for `rows` of the ticks `keys` [h]."""
        k = keys.reshape(-1, *([1] * (rows.ndim + 1)))
        return uniform(self.base[rows], k, what)

    def apply(self, row: np.ndarray, keys: np.ndarray, ticks: np.ndarray | None = None, what: int = _COUNT) -> None:
        """Texture rows [h, M, B] of expected values in place (ticks `keys` [h]): counters' increments become draws
        of what was counted, CPU and memory get their jitter, bursts and wander, histograms their stalls. With
        `ticks` [C, B], the counters' rows are the increments over that many ticks at the expected rate (the count
        before the episode): counts drawn over all of them, amounts' jitter shrunk by sqrt(ticks), no bursts."""
        if ticks is not None:
            row[:, :ticks.shape[0]] *= ticks
        shrink = 1.0 if ticks is None else 1.0 / np.sqrt(np.maximum(ticks, 1.0))
        # the clients' summaries: their expected mean duration, before the counts are drawn
        cmean = _ratio(row[:, self.csum], row[:, self.ccount])
        if self.count.size:
            row[:, self.count] = _poisson(row[:, self.count], self.u(self.count, keys, what))
        if self.scaled.size:
            sd = self.sigma * (shrink if ticks is None else shrink[self.scaled])
            z = _normal(self.u(self.scaled, keys, what))
            row[:, self.scaled] *= np.exp(sd * z - 0.5 * sd * sd)
        if ticks is None and self.cpu.size:      # bursts of background work, at most the pod's cores
            burst = self.u(self.cpu, keys, _BURST) < CPU_BURST
            if burst.any():
                lo, hi = CPU_BURST_SIZE
                row[:, self.cpu] *= np.where(burst, lo + (hi - lo) * self.u(self.cpu, keys, _BURST_SIZE), 1.0)
            row[:, self.cpu] = np.minimum(row[:, self.cpu], self.cpu_cap)
        if self.hist.size:
            self._histograms(row, keys, ticks is None, what)
        if self.ccount.size:
            n = row[:, self.calls[0]] + row[:, self.calls[1]]
            row[:, self.ccount] = n
            row[:, self.csum] = n * cmean
        if ticks is None and self.memory.size:
            self._memory(row, keys)

    def _histograms(self, row: np.ndarray, keys: np.ndarray, stalls: bool, what: int) -> None:
        """Each bucket's own requests drawn (independent Poisson counts: together, a Poisson total split
        multinomially), summed back into cumulative buckets: monotone in `le`, `_count` = +Inf, `_sum` the drawn
        requests' durations. A stall moves a share of a tick's requests STALL seconds up."""
        H, S, N = self.hist, self.hsum, self.hcount
        cum = row[:, H]                                                      # [h, G, b, B] expected, cumulative
        own = np.maximum(np.diff(cum, axis=2, prepend=0.0), 0.0)             # [h, G, b, B] each bucket's own
        total = cum[:, :, -1]                                                # [h, G, B]
        mean = _ratio(row[:, S], row[:, N])                                  # [h, G, B] expected mean duration
        late = np.zeros_like(total)                                          # [h, G, B] stalled seconds expected
        if stalls:
            # the tick's pace: every duration times a factor, so each bound reads the CDF at bound / factor
            # (interpolated in log(le) between the bounds; below the first, in proportion; above the last, held)
            z = _normal(self.u(N, keys, _PACE))
            pace = np.exp(LATENCY_JITTER * z - 0.5 * LATENCY_JITTER ** 2)   # [h, G, B]
            ll = np.log(self.les)                                            # [b - 1]
            x = ll[None, None, :, None] - np.log(pace)[:, :, None, :]        # [h, G, b - 1, B]
            hi = np.clip(np.searchsorted(ll, x), 1, len(ll) - 1)
            finite = cum[:, :, :-1]
            a, b = np.take_along_axis(finite, hi - 1, axis=2), np.take_along_axis(finite, hi, axis=2)
            w = np.clip((x - ll[hi - 1]) / (ll[hi] - ll[hi - 1]), 0.0, 1.0)
            scaled = np.where(x < ll[0], finite[:, :, :1] * np.exp(np.minimum(x - ll[0], 0.0)), a + w * (b - a))
            own = np.maximum(np.diff(np.concatenate([scaled, total[:, :, None]], axis=2), axis=2, prepend=0.0), 0.0)
            mean = mean * pace
            stalled = self.u(N, keys, _STALL) < STALL
            if stalled.any():
                lo, hi = STALL_SHARE
                share = np.where(stalled, lo + (hi - lo) * self.u(N, keys, _STALL_SHARE), 0.0)
                lo, hi = STALL_SECONDS
                extra = lo + (hi - lo) * self.u(N, keys, _STALL_SIZE)
                into = np.searchsorted(self.les, mean + extra)               # [h, G, B] the bucket they land in
                moved = share * total
                own *= (1.0 - share)[:, :, None]
                own += (np.arange(H.shape[1])[None, None, :, None] == into[:, :, None]) * moved[:, :, None]
                late = moved * extra
        drawn = _poisson(own, self.u(H, keys, what))
        cum = np.cumsum(drawn, axis=2)
        row[:, H] = cum
        n = cum[:, :, -1]
        share = _ratio(late, total)
        z = _normal(self.u(S, keys, _SUM))
        row[:, S] = np.maximum(n * mean + np.sqrt(n) * mean * LATENCY_CV * z + n * share, 0.0)
        row[:, N] = n

    def _memory(self, row: np.ndarray, keys: np.ndarray) -> None:
        """The working set's wander (a moving average of MEMORY_TICKS ticks' draws), whole 4 KiB pages, at most the
        limit."""
        k = keys.reshape(-1, 1, 1)
        wander = sum(_normal(uniform(self.seed, TEXTURE, self.world, self.memory_slot, _WANDER, k - j))
                     for j in range(MEMORY_TICKS)) * (MEMORY_WANDER / np.sqrt(MEMORY_TICKS))      # [h, n, B]
        value = np.minimum(row[:, self.memory] * (1.0 + wander), self.memory_cap)
        row[:, self.memory] = 4096.0 * np.round(value / 4096.0)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b where b > 0, else 0."""
    return np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)


def _normal(u: np.ndarray) -> np.ndarray:
    """Standard normal scores of uniforms (Tukey's lambda approximation: within 0.01 sd to beyond 3 sd)."""
    return 4.91 * (u ** 0.14 - (1.0 - u) ** 0.14)


def _poisson(mean: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Whole counts drawn from Poisson laws of `mean` by the uniforms `u` (same shape): exactly (inverse CDF)
    below EXACT_COUNT, from a normal with the Poisson's skew (Cornish-Fisher) above it."""
    lam = np.where(np.isfinite(mean) & (mean > 0), mean, 0.0)
    z = _normal(u)
    out = np.maximum(np.round(lam + np.sqrt(lam) * z + (z * z - 1.0) / 6.0), 0.0)
    small = np.flatnonzero((lam > 0) & (lam < EXACT_COUNT))
    if small.size:
        lam_s, u_s = lam.ravel()[small], u.ravel()[small]
        p = np.exp(-lam_s)
        cdf, k = p.copy(), np.zeros_like(lam_s)
        left = np.flatnonzero(u_s > cdf)           # still above the CDF: the count is higher
        i = 0
        while left.size and i < 60:
            i += 1
            p[left] *= lam_s[left] / i
            cdf[left] += p[left]
            k[left] += 1.0
            left = left[u_s[left] > cdf[left]]
        out.ravel()[small] = k
    out[lam <= 0] = 0.0
    return np.where(np.isfinite(mean), out, mean)


def _load(t: Tick) -> np.ndarray:
    """[R, B] each replica's load relative to its component's mean (1 for an even split; 0 when not running)."""
    def make() -> np.ndarray:
        comp = t.engine.topology.replica_component
        running = t.engine.replicas.running
        return t.share * t.engine.replicas.per_component(running)[comp]
    return t.cached("load", make)  # type: ignore[return-value]


def _outcomes(t: Tick) -> np.ndarray:
    """[S, 5, B] requests answered per component in the tick, by CODES: successes, then failures by cause."""
    def make() -> np.ndarray:
        causes = t.failed_by_cause                                            # [S, 4, B]
        ok = np.maximum(t.offered - causes.sum(axis=1), 0.0)
        return np.concatenate([ok[:, None, :], causes], axis=1)
    return t.cached("outcomes", make)  # type: ignore[return-value]


_FIRST_CAUSE = np.array([1.0, 0.0, 0.0, 0.0])[None, :, None]   # an endpoint failing with no cause on record: errors


def _le(value: float) -> str:
    """A bucket bound as Prometheus' client libraries write it."""
    return repr(float(value))
