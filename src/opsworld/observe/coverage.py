"""Monitoring as organisations have it: cause-specific alerts missing or mis-tuned, background noise, stale silences.

A freshly generated rule set names the cause the moment it hurts (`CertificateExpired`, `ContainerFilesystemFull`).
Real on-call teams rarely have that: the alert for this cause was never written, or its threshold was set by guess
(it fires late, never, or flaps on normal noise), or it fired days ago and someone silenced it; meanwhile a few
unrelated warnings flap all day. What reliably pages is the symptom: the error budget burning, the front door down.
`Coverage` says how far a world's monitoring falls short, and both alerting paths read it:

    Dashboard(engine, coverage=c)                       # [B, S, A] thresholds, holds, presence drawn per world
    covered_rules(rules, c, seed, world, components)    # a rule file with rules removed, mis-tuned and added
    stale_silences(rules, c, seed, world, start)        # silences from days before the episode, to apply_silences

Alerts are either *symptoms* (what users feel: error ratios, latency, SLO / error-budget burn, the front door down,
a failing blackbox probe) or *causes* (disk, memory, OOM, restarts, CPU, pools, datastores, certificates, nodes,
queues, scrape targets, ...). Symptoms are never removed or mis-tuned: symptom-first paging stays the common path.

Every draw is a keyed hash of (seed, world, what it is about) (`observe.noise.uniform`), so a world's monitoring is
the same whatever batch it runs in; and no draw reads the placed faults or the state of the world: a stale silence
or a missing alert says nothing about what is wrong (no seams), it is only how the organisation's monitoring is.
`Coverage()` leaves everything as it was, bit for bit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from opsworld.observe.alerts.notifier import Matcher, Notifier
from opsworld.observe.alerts.rules import AlertingRule, RuleFile, RuleGroup, format_duration
from opsworld.observe.names import NAMESPACE
from opsworld.observe.noise import COVERAGE, name_key, uniform
from opsworld.observe.promql import PromQLError, parse


class Coverage(BaseModel):
    """How far a world's monitoring falls short of naming the cause (every field 0: it does not)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    missing: float = Field(0.0, ge=0.0, le=1.0, description=(
        "chance that each cause-specific alert is absent from a world's monitoring (never written, or deleted)"))
    mistuned: float = Field(0.0, ge=0.0, le=1.0, description=(
        "chance that each cause-specific alert left is mis-tuned: its threshold, its hold (`for`) or both off by a "
        "drawn factor, either way: too lax fires late or never, too tight fires on less, or flaps on normal noise"))
    mistune_factor: float = Field(2.0, ge=1.0, description=(
        "the largest factor a mis-tuned threshold or hold is off by (drawn between a quarter of it and all of it, "
        "in log terms)"))
    noisy: float = Field(0.0, ge=0.0, description=(
        "mean number of background noise alerts per world: warnings with a too-tight threshold on a naturally "
        "noisy signal of some component, which flap by the signal's own noise all episode long (never pages)"))
    stale_silence: float = Field(0.0, ge=0.0, le=1.0, description=(
        "chance, per family of alerts that warn days ahead (certificates expiring, filesystems filling), that they "
        "warned days before the episode and someone silenced the whole family with a comment: a silence that "
        "still mutes the family's cause alert when it fires"))

    @property
    def off(self) -> bool:
        """Whether this leaves the monitoring exactly as it is."""
        return self.missing == 0 and self.mistuned == 0 and self.noisy == 0 and self.stale_silence == 0


# ---- classification --------------------------------------------------------------------------------------------------
# what users feel, by alert name: the dashboard's and the rule files' (generated and hand-written)
SYMPTOMS = frozenset({
    "HighErrorRate", "HighLatency", "SLOBurn",
    "ErrorBudgetBurnFast", "ErrorBudgetBurnSustained", "ErrorBudgetBurnElevated", "ErrorBudgetBurnSlow",
    "LatencyObjectiveBreached", "ServiceErrorRatioHigh", "ServiceLatencyHigh", "DownstreamCallsFailing",
    "FrontDoorDown", "BlackboxProbeFailed",
})
CLASS_LABEL = "alert_class"     # a rule may say its class itself: `alert_class: symptom` (or `cause`)

AlertClass = Literal["symptom", "cause"]


