"""Result types: an instant vector, a scalar and a range result, each over all worlds of a batch at once.

Labels are shared by every world (the catalogue is shared); a series that has no sample in a world is NaN there.
Prometheus can also return a *sample* whose value is NaN (0/0, a histogram_quantile without observations); such a
sample is NaN in `values` too, and `present` tells it apart from an absent one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Vector:
    """An instant vector: `labels` [n] and `values` [B, n] (NaN = absent in that world).

    `present` [B, n] is True where a sample exists; it differs from `~isnan(values)` only where a computed sample is
    NaN. Left out, it is derived from `values`.
    """

    labels: list[dict[str, str]]
    values: np.ndarray
    present: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.present is None:
            self.present = ~np.isnan(self.values)


@dataclass
class Scalar:
    """A scalar per world: `values` [B]. A scalar always exists (NaN is a value here)."""

    values: np.ndarray


@dataclass
class Matrix:
    """A range-query result: `times` [K] (Unix seconds), `values` [K, B, n] (NaN = no point at that step in that
    world) for the series `labels` [n]; `present` [K, B, n] as for Vector."""

    labels: list[dict[str, str]]
    times: np.ndarray
    values: np.ndarray
    present: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.present is None:
            self.present = ~np.isnan(self.values)
