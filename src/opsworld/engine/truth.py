"""The truth state: what really happened in each world during a tick, kept apart from anything an agent observes.

Rewards and ground truth (later layers) read these arrays; sensors (later layers) turn them into telemetry that may
be late, sampled or wrong. Counts are requests in the tick; latencies are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from opsworld.engine import queueing as qt

CAUSES = ("error", "dependency", "timeout", "unavailable")


class _Derived:
    """Figures derived from the stored ones when asked for: latency percentiles from the moments the engine keeps
    (not computed every tick), goodput and SLO violations at the entry endpoints."""

    requests: np.ndarray
    failed: np.ndarray
    slo_met: np.ndarray
    latency_mean: np.ndarray
    latency_var: np.ndarray
    latency_third: np.ndarray
    latency_cap: np.ndarray
    response_mean: np.ndarray
    response_var: np.ndarray

    def latency_quantile(self, z: float) -> np.ndarray:
        """Entry latency of successful requests at standard-normal score z, capped at the endpoint timeout."""
        q = qt.skewed_quantile(self.latency_mean, self.latency_var, self.latency_third, z)
        return np.minimum(q, self.latency_cap)

    @property
    def latency_p50(self) -> np.ndarray:
        return self.latency_quantile(qt.Z50)

    @property
    def latency_p90(self) -> np.ndarray:
        return self.latency_quantile(qt.Z90)

    @property
    def latency_p99(self) -> np.ndarray:
        return self.latency_quantile(qt.Z99)

    @property
    def goodput(self) -> np.ndarray:
        """[..., P] requests that succeeded."""
        return self.requests - self.failed

    @property
    def slo_violations(self) -> np.ndarray:
        """[..., P] requests that failed or succeeded slower than the SLO latency."""
        return self.requests - self.slo_met

    @property
    def response_p50(self) -> np.ndarray:
        return qt.gamma_quantile(self.response_mean, self.response_var, qt.Z50)

    @property
    def response_p99(self) -> np.ndarray:
        return qt.gamma_quantile(self.response_mean, self.response_var, qt.Z99)


@dataclass
class Truth(_Derived):
    """One tick of truth for a batch of worlds. B worlds, S components, E edges, N nodes, P endpoints.

    Percentiles (`latency_p50/p90/p99` per endpoint, `response_p50/p99` per component) are derived from the
    moments on access.
    """

    time: float                   # seconds since the episode started, at the end of the tick
    # entry endpoints
    requests: np.ndarray          # [B, P] requests that arrived (users', and any flooding client's)
    users: np.ndarray             # [B, P] of those, sent by users: the demand the reward counts
    failed: np.ndarray            # [B, P] requests that failed or timed out (refused at the front door included)
    wrong: np.ndarray             # [B, P] requests answered as successes with wrong content (corrupt, stale)
    slo_met: np.ndarray           # [B, P] requests that succeeded within the SLO latency
    slo_breached: np.ndarray      # [B, P] 1 when the tick missed the SLO: availability or latency percentile
    latency_mean: np.ndarray      # [B, P] seconds, requests that succeed
    latency_var: np.ndarray       # [B, P] seconds^2
    latency_third: np.ndarray     # [B, P] third cumulant, seconds^3
    # components
    offered: np.ndarray           # [B, S] requests (attempts, retries included) that reached the component
    served: np.ndarray            # [B, S] requests that got a slot and did their work
    wrong_answers: np.ndarray     # [B, S] of those, answered with wrong content reported as success
    failed_by_cause: np.ndarray   # [B, S, 4] requests answered with failure, by CAUSES
    response_mean: np.ndarray     # [B, S] mean response time, queueing included
    response_var: np.ndarray      # [B, S]
    cpu_utilisation: np.ndarray   # [B, S] CPU busy fraction of the serving replicas' limits
    slot_utilisation: np.ndarray  # [B, S] busy fraction of request slots (worker threads)
    backlog: np.ndarray           # [B, S] requests waiting beyond normal queueing (overload)
    queue_depth: np.ndarray       # [B, S] queues: messages waiting for the consumer; 0 elsewhere
    ready_replicas: np.ndarray    # [B, S] replicas in the load balancer's rotation
    desired_replicas: np.ndarray  # [B, S]
    restarts: np.ndarray          # [B, S] replica restarts so far (cumulative)
    memory_used: np.ndarray       # [B, S] bytes, all replicas together
    memory_max_fraction: np.ndarray  # [B, S] the fullest replica's memory / limit
    disk_max_fraction: np.ndarray    # [B, S] the fullest replica's disk / size
    gpu_memory_fraction: np.ndarray  # [B, S] GPU memory in use / available (0 without GPUs)
    # edges
    edge_attempts: np.ndarray     # [B, E] call attempts sent
    edge_failure: np.ndarray      # [B, E] probability that a call fails after its retries
    # nodes
    node_cpu: np.ndarray          # [B, N] cores in use
    node_memory: np.ndarray       # [B, N] bytes in use
    latency_cap: np.ndarray = field(default_factory=lambda: np.array(np.inf))  # [P] endpoint timeouts

    @property
    def failed_total(self) -> np.ndarray:
        """[B, S] failed requests of every cause."""
        return self.failed_by_cause.sum(axis=-1)


TRUTH_FIELDS = tuple(f.name for f in fields(Truth) if f.name not in ("time", "latency_cap"))


@dataclass
class Trajectory(_Derived):
    """Truth over an episode: every field of `Truth` stacked over ticks, shape [T, B, ...]; `time` is [T]."""

    time: np.ndarray
    arrays: dict[str, np.ndarray]
    latency_cap: np.ndarray = field(default_factory=lambda: np.array(np.inf))

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)

    @classmethod
    def stack(cls, frames: list[Truth], names: tuple[str, ...] = TRUTH_FIELDS) -> "Trajectory":
        """Stack per-tick truth into arrays over time."""
        return cls(time=np.array([f.time for f in frames]),
                   arrays={n: np.stack([getattr(f, n) for f in frames]) for n in names} if frames else {},
                   latency_cap=frames[0].latency_cap if frames else np.array(np.inf))

    def world(self, b: int) -> "Trajectory":
        """The trajectory of one world, keeping a batch axis of 1."""
        return Trajectory(self.time, {n: a[:, b:b + 1] for n, a in self.arrays.items()}, self.latency_cap)
