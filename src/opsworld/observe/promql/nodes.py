"""The supported PromQL subset as a small tree of our own, converted once from promql_parser's AST.

Converting checks the subset (anything else raises PromQLError naming it) and gives every node a `plans` dict where
the evaluator caches what depends only on the store's series catalogue (selected columns, grouping and matching
plans), so evaluating a rule every tick does the label work once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import promql_parser as pp

from .errors import PromQLError

SCALAR, VECTOR, MATRIX, STRING = "scalar", "vector", "matrix", "string"

# name -> (argument kinds, optional trailing arguments, result kind)
FUNCTIONS: dict[str, tuple[tuple[str, ...], int, str]] = {
    "rate": ((MATRIX,), 0, VECTOR),
    "irate": ((MATRIX,), 0, VECTOR),
    "increase": ((MATRIX,), 0, VECTOR),
    "delta": ((MATRIX,), 0, VECTOR),
    "idelta": ((MATRIX,), 0, VECTOR),
    "changes": ((MATRIX,), 0, VECTOR),
    "resets": ((MATRIX,), 0, VECTOR),
    "avg_over_time": ((MATRIX,), 0, VECTOR),
    "min_over_time": ((MATRIX,), 0, VECTOR),
    "max_over_time": ((MATRIX,), 0, VECTOR),
    "sum_over_time": ((MATRIX,), 0, VECTOR),
    "count_over_time": ((MATRIX,), 0, VECTOR),
    "last_over_time": ((MATRIX,), 0, VECTOR),
    "present_over_time": ((MATRIX,), 0, VECTOR),
    "absent_over_time": ((MATRIX,), 0, VECTOR),
    "stddev_over_time": ((MATRIX,), 0, VECTOR),
    "stdvar_over_time": ((MATRIX,), 0, VECTOR),
    "quantile_over_time": ((SCALAR, MATRIX), 0, VECTOR),
    "histogram_quantile": ((SCALAR, VECTOR), 0, VECTOR),
    "abs": ((VECTOR,), 0, VECTOR),
    "ceil": ((VECTOR,), 0, VECTOR),
    "floor": ((VECTOR,), 0, VECTOR),
    "round": ((VECTOR, SCALAR), 1, VECTOR),
    "sqrt": ((VECTOR,), 0, VECTOR),
    "exp": ((VECTOR,), 0, VECTOR),
    "ln": ((VECTOR,), 0, VECTOR),
    "log2": ((VECTOR,), 0, VECTOR),
    "log10": ((VECTOR,), 0, VECTOR),
    "sgn": ((VECTOR,), 0, VECTOR),
    "clamp": ((VECTOR, SCALAR, SCALAR), 0, VECTOR),
    "clamp_min": ((VECTOR, SCALAR), 0, VECTOR),
    "clamp_max": ((VECTOR, SCALAR), 0, VECTOR),
    "absent": ((VECTOR,), 0, VECTOR),
    "scalar": ((VECTOR,), 0, SCALAR),
    "vector": ((SCALAR,), 0, VECTOR),
    "time": ((), 0, SCALAR),
    "sort": ((VECTOR,), 0, VECTOR),
    "sort_desc": ((VECTOR,), 0, VECTOR),
}
AGGREGATIONS = ("sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile")
ARITHMETIC = ("+", "-", "*", "/", "%", "^", "atan2")
COMPARISONS = ("==", "!=", ">", "<", ">=", "<=")
SET_OPS = ("and", "or", "unless")
# the parser's enums are not hashable: key them by their text
_MATCH_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


@dataclass(eq=False)
class Node:
    """A node of the tree; `kind` is what it evaluates to (scalar, vector, matrix or string)."""

    kind: str
    plans: dict[int, tuple[Any, Any]] = field(default_factory=dict, init=False, repr=False)


@dataclass(eq=False)
class Number(Node):
    value: float


@dataclass(eq=False)
class String(Node):
    value: str


@dataclass(eq=False)
class Selector(Node):
    """An instant vector selector; `matchers` include the metric name as a `__name__` matcher."""

    matchers: tuple[tuple[str, str, str], ...]
    offset_ms: int


@dataclass(eq=False)
class RangeSelector(Node):
    selector: Selector
    range_ms: int


@dataclass(eq=False)
class Call(Node):
    name: str
    args: list[Node]


@dataclass(eq=False)
class Aggregate(Node):
    op: str
    expr: Node
    param: Node | None
    grouping: tuple[str, ...]
    without: bool


@dataclass(eq=False)
class Binary(Node):
    op: str
    lhs: Node
    rhs: Node
    card: str              # one-to-one, many-to-one (group_left), one-to-many (group_right), many-to-many (set ops)
    on: bool
    matching: tuple[str, ...]
    include: tuple[str, ...]
    return_bool: bool


@dataclass(eq=False)
class Negate(Node):
    expr: Node


def _ms(delta: timedelta | None) -> int:
    return 0 if delta is None else delta // timedelta(milliseconds=1)


def convert(expr: Any) -> Node:
    """Our tree for a promql_parser expression; PromQLError for anything outside the supported subset."""
    if isinstance(expr, pp.ParenExpr):
        return convert(expr.expr)
    if isinstance(expr, pp.NumberLiteral):
        return Number(SCALAR, float(expr.val))
    if isinstance(expr, pp.StringLiteral):
        return String(STRING, expr.val)
    if isinstance(expr, pp.VectorSelector):
        return _selector(expr)
    if isinstance(expr, pp.MatrixSelector):
        return RangeSelector(MATRIX, _selector(expr.vector_selector), _ms(expr.range))
    if isinstance(expr, pp.SubqueryExpr):
        raise PromQLError("unsupported: subqueries (expr[range:step])")
    if isinstance(expr, pp.UnaryExpr):
        inner = convert(expr.expr)
        return Negate(inner.kind, inner)
    if isinstance(expr, pp.Call):
        return _call(expr)
    if isinstance(expr, pp.AggregateExpr):
        return _aggregate(expr)
    if isinstance(expr, pp.BinaryExpr):
        return _binary(expr)
    raise PromQLError(f"unsupported expression {type(expr).__name__}")


def _selector(vs: Any) -> Selector:
    if vs.at is not None:
        raise PromQLError("unsupported: the '@' modifier")
    if vs.matchers.or_matchers:
        raise PromQLError("unsupported: 'or' inside label matchers")
    matchers = [("__name__", "=", vs.name)] if vs.name is not None else []
    matchers += [(m.name, _MATCH_OPS[str(m.op)], m.value) for m in vs.matchers.matchers]
    return Selector(VECTOR, tuple(matchers), _ms(vs.offset))


def _call(call: Any) -> Call:
    name = call.func.name
    if name not in FUNCTIONS:
        raise PromQLError(f"unsupported function '{name}' (supported: {', '.join(FUNCTIONS)})")
    kinds, optional, result = FUNCTIONS[name]
    args = [convert(a) for a in call.args]
    if not len(kinds) - optional <= len(args) <= len(kinds):
        raise PromQLError(f"function '{name}' takes {len(kinds)} argument(s), got {len(args)}")
    for i, (arg, kind) in enumerate(zip(args, kinds)):
        if arg.kind != kind:
            raise PromQLError(f"argument {i + 1} of '{name}' must be a {kind}, got a {arg.kind}")
    return Call(result, name, args)


def _aggregate(agg: Any) -> Aggregate:
    op = str(agg.op)
    if op not in AGGREGATIONS:
        raise PromQLError(f"unsupported aggregation '{op}' (supported: {', '.join(AGGREGATIONS)})")
    expr = convert(agg.expr)
    if expr.kind != VECTOR:
        raise PromQLError(f"'{op}' needs an instant vector, got a {expr.kind}")
    param = convert(agg.param) if agg.param is not None else None
    if op in ("topk", "bottomk", "quantile") and (param is None or param.kind != SCALAR):
        raise PromQLError(f"'{op}' needs a scalar parameter")
    mod = agg.modifier
    without = mod is not None and str(mod.type) == "AggModifierType.Without"
    grouping = tuple(mod.labels) if mod is not None else ()
    return Aggregate(VECTOR, op, expr, param, grouping, without)


_CARD = {"VectorMatchCardinality.OneToOne": "one-to-one", "VectorMatchCardinality.ManyToOne": "many-to-one",
         "VectorMatchCardinality.OneToMany": "one-to-many", "VectorMatchCardinality.ManyToMany": "many-to-many"}


def _binary(bin_: Any) -> Binary:
    op = str(bin_.op)
    if op not in ARITHMETIC + COMPARISONS + SET_OPS:
        raise PromQLError(f"unsupported binary operator '{op}'")
    lhs, rhs = convert(bin_.lhs), convert(bin_.rhs)
    for side in (lhs, rhs):
        if side.kind not in (SCALAR, VECTOR):
            raise PromQLError(f"binary '{op}' needs scalars or instant vectors, got a {side.kind}")
    mod = bin_.modifier
    fill = getattr(mod, "fill_values", None)
    if fill is not None and (fill.lhs is not None or fill.rhs is not None):
        raise PromQLError("unsupported: 'fill' modifiers of vector matching")
    card = _CARD[str(mod.card)] if mod is not None else "one-to-one"
    if op in SET_OPS:
        card = "many-to-many"
    elif card == "many-to-many":
        raise PromQLError(f"many-to-many matching is only allowed for set operators, not '{op}'")
    matching = mod.matching if mod is not None else None
    on = matching is not None and str(matching.type) == "LabelModifierType.Include"
    labels = tuple(matching.labels) if matching is not None else ()
    include = tuple(mod.group_labels or ()) if mod is not None else ()
    return_bool = bool(mod.return_bool) if mod is not None else False
    kind = SCALAR if lhs.kind == SCALAR and rhs.kind == SCALAR else VECTOR
    if op in SET_OPS and SCALAR in (lhs.kind, rhs.kind):
        raise PromQLError(f"set operator '{op}' needs instant vectors on both sides")
    if op in COMPARISONS and kind == SCALAR and not return_bool:
        raise PromQLError(f"comparisons between scalars must use the 'bool' modifier ('{op}')")
    return Binary(kind, op, lhs, rhs, card, on, labels, include, return_bool)
