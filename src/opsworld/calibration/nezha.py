"""The simulator's fault signatures beside the real ones: the Nezha Online Boutique recordings of 2022-08-22.

Nezha (IntelligentDDS/Nezha, FSE 2023) injected 24 faults by hand into a real Online Boutique on Kubernetes and
recorded one row a minute per pod. `calibrate(path)` reads those recordings, injects the same fault types into the
same services of the `online-shop` template, and compares the two signal by signal.

How a figure is made, the same way on both sides:
  * per injection, a signal's mean over the five one-minute samples before it, and over the samples taken one to
    four minutes after it (a sample covers the minute before its time stamp, so these are the fault's first
    minutes: three real samples, four simulated one-minute windows of six 10 s ticks);
  * the ratio of the two; then the median over the injections of a type (the simulation: the median over its
    worlds per service, then over the services).
  The signals: the target's CPU (% of its limit), the target's server-side P90 latency, its callers' client-side
  P90 (the P90 of every outbound call they make: the geometric mean of the callers' ratios), and the user-facing
  P90 latency and success rate at the frontend.

The checks, and the rules that pass them (a rule holds for the real figure and the simulated one alike):
  * `rises`: both ratios are above 1.2 and the simulated rise (ratio - 1) is within a factor 3 of the real rise;
  * `stays flat`: both ratios are below 1.1 (the signal does not rise); `falls`: both are below 0.9;
  * `level`: CPU during the fault, in % of the limit: within 15 points of the real level;
  * `stays at 100%`: the success rate stays at or above 99% during the fault;
  * `drops`: the success rate falls below 99%, and the simulated rate is within 5 points of the real one.
  Factor 3 on a rise: the real rises of one type spread over more than a factor 10 between services (a CPU
  contention multiplies the server-side P90 by 5 in one service and by 250 in another), and the template's
  latencies are not Nezha's, so only the size class can be held; the direction is always held strictly.

What the recordings need (surprises included; see `RealData`): times come from the `Time` column, because the
adservice file's `TimeStamp` column is off by 200,000,000 s and has ~10% of its values corrupted; injections come
about 8.5 minutes apart and their effects last about 4, so a five-minute baseline sometimes holds the tail of the
previous fault in the same service (the README's medians keep those, and so do we: see `overlaps` in `as_dict`).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from opsworld.engine import queueing as qt

# -- the simulated faults -------------------------------------------------------------------------------------------
# Nezha's fault types as catalogue entries, with the parameters that stand for the real injections. One line of why
# for each value; `calibrate(params=...)` overrides them (per type, merged over these).
CATALOGUE_ENTRY: dict[str, str] = {
    "cpu_contention": "cpu_contention",
    "cpu_consumed": "cpu_consumed",
    "network_delay": "network_delay",
    "exception": "code_exception",
    "return": "early_return",
}
PARAMS: dict[str, dict[str, Any]] = {
    # a stress process fills the pod's CPU limit: the real pods go from ~7% to ~93% of their limit
    "cpu_contention": {"share": 0.85},
    # a CPU-consuming loop inside the service takes about half its limit: real pods go from ~30% to ~79%
    "cpu_consumed": {"share": 0.5},
    # tc netem-style delay on the calls into the target
    "network_delay": {"delay": 0.2},
    # the injected exception fails most requests through the instrumented handler
    "exception": {"rate": 0.6},
    # the early return answers most requests through the handler with a bad value, skipping half the work
    "return": {"rate": 0.6, "speedup": 2.0},
}
ONSET = 600.0          # seconds into the episode: five minutes of warm-up, then the five-minute baseline
AFTER_MINUTES = 4      # the minutes after onset whose samples are compared (1..4)
BEFORE_MINUTES = 5

# -- the recordings -------------------------------------------------------------------------------------------------
FAULT_LIST = "2022-08-22-fault_list.json"
FRONT = "metric/front_service.csv"
DEPENDENCY = "metric/dependency.csv"
BEFORE = (-300.0, 0.0)        # seconds around the injection: [start, end)
AFTER = (60.0, 240.0)         # [start, end]: samples taken 1 to 4 minutes after it
MIN_SAMPLES = (3, 2)          # fewer valid samples before / after: the window lacks data, the injection is skipped

SIGNALS = ("cpu", "server_p90", "client_p90", "frontend_p90", "success")
LABELS = {"cpu": "target CPU", "server_p90": "target server P90", "client_p90": "callers' client P90",
          "frontend_p90": "frontend P90", "success": "frontend success"}


class CalibrationError(ValueError):
    """The recordings are missing or unreadable."""


# -- checks ---------------------------------------------------------------------------------------------------------
RISE_FACTOR, RISE_MIN, FLAT_MAX, FALL_MAX = 3.0, 1.2, 1.1, 0.9
LEVEL_POINTS, SUCCESS_OK, SUCCESS_POINTS = 15.0, 99.0, 5.0


def _rises(real: float, sim: float) -> bool:
    if not (real > RISE_MIN and sim > RISE_MIN):
        return False
    size = (sim - 1.0) / (real - 1.0)
    return 1.0 / RISE_FACTOR <= size <= RISE_FACTOR


RULES: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "rises": (f"both > {RISE_MIN}, rise within x{RISE_FACTOR:g}", _rises),
    "stays flat": (f"both < {FLAT_MAX}", lambda r, s: r < FLAT_MAX and s < FLAT_MAX),
    "falls": (f"both < {FALL_MAX}", lambda r, s: r < FALL_MAX and s < FALL_MAX),
    "level": (f"within {LEVEL_POINTS:g} points", lambda r, s: abs(s - r) <= LEVEL_POINTS),
    "stays at 100%": (f"both >= {SUCCESS_OK:g}%", lambda r, s: r >= SUCCESS_OK and s >= SUCCESS_OK),
    "drops": (f"both < {SUCCESS_OK:g}%, within {SUCCESS_POINTS:g} points",
              lambda r, s: r < SUCCESS_OK and s < SUCCESS_OK and abs(s - r) <= SUCCESS_POINTS),
}
# (fault type, signal, rule): "level" and the success rules compare levels during the fault, the others ratios
CHECKS: tuple[tuple[str, str, str], ...] = (
    ("cpu_contention", "cpu", "level"), ("cpu_contention", "cpu", "rises"),
    ("cpu_contention", "server_p90", "rises"), ("cpu_contention", "client_p90", "rises"),
    ("cpu_contention", "frontend_p90", "rises"), ("cpu_contention", "success", "stays at 100%"),
    ("cpu_consumed", "cpu", "level"), ("cpu_consumed", "cpu", "rises"),
    ("cpu_consumed", "server_p90", "rises"), ("cpu_consumed", "client_p90", "rises"),
    ("cpu_consumed", "frontend_p90", "rises"), ("cpu_consumed", "success", "stays at 100%"),
    ("network_delay", "cpu", "stays flat"), ("network_delay", "server_p90", "stays flat"),
    ("network_delay", "client_p90", "rises"), ("network_delay", "frontend_p90", "rises"),
    ("network_delay", "success", "stays at 100%"),
    ("exception", "cpu", "stays flat"), ("exception", "success", "drops"),
    ("return", "cpu", "falls"), ("return", "success", "drops"),
)


@dataclass(frozen=True)
class Figure:
    """A signal over a fault type's injections (or simulated services): medians of the level before, the level
    during, and the ratio during / before; `n` how many made it."""

    n: int
    before: float
    after: float
    ratio: float

    @classmethod
    def of(cls, pairs: list[tuple[float, float]]) -> "Figure":
        if not pairs:
            return cls(0, math.nan, math.nan, math.nan)
        b, a = np.array(pairs, dtype=float).T
        return cls(len(pairs), float(np.median(b)), float(np.median(a)), float(np.median(a / b)))

    def value(self, rule: str) -> float:
        return self.after if rule in ("level", "stays at 100%", "drops") else self.ratio

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "before": self.before, "after": self.after, "ratio": self.ratio}


@dataclass(frozen=True)
class Check:
    """One signal of one fault type, real beside simulated, and whether they agree by `rule`."""

    fault: str
    signal: str
    rule: str
    real: float
    simulated: float
    passed: bool

    @property
    def name(self) -> str:
        return f"{self.fault}: {LABELS[self.signal]} {self.rule}"

    @property
    def unit(self) -> str:
        return "%" if self.rule in ("level", "stays at 100%", "drops") else "x"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "fault": self.fault, "signal": self.signal, "rule": self.rule,
                "requirement": RULES[self.rule][0], "unit": self.unit, "real": self.real,
                "simulated": self.simulated, "passed": self.passed}


@dataclass
class Calibration:
    """The checks, and the figures behind them (real per fault type; simulated per type and per service)."""

    checks: list[Check]
    real: dict[str, dict[str, Figure]]
    simulated: dict[str, dict[str, Figure]]
    per_service: dict[str, dict[str, dict[str, Figure]]]     # type -> service -> signal -> figure (simulated)
    injections: list[dict[str, Any]]
    params: dict[str, dict[str, Any]]
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        def figs(d: Mapping[str, Figure]) -> dict[str, Any]:
            return {s: f.as_dict() for s, f in d.items()}
        return {
            "passed": self.passed,
            "checks": [c.as_dict() for c in self.checks],
            "params": self.params,
            "real": {t: figs(d) for t, d in self.real.items()},
            "simulated": {t: {**figs(d), "services": {s: figs(f) for s, f in self.per_service[t].items()}}
                          for t, d in self.simulated.items()},
            "injections": self.injections,
            "seconds": self.seconds,
        }

    def table(self) -> "Any":
        """A rich Table: fault type by check, real beside simulated, pass or fail."""
        from rich.table import Table

        table = Table(title="Nezha Online Boutique: real vs simulated fault signatures")
        for name, justify in (("fault", "left"), ("signal", "left"), ("rule", "left"), ("real", "right"),
                              ("simulated", "right"), ("", "left")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        last = None
        for c in self.checks:
            fmt = (lambda v: f"{v:.1f}%") if c.unit == "%" else (lambda v: f"{v:.3g}x")
            table.add_row(c.fault if c.fault != last else "", LABELS[c.signal], f"{c.rule} ({RULES[c.rule][0]})",
                          fmt(c.real), fmt(c.simulated), "[green]pass[/]" if c.passed else "[red]FAIL[/]")
            last = c.fault
        return table


# -- reading the recordings -----------------------------------------------------------------------------------------
def service_of(pod: str) -> str:
    """`frontend-579b9bff58-t2dbm` -> `frontend`: the pod name less its two hash suffixes."""
    return pod.rsplit("-", 2)[0]


def _need(path: Path) -> Path:
    if not path.is_file():
        raise CalibrationError(f"Nezha recordings incomplete: {path} is missing (expected the rca_data/2022-08-22 "
                               f"folder of IntelligentDDS/Nezha)")
    return path


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


@dataclass
class Series:
    """One CSV of one-minute samples: times (Unix seconds from the `Time` column) and float columns."""

    times: np.ndarray
    columns: dict[str, np.ndarray]

    @classmethod
    def read(cls, path: Path) -> "Series":
        with _need(path).open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "Time" not in rows[0]:
            raise CalibrationError(f"Nezha recordings unreadable: {path} has no `Time` column")
        # `Time` reads like "2022-08-22 03:51:19.799087274 +0000 UTC m=+0.305041286": UTC to the second. Not
        # `TimeStamp`, which the adservice file has shifted by 2e8 s and partly corrupted.
        times = np.array([r["Time"][:19].replace(" ", "T") for r in rows], dtype="datetime64[s]").astype(np.int64)
        names = [k for k in rows[0] if k not in ("Time", "TimeStamp", "PodName", "ServiceName")]
        return cls(times.astype(float), {k: np.array([_float(r[k]) for r in rows]) for k in names})

    def window(self, column: str, t0: float) -> tuple[float, float] | None:
        """Mean of `column` over the samples before and after an injection at `t0`; None if either lacks data."""
        v, t = self.columns[column], self.times
        before = v[(t >= t0 + BEFORE[0]) & (t < t0 + BEFORE[1])]
        after = v[(t >= t0 + AFTER[0]) & (t <= t0 + AFTER[1])]
        before, after = before[np.isfinite(before)], after[np.isfinite(after)]
        if len(before) < MIN_SAMPLES[0] or len(after) < MIN_SAMPLES[1] or not before.mean() > 0:
            return None
        return float(before.mean()), float(after.mean())


@dataclass(frozen=True)
class Injection:
    kind: str          # Nezha's type: cpu_contention, cpu_consumed, network_delay, exception, return
    pod: str
    service: str
    time: float        # Unix seconds


@dataclass
class RealData:
    """The fault list, the per-pod metrics, the frontend's and the call graph."""

    injections: list[Injection]
    pods: dict[str, Series]          # by service
    front: Series
    callers: dict[str, list[str]]    # service -> the services that call it

    @classmethod
    def read(cls, path: str | Path) -> "RealData":
        root = Path(path)
        with _need(root / FAULT_LIST).open() as f:
            listed = json.load(f)
        # `inject_timestamp`, not `inject_time`: they disagree by a minute once (recommendationservice's
        # cpu_consumed), and the metrics side with the time stamp
        injections = sorted((Injection(e["inject_type"], e["inject_pod"], service_of(e["inject_pod"]),
                                       float(e["inject_timestamp"]))
                             for hour in listed.values() for e in hour), key=lambda i: i.time)
        files = {service_of(p.name[: -len("_metric.csv")]): p for p in sorted((root / "metric").glob("*_metric.csv"))}
        for inj in injections:
            _need(root / "metric" / f"{inj.pod}_metric.csv")
        pods = {s: Series.read(p) for s, p in files.items()}
        with _need(root / DEPENDENCY).open(newline="") as f:
            edges = [(r["Source"], r["Target"]) for r in csv.DictReader(f)]
        callers: dict[str, list[str]] = {}
        for src, dst in edges:
            if src in pods and dst in pods:
                callers.setdefault(dst, []).append(src)
        return cls(injections, pods, Series.read(root / FRONT), callers)

    def signals(self, inj: Injection) -> dict[str, tuple[float, float] | None]:
        """(before, after) of each signal around one injection; None where the windows lack data."""
        pod = self.pods[inj.service]
        out = {"cpu": pod.window("CpuUsageRate(%)", inj.time),
               "server_p90": pod.window("PodServerLatencyP90(s)", inj.time),
               "frontend_p90": self.front.window("LatencyP90(s)", inj.time),
               "success": self.front.window("SuccessRate(%)", inj.time)}
        pairs = [w for c in self.callers.get(inj.service, []) if (w := self.pods[c].window("PodClientLatencyP90(s)",
                                                                                         inj.time)) is not None]
        out["client_p90"] = (_geomean([b for b, _ in pairs]), _geomean([a for _, a in pairs])) if pairs else None
        return out

    def figures(self) -> tuple[dict[str, dict[str, Figure]], list[dict[str, Any]]]:
        """Per fault type and signal, the medians over its injections; and the per-injection rows."""
        pairs: dict[str, dict[str, list[tuple[float, float]]]] = {}
        rows = []
        for inj in self.injections:
            sig = self.signals(inj)
            for s, w in sig.items():
                if w is not None:
                    pairs.setdefault(inj.kind, {}).setdefault(s, []).append(w)
            earlier = [i.time for i in self.injections if i.service == inj.service and i.time < inj.time]
            rows.append({"type": inj.kind, "service": inj.service, "time": float(inj.time),
                         "minutes_since_previous_fault_here": (inj.time - max(earlier)) / 60.0 if earlier else None,
                         **{s: (None if w is None else {"before": w[0], "after": w[1], "ratio": w[1] / w[0]})
                            for s, w in sig.items()}})
        figures = {t: {s: Figure.of(pairs[t].get(s, [])) for s in SIGNALS} for t in pairs}
        return figures, rows


