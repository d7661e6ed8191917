"""Texture of one-minute telemetry, measured the same way on real recordings and on the model.

Four statistics of a set of one-minute series (one per pod, or per service for latency), each summed up as the
median over the series (outliers: pooled over them, a rare event's rate is not a median of mostly zeros):
- `cv`: the coefficient of variation over calm 10-minute windows (no injected fault within ±10 minutes), the median
  over a series' windows. Windows, not the whole day: a diurnal trend is not texture.
- `outliers`: the share of calm points further than k·MAD (k = 5, MAD scaled to a normal's sigma) from an 11-minute
  running median (again, so that a trend is not counted).
- `broken`: the share of series that read 0 (or nothing) in every row.
Series at 0 at least half the calm time (idle services, broken ones) are left out of the other three.
- `lag1`: the lag-1 autocorrelation of the calm windows' points about each window's mean, pooled over the windows.

`texture_report(recording_dir, template)` measures them on a Nezha recording (pod CPU, memory, workload and server
latency P90) and on a no-fault telemetry run of the matching template, queried per pod per minute through PromQL,
and judges each against a tolerance chosen from how much the two real recordings differ from each other.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from opsworld.calibration.recording import RealData
from opsworld.engine import Engine
from opsworld.observe.telemetry import Telemetry
from opsworld.spec.loader import load_scenario

if TYPE_CHECKING:
    from opsworld.observe.imperfection import Imperfections

METRICS = ("cpu", "memory", "workload", "latency_p90")
COLUMNS = {"cpu": "CpuUsageRate(%)", "memory": "MemoryUsage(Mi)", "workload": "PodWorkload(Ops)",
           "latency_p90": "PodServerLatencyP90(s)"}
# the model's side, per pod (latency: per service, as the model's histograms are) and minute
QUERIES = {"cpu": "sum by (pod) (rate(container_cpu_usage_seconds_total[1m]))",
           "memory": "sum by (pod) (container_memory_working_set_bytes)",
           "workload": "sum by (pod) (rate(http_server_requests_total[1m]))",
           "latency_p90": "histogram_quantile(0.9, sum by (service, le) "
                          "(rate(http_server_request_duration_seconds_bucket[1m])))"}
CALM = 600.0          # seconds: a point this close to an injection is not calm
WINDOW = 10           # one-minute points in a calm window
K = 5.0               # outliers lie beyond K robust sigmas
RUNNING = 11          # points in the running median the outliers are measured from

# Tolerances, from the two recordings against each other (Online Boutique vs Train Ticket): median CV 0.19 vs 0.33
# (cpu), 0.08 vs 0.54 (workload, which follows the traffic's volume: Train Ticket's pods see 0.1-1 requests/s),
# 0.18 vs 0.51 (latency P90), memory 0.0000 vs 0.0003; pooled outlier rates 0.005 vs 0.053 (cpu), 0.008 vs 0.005
# (memory), 0.004 vs 0.021 (workload), 0.050 vs 0.19 (latency); median lag-1 -0.07 vs -0.05, 0.57 vs 0.48,
# -0.04 vs -0.09, -0.10 vs -0.13. So: a CV within a factor of 3 (memory: 5, its CV is a few 1e-4 and set by
# rounding), an outlier rate within a factor of 10 (the same order of magnitude) or both under 1% (a few points of
# the model's ~600), a lag-1 autocorrelation within ±0.3, and a broken share within 0.15 (judged for cpu and memory
# only: a workload or latency that reads 0 throughout is an idle service as often as a broken one).
CV_FACTOR = {"cpu": 3.0, "memory": 5.0, "workload": 3.0, "latency_p90": 3.0}
OUTLIER_FACTOR, OUTLIER_FLOOR = 10.0, 0.01
LAG1_SPREAD = 0.3
BROKEN_SPREAD = 0.15
JUDGED_BROKEN = ("cpu", "memory")


# -- the statistics ---------------------------------------------------------------------------------------------
def calm_mask(times: np.ndarray, faults: np.ndarray, margin: float = CALM) -> np.ndarray:
    """[T] True where no fault time lies within `margin` seconds of the point."""
    if not len(faults):
        return np.ones(len(times), dtype=bool)
    return np.min(np.abs(times[:, None] - np.asarray(faults)[None, :]), axis=1) > margin


def is_broken(values: np.ndarray) -> bool:
    """A series that reads 0, or nothing, in every row."""
    v = values[np.isfinite(values)]
    return not v.size or not v.any()


def is_idle(values: np.ndarray, calm: np.ndarray) -> bool:
    """A series at 0 at least half the calm time (median 0): a service idle between test runs has no level to vary
    around, so its CV, outliers and autocorrelation say nothing about texture (Train Ticket's recording has 18)."""
    v = values[calm & np.isfinite(values)]
    return not v.size or float(np.median(v)) <= 0.0


def _windows(values: np.ndarray, calm: np.ndarray, times: np.ndarray | None) -> list[np.ndarray]:
    """Consecutive, non-overlapping runs of WINDOW calm, finite, evenly spaced one-minute points."""
    out = []
    for i in range(0, len(values) - WINDOW + 1, WINDOW):
        x = values[i:i + WINDOW]
        if not calm[i:i + WINDOW].all() or not np.isfinite(x).all():
            continue
        if times is not None and times[i + WINDOW - 1] - times[i] > (WINDOW - 1) * 60.0 + 30.0:
            continue               # a gap in the recording: not one window
        out.append(x)
    return out


def cv(values: np.ndarray, calm: np.ndarray, times: np.ndarray | None = None) -> float:
    """The median over calm windows of std/mean; NaN when there is none (or the level is 0)."""
    ratios = [float(x.std() / x.mean()) for x in _windows(values, calm, times) if x.mean() > 0]
    return float(np.median(ratios)) if ratios else float("nan")


def lag1(values: np.ndarray, calm: np.ndarray, times: np.ndarray | None = None) -> float:
    """Lag-1 autocorrelation of the calm windows' points about each window's mean, pooled; NaN without any."""
    num = den = 0.0
    for x in _windows(values, calm, times):
        d = x - x.mean()
        num += float((d[:-1] * d[1:]).sum())
        den += float((d * d).sum())
    return num / den if den > 0 else float("nan")


def outlier_rate(values: np.ndarray, calm: np.ndarray, k: float = K) -> float:
    """Share of calm finite points beyond k robust sigmas of an 11-point running median; NaN without any."""
    ok = np.isfinite(values)
    if ok.sum() < RUNNING:
        return float("nan")
    h = RUNNING // 2
    padded = np.pad(np.where(ok, values, np.nan), (h, h), mode="edge")
    with warnings.catch_warnings():         # a window of gaps only has no median: NaN, left out below
        warnings.simplefilter("ignore", RuntimeWarning)
        running = np.nanmedian(sliding_window_view(padded, RUNNING), axis=1)           # [T]
    r = values - running
    use = calm & ok & np.isfinite(r)
    if not use.any():
        return float("nan")
    # a floor on the scale: a series that repeats one value (memory, a latency stuck in one bucket) has MAD 0
    scale = max(1.4826 * float(np.median(np.abs(r[use]))), 1e-3 * abs(float(np.nanmedian(values))), 1e-12)
    return float(np.mean(np.abs(r[use]) > k * scale))


@dataclass
class Texture:
    """The statistics of one metric over a set of series: medians over the series (NaN where none had any)."""

    series: int
    broken: float            # share of the series that read 0 (or nothing) throughout
    idle: float              # share at 0 at least half the calm time (broken ones included): left out below
    cv: float
    outliers: float
    lag1: float
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)   # statistic -> (25th, 75th percentile)

    def as_dict(self) -> dict[str, Any]:
        return {"series": self.series, "broken": self.broken, "idle": self.idle, "cv": self.cv,
                "outliers": self.outliers,
                "lag1": self.lag1, "spread": {k: list(v) for k, v in self.spread.items()}}


