"""Functions of a range vector (rate, irate, increase, delta, *_over_time, ...) over a window block.

Each takes the window W [w, b, c] (NaN = no sample; stored samples are never NaN otherwise), the scrape times [w]
in ms and the window bounds, and returns values [b, c] and present [b, c]. Like Prometheus, a series with no sample
in the window gives no output, and rate-like functions need two samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Window:
    """One block of a range selector's window and what most functions need of it."""

    values: np.ndarray         # [w, b, c]
    times_ms: np.ndarray       # [w] int64
    start_ms: int              # t - offset - range (inclusive)
    end_ms: int                # t - offset (inclusive)

    def __post_init__(self) -> None:
        self.present = ~np.isnan(self.values)
        self.count = self.present.sum(axis=0)
        self.full = bool(self.count.min(initial=len(self.values)) == len(self.values))

    def last_index(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Index of the newest sample [b, c] (0 where there is none)."""
        mask = self.present if mask is None else mask
        if mask is self.present and self.full:
            return np.full(self.count.shape, len(self.values) - 1)
        return len(mask) - 1 - np.argmax(mask[::-1], axis=0)

    def first_index(self) -> np.ndarray:
        if self.full:
            return np.zeros(self.count.shape, dtype=np.int64)
        return np.argmax(self.present, axis=0)

    def at(self, index: np.ndarray) -> np.ndarray:
        return np.take_along_axis(self.values, index[None], axis=0)[0]

    def filled(self) -> np.ndarray:
        """Each sample slot holding the newest sample at or before it (NaN before the first): a forward fill."""
        if self.full:
            return self.values
        ar = np.arange(len(self.values)).reshape(-1, 1, 1)
        idx = np.where(self.present, ar, 0)
        np.maximum.accumulate(idx, axis=0, out=idx)
        return np.take_along_axis(self.values, idx, axis=0)

    def zeroed(self) -> np.ndarray:
        return self.values if self.full else np.where(self.present, self.values, 0.0)


def extrapolated_rate(win: Window, range_ms: int, is_counter: bool, is_rate: bool
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Prometheus 2.42 extrapolatedRate: last - first (plus the value before each counter reset), extrapolated
    to the window edges when the first/last sample is within 1.1 average intervals of them (else by half an
    interval), never extrapolating a counter below zero."""
    ok = win.count >= 2
    first_i, last_i = win.first_index(), win.last_index()
    first, last = win.at(first_i), win.at(last_i)
    result = last - first
    if is_counter:
        before = win.filled()[:-1]
        result = result + np.where(win.values[1:] < before, before, 0.0).sum(axis=0)
    t_first, t_last = win.times_ms[first_i], win.times_ms[last_i]
    to_start = (t_first - win.start_ms) / 1000.0
    to_end = (win.end_ms - t_last) / 1000.0
    sampled = (t_last - t_first) / 1000.0
    avg = sampled / np.maximum(win.count - 1, 1)
    if is_counter:
        to_zero = sampled * (first / np.where(result > 0, result, 1.0))
        to_start = np.where((result > 0) & (first >= 0) & (to_zero < to_start), to_zero, to_start)
    threshold = avg * 1.1
    interval = (sampled + np.where(to_start < threshold, to_start, avg / 2)
                + np.where(to_end < threshold, to_end, avg / 2))
    factor = interval / np.where(ok, sampled, 1.0)
    if is_rate:
        factor = factor / (range_ms / 1000.0)
    return np.where(ok, result * factor, np.nan), ok


def instant_rate(win: Window, is_rate: bool) -> tuple[np.ndarray, np.ndarray]:
    """irate/idelta: the last two samples; for irate a drop counts as a reset to the last value."""
    last_i = win.last_index()
    ar = np.arange(len(win.values)).reshape(-1, 1, 1)
    prev_i = win.last_index(win.present & (ar < last_i[None]))
    last, prev = win.at(last_i), win.at(prev_i)
    ok = win.count >= 2
    if not is_rate:
        return np.where(ok, last - prev, np.nan), ok
    result = np.where(last < prev, last, last - prev)
    dt = (win.times_ms[last_i] - win.times_ms[prev_i]) / 1000.0
    return np.where(ok, result / np.where(ok, dt, 1.0), np.nan), ok


def changes(win: Window, resets: bool) -> tuple[np.ndarray, np.ndarray]:
    """How often the value changed (or, for resets, dropped) between consecutive samples."""
    before = win.filled()[:-1]
    now = win.values[1:]
    hit = (now < before) if resets else ((now != before) & ~np.isnan(now) & ~np.isnan(before))
    ok = win.count >= 1
    return np.where(ok, hit.sum(axis=0).astype(np.float64), np.nan), ok


def quantile_over(sorted_vals: np.ndarray, count: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Prometheus' quantile over `count` leading sorted values along axis 0 (q per world [b, 1]): linear
    interpolation between the two closest ranks, -Inf for q < 0, +Inf for q > 1."""
    n = np.maximum(count, 1).astype(np.float64)
    rank = q * (n - 1)
    with np.errstate(invalid="ignore"):
        lower = np.clip(np.floor(np.nan_to_num(rank)), 0, n - 1)
        upper = np.minimum(n - 1, lower + 1)
        weight = rank - np.floor(rank)
        lo = np.take_along_axis(sorted_vals, lower.astype(np.int64)[None], axis=0)[0]
        hi = np.take_along_axis(sorted_vals, upper.astype(np.int64)[None], axis=0)[0]
        value = lo * (1 - weight) + hi * weight
    value = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, value))
    return np.where(np.isnan(q), np.nan, value)


def over_time(name: str, win: Window, range_ms: int, q: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch one range-vector function on one window block."""
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
        value = win.at(win.last_index())
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
        dev = np.where(win.present, win.values - mean, 0.0)
        value = (dev * dev).sum(axis=0) / np.maximum(count, 1)
        if name == "stddev_over_time":
            value = np.sqrt(value)
    elif name == "quantile_over_time":
        assert q is not None
        value = quantile_over(np.sort(win.values, axis=0), win.count, q)
    else:
        raise KeyError(name)
    return np.where(ok, value, np.nan), ok
