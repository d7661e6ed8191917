"""Telemetry imperfections as knobs: what real observability stacks lose, delay and get wrong.

Each is off by default (traces are head-sampled at 10%, as is common), except `texture`: the counting noise,
jitter, per-pod levels and stray outliers that real telemetry has (see `observe.metrics`). The same seed and world
give the same gaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from opsworld.faults.base import Seconds
from opsworld.observe.noise import name_key, uniform

SCRAPE, SERIES, BROKEN = 1, 2, 7    # what a coin flip is about, so different imperfections never share their randomness


class Imperfections(BaseModel):
    """How imperfect the telemetry is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scrape_failure: float = Field(0.0, ge=0.0, le=1.0, description="chance that one scrape of a target fails "
                                  "(`up` is 0 and its series have no sample)")
    missing_series: float = Field(0.0, ge=0.0, lt=1.0, description="share of series never exported")
    stuck_at_zero: tuple[str, ...] = Field((), description="metric names whose exporter is broken and reports 0")
    # Nezha's recordings: 3 of Train Ticket's 46 pods read 0 CPU throughout and 2 read 0 memory (none of Online
    # Boutique's 10): about 5%, so `broken_series=0.05` is a realistic setting
    broken_series: float = Field(0.0, ge=0.0, lt=1.0, description="share of (metric, pod or target) pairs whose "
                                 "exporter is broken and reports 0 for the whole episode")
    texture: bool = Field(True, description="counting noise on counters, jitter on CPU and memory, per-pod levels "
                          "and stray latency outliers; False writes the expected values")
    log_drop: float = Field(0.0, ge=0.0, lt=1.0, description="share of log lines lost on the way")
    log_sample: float = Field(1.0, gt=0.0, le=1.0, description="share of info and debug lines kept")
    trace_sample: float = Field(0.1, gt=0.0, le=1.0, description="share of requests whose trace is kept")
    ingestion_delay: Seconds = Field(0.0, description="seconds before telemetry becomes queryable")
    clock_skew: Seconds = Field(0.0, description="each source's clock is off by up to this many seconds")

    def for_catalogue(self, labels: list[dict[str, str]], targets: int, seed: int, first_world: int,
                      worlds: int) -> "MetricGaps":
        """The metric imperfections of one series catalogue in a batch of worlds (arrays world-last)."""
        world = first_world + np.arange(worlds)[None, :]
        keep = None
        if self.missing_series:
            keys = np.array([name_key(repr(sorted(lab.items()))) for lab in labels], dtype=np.uint64)
            keep = uniform(seed, SERIES, world, keys[:, None]) >= self.missing_series
            keep[[i for i, lab in enumerate(labels) if lab["__name__"] == "up"]] = True
        stuck = np.flatnonzero([lab["__name__"] in self.stuck_at_zero or _family_of(lab["__name__"]) in
                                self.stuck_at_zero for lab in labels])
        broken = None
        if self.broken_series:
            # an exporter breaks for a whole family on one pod (or target): every series of it, buckets alike
            keys = np.array([name_key(_family_of(lab["__name__"]) + "|" + lab.get("pod", lab.get("instance", lab.get(
                "service", "")))) for lab in labels], dtype=np.uint64)
            broken = uniform(seed, BROKEN, world, keys[:, None]) < self.broken_series              # [M, B]
            broken[[i for i, lab in enumerate(labels) if lab["__name__"] == "up"]] = False
        return MetricGaps(self, seed, world, keep, stuck, targets, broken)


@dataclass
class MetricGaps:
    """The metric imperfections of one batch, applied to each scrape."""

    settings: Imperfections
    seed: int
    world: np.ndarray              # [1, B] world numbers
    keep: np.ndarray | None        # [M, B] series exported at all (None: every one)
    stuck: np.ndarray              # indices of the series stuck at zero
    targets: int
    broken: np.ndarray | None = None   # [M, B] series that read 0 throughout (None: none)

    def fail_scrapes(self, up: np.ndarray, tick: int) -> np.ndarray:
        """[targets, B] `up` with this tick's failed scrapes set to 0."""
        if not self.settings.scrape_failure:
            return up
        failed = uniform(self.seed, SCRAPE, self.world, tick, np.arange(self.targets)[:, None]) < \
            self.settings.scrape_failure
        return np.where(failed & ~np.isnan(up), 0.0, up)

    def apply(self, row: np.ndarray) -> None:
        """Remove the missing series from a scrape [M, B] and zero the stuck ones, in place."""
        if self.stuck.size:
            row[self.stuck] = np.where(np.isnan(row[self.stuck]), np.nan, 0.0)
        if self.broken is not None:
            np.copyto(row, 0.0, where=self.broken & ~np.isnan(row))
        if self.keep is not None:
            np.copyto(row, np.nan, where=~self.keep)


def _family_of(series: str) -> str:
    for suffix in ("_total", "_bucket", "_sum", "_count"):
        if series.endswith(suffix):
            return series[: -len(suffix)]
    return series