def texture(series: list[np.ndarray], calm: list[np.ndarray] | None = None,
            times: list[np.ndarray] | None = None) -> Texture:
    """The texture statistics of one-minute series ([T] each; `calm` [T] masks, default all calm)."""
    calm = calm or [np.ones(len(s), dtype=bool) for s in series]
    stamps: list[np.ndarray | None] = list(times) if times is not None else [None] * len(series)
    broken = sum(is_broken(s) for s in series)
    live = [i for i, s in enumerate(series) if not is_idle(s, calm[i])]
    stats: dict[str, list[float]] = {"cv": [], "outliers": [], "lag1": []}
    flagged = points = 0.0
    for i in live:
        stats["cv"].append(cv(series[i], calm[i], stamps[i]))
        stats["outliers"].append(rate := outlier_rate(series[i], calm[i]))
        stats["lag1"].append(lag1(series[i], calm[i], stamps[i]))
        if np.isfinite(rate):       # pooled over the series: a rare event's rate is not a median of mostly zeros
            n = float((calm[i] & np.isfinite(series[i])).sum())
            flagged, points = flagged + rate * n, points + n

    def med(x: list[float]) -> float:
        f = np.array([v for v in x if np.isfinite(v)])
        return float(np.median(f)) if f.size else float("nan")

    def iqr(x: list[float]) -> tuple[float, float]:
        f = np.array([v for v in x if np.isfinite(v)])
        return (float(np.quantile(f, 0.25)), float(np.quantile(f, 0.75))) if f.size else (np.nan, np.nan)

    n = max(len(series), 1)
    return Texture(len(series), broken / n, (len(series) - len(live)) / n, med(stats["cv"]),
                   flagged / points if points else float("nan"), med(stats["lag1"]),
                   {k: iqr(v) for k, v in stats.items()})


