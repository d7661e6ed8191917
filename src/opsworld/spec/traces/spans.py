"""Recorded spans, whatever format they came in: the table `opsworld import traces` builds a scenario from.

One row per span, as numpy arrays (S = spans); strings as arrays of Python str (object dtype) so that grouping by
`np.unique` works on them. Readers (`spec.traces.readers`) fill it from OTLP JSON, Jaeger JSON, Zipkin JSON and the
Nezha CSV; the builder (`spec.traces.build`) reads nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

SERVER, CLIENT, INTERNAL, PRODUCER, CONSUMER, UNKNOWN = "server", "client", "internal", "producer", "consumer", ""
KINDS = (SERVER, CLIENT, INTERNAL, PRODUCER, CONSUMER, UNKNOWN)


@dataclass(frozen=True)
class Spans:
    """A table of spans; every array has one entry per span, in the order read."""

    trace: np.ndarray        # [S] str: the trace id
    span: np.ndarray         # [S] str: the span id (unique within its trace)
    parent: np.ndarray       # [S] int64: row of the parent span in this table, -1 for a root or a parent not recorded
    service: np.ndarray      # [S] str: the service that recorded the span (a pod's name folded to its service)
    instance: np.ndarray     # [S] str: the replica that recorded it (pod, host or instance id; "" when unknown)
    operation: np.ndarray    # [S] str: the operation (RPC method, HTTP route, span name)
    kind: np.ndarray         # [S] str: one of KINDS ("" when the format does not say)
    start: np.ndarray        # [S] float64: Unix seconds
    duration: np.ndarray     # [S] float64: seconds
    error: np.ndarray        # [S] bool: the span recorded an error (status code, error tag, HTTP 5xx)

    def __post_init__(self) -> None:
        n = len(self.trace)
        for f in fields(self):
            if len(getattr(self, f.name)) != n:
                raise ValueError(f"Spans.{f.name} has {len(getattr(self, f.name))} rows, trace has {n}")

    def __len__(self) -> int:
        return len(self.trace)

    def take(self, rows: np.ndarray) -> "Spans":
        """The spans at `rows` (a boolean mask or indices), parents re-pointed to the kept rows (-1 if dropped)."""
        idx = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64)
        new = np.full(len(self), -1, dtype=np.int64)
        new[idx] = np.arange(len(idx))
        parent = self.parent[idx]
        parent = np.where(parent >= 0, new[np.maximum(parent, 0)], -1)
        return Spans(**{f.name: getattr(self, f.name)[idx] for f in fields(self) if f.name != "parent"},
                     parent=parent)

    @staticmethod
    def concat(parts: list["Spans"]) -> "Spans":
        """Tables read from several files as one (each part's parent rows shifted by the rows before it)."""
        if not parts:
            return empty()
        offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
        parent = np.concatenate([np.where(p.parent >= 0, p.parent + o, -1) for p, o in zip(parts, offsets)])
        return Spans(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                        for f in fields(Spans) if f.name != "parent"}, parent=parent)


def empty() -> Spans:
    """A table with no span."""
    s = np.array([], dtype=object)
    return Spans(s, s, np.array([], dtype=np.int64), s, s, s, s, np.array([]), np.array([]), np.array([], dtype=bool))


def link_parents(trace: np.ndarray, span: np.ndarray, parent_id: np.ndarray) -> np.ndarray:
    """[S] row of each span's parent, from (trace id, parent span id); -1 where the parent id is empty, a root
    marker, or not among the recorded spans. For readers: formats name parents by id."""
    key = {(t, s): i for i, (t, s) in enumerate(zip(trace.tolist(), span.tolist()))}
    return np.array([key.get((t, p), -1) for t, p in zip(trace.tolist(), parent_id.tolist())], dtype=np.int64)
