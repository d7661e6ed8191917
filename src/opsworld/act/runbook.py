"""The runbook: every action an on-call responder can take, with its parameters and the time it costs them.

Four kinds, as in a real runbook: *investigate* (read the dashboards, logs, traces, change history), *mitigate* (the
mitigations in `MITIGATIONS`, whose effects the engine carries out after they land), *coordinate* (page a human,
silence or acknowledge an alert, wait) and *finish* (submit a diagnosis). `cost` is the responder's own time: the
world moves on while they type and read. A call is checked here, against the scenario, before anything happens;
a bad one raises `ActionError` with one line saying what was wrong.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from opsworld.act.mitigations import MITIGATIONS
from opsworld.spec import Scenario, units

Kind = Literal["investigate", "mitigate", "coordinate", "finish"]

# What a parameter names, and its JSON-schema type. Place types are checked against the scenario.
PLACES = ("component", "service", "datastore", "cache", "node", "zone", "endpoint", "edge", "certificate",
          "component_or_endpoint", "edge_or_component", "team")
SCALARS = {"promql": "string", "text": "string", "duration": "string", "number": "number", "integer": "integer",
           "matcher": "string", "alert": "string", "fault_class": "string", "components": "array", "chain": "array"}


class ActionError(ValueError):
    """A call the runbook cannot run: unknown action, unknown target, a missing or mistyped argument."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str                  # a PLACES or SCALARS key
    description: str
    required: bool = True


@dataclass(frozen=True)
class Action:
    """One runbook entry. `cost` is seconds of the responder's time; mitigations then take `MITIGATIONS[name].takes`
    more to land (and rollouts their own time after that)."""

    name: str
    kind: Kind
    summary: str
    params: tuple[Param, ...] = ()
    cost: float = 30.0

    def schema(self) -> dict[str, Any]:
        """JSON schema of the parameters, as tool-calling APIs want it."""
        props: dict[str, Any] = {}
        for p in self.params:
            kind = "string" if p.type in PLACES else SCALARS[p.type]
            prop: dict[str, Any] = {"type": kind, "description": p.description}
            if kind == "array":
                prop["items"] = {"type": "string"}
            props[p.name] = prop
        return {"type": "object", "properties": props, "required": [p.name for p in self.params if p.required],
                "additionalProperties": False}


@dataclass(frozen=True)
class Call:
    """A checked call: the action and its arguments, normalised (durations in seconds, edges as (caller, callee))."""

    action: Action
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.action.name


def _p(name: str, type_: str, description: str, required: bool = True) -> Param:
    return Param(name, type_, description, required)


_RANGE = _p("range", "duration", "how far back to look, e.g. '15m' (default 15m)", False)
_TARGETS = {  # the parameter each mitigation's target is, by the kind of place it acts on
    "component": ("service", "the service"), "datastore": ("store", "the datastore"), "cache": ("cache", "the cache"),
    "node": ("node", "the node"), "zone": ("zone", "the zone"), "certificate": ("component",
                                                                                   "the certificate or the component serving it"),
    "endpoint": ("endpoint", "the entry endpoint"), "edge": ("edge", "a call 'caller->callee', or a component for "
                                                                     "every call into it"),
    "component_or_endpoint": ("target", "a component or an entry endpoint"), "team": ("team", "the team to page"),
}
_AMOUNTS = {"replicas": "integer", "rps": "number", "connections": "integer"}


def _mitigation(name: str) -> Action:
    m = MITIGATIONS[name]
    params: list[Param] = []
    if m.target in _TARGETS:
        pname, text = _TARGETS[m.target]
        params.append(Param(pname, m.target, text, required=m.target not in ("team",)))
    amount = getattr(m, "amount", None)
    if amount:
        params.append(Param(amount, _AMOUNTS.get(amount, "number"), f"the {amount} to set",
                            required=name in ("set_pool_size",)))
    kind: Kind = "coordinate" if name == "page_human" else "mitigate"
    return Action(name, kind, m.summary, tuple(params), cost=30.0 if kind == "coordinate" else 60.0)