# -- the two sides ----------------------------------------------------------------------------------------------
def recorded_texture(recording_dir: str | Path) -> dict[str, Texture]:
    """Each metric's texture in a Nezha recording (every pod's one-minute file; calm = away from every injection)."""
    data = RealData.read(recording_dir)
    faults = np.array([i.time for i in data.listed])
    out = {}
    for metric in METRICS:
        pods = list(data.pods.values())
        out[metric] = texture([p.columns[COLUMNS[metric]] for p in pods],
                              [calm_mask(p.times, faults) for p in pods], [p.times for p in pods])
    return out


def model_series(template: str, minutes: int = 60, seed: int = 0, imperfections: "Imperfections | None" = None
                 ) -> dict[str, list[np.ndarray]]:
    """Per metric, the one-minute series [minutes] of every pod (latency: service) of a no-fault run of a template,
    read through PromQL on the metric store."""
    scenario = load_scenario(template, {"duration": f"{int(minutes) * 60 + 60}s"})
    telemetry = Telemetry(Engine(scenario, worlds=1, seed=seed), imperfections, rules=False, text=False)
    telemetry.run()
    start = float(scenario.traffic.start)
    out = {}
    for metric, query in QUERIES.items():
        m = telemetry.query_range(query, start + 60.0, start + 60.0 * minutes, 60.0)
        out[metric] = [m.values[:, 0, j] for j in range(len(m.labels))]     # [minutes] each
    return out


def model_texture(template: str, minutes: int = 60, seed: int = 0, imperfections: "Imperfections | None" = None
                  ) -> dict[str, Texture]:
    """Each metric's texture in a no-fault run of a template (every point calm)."""
    return {metric: texture(s) for metric, s in model_series(template, minutes, seed, imperfections).items()}


