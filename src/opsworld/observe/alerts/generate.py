"""Alerting rules generated from a scenario: the rule file an on-call team would write for the system it describes.

The built-in templates ship hand-written rule files (`rules/<template>.yaml`); any other scenario gets rules read off
the scenario itself: its entry endpoints' objectives, its components' limits, timeouts and baseline error rates, and
the parts it has (datastores, caches, queues, certificates, GPUs, several zones). They use only the metrics
`observe.metrics` emits for such a system, and follow the house style of the hand-written files: severity `page` for
what customers feel and what needs a human within minutes, `ticket` for the rest; `service` as the metrics carry it.

    rules = generate_rules(load_scenario("my-system.yaml"))
    rules_yaml(rules)               # the same rules as a Prometheus rule file (`promtool check rules` accepts it)
    rules_for_scenario(scenario)    # what `Telemetry` runs: the hand-written file of a template, else these

Error-budget alerts are the multiwindow, multi-burn-rate alerts that Sloth and Pyrra generate for a 30-day objective
(the SRE workbook's): page at 14.4x over 1h and 5m and at 6x over 6h and 30m, ticket at 3x over 1d and 2h and at 1x
over 3d and 6h. An episode shorter than those windows gets them scaled down (`burn_windows`).
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import yaml

from opsworld.engine.topology import CALL, CONSUME, KINDS, MISS, PUBLISH, Topology, topology_of
from opsworld.observe.alerts.rules import (AlertingRule, RuleFile, RuleGroup, format_duration, rules_for,
                                           templates)
from opsworld.observe.metrics import BUCKETS
from opsworld.observe.names import NAMESPACE
from opsworld.spec import Scenario

SLO_PERIOD = 30 * 86400.0       # the error budget's period, as Sloth's and Pyrra's defaults
INTERVAL = 30.0                 # seconds between evaluations of every group, as the hand-written files
NS = f'namespace="{NAMESPACE}"'
DEFAULT_LATENCY = 0.5           # p99 ticket threshold of a component no caller sets a timeout on
ERROR_RATIO = 0.05              # a service failing more than this of its requests opens a ticket
# matchers written once (an f-string's expressions cannot hold the backslashes their quotes would need)
FIVE_XX, FAILURE, USED, INTERNAL = 'code=~"5.."', 'outcome="failure"', 'state="used"', 'endpoint=""'
WRONG = 'result="wrong"'
OOM, BACKOFF, READY_POD = 'reason="OOMKilled"', 'reason="CrashLoopBackOff"', 'condition="true"'


@dataclass(frozen=True)
class Burn:
    """One multiwindow burn-rate alert of a 30-day objective: both windows burn `factor` times the budget."""

    alert: str
    severity: str
    factor: float
    long: float      # seconds
    short: float     # seconds; 1/12 of the long window in each of the four pairs


BURNS = (
    Burn("ErrorBudgetBurnFast", "page", 14.4, 3600.0, 300.0),
    Burn("ErrorBudgetBurnSustained", "page", 6.0, 6 * 3600.0, 1800.0),
    Burn("ErrorBudgetBurnElevated", "ticket", 3.0, 86400.0, 7200.0),
    Burn("ErrorBudgetBurnSlow", "ticket", 1.0, 3 * 86400.0, 6 * 3600.0),
)
PAGE_HORIZON = max(b.long for b in BURNS if b.severity == "page")   # 6h: the longest window a page reads


@dataclass(frozen=True)
class BurnWindows:
    """A burn alert's windows and `for` as one episode runs it (seconds)."""

    burn: Burn
    long: float
    short: float
    hold: float


def burn_windows(duration: float, tick: float = 10.0) -> list[BurnWindows]:
    """The burn alerts' windows for an episode of `duration` seconds scraped every `tick` seconds.

    An episode of 6h or more keeps the standard windows (tickets' windows longer than the episode are cut to it).
    A shorter one has every window multiplied by one factor, duration / 6h, so that the two pages keep their roles:
    the fast one still reacts within minutes on a short pair, the sustained one reads the whole episode. A ticket's
    window still longer than the episode is then cut to it, its short window cut alike (each pair keeps its 12:1
    ratio). Windows are whole minutes, short ones at least max(1m, 4 scrapes) so that `rate` has samples to read;
    `for` is half the short window in whole minutes (Pyrra's choice), at least one evaluation interval.
    """
    scale = min(1.0, duration / PAGE_HORIZON)
    floor = max(60.0, math.ceil(4.0 * tick / 60.0) * 60.0)
    out = []
    for burn in BURNS:
        long, short = burn.long * scale, burn.short * scale
        if long > duration:
            short, long = short * duration / long, duration
        short = max(_minutes(short), floor)
        long = max(_minutes(long), short)
        hold = max(INTERVAL, math.floor(short / 120.0) * 60.0)
        out.append(BurnWindows(burn, long, short, hold))
    return out


