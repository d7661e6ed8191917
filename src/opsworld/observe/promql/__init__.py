"""A PromQL engine over a MetricStore that evaluates a query in every world of a batch at once and agrees with
Prometheus 2.42 on the supported subset.

    parse(query)                                   -> promql_parser expression (PromQLError if it does not parse)
    instant_query(query, store, at)                -> Vector | Scalar
    range_query(query, store, start, end, step)    -> Matrix

Supported: selectors with = != =~ !~, offset, range selectors; rate irate increase delta idelta changes resets,
avg/min/max/sum/count/last/present/absent/stddev/stdvar/quantile _over_time, histogram_quantile, abs ceil floor
round sqrt exp ln log2 log10 sgn, clamp clamp_min clamp_max, absent scalar vector time, sort sort_desc (no-ops:
results are sets); sum avg min max count group stddev stdvar topk bottomk quantile with by/without; + - * / % ^
atan2, == != > < >= <= (with and without bool), and/or/unless, on/ignoring, group_left/group_right with extra
labels, unary minus, parentheses. Anything else (subqueries, '@', count_values, label_replace, predict_linear, ...)
raises PromQLError naming it.

Results: labels are shared by all worlds; NaN in `values` is "no sample in that world", and `present` separates a
sample whose value is NaN (0/0), which Prometheus returns, from an absent one. Series absent in every world are
dropped from results.
"""

from __future__ import annotations

from .errors import PromQLError
from .query import instant_query, parse, range_query
from .values import Matrix, Scalar, Vector

__all__ = ["Matrix", "PromQLError", "Scalar", "Vector", "instant_query", "parse", "range_query"]