ACTIONS: dict[str, Action] = {a.name: a for a in [
    Action("list_alerts", "investigate", "the alerts firing and pending, and the pages sent", cost=10.0),
    Action("query_metrics", "investigate", "run a PromQL query (an instant query, or a range query with `range`)",
           (_p("promql", "promql", "the PromQL expression"),
            _p("range", "duration", "a range query over this much history, e.g. '30m' (default: instant)", False)),
           cost=30.0),
    Action("read_logs", "investigate", "a service's recent log lines, newest first",
           (_p("service", "service", "the service"),
            _p("filter", "text", "keep lines containing this text (LogQL line filters like '|= \"error\"' work too)",
               False), _RANGE), cost=60.0),
    Action("get_traces", "investigate", "recent request traces through a service, slowest and failed first",
           (_p("service", "service", "the service"),
            _p("filter", "text", "'error' for failed traces only, or 'slow' for the slowest", False)), cost=60.0),
    Action("get_service_map", "investigate", "the documented service map: components and their calls", cost=15.0),
    Action("list_changes", "investigate", "deploys, config pushes, scaling and other changes",
           (_p("range", "duration", "how far back to look, e.g. '2h' (default 1h)", False),), cost=20.0),
    Action("describe", "investigate", "a component's, node's, endpoint's or certificate's state, as the cluster API "
           "shows it", (_p("component", "text", "a component, node, endpoint or certificate name"),), cost=30.0),
    *[_mitigation(name) for name in MITIGATIONS],
    Action("silence_alert", "coordinate", "silence alerts matching a matcher (e.g. 'alertname=\"HighErrorRate\"') "
           "for a while", (_p("matcher", "matcher", "label matchers: alertname=\"...\", service=\"...\""),
                           _p("duration", "duration", "how long, e.g. '1h' (default 1h)", False)), cost=30.0),
    Action("acknowledge", "coordinate", "acknowledge a firing alert: you are on it (stops its re-notifications)",
           (_p("alert", "alert", "the alert name or fingerprint"),), cost=10.0),
    Action("wait", "coordinate", "do nothing for a while and let the system evolve",
           (_p("duration", "duration", "how long, e.g. '2m'"),), cost=0.0),
    Action("submit", "finish", "submit your diagnosis and hand over; the episode then runs to its end without you",
           (_p("components", "components", "the root-cause component(s) (or node, zone); [] if nothing is wrong"),
            _p("fault_class", "fault_class", "the kind of failure (see the runbook's list of failure modes)"),
            _p("chain", "chain", "optional: the propagation chain, root first", False)), cost=0.0),
]}

WAIT_MAX = 3600.0


def places_by_kind(scenario: Scenario) -> dict[str, list[str]]:
    """Names of every kind of place in a scenario, for checking targets."""
    comps = scenario.components
    edges = [f"{name}->{d.target}" for name, c in comps.items() for d in c.dependencies]
    edges += [f"{name}->{c.fronts}" for name, c in comps.items() if c.kind == "cache"]
    edges += [f"{e.service}->{d.target}" for e in scenario.traffic.endpoints for d in e.calls or ()]
    return {
        "component": list(comps), "service": list(comps),
        "datastore": [n for n, c in comps.items() if c.kind == "datastore"],
        "cache": [n for n, c in comps.items() if c.kind == "cache"],
        "node": [n.name for n in scenario.nodes], "zone": scenario.zones,
        "endpoint": [e.name for e in scenario.traffic.endpoints], "edge": sorted(set(edges)),
        "certificate": [c.name for c in scenario.certificates],
        "serving": sorted({c.component for c in scenario.certificates}),
    }


