"""The dashboard: a fast, coarse sensor for batched agents — per-component golden signals, simple alerts and log
signatures for every world at once.

The full stack (`Telemetry`: PromQL over ~1,200 series, rule evaluation, logs and traces) costs ~70 us per world and
tick; reinforcement learning over millions of steps needs something a hundred times cheaper. The dashboard reads the
same truth the metric sensor reads and turns it into what an on-call engineer's overview board shows: a few noisy
signals per component, threshold alerts that must hold a while before they fire, and the kinds of error line each
component's logs carry. Like every sensor it may be wrong (noise, lag, an EWMA baseline that drifts); rewards never
read it.
"""

from __future__ import annotations

import numpy as np

from opsworld.engine import Engine, Truth
from opsworld.engine.knobs import ERROR_KINDS, REFUSALS
from opsworld.engine.truth import CAUSES
from opsworld.observe.coverage import Coverage, dashboard_alerts

SIGNALS = ("error_ratio", "latency_ratio", "cpu", "memory", "ready", "restarts", "queue", "disk", "saturation",
           "load_ratio", "slo_burn")
# alert name -> (signal, threshold, above?, ticks it must hold)
ALERTS = {
    "HighErrorRate": ("error_ratio", 0.05, True, 2),
    "HighLatency": ("latency_ratio", 2.5, True, 3),
    "CPUSaturated": ("cpu", 0.9, True, 3),
    "MemoryNearLimit": ("memory", 0.9, True, 2),
    "ReplicasUnavailable": ("ready", 0.75, False, 3),
    "PodRestarting": ("restarts", 0.5, True, 1),
    "QueueBacklog": ("queue", 0.5, True, 3),
    "DiskNearlyFull": ("disk", 0.9, True, 2),
    "WorkersExhausted": ("saturation", 0.95, True, 3),
    "TrafficSurge": ("load_ratio", 2.0, True, 3),
    # the users' view, on the entry services: how many times faster than the SLOs allow their requests fail or miss
    # the SLO latency (a fast burn-rate alert, as SRE practice pages on: symptoms, not causes)
    "SLOBurn": ("slo_burn", 10.0, True, 3),
}
LOG_SIGNATURES = (*ERROR_KINDS, *REFUSALS, "deadline_exceeded", "upstream_error", "no_endpoints", "oom_killed",
                  "crash_back_off", "disk_full", "slow_requests", "rate_limited", "certificate_expired",
                  "invalid_response", "queue_full")
_GAP_STREAM = 0xDA5C
_NOISE_STREAM = 101      # counter-based draws apart from the engine's own streams
_BASELINE_TICKS = 360.0  # the EWMA baseline's memory: about an hour of ten-second ticks


