"""The tree walk: evaluates a converted query at one time over every world of a store at once.

Static work (selected columns, grouping and matching plans) is cached on each node per series catalogue, so
re-evaluating a rule at every tick, or at every step of a range query, only does array work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np

from ..store import MetricStore
from . import selectors
from .aggregate import AggregatePlan, aggregate
from .binary import SetPlan, VectorMatchPlan, VectorScalarPlan, scalar_scalar
from .ends import window_function
from .errors import PromQLError
from .functions import MATH, HistogramPlan, absent_labels, clamp, round_to, to_scalar
from .labels import Merge, drop_name
from .nodes import (SCALAR, SET_OPS, Aggregate, Binary, Call, Negate, Node, Number, RangeSelector, Selector,
                    String)
from .overtime import over_time
from .values import Scalar, Vector

T = TypeVar("T")


@dataclass
class Context:
    """Where an evaluation happens: the store and the evaluation time in whole milliseconds."""

    store: MetricStore
    t_ms: int

    @property
    def worlds(self) -> int:
        return self.store.worlds


def _plan(node: Node, ctx: Context, build: Callable[[], T]) -> T:
    """The node's plan for this store's catalogue, built once (keyed by the shared label list, which
    `store.world(b)` views share too)."""
    labels = ctx.store.labels
    hit = node.plans.get(id(labels))
    if hit is not None and hit[0] is labels:
        return hit[1]
    plan = build()
    node.plans[id(labels)] = (labels, plan)
    return plan


def evaluate(node: Node, ctx: Context) -> Vector | Scalar:
    """Evaluate an instant-vector or scalar node at ctx.t_ms."""
    if isinstance(node, Number):
        return Scalar(np.full(ctx.worlds, node.value))
    if isinstance(node, Selector):
        cols, labels = _selection(node, ctx)
        values, present = selectors.instant(ctx.store, cols, ctx.t_ms - node.offset_ms)
        return Vector(labels, values, present)
    if isinstance(node, Negate):
        inner = evaluate(node.expr, ctx)
        if isinstance(inner, Scalar):
            return Scalar(-inner.values)
        merge = _plan(node, ctx, lambda: Merge([drop_name(ls) for ls in inner.labels]))
        return Vector(merge.labels, *merge.apply(-inner.values, inner.present))
    if isinstance(node, Call):
        return _call(node, ctx)
    if isinstance(node, Aggregate):
        return _aggregate(node, ctx)
    if isinstance(node, Binary):
        return _binary(node, ctx)
    if isinstance(node, RangeSelector):
        raise PromQLError("a range vector (selector[range]) is only allowed as a function argument here; "
                          "an instant vector or scalar is needed")
    if isinstance(node, String):
        raise PromQLError(f'string "{node.value}" is not supported where a value is needed')
    raise PromQLError(f"cannot evaluate {type(node).__name__}")


def _selection(node: Selector, ctx: Context) -> tuple[np.ndarray, list[dict[str, str]]]:
    def build() -> tuple[np.ndarray, list[dict[str, str]]]:
        cols = ctx.store.select(list(node.matchers))
        # a label with an empty value does not exist in Prometheus
        return cols, [{k: v for k, v in ctx.store.labels[c].items() if v != ""} for c in cols]
    return _plan(node, ctx, build)


def _scalar(node: Node, ctx: Context) -> np.ndarray:
    value = evaluate(node, ctx)
    assert isinstance(value, Scalar)
    return value.values


def _vector(node: Node, ctx: Context) -> Vector:
    value = evaluate(node, ctx)
    assert isinstance(value, Vector)
    return value


def _range_call(node: Call, ctx: Context) -> Vector:
    """A function of a range vector: from the window's ends where the store keeps running counts (`ends`), else
    by gathering the window block by block and reducing it."""
    q = _scalar(node.args[0], ctx) if node.name == "quantile_over_time" else None
    rs = node.args[-1]
    assert isinstance(rs, RangeSelector)
    cols, labels = _selection(rs.selector, ctx)
    end = ctx.t_ms - rs.selector.offset_ms
    start = end - rs.range_ms
    i0, i1 = selectors.index_range(ctx.store, start, end)
    name = "count_over_time" if node.name == "absent_over_time" else node.name
    if i1 > i0 and len(cols) and ctx.store.cumulative and i1 - i0 < selectors.SPAN:
        tms = selectors.times_ms(ctx.store, i0, i1)
        values, present = window_function(name, ctx.store, cols, i0, i1, tms, start, end, rs.range_ms, q)
    else:
        values = np.full((ctx.worlds, len(cols)), np.nan)
        present = np.zeros(values.shape, dtype=bool)
        if i1 > i0:
            tms = selectors.times_ms(ctx.store, i0, i1)
            for bs, cs, block in selectors.blocks(ctx.store, i0, i1, cols):
                qb = q[bs, None] if q is not None else None
                values[bs, cs], present[bs, cs] = over_time(name, block, tms, start, end, rs.range_ms, qb)
    if node.name == "absent_over_time":
        absent = ~present.any(axis=1, keepdims=True)
        return Vector([absent_labels(rs.selector.matchers)], np.where(absent, 1.0, np.nan), absent)
    keep_name = node.name == "last_over_time"        # it acts like an offset, so Prometheus keeps the name
    merge = _plan(node, ctx, lambda: Merge(labels if keep_name else [drop_name(ls) for ls in labels]))
    return Vector(merge.labels, *merge.apply(values, present))


def _call(node: Call, ctx: Context) -> Vector | Scalar:
    name = node.name
    if node.args and isinstance(node.args[-1], RangeSelector):
        return _range_call(node, ctx)
    if name == "time":
        return Scalar(np.full(ctx.worlds, ctx.t_ms / 1000.0))
    if name == "vector":
        s = _scalar(node.args[0], ctx)
        return Vector([{}], s[:, None].copy(), np.ones((ctx.worlds, 1), dtype=bool))
    if name == "histogram_quantile":
        q = _scalar(node.args[0], ctx)
        vec = _vector(node.args[1], ctx)
        plan = _plan(node, ctx, lambda: HistogramPlan(vec.labels))
        return Vector(plan.labels, *plan.apply(vec.values, vec.present, q))
    vec = _vector(node.args[0], ctx)
    if name in ("sort", "sort_desc"):
        return vec                  # results are sets of series here; sorting keeps the labels, name included
    if name == "scalar":
        return Scalar(to_scalar(vec.values, vec.present))
    if name == "absent":
        arg = node.args[0]
        labels = absent_labels(arg.matchers if isinstance(arg, Selector) else None)
        absent = ~vec.present.any(axis=1, keepdims=True)
        return Vector([labels], np.where(absent, 1.0, np.nan), absent)
    merge = _plan(node, ctx, lambda: Merge([drop_name(ls) for ls in vec.labels]))
    present = vec.present
    if name in MATH:
        values = MATH[name](vec.values)
    elif name == "round":
        to_nearest = _scalar(node.args[1], ctx) if len(node.args) > 1 else np.ones(ctx.worlds)
        values = round_to(vec.values, to_nearest)
    elif name in ("clamp", "clamp_min", "clamp_max"):
        lo = _scalar(node.args[1], ctx) if name != "clamp_max" else None
        hi = _scalar(node.args[-1], ctx) if name != "clamp_min" else None
        values, present = clamp(vec.values, present, lo, hi)
    else:
        raise PromQLError(f"unsupported function '{name}'")
    return Vector(merge.labels, *merge.apply(np.where(present, values, np.nan), present))


def _aggregate(node: Aggregate, ctx: Context) -> Vector:
    vec = _vector(node.expr, ctx)
    param = _scalar(node.param, ctx) if node.param is not None and node.param.kind == SCALAR else None
    plan = _plan(node, ctx, lambda: AggregatePlan(vec.labels, node.grouping, node.without,
                                                  keep_series=node.op in ("topk", "bottomk")))
    return Vector(plan.labels, *aggregate(node.op, plan, vec.values, vec.present, param))


def _binary(node: Binary, ctx: Context) -> Vector | Scalar:
    lhs, rhs = evaluate(node.lhs, ctx), evaluate(node.rhs, ctx)
    if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        return Scalar(scalar_scalar(node.op, lhs.values, rhs.values))
    if isinstance(lhs, Scalar) or isinstance(rhs, Scalar):
        vec, s = (rhs, lhs) if isinstance(lhs, Scalar) else (lhs, rhs)
        assert isinstance(vec, Vector) and isinstance(s, Scalar)
        vs = _plan(node, ctx, lambda: VectorScalarPlan(vec.labels, node.op, node.return_bool))
        return Vector(vs.labels, *vs.apply(node.op, vec.values, vec.present, s.values, isinstance(lhs, Scalar),
                                           node.return_bool))
    assert isinstance(lhs, Vector) and isinstance(rhs, Vector)
    if node.op in SET_OPS:
        sp = _plan(node, ctx, lambda: SetPlan(lhs.labels, rhs.labels, node.op, node.on, node.matching))
        return Vector(sp.labels, *sp.apply((lhs.values, lhs.present), (rhs.values, rhs.present)))
    vm = _plan(node, ctx, lambda: VectorMatchPlan(lhs.labels, rhs.labels, node.op, node.card, node.on,
                                                  node.matching, node.include, node.return_bool))
    return Vector(vm.labels, *vm.apply(node.op, node.return_bool, (lhs.values, lhs.present),
                                       (rhs.values, rhs.present)))
