"""The metric store: a fixed catalogue of series shared by every world of a batch, and their samples over time.

A batch of worlds runs one topology, so every world has the same series; only the values differ. Samples are read as
one array [T, B, M] (scrapes, worlds, series; held world-last, [T, M, B], as the sensors write them) and NaN marks
"no sample" (a failed scrape, a pod that is not running,
a series that is missing), which PromQL reads as absent — the way Prometheus sees a target that did not answer.
The PromQL evaluator works on all worlds at once over this layout.

Running counts (`MetricStore.counts`) are kept next to the samples, in the same ring, so that a range function over
a long window (`rate(x[6h])` evaluated every tick) reads the window's two ends rather than every sample in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Literal

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

    `cumulative` (default) also keeps, beside every sample, running counts (`counts`, 4 bytes a sample) that let
    PromQL's range functions read a window from its two ends instead of every sample in it; `sums` adds compensated
    running sums (`sums`, 16 more bytes a sample, so off unless asked for) for sum_over_time and avg_over_time.
    """

    def __init__(self, labels: list[dict[str, str]], families: list[Family], worlds: int,
                 retention: int | None = None, dtype: type = np.float64, cumulative: bool = True,
                 sums: bool = False) -> None:
        self.labels = labels                       # [M] each with "__name__"
        self.families = {f.name: f for f in families}
        self.worlds = worlds
        self.retention = retention
        self._cap = 2 * retention if retention else 64
        self._times = np.zeros(self._cap)
        self._values = np.full((self._cap, len(labels), worlds), np.nan, dtype)     # [T, M, B]
        self._start = self._end = 0
        self._index: dict[str, dict[str, np.ndarray]] = {}
        self._view_of: MetricStore | None = None
        self._count: np.ndarray | None = None        # [T, M, B] uint16 running count of samples, mod 2**16
        self._resets: np.ndarray | None = None       # [T, M, B] uint16 running count of counter resets, mod 2**16
        self._sum_hi: np.ndarray | None = None       # [T, M, B] running sum of samples ...
        self._sum_lo: np.ndarray | None = None       # ... and its compensation (the exact sum is hi + lo)
        self._done = 0                               # slots before this one are accumulated
        # scratch for readers: what they derived from the samples as they are now (PromQL keeps window results
        # here that several alert rules evaluated at one time share); emptied whenever a scrape is added
        self.memo: dict | None = {}
        if cumulative or sums:
            shape = (self._cap, len(labels), worlds)
            self._count, self._resets = np.zeros(shape, np.uint16), np.zeros(shape, np.uint16)
            self._last = np.full(shape[1:], np.nan, dtype)              # [M, B] newest sample so far
            self._run_count = np.zeros(shape[1:], np.uint16)            # [M, B] running state of the newest slot
            self._run_resets = np.zeros(shape[1:], np.uint16)
            if sums:
                self._sum_hi, self._sum_lo = np.zeros(shape), np.zeros(shape)
                self._run_hi, self._run_lo = np.zeros(shape[1:]), np.zeros(shape[1:])

    # ---- writing -----------------------------------------------------------------------------------------------
    def append(self, time: float, values: np.ndarray) -> None:
        """Add one scrape: `values` [B, M], NaN where there is no sample."""
        self.append_rows(time, values.T)

    def append_rows(self, time: float, rows: np.ndarray) -> None:
        """Add one scrape given world-last: `rows` [M, B]."""
        self.next_rows(time)[...] = rows
        self.commit()

    def next_rows(self, time: float) -> np.ndarray:
        """Add one scrape at `time` and return its samples [M, B] to be filled in place (saves a copy).

        Fill them before the store is next read: the running counts take the slot as it is then (at the next read,
        `commit()` or `next_rows`).
        """
        if self._view_of is not None:
            raise ValueError("a view of a store (world(), until()) is read-only")
        self.commit()                             # the slot handed out last time is complete now
        self.memo = {}
        if self._end == self._cap:
            keep = self._end - self._start
            arrays = self._ring_arrays()
            if self.retention is None:            # grow
                self._grow(2 * self._cap)
            else:                                 # slide the newest `retention - 1` to the front
                keep = min(keep, self.retention - 1)
                self._times[:keep] = self._times[self._end - keep:self._end]
                for arr in arrays.values():
                    arr[:keep] = arr[self._end - keep:self._end]
            self._start, self._end = 0, keep
            self._done = keep
        self._times[self._end] = round(time * 1000.0) / 1000.0
        self._end += 1
        if self.retention is not None and self._end - self._start > self.retention:
            self._start += 1
        return self._values[self._end - 1]

    def reserve(self, slots: int) -> None:
        """Make room for `slots` scrapes in all (a store that keeps everything), so that a run of known length grows
        its arrays once rather than doubling them as it goes (a ring with `retention` has its room already)."""
        if self._view_of is None and self.retention is None and slots > self._cap:
            self._grow(slots)

    def _grow(self, cap: int) -> None:
        keep = self._end - self._start
        times = np.zeros(cap)
        times[:keep] = self._times[self._start:self._end]
        self._times = times
        for name, arr in self._ring_arrays().items():
            grown = np.full((cap, *arr.shape[1:]), np.nan if name == "_values" else 0, arr.dtype)
            grown[:keep] = arr[self._start:self._end]
            setattr(self, name, grown)
        self._cap = cap
        self._done -= self._start
        self._start, self._end = 0, keep

    def extend_rows(self, times: np.ndarray, rows: np.ndarray) -> None:
        """Add several scrapes at once, oldest first: `times` [h] ascending, `rows` [h, M, B] world-last."""
        self.reserve(self._end - self._start + len(times))
        for time, values in zip(times, rows):
            self.next_rows(float(time))[...] = values
        self.commit()

    def commit(self) -> None:
        """Bring the running counts up to date with every slot (the newest included); reads do it themselves."""
        if self._count is None or self._view_of is not None:    # a view's slots were committed when it was made
            return
        while self._done < self._end:
            self._accumulate(self._done)
            self._done += 1

    def _accumulate(self, k: int) -> None:
        """Extend the running state by slot k (O(M·B))."""
        assert self._count is not None and self._resets is not None
        row = self._values[k]
        valid = ~np.isnan(row)
        # a sample below the previous sample of its series (ever, not only in the ring): Prometheus' counter reset
        dropped = row < self._last                          # NaN on either side compares False
        self._run_count += valid                            # uint16 wraps: differences are exact mod 2**16
        self._run_resets += dropped
        self._count[k], self._resets[k] = self._run_count, self._run_resets
        np.copyto(self._last, row, where=valid)
        if self._sum_hi is not None and self._sum_lo is not None:
            # Neumaier: hi + lo carries the running sum to about one rounding of the window sums read from it.
            # An infinite sample makes them inf/NaN for good, and readers then sum the window itself.
            x = np.where(valid, row, 0.0)
            with np.errstate(invalid="ignore", over="ignore"):
                hi = self._run_hi + x
                big = np.abs(self._run_hi) >= np.abs(x)
                self._run_lo += np.where(big, (self._run_hi - hi) + x, (x - hi) + self._run_hi)
            self._run_hi = hi
            self._sum_hi[k], self._sum_lo[k] = hi, self._run_lo

    def _ring_arrays(self) -> dict[str, np.ndarray]:
        names = ("_values", "_count", "_resets", "_sum_hi", "_sum_lo")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    # ---- reading -----------------------------------------------------------------------------------------------
    @property
    def times(self) -> np.ndarray:
        """[T] scrape times, Unix seconds, ascending."""
        return self._times[self._start:self._end]

    @property
    def values(self) -> np.ndarray:
        """[T, B, M] samples; NaN = no sample (a view of the world-last storage)."""
        return self._values[self._start:self._end].swapaxes(1, 2)

    @property
    def rows(self) -> np.ndarray:
        """[T, M, B] the samples as stored, world-last (a view)."""
        return self._values[self._start:self._end]

    @property
    def cumulative(self) -> bool:
        """Whether the store keeps running counts (`counts`)."""
        return self._count is not None

    @property
    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Running counts [T, M, B] uint16, each modulo 2**16 (differences over fewer than 2**16 slots are exact):
        of samples (at or before each slot, of each series and world), and of counter resets (samples below the
        series' previous sample, as Prometheus' rate/increase/resets see them). Views; the store must be
        `cumulative`."""
        assert self._count is not None and self._resets is not None, "the store does not keep running counts"
        self.commit()
        return self._count[self._start:self._end], self._resets[self._start:self._end]

    @property
    def sums(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Running sums of the samples [T, M, B] as (hi, lo), the sum being hi + lo (compensated); None unless the
        store was made with `sums=True`."""
        if self._sum_hi is None or self._sum_lo is None:
            return None
        self.commit()
        return self._sum_hi[self._start:self._end], self._sum_lo[self._start:self._end]

    def __len__(self) -> int:
        return len(self.labels)

    def world(self, b: int) -> "MetricStore":
        """One world's samples as a store of its own (B = 1); the arrays are views, not copies."""
        if not 0 <= b < self.worlds:
            raise ValueError(f"world must be in 0..{self.worlds - 1}, got {b}")
        return self._view(lambda a: a[self._start:self._end, :, b:b + 1], self.times, 1)

    def until(self, time: float) -> "MetricStore":
        """The samples scraped at or before `time` (what has been ingested by then); views, not copies."""
        keep = int(np.searchsorted(self.times, time, side="right"))
        return self._view(lambda a: a[self._start:self._start + keep], self.times[:keep], self.worlds)

    def _view(self, part: Callable[[np.ndarray], np.ndarray], times: np.ndarray, worlds: int) -> "MetricStore":
        self.commit()                  # the view shares the running counts, so they must cover its slots
        one = MetricStore.__new__(MetricStore)
        one.labels, one.families, one.worlds, one.retention = self.labels, self.families, worlds, None
        one._times = times
        for name in ("_values", "_count", "_resets", "_sum_hi", "_sum_lo"):
            arr = getattr(self, name)
            setattr(one, name, None if arr is None else part(arr))
        one._start, one._end = 0, len(times)
        one._cap = one._done = one._end
        one._view_of = self
        one.memo = None                # its samples move when the store it views slides its ring
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
