"""Range functions read from a store's running counts: a window's two ends instead of every sample in it.

For each series and world, the running count of samples (`MetricStore.counts`) at a window's first and last
scrape tells whether the series has a sample at every scrape of the window (*full*: its first and last samples are
at the window's ends), none (*empty*: no output, which is every absent pod) or some (*partial*: the first and last
samples are found by a binary search on the count, log2(w) reads). The running count of counter resets does the
same for rate/increase/resets. So rate(x[6h]) costs a few reads of [n, B] whatever the window.

What still needs every sample is gathered for just those (series, world) pairs, [w, K], and reduced on the general
path of `overtime`: the functions without a shortcut (min/max/quantile/stddev/stdvar_over_time and changes, and
sum/avg_over_time on a store without running sums) over the pairs that have a sample, and rate/increase over the
pairs with a counter reset in the window (the correction needs the value before each reset).

The results are the general path's to the last bit (the same samples through the same formulas), except
sum/avg_over_time from running sums, which agree to a few roundings.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ..store import MetricStore
from .overtime import extrapolate, last_two, over_time
from .selectors import BLOCK_ELEMENTS, SPAN, nth_sample

# window results kept in the store's memo (one [M, B] pair each, touched only where computed)
_MEMO_ENTRIES = 16


class Ends:
    """A window [i0, i1) of the columns `cols` of a store, world-last [n, B]: the running counts at its two ends,
    and the first/last samples found from them on demand. A scrape index is an int where it is the same for every
    entry (no entry needed a search), so the formulas run on scalars there."""

    def __init__(self, store: MetricStore, cols: np.ndarray, i0: int, i1: int) -> None:
        assert 0 <= i0 < i1 <= len(store.times) and i1 - i0 < SPAN
        self.store, self.cols, self.i0, self.i1, self.w = store, cols, i0, i1, i1 - i0
        self.count, self.resets = store.counts
        self.rows = store.rows
        self.x0 = self.row(self.rows, i0)                               # [n, B] samples at the window's start
        self.valid0 = ~np.isnan(self.x0)
        self.base = self.row(self.count, i0) - self.valid0               # samples before the window, mod 2**16
        self.n = self.row(self.count, i1 - 1) - self.base                # samples in the window (uint16, exact)
        self.worlds = self.n.shape[1]

    def only(self, keep: np.ndarray) -> None:
        """Keep only the columns `keep` (a mask over cols), e.g. those with a sample in some world."""
        assert "x1" not in self.__dict__
        self.cols = self.cols[keep]
        self.x0, self.valid0, self.base, self.n = self.x0[keep], self.valid0[keep], self.base[keep], self.n[keep]

    @cached_property
    def x1(self) -> np.ndarray:
        """[n, B] samples at the window's last scrape."""
        return self.x0 if self.w == 1 else self.row(self.rows, self.i1 - 1)

    @cached_property
    def valid1(self) -> np.ndarray:
        return ~np.isnan(self.x1)

    @cached_property
    def some(self) -> np.ndarray:
        """[n, B] whether the series has a sample in the window."""
        return self.n > 0

    @cached_property
    def all_or_none(self) -> bool:
        """Whether each series has a sample at every scrape of the window or none (the common case: then the
        first and last samples are at the window's ends, and the count is w, for every series that has any)."""
        return bool(np.array_equal(self.n == self.w, self.some))

    def row(self, arr: np.ndarray, i: int) -> np.ndarray:
        """arr[i] of the columns [n, B] (arr world-last [T, M, B]), float64 for samples."""
        out = arr[i][self.cols]
        return out.astype(np.float64, copy=False) if out.dtype.kind == "f" else out

    def pairs(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The flat indices into [n, B] of the True entries of `mask`, and their series and worlds."""
        flat = np.flatnonzero(mask)
        return flat, self.cols[flat // self.worlds], flat % self.worlds

    def _found(self, index: int, value: np.ndarray, search: np.ndarray, k: np.ndarray | int
               ) -> tuple[np.ndarray | int, np.ndarray]:
        """`index`/`value` for every entry, but for those of `search` their k-th sample in the window (binary
        search on the running count)."""
        if not search.any():
            return index, value
        flat, m, b = self.pairs(search)
        kk = np.full(len(flat), k) if isinstance(k, int) else k.ravel()[flat].astype(np.int64)
        at = nth_sample(self.count, m, b, self.base.ravel()[flat], kk, self.i0, self.i1)
        full_index = np.full(self.n.shape, index, dtype=np.int64)
        value = value.copy()
        full_index.ravel()[flat], value.ravel()[flat] = at, self.rows[at, m, b]
        return full_index, value

    def first(self) -> tuple[np.ndarray | int, np.ndarray]:
        """Scrape index and value [n, B] of each series' first sample in the window (where it has one)."""
        if self.all_or_none:
            return self.i0, self.x0
        return self._found(self.i0, self.x0, ~self.valid0 & self.some, 1)

    def last(self, rank: int = 0) -> tuple[np.ndarray | int, np.ndarray]:
        """Scrape index and value [n, B] of each series' last sample in the window (rank 1: the one before it),
        where it has rank + 1 samples."""
        if rank == 0:
            if self.all_or_none:
                return self.i1 - 1, self.x1
            return self._found(self.i1 - 1, self.x1, ~self.valid1 & self.some, self.n)
        # the one before the last: the window's second-last scrape when the series has a sample at both
        value = self.row(self.rows, self.i1 - 2)
        if self.all_or_none:
            return self.i1 - 2, value
        known = self.valid1 & ~np.isnan(value)
        return self._found(self.i1 - 2, value, ~known & (self.n > rank), self.n - rank)

    def resets_from(self, first_index: np.ndarray | int) -> np.ndarray:
        """Counter resets [n, B] (uint16) between each series' first sample in the window and its last."""
        at_first = self.row(self.resets, self.i0)
        if not isinstance(first_index, int):
            flat, m, b = self.pairs(first_index != self.i0)
            at_first.ravel()[flat] = self.resets[first_index.ravel()[flat], m, b]
        # no sample follows the last one in the window, so the count at the window's end is the count at it; and
        # a series without a sample there has no reset either
        return self.row(self.resets, self.i1 - 1) - at_first

    def gather(self, mask: np.ndarray) -> "list[tuple[np.ndarray, np.ndarray, np.ndarray]]":
        """The whole window of the entries of `mask`, in blocks of about BLOCK_ELEMENTS samples (float64): for
        each, the block [w, ...], the flat indices into [n, B] of its entries (its trailing axes raveled), and their
        worlds (shaped like its trailing axes). A column needed in most worlds is copied whole, [w, k, B] (rows are
        contiguous); the rest entry by entry, [w, k]."""
        worlds, window = self.worlds, self.rows[self.i0:self.i1]
        out = []
        per_col = mask.sum(axis=1)
        whole = np.flatnonzero(2 * per_col >= worlds)
        step = max(1, BLOCK_ELEMENTS // (self.w * worlds))
        for s in range(0, len(whole), step):
            c = whole[s:s + step]
            flat = (c[:, None] * worlds + np.arange(worlds)).ravel()
            out.append((window[:, self.cols[c]].astype(np.float64, copy=False), flat,
                        np.broadcast_to(np.arange(worlds), (len(c), worlds))))
        rest = mask.copy()
        rest[whole] = False
        flat, m, b = self.pairs(rest)
        step = max(1, BLOCK_ELEMENTS // self.w)
        out += [(window[:, m[s:s + step], b[s:s + step]].astype(np.float64, copy=False), flat[s:s + step],
                 b[s:s + step]) for s in range(0, len(flat), step)]
        return out


def window_function(name: str, store: MetricStore, cols: np.ndarray, i0: int, i1: int, times_ms: np.ndarray,
                    start_ms: int, end_ms: int, range_ms: int, q: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A range-vector function over the window [i0, i1) (scrape indices; `times_ms` their times) of the columns
    `cols` in every world: values and present [B, n], as `overtime.over_time` gives them (transposed views of
    world-last arrays). The store must keep running counts and the window be shorter than SPAN scrapes. q [B] is
    quantile_over_time's argument.

    Results are kept in the store's memo per (function, window) and column, so alert rules evaluated at one time
    that share a function and range over overlapping selectors compute each column once."""
    memo = store.memo if q is None else None
    if memo is None:
        values, present = _compute(name, store, cols, i0, i1, times_ms, start_ms, end_ms, range_ms, q)
        return values.T, present.T
    key = ("window", name, start_ms, end_ms, range_ms)
    entry = memo.get(key)
    if entry is None:
        while len(memo) >= _MEMO_ENTRIES:
            memo.pop(next(iter(memo)))
        shape = (len(store.labels), store.worlds)
        entry = memo[key] = (np.empty(shape), np.empty(shape, dtype=bool), np.zeros(shape[0], dtype=bool))
    values, present, known = entry
    need = cols[~known[cols]]
    if len(need):
        values[need], present[need] = _compute(name, store, need, i0, i1, times_ms, start_ms, end_ms, range_ms)
        known[need] = True
    return values[cols].T, present[cols].T


def _compute(name: str, store: MetricStore, cols: np.ndarray, i0: int, i1: int, times_ms: np.ndarray,
             start_ms: int, end_ms: int, range_ms: int, q: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """window_function's values and present, world-last [n, B]."""
    values = np.full((len(cols), store.worlds), np.nan)
    present = np.zeros(values.shape, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        ends = Ends(store, cols, i0, i1)
        live = ends.n.any(axis=1)            # a series absent in every world (a pod not running) costs nothing
        if not live.any():
            return values, present
        if not live.all():
            ends.only(live)
        got, ok, redo = _from_ends(name, ends, times_ms, start_ms, end_ms, range_ms)
        if redo is not None and redo.any():
            got, ok = np.array(got, copy=True), np.array(ok, copy=True)
            for block, flat, b in ends.gather(redo):
                v, o = over_time(name, block, times_ms, start_ms, end_ms, range_ms, q[b] if q is not None else None)
                got.ravel()[flat], ok.ravel()[flat] = v.ravel(), o.ravel()
    values[live], present[live] = got, ok
    return values, present


def _from_ends(name: str, ends: Ends, times_ms: np.ndarray, start_ms: int, end_ms: int, range_ms: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """values, present [n, B] where the ends tell, and which entries (if any) need their whole window."""
    n, i0, some = ends.n, ends.i0, ends.some
    if name in ("rate", "increase", "delta"):
        is_counter = name != "delta"
        first_i, first = ends.first()
        last_i, last = ends.last()
        # the correction adds the sample before each reset: those few series take the general path
        redo = ends.resets_from(first_i) != 0 if is_counter else None
        if ends.all_or_none:       # count and times are the same for every series: scalars
            values, ok = extrapolate(last - first, first, times_ms[0], times_ms[-1], ends.w, start_ms, end_ms,
                                     range_ms, is_counter, name == "rate",
                                     ok=some if ends.w >= 2 else np.zeros_like(some))
        else:
            values, ok = extrapolate(last - first, first, times_ms[first_i - i0], times_ms[last_i - i0],
                                     n.astype(np.int64), start_ms, end_ms, range_ms, is_counter, name == "rate")
        return values, ok, redo
    if name in ("irate", "idelta"):
        ok = n >= 2
        if ends.w < 2:
            return np.full(n.shape, np.nan), ok, None
        last_i, last = ends.last()
        prev_i, prev = ends.last(1)
        dt = (times_ms[last_i - i0] - times_ms[prev_i - i0]) / 1000.0
        values, ok = last_two(last, prev, dt, ok, name == "irate")
        return values, ok, None
    if name == "resets":
        first_i, _ = ends.first()
        return np.where(some, ends.resets_from(first_i).astype(np.float64), np.nan), some, None
    if name == "count_over_time":
        return np.where(some, n.astype(np.float64), np.nan), some, None
    if name == "present_over_time":
        return np.where(some, 1.0, np.nan), some, None
    if name == "last_over_time":
        _, last = ends.last()
        return np.where(some, last, np.nan), some, None
    sums = ends.store.sums
    if name in ("sum_over_time", "avg_over_time") and sums is not None:
        total, exact = _window_sum(ends, *sums)
        value = total if name == "sum_over_time" else total / np.maximum(n, 1)
        return np.where(some, value, np.nan), some, some & ~exact
    # every sample counts: gather the series that have one
    return np.full(n.shape, np.nan), np.zeros(n.shape, dtype=bool), some


def _window_sum(ends: Ends, hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sum [n, B] of each series' samples in the window from the running sums (hi + lo, at or before each
    scrape): (hi1 + lo1) - (hi0 + lo0) + x0 in error-free steps, so one rounding of the result, not of the running
    sum, is lost. Also where that holds (not where a running sum is not finite: an infinite sample, ever)."""
    h0, h1 = ends.row(hi, ends.i0), ends.row(hi, ends.i1 - 1)
    l0, l1 = ends.row(lo, ends.i0), ends.row(lo, ends.i1 - 1)
    s1, e1 = _two_sum(h1, -h0)
    s2, e2 = _two_sum(s1, np.where(ends.valid0, ends.x0, 0.0))
    total = s2 + (e2 + (e1 + (l1 - l0)))
    return total, np.isfinite(h0) & np.isfinite(h1) & np.isfinite(l0) & np.isfinite(l1) & np.isfinite(total)


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a + b and its rounding error, exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)