def _geomean(values: list[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))


# -- simulating -----------------------------------------------------------------------------------------------------
def _mixture_quantile(sf: Callable[[np.ndarray], np.ndarray], weight: np.ndarray, q: float = 0.9) -> np.ndarray:
    """The q-quantile of mixtures whose components lie along the last axis: weights `weight`, tails `sf(x)` (x
    broadcast as [..., 1]). Bisection in log time between 10 us and 1000 s; NaN where every weight is zero."""
    total = weight.sum(axis=-1)
    w = weight / np.maximum(total, 1e-300)[..., None]
    lo, hi = np.full(total.shape, math.log(1e-5)), np.full(total.shape, math.log(1e3))
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        above = (w * sf(np.exp(mid)[..., None])).sum(axis=-1) > 1.0 - q
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return np.where(total > 0, np.exp(0.5 * (lo + hi)), np.nan)


def _minutes(x: np.ndarray) -> np.ndarray:
    """[T, B, ...] ticks -> [M, B, 6, ...] one-minute windows of six 10 s ticks."""
    m = x.shape[0] // 6
    return np.moveaxis(x[: m * 6].reshape(m, 6, *x.shape[1:]), 1, 2)


def _flat(x: np.ndarray) -> np.ndarray:
    """[M, B, 6, K] -> [M, B, 6 K]: the minute's ticks and components as one mixture."""
    return x.reshape(*x.shape[:2], -1)