# -- the report -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Judged:
    """One statistic of one metric on both sides, the tolerance and whether the model is within it."""

    metric: str
    statistic: str
    recording: float
    model: float
    tolerance: str
    passed: bool | None      # None: not judged (shown only)

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "statistic": self.statistic, "recording": self.recording, "model": self.model,
                "tolerance": self.tolerance, "passed": self.passed}


def _judge(metric: str, stat: str, rec: float, sim: float) -> Judged:
    if not (np.isfinite(rec) and np.isfinite(sim)):
        return Judged(metric, stat, rec, sim, "no value on one side", None)
    if stat == "cv":
        f = CV_FACTOR[metric]
        ok = rec / f <= sim <= rec * f if rec > 0 else sim <= 1e-3
        return Judged(metric, stat, rec, sim, f"within x{f:g}", bool(ok))
    if stat == "outliers":
        ok = (max(rec, sim) <= OUTLIER_FLOOR or
              rec / OUTLIER_FACTOR <= sim <= rec * OUTLIER_FACTOR)
        return Judged(metric, stat, rec, sim, f"within x{OUTLIER_FACTOR:g} or both <= {OUTLIER_FLOOR:g}", bool(ok))
    if stat == "lag1":
        return Judged(metric, stat, rec, sim, f"within ±{LAG1_SPREAD:g}", bool(abs(sim - rec) <= LAG1_SPREAD))
    judged = metric in JUDGED_BROKEN
    return Judged(metric, stat, rec, sim, f"within ±{BROKEN_SPREAD:g}" if judged else "shown only (idle reads 0)",
                  bool(abs(sim - rec) <= BROKEN_SPREAD) if judged else None)


@dataclass
class TextureReport:
    """A recording's texture beside the model's, statistic by statistic."""

    recording_dir: str
    template: str
    minutes: int
    seed: int
    recording: dict[str, Texture]
    model: dict[str, Texture]
    judged: list[Judged]

    @property
    def passed(self) -> bool:
        return all(j.passed is not False for j in self.judged)

    def failures(self) -> list[Judged]:
        return [j for j in self.judged if j.passed is False]

    def as_dict(self) -> dict[str, Any]:
        return {"recording_dir": self.recording_dir, "template": self.template, "minutes": self.minutes,
                "seed": self.seed, "passed": self.passed,
                "recording": {k: v.as_dict() for k, v in self.recording.items()},
                "model": {k: v.as_dict() for k, v in self.model.items()},
                "judged": [j.as_dict() for j in self.judged]}

    def lines(self) -> list[str]:
        """One line per judged statistic, for a terminal."""
        out = [f"texture: {self.recording_dir} vs {self.template} ({self.minutes} min, seed {self.seed}): "
               f"{'pass' if self.passed else 'FAIL'}"]
        for j in self.judged:
            mark = {True: "ok", False: "FAIL", None: "--"}[j.passed]
            out.append(f"  {j.metric:<12} {j.statistic:<9} recording {j.recording:10.4g}  model {j.model:10.4g}  "
                       f"{j.tolerance:<26} {mark}")
        return out


def template_for(recording_dir: str | Path) -> str:
    """The template that stands for the system a recording comes from."""
    return RealData.read(recording_dir).system.template


def texture_report(recording_dir: str | Path, template: str | None = None, minutes: int = 60, seed: int = 0,
                   imperfections: "Imperfections | None" = None) -> TextureReport:
    """Texture statistics of a Nezha recording and of a no-fault run of `template` (default: the one that stands for
    the recorded system), with a pass/fail per statistic."""
    template = template or template_for(recording_dir)
    rec = recorded_texture(recording_dir)
    sim = model_texture(template, minutes, seed, imperfections)
    judged = [_judge(m, s, getattr(rec[m], s), getattr(sim[m], s))
              for m in METRICS for s in ("cv", "outliers", "lag1", "broken")]
    return TextureReport(str(recording_dir), template, minutes, seed, rec, sim, judged)

