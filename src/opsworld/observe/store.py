"""The metric store: a fixed catalogue of series shared by every world of a batch, and their samples over time.

A batch of worlds runs one topology, so every world has the same series; only the values differ. Samples are read as
one array [T, B, M] (scrapes, worlds, series; held world-last, [T, M, B], as the sensors write them) and NaN marks
"no sample" (a failed scrape, a pod that is not running,
a series that is missing), which PromQL reads as absent — the way Prometheus sees a target that did not answer.
The PromQL evaluator works on all worlds at once over this layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

MetricType = Literal["counter", "gauge", "histogram", "summary"]


@dataclass(frozen=True)
class Family:
    """A metric family as an exporter declares it: `# TYPE` and `# HELP`."""

    name: str               # family name: `http_server_request_duration_seconds` for its `_bucket/_sum/_count`
    type: MetricType
    help: str


class MetricStore:
    """Series labels [M] and their samples [T, B, M] at scrape times [T] (Unix seconds, whole milliseconds).

    `retention` keeps only the newest samples (a ring that never copies more than it keeps, for long batched runs
    where only alert rules read the store); None keeps everything.
    """

    def __init__(self, labels: list[dict[str, str]], families: list[Family], worlds: int,
                 retention: int | None = None, dtype: type = np.float64) -> None:
        self.labels = labels                       # [M] each with "__name__"
        self.families = {f.name: f for f in families}
        self.worlds = worlds
        self.retention = retention
        self._cap = 2 * retention if retention else 64
        self._times = np.zeros(self._cap)
        self._values = np.full((self._cap, len(labels), worlds), np.nan, dtype)     # [T, M, B]
        self._start = self._end = 0
        self._index: dict[str, dict[str, np.ndarray]] = {}

    # ---- writing -----------------------------------------------------------------------------------------------
    def append(self, time: float, values: np.ndarray) -> None:
        """Add one scrape: `values` [B, M], NaN where there is no sample."""
        self.append_rows(time, values.T)

    def append_rows(self, time: float, rows: np.ndarray) -> None:
        """Add one scrape given world-last: `rows` [M, B]."""
        self.next_rows(time)[...] = rows

    def next_rows(self, time: float) -> np.ndarray:
        """Add one scrape at `time` and return its samples [M, B] to be filled in place (saves a copy)."""
        if self._end == self._cap:
            keep = self._end - self._start
            if self.retention is None:            # grow
                self._cap *= 2
                times, vals = np.zeros(self._cap), np.full((self._cap, *self._values.shape[1:]), np.nan,
                                                           self._values.dtype)
                times[:keep], vals[:keep] = self._times[self._start:self._end], self._values[self._start:self._end]
                self._times, self._values = times, vals
            else:                                 # slide the newest `retention - 1` to the front
                keep = min(keep, self.retention - 1)
                self._times[:keep] = self._times[self._end - keep:self._end]
                self._values[:keep] = self._values[self._end - keep:self._end]
            self._start, self._end = 0, keep
        self._times[self._end] = round(time * 1000.0) / 1000.0
        self._end += 1
        if self.retention is not None and self._end - self._start > self.retention:
            self._start += 1
        return self._values[self._end - 1]

    # ---- reading -----------------------------------------------------------------------------------------------
    @property
    def times(self) -> np.ndarray:
        """[T] scrape times, Unix seconds, ascending."""
        return self._times[self._start:self._end]

    @property
    def values(self) -> np.ndarray:
        """[T, B, M] samples; NaN = no sample (a view of the world-last storage)."""
        return self._values[self._start:self._end].swapaxes(1, 2)

    def __len__(self) -> int:
        return len(self.labels)

    def world(self, b: int) -> "MetricStore":
        """One world's samples as a store of its own (B = 1); the arrays are views, not copies."""
        return self._view(self._values[self._start:self._end, :, b:b + 1], self.times, 1)

    def until(self, time: float) -> "MetricStore":
        """The samples scraped at or before `time` (what has been ingested by then); views, not copies."""
        keep = int(np.searchsorted(self.times, time, side="right"))
        return self._view(self._values[self._start:self._start + keep], self.times[:keep], self.worlds)

    def _view(self, values: np.ndarray, times: np.ndarray, worlds: int) -> "MetricStore":
        one = MetricStore.__new__(MetricStore)
        one.labels, one.families, one.worlds, one.retention = self.labels, self.families, worlds, None
        one._times, one._values = times, values
        one._start, one._end = 0, len(times)
        one._cap = one._end
        one._index = self._index       # same catalogue, same postings
        return one

    def label_values(self, name: str) -> list[str]:
        """Every value a label takes, sorted."""
        return sorted(self._postings(name))

    def select(self, matchers: list[tuple[str, str, str]]) -> np.ndarray:
        """Indices of the series matching every (label, op, value) matcher; op is one of = != =~ !~ (regexes are
        anchored, and a missing label reads as ""), as in PromQL."""
        keep = np.ones(len(self.labels), dtype=bool)
        for name, op, value in matchers:
            postings = self._postings(name)
            if op in ("=", "!="):
                hit = postings.get(value, _EMPTY) if value != "" else self._missing(name, postings)
            else:
                rx = re.compile(f"^(?:{value})$", re.DOTALL)
                hits = [idx for v, idx in postings.items() if rx.match(v)]
                if rx.match(""):
                    hits.append(self._missing(name, postings))
                hit = np.concatenate(hits) if hits else _EMPTY
            mask = np.zeros(len(self.labels), dtype=bool)
            mask[hit] = True
            keep &= mask if op in ("=", "=~") else ~mask
        return np.flatnonzero(keep)

    def _postings(self, name: str) -> dict[str, np.ndarray]:
        if name not in self._index:
            groups: dict[str, list[int]] = {}
            for i, labels in enumerate(self.labels):
                if name in labels:
                    groups.setdefault(labels[name], []).append(i)
            self._index[name] = {v: np.array(ix, dtype=np.int64) for v, ix in groups.items()}
        return self._index[name]

    def _missing(self, name: str, postings: dict[str, np.ndarray]) -> np.ndarray:
        has = np.zeros(len(self.labels), dtype=bool)
        for idx in postings.values():
            has[idx] = True
        return np.flatnonzero(~has)


_EMPTY = np.zeros(0, dtype=np.int64)