@dataclass
class _Placement:
    kind: str                 # Nezha type
    service: str
    worlds: np.ndarray        # its block of worlds


def simulate(services: Mapping[str, list[str]], params: Mapping[str, Mapping[str, Any]], worlds: int = 4,
             seed: int = 0, overrides: Mapping[str, Any] | None = None) -> tuple[dict[str, dict[str, dict[str, list[tuple[float, float]]]]], float]:
    """Inject each Nezha type into each of its services in `worlds` worlds of one batched `online-shop` episode
    (each (type, service) in its own block of worlds); per type, service and signal, the (before, after) of every
    world. Returns also the episode's tick length."""
    from opsworld.engine.topology import CONSUME
    from opsworld.faults import CATALOGUE, run_episode

    placements, faults = [], []
    for kind, names in services.items():
        for name in names:
            block = np.arange(len(placements) * worlds, (len(placements) + 1) * worlds)
            placements.append(_Placement(kind, name, block))
            fault = CATALOGUE[CATALOGUE_ENTRY[kind]].make(target=name, onset=ONSET, **params.get(kind, {}))
            faults.append((fault, block))
    B = len(placements) * worlds
    dt = 10.0
    ticks = int(round((ONSET + 60.0 * AFTER_MINUTES) / dt))
    from opsworld.spec import load_scenario
    scenario = load_scenario("online-shop", dict(overrides) if overrides else None)
    ep = run_episode(scenario, faults, worlds=B, seed=seed, ticks=ticks)
    tr, engine = ep.trajectory, ep.injector.engine
    topo = engine.topology
    dt = float(engine.scenario.tick)
    if abs(60.0 / dt - 6) > 1e-9 or abs(ONSET / 60.0 - round(ONSET / 60.0)) > 1e-9:
        raise CalibrationError("the online-shop template must tick every 10 s for one-minute windows")
    target = np.empty(B, dtype=np.int64)
    for p in placements:
        target[p.worlds] = topo.index(p.service)
    worlds_axis = np.arange(B)

    def at_target(x: np.ndarray) -> np.ndarray:      # [T, B, S] -> [T, B]
        return x[:, worlds_axis, target]

    # per minute [M, B]
    cpu = 100.0 * _minutes(at_target(tr.cpu_utilisation)).mean(axis=2)
    mean, var = _minutes(at_target(tr.response_mean)), _minutes(at_target(tr.response_var))
    server = _mixture_quantile(lambda x: qt.gamma_sf(mean, var, x), _minutes(at_target(tr.served)))
    lat = qt.SkewedGamma(_flat(_minutes(tr.latency_mean)), _flat(_minutes(tr.latency_var)),
                         _flat(_minutes(tr.latency_third)))
    cap = np.broadcast_to(np.asarray(tr.latency_cap, dtype=float), tr.latency_mean.shape[-1:])
    cap = np.tile(cap, 6)
    frontend = _mixture_quantile(lambda x: lat.sf(x) * (x < cap), _flat(_minutes(tr.requests - tr.failed)))
    success = 100.0 * (1.0 - _minutes(tr.failed).sum(axis=(2, 3)) / _minutes(tr.requests).sum(axis=(2, 3)))

    # callers' client side: every call attempt a caller makes, each lasting its callee's response time plus the
    # network (with the delay the injector set on the edge from onset: these faults act at once and last)
    started = tr.time - dt                                                    # [T] tick starts
    added = engine.knobs.network_latency.T[None] * (started >= ONSET)[:, None, None]   # [T, B, E]
    calls = topo.edge_kind != CONSUME
    callers = sorted({int(topo.edge_src[e]) for e in np.flatnonzero(calls) if topo.edge_src[e] != topo.edge_dst[e]})
    client = np.full((len(cpu), B, topo.n_components), np.nan)
    for c in callers:    # a loop over the few calling components, not over worlds
        es = np.flatnonzero((topo.edge_src == c) & calls)
        dst = topo.edge_dst[es]
        m = _flat(_minutes(tr.response_mean[:, :, dst] + topo.edge_network[es] + added[:, :, es]))
        v = _flat(_minutes(tr.response_var[:, :, dst]))
        timeout = np.tile(topo.edge_timeout[es], 6)
        client[:, :, c] = _mixture_quantile(lambda x: qt.gamma_sf(m, v, x) * (x < timeout),
                                            _flat(_minutes(tr.edge_attempts[:, :, es])))
    is_caller = np.zeros((B, topo.n_components), bool)
    for p in placements:
        s = topo.index(p.service)
        for c in set(topo.edge_src[(topo.edge_dst == s) & calls].tolist()):
            is_caller[p.worlds, c] = True
    log_client = np.log(np.where(is_caller[None], client, 1.0))
    client_geo = np.exp(log_client.sum(axis=2) / np.maximum(is_caller.sum(axis=1), 1))   # [M, B]
    client_geo[:, ~is_caller.any(axis=1)] = np.nan

    onset_min = int(round(ONSET / 60.0))
    before = slice(onset_min - BEFORE_MINUTES, onset_min)
    after = slice(onset_min, onset_min + AFTER_MINUTES)
    per_minute = {"cpu": cpu, "server_p90": server, "client_p90": client_geo, "frontend_p90": frontend,
                  "success": success}
    out: dict[str, dict[str, dict[str, list[tuple[float, float]]]]] = {}
    for s, x in per_minute.items():
        b, a = x[before].mean(axis=0), x[after].mean(axis=0)               # [B]
        for p in placements:
            rows = [(float(b[w]), float(a[w])) for w in p.worlds if np.isfinite(b[w]) and np.isfinite(a[w])]
            out.setdefault(p.kind, {}).setdefault(p.service, {})[s] = rows
    return out, dt