# ---- entry points ----------------------------------------------------------------------------------------------------
def rules_for_scenario(scenario: Scenario) -> RuleFile:
    """The rules a scenario runs under: its template's hand-written file, or rules generated from it."""
    if scenario.name in templates():
        return rules_for(scenario.name)
    return generate_rules(scenario)


def generate_rules(scenario: Scenario) -> RuleFile:
    """Alerting rules for a scenario, read off its endpoints' objectives, its components and its parts."""
    topo = topology_of(scenario)
    kinds = [KINDS[int(k)] for k in topo.kind]
    parts: list[tuple[str, list[AlertingRule]]] = [
        ("slo", _slo(scenario)),
        ("services", _services(topo)),
        ("kubernetes", _kubernetes(topo)),
        ("nodes", _nodes(topo)),
        ("datastores", _datastores(topo, kinds)),
        ("caches", _caches(topo, kinds)),
        ("queues", _queues(topo)),
        ("gpus", _gpus(topo)),
        ("certificates", _certificates(topo)),
    ]
    groups = [RuleGroup(name=name, interval=format_duration(INTERVAL if name != "certificates" else 60.0),
                        rules=rules) for name, rules in parts if rules]
    return RuleFile(groups=groups).with_source(f"generated/{scenario.name}.yaml")


