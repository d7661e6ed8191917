"""The change history of a batch of worlds: deploys, config pushes, scaling, restarts and drains, with who made them.

Real systems keep such an audit trail (a deploy pipeline's history, the Kubernetes event stream, the autoscaler's
decisions). It records changes as they are made, good and bad alike; nothing in it says whether a change was at
fault. Rows are kept in columnar chunks (one per `add`, over many worlds at once) so autoscaling thousands of worlds
stays cheap; a world's events are read out only when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# The knobs whose setting is a change someone or something made, and the kind of change it is.
CHANGE_KINDS = {"deploy": "deploy", "config": "config", "replicas": "scale", "scale_min": "autoscaler",
                "scale_max": "autoscaler", "restart_at": "restart", "drained": "drain", "cert_not_after": "certificate",
                "rate_limit": "rate_limit", "retries": "retry_policy", "pool_size": "pool_size",
                "breaker_open": "circuit_breaker", "admit": "traffic_policy", "flood": "traffic_policy"}


@dataclass(frozen=True)
class Change:
    """One change to one world."""

    time: float          # seconds since the episode started
    kind: str            # deploy, config, scale, autoscaler, restart, drain, ...
    target: str          # the component, node, edge (`caller->callee`), certificate or endpoint
    before: str
    after: str
    by: str              # who made it: a pipeline, a person, the autoscaler, the on-call engineer
    wall: float | None = None   # the same moment as Unix seconds, the clock alerts, logs and traces carry

    def describe(self) -> str:
        return f"{self.kind} {self.target}: {self.before} -> {self.after} by {self.by}"


class ChangeLog:
    """Every change made to a batch of worlds, in the order made. `start`: the Unix time the episode starts at, so
    each change also carries its wall-clock time."""

    def __init__(self, start: float = 0.0) -> None:
        self.start = float(start)
        self._chunks: list[tuple[float, np.ndarray, str, str, np.ndarray, np.ndarray, str,
                                 Callable[[np.ndarray], np.ndarray] | None]] = []

    def add(self, time: float, worlds: np.ndarray, kind: str, target: str, before: np.ndarray, after: np.ndarray,
            by: str, text: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """Record one change made at `time` in `worlds` [W]; `before`/`after` [W] are the values (as text, or as
        values that `text`, elementwise, turns into text when they are read: the cost falls on the reader)."""
        self._chunks.append((time, np.asarray(worlds), kind, target, np.asarray(before), np.asarray(after), by, text))

    def events(self, world: int) -> list[Change]:
        """One world's changes, oldest first (unchanged values left out)."""
        out = []
        for time, worlds, kind, target, before, after, by, text in self._chunks:
            hit = np.flatnonzero(worlds == world)
            if not hit.size:
                continue
            i = int(hit[0])
            if text is None:
                was, now = str(before[i]), str(after[i])
            else:
                was, now = str(text(before[i:i + 1])[0]), str(text(after[i:i + 1])[0])
            if was != now:
                out.append(Change(time, kind, target, was, now, by, self.start + time))
        return out

    def __len__(self) -> int:
        return len(self._chunks)
