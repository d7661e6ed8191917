"""Entry points: parse, instant_query and range_query."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import promql_parser as pp

from ..store import MetricStore
from .errors import PromQLError
from .evaluate import Context, evaluate
from .labels import key
from .nodes import MATRIX, SCALAR, STRING, Node, convert
from .values import Matrix, Scalar, Vector


def parse(query: str) -> Any:
    """promql_parser's AST of `query`; PromQLError (one line, no parser trace) when it does not parse."""
    try:
        return pp.parse(query)
    except BaseException as exc:        # the Rust parser's panics derive from BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PromQLError(f"parse error: {message} (in {query!r})") from None


@lru_cache(maxsize=4096)
def _compiled(text: str) -> Node:
    return convert(parse(text))


# parsed expressions already compiled, by identity (each held, so that its id is not reused): an alert rule passes
# the same parsed expression every evaluation, and printing it back to text costs more than evaluating small rules
_BY_EXPR: dict[int, tuple[Any, Node]] = {}


def compile_query(query: str | Any) -> Node:
    """The evaluable tree of a query string or parsed expression, cached by its text so plans are reused."""
    if isinstance(query, str):
        return _compiled(query)
    hit = _BY_EXPR.get(id(query))
    if hit is not None and hit[0] is query:
        return hit[1]
    node = _compiled(query.prettify())
    if len(_BY_EXPR) >= 4096:
        _BY_EXPR.clear()
    _BY_EXPR[id(query)] = (query, node)
    return node


def _ms(seconds: float) -> int:
    return int(round(float(seconds) * 1000.0))


def _check_instant(node: Node) -> None:
    if node.kind == MATRIX:
        raise PromQLError("a range vector (selector[range]) cannot be the result of a query here; "
                          "wrap it in a function such as rate() or last_over_time()")
    if node.kind == STRING:
        raise PromQLError("a string cannot be the result of a query")


def instant_query(query: str | Any, store: MetricStore, at: float) -> Vector | Scalar:
    """Evaluate `query` at time `at` (Unix seconds, rounded to ms) in every world of `store`. Series absent in
    every world are left out of the result."""
    node = compile_query(query)
    _check_instant(node)
    with np.errstate(all="ignore"):          # NaN and ±Inf are ordinary PromQL values
        result = evaluate(node, Context(store, _ms(at)))
    if isinstance(result, Scalar):
        return result
    keep = np.flatnonzero(result.present.any(axis=0))
    return Vector([dict(result.labels[i]) for i in keep], result.values[:, keep], result.present[:, keep])


def range_query(query: str | Any, store: MetricStore, start: float, end: float, step: float) -> Matrix:
    """Evaluate `query` at start, start + step, ... <= end (ms precision) in every world. The result holds
    every series that has a point at some step in some world."""
    node = compile_query(query)
    _check_instant(node)
    start_ms, end_ms, step_ms = _ms(start), _ms(end), _ms(step)
    if step_ms <= 0:
        raise PromQLError(f"range query step must be positive, got {step}")
    if end_ms < start_ms:
        raise PromQLError("range query end is before its start")
    steps = range(start_ms, end_ms + 1, step_ms)
    times = np.array([t / 1000.0 for t in steps])
    worlds = store.worlds
    with np.errstate(all="ignore"):
        results = [evaluate(node, Context(store, t)) for t in steps]
    if node.kind == SCALAR:
        values = np.stack([r.values for r in results])[:, :, None]
        return Matrix([{}], times, values, np.ones(values.shape, dtype=bool))
    columns: dict[tuple, int] = {}
    labels: list[dict[str, str]] = []
    placed: list[tuple[np.ndarray, Vector]] = []
    for r in results:
        assert isinstance(r, Vector)
        idx = np.empty(len(r.labels), dtype=np.int64)
        for i, ls in enumerate(r.labels):
            k = key(ls)
            if k not in columns:
                columns[k] = len(labels)
                labels.append(ls)
            idx[i] = columns[k]
        placed.append((idx, r))
    values = np.full((len(results), worlds, len(labels)), np.nan)
    present = np.zeros(values.shape, dtype=bool)
    for s, (idx, r) in enumerate(placed):
        values[s][:, idx] = r.values
        present[s][:, idx] = r.present
    keep = np.flatnonzero(present.any(axis=(0, 1)))
    return Matrix([dict(labels[i]) for i in keep], times, values[:, :, keep], present[:, :, keep])