def rules_yaml(rules: RuleFile) -> str:
    """A rule file as Prometheus YAML: durations written as Prometheus writes them, expressions as `|` blocks."""
    groups = []
    for group in rules.groups:
        entries = []
        for rule in group.rules:
            entry: dict[str, Any] = {"alert": rule.alert, "expr": rule.expr}
            if rule.for_:
                entry["for"] = format_duration(rule.for_)
            if rule.keep_firing_for is not None:
                entry["keep_firing_for"] = format_duration(rule.keep_firing_for)
            entry["labels"] = dict(rule.labels)
            entry["annotations"] = dict(rule.annotations)
            entries.append(entry)
        groups.append({"name": group.name, "interval": format_duration(group.interval), "rules": entries})
    return yaml.dump({"groups": groups}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


class _Dumper(yaml.SafeDumper):
    """Writes multi-line text as a `|` block, as rule files are written by hand."""


_Dumper.add_representer(str, lambda d, text: d.represent_scalar("tag:yaml.org,2002:str", text,
                                                                 style="|" if "\n" in text else None))


# ---- text helpers ----------------------------------------------------------------------------------------------------
def _minutes(seconds: float) -> float:
    return float(round(seconds / 60.0) * 60.0)


def _q(text: str) -> str:
    """A PromQL string literal (double-quoted, Go escapes)."""
    return json.dumps(text, ensure_ascii=False)


def _literal(text: str) -> str:
    """`text` as an RE2 pattern matching exactly it."""
    return "".join("\\" + ch if ch in "\\.+*?()|[]{}^$" else ch for ch in text)


def _match(label: str, values: Sequence[str], among: Sequence[str] = ()) -> str:
    """A matcher selecting exactly `values`. Given `among` (every value the label takes there), "" when they are
    all of it, and the complement when that is shorter (`endpoint!="POST /checkout"`)."""
    rest = [v for v in among if v not in values]
    if among and not rest:
        return ""
    negate = bool(among) and len(rest) < len(values)
    chosen = rest if negate else list(values)
    if len(chosen) == 1:
        return f"{label}{'!=' if negate else '='}{_q(chosen[0])}"
    return f"{label}{'!~' if negate else '=~'}{_q('|'.join(_literal(v) for v in chosen))}"


def _sel(*matchers: str) -> str:
    return "{" + ", ".join(m for m in matchers if m) + "}"


def _num(x: float) -> str:
    """A number as a person writes it in a rule (0.001, 14.4, 6, 0.5)."""
    return f"{round(float(x), 10):.10g}"


def _pct(fraction: float) -> str:
    return f"{_num(round(100.0 * fraction, 6))}%"


def _lab(name: str) -> str:
    return "{{ $labels." + name + " }}"


def _val(fn: str = "") -> str:
    return "{{ $value" + (f" | {fn}" if fn else "") + " }}"


def _block(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _paren(expr: str) -> str:
    return "(\n" + textwrap.indent(expr.rstrip("\n"), "  ") + "\n)"


def _rule(alert: str, expr: str, severity: str, summary: str, description: str, hold: float = 0.0,
          labels: Mapping[str, str] | None = None) -> AlertingRule:
    """One alerting rule, checked by the loader's model (the expression parses, the templates compile)."""
    data: dict[str, Any] = {"alert": alert, "expr": expr, "labels": {"severity": severity, **(labels or {})},
                            "annotations": {"summary": summary, "description": description}}
    if hold:
        data["for"] = format_duration(hold)
    return AlertingRule.model_validate(data)


def _grouped(items: Iterable[tuple[str, Any]]) -> list[tuple[Any, list[str]]]:
    """Names grouped by a value, in first-seen order: one rule per distinct threshold."""
    out: dict[Any, list[str]] = {}
    for name, value in items:
        out.setdefault(value, []).append(name)
    return list(out.items())


# ---- entry endpoints: error budgets and latency objectives -----------------------------------------------------------
def _slo(scenario: Scenario) -> list[AlertingRule]:
    rules: list[AlertingRule] = []
    windows = burn_windows(scenario.duration, scenario.tick)
    services: dict[str, list[Any]] = {}
    for ep in scenario.traffic.endpoints:
        services.setdefault(ep.service, []).append(ep)
    for service, eps in services.items():
        names = [ep.name for ep in eps]
        # endpoints of one service sharing an objective share its rules; the series keep them apart
        for availability, members in _grouped((ep.name, round(ep.slo.availability, 9)) for ep in eps):
            sel = [NS, _match("service", [service]), _match("endpoint", members, names)]
            rules += [_burn(w, sel, service, availability) for w in windows]
            rules.append(_wrong_answers(windows[0], sel, service, availability))
        for (latency, percentile), members in _grouped(
                (ep.name, (round(ep.slo.latency, 6), round(ep.slo.percentile, 9))) for ep in eps):
            sel = [NS, _match("service", [service]), _match("endpoint", members, names)]
            rules.append(_latency_objective(sel, service, latency, percentile))
    return rules


def _burn_expr(w: BurnWindows, series: str, bad: str, sel: list[str], availability: float) -> str:
    """Both windows of `w`: the share of `series` matching `bad` above `factor` times the objective's budget."""
    budget = round(1.0 - availability, 12)
    threshold = _num(budget) if w.burn.factor == 1 else f"({_num(w.burn.factor)} * {_num(budget)})"

    def ratio(window: float) -> str:
        span = format_duration(window)
        return _block(f"sum by (service, endpoint) (rate({series}{_sel(*sel, bad)}[{span}]))", "/",
                      f"sum by (service, endpoint) (rate({series}{_sel(*sel)}[{span}]))")

    return _block(f"{_paren(ratio(w.long))} > {threshold}", "and", f"{_paren(ratio(w.short))} > {threshold}")


def _burn(w: BurnWindows, sel: list[str], service: str, availability: float) -> AlertingRule:
    expr = _burn_expr(w, "http_server_requests_total", FIVE_XX, sel, availability)
    objective = _pct(availability)
    lasts = format_duration(SLO_PERIOD / w.burn.factor)
    long = format_duration(w.long)
    return _rule(
        w.burn.alert, expr, w.burn.severity,
        f"{_lab('endpoint')} failed {_val('humanizePercentage')} of requests over {long}, "
        f"{_num(w.burn.factor)}x its error budget",
        f"{_lab('endpoint')} on {_lab('service')} failed {_val('humanizePercentage')} of requests over the last "
        f"{long} and the last {format_duration(w.short)}, {_num(w.burn.factor)}x the rate its {objective} "
        f"availability objective allows: at this pace the 30-day error budget is gone in {lasts}.",
        w.hold, {"service": service, "slo": "availability", "objective": objective})


def _wrong_answers(w: BurnWindows, sel: list[str], service: str, availability: float) -> AlertingRule:
    """The correctness prober finding wrong answers as fast as the fast page allows failures: to its user a wrong
    answer is a failed request, though every counter of the services calls it a success."""
    expr = _burn_expr(w, "probe_checks_total", WRONG, sel, availability)
    objective = _pct(availability)
    long = format_duration(w.long)
    return _rule(
        "CorrectnessBudgetBurn", expr, "page",
        f"{_lab('endpoint')} answered {_val('humanizePercentage')} of the prober's checks wrong over {long}",
        f"{_lab('endpoint')} on {_lab('service')} answered {_val('humanizePercentage')} of the correctness prober's "
        f"checks with a success carrying the wrong content over the last {long} and the last "
        f"{format_duration(w.short)}, {_num(w.burn.factor)}x the rate its {objective} objective allows failures "
        "(its own request counters show them as successes).",
        w.hold, {"service": service, "slo": "correctness", "objective": objective})


def _latency_objective(sel: list[str], service: str, latency: float, percentile: float) -> AlertingRule:
    name = f"p{_num(round(100.0 * percentile, 6))}"
    limit = format_duration(latency)
    objective = f"{name} {limit}"
    labels = {"service": service, "slo": "latency", "objective": objective}
    largest = BUCKETS[-1]
    if latency < largest:
        expr = _block("histogram_quantile(",
                      f"  {_num(percentile)},",
                      f"  sum by (service, endpoint, le) (rate(http_server_request_duration_seconds_bucket"
                      f"{_sel(*sel)}[5m]))",
                      f") > {_num(latency)}")
        return _rule("LatencyObjectiveBreached", expr, "page",
                     f"{_lab('endpoint')} {name} latency is {_val('humanizeDuration')}, above its {limit} objective",
                     f"{name} latency of {_lab('endpoint')} on {_lab('service')} has been above its {limit} "
                     f"objective for 10 minutes ({_val('humanizeDuration')}).", 600.0, labels)
    # The quantile cannot be read beyond the largest finite bucket: count the requests slower than it instead, and
    # page when they are 3x what the objective allows past its threshold (exactly 1x when the threshold is that
    # bucket), a burn of the latency budget that the objective's own threshold must then be breaking.
    allowed = (1.0 - percentile) * (1.0 if latency == largest else 3.0)
    le = _q(repr(float(largest)))
    share = _block(
        f"sum by (service, endpoint) (rate(http_server_request_duration_seconds_bucket{_sel(*sel, 'le=' + le)}[5m]))",
        "/",
        f"sum by (service, endpoint) (rate(http_server_request_duration_seconds_count{_sel(*sel)}[5m]))")
    expr = _block(f"1 - {_paren(share)} > {_num(round(allowed, 9))}")
    return _rule("LatencyObjectiveBreached", expr, "page",
                 f"{_val('humanizePercentage')} of {_lab('endpoint')} requests are slower than "
                 f"{format_duration(largest)}",
                 f"{_val('humanizePercentage')} of successful {_lab('endpoint')} requests on {_lab('service')} took "
                 f"longer than {format_duration(largest)} over the last 5 minutes; the objective is {objective}.",
                 600.0, labels)


# ---- services: errors, latency, calls, connection pools --------------------------------------------------------------
def _services(topo: Topology) -> list[AlertingRule]:
    rules: list[AlertingRule] = []
    names = topo.components
    # a component that fails some requests by design gets a ticket only well above its usual level
    groups = _grouped((n, round(max(ERROR_RATIO, 2.0 * float(topo.error_rate[s])), 6)) for s, n in enumerate(names))
    for threshold, members in groups:
        which = _match("service", members, names)
        expr = _block(f"sum by (service) (rate(http_server_requests_total{_sel(NS, which, FIVE_XX)}[5m]))",
                      "/",
                      f"sum by (service) (rate(http_server_requests_total{_sel(NS, which)}[5m]))",
                      f"> {_num(threshold)}")
        rules.append(_rule("ServiceErrorRatioHigh", expr, "ticket",
                           f"{_lab('service')} is failing {_val('humanizePercentage')} of requests",
                           f"{_val('humanizePercentage')} of the requests {_lab('service')} served in the last "
                           f"5 minutes returned a 5xx status (its ticket threshold is {_pct(threshold)}).", 300.0,
                           {} if len(groups) == 1 else {"threshold": _pct(threshold)}))
    calls = np.isin(topo.edge_kind, (CALL, PUBLISH))
    if calls.any():
        expr = _block(f'sum by (service, target) (rate(http_client_requests_total{_sel(NS, FAILURE)}'
                      "[5m]))",
                      "/",
                      f"sum by (service, target) (rate(http_client_requests_total{_sel(NS)}[5m]))",
                      f"> {_num(ERROR_RATIO)}")
        rules.append(_rule("DownstreamCallsFailing", expr, "ticket",
                           f"{_lab('service')} calls to {_lab('target')} are failing ({_val('humanizePercentage')})",
                           f"{_val('humanizePercentage')} of the calls {_lab('service')} made to {_lab('target')} in "
                           "the last 5 minutes failed.", 300.0))
    # components without entry endpoints have a latency histogram of their own; their callers' tightest timeout is
    # the latency past which calls to them start to give up
    entry = set(np.unique(topo.endpoint_component).tolist())
    inner = [s for s in range(len(names)) if s not in entry]
    timed = np.isin(topo.edge_kind, (CALL, PUBLISH, MISS))

    def limit(s: int) -> float:
        timeouts = topo.edge_timeout[timed & (topo.edge_dst == s)]
        return round(float(timeouts.min()), 6) if timeouts.size else DEFAULT_LATENCY

    limits = _grouped((names[s], limit(s)) for s in inner)
    for threshold, members in limits:
        expr = _block("histogram_quantile(",
                      "  0.99,",
                      f"  sum by (service, le) (rate(http_server_request_duration_seconds_bucket"
                      f"{_sel(NS, _match('service', members), INTERNAL)}[5m]))",
                      f") > {_num(threshold)}")
        rules.append(_rule("ServiceLatencyHigh", expr, "ticket",
                           f"{_lab('service')} p99 latency is {_val('humanizeDuration')}",
                           f"p99 latency of requests served by {_lab('service')} has been above "
                           f"{format_duration(threshold)}, the tightest timeout its callers set, for 10 minutes "
                           f"({_val('humanizeDuration')}): more than 1% of their calls give up.", 600.0,
                           {} if len(limits) == 1 else {"threshold": format_duration(threshold)}))
    if (topo.edge_pool > 0).any():
        rules.append(_rule(
            "ConnectionPoolRequestsWaiting",
            _block(f"sum by (service, pool_name) (db_client_connections_pending_requests{_sel(NS)}) > 0"), "ticket",
            f"{_lab('service')} requests are waiting for {_lab('pool_name')} connections",
            f"On average {_val('humanize')} requests of {_lab('service')} have been waiting for a free connection in "
            f"its {_lab('pool_name')} pool for 5 minutes: the pool is exhausted.", 300.0))
        rules.append(_rule(
            "ConnectionPoolNearlyExhausted",
            _block(f"sum by (service, pool_name) (db_client_connections_usage{_sel(NS, USED)})",
                   "/",
                   f"sum by (service, pool_name) (db_client_connections_max{_sel(NS)})",
                   "> 0.9"), "ticket",
            f"{_lab('service')} uses {_val('humanizePercentage')} of its {_lab('pool_name')} pool",
            f"{_lab('service')} has had {_val('humanizePercentage')} of the connections of its {_lab('pool_name')} "
            "pool in use for 10 minutes.", 600.0))
    return rules


# ---- containers, pods and deployments --------------------------------------------------------------------------------
def _kubernetes(topo: Topology) -> list[AlertingRule]:
    rules: list[AlertingRule] = []
    by_container = {"service": _lab("container")}
    # CPU as a share of each container's limit: one term per distinct limit, as a person writes it
    terms = []
    for cores, members in _grouped((n, round(float(topo.cpu[s]), 6)) for s, n in enumerate(topo.components)):
        term = (f"sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total"
                f"{_sel(NS, _match('container', members))}[5m]))")
        terms.append(term if cores == 1 else f"{term} / {_num(cores)}")
    rules.append(_rule(
        "ContainerCPUNearLimit", _block(f"{_paren(chr(10).join(_or(terms)))} > 0.9"), "ticket",
        f"{_lab('pod')} is using {_val('humanizePercentage')} of its CPU limit",
        f"Container {_lab('container')} in {_lab('pod')} has used {_val('humanizePercentage')} of its CPU limit for "
        "10 minutes; expect throttling and slower responses.", 600.0, by_container))
    rules.append(_rule(
        "ContainerMemoryNearLimit",
        _block(f"container_memory_working_set_bytes{_sel(NS)}", "/",
               f"(container_spec_memory_limit_bytes{_sel(NS)} > 0)", "> 0.9"), "ticket",
        f"{_lab('pod')} is using {_val('humanizePercentage')} of its memory limit",
        f"Container {_lab('container')} in {_lab('pod')} has a working set at {_val('humanizePercentage')} of its "
        "memory limit; it will be OOM-killed if it keeps growing.", 300.0, by_container))
    rules.append(_rule(
        "ContainerOOMKilled",
        _block(f"kube_pod_container_status_last_terminated_reason{_sel(NS, OOM)} == 1",
               "and on (namespace, pod, container)",
               f"increase(kube_pod_container_status_restarts_total{_sel(NS)}[10m]) > 0"), "ticket",
        f"{_lab('pod')} was OOM-killed",
        f"Container {_lab('container')} in {_lab('pod')} was killed for running out of memory and restarted in the "
        "last 10 minutes.", 0.0, by_container))
    rules.append(_rule(
        "ContainerRestartBackOff",
        _block(f"max_over_time(kube_pod_container_status_waiting_reason"
               f"{_sel(NS, BACKOFF)}[5m]) >= 1"), "ticket",
        f"{_lab('pod')} keeps restarting and is in back-off",
        f"Container {_lab('container')} in {_lab('pod')} keeps exiting and Kubernetes has been backing off its "
        "restarts for 5 minutes.", 300.0, by_container))
    rules.append(_rule(
        "PodRestartingFrequently",
        _block(f"increase(kube_pod_container_status_restarts_total{_sel(NS)}[15m]) > 2"), "ticket",
        f"{_lab('pod')} restarted {_val('humanize')} times in 15 minutes",
        f"Container {_lab('container')} in {_lab('pod')} restarted {_val('humanize')} times in the last 15 minutes.",
        0.0, by_container))
    rules.append(_rule(
        "PodNotReady", _block(f"kube_pod_status_ready{_sel(NS, READY_POD)} == 0"), "ticket",
        f"{_lab('pod')} is not ready",
        f"Pod {_lab('pod')} has not been ready for 10 minutes; it receives no traffic.", 600.0, by_container))
    by_deployment = {"service": _lab("deployment")}
    rules.append(_rule(
        "DeploymentReplicasUnavailable",
        _block(f"kube_deployment_status_replicas_available{_sel(NS)}", "<",
               f"kube_deployment_spec_replicas{_sel(NS)}"), "ticket",
        f"{_lab('deployment')} has {_val()} available replicas, fewer than desired",
        f"Deployment {_lab('deployment')} has had only {_val()} available replicas, fewer than desired, for "
        "10 minutes.", 600.0, by_deployment))
    rules.append(_rule(
        "DeploymentUnavailable",
        _block(f"kube_deployment_status_replicas_available{_sel(NS)} == 0", "and",
               f"kube_deployment_spec_replicas{_sel(NS)} > 0"), "page",
        f"{_lab('deployment')} has no available replica",
        f"Deployment {_lab('deployment')} has had no available replica for 2 minutes: {_lab('deployment')} is down.",
        120.0, by_deployment))
    full = _block(f"container_fs_usage_bytes{_sel(NS)}", "/", f"(container_fs_limit_bytes{_sel(NS)} > 0)")
    rules.append(_rule(
        "ContainerFilesystemAlmostFull", full + "> 0.9\n", "ticket",
        f"{_lab('pod')} filesystem is {_val('humanizePercentage')} full",
        f"The filesystem of {_lab('container')} in {_lab('pod')} is {_val('humanizePercentage')} full.", 300.0,
        by_container))
    rules.append(_rule(
        "ContainerFilesystemFull", full + "> 0.97\n", "page",
        f"{_lab('pod')} filesystem is {_val('humanizePercentage')} full",
        f"The filesystem of {_lab('container')} in {_lab('pod')} is {_val('humanizePercentage')} full; writes will "
        "fail when it fills up.", 120.0, by_container))
    return rules


def _or(terms: list[str]) -> list[str]:
    out: list[str] = []
    for i, term in enumerate(terms):
        out += ([] if i == 0 else ["or"]) + [term]
    return out


# ---- nodes, zones and scrape targets ---------------------------------------------------------------------------------
def _nodes(topo: Topology) -> list[AlertingRule]:
    ready = 'condition="Ready", status="true"'
    rules = [_rule(
        "KubeNodeNotReady", _block(f"kube_node_status_condition{{{ready}}} == 0"), "ticket",
        f"Node {_lab('node')} is not ready",
        f"Node {_lab('node')} has been NotReady for 2 minutes; its pods are being evicted.", 120.0)]
    if len(topo.zones) > 1:
        # a zone whose every node is down: the system runs on the others' capacity alone
        for z, zone in enumerate(topo.zones):
            members = [n for i, n in enumerate(topo.nodes) if int(topo.node_zone[i]) == z]
            if not members:
                continue
            expr = _block(f"count(kube_node_status_condition{{{ready}, {_match('node', members)}}} == 0) "
                          f">= {len(members)}")
            rules.append(_rule(
                "ZoneNodesNotReady", expr, "ticket", f"All {_val()} nodes of zone {zone} are not ready",
                f"All {len(members)} nodes of zone {zone} have been NotReady for 2 minutes; the other zones carry "
                "the whole load.", 120.0, {"zone": zone}))
    rules.append(_rule(
        "NodeCPUSaturated",
        _block("1 - (", '  sum by (node) (rate(node_cpu_seconds_total{mode="idle"}[5m]))', "  /",
               "  sum by (node) (rate(node_cpu_seconds_total[5m]))", ") > 0.9"), "ticket",
        f"Node {_lab('node')} CPU is {_val('humanizePercentage')} busy",
        f"Node {_lab('node')} has had {_val('humanizePercentage')} of its CPU busy for 10 minutes.", 600.0))
    rules.append(_rule(
        "NodeCPUStealHigh",
        _block('sum by (node) (rate(node_cpu_seconds_total{mode="steal"}[5m]))', "/",
               "sum by (node) (rate(node_cpu_seconds_total[5m]))", "> 0.1"), "ticket",
        f"Node {_lab('node')} loses {_val('humanizePercentage')} of its CPU to steal",
        f"The hypervisor has taken {_val('humanizePercentage')} of node {_lab('node')}'s CPU time for 10 minutes.",
        600.0))
    rules.append(_rule(
        "NodeMemoryLow", _block("node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.1"), "ticket",
        f"Node {_lab('node')} has {_val('humanizePercentage')} memory available",
        f"Node {_lab('node')} has had less than 10% of its memory available for 5 minutes.", 300.0))
    rules.append(_rule(
        "TargetDown", _block("up == 0"), "ticket", f"{_lab('job')} target {_lab('instance')} is down",
        f"Prometheus has failed to scrape {_lab('instance')} (job {_lab('job')}) for 2 minutes; its metrics are "
        "missing.", 120.0))
    rules += _front_door(topo)
    return rules


def _front_door(topo: Topology) -> list[AlertingRule]:
    """A page when every target of a service users call directly is down or gone. Its own request metrics vanish
    with it (a deployment scaled to nothing, routes withdrawn), so no error-budget rule can see that outage; the
    scrape targets can. `absent` covers the pods that no longer exist, `== 0` those that cannot be reached."""
    entry = [topo.components[int(s)] for s in np.unique(topo.endpoint_component)]
    if not entry:
        return []
    which = _match("job", entry)
    gone = [f"absent(up{{job={_q(n)}}})" for n in entry]
    expr = _block(f"sum by (job) (up{{{which}}}) == 0", *(line for g in gone for line in ("or", g)))
    return [_rule(
        "FrontDoorDown", expr, "page", f"{_lab('job')}, which users call directly, has no target up",
        f"Every scrape target of {_lab('job')} has been down or gone for 2 minutes: the service users reach first "
        "cannot be scraped or has no replica left.", 120.0, {"service": _lab("job")})]


# ---- the parts only some systems have --------------------------------------------------------------------------------
def _datastores(topo: Topology, kinds: list[str]) -> list[AlertingRule]:
    stores = [n for n, k in zip(topo.components, kinds) if k == "datastore"]
    if not stores:
        return []
    return [
        _rule("DatastoreConnectionsNearLimit", _block("pg_stat_activity_count / pg_settings_max_connections > 0.8"),
              "ticket", f"{_lab('service')} uses {_val('humanizePercentage')} of its connections",
              f"{_lab('service')} has had {_val('humanizePercentage')} of its max_connections open for 5 minutes.",
              300.0),
        _rule("DatastoreReplicaStale", _block("pg_replication_lag_seconds > 30"), "ticket",
              f"{_lab('service')} replica is {_val('humanizeDuration')} behind",
              f"The replica of {_lab('service')} has been more than 30s behind the primary for 5 minutes "
              f"({_val('humanizeDuration')}); reads from it are stale.", 300.0),
        # a share of the queries rather than a count: the threshold then fits a quiet store and a busy one
        _rule("DatastoreSlowQueries",
              _block("sum by (service) (rate(pg_slow_queries_total[5m]))", "/",
                     f"sum by (service) (rate(http_server_requests_total{_sel(NS, _match('service', stores))}[5m]))",
                     "> 0.01"), "ticket",
              f"{_val('humanizePercentage')} of {_lab('service')} queries are slower than 1s",
              f"{_val('humanizePercentage')} of the queries {_lab('service')} ran in the last 5 minutes took more "
              "than 1s, for 10 minutes.", 600.0),
    ]


def _caches(topo: Topology, kinds: list[str]) -> list[AlertingRule]:
    rules = []

    def floor(s: int) -> float:
        # misses doubled, its datastore taking twice the planned load (hits halved, for a cache that misses a
        # third of the time or more)
        planned = float(topo.hit_ratio[s])
        return round(planned - min(1.0 - planned, planned / 2.0), 6)

    caches = [(n, floor(s)) for s, (n, k) in enumerate(zip(topo.components, kinds)) if k == "cache"]
    floors = _grouped(caches)
    for threshold, members in floors:
        which = _sel(_match("service", members))
        hits = f"sum by (service) (rate(redis_keyspace_hits_total{which}[5m]))"
        misses = f"sum by (service) (rate(redis_keyspace_misses_total{which}[5m]))"
        rules.append(_rule(
            "CacheHitRatioLow", _block(hits, "/", _paren(_block(hits, "+", misses)) + f" < {_num(threshold)}"),
            "ticket", f"{_lab('service')} hit ratio dropped to {_val('humanizePercentage')}",
            f"{_lab('service')} has answered only {_val('humanizePercentage')} of lookups from cache for 10 minutes "
            f"(below {_pct(threshold)}); the datastore behind it takes the misses.", 600.0,
            {} if len(floors) == 1 else {"threshold": _pct(threshold)}))
    return rules


LAG_TICKET, LAG_PAGE = 300.0, 900.0    # seconds of the topic's publishes waiting: a ticket, then a page
NEARLY_FULL = 0.8                      # share of a queue's capacity waiting that pages: publishes fail when full


def _queues(topo: Topology) -> list[AlertingRule]:
    rules: list[AlertingRule] = []
    consume = np.flatnonzero(topo.edge_kind == CONSUME)
    for q in sorted({int(topo.edge_src[e]) for e in consume}):
        topic = topo.components[q]
        on_topic = _sel(_match("topic", [topic]))
        lag = f"sum by (topic, consumergroup) (kafka_consumergroup_lag{on_topic})"
        # how far behind in time, which means the same on a quiet topic and a busy one: the backlog over the rate
        # messages arrive (at least 0.1/s, so that a topic nobody publishes to does not divide by zero)
        published = (f"clamp_min(sum(rate(http_client_requests_total{_sel(NS, _match('target', [topic]))}[10m])), "
                     "0.1)")
        behind = _paren(_block(lag, "/ on () group_left", published))
        labels = {"service": _lab("consumergroup"), "topic": topic}
        for alert, seconds, severity, hold in (("ConsumerLagHigh", LAG_TICKET, "ticket", 600.0),
                                               ("ConsumerLagCritical", LAG_PAGE, "page", 300.0)):
            rules.append(_rule(
                alert, _block(f"{behind} > {_num(seconds)}"), severity,
                f"{_lab('consumergroup')} is {_val('humanizeDuration')} behind on {_lab('topic')}",
                f"Consumer group {_lab('consumergroup')} has had more than {format_duration(seconds)} of "
                f"{_lab('topic')}'s messages waiting for {format_duration(hold)} ({_val('humanizeDuration')} at the "
                "rate they arrive); what it produces is late.", hold, labels))
        rules.append(_rule(
            "ConsumerLagGrowing",
            _block(f"{lag} > 100", "and",
                   f"sum by (topic, consumergroup) (delta(kafka_consumergroup_lag{on_topic}[10m])) > 0"), "ticket",
            f"{_lab('consumergroup')} is falling behind on {_lab('topic')}",
            f"The backlog of {_lab('consumergroup')} on {_lab('topic')} has kept growing for 15 minutes "
            f"({_val('humanize')} messages); the consumer is slower than the producers.", 900.0, labels))
        capacity = float(topo.queue_capacity[q])
        full = _num(NEARLY_FULL * capacity)
        rules.append(_rule(
            "QueueNearlyFull", _block(f"sum by (topic) (kafka_consumergroup_lag{on_topic}) > {full}"), "page",
            f"{_lab('topic')} holds {_val('humanize')} messages, near its capacity",
            f"{_lab('topic')} has held more than {_pct(NEARLY_FULL)} of its {_num(capacity)}-message capacity for "
            f"2 minutes ({_val('humanize')} messages); publishes are refused once it is full.", 120.0,
            {"service": topic, "topic": topic}))
    return rules


def _gpus(topo: Topology) -> list[AlertingRule]:
    if not (topo.gpu_count > 0).any():
        return []
    by_container = {"service": _lab("container")}
    # XIDs that need a GPU reset or a node drain (NVIDIA's XID catalogue)
    fatal = " or ".join(f"DCGM_FI_DEV_XID_ERRORS == {x}" for x in (48, 63, 64, 74, 79, 92, 94, 95))
    return [
        _rule("GPUXidEvent", _block("DCGM_FI_DEV_XID_ERRORS > 0"), "ticket",
              f"GPU {_lab('gpu')} on {_lab('Hostname')} reported XID {_val()}",
              f"GPU {_lab('gpu')} ({_lab('UUID')}) on {_lab('Hostname')}, used by {_lab('pod')}, reported XID error "
              f"{_val()}.", 0.0, by_container),
        _rule("GPUFatalXidError", _block(fatal), "page",
              f"GPU {_lab('gpu')} on {_lab('Hostname')} needs draining (XID {_val()})",
              f"GPU {_lab('gpu')} ({_lab('UUID')}) on {_lab('Hostname')} reported XID {_val()}, which needs a GPU "
              f"reset or node drain; {_lab('pod')} cannot use it reliably.", 0.0, by_container),
        _rule("GPUMemoryNearlyFull", _block("DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > 0.95"),
              "ticket", f"GPU {_lab('gpu')} of {_lab('pod')} memory is {_val('humanizePercentage')} used",
              f"GPU {_lab('gpu')} on {_lab('Hostname')} ({_lab('pod')}) has had {_val('humanizePercentage')} of its "
              "framebuffer in use for 10 minutes.", 600.0, by_container),
        _rule("GPUTemperatureHigh", _block("DCGM_FI_DEV_GPU_TEMP > 85"), "ticket",
              f"GPU {_lab('gpu')} on {_lab('Hostname')} is at {_val()}C",
              f"GPU {_lab('gpu')} on {_lab('Hostname')} has been above 85C for 5 minutes and may throttle.", 300.0,
              by_container),
        _rule("GPUSaturated", _block("avg by (container) (DCGM_FI_DEV_GPU_UTIL) > 95"), "ticket",
              f"{_lab('container')} GPUs are {_val()}% busy",
              f"The GPUs of {_lab('container')} have averaged {_val()}% utilisation for 15 minutes.", 900.0,
              by_container),
    ]


def _certificates(topo: Topology) -> list[AlertingRule]:
    if not topo.certificates:
        return []
    expiry = "probe_ssl_earliest_cert_expiry"
    return [
        _rule("CertificateExpiringSoon",
              _block(f"{expiry} - time() < 14 * 86400", "and", f"{expiry} - time() > 2 * 86400"), "ticket",
              f"Certificate of {_lab('instance')} expires in {_val('humanizeDuration')}",
              f"The TLS certificate served by {_lab('service')} at {_lab('instance')} expires in "
              f"{_val('humanizeDuration')}; renew it.", 300.0),
        _rule("CertificateRenewalOverdue",
              _block(f"{expiry} - time() <= 2 * 86400", "and", f"{expiry} - time() > 0"), "page",
              f"Certificate of {_lab('instance')} expires in {_val('humanizeDuration')}",
              f"The TLS certificate served by {_lab('service')} at {_lab('instance')} expires in "
              f"{_val('humanizeDuration')}; clients will refuse it after that.", 300.0),
        _rule("CertificateExpired", _block(f"time() - {expiry} >= 0"), "page",
              f"Certificate of {_lab('instance')} has expired",
              f"The TLS certificate served by {_lab('service')} at {_lab('instance')} expired "
              f"{_val('humanizeDuration')} ago; clients refuse the connection."),
        _rule("BlackboxProbeFailed", _block("probe_success == 0"), "ticket",
              f"Probe of {_lab('instance')} is failing",
              f"The blackbox probe of {_lab('service')} at {_lab('instance')} has failed for 2 minutes.", 120.0),
    ]
