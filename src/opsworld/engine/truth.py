"""The truth state: what really happened in each world during a tick, kept apart from anything an agent observes.

Rewards and ground truth (later layers) read these arrays; sensors (later layers) turn them into telemetry that may
be late, sampled or wrong. Counts are requests in the tick; latencies are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

CAUSES = ("error", "dependency", "timeout", "unavailable")


@dataclass
class Truth:
    """One tick of truth for a batch of worlds. B worlds, S components, E edges, N nodes, P endpoints."""

    time: float                   # seconds since the episode started, at the end of the tick
    # entry endpoints
    requests: np.ndarray          # [B, P] requests that arrived
    failed: np.ndarray            # [B, P] requests that failed or timed out
    slo_met: np.ndarray           # [B, P] requests that succeeded within the SLO latency
    latency_p50: np.ndarray       # [B, P] seconds
    latency_p90: np.ndarray       # [B, P]
    latency_p99: np.ndarray       # [B, P]
    # components
    offered: np.ndarray           # [B, S] requests (attempts, retries included) that reached the component
    served: np.ndarray            # [B, S] requests that got a slot and did their work
    failed_by_cause: np.ndarray   # [B, S, 4] requests answered with failure, by CAUSES
    response_mean: np.ndarray     # [B, S] mean response time, queueing included
    response_p50: np.ndarray      # [B, S]
    response_p99: np.ndarray      # [B, S]
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

    @property
    def failed_total(self) -> np.ndarray:
        """[B, S] failed requests of every cause."""
        return self.failed_by_cause.sum(axis=-1)


TRUTH_FIELDS = tuple(f.name for f in fields(Truth) if f.name != "time")


@dataclass
class Trajectory:
    """Truth over an episode: every field of `Truth` stacked over ticks, shape [T, B, ...]; `time` is [T]."""

    time: np.ndarray
    arrays: dict[str, np.ndarray]

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)

    @classmethod
    def stack(cls, frames: list[Truth], names: tuple[str, ...] = TRUTH_FIELDS) -> "Trajectory":
        """Stack per-tick truth into arrays over time."""
        return cls(time=np.array([f.time for f in frames]),
                   arrays={n: np.stack([getattr(f, n) for f in frames]) for n in names})

    def world(self, b: int) -> "Trajectory":
        """The trajectory of one world, keeping a batch axis of 1."""
        return Trajectory(self.time, {n: a[:, b:b + 1] for n, a in self.arrays.items()})