def alert_class(name: str, labels: Mapping[str, str] | None = None) -> AlertClass:
    """Whether an alert is a symptom users feel or names a cause: its `alert_class` label, else an SLO rule (a
    `slo` label) or a known symptom name is a symptom, and anything else a cause."""
    labels = labels or {}
    told = labels.get(CLASS_LABEL)
    if told in ("symptom", "cause"):
        return told  # type: ignore[return-value]
    return "symptom" if name in SYMPTOMS or "slo" in labels else "cause"


# ---- draws -------------------------------------------------------------------------------------------------------------
_DASHBOARD, _RULES, _SILENCES = 1, 2, 3              # which alerting path a draw is for
_MISSING, _MISTUNED, _DIRECTION, _SIZE, _MODE = 1, 2, 3, 4, 5
_NOISE, _NOISE_LEVEL, _NOISE_KIND, _NOISE_AT = 6, 7, 8, 9
_SILENCED, _AGE, _LENGTH, _WHO, _WHAT, _TICKET = 10, 11, 12, 13, 14, 15


def _laxness(u_direction: np.ndarray, u_size: np.ndarray, u_mode: np.ndarray,
             factor: float) -> tuple[np.ndarray, np.ndarray]:
    """(threshold, hold) laxness of mis-tuned alerts: above 1 an alert needs more (fires later or never), below 1
    less (fires sooner, on noise). The size is log-uniform in [factor^0.25, factor]; a third of them have only the
    threshold off, a third both, a third only the hold."""
    size = math.log(factor) * (0.25 + 0.75 * u_size)
    lax = np.exp(np.where(u_direction < 0.5, size, -size))
    return np.where(u_mode < 2.0 / 3.0, lax, 1.0), np.where(u_mode >= 1.0 / 3.0, lax, 1.0)


def _poisson(mean: float, u: float) -> int:
    """A Poisson count of mean `mean` from one uniform (its inverse CDF)."""
    k, p = 0, math.exp(-mean)
    total = p
    while u > total and k < 1000:
        k += 1
        p *= mean / k
        total += p
    return k


# ---- the dashboard -----------------------------------------------------------------------------------------------------
# signals that wander on their own (a noise alert on one flaps by that noise); not those resting at 0 (queue, restarts)
NOISY_SIGNALS = ("cpu", "memory", "latency_ratio", "saturation", "load_ratio")


@dataclass(frozen=True)
class DashboardAlerts:
    """Per world, component and alert (shapes [B, S, A]) what the dashboard's alerts are in each world."""

    threshold: np.ndarray     # [B, S, A] float32: the threshold (a noise alert's is set at the first tick)
    hold: np.ndarray          # [B, S, A] int16: ticks it must hold before firing
    present: np.ndarray       # [B, S, A] bool: the alert exists
    noise: np.ndarray         # [B, S, A] bool: a noise alert, whose threshold is its first reading times `margin`
    margin: np.ndarray        # [B, S, A] float32: a noise alert's threshold over its signal's first reading


def dashboard_alerts(coverage: Coverage, seed: int, worlds: np.ndarray, components: Sequence[str],
                     alerts: Mapping[str, tuple[str, float, bool, int]], noise: float) -> DashboardAlerts:
    """The dashboard's alerts in `worlds` [B] (global world numbers) of a system of `components` [S] under
    `coverage`. `alerts`: name -> (signal, threshold, above?, hold ticks), as `Dashboard.ALERTS`; `noise`: the
    dashboard's signal noise (log-normal sigma), which sets how far above a signal its noise alerts sit."""
    names = list(alerts)
    B, S, A = len(worlds), len(components), len(names)
    w = np.asarray(worlds, np.int64).reshape(B, 1, 1)
    s = np.array([name_key(c) for c in components], np.uint64).reshape(1, S, 1)
    a = np.array([name_key(n) for n in names], np.uint64).reshape(1, 1, A)

    def u(what: int) -> np.ndarray:        # [B, S, A] uniforms of one kind
        return uniform(seed, w, COVERAGE, _DASHBOARD, what, s, a)

    base = np.array([alerts[n][1] for n in names], np.float64)          # [A]
    above = np.array([alerts[n][2] for n in names], bool)               # [A]
    hold = np.array([alerts[n][3] for n in names], np.float64)          # [A]
    cause = np.array([alert_class(n) == "cause" for n in names], bool)  # [A]
    shape = (B, S, A)
    present = ~(cause & (u(_MISSING) < coverage.missing))               # [B, S, A]
    tuned = cause & (u(_MISTUNED) < coverage.mistuned)
    lax_threshold, lax_hold = _laxness(u(_DIRECTION), u(_SIZE), u(_MODE), coverage.mistune_factor)
    lax_threshold, lax_hold = np.where(tuned, lax_threshold, 1.0), np.where(tuned, lax_hold, 1.0)
    # lax means a higher bar for an alert on a rise, a lower one for an alert on a fall
    threshold = base * np.where(above, lax_threshold, 1.0 / lax_threshold)
    held = np.maximum(np.rint(hold * lax_hold), 1.0)
    # noise: each (component, eligible alert) is one with the same small chance, `noisy` of them per world on average
    eligible = np.array([alerts[n][0] in NOISY_SIGNALS and alerts[n][2] for n in names], bool)   # [A]
    slots = S * int(eligible.sum())
    chance = min(1.0, coverage.noisy / slots) if slots else 0.0
    noisy = eligible & (u(_NOISE) < chance)
    # a noise alert sits one to two and a half sigma of its signal's noise above its first reading and holds two
    # ticks: its own noise (and the day's drift) makes it flap
    margin = np.exp(max(noise, 0.01) * (1.0 + 1.5 * u(_NOISE_LEVEL)))
    return DashboardAlerts(
        threshold=np.broadcast_to(threshold, shape).astype(np.float32),
        hold=np.where(noisy, 2, np.broadcast_to(held, shape)).astype(np.int16),
        present=np.broadcast_to(present | noisy, shape).copy(),
        noise=noisy, margin=np.where(noisy, margin, 1.0).astype(np.float32))