def parse_call(name: object, args: dict[str, Any] | None, scenario: Scenario) -> Call:
    """Check a call against the runbook and the scenario; raise `ActionError` (one line) if anything is wrong."""
    if not isinstance(name, str) or name not in ACTIONS:
        raise ActionError(f"unknown action {name!r}; the runbook has: {', '.join(ACTIONS)}")
    action = ACTIONS[name]
    if args is not None and not isinstance(args, dict):
        raise ActionError(f"{name}: arguments must be an object of named values, got {type(args).__name__}")
    args = dict(args or {})
    known = {p.name for p in action.params}
    extra = sorted(set(args) - known)
    if extra:
        raise ActionError(f"{name}: unknown argument(s) {', '.join(extra)}; it takes: {', '.join(known) or 'none'}")
    where = places_by_kind(scenario)
    out: dict[str, Any] = {}
    for p in action.params:
        value = args.get(p.name)
        if value is None:
            if p.required:
                raise ActionError(f"{name}: missing argument '{p.name}' ({p.description})")
            continue
        out[p.name] = _check(name, p, value, where)
    return Call(action, out)


def _check(action: str, p: Param, value: Any, where: dict[str, list[str]]) -> Any:
    def bad(why: str) -> ActionError:
        return ActionError(f"{action}: argument '{p.name}' {why}")

    if p.type in ("component", "service", "datastore", "cache", "node", "zone", "endpoint"):
        if not isinstance(value, str) or value not in where[p.type]:
            raise bad(f"must name a {p.type}; got {value!r}; known: {', '.join(where[p.type])}")
        return value
    if p.type == "certificate":
        serving = where["certificate"] + where["serving"]
        if not isinstance(value, str) or value not in serving:
            raise bad(f"must name a certificate or a component serving one; got {value!r}; known: "
                      f"{', '.join(serving)}")
        return value
    if p.type == "component_or_endpoint":
        choices = where["component"] + where["endpoint"]
        if not isinstance(value, str) or value not in choices:
            raise bad(f"must name a component or endpoint; got {value!r}; known: {', '.join(choices)}")
        return value
    if p.type == "edge":
        if isinstance(value, str) and value in where["component"]:
            return value
        if not isinstance(value, str) or value.replace(" ", "") not in where["edge"]:
            raise bad(f"must be a call 'caller->callee' or a component; got {value!r}; calls: "
                      f"{', '.join(where['edge'])}")
        caller, callee = value.replace(" ", "").split("->")
        return (caller, callee)
    if p.type in ("team", "text", "promql", "matcher", "alert", "fault_class"):
        if not isinstance(value, str) or not value.strip():
            raise bad(f"must be a non-empty string; got {value!r}")
        return value.strip()
    if p.type == "duration":
        try:
            number = isinstance(value, (int, float)) and not isinstance(value, bool) or \
                isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d*)?\s*", value) is not None
            seconds = float(value) if number else units.parse_duration(value)     # a bare number is seconds
        except (ValueError, TypeError) as exc:
            raise bad(f"must be a duration like '5m' or seconds; got {value!r} ({exc})") from None
        if not math.isfinite(seconds) or seconds <= 0 or seconds > 24 * 3600:
            raise bad(f"must be between 1s and 24h; got {value!r}")
        return seconds
    if p.type in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad(f"must be a number; got {value!r}")
        if value <= 0:
            raise bad(f"must be positive; got {value!r}")
        if p.type == "integer" and value != int(value):
            raise bad(f"must be a whole number; got {value!r}")
        return int(value) if p.type == "integer" else float(value)
    if p.type in ("components", "chain"):
        items = [value] if isinstance(value, str) else value
        if p.type == "chain" and isinstance(items, (list, tuple)) and not items:
            raise bad("must name at least one place")
        # `components` may be empty: the diagnosis "nothing is wrong" names no component
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
            raise bad(f"must be a list of component names; got {value!r}")
        known = where["component"] + where["node"] + where["zone"] + where["endpoint"] + where["certificate"]
        unknown = [v for v in items if v not in known]
        if unknown:
            raise bad(f"names unknown place(s) {', '.join(unknown)}; known: {', '.join(where['component'])}")
        return list(items)
    raise bad(f"has an unknown type {p.type}")   # a runbook entry written wrong: a bug here, not the caller's
