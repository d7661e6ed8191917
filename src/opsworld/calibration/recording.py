"""The Nezha recordings as the calibration reads them: the fault lists (every day in a folder), every pod's one-minute
metrics, the frontend's, who calls whom (dependency.csv, else the traces), the root-cause signatures; which
injections can be measured, and why the others are dropped. `nezha` says what the data needs and why."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from opsworld.calibration.checks import CODE_LEVEL, Figure, Measured, _pair
from opsworld.calibration.systems import SYSTEMS, System
from opsworld.spec.traces import TraceFormatError, read_spans, service_of_pod

NEZHA_TYPES = ("cpu_contention", "cpu_consumed", "network_delay", "exception", "return")   # what Nezha injected

# -- the recordings -------------------------------------------------------------------------------------------------
FAULT_LISTS = "*-fault_list.json"   # one a day: `2022-08-22-fault_list.json`
FRONT = "metric/front_service.csv"
DEPENDENCY = "metric/dependency.csv"
TRACES = "trace/*_trace.csv.gz"      # the call graph where no dependency.csv comes with the recordings
BEFORE = (-300.0, 0.0)     # seconds from the injection: samples in [start, end)
AFTER = (60.0, 240.0)      # samples in [start, end]: taken 1 to 4 minutes after it
MIN_SAMPLES = (3, 2)       # fewer samples before / after: the window lacks data
COLUMNS = {"cpu": "CpuUsageRate(%)", "server_p90": "PodServerLatencyP90(s)", "client_p90": "PodClientLatencyP90(s)",
           "frontend_p90": "LatencyP90(s)", "success": "SuccessRate(%)"}


class CalibrationError(ValueError):
    """The recordings are missing or unreadable, or the template cannot be cut into one-minute windows."""



def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Dropped:
    """A listed injection left out of every figure, and why."""

    time: float        # Unix seconds
    pod: str
    kind: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"time": self.time, "utc": _utc(self.time), "pod": self.pod, "type": self.kind, "reason": self.reason}


# -- reading the recordings -----------------------------------------------------------------------------------------
def _need(path: Path) -> Path:
    if not path.is_file():
        raise CalibrationError(f"Nezha recordings incomplete: {path} is missing (expected a day's folder of "
                               f"IntelligentDDS/Nezha's rca_data: {FAULT_LISTS}, metric/, trace/)")
    return path


def _float(text: str | None) -> float:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


@dataclass
class Series:
    """One CSV of one-minute samples: times (Unix seconds, from the `Time` column) and its columns as floats."""

    times: np.ndarray
    columns: dict[str, np.ndarray]
    name: str = ""          # as reasons name it: `metric/front_service.csv`

    @classmethod
    def read(cls, path: Path, name: str = "") -> "Series":
        name = name or str(path)
        with _need(path).open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "Time" not in rows[0]:
            raise CalibrationError(f"Nezha recordings unreadable: {path} has no rows with a `Time` column")
        # `Time` reads "2022-08-22 03:51:19.799087274 +0000 UTC m=+0.305041286": UTC, to the second
        try:
            times = np.array([r["Time"][:19].replace(" ", "T") for r in rows], dtype="datetime64[s]").astype(np.int64)
        except (TypeError, ValueError) as exc:
            raise CalibrationError(f"Nezha recordings unreadable: {path}: a `Time` is not 'YYYY-MM-DD HH:MM:SS ...' "
                                   f"({exc})") from None
        names = [k for k in rows[0] if k not in ("Time", "TimeStamp", "PodName", "ServiceName")]
        return cls(times.astype(float), {k: np.array([_float(r[k]) for r in rows]) for k in names}, name)

    def _column(self, column: str) -> np.ndarray:
        if column not in self.columns:
            raise CalibrationError(f"Nezha recordings unreadable: {self.name} has no column `{column}` (Nezha's "
                                   f"recordings carry it; is this a Nezha rca_data folder?)")
        return self.columns[column]

    def broken(self, column: str) -> str:
        """Why the column carries no signal at all (it reads 0, or nothing, in every row); "" when it does."""
        v = self._column(column)
        v = v[np.isfinite(v)]
        if not len(v):
            return f"{self.name}: {column} has no value in any row (a broken metric)"
        return f"{self.name}: {column} reads 0 in every row (a broken metric)" if not v.any() else ""

    def rows(self, t0: float) -> tuple[int, int]:
        """How many samples the windows around an injection at `t0` hold, whatever their values."""
        t = self.times
        return (int(((t >= t0 + BEFORE[0]) & (t < t0 + BEFORE[1])).sum()),
                int(((t >= t0 + AFTER[0]) & (t <= t0 + AFTER[1])).sum()))

    def window(self, column: str, t0: float, statistic: str = "mean") -> Measured:
        """The column's level before and after an injection at `t0` (`statistic` over each window's samples), or
        why there is none."""
        v, t = self._column(column), self.times
        if broken := self.broken(column):
            return broken
        before = v[(t >= t0 + BEFORE[0]) & (t < t0 + BEFORE[1])]
        after = v[(t >= t0 + AFTER[0]) & (t <= t0 + AFTER[1])]
        before, after = before[np.isfinite(before)], after[np.isfinite(after)]
        for n, need, where in ((len(before), MIN_SAMPLES[0], "in the 5 minutes before"),
                               (len(after), MIN_SAMPLES[1], "1-4 minutes after")):
            if n < need:
                return f"{self.name}: {n} {column} value{'s' if n != 1 else ''} {where}, {need} needed"
        level = getattr(np, statistic)
        b, a = float(level(before)), float(level(after))
        if not b > 0:
            return f"{self.name}: {column} reads 0 before it (no ratio)"
        return _pair(b, a)


@dataclass(frozen=True)
class Injection:
    kind: str          # Nezha's type: cpu_contention, cpu_consumed, network_delay, exception or return
    pod: str
    service: str
    time: float        # Unix seconds


def _fault_list(path: Path) -> list[dict[str, Any]]:
    """A day's fault list: {hour: [{inject_time, inject_timestamp, inject_pod, inject_type}, ...], ...}."""
    try:
        listed = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"{path}: not a readable fault list ({exc}); expected Nezha's JSON") from None
    hours = list(listed.values()) if isinstance(listed, dict) else [listed]     # a bare list of faults too
    if any(not isinstance(hour, list) for hour in hours):
        raise CalibrationError(f"{path}: expected an object of hours, each a list of faults with inject_time, "
                               f"inject_timestamp, inject_pod and inject_type (Nezha's layout)")
    entries = [e for hour in hours for e in hour]
    for e in entries:
        for key in ("inject_pod", "inject_type"):
            if not isinstance(e, dict) or not isinstance(e.get(key), str) or not e[key]:
                raise CalibrationError(f"{path}: a fault without `{key}` ({json.dumps(e)[:80]}); each needs "
                                       f"inject_time, inject_timestamp, inject_pod and inject_type")
    return entries