# ---- rule files -------------------------------------------------------------------------------------------------------
_CONSTANT_OPS = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
                 "/": lambda x, y: x / y, "^": lambda x, y: x ** y, "%": math.fmod}
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def _constant(node: Any) -> float | None:
    """The value of a PromQL expression made of numbers alone (`0.9`, `14 * 86400`, `(14.4 * 0.001)`), else None."""
    kind = type(node).__name__
    if kind == "NumberLiteral":
        return float(node.val)
    if kind == "ParenExpr":
        return _constant(node.expr)
    if kind == "UnaryExpr":
        inner = _constant(node.expr)
        return None if inner is None else -inner
    if kind == "BinaryExpr":
        op = _CONSTANT_OPS.get(str(node.op))
        lhs, rhs = _constant(node.lhs), _constant(node.rhs)
        if op is None or lhs is None or rhs is None:
            return None
        try:
            return float(op(lhs, rhs))
        except (ZeroDivisionError, OverflowError, ValueError):
            return None
    return None


def thresholds(expr: str) -> list[tuple[int, int, str, float]]:
    """(start, end, op, value) of each threshold of a rule: the constant right-hand side of the last comparison at
    the top level of each operand of the top-level `and` / `or` / `unless` (`a > 0.9 and b < 14 * 86400` has two).
    Comparisons inside parentheses, braces or brackets are left alone (`(limit > 0)` filters, it is no threshold)."""
    terms: list[tuple[int, int]] = []
    ops: list[tuple[int, int, str]] = []
    depth, i, start, n = 0, 0, 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "\"'`":                            # a string literal: skip to its closing quote
            j = i + 1
            while j < n and expr[j] != c:
                j += 2 if expr[j] == "\\" and c != "`" else 1
            i = j + 1
            continue
        if c == "#":                               # a comment runs to the end of the line
            j = expr.find("\n", i)
            i = n if j < 0 else j
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and (c.isalpha() or c in "_:") and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1]
                                                                            in "_:.")):
            word = _WORD.match(expr, i)
            assert word is not None
            if word.group() in ("and", "or", "unless"):
                terms.append((start, i))
                start = word.end()
            i = word.end()
            continue
        elif depth == 0 and c in "<>=!":
            two = expr[i:i + 2]
            if two in (">=", "<=", "==", "!="):
                ops.append((i, i + 2, two))
                i += 2
                continue
            if c in "<>":
                ops.append((i, i + 1, c))
        i += 1
    terms.append((start, n))
    out = []
    for lo, hi in terms:
        inside = [op for op in ops if lo <= op[0] < hi]
        if not inside or inside[-1][2] in ("==", "!="):      # an equality is a state, not a tunable level
            continue
        _, at, op = inside[-1]
        text = expr[at:hi]
        body = text.lstrip()
        begin = at + len(text) - len(body)
        if body.startswith("bool") and not body[4:5].isalnum():
            rest = body[4:].lstrip()
            begin += len(body) - len(rest)
            body = rest
        body = body.rstrip()
        try:
            value = _constant(parse(body))
        except PromQLError:
            continue
        if value is not None:
            out.append((begin, begin + len(body), op, value))
    return out