# -- the whole calibration ------------------------------------------------------------------------------------------
def calibrate(path: str | Path, worlds: int = 4, seed: int = 0,
              params: Mapping[str, Mapping[str, Any]] | None = None) -> Calibration:
    """Read the Nezha recordings at `path`, simulate the same faults at the same services, and check the signatures
    agree. `params` overrides `PARAMS` per Nezha type. Raises CalibrationError naming a missing file."""
    import time

    start = time.perf_counter()
    data = RealData.read(path)
    real, rows = data.figures()
    used = {k: {**PARAMS.get(k, {}), **dict((params or {}).get(k, {}))} for k in CATALOGUE_ENTRY}
    services = {k: sorted({i.service for i in data.injections if i.kind == k}) for k in CATALOGUE_ENTRY}
    services = {k: v for k, v in services.items() if v}
    sim, _ = simulate(services, used, worlds=worlds, seed=seed)

    per_service: dict[str, dict[str, dict[str, Figure]]] = {}
    simulated: dict[str, dict[str, Figure]] = {}
    for kind, by_service in sim.items():
        per_service[kind] = {svc: {s: Figure.of(w) for s, w in sig.items()} for svc, sig in by_service.items()}
        simulated[kind] = {}
        for s in SIGNALS:     # per service the median over its worlds, then the median over the services
            figs = [f[s] for f in per_service[kind].values() if f[s].n]
            simulated[kind][s] = Figure(len(figs), *(float(np.median([getattr(f, a) for f in figs]))
                                                     for a in ("before", "after", "ratio"))) if figs else \
                Figure.of([])
    checks = []
    for kind, signal, rule in CHECKS:
        if kind not in real or kind not in simulated:
            continue
        r, s = real[kind][signal].value(rule), simulated[kind][signal].value(rule)
        ok = bool(np.isfinite(r) and np.isfinite(s) and RULES[rule][1](r, s))
        checks.append(Check(kind, signal, rule, r, s, ok))
    return Calibration(checks, real, simulated, per_service, rows, used, time.perf_counter() - start)
