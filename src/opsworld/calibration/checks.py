"""The checks a fault signature is held to: one per (Nezha fault type, signal), each with its rule; the figures a
check compares (a level before and during a fault, and their ratio) and the verdict (pass, fail, or not applicable
with the reason). `nezha` explains the rules' numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

SIGNALS = ("cpu", "server_p90", "client_p90", "frontend_p90", "success")   # as the recordings' COLUMNS
LABELS = {"cpu": "target CPU", "server_p90": "target server P90", "client_p90": "callers' client P90",
          "frontend_p90": "frontend P90", "success": "frontend success",
          "located": "origin in traces and logs"}
CODE_LEVEL = ("exception", "return")



# -- the rules ------------------------------------------------------------------------------------------------------
RISE_MIN, RISE_FACTOR = 1.2, 3.0
FLAT_SIM, FLAT_REAL = 0.1, 0.2          # how far from 1 a ratio that does not move may be: simulated, real
LEVEL_POINTS, SUCCESS_OK, SUCCESS_POINTS = 15.0, 99.0, 5.0
LOCATED = 0.8          # share of a code-level fault's injections whose origin the traces and logs point at


def _rises(real: float, sim: float) -> bool:
    if not (real > RISE_MIN and sim > RISE_MIN):
        return False
    return 1.0 / RISE_FACTOR <= (sim - 1.0) / (real - 1.0) <= RISE_FACTOR


@dataclass(frozen=True)
class Rule:
    text: str
    holds: Callable[[float, float], bool]     # (real, simulated) -> they agree
    one: Callable[[float, float], bool]       # (one injection's or service's figure, the real) -> it shows it
    on_level: bool                            # compares levels during the fault, not ratios


RULES: dict[str, Rule] = {
    "rises": Rule(f"both > {RISE_MIN:g}, rise within x{RISE_FACTOR:g}", _rises, lambda x, r: x > RISE_MIN, False),
    "level": Rule(f"within {LEVEL_POINTS:g} points", lambda r, s: abs(s - r) <= LEVEL_POINTS,
                  lambda x, r: abs(x - r) <= LEVEL_POINTS, True),
    "does not rise": Rule(f"sim < {1 + FLAT_SIM:g}, real < {1 + FLAT_REAL:g}",
                          lambda r, s: r < 1 + FLAT_REAL and s < 1 + FLAT_SIM, lambda x, r: x < 1 + FLAT_REAL, False),
    "stays flat": Rule(f"sim {1 - FLAT_SIM:g}-{1 + FLAT_SIM:g}, real {1 - FLAT_REAL:g}-{1 + FLAT_REAL:g}",
                       lambda r, s: abs(r - 1) <= FLAT_REAL and abs(s - 1) <= FLAT_SIM,
                       lambda x, r: abs(x - 1) <= FLAT_REAL, False),
    "stays at 100%": Rule(f"both >= {SUCCESS_OK:g}%", lambda r, s: r >= SUCCESS_OK and s >= SUCCESS_OK,
                          lambda x, r: x >= SUCCESS_OK, True),
    "drops": Rule(f"both < {SUCCESS_OK:g}%, within {SUCCESS_POINTS:g} points",
                  lambda r, s: r < SUCCESS_OK and s < SUCCESS_OK and abs(s - r) <= SUCCESS_POINTS,
                  lambda x, r: x < SUCCESS_OK, True),
    "found at the target": Rule(f"both >= {LOCATED:.0%} of injections", lambda r, s: r >= LOCATED and s >= LOCATED,
                                lambda x, r: x >= 1.0, True),
}
CHECKS: tuple[tuple[str, str, str], ...] = (          # (Nezha fault type, signal, rule)
    ("cpu_contention", "cpu", "level"), ("cpu_contention", "cpu", "rises"),
    ("cpu_contention", "server_p90", "rises"), ("cpu_contention", "client_p90", "rises"),
    ("cpu_contention", "frontend_p90", "rises"), ("cpu_contention", "success", "stays at 100%"),
    ("cpu_consumed", "cpu", "level"), ("cpu_consumed", "cpu", "rises"),
    ("cpu_consumed", "server_p90", "rises"), ("cpu_consumed", "frontend_p90", "rises"),
    ("cpu_consumed", "success", "stays at 100%"),
    ("network_delay", "cpu", "does not rise"), ("network_delay", "server_p90", "does not rise"),
    ("network_delay", "client_p90", "rises"), ("network_delay", "frontend_p90", "rises"),
    ("network_delay", "success", "stays at 100%"),
    ("exception", "cpu", "stays flat"), ("exception", "success", "drops"),
    ("exception", "located", "found at the target"),
    ("return", "cpu", "stays flat"), ("return", "success", "drops"),
    ("return", "located", "found at the target"),
)
# the per-injection table's columns: (signal, whether the rule reads a level) -> header
COLUMN_HEADERS: dict[tuple[str, bool], str] = {
    ("cpu", True): "CPU level", ("cpu", False): "CPU", ("server_p90", False): "server P90",
    ("client_p90", False): "callers' P90", ("frontend_p90", False): "frontend P90", ("success", True): "success",
    ("located", True): "located"}


# -- figures and checks ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figure:
    """A signal of one injection, one simulated service, or the median over several: its level before, its level
    during, and the ratio (the median of the ratios, for a median)."""

    before: float
    after: float
    ratio: float
    n: int = 1

    @classmethod
    def median(cls, items: list["Figure"]) -> "Figure":
        if not items:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(*(float(np.median([getattr(f, a) for f in items])) for a in ("before", "after", "ratio")),
                   n=len(items))

    def value(self, rule: str) -> float:
        return self.after if RULES[rule].on_level else self.ratio

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "before": self.before, "after": self.after, "ratio": self.ratio}


Measured = Figure | str     # a figure, or why there is none (a one-line reason)


def _pair(before: float, after: float) -> Figure:
    return Figure(before, after, after / before)


@dataclass(frozen=True)
class Check:
    """One signal of one fault type: the real figure beside the simulated one, and whether they agree by `rule`.
    `real_agree` and `sim_agree` are (how many show the rule's direction on their own, how many there are).
    A non-empty `reason` makes it not applicable (neither passed nor failed): why one side has no figure.
    Pooled over a type's injections in `Calibration.checks`; one injection against its service's simulated same
    fault in `Calibration.per_injection`."""

    fault: str
    signal: str
    rule: str
    real: float
    simulated: float
    passed: bool
    real_agree: tuple[int, int] = (0, 0)
    sim_agree: tuple[int, int] = (0, 0)
    reason: str = ""

    @property
    def name(self) -> str:
        return f"{self.fault}: {LABELS[self.signal]} {self.rule}"

    @property
    def applicable(self) -> bool:
        return not self.reason

    @property
    def status(self) -> str:
        """`pass`, `fail` or `n.a.` (per injection read as agree, disagree, n.a.)."""
        return "n.a." if self.reason else "pass" if self.passed else "fail"

    @property
    def unit(self) -> str:
        if self.signal == "located":
            return "share"
        return "%" if RULES[self.rule].on_level else "x"

    def show(self, value: float) -> str:
        if not math.isfinite(value):
            return "-"
        return {"%": f"{value:.1f}%", "share": f"{value:.0%}"}.get(self.unit, f"{value:.3g}x")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "fault": self.fault, "signal": self.signal, "rule": self.rule,
                "requirement": RULES[self.rule].text, "unit": self.unit, "real": self.real,
                "simulated": self.simulated, "passed": self.passed, "status": self.status, "reason": self.reason,
                "real_agree": list(self.real_agree), "sim_agree": list(self.sim_agree)}


def _judge(fault: str, signal: str, rule: str, real: Measured, simulated: Measured,
           real_agree: tuple[int, int] | None = None, sim_agree: tuple[int, int] | None = None) -> Check:
    """A check from the two sides' figures: not applicable, with the first side's reason, where either has none."""
    r = real.value(rule) if isinstance(real, Figure) else math.nan
    s = simulated.value(rule) if isinstance(simulated, Figure) else math.nan
    reason = real if isinstance(real, str) else simulated if isinstance(simulated, str) else ""
    if not reason and not (math.isfinite(r) and math.isfinite(s)):
        reason = "no finite figure"
    one = RULES[rule].one
    return Check(fault, signal, rule, r, s, bool(not reason and RULES[rule].holds(r, s)),
                 real_agree or ((int(one(r, r)), 1) if math.isfinite(r) else (0, 0)),
                 sim_agree or ((int(one(s, r)), 1) if math.isfinite(s) and math.isfinite(r) else (0, 0)), reason)


