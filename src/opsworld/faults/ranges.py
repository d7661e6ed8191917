"""The documented range of each catalogue entry's strength parameters, and draws from them.

Two episodes of one catalogue entry should not show the same numbers: a responder (or a policy) that learns "a
failure ratio of 0.29 means a bad config push" has learnt the catalogue, not the system. Each numeric strength
parameter of an entry has a range around its published value, from a small rule table by what the value means
(a share, seconds, a multiplier), clipped to the fault field's own bounds so every draw validates; an entry may
override the rule (`Entry.ranges`) where its mechanism needs it. Identity parameters (the places a fault strikes,
how and when) are never drawn.

Draws are quantised to a few points of the range: the injector keeps one entry per distinct fault and works per
distinct fault each tick, so a batch of a thousand worlds must not make a thousand distinct faults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from annotated_types import Ge, Gt, Le, Lt

if TYPE_CHECKING:
    from opsworld.faults.catalogue import Entry

Scale = Literal["linear", "log"]

# what a parameter's value is, by its name: the rule that gives its range
SHARES = ("rate", "share", "errors", "hot_share", "loss", "writes")          # in (0, 1]
SECONDS = ("delay", "page_after", "fills_in", "after", "trigger", "lag", "retransmit", "timeout", "prefill",
           "backoff", "ramp", "duration")
MULTIPLIERS = ("work", "speedup", "factor", "growth", "slowdown")            # >= 1
AMOUNTS = ("cores",)                                                         # a positive amount
# never drawn: the places a fault strikes and how, when it starts, and the names of what it is
IDENTITY = ("target", "caller", "other", "on", "handler", "via", "how", "onset", "symptom", "limit", "flush")


@dataclass(frozen=True)
class Range:
    """The range a parameter is drawn from: [lo, hi], uniform on a `linear` or `log` scale; `what` the value is
    (share, seconds, multiplier, amount, severity, count: a count's draws are whole numbers)."""

    lo: float
    hi: float
    scale: Scale = "linear"
    what: str = "amount"

    def __post_init__(self) -> None:
        if not (self.lo <= self.hi) or (self.scale == "log" and self.lo <= 0):
            raise ValueError(f"bad range [{self.lo}, {self.hi}] ({self.scale})")

    def contains(self, value: float) -> bool:
        return self.lo - 1e-12 <= value <= self.hi + 1e-12

    def shrunk(self, centre: float, spread: float) -> tuple[float, float]:
        """The range shrunk towards `centre` (inside it): `spread` 1 is the whole range, 0 the centre alone."""
        f, g = (math.log, math.exp) if self.scale == "log" else (float, float)
        c = f(min(max(centre, self.lo), self.hi))
        return g(c - spread * (c - f(self.lo))), g(c + spread * (f(self.hi) - c))

    def points(self, centre: float, spread: float, levels: int) -> np.ndarray:
        """`levels` evenly spaced points (on the range's scale) of the range shrunk towards `centre`."""
        lo, hi = self.shrunk(centre, spread)
        if self.scale == "log":
            pts = np.exp(np.linspace(np.log(lo), np.log(hi), levels))
        else:
            pts = np.linspace(lo, hi, levels)
        pts = np.clip(pts, lo, hi)           # exp(log(x)) may land a rounding error outside
        if self.what == "count":
            pts = np.clip(np.round(pts), math.ceil(self.lo - 1e-9), math.floor(self.hi + 1e-9))
        return pts

    def text(self) -> str:
        """Compactly, for the catalogue's table: `0.15-0.6`, `5m-45m`."""
        fmt = _seconds_text if self.what == "seconds" else _number_text
        return f"{fmt(self.lo)}-{fmt(self.hi)}"


def _short(x: float) -> float:
    return float(f"{x:.6g}")


def _number_text(x: float) -> str:
    return f"{x:.3g}"


def _seconds_text(x: float) -> str:
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if x >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x * 1000:.3g}ms"


def _bounds(fault: type, name: str) -> tuple[float, float]:
    """The closed interval the pydantic field accepts (strict bounds pulled in a little, so a draw validates)."""
    lo, hi = -math.inf, math.inf
    for m in fault.model_fields[name].metadata:
        if isinstance(m, Ge):
            lo = max(lo, float(m.ge))
        elif isinstance(m, Gt):
            lo = max(lo, float(m.gt) + 1e-3 * max(abs(float(m.gt)), 1.0))
        elif isinstance(m, Le):
            hi = min(hi, float(m.le))
        elif isinstance(m, Lt):
            hi = min(hi, float(m.lt) - 1e-2 * max(abs(float(m.lt)), 1.0))
    return lo, hi


