"""Reading samples out of the store the way Prometheus 2.42 does.

An instant selector at time t takes, per series, the newest sample in [t - 5m, t] (both ends inclusive in 2.42).
A range selector `[r]` takes every sample in [t - r, t] (both ends inclusive in 2.42). `offset o` moves t to t - o.
Times are compared in whole milliseconds; the store keeps them as seconds with millisecond precision, and
`ms / 1000.0` rounds to exactly the float the store holds, so searching the float times is exact.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..store import MetricStore

LOOKBACK_MS = 300_000
# The store's running counts are modulo 2**16, so they answer for windows of fewer scrapes than this.
SPAN = 1 << 16
# A range window is gathered in blocks of at most this many samples (2 MiB of float64): a long range over thousands
# of worlds never materialises [w, B, n] at once, and the few passes each function makes over a block stay in cache
# (measured on 8192 worlds: 2^18 beats 2^16 and 2^22 by 20-40 %).
BLOCK_ELEMENTS = 1 << 18


def index_range(store: MetricStore, lo_ms: int, hi_ms: int) -> tuple[int, int]:
    """Scrape indices [i0, i1) of the times in [lo_ms, hi_ms], both inclusive."""
    times = store.times
    return (int(np.searchsorted(times, lo_ms / 1000.0, "left")),
            int(np.searchsorted(times, hi_ms / 1000.0, "right")))


def instant(store: MetricStore, cols: np.ndarray, ref_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """The newest sample of each column in [ref - 5m, ref]: values [B, n] (NaN = none) and present [B, n].

    Reads the newest scrape; for what it lacks, the store's running counts tell which series have a sample in the
    lookback and where the newest is (`nth_sample`), so a series that is absent throughout (a pod that is not
    running) costs two reads, not one per scrape of the lookback.
    """
    i0, i1 = index_range(store, ref_ms - LOOKBACK_MS, ref_ms)
    if i1 <= i0 or len(cols) == 0:
        out = np.full((store.worlds, len(cols)), np.nan)
        return out, np.zeros(out.shape, dtype=bool)
    if store.cumulative and i1 - i0 < SPAN:
        return _instant_counted(store, cols, i0, i1)
    raw = store.values
    out = raw[i1 - 1][:, cols].astype(np.float64)
    missing = np.flatnonzero(np.isnan(out).any(axis=0))
    k = i1 - 2
    while k >= i0 and len(missing):
        sub = out[:, missing]
        np.copyto(sub, raw[k][:, cols[missing]], where=np.isnan(sub), casting="unsafe")
        out[:, missing] = sub
        missing = missing[np.isnan(sub).any(axis=0)]
        k -= 1
    return out, ~np.isnan(out)


def _instant_counted(store: MetricStore, cols: np.ndarray, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
    rows = store.rows
    out = rows[i1 - 1][cols].astype(np.float64)                     # [n, B], a copy
    gone = np.flatnonzero(np.isnan(out))
    if len(gone):
        worlds = out.shape[1]
        m, b = cols[gone // worlds], gone % worlds
        count = store.counts[0]
        base = count[i0, m, b] - ~np.isnan(rows[i0, m, b])         # samples before the lookback (mod 2**16)
        n = (count[i1 - 1, m, b] - base).astype(np.int64)
        has = n > 0
        if has.any():
            m, b = m[has], b[has]
            at = nth_sample(count, m, b, base[has], n[has], i0, i1)
            out.ravel()[gone[has]] = rows[at, m, b]
    out = np.ascontiguousarray(out.T)
    return out, ~np.isnan(out)


def nth_sample(count: np.ndarray, m: np.ndarray, b: np.ndarray, base: np.ndarray, k: np.ndarray, i0: int,
               i1: int) -> np.ndarray:
    """For each (series m, world b), the scrape index in [i0, i1) of its k-th sample there (k >= 1, and it must
    have k samples there): a binary search on the running count `count` [T, M, B] (uint16), `base` being the
    count before i0. log2(i1 - i0) reads of one element per series instead of the whole window."""
    lo = np.full(len(m), i0, dtype=np.int64)
    hi = np.full(len(m), i1 - 1, dtype=np.int64)
    base = base.astype(np.uint16, copy=False)
    for _ in range((i1 - i0).bit_length()):
        mid = (lo + hi) >> 1
        reached = (count[mid, m, b] - base).astype(np.int64) >= k      # uint16 wraps: exact below 2**16 slots
        hi = np.where(reached, mid, hi)
        lo = np.where(reached, lo, mid + 1)
    return lo


def times_ms(store: MetricStore, i0: int, i1: int) -> np.ndarray:
    """Scrape times [i0, i1) in whole milliseconds."""
    return np.rint(store.times[i0:i1] * 1000.0).astype(np.int64)


def _columns(raw: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """raw[..., cols] as float64; a run of adjacent columns is a view, not a copy."""
    if cols[-1] - cols[0] == len(cols) - 1:
        return raw[..., cols[0]:cols[-1] + 1].astype(np.float64, copy=False)
    return raw[..., cols].astype(np.float64, copy=False)


def blocks(store: MetricStore, i0: int, i1: int, cols: np.ndarray
           ) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """The window [i0, i1) of the columns `cols` as float64 blocks [w, b, c] (views where possible; never write to
    them), with the world and column slices they cover: columns first, worlds too when one column over every world
    is already too large."""
    w, worlds, n = i1 - i0, store.worlds, len(cols)
    raw = store.values[i0:i1]
    per_col = w * worlds
    if per_col <= BLOCK_ELEMENTS:
        step = max(1, BLOCK_ELEMENTS // max(per_col, 1))
        for c0 in range(0, n, step):
            cs = slice(c0, min(n, c0 + step))
            yield slice(0, worlds), cs, _columns(raw, cols[cs])
        return
    wstep = max(1, BLOCK_ELEMENTS // max(w, 1))
    for c in range(n):
        for b0 in range(0, worlds, wstep):
            bs = slice(b0, min(worlds, b0 + wstep))
            yield bs, slice(c, c + 1), _columns(raw[:, bs], cols[c:c + 1])