def _number(x: float) -> str:
    """A number as a person writes a threshold (four significant figures, no exponent for ordinary sizes)."""
    return f"{float(f'{x:.4g}'):.12g}"


def mistune_expr(expr: str, laxness: float) -> str:
    """`expr` with each threshold (see `thresholds`) made `laxness` times laxer: an alert on `>` gets its threshold
    multiplied by it, one on `<` divided by it."""
    out = expr
    for begin, end, op, value in reversed(thresholds(expr)):
        scaled = value * laxness if op in (">", ">=") else value / laxness
        out = out[:begin] + _number(scaled) + out[end:]
    return out


def _rebuilt(rule: AlertingRule, **change: Any) -> AlertingRule:
    """A rule validated anew with some fields changed (`for_` in seconds)."""
    data: dict[str, Any] = {"alert": rule.alert, "expr": rule.expr, "labels": dict(rule.labels),
                            "annotations": dict(rule.annotations)}
    hold = change.pop("for_", rule.for_)
    if hold:
        data["for"] = format_duration(hold)
    if rule.keep_firing_for is not None:
        data["keep_firing_for"] = format_duration(rule.keep_firing_for)
    data.update(change)
    return AlertingRule.model_validate(data)


# noise rules: (alert names to draw from, the group they join, the PromQL of one component: a one-minute rate against
# the quarter-hour one, which wanders by a few percent on normal traffic, with `{k}` the too-tight factor)
_NOISE_RULES = (
    (("CPUUsageSpike", "ContainerCPUAboveNormal", "HighCPUUsage"), "kubernetes", "container",
     "sum by (container) (rate(container_cpu_usage_seconds_total{{{sel}}}[1m]))\n>\n"
     "{k} * sum by (container) (rate(container_cpu_usage_seconds_total{{{sel}}}[15m]))\n",
     "{{ $labels.container }} CPU is above its usual level",
     "{{ $labels.container }} has used more CPU over the last minute than over the last 15 minutes "
     "({{ $value | humanize }} cores)."),
    (("RequestRateSpike", "TrafficAboveNormal", "UnusualRequestVolume"), "services", "service",
     'sum by (service) (rate(http_server_requests_total{{{sel}}}[1m]))\n>\n'
     '{k} * sum by (service) (rate(http_server_requests_total{{{sel}}}[15m]))\n',
     "{{ $labels.service }} is taking more requests than usual",
     "{{ $labels.service }} took {{ $value | humanize }} requests per second over the last minute, more than its "
     "15-minute average."),
)


def _noise_rules(coverage: Coverage, seed: int, world: int,
                 components: Sequence[str]) -> list[tuple[str, AlertingRule]]:
    """(group name, rule) of a world's noise rules: warnings that flap on real noisy series, never pages."""
    count = _poisson(coverage.noisy, float(uniform(seed, world, COVERAGE, _RULES, _NOISE)))
    out = []
    for j in range(count):
        def u(what: int) -> float:
            return float(uniform(seed, world, COVERAGE, _RULES, what, j))
        names, group, label, expr, summary, description = _NOISE_RULES[int(u(_NOISE_KIND) * len(_NOISE_RULES))]
        name = names[int(u(_NOISE_KIND + 100) * len(names))]
        sel = f'namespace="{NAMESPACE}"'
        labels = {"severity": "warning", "service": "{{ $labels." + label + " }}"}
        if components:       # on one component; with none known, on every one (an alert instance each)
            component = components[int(u(_NOISE_AT) * len(components))]
            sel += f", {label}=" + '"' + component + '"'
        k = 1.015 + 0.03 * u(_NOISE_LEVEL)   # 1.5% to 4.5% over the slow rate: crossed every few minutes
        out.append((group, AlertingRule.model_validate({
            "alert": name, "expr": expr.format(sel=sel, k=_number(k)), "labels": labels,
            "annotations": {"summary": summary, "description": description}})))
    return out