def preset(entry: "Entry", name: str) -> Any:
    """The value an entry's worked example runs a parameter with (the example's, else the entry's preset, else the
    fault's default), as the fault holds it (`15m` is 900.0)."""
    return getattr(_example_fault(entry), name)


def _example_fault(entry: "Entry") -> Any:
    return entry.make(**{"target": entry.example.target, **entry.example.params})


def _rule(name: str, value: float, given: bool) -> Range | None:
    """The range a rule gives a parameter of this name and published value; None: not drawn."""
    v = float(value)
    if name == "severity":
        return Range(0.5, 1.0, "linear", "severity") if given else None
    if name in ("ramp", "duration") and not (given and v > 0):
        return None               # no ramp / no end: a different failure, not a weaker one
    if name in SHARES and v > 0:
        return Range(v / 2, min(1.0, 2 * v), "linear", "share")
    if name in SECONDS and v > 0:
        return Range(v / 3, 3 * v, "log", "seconds")
    if name in MULTIPLIERS and v > 1:
        return Range(1 + (v - 1) / 3, 1 + (v - 1) * 3, "log", "multiplier")
    if name in AMOUNTS and v > 0:
        return Range(v / 2, 2 * v, "linear", "amount")
    return None                   # zero (the mechanism is off), counts, flags, names


def _is_count(info: Any) -> bool:
    return info.annotation in (int, int | None)


def _as_range(spec: Any, name: str, count: bool) -> Range | None:
    """An entry's explicit range: a Range, `(lo, hi)` or `(lo, hi, scale)`; None: never drawn."""
    if spec is None or isinstance(spec, Range):
        return spec
    lo, hi, *rest = spec
    scale = rest[0] if rest else "linear"
    what = ("count" if count else
            "share" if name in SHARES else "seconds" if name in SECONDS else
            "multiplier" if name in MULTIPLIERS else "severity" if name == "severity" else "amount")
    return Range(float(lo), float(hi), scale, what)


_CACHE: dict[int, tuple["Entry", dict[str, Range]]] = {}


def ranges_of(entry: "Entry") -> dict[str, Range]:
    """Each drawable parameter of the entry with the range it is drawn from, in the fault's field order. The
    published value (the example's, else the entry's preset, else the default) is always inside."""
    hit = _CACHE.get(id(entry))
    if hit is not None and hit[0] is entry:
        return hit[1]
    fault = entry.fault
    example = _example_fault(entry)
    given = {**entry.params, **entry.example.params}
    out: dict[str, Range] = {}
    for name, info in fault.model_fields.items():
        if name in IDENTITY:
            continue
        value = getattr(example, name)
        if name in entry.ranges:
            r = _as_range(entry.ranges[name], name, _is_count(info))
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or _is_count(info):
            continue              # names, flags and counts stay as published unless the entry says otherwise
        else:
            r = _rule(name, value, name in given)
        if r is None:
            continue
        lo, hi = _bounds(fault, name)
        v = float(value)
        # short numbers (what telemetry and the table print), inside the field's bounds, the published value inside
        r = Range(min(max(_short(r.lo), lo), v), max(min(_short(r.hi), hi), v), r.scale, r.what)
        out[name] = r
    _CACHE[id(entry)] = (entry, out)
    return out


def draw_params(entry: "Entry", params: dict, rng: np.random.Generator, spread: float, levels: int = 8) -> dict:
    """`params` with each of the entry's drawable parameters drawn from its range shrunk around the value it has
    (in `params`, else published) by `spread` (0: unchanged and no draw made; 1: the whole range), quantised to
    `levels` points. One `rng` call per draw."""
    if spread <= 0:
        return dict(params)
    spread = min(float(spread), 1.0)
    ranges = ranges_of(entry)
    if not ranges:
        return dict(params)
    picks = rng.integers(levels, size=len(ranges))
    out = dict(params)
    for (name, r), k in zip(ranges.items(), picks):
        centre = out.get(name, preset(entry, name))
        centre = float(centre) if isinstance(centre, (int, float)) else float(preset(entry, name))
        x = float(r.points(centre, spread, levels)[int(k)])
        out[name] = int(x) if r.what == "count" else min(max(_short(x), r.lo), r.hi)
    return out


def describe_ranges(entry: "Entry") -> dict[str, dict]:
    """The ranges as plain data, for `opsworld faults --json`."""
    return {n: {"lo": r.lo, "hi": r.hi, "scale": r.scale, "what": r.what} for n, r in ranges_of(entry).items()}


def ranges_text(entry: "Entry") -> str:
    """The ranges compactly, for the catalogue's table: `rate 0.15-0.6, delay 50ms-450ms`."""
    return ", ".join(f"{n} {r.text()}" for n, r in ranges_of(entry).items())
