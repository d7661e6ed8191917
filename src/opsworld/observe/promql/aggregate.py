"""Aggregation operators (sum, avg, min, max, count, group, stddev, stdvar, topk, bottomk, quantile) with
by/without, reduced over label groups with ufunc.reduceat — one pass over [B, n] for every group at once."""

from __future__ import annotations

import numpy as np

from .errors import PromQLError
from .labels import NAME, Groups, LabelSet, group_ids, key
from .overtime import quantile_over


class AggregatePlan:
    """Which output group each input series falls in, and the output labels: `by` keeps the listed labels,
    `without` drops them and the metric name; topk/bottomk keep the input series and their labels."""

    def __init__(self, labels: list[LabelSet], grouping: tuple[str, ...], without: bool, keep_series: bool) -> None:
        if without:
            dropped = set(grouping) | {NAME}
            out = [{k: v for k, v in ls.items() if k not in dropped} for ls in labels]
        else:
            out = [{k: ls[k] for k in grouping if ls.get(k, "") != ""} for ls in labels]
        ids, first = group_ids([key(ls) for ls in out])
        self.groups = Groups(ids, len(first))
        self.labels = labels if keep_series else [out[i] for i in first]


def aggregate(op: str, plan: AggregatePlan, values: np.ndarray, present: np.ndarray, param: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """One aggregation over every world at once: values/present [B, n] -> [B, groups] (or [B, n] for topk)."""
    g = plan.groups
    if op in ("topk", "bottomk"):
        assert param is not None
        return _topk(g, values, present, param, op == "topk")
    if op == "quantile":
        assert param is not None
        return _quantile(g, values, present, param)
    counts = g.count_true(present)
    has = counts > 0
    n = np.maximum(counts, 1)
    if op == "count":
        value = counts.astype(np.float64)
    elif op == "group":
        value = np.ones(counts.shape)
    elif op == "sum":
        value = g.reduce(np.add, np.where(present, values, 0.0))
    elif op == "avg":
        value = g.reduce(np.add, np.where(present, values, 0.0)) / n
    elif op == "min":
        value = g.reduce(np.fmin, np.where(present, values, np.nan))
    elif op == "max":
        value = g.reduce(np.fmax, np.where(present, values, np.nan))
    elif op in ("stddev", "stdvar"):
        mean = g.reduce(np.add, np.where(present, values, 0.0)) / n
        dev = np.where(present, values - mean[:, g.ids], 0.0)
        value = g.reduce(np.add, dev * dev) / n
        if op == "stddev":
            value = np.sqrt(value)
    else:
        raise PromQLError(f"unsupported aggregation '{op}'")
    return np.where(has, value, np.nan), has


def _sorted_within_groups(g: Groups, values: np.ndarray, present: np.ndarray, descending: bool,
                          nan_first: bool) -> np.ndarray:
    """Per world, column order sorting by group, then present values (NaN samples first or last), then absent."""
    worlds = values.shape[0]
    nan = present & np.isnan(values)
    tier = np.where(~present, 2, np.where(nan, 0 if nan_first else 1, 1 if nan_first else 0))
    value_key = np.where(present & ~nan, -values if descending else values, 0.0)
    gid = np.broadcast_to(g.ids, (worlds, len(g.ids)))
    return np.lexsort((value_key, tier, gid), axis=-1)


def _check_int64(k: np.ndarray) -> None:
    bad = ~((k <= 2.0 ** 63 - 1) & (k >= -(2.0 ** 63)))
    if bad.any():
        raise PromQLError(f"Scalar value {k[bad][0]} overflows int64")


def _topk(g: Groups, values: np.ndarray, present: np.ndarray, k: np.ndarray, top: bool
          ) -> tuple[np.ndarray, np.ndarray]:
    """topk/bottomk: the k largest (smallest) samples of each group, NaN samples last, with their own labels."""
    _check_int64(k)
    if len(g.ids) == 0:
        return values, present
    order = _sorted_within_groups(g, values, present, descending=top, nan_first=False)
    sorted_present = np.take_along_axis(present, order, axis=-1)
    start_of = np.r_[0, np.cumsum(g.sizes)[:-1]]                    # group start in the sorted order
    rank = np.arange(len(g.ids)) - np.repeat(start_of, g.sizes)
    chosen_sorted = sorted_present & (rank[None, :] < np.trunc(k)[:, None])
    chosen = np.zeros_like(present)
    np.put_along_axis(chosen, order, chosen_sorted, axis=-1)
    return np.where(chosen, values, np.nan), chosen


def _quantile(g: Groups, values: np.ndarray, present: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """quantile(q, v) per group: Prometheus' quantile over the group's samples sorted with NaN first."""
    counts = g.count_true(present)
    has = counts > 0
    if len(g.ids) == 0:
        return np.zeros(counts.shape), has
    order = _sorted_within_groups(g, values, present, descending=False, nan_first=True)
    ordered = np.take_along_axis(values, order, axis=-1)
    start_of = np.r_[0, np.cumsum(g.sizes)[:-1]]
    # lay each group's sorted samples out along a last axis, padded by repeating its last column
    width = int(g.sizes.max())
    pos = np.minimum(np.arange(width)[None, :], g.sizes[:, None] - 1) + start_of[:, None]   # [G, width]
    value = quantile_over(ordered[:, pos], counts, q[:, None])          # ordered[:, pos] is [B, G, width]
    return np.where(has, value, np.nan), has
