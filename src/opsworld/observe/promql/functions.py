"""Functions of instant vectors and scalars: math, clamp, round, absent, scalar, vector, histogram_quantile.

Like Prometheus, every function here drops the metric name of its input series.
"""

from __future__ import annotations

import re

import numpy as np

from .labels import NAME, LabelSet, Merge, drop_name, group_ids, key, Groups

MATH = {
    "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "sqrt": np.sqrt, "exp": np.exp, "ln": np.log,
    "log2": np.log2, "log10": np.log10, "sgn": np.sign,
}


def round_to(values: np.ndarray, to_nearest: np.ndarray) -> np.ndarray:
    """Prometheus round(): floor(v / to_nearest + 0.5) * to_nearest, computed through the inverse as Go does;
    ties round up."""
    inverse = 1.0 / to_nearest[:, None]
    return np.floor(values * inverse + 0.5) / inverse


def clamp(values: np.ndarray, present: np.ndarray, lo: np.ndarray | None, hi: np.ndarray | None
          ) -> tuple[np.ndarray, np.ndarray]:
    """clamp/clamp_min/clamp_max with Go's NaN-propagating math.Max/Min; clamp() with max < min is empty."""
    out = values
    if hi is not None:
        out = np.minimum(hi[:, None], out)
    if lo is not None:
        out = np.maximum(lo[:, None], out)
    if lo is not None and hi is not None:
        present = present & ~(hi < lo)[:, None]
    return np.where(present, out, np.nan), present


def absent_labels(matchers: tuple[tuple[str, str, str], ...] | None) -> LabelSet:
    """The labels absent() returns: the equality matchers of a plain selector, without the metric name; a label
    matched more than once, or by another operator, is left out (Prometheus createLabelsForAbsentFunction)."""
    out: LabelSet = {}
    dropped: set[str] = set()
    for name, op, value in matchers or ():
        if name == NAME:
            continue
        if op == "=" and name not in out:
            out[name] = value
        else:
            dropped.add(name)
    return {k: v for k, v in out.items() if k not in dropped and v != ""}


def to_scalar(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """scalar(): the single sample's value per world, NaN unless exactly one sample is present."""
    count = present.sum(axis=1)
    total = np.where(present, values, 0.0).sum(axis=1)
    return np.where(count == 1, total, np.nan)


_FLOAT = re.compile(r"^[+-]?(?:inf(?:inity)?|nan|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|0x[0-9a-f.]+(?:p[+-]?\d+)?)$",
                    re.IGNORECASE)


def parse_le(text: str | None) -> float | None:
    """A bucket bound as Go's strconv.ParseFloat reads it, or None (Prometheus skips such a series)."""
    if text is None or not _FLOAT.match(text):
        return None
    return float.fromhex(text) if "x" in text.lower() else float(text)


class HistogramPlan:
    """The static part of histogram_quantile over a vector's labels: bucket series grouped by their labels without
    `le` (name included, as Prometheus groups), each group's distinct bounds in order (series with equal bounds are
    added, as coalesceBuckets does), and the result labels (without name and `le`)."""

    def __init__(self, labels: list[LabelSet]) -> None:
        cols, bounds, keys = [], [], []
        for i, ls in enumerate(labels):
            bound = parse_le(ls.get("le"))
            if bound is None:
                continue
            cols.append(i)
            bounds.append(bound)
            keys.append(key({k: v for k, v in ls.items() if k != "le"}))
        self.cols = np.array(cols, dtype=np.int64)
        gid, first = group_ids(keys)
        out = [drop_name({k: v for k, v in labels[cols[i]].items() if k != "le"}) for i in first]
        self.merge = Merge(out)
        self.labels = self.merge.labels
        slot_of, slot_first = group_ids([(int(g), b) for g, b in zip(gid, bounds)])
        self.slots = Groups(slot_of, len(slot_first))
        per_group: list[list[tuple[float, int]]] = [[] for _ in first]
        for s, i in enumerate(slot_first):
            per_group[gid[i]].append((bounds[i], s))
        width = max((len(p) for p in per_group), default=0)
        self.table = np.full((len(first), width), -1, dtype=np.int64)      # [G, NB] slot, -1 = padding
        self.bounds = np.full((len(first), width), np.nan)                 # [G, NB] upper bound
        for g, members in enumerate(per_group):
            for j, (bound, s) in enumerate(sorted(members)):
                self.table[g, j], self.bounds[g, j] = s, bound

    def apply(self, values: np.ndarray, present: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Prometheus 2.42 bucketQuantile per world and group over the buckets present in that world."""
        worlds, (groups, width) = values.shape[0], self.table.shape
        if groups == 0 or width == 0:
            empty = np.zeros((worlds, len(self.labels)))
            return empty * np.nan, empty.astype(bool)
        v, p = values[:, self.cols], present[:, self.cols]
        slot_val = self.slots.reduce(np.add, np.where(p, v, 0.0))
        slot_has = self.slots.any(p)
        pres = slot_has[:, self.table] & (self.table >= 0)                # [B, G, NB]
        counts = np.where(pres, slot_val[:, self.table], np.nan)
        counts = np.fmax.accumulate(counts, axis=-1)                       # ensureMonotonic
        bounds = np.broadcast_to(self.bounds, pres.shape)
        ar = np.arange(width)
        have = pres.any(axis=-1)
        n_present = pres.sum(axis=-1)
        last = width - 1 - np.argmax(pres[..., ::-1], axis=-1)            # the highest present bucket
        prev_present = np.where(pres, ar, -1)
        np.maximum.accumulate(prev_present, axis=-1, out=prev_present)    # newest present bucket at or below

        def take(a: np.ndarray, i: np.ndarray) -> np.ndarray:
            return np.take_along_axis(a, np.maximum(i, 0)[..., None], axis=-1)[..., 0]

        top, observations = take(bounds, last), take(counts, last)
        qb = q[:, None]
        rank = qb * observations
        candidate = pres & (ar < last[..., None]) & (counts >= rank[..., None])
        b = np.where(candidate.any(axis=-1), np.argmax(candidate, axis=-1), last)
        prev = np.where(b > 0, take(prev_present, b - 1), -1)
        end, count_b = take(bounds, b), take(counts, b)
        start = np.where(prev >= 0, take(bounds, prev), 0.0)
        below = np.where(prev >= 0, take(counts, prev), 0.0)
        value = start + (end - start) * ((rank - below) / (count_b - below))
        value = np.where((prev < 0) & (end <= 0), end, value)
        value = np.where(b == last, take(bounds, take(prev_present, last - 1)), value)
        value = np.where(observations == 0, np.nan, value)
        value = np.where(n_present < 2, np.nan, value)
        value = np.where(top != np.inf, np.nan, value)
        value = np.where(qb > 1, np.inf, np.where(qb < 0, -np.inf, value))
        value = np.where(np.isnan(qb), np.nan, value)
        return self.merge.apply(np.where(have, value, np.nan), have)
