"""Prometheus' rule manager for a batch of worlds: alerting rules evaluated on the metric store, with alert state.

An alert *instance* is one rule and one output label set. Label sets come from the query result, whose labels every
world shares, so instances are shared too and only their state differs per world: the state arrays are [B, A]
(worlds, instances) and every transition is numpy over worlds. The state machine is Prometheus' (rules/alerting.go):
a new result sample makes the instance *pending* (`active_at` = now); still present after `for` it is *firing*
(`fired_at`); once absent a pending instance is dropped and a firing one becomes *resolved* (`resolved_at`), kept
15 minutes so that the notifier can send the resolution, unless `keep_firing_for` holds it firing a while longer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from opsworld.observe.alerts.rules import AlertingRule, RuleFile
from opsworld.observe.alerts.templating import Template, TemplateError
from opsworld.observe.alerts.wire import ZERO_TIME, fingerprint, go_exp_float, rfc3339
from opsworld.observe.promql import PromQLError, Scalar, Vector, instant_query, parse
from opsworld.observe.store import MetricStore

INACTIVE, PENDING, FIRING, RESOLVED = 0, 1, 2, 3
RESOLVED_RETENTION = 15 * 60.0   # Prometheus keeps resolved alerts this long to resend the resolution
_EPS = 1e-6                      # seconds: scrape times are whole milliseconds, float sums are not


@dataclass(frozen=True)
class Alert:
    """One alert instance as one world sees it."""

    name: str
    labels: dict[str, str]           # rule labels over the series labels, `alertname` added
    annotations: dict[str, str]      # templated with this world's value
    state: Literal["pending", "firing", "resolved"]
    active_at: float                 # Unix seconds the condition started holding
    value: float                     # the expression's value at the last evaluation
    fingerprint: str                 # Prometheus' label fingerprint: how Alertmanager names the alert
    fired_at: float | None = None
    resolved_at: float | None = None
    keep_firing_since: float | None = None


@dataclass(eq=False)
class Instance:
    """One output label set of one rule, shared by every world."""

    rule: int                        # index into RuleEvaluator.rules
    labels: dict[str, str]           # the alert's labels: alertname, rule labels, series labels (no __name__)
    sample_labels: dict[str, str]    # the query result's labels, what `$labels` reads in templates
    fingerprint: str


@dataclass(eq=False)
class _Rule:
    """A rule with its compiled templates and its evaluation record."""

    group: int
    spec: AlertingRule
    expr: Any                                    # the parsed PromQL expression
    label_templates: dict[str, Template]
    annotation_templates: dict[str, Template]
    ids: list[int] = field(default_factory=list)  # its instances, in discovery order
    local: dict[int, int] = field(default_factory=dict)   # instance -> its position in `ids`
    by_key: dict[tuple[tuple[str, str], ...], int] = field(default_factory=dict)   # alert labels -> instance
    by_sample: dict[tuple[tuple[str, str], ...], int] = field(default_factory=dict)  # series labels -> instance
    health: str = "unknown"
    last_error: str = ""
    last_evaluation: float | None = None
    evaluation_time: float = 0.0


class RuleEvaluator:
    """Evaluates a rule file's alerting rules on a MetricStore for all of its worlds at once.

    Call `evaluate(at)` every tick; each group runs when its interval is due. `instances` only grows (a label set
    once seen keeps its column), so column `a` of `firing()` means the same alert for the whole episode.
    """

    def __init__(self, rules: RuleFile, store: MetricStore, external_labels: dict[str, str] | None = None,
                 external_url: str = "") -> None:
        self.rule_file = rules
        self.store = store
        self.worlds = store.worlds
        self.external_labels = dict(external_labels or {})
        self.external_url = external_url
        self.rules: list[_Rule] = []
        for g, group in enumerate(rules.groups):
            for spec in group.rules:
                self.rules.append(_Rule(g, spec, parse(spec.expr), spec.label_templates(),
                                        spec.annotation_templates()))
        self.instances: list[Instance] = []
        n = len(rules.groups)
        self._first_due = np.full(n, np.nan)      # when each group first ran: its schedule's origin
        self._next_due = np.full(n, -np.inf)
        self._group_last = np.full(n, np.nan)
        self._group_time = np.zeros(n)
        self._cap = 0
        B = self.worlds
        self._state = np.zeros((B, 0), dtype=np.int8)
        self._active_at = np.zeros((B, 0))
        self._fired_at = np.zeros((B, 0))
        self._resolved_at = np.zeros((B, 0))
        self._keep_since = np.zeros((B, 0))
        self._value = np.zeros((B, 0))
        self.last_evaluation: float | None = None

    # ---- state arrays ----------------------------------------------------------------------------------------------
    @property
    def state(self) -> np.ndarray:
        """[B, A] int8: INACTIVE, PENDING, FIRING or RESOLVED."""
        return self._state[:, :len(self.instances)]

    @property
    def active_at(self) -> np.ndarray:
        """[B, A] Unix seconds the instance became pending (NaN when inactive)."""
        return self._active_at[:, :len(self.instances)]

    @property
    def fired_at(self) -> np.ndarray:
        """[B, A] Unix seconds the instance started firing (NaN if it has not)."""
        return self._fired_at[:, :len(self.instances)]

    @property
    def resolved_at(self) -> np.ndarray:
        """[B, A] Unix seconds a firing instance resolved (NaN unless resolved)."""
        return self._resolved_at[:, :len(self.instances)]

    @property
    def value(self) -> np.ndarray:
        """[B, A] the expression's value at the instance's last evaluation with a sample."""
        return self._value[:, :len(self.instances)]

    def firing(self) -> np.ndarray:
        """[B, A] bool: which instances fire in which world (columns follow `self.instances`)."""
        return self.state == FIRING

    def pending(self) -> np.ndarray:
        """[B, A] bool: instances whose condition holds but whose `for` has not elapsed."""
        return self.state == PENDING

    def firing_by_rule(self) -> np.ndarray:
        """[B, R] bool: whether any instance of each rule fires; a fixed-size summary (rules never change)."""
        out = np.zeros((self.worlds, len(self.rules)), dtype=bool)
        firing = self.firing()
        for r, rule in enumerate(self.rules):
            if rule.ids:
                out[:, r] = firing[:, rule.ids].any(axis=1)
        return out

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = max(need, 2 * self._cap, 16)
        B, old = self.worlds, self._cap

        def grown(arr: np.ndarray, fill: float) -> np.ndarray:
            out = np.full((B, cap), fill, dtype=arr.dtype)
            out[:, :old] = arr[:, :old]
            return out

        self._state = grown(self._state, INACTIVE)
        self._active_at, self._fired_at = grown(self._active_at, np.nan), grown(self._fired_at, np.nan)
        self._resolved_at, self._keep_since = grown(self._resolved_at, np.nan), grown(self._keep_since, np.nan)
        self._value = grown(self._value, np.nan)
        self._cap = cap

    # ---- evaluation ------------------------------------------------------------------------------------------------
    def evaluate(self, at: float) -> None:
        """Run every group whose interval is due at `at` (Unix seconds); call it every tick, after the scrape.

        Groups keep the schedule of their first run (first + k * interval), as Prometheus' groups do, so a tick
        that does not divide the interval does not make the evaluations drift.
        """
        self.last_evaluation = at
        for g, group in enumerate(self.rule_file.groups):
            if at + _EPS < self._next_due[g]:
                continue
            if np.isnan(self._first_due[g]):
                self._first_due[g] = at
            steps = math.floor((at - self._first_due[g]) / group.interval + _EPS) + 1
            self._next_due[g] = self._first_due[g] + steps * group.interval
            started = time.perf_counter()
            for r, rule in enumerate(self.rules):
                if rule.group == g:
                    self._evaluate_rule(r, rule, at)
            self._group_last[g] = at
            self._group_time[g] = time.perf_counter() - started

    def _evaluate_rule(self, r: int, rule: _Rule, at: float) -> None:
        started = time.perf_counter()
        rule.last_evaluation = at
        try:
            labels, values, present = self._query(rule, at)
            cols = np.array([self._instance_for(r, rule, lab) for lab in labels], dtype=np.int64)
            local_present, local_values = self._gather(rule, cols, values, present)
        except PromQLError as exc:
            # Prometheus keeps the alerts as they were and reports the rule unhealthy
            rule.health, rule.last_error = "err", " ".join(str(exc).split())
            rule.evaluation_time = time.perf_counter() - started
            return
        self._transition(rule, at, local_present, local_values)
        rule.health, rule.last_error = "ok", ""
        rule.evaluation_time = time.perf_counter() - started

    def _query(self, rule: _Rule, at: float) -> tuple[list[dict[str, str]], np.ndarray, np.ndarray]:
        result = instant_query(rule.expr, self.store, at)
        if isinstance(result, Vector):
            values = np.asarray(result.values, dtype=np.float64).reshape(self.worlds, len(result.labels))
            present = np.asarray(result.present, dtype=bool).reshape(values.shape)
            return result.labels, values, present
        if isinstance(result, Scalar):
            # as Prometheus' rule query function does: a scalar is one sample without labels
            values = np.asarray(result.values, dtype=np.float64).reshape(self.worlds, 1)
            return [{}], values, np.ones_like(values, dtype=bool)
        raise PromQLError(f"rule result is not a vector or scalar (got {type(result).__name__})")

    def _instance_for(self, r: int, rule: _Rule, sample: dict[str, str]) -> int:
        skey = tuple(sorted(sample.items()))
        found = rule.by_sample.get(skey)
        if found is not None:
            return found
        labels = {k: v for k, v in sample.items() if k != "__name__"}
        for name, template in rule.label_templates.items():
            labels[name] = self._expand(template, sample, math.nan)
        labels = {k: v for k, v in labels.items() if v != ""}     # an empty label is no label, as in Prometheus
        labels["alertname"] = rule.spec.alert
        key = tuple(sorted(labels.items()))
        idx = rule.by_key.get(key)
        if idx is None:
            idx = len(self.instances)
            self._grow(idx + 1)
            self.instances.append(Instance(r, labels, dict(sample), fingerprint(labels)))
            rule.local[idx] = len(rule.ids)
            rule.ids.append(idx)
            rule.by_key[key] = idx
        rule.by_sample[skey] = idx
        return idx

    def _gather(self, rule: _Rule, cols: np.ndarray, values: np.ndarray,
                present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The result as [B, len(rule.ids)] arrays in the rule's instance order."""
        B, n = self.worlds, len(rule.ids)
        local = np.array([rule.local[int(c)] for c in cols], dtype=np.int64)
        count = np.zeros((B, n), dtype=np.int64)
        if local.size:
            np.add.at(count.T, local, present.T.astype(np.int64))
        if (count > 1).any():
            raise PromQLError("vector contains metrics with the same labelset after applying alert labels")
        out_present = count == 1
        out_values = np.full((B, n), np.nan)
        if local.size:
            # at most one present column per instance, so the present ones can be written in any order
            b, j = np.nonzero(present)
            out_values[b, local[j]] = values[b, j]
        return out_present, out_values

    def _transition(self, rule: _Rule, at: float, present: np.ndarray, values: np.ndarray) -> None:
        """Prometheus' alert state machine for one rule's instances, vectorised over [B, n]."""
        ids = np.array(rule.ids, dtype=np.int64)
        if not ids.size:
            return
        hold, keep_for = rule.spec.for_, rule.spec.keep_firing_for or 0.0
        st, act = self._state[:, ids], self._active_at[:, ids]
        fired, resolved, keep, val = (self._fired_at[:, ids], self._resolved_at[:, ids], self._keep_since[:, ids],
                                      self._value[:, ids])
        # a sample for an inactive or resolved instance starts a new alert
        new = present & ((st == INACTIVE) | (st == RESOLVED))
        st[new], act[new] = PENDING, at
        fired[new], resolved[new], keep[new] = np.nan, np.nan, np.nan
        val[present] = values[present]
        # held for `for`: pending -> firing
        due = present & (st == PENDING) & (at - act + _EPS >= hold)
        st[due], fired[due] = FIRING, at
        keep[present & (st == FIRING)] = np.nan
        # absent: pending alerts are dropped, firing ones resolve (after keep_firing_for, if set)
        absent = ~present
        dropped = absent & (st == PENDING)
        st[dropped], act[dropped] = INACTIVE, np.nan
        ending = absent & (st == FIRING)
        if keep_for > 0:
            keep[ending & np.isnan(keep)] = at
            ending &= ~(at - keep + _EPS < keep_for)
        st[ending], resolved[ending], keep[ending] = RESOLVED, at, np.nan
        forgotten = (st == RESOLVED) & (at - resolved + _EPS >= RESOLVED_RETENTION)
        st[forgotten] = INACTIVE
        act[forgotten], fired[forgotten], resolved[forgotten] = np.nan, np.nan, np.nan
        self._state[:, ids], self._active_at[:, ids], self._fired_at[:, ids] = st, act, fired
        self._resolved_at[:, ids], self._keep_since[:, ids], self._value[:, ids] = resolved, keep, val

    def _expand(self, template: Template, labels: dict[str, str], value: float) -> str:
        """A template filled in; a failure (e.g. humanize of a label that is not a number) shows in the text, as
        Prometheus shows it, rather than failing the evaluation."""
        try:
            return template.render(labels, value, self.external_labels, self.external_url)
        except TemplateError as exc:
            return f"<error expanding template: {exc}>"

    # ---- views -----------------------------------------------------------------------------------------------------
    def annotations(self, a: int, world: int) -> dict[str, str]:
        """Instance `a`'s annotations templated with world `world`'s last value (whatever its state)."""
        inst = self.instances[a]
        value = float(self._value[world, a])
        return {k: self._expand(t, inst.sample_labels, value)
                for k, t in self.rules[inst.rule].annotation_templates.items()}

    def alert(self, a: int, world: int) -> Alert:
        """Instance `a` as world `world` sees it (any state but inactive), with its annotations templated."""
        inst = self.instances[a]
        rule = self.rules[inst.rule]
        code = int(self._state[world, a])
        if code == INACTIVE:
            raise ValueError(f"alert {inst.labels['alertname']} {inst.fingerprint} is inactive in world {world}")
        value = float(self._value[world, a])
        annotations = self.annotations(a, world)
        state: Literal["pending", "firing", "resolved"] = (
            "pending" if code == PENDING else "firing" if code == FIRING else "resolved")
        return Alert(rule.spec.alert, dict(inst.labels), annotations, state, float(self._active_at[world, a]), value,
                     inst.fingerprint, _opt(self._fired_at[world, a]), _opt(self._resolved_at[world, a]),
                     _opt(self._keep_since[world, a]))

    def alerts(self, world: int) -> list[Alert]:
        """The pending and firing alerts of one world (what `/api/v1/alerts` lists)."""
        self._check_world(world)
        codes = self.state[world]
        return [self.alert(int(a), world) for a in np.flatnonzero((codes == PENDING) | (codes == FIRING))]

    def alerts_json(self, world: int) -> dict[str, Any]:
        """`GET /api/v1/alerts` for one world."""
        return {"status": "success", "data": {"alerts": [_alert_json(a) for a in self.alerts(world)]}}

    def rules_json(self, world: int) -> dict[str, Any]:
        """`GET /api/v1/rules` for one world: groups, their rules with health and state, and the rules' alerts."""
        self._check_world(world)
        codes = self.state[world]
        groups = []
        for g, group in enumerate(self.rule_file.groups):
            rules = []
            for rule in (x for x in self.rules if x.group == g):
                ids = np.array(rule.ids, dtype=np.int64)
                mine = ids[(codes[ids] == PENDING) | (codes[ids] == FIRING)] if ids.size else ids
                alerts = [_alert_json(self.alert(int(a), world)) for a in mine]
                state = ("firing" if any(codes[a] == FIRING for a in mine)
                         else "pending" if mine.size else "inactive")
                spec = rule.spec
                rules.append({
                    "state": state, "name": spec.alert, "query": spec.expr.strip(), "duration": spec.for_,
                    "keepFiringFor": spec.keep_firing_for or 0, "labels": dict(spec.labels),
                    "annotations": dict(spec.annotations), "alerts": alerts, "health": rule.health,
                    **({"lastError": rule.last_error} if rule.last_error else {}),
                    "evaluationTime": rule.evaluation_time, "lastEvaluation": rfc3339(rule.last_evaluation),
                    "type": "alerting",
                })
            last = self._group_last[g]
            groups.append({"name": group.name, "file": self.rule_file.source, "rules": rules,
                           "interval": group.interval, "limit": 0, "evaluationTime": float(self._group_time[g]),
                           "lastEvaluation": ZERO_TIME if np.isnan(last) else rfc3339(float(last))})
        return {"status": "success", "data": {"groups": groups}}

    def _check_world(self, world: int) -> None:
        if not 0 <= world < self.worlds:
            raise IndexError(f"world {world} is out of range: this batch has worlds 0..{self.worlds - 1}")


def _opt(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def _alert_json(alert: Alert) -> dict[str, Any]:
    out: dict[str, Any] = {"labels": alert.labels, "annotations": alert.annotations,
                           "state": "firing" if alert.state == "firing" else alert.state,
                           "activeAt": rfc3339(alert.active_at), "value": go_exp_float(alert.value)}
    if alert.keep_firing_since is not None:
        out["keepFiringSince"] = rfc3339(alert.keep_firing_since)
    return out
