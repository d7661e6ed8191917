"""Label-set work done once per catalogue: keys, signatures, and grouping columns into groups that numpy reduces.

Everything here is static for a store (it depends on label sets, never on values), so the evaluator caches it per
node; the per-evaluation work is the `Groups` reductions over [B, n] arrays.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Callable

import numpy as np

from .errors import PromQLError

NAME = "__name__"
LabelSet = dict[str, str]
LabelKey = tuple[tuple[str, str], ...]


def key(labels: LabelSet) -> LabelKey:
    """A hashable identity of a label set."""
    return tuple(sorted(labels.items()))


def fmt(labels: LabelSet) -> str:
    """A label set as Prometheus prints it: `name{a="b"}`."""
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != NAME)
    return f"{labels.get(NAME, '')}{{{inner}}}"


def drop_name(labels: LabelSet) -> LabelSet:
    return {k: v for k, v in labels.items() if k != NAME} if NAME in labels else labels


def signature(on: bool, names: Sequence[str]) -> Callable[[LabelSet], Hashable]:
    """The matching signature of vector matching: `on(names)` keeps only those labels (a missing one reads as ""),
    `ignoring(names)` drops them and always the metric name, as Prometheus' HashForLabels/HashWithoutLabels do."""
    if on:
        wanted = tuple(sorted(set(names)))
        return lambda ls: tuple(ls.get(n, "") for n in wanted)
    dropped = set(names) | {NAME}
    return lambda ls: tuple(sorted((k, v) for k, v in ls.items() if k not in dropped))


def group_ids(keys: Sequence[Hashable]) -> tuple[np.ndarray, list[int]]:
    """Dense group ids [n] in order of first appearance, and the first member of each group."""
    seen: dict[Hashable, int] = {}
    ids = np.empty(len(keys), dtype=np.int64)
    first: list[int] = []
    for i, k in enumerate(keys):
        g = seen.get(k)
        if g is None:
            g = seen[k] = len(first)
            first.append(i)
        ids[i] = g
    return ids, first


class Groups:
    """Columns [n] assigned to `count` non-empty groups; reduces the last axis of arrays [..., n] to [..., count]
    with ufunc.reduceat over the columns sorted by group."""

    def __init__(self, ids: np.ndarray, count: int) -> None:
        self.ids = ids
        self.count = count
        self.order = np.argsort(ids, kind="stable")
        sorted_ids = ids[self.order]
        self.starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]) if len(ids) else ids
        self.sizes = np.diff(np.r_[self.starts, len(ids)])
        self.trivial = count == len(ids) and bool(np.all(ids == np.arange(len(ids))))

    def reduce(self, ufunc: np.ufunc, x: np.ndarray, dtype: type | None = None) -> np.ndarray:
        """ufunc over each group's columns (in `dtype`, default x's)."""
        if self.trivial:
            return x if dtype is None else x.astype(dtype)
        if self.count == 0:
            return np.empty((*x.shape[:-1], 0), dtype=dtype or x.dtype)
        return ufunc.reduceat(x[..., self.order], self.starts, axis=-1, dtype=dtype)

    def count_true(self, mask: np.ndarray) -> np.ndarray:
        # counting the booleans in int64 inside reduceat is several times faster than converting them first
        return self.reduce(np.add, mask, dtype=np.int64)

    def any(self, mask: np.ndarray) -> np.ndarray:
        return self.reduce(np.logical_or, mask)


class Merge:
    """Columns whose label sets coincide (once a function or operator dropped the metric name) become one column.
    Prometheus fails a vector holding two samples with one label set, so a world where two of them are present
    raises PromQLError; elsewhere the present one is kept."""

    def __init__(self, labels: list[LabelSet]) -> None:
        ids, first = group_ids([key(ls) for ls in labels])
        self.labels = [labels[i] for i in first]
        self.groups = Groups(ids, len(first)) if len(first) < len(labels) else None

    def apply(self, values: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.groups is None:
            return values, present
        counts = self.groups.count_true(present)
        if counts.max(initial=0) > 1:
            g = int(np.argmax(counts.max(axis=tuple(range(counts.ndim - 1)))))
            raise PromQLError(f"vector cannot contain metrics with the same labelset: {fmt(self.labels[g])}")
        merged = self.groups.reduce(np.add, np.where(present, values, 0.0))
        out = counts > 0
        return np.where(out, merged, np.nan), out