class Dashboard:
    """Signals [B, S, F], alert states [B, S, A] and log signatures for a batch of worlds, updated every tick."""

    def __init__(self, engine: Engine, noise: float = 0.05, gaps: float = 0.0,
                 coverage: Coverage | None = None) -> None:
        """`noise`: the signals' log-normal noise; `gaps`: the chance a component's scrape is lost in a tick;
        `coverage`: how far each world's alerts fall short (missing, mis-tuned, noise alerts; None: they do not)."""
        self.engine = engine
        topo = engine.topology
        B, S = engine.worlds, topo.n_components
        self.noise = noise
        self.gaps = gaps          # chance a component's scrape is lost in a tick: its signals stay as they were
        self.signals = np.zeros((B, S, len(SIGNALS)), np.float32)
        self.firing = np.zeros((B, S, len(ALERTS)), bool)
        self._held = np.zeros((B, S, len(ALERTS)), np.int16)
        self._latency_base = None
        self._load_base = None
        self._restarts = np.zeros((B, S))
        self._recent = np.zeros((B, S))
        self._alert_signal = np.array([SIGNALS.index(a[0]) for a in ALERTS.values()])
        self._alert_threshold = np.array([a[1] for a in ALERTS.values()], np.float32)
        self._alert_above = np.array([a[2] for a in ALERTS.values()])
        self._alert_hold = np.array([a[3] for a in ALERTS.values()], np.int16)
        self._alert_below = np.flatnonzero(~self._alert_above)
        self._present: np.ndarray | None = None     # [B, S, A] the alert exists (None: every one does)
        self._noise_alert: np.ndarray | None = None  # [B, S, A] a noise alert, its threshold set at the first tick
        self.coverage = coverage if coverage is not None and not coverage.off else None
        if self.coverage is not None:
            # per world, component and alert: thresholds [B, S, A] and holds [B, S, A] replace the constants [A]
            drawn = dashboard_alerts(self.coverage, engine.seed, engine.first_world + np.arange(B), topo.components,
                                     ALERTS, noise)
            self._alert_threshold, self._alert_hold = drawn.threshold.copy(), drawn.hold
            self._present = drawn.present
            if drawn.noise.any():
                self._noise_alert, self._noise_margin = drawn.noise, drawn.margin
        self._alert_direct = np.array_equal(self._alert_signal, np.arange(len(SIGNALS)))   # alert i reads signal i
        self._queues = np.isfinite(topo.queue_capacity)
        self._capacity = np.where(self._queues, topo.queue_capacity, 1.0)
        self._entry = topo.endpoint_component           # [P] the service each endpoint enters
        self._budget = np.maximum(1.0 - topo.endpoint_slo_availability, 1e-4)   # [P] share its SLO lets fail
        self.last: Truth | None = None

    def update(self, truth: Truth) -> None:
        """Read one tick of truth (every world at once)."""
        e = self.engine
        self.last = truth
        offered = np.maximum(truth.offered, 1e-9)
        response = truth.response_mean
        response_floor, load_floor = np.maximum(response, 1e-4), np.maximum(truth.offered, 1e-3)
        first = self._latency_base is None
        if first:
            self._latency_base = response_floor.copy()
            self._load_base = load_floor.copy()
        a = 1.0 / _BASELINE_TICKS
        self._latency_base += a * (response_floor - self._latency_base)
        self._load_base += a * (load_floor - self._load_base)
        new = truth.restarts - self._restarts
        self._restarts = truth.restarts.copy()
        self._recent = 0.8 * self._recent + new           # restarts over the last few minutes, decaying
        desired = np.maximum(truth.desired_replicas, 1.0)
        # [B, S] at the entry services: requests that failed, missed the SLO latency or came back wrong, over what
        # the SLOs allow of those that arrived (the correctness SLI: probers that know the right answers, and users
        # who say so, see a wrong answer where the server's own counters see a success)
        missed, allowed = np.zeros_like(offered), np.zeros_like(offered)
        np.add.at(missed.T, self._entry, np.minimum(truth.requests - truth.slo_met + truth.wrong, truth.requests).T)
        np.add.at(allowed.T, self._entry, (truth.requests * self._budget).T)
        sig = np.stack([
            truth.failed_total / offered,
            response / self._latency_base,
            truth.cpu_utilisation,
            truth.memory_max_fraction,
            truth.ready_replicas / desired,
            self._recent,
            np.where(self._queues, truth.queue_depth / self._capacity, 0.0),
            truth.disk_max_fraction,
            truth.slot_utilisation,
            truth.offered / self._load_base,
            missed / np.maximum(allowed, 1e-9),
        ], axis=-1)
        if first and self._noise_alert is not None:
            # a too-tight threshold: just above where the signal stood when it was set, so its own noise crosses it
            level = sig[..., self._alert_signal]                                    # [B, S, A] clean readings
            self._alert_threshold = np.where(self._noise_alert, level * self._noise_margin,
                                             self._alert_threshold).astype(np.float32)
        if self.noise > 0:
            z = e.streams.normal(e.tick, _NOISE_STREAM, sig.shape[1] * sig.shape[2]).reshape(sig.shape)
            sig = sig * np.exp(self.noise * z)
        if self.gaps > 0:
            lost = e.streams.uniform(e.tick, _GAP_STREAM, sig.shape[1]) < self.gaps       # [B, S]
            self.signals = np.where(lost[..., None], self.signals, sig.astype(np.float32))
        else:
            self.signals = sig.astype(np.float32)
        values = self.signals if self._alert_direct else self.signals[..., self._alert_signal]
        hot = values > self._alert_threshold
        if self._alert_below.size:     # the few alerts on a signal falling below its threshold
            low = self._alert_below
            hot[..., low] = values[..., low] < self._alert_threshold[..., low]
        self._held = np.where(hot, np.minimum(self._held + 1, 10_000), 0).astype(np.int16)
        self.firing = self._held >= self._alert_hold
        if self._present is not None:
            self.firing &= self._present

    @property
    def usual_load(self) -> np.ndarray | None:
        """[B, S] requests per second each component usually takes (the slow baseline; None before the first tick)."""
        return self._load_base

    def log_signatures(self, component: np.ndarray, worlds: np.ndarray) -> np.ndarray:
        """[W, L] the share of each LOG_SIGNATURES kind among the error lines of `component[w]`'s logs in world
        `worlds[w]` over the last tick (zeros: only routine lines)."""
        e, topo, t = self.engine, self.engine.topology, self.last
        W, L = len(worlds), len(LOG_SIGNATURES)
        out = np.zeros((W, L), np.float32)
        if t is None or W == 0:
            return out
        k = e.knobs
        s, b = component, worlds
        own = t.failed_by_cause[b, s]                                          # [W, 4]
        served = np.maximum(t.offered[b, s], 1.0)
        col = {name: i for i, name in enumerate(LOG_SIGNATURES)}
        erring = own[:, CAUSES.index("error")] / served > 0.005
        out[np.flatnonzero(erring), k.error_kind[s[erring], b[erring]]] += 1.0
        out[:, col["deadline_exceeded"]] += own[:, CAUSES.index("timeout")] / served > 0.005
        out[:, col["upstream_error"]] += own[:, CAUSES.index("dependency")] / served > 0.005
        # calls out of the component that fail: what the client library says, by the callee's state
        mine = topo.edge_src[None, :] == s[:, None]                            # [W, E]
        failing = mine & (t.edge_failure[b] > 0.01)
        callee = topo.edge_dst                                                 # [E]
        blocked = failing & (k.blocked[:, b].T > 0)
        rows, edges = np.nonzero(blocked)
        np.add.at(out, (rows, col[REFUSALS[0]] + k.refusal[edges, b[rows]].astype(np.int64)), 1.0)
        rest = failing & ~blocked
        down = rest & (t.ready_replicas[b][:, callee] < 0.5)
        out[:, col["no_endpoints"]] += down.any(axis=1)
        out[:, col["queue_full"]] += (rest & ~down & self._queues[callee][None, :]).any(axis=1)
        limited = np.isfinite(k.rate_limit[callee][:, b].T)
        out[:, col["rate_limited"]] += (rest & ~down & limited).any(axis=1)
        now = e.scenario.traffic.start + e.time
        for c, comp in enumerate(topo.cert_component):      # a handful of certificates per scenario
            calls_it = (mine & (callee[None, :] == comp)).any(axis=1)
            out[:, col["certificate_expired"]] += calls_it & (k.cert_not_after[c, b] < now)
        wrong = t.wrong_answers[b][:, callee] > 0.01 * np.maximum(t.served[b][:, callee], 1.0)
        out[:, col["invalid_response"]] += (mine & wrong).any(axis=1)
        out[:, col["oom_killed"]] += (t.memory_max_fraction[b, s] >= 0.97) & (self._recent[b, s] > 0.2)
        out[:, col["crash_back_off"]] += k.crash_loop[s, b]
        out[:, col["disk_full"]] += t.disk_max_fraction[b, s] >= 0.99
        out[:, col["slow_requests"]] += self.signals[b, s, SIGNALS.index("latency_ratio")] > 3.0
        total = out.sum(axis=1, keepdims=True)
        return np.where(total > 0, out / np.maximum(total, 1e-9), 0.0).astype(np.float32)
