"""Functions of a range vector (rate, irate, increase, delta, *_over_time, ...) over a window block.

Each works on a window W [w, ...] (time first; NaN = no sample, stored samples are never NaN otherwise) with the
scrape times [w] in ms and the window bounds, and returns values and present of shape W.shape[1:]. Like
Prometheus, a series with no sample in the window gives no output, and rate-like functions need two samples.

Speed: most series have every scrape of a window, so each function has a fast path for a gap-free window (first
and last sample at the window's first and last scrape, count = w). `over_time` runs it on the whole block and then
recomputes only the series with a gap in their window, gathered into a small [w, k] array, on the general path.
On a store with running counts most functions do not gather the window at all (`ends`); they share the formulas
here (`extrapolate`, `last_two`) so that both paths give the same bits.
"""

from __future__ import annotations

import numpy as np

# above this share of series with gaps, the general path runs on the whole block
_GAPPY = 0.25


class Window:
    """One block of a range selector's window and what most functions need of it."""

    def __init__(self, values: np.ndarray, times_ms: np.ndarray, start_ms: int, end_ms: int, full: bool) -> None:
        self.values, self.times_ms, self.start_ms, self.end_ms = values, times_ms, start_ms, end_ms
        self.full = full                                   # True: every slot has a sample
        self.w = len(values)
        self.present = None if full else ~np.isnan(values)
        self.count = (np.full(values.shape[1:], self.w) if full
                      else self.present.sum(axis=0))      # type: ignore[union-attr]

    def last_index(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Index of the newest sample (0 where there is none)."""
        if mask is None:
            if self.full:
                return np.full(self.values.shape[1:], self.w - 1)
            mask = self.present
        assert mask is not None
        return self.w - 1 - np.argmax(mask[::-1], axis=0)

    def first_index(self) -> np.ndarray:
        if self.full:
            return np.zeros(self.values.shape[1:], dtype=np.int64)
        return np.argmax(self.present, axis=0)

    def at(self, index: np.ndarray) -> np.ndarray:
        return np.take_along_axis(self.values, index[None], axis=0)[0]

    def previous(self) -> np.ndarray:
        """For each slot but the first, the newest sample before it (NaN if none): a forward fill, shifted."""
        if self.full:
            return self.values[:-1]
        ar = np.arange(self.w).reshape((-1,) + (1,) * (self.values.ndim - 1))
        idx = np.where(self.present, ar, 0)
        np.maximum.accumulate(idx, axis=0, out=idx)
        return np.take_along_axis(self.values, idx[:-1], axis=0)

    def zeroed(self) -> np.ndarray:
        return self.values if self.full else np.where(self.present, self.values, 0.0)


def extrapolated_rate(win: Window, range_ms: int, is_counter: bool, is_rate: bool
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Prometheus 2.42 extrapolatedRate: last - first (plus the value before each counter reset), extrapolated
    to the window edges when the first/last sample is within 1.1 average intervals of them (else by half an
    interval), never extrapolating a counter below zero."""
    if win.full:
        first, last = win.values[0], win.values[-1]
        t_first, t_last = win.times_ms[0], win.times_ms[-1]
    else:
        first_i, last_i = win.first_index(), win.last_index()
        first, last = win.at(first_i), win.at(last_i)
        t_first, t_last = win.times_ms[first_i], win.times_ms[last_i]
    result = last - first
    if is_counter:
        before = win.previous()
        dropped = win.values[1:] < before
        if dropped.any():
            result = result + np.where(dropped, before, 0.0).sum(axis=0)
    return extrapolate(result, first, t_first, t_last, win.count, win.start_ms, win.end_ms, range_ms, is_counter,
                       is_rate)


def extrapolate(result: np.ndarray, first: np.ndarray, t_first: np.ndarray | int, t_last: np.ndarray | int,
                count: np.ndarray | int, start_ms: int, end_ms: int, range_ms: int, is_counter: bool, is_rate: bool,
                ok: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The rest of extrapolatedRate once the increase `result` (reset-corrected for counters), the first sample and
    the times [ms] of the first and last sample, and the number of samples of each series are known (the times and
    count may be scalars shared by all, and then `ok` says which series have count >= 2 samples); shared by every
    path so that they agree to the bit."""
    if ok is None:
        ok = count >= 2
    to_start = (t_first - start_ms) / 1000.0
    to_end = (end_ms - t_last) / 1000.0
    sampled = (t_last - t_first) / 1000.0
    avg = sampled / np.maximum(count - 1, 1)
    if not is_counter:
        return np.where(ok, result * _factor(to_start, to_end, sampled, avg, ok, range_ms, is_rate), np.nan), ok
    if np.ndim(to_start) or np.ndim(sampled) or not sampled > 0:
        value = result * _factor(_zero_clamp(result, first, sampled, to_start), to_end, sampled, avg, ok, range_ms,
                                 is_rate)
        return np.where(ok, value, np.nan), ok
    # Times shared by every series: one factor, except where the zero clamp moves to_start, which needs
    # sampled * first / result < to_start. Those are picked with a margin (a superset) and run element by element.
    value = result * _factor(to_start, to_end, sampled, avg, ok, range_ms, is_rate)
    near = (result > 0) & (first >= 0) & (first < result * (to_start / sampled * (1.0 + 1e-9)))
    if near.any():
        sub_ok, sub_avg = (x[near] if np.ndim(x) else x for x in (ok, avg))
        sub = result[near]
        value[near] = sub * _factor(_zero_clamp(sub, first[near], sampled, to_start), to_end, sampled, sub_avg,
                                    sub_ok, range_ms, is_rate)
    return np.where(ok, value, np.nan), ok


def _zero_clamp(result: np.ndarray, first: np.ndarray, sampled: np.ndarray | float, to_start: np.ndarray | float
                ) -> np.ndarray:
    """A counter is not extrapolated below zero: to_start shrinks to where the line through the samples hits 0."""
    rising = (result > 0) & (first >= 0)
    to_zero = np.where(rising, result, 1.0)
    np.divide(first, to_zero, out=to_zero)
    np.multiply(sampled, to_zero, out=to_zero)
    rising &= to_zero < to_start
    return np.where(rising, to_zero, to_start)


def _factor(to_start: np.ndarray | float, to_end: np.ndarray | float, sampled: np.ndarray | float,
            avg: np.ndarray | float, ok: np.ndarray | bool, range_ms: int, is_rate: bool) -> np.ndarray:
    """(sampled + the extrapolation at both ends) / sampled, per second of range for rate: extrapolate to an edge
    within 1.1 average intervals of it, else by half an interval."""
    threshold = avg * 1.1
    interval = sampled + np.where(to_start < threshold, to_start, avg / 2)
    interval = interval + np.where(to_end < threshold, to_end, avg / 2)
    if np.ndim(sampled) == 0 and sampled > 0:
        factor = interval / sampled                       # ok or not, no division by zero to step around
    else:
        factor = interval / np.where(ok, sampled, 1.0)
    if is_rate:
        factor = factor / (range_ms / 1000.0)
    return factor


def instant_rate(win: Window, is_rate: bool) -> tuple[np.ndarray, np.ndarray]:
    """irate/idelta: the last two samples; for irate a drop counts as a reset to the last value."""
    ok = win.count >= 2
    if win.full:
        if win.w < 2:
            return np.full(ok.shape, np.nan), ok
        last, prev = win.values[-1], win.values[-2]
        dt = (win.times_ms[-1] - win.times_ms[-2]) / 1000.0
    else:
        last_i = win.last_index()
        ar = np.arange(win.w).reshape((-1,) + (1,) * (win.values.ndim - 1))
        prev_i = win.last_index(win.present & (ar < last_i[None]))
        last, prev = win.at(last_i), win.at(prev_i)
        dt = (win.times_ms[last_i] - win.times_ms[prev_i]) / 1000.0
    return last_two(last, prev, dt, ok, is_rate)


def last_two(last: np.ndarray, prev: np.ndarray, dt: np.ndarray, ok: np.ndarray, is_rate: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    """irate/idelta from the last two samples and the seconds between them (`ok`: there are two)."""
    if not is_rate:
        return np.where(ok, last - prev, np.nan), ok
    result = np.where(last < prev, last, last - prev)
    return np.where(ok, result / np.where(ok, dt, 1.0), np.nan), ok


def changes(win: Window, resets: bool) -> tuple[np.ndarray, np.ndarray]:
    """How often the value changed (or, for resets, dropped) between consecutive samples."""
    before, now = win.previous(), win.values[1:]
    hit = (now < before) if resets else ((now != before) & ~np.isnan(now) & ~np.isnan(before))
    ok = win.count >= 1
    return np.where(ok, hit.sum(axis=0).astype(np.float64), np.nan), ok


def quantile_over(sorted_vals: np.ndarray, count: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Prometheus' quantile over the `count` leading sorted values along the LAST axis (q broadcasts against
    count): linear interpolation between the two closest ranks, -Inf for q < 0, +Inf for q > 1, NaN for q NaN."""
    n = np.maximum(count, 1).astype(np.float64)
    rank = q * (n - 1)
    lower = np.clip(np.floor(np.nan_to_num(rank)), 0, n - 1)
    upper = np.minimum(n - 1, lower + 1)
    weight = rank - np.floor(rank)
    lo = np.take_along_axis(sorted_vals, lower.astype(np.int64)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(sorted_vals, upper.astype(np.int64)[..., None], axis=-1)[..., 0]
    value = lo * (1 - weight) + hi * weight
    value = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, value))
    return np.where(np.isnan(q), np.nan, value)


def _apply(name: str, win: Window, range_ms: int, q: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """One function on one window (fast or general path, as the window says)."""
    if name in ("rate", "increase", "delta"):
        return extrapolated_rate(win, range_ms, is_counter=name != "delta", is_rate=name == "rate")
    if name in ("irate", "idelta"):
        return instant_rate(win, is_rate=name == "irate")
    if name in ("changes", "resets"):
        return changes(win, resets=name == "resets")
    ok = win.count > 0
    count = win.count.astype(np.float64)
    if name == "count_over_time":
        value = count
    elif name == "present_over_time":
        value = np.ones(count.shape)
    elif name == "last_over_time":
        value = win.values[-1] if win.full else win.at(win.last_index())
    elif name == "sum_over_time":
        value = win.zeroed().sum(axis=0)
    elif name == "avg_over_time":
        value = win.zeroed().sum(axis=0) / np.maximum(count, 1)
    elif name == "min_over_time":
        value = np.fmin.reduce(win.values, axis=0)
    elif name == "max_over_time":
        value = np.fmax.reduce(win.values, axis=0)
    elif name in ("stddev_over_time", "stdvar_over_time"):
        mean = win.zeroed().sum(axis=0) / np.maximum(count, 1)
        dev = win.values - mean if win.full else np.where(win.present, win.values - mean, 0.0)
        value = (dev * dev).sum(axis=0) / np.maximum(count, 1)
        if name == "stddev_over_time":
            value = np.sqrt(value)
    elif name == "quantile_over_time":
        assert q is not None
        # sorting along a contiguous last axis is several times faster than along the time axis in place
        lanes = np.ascontiguousarray(np.moveaxis(win.values, 0, -1))
        lanes.sort(axis=-1)                                  # NaN (no sample) sorts last
        value = quantile_over(lanes, win.count, q)
    else:
        raise KeyError(name)
    return np.where(ok, value, np.nan), ok


def over_time(name: str, values: np.ndarray, times_ms: np.ndarray, start_ms: int, end_ms: int, range_ms: int,
              q: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate a range-vector function on a window block W [w, b, c] -> values, present [b, c]; q (for
    quantile_over_time) broadcasts against [b, c]."""
    gaps = np.isnan(values).any(axis=0)
    n_gaps = int(np.count_nonzero(gaps))
    if n_gaps == 0:
        return _apply(name, Window(values, times_ms, start_ms, end_ms, full=True), range_ms, q)
    if n_gaps > _GAPPY * gaps.size:
        return _apply(name, Window(values, times_ms, start_ms, end_ms, full=False), range_ms, q)
    out, ok = _apply(name, Window(values, times_ms, start_ms, end_ms, full=True), range_ms, q)
    sub_q = np.broadcast_to(q, gaps.shape)[gaps] if q is not None else None
    sub_out, sub_ok = _apply(name, Window(values[:, gaps], times_ms, start_ms, end_ms, full=False), range_ms, sub_q)
    out[gaps], ok[gaps] = sub_out, sub_ok
    return out, ok
