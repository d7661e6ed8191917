"""Binary operators: arithmetic and comparisons between scalars and vectors, vector matching (on/ignoring,
group_left/group_right) and the set operators and/or/unless, as Prometheus 2.42 evaluates them.

Vector matching is planned once per catalogue: every (many-side, one-side) pair of series with equal matching
signatures, and the output label set of each pair. Evaluation then works on [B, pairs] arrays; a world where
Prometheus would fail (two one-side series with one signature, or two results with one label set) raises.
"""

from __future__ import annotations

import numpy as np

from .errors import PromQLError
from .labels import NAME, Groups, LabelSet, Merge, drop_name, fmt, group_ids, key, signature

# Prometheus 2.42 shouldDropMetricName lists + - * / % ^ only: comparisons and atan2 keep the metric name
DROPS_NAME = ("+", "-", "*", "/", "%", "^")

_ARITH = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power, "%": np.fmod,
    "atan2": np.arctan2,
}
_COMPARE = {
    "==": np.equal, "!=": np.not_equal, ">": np.greater, "<": np.less, ">=": np.greater_equal, "<=": np.less_equal,
}


def elementwise(op: str, lhs: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Prometheus vectorElemBinop: (value, keep). Arithmetic keeps everything (keep None); a comparison keeps
    the left value where it holds."""
    if op in _ARITH:
        return _ARITH[op](lhs, rhs), None
    return np.broadcast_to(lhs, np.broadcast_shapes(np.shape(lhs), np.shape(rhs))), _COMPARE[op](lhs, rhs)


def scalar_scalar(op: str, lhs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Both sides scalar: arithmetic, or a bool comparison giving 0/1."""
    value, keep = elementwise(op, lhs, rhs)
    return value if keep is None else keep.astype(np.float64)


class VectorScalarPlan:
    """A vector against a scalar: the output labels (the metric name goes for arithmetic and bool comparisons)."""

    def __init__(self, labels: list[LabelSet], op: str, return_bool: bool) -> None:
        self.drop = op in DROPS_NAME or return_bool
        self.merge = Merge([drop_name(ls) for ls in labels]) if self.drop else None
        self.labels = self.merge.labels if self.merge else labels

    def apply(self, op: str, values: np.ndarray, present: np.ndarray, scalar: np.ndarray, scalar_left: bool,
              return_bool: bool) -> tuple[np.ndarray, np.ndarray]:
        s = scalar[:, None]
        value, keep = elementwise(op, s, values) if scalar_left else elementwise(op, values, s)
        if keep is not None:
            value = values                         # a comparison always yields the vector's value
            if return_bool:
                value = keep.astype(np.float64)
            else:
                present = present & keep
        value = np.where(present, value, np.nan)
        return self.merge.apply(value, present) if self.merge else (value, present)


def result_labels(many: LabelSet, one: LabelSet, op: str, card: str, on: bool, matching: tuple[str, ...],
                  include: tuple[str, ...], return_bool: bool) -> LabelSet:
    """Prometheus resultMetric: arithmetic drops the name; one-to-one keeps only the `on` labels or drops the
    `ignoring` ones; group_x labels are copied from the one side (or removed when it lacks them)."""
    out = dict(many)
    if op in DROPS_NAME or return_bool:
        out.pop(NAME, None)
    if card == "one-to-one":
        out = {k: v for k, v in out.items() if k in matching} if on else \
            {k: v for k, v in out.items() if k not in matching}
    for name in include:
        if one.get(name, ""):
            out[name] = one[name]
        else:
            out.pop(name, None)
    return out


class VectorMatchPlan:
    """Vector-to-vector arithmetic or comparison: pairs of matching series and the output columns they fill."""

    def __init__(self, lhs: list[LabelSet], rhs: list[LabelSet], op: str, card: str, on: bool,
                 matching: tuple[str, ...], include: tuple[str, ...], return_bool: bool) -> None:
        self.swap = card == "one-to-many"
        many, one = (rhs, lhs) if self.swap else (lhs, rhs)
        self.one_to_one = card == "one-to-one"
        sig = signature(on, matching)
        many_sigs, one_sigs = [sig(ls) for ls in many], [sig(ls) for ls in one]
        one_ids, one_first = group_ids(one_sigs)
        # one side: a signature held by two series present in one world is many-to-many (checked per world)
        self.one_groups = Groups(one_ids, len(one_first)) if len(one_first) < len(one) else None
        self.one_first = [one[i] for i in one_first]
        self.side = "left" if self.swap else "right"
        by_sig: dict[object, list[int]] = {}
        for j, s in enumerate(one_sigs):
            by_sig.setdefault(s, []).append(j)
        pm, po, out, pair_sig = [], [], [], []
        for i, ls in enumerate(many):
            for j in by_sig.get(many_sigs[i], ()):
                pm.append(i)
                po.append(j)
                out.append(result_labels(ls, one[j], op, card, on, matching, include, return_bool))
                pair_sig.append(many_sigs[i])
        self.many_idx = np.array(pm, dtype=np.int64)
        self.one_idx = np.array(po, dtype=np.int64)
        ids, first = group_ids([key(ls) for ls in out])
        self.labels = [out[i] for i in first]
        self.out_groups = Groups(ids, len(first)) if len(first) < len(out) else None
        sig_ids, sig_first = group_ids(pair_sig)
        self.sig_groups = Groups(sig_ids, len(sig_first)) if self.one_to_one and len(sig_first) < len(pm) else None

    def apply(self, op: str, return_bool: bool, lhs: tuple[np.ndarray, np.ndarray], rhs: tuple[np.ndarray, np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray]:
        (mv, mp), (ov, op_) = (rhs, lhs) if self.swap else (lhs, rhs)
        if self.one_groups is not None:
            counts = self.one_groups.count_true(op_)
            if counts.max(initial=0) > 1:
                g = int(np.argmax(counts.max(axis=0)))
                raise PromQLError(f"found duplicate series for the match group {fmt(self.one_first[g])} on the "
                                  f"{self.side} hand-side of the operation; many-to-many matching not allowed: "
                                  f"matching labels must be unique on one side")
        present = mp[:, self.many_idx] & op_[:, self.one_idx]
        a, b = mv[:, self.many_idx], ov[:, self.one_idx]
        value, keep = elementwise(op, b, a) if self.swap else elementwise(op, a, b)
        if keep is not None:
            if return_bool:
                value = keep.astype(np.float64)
            else:
                present = present & keep
        if self.sig_groups is not None and self.sig_groups.count_true(present).max(initial=0) > 1:
            raise PromQLError("multiple matches for labels: many-to-one matching must be explicit "
                              "(group_left/group_right)")
        if self.out_groups is None:
            return np.where(present, value, np.nan), present
        counts = self.out_groups.count_true(present)
        if counts.max(initial=0) > 1:
            g = int(np.argmax(counts.max(axis=0)))
            raise PromQLError(f"multiple matches for labels: grouping labels must ensure unique matches "
                              f"({fmt(self.labels[g])})")
        merged = self.out_groups.reduce(np.add, np.where(present, value, 0.0))
        has = counts > 0
        return np.where(has, merged, np.nan), has


class SetPlan:
    """and/or/unless: which signatures of one side each series of the other side looks up."""

    def __init__(self, lhs: list[LabelSet], rhs: list[LabelSet], op: str, on: bool, matching: tuple[str, ...]) -> None:
        sig = signature(on, matching)
        lsigs, rsigs = [sig(ls) for ls in lhs], [sig(ls) for ls in rhs]
        self.op = op
        self.rgroups, self.l_in_r = self._lookup(rsigs, lsigs)
        if op == "or":
            self.lgroups, self.r_in_l = self._lookup(lsigs, rsigs)
            self.merge = Merge(lhs + rhs)
            self.labels = self.merge.labels
        else:
            self.labels = lhs

    @staticmethod
    def _lookup(side: list[object], other: list[object]) -> tuple[Groups, np.ndarray]:
        """Groups of `side` by signature, and for each series of `other` the group it matches (-1: none)."""
        ids, first = group_ids(side)
        index = {side[i]: g for g, i in enumerate(first)}
        return Groups(ids, len(first)), np.array([index.get(s, -1) for s in other], dtype=np.int64)

    @staticmethod
    def _matched(groups: Groups, lookup: np.ndarray, present: np.ndarray) -> np.ndarray:
        if groups.count == 0:
            return np.zeros((present.shape[0], len(lookup)), dtype=bool)
        any_ = groups.any(present)
        return any_[:, np.maximum(lookup, 0)] & (lookup >= 0)

    def apply(self, lhs: tuple[np.ndarray, np.ndarray], rhs: tuple[np.ndarray, np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray]:
        (lv, lp), (rv, rp) = lhs, rhs
        if self.op == "and":
            keep = lp & self._matched(self.rgroups, self.l_in_r, rp)
            return np.where(keep, lv, np.nan), keep
        if self.op == "unless":
            keep = lp & ~self._matched(self.rgroups, self.l_in_r, rp)
            return np.where(keep, lv, np.nan), keep
        rkeep = rp & ~self._matched(self.lgroups, self.r_in_l, lp)
        return self.merge.apply(np.concatenate([lv, np.where(rkeep, rv, np.nan)], axis=1),
                                np.concatenate([lp, rkeep], axis=1))