def _system_of(listed: list[tuple[Path, dict[str, Any]]], root: Path) -> System:
    """The one system whose pods the fault lists name."""
    found: dict[str, tuple[System, str]] = {}
    for path, e in listed:
        service = service_of_pod(e["inject_pod"])
        owners = [s for s in SYSTEMS if s.owns(service)]
        if not owners:
            known = "; ".join(f"{s.name}'s " + (f"start with `{s.prefix}`" if s.prefix else
                                                f"are {', '.join(list(s.components)[:3])}, ...") for s in SYSTEMS)
            raise CalibrationError(f"{path}: inject_pod `{e['inject_pod']}` is of no system calibrate knows "
                                   f"({known}): point --nezha at Nezha's recordings of one of them")
        found.setdefault(owners[0].key, (owners[0], e["inject_pod"]))
    if len(found) > 1:
        both = " and ".join(f"{s.name} (`{pod}`)" for s, pod in found.values())
        raise CalibrationError(f"{root}: the fault lists name pods of {both}: keep one system's recordings in a folder")
    return next(iter(found.values()))[0]


def _time_of(path: Path, e: dict[str, Any], system: System) -> float:
    """When an injection happened, read from the field its system is timed by (`systems.SYSTEMS`)."""
    text = e.get(system.clock)
    try:
        if system.clock == "inject_time":
            return datetime.strptime(str(text), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
        if not math.isfinite(t := float(text)):  # type: ignore[arg-type]
            raise ValueError(text)
        return t
    except (TypeError, ValueError):
        form = "'YYYY-MM-DD HH:MM:SS' (read as UTC)" if system.clock == "inject_time" else "Unix seconds"
        raise CalibrationError(f"{path}: `{system.clock}` of the fault at {e['inject_pod']} reads {text!r}, not "
                               f"{form}; {system.name}'s injections are timed by it") from None


def _trace_edges(folder: Path) -> set[tuple[str, str]]:
    """(caller, callee) services from the recorded traces: a span's service and its parent span's."""
    try:
        spans = read_spans(folder, "nezha")
    except TraceFormatError as exc:
        raise CalibrationError(str(exc)) from None
    has = spans.parent >= 0
    pairs = zip(spans.service[spans.parent[has]].tolist(), spans.service[has].tolist())
    return {(a, b) for a, b in pairs if a != b}


@dataclass
class RealData:
    """The fault lists, every pod's metrics, the frontend's, who calls whom, and the root-cause signatures."""

    injections: list[Injection]       # the ones measured
    pods: dict[str, Series]           # by pod
    front: Series
    callers: dict[str, list[str]] | str     # service -> the services that call it; or why that is unknown
    system: System = SYSTEMS[0]
    days: list[str] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    listed: list[Injection] = field(default_factory=list)       # all of them, dropped or not
    causes: dict[str, dict[str, str]] | str = ""                 # service -> type -> signature; or why none

    @classmethod
    def read(cls, path: str | Path) -> "RealData":
        root = Path(path)
        lists = sorted(root.glob(FAULT_LISTS)) if root.is_dir() else []
        if not lists:
            raise CalibrationError(f"no Nezha fault list in {root}: expected one or more files named {FAULT_LISTS} "
                                   f"(a day's folder of IntelligentDDS/Nezha's rca_data)")
        listed = [(p, e) for p in lists for e in _fault_list(p)]
        if not listed:
            raise CalibrationError(f"{', '.join(map(str, lists))}: no injection listed (each hour a list of faults "
                                   f"with inject_time, inject_timestamp, inject_pod and inject_type)")
        system = _system_of(listed, root)
        injections = sorted((Injection(e["inject_type"], e["inject_pod"], service_of_pod(e["inject_pod"]),
                                       _time_of(p, e, system)) for p, e in listed), key=lambda i: (i.time, i.pod))
        front = Series.read(root / FRONT, FRONT)
        pods = {p.name[: -len("_metric.csv")]: Series.read(p, f"metric/{p.name}")
                for p in sorted((root / "metric").glob("*_metric.csv"))}
        kept, dropped = _screen(injections, pods)
        services = {service_of_pod(p) for p in pods}
        callers: dict[str, list[str]] | str
        if (root / DEPENDENCY).is_file():
            with (root / DEPENDENCY).open(newline="") as f:
                edges = [(r.get("Source"), r.get("Target")) for r in csv.DictReader(f)]
        elif sorted(root.glob(TRACES)):
            edges = sorted(_trace_edges(root / "trace"))    # as Train Ticket's recordings come: no dependency.csv
        else:
            edges = []
        callers = {}
        for src, dst in dict.fromkeys(edges):          # the service-to-service edges (the others go to IP addresses)
            if src in services and dst in services and src != dst:
                callers.setdefault(str(dst), []).append(str(src))
        if not callers:
            callers = f"no call between the pods in {DEPENDENCY} or the trace files {TRACES}: the callers are unknown"
        causes: dict[str, dict[str, str]] | str
        if (root / system.root_causes).is_file():
            try:
                causes = json.loads((root / system.root_causes).read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CalibrationError(f"{root / system.root_causes}: not readable JSON ({exc}); expected Nezha's "
                                       f"root-cause list, service -> fault type -> signature") from None
            if not isinstance(causes, dict) or not all(isinstance(v, dict) for v in causes.values()):
                raise CalibrationError(f"{root / system.root_causes}: expected an object of services, each an object "
                                       f"of fault type -> signature (Nezha's root-cause list)")
        else:
            causes = f"no {system.root_causes} beside the fault list: where the code-level faults show is unknown"
        days = [p.name[: -len("-fault_list.json")] for p in lists]
        return cls(kept, pods, front, callers, system, days, dropped, injections, causes)

    def signals(self, inj: Injection) -> dict[str, Measured]:
        """Each signal around one injection, or why there is none."""
        stat = self.system.statistic
        pod = self.pods[inj.pod]
        out: dict[str, Measured] = {s: pod.window(COLUMNS[s], inj.time, stat) for s in ("cpu", "server_p90")}
        out |= {s: self.front.window(COLUMNS[s], inj.time, stat) for s in ("frontend_p90", "success")}
        out["client_p90"] = self._callers_side(inj)
        return out

    def _callers_side(self, inj: Injection) -> Measured:
        if isinstance(self.callers, str):
            return self.callers
        callers = [p for p in self.pods if service_of_pod(p) in self.callers.get(inj.service, [])]
        if not callers:
            return f"{inj.service} has no caller in the call graph"
        sides = [self.pods[p].window(COLUMNS["client_p90"], inj.time, self.system.statistic) for p in callers]
        figures = [f for f in sides if isinstance(f, Figure)]
        if not figures:
            return f"no caller of {inj.service} has client P90 data: {sides[0]}"
        return _pair(_geomean([f.before for f in figures]), _geomean([f.after for f in figures]))

    def located(self, inj: Injection) -> Measured:
        """1 when the recordings' root-cause list names a log pattern of the target service that locates a code-level
        fault (Nezha finds these in logs and traces, not metrics); else 0."""
        if isinstance(self.causes, str):
            return self.causes
        pattern = self.causes.get(inj.service, {}).get(inj.kind, "")
        found = float(bool(pattern) and pattern not in COLUMNS.values())
        return Figure(0.0, found, found)

    def measure(self) -> list[tuple[Injection, dict[str, Measured]]]:
        """Every measured injection with its signals (and, for a code-level fault, whether it is located)."""
        out = []
        for inj in self.injections:
            sig = self.signals(inj)
            if inj.kind in CODE_LEVEL:
                sig["located"] = self.located(inj)
            out.append((inj, sig))
        return out

    def rows(self, measured: list[tuple[Injection, dict[str, Measured]]]) -> list[dict[str, Any]]:
        """One row per measured injection: its figures (null where none), and the minutes since the previous fault
        listed in the same service."""
        rows = []
        for inj, sig in measured:
            earlier = [i.time for i in self.listed if i.service == inj.service and i.time < inj.time]
            rows.append({"type": inj.kind, "service": inj.service, "pod": inj.pod, "time": inj.time,
                         "utc": _utc(inj.time),
                         "minutes_since_previous_fault_here": (inj.time - max(earlier)) / 60.0 if earlier else None,
                         **{s: f.as_dict() if isinstance(f, Figure) else None for s, f in sig.items()}})
        return rows


def _screen(injections: list[Injection], pods: Mapping[str, Series]) -> tuple[list[Injection], list[Dropped]]:
    """The injections that can be measured, and the others with the reason: no catalogue entry for the type, no
    metrics for the pod, too few samples around it, or another injection into the same pod within its windows."""
    kept: list[Injection] = []
    dropped: list[Dropped] = []
    for inj in injections:
        reason = ""
        series = pods.get(inj.pod)
        same = [i for i in injections if i.pod == inj.pod and i is not inj]
        previous = [i for i in same if inj.time + BEFORE[0] <= i.time <= inj.time]
        following = [i for i in same if inj.time < i.time < inj.time + AFTER[1]]
        if inj.kind not in NEZHA_TYPES:
            reason = f"type `{inj.kind}` is none of Nezha's ({', '.join(NEZHA_TYPES)})"
        elif series is None:
            reason = f"no metric rows for the pod: metric/{inj.pod}_metric.csv is missing"
        elif (n := series.rows(inj.time)) == (0, 0):
            reason = (f"no metric rows for the pod around it: metric/{inj.pod}_metric.csv runs from "
                      f"{_utc(series.times.min())} to {_utc(series.times.max())}")
        elif n[0] < MIN_SAMPLES[0]:
            reason = (f"{n[0]} minute{'s' if n[0] != 1 else ''} of baseline, {MIN_SAMPLES[0]} needed: the pod's "
                      f"metrics start at {_utc(series.times.min())}")
        elif n[1] < MIN_SAMPLES[1]:
            reason = f"{n[1]} sample{'s' if n[1] != 1 else ''} 1-4 minutes after it, {MIN_SAMPLES[1]} needed"
        elif previous:
            p = previous[-1]
            reason = (f"its 5-minute baseline holds the previous injection into the same pod ({p.kind} at "
                      f"{_utc(p.time)[11:]}, {(inj.time - p.time) / 60:.1f} min before)")
        elif following:
            f = following[0]
            reason = (f"its 1-4 minute window holds the next injection into the same pod ({f.kind} at "
                      f"{_utc(f.time)[11:]}, {(f.time - inj.time) / 60:.1f} min after)")
        if reason:
            dropped.append(Dropped(inj.time, inj.pod, inj.kind, reason))
        else:
            kept.append(inj)
    return kept, dropped


def _geomean(values: list[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))