def covered_rules(rules: RuleFile, coverage: Coverage, seed: int, world: int,
                  components: Sequence[str] = ()) -> RuleFile:
    """The rule file world `world` of a batch of `seed` runs under `coverage`: cause-specific rules removed
    (`missing`) or with their thresholds and `for` scaled (`mistuned`, see `mistune_expr`; a `for` in whole
    evaluation intervals), and noise rules added (`noisy`: severity `warning`, on one of `components` each, or on
    every component when none are given). Symptom rules are kept as they are. `Coverage()` returns `rules` itself."""
    if coverage.off:
        return rules
    noise: dict[str, list[AlertingRule]] = {}
    for group, rule in _noise_rules(coverage, seed, world, components):
        where = group if group in {g.name for g in rules.groups} else rules.groups[0].name if rules.groups else ""
        noise.setdefault(where, []).append(rule)
    groups = []
    for group in rules.groups:
        kept = []
        for r, rule in enumerate(group.rules):
            if alert_class(rule.alert, rule.labels) == "symptom":
                kept.append(rule)
                continue
            key = (seed, world, COVERAGE, _RULES, name_key(group.name), r)
            if uniform(*key, _MISSING) < coverage.missing:
                continue
            if uniform(*key, _MISTUNED) < coverage.mistuned:
                lax_threshold, lax_hold = _laxness(uniform(*key, _DIRECTION), uniform(*key, _SIZE),
                                                   uniform(*key, _MODE), coverage.mistune_factor)
                # a hold in whole evaluation intervals, as the evaluator checks it
                hold = round(rule.for_ * float(lax_hold) / group.interval) * group.interval
                rule = _rebuilt(rule, expr=mistune_expr(rule.expr, float(lax_threshold)), for_=hold)
            kept.append(rule)
        groups.append(RuleGroup(name=group.name, interval=format_duration(group.interval),
                                rules=kept + noise.get(group.name, [])))
    return RuleFile(groups=groups).with_source(rules.source)


# ---- stale silences ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StaleSilence:
    """A silence someone created days before the episode (Unix seconds), to be put into a notifier."""

    matchers: tuple[Matcher, ...]
    starts: float
    ends: float
    created_by: str
    comment: str


# families of alerts that warn days ahead: (the warnings, the cause alerts the same silence mutes, comments)
SILENCEABLE = (
    (("CertificateExpiringSoon", "CertificateRenewalOverdue"), ("CertificateExpired",),
     ("renewal ticket OPS-{n}, ignore", "cert renewal tracked in OPS-{n}; muting until it lands",
      "known, cert-manager migration OPS-{n}")),
    (("ContainerFilesystemAlmostFull",), ("ContainerFilesystemFull",),
     ("log rotation fix in OPS-{n}, ignore", "disk alerts flapping since the volume resize, see OPS-{n}",
      "known, cleanup cron OPS-{n}")),
)
_SILENCERS = ("a.kowalski", "m.santos", "j.chen", "r.okafor", "s.lindqvist", "oncall-bot")
_DAY = 86400.0


def stale_silences(rules: RuleFile, coverage: Coverage, seed: int, world: int, start: float) -> list[StaleSilence]:
    """The silences of world `world` left from before the episode that starts at `start` (Unix seconds): for each
    family of `SILENCEABLE` the rules have, with chance `stale_silence`, one on the whole family (the warnings and
    their cause alert), created 2 to 14 days before and ending 1 to 4 weeks after the start. It is drawn from the
    monitoring alone, never from what is wrong in the world."""
    names = set(rules.alert_names)
    out = []
    for f, (warnings, causes, comments) in enumerate(SILENCEABLE):
        family = [a for a in (*warnings, *causes) if a in names]
        if not names & set(warnings):
            continue            # nothing in this rule set would have warned days ahead

        def u(what: int) -> float:
            return float(uniform(seed, world, COVERAGE, _SILENCES, f, what))

        if u(_SILENCED) >= coverage.stale_silence:
            continue
        created = start - (2.0 + 12.0 * u(_AGE)) * _DAY
        ends = start + (7.0 + 21.0 * u(_LENGTH)) * _DAY
        who = _SILENCERS[int(u(_WHO) * len(_SILENCERS))]
        comment = comments[int(u(_WHAT) * len(comments))].format(n=1000 + int(u(_TICKET) * 9000))
        out.append(StaleSilence((("alertname", "=~", "|".join(family)),), created, ends, who, comment))
    return out


def apply_silences(notifier: Notifier, silences: Sequence[StaleSilence], worlds: list[int] | None = None) -> list[str]:
    """Put silences into a notifier for `worlds` (None: every world); returns their ids."""
    return [notifier.silence(list(s.matchers), s.starts, s.ends, s.created_by, s.comment, worlds) for s in silences]
