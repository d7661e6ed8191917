"""One incident for an LLM agent (or a person): the runbook as tools, each answering with the text a real tool prints.

`ToolSession` wraps one world of `Incidents` with the full observability stack. The shift starts when the responder
is paged (or after 30 quiet minutes); from then on every `call(name, args)` is checked against the runbook, carried
out, and charged its time: the world moves on by the action's cost while the responder reads and types, by a wait's
duration, and by one tick for a refused call. `submit` hands over and the episode runs to its horizon; the score
report (from the truth only, see `opsworld.score`) then comes back as text.

Nothing a tool prints names what only the simulator knows: results come from the sensors (`opsworld.observe`) and
are rendered by `opsworld.envs.text`; the messages written here are plain operator language. Only the final score,
after hand-over, tells the truth of the episode.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import numpy as np

from opsworld.act.mitigations import HUMAN_ARRIVE, HUMAN_DELAY, MITIGATIONS, MitigationError
from opsworld.act.runbook import ACTIONS, ActionError, Call, parse_call
from opsworld.act.vocabulary import FAULT_CLASSES
from opsworld.envs.difficulty import Difficulty, level
from opsworld.envs.incident import IncidentConfig, Incidents
from opsworld.envs.text import (render_alerts, render_changes, render_component, render_logs, render_matrix,
                                render_service_map, render_traces, render_vector)
from opsworld.faults.catalogue import scenario_for
from opsworld.observe.alerts.notifier import Matcher, Notification, parse_matcher
from opsworld.observe.logs import LogQueryError
from opsworld.observe.promql import PromQLError
from opsworld.observe.telemetry import ToolsUnavailable
from opsworld.score.report import ScoreReport
from opsworld.spec import Scenario

PAGE_WAIT = 1800.0          # the shift starts at the first page, or after this many quiet seconds
LOG_RANGE = 900.0           # read_logs looks back this far by default
CHANGE_RANGE = 3600.0       # list_changes looks back this far by default (a bad deploy is rarely minutes old)
TRACE_RANGE = 300.0         # get_traces searches this much recent history
SILENCE_DEFAULT = 3600.0
LOG_LINES, TRACES_SHOWN = 40, 3       # bounded results: an agent's context is finite, a person's screen too
ALERTS_PER_PAGE = 5                    # a page lists its group's first alerts, as a pager's message does
OVER = "the episode is over: you handed over (or the shift ended); see the score"
LAST_CALL = 60.0     # seconds before the shift ends: time passing stops there once, to say so while a diagnosis can
#                      still be handed over
KUBE_DOWN = "Unable to connect to the server: dial tcp 10.96.0.1:443: connect: no route to host"
_LOGQL_START = ("|=", "!=", "|~", "!~", "{")
_ERROR_WORDS, _SLOW_WORDS = ("error", "errors", "failed", "failure"), ("slow", "slowest", "latency")
# commas that separate matchers, not those inside a quoted value
_MATCHER_SPLIT = re.compile(r',(?=(?:[^"\\]|\\.)*(?:"(?:[^"\\]|\\.)*"(?:[^"\\]|\\.)*)*$)')


@dataclass(frozen=True)
class ToolResult:
    """What a tool call returned: its text, whether it was refused or failed, the seconds since the shift started,
    and whether the episode is over."""

    text: str
    error: bool
    time: float
    done: bool


class _Refused(Exception):
    """A call that turned out bad while running (a PromQL syntax error, a target the mitigation cannot act on)."""


class ToolSession:
    """One incident, one responder: the runbook as tools with text results. See the module docstring."""

    def __init__(self, scenario: str | Scenario = "online-shop", seed: int = 0,
                 fault: str | Sequence[str] | None = None, horizon: float | None = None, *,
                 page_wait: float = PAGE_WAIT, difficulty: str | Difficulty = "easy") -> None:
        """`fault` is a catalogue entry, `NAME` or `NAME:TARGET`, or several to draw from (None: drawn from the seed
        among those that can strike the scenario); the shift starts at the first page or after `page_wait`
        seconds. `difficulty`: easy (the catalogue as published, the default here), realistic or hard
        (`opsworld.envs.difficulty`; the command line's default is realistic)."""
        faults = [fault] if isinstance(fault, str) else list(fault) if fault else None
        # one world can take the scenario changes its failure needs (a batch could not give them to one world)
        source: Any = scenario_for(faults[0], scenario) if faults and len(faults) == 1 else scenario
        self.difficulty = dial = level(difficulty)
        self.inc = Incidents(IncidentConfig(scenario=source, horizon=horizon, telemetry=True, counterfactual=True,
                                            generator=dial.generator(entries=faults, horizon=horizon or 3600.0),
                                            telemetry_gaps=0.3 * dial.telemetry_gaps, coverage=dial.coverage()),
                             worlds=1, seed=seed)
        self.scenario = self.inc.scenario
        self.dt = float(self.inc.system.dt)
        self._over = False
        self._warned = self._said_last_call = False       # the shift's last minute: reached, said
        self.calls: list[tuple[str, dict[str, Any], ToolResult]] = []
        # the shift starts when the pager goes off: read off the notifier, never off the ground truth
        while not self._pages() and self.inc.time < page_wait and not self.inc.done:
            self.inc.advance()
        self.shift_start = float(self.inc.time)
        self.inc.on_call_since[:] = self.shift_start

    # ---- the episode ---------------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Whether the episode is over (handed over, or the horizon reached)."""
        return self._over or self.inc.done

    @property
    def elapsed(self) -> float:
        """Seconds since the shift started."""
        return float(self.inc.time) - self.shift_start

    def world_time(self) -> float:
        """The wall clock of the world now, Unix seconds."""
        return float(self.scenario.traffic.start + self.inc.time)

    def clock(self) -> str:
        """The wall clock now, as `2026-11-25 08:12:30 UTC`."""
        return _utc(self.world_time()) + " UTC"

    def tools(self) -> list[dict[str, Any]]:
        """Every runbook action as a tool definition: name, description (with its time cost), JSON input schema."""
        out = []
        for action in ACTIONS.values():
            schema = action.schema()
            text = action.summary[0].upper() + action.summary[1:] + "."
            if action.name == "wait":
                text += " Costs the time waited."
            elif action.cost:
                text += f" Takes about {_span(action.cost)} of your time."
            if action.name == "page_human":
                text += (f" They look about {_span(HUMAN_ARRIVE)} after the page and leave if nothing is wrong then; "
                         f"if something is, their fix lands about {_span(HUMAN_DELAY)} after the page.")
            elif action.name in MITIGATIONS:
                text += f" Lands about {_span(MITIGATIONS[action.name].takes)} after the order."
            if action.name == "list_changes":
                schema["properties"]["range"]["description"] = "how far back to look, e.g. '2h' (default 1h)"
            if action.name == "submit":
                text += (" Failure modes for fault_class: " + ", ".join(FAULT_CLASSES)
                         + " (no_fault or benign_change when nothing is wrong, with components []).")
            out.append({"name": action.name, "description": text, "input_schema": schema})
        return out

    def pages_text(self) -> str:
        """What paged the responder (for the first message of an episode), or that nothing has paged yet."""
        pages = self._pages()
        head = f"It is {self.clock()}. You are the on-call engineer for this system."
        if not pages:
            tickets = self._notifications("ticket")
            body = ["Nothing has paged you, but you were asked to look at the system."]
            if tickets:
                body += ["Recent tickets:", *[_notification(n) for n in tickets[-5:]]]
            return "\n".join([head, *body])
        return "\n".join([head, "You have been paged:", *[_notification(n) for n in pages]])

    def report(self) -> ScoreReport:
        """The score report (final once the episode is done)."""
        return self.inc.reports()[0]

    def hand_over(self) -> ScoreReport:
        """Leave without a diagnosis (as a responder who quits): the world runs to its horizon; the report."""
        if not self.done:
            self.inc.leave(np.array([0]))
            self._finish()
        return self.report()

    # ---- calls ---------------------------------------------------------------------------------------------------
    def call(self, name: str, args: dict[str, Any] | None = None) -> ToolResult:
        """Run one runbook action: check it, charge its time, carry it out, and say what happened."""
        if self.done:
            return self._result(OVER, True)
        try:
            text, error = self._run(self._parse(name, args))
        except (ActionError, _Refused) as exc:
            text, error = self._refuse(str(exc)), True
        result = self._result(text, error)
        self.calls.append((str(name), dict(args) if isinstance(args, dict) else {}, result))
        return result

    def check(self, name: str, args: dict[str, Any] | None = None) -> None:
        """Raise `ActionError` (one line) for a call the runbook refuses as written — an unknown action, a missing or
        mistyped argument, a place the system does not have — charging nothing (a person's typo at a prompt)."""
        self._parse(name, args)

    def _parse(self, name: str, args: dict[str, Any] | None) -> Call:
        if args is not None and not isinstance(args, dict):
            raise ActionError(f"{name}: arguments must be an object of named values; got {type(args).__name__}")
        if name == "submit" and args and args.get("components") == []:
            # a diagnosis may name nothing (nothing is wrong, or no idea); the runbook's checker wants a name
            call = parse_call(name, {**args, "components": [next(iter(self.scenario.components))]}, self.scenario)
            call.args["components"] = []
            return call
        return parse_call(name, args, self.scenario)

    def _refuse(self, message: str) -> str:
        """A bad call: one line saying why; one tick of the responder's time, and nothing else changes."""
        self.inc.refuse(np.array([0]))
        self._advance(self.dt)
        return message.splitlines()[0] if message else "refused"

    def _result(self, text: str, error: bool) -> ToolResult:
        if self._warned and not self._said_last_call and not self.done:
            self._said_last_call = True
            left = (self.inc.ticks - self.inc.system.tick) * self.dt
            text += (f"\nyour shift ends in {_span(left)} (at {_utc(self.world_time() + left)} UTC): submit your "
                     "diagnosis now, or it ends without one")
        return ToolResult(text=text, error=error, time=self.elapsed, done=self.done)

    def _run(self, call: Call) -> tuple[str, bool]:
        """Carry out a checked call; returns (text, failed). Raises `_Refused` before anything is charged."""
        name, args = call.name, call.args
        action = call.action
        if action.kind == "investigate":
            return self._investigate(name, args)
        if name in MITIGATIONS:
            return self._mitigate(name, args), False
        if name == "silence_alert":
            return self._silence(args), False
        if name == "acknowledge":
            return self._acknowledge(args), False
        if name == "wait":
            start = self.inc.time
            self.inc.wait(np.array([0]), args["duration"])
            self._advance(args["duration"])
            waited = _span(self.inc.time - start)
            if self.inc.done:
                return f"waited {waited}; it is now {self.clock()} and the shift is over", False
            return f"waited {waited}; it is now {self.clock()}", False
        if name == "submit":
            return self._submit(args), False
        raise ActionError(f"{name}: this session cannot run it")    # a runbook entry added without a handler

    # ---- investigations ------------------------------------------------------------------------------------------
    def _investigate(self, name: str, args: dict[str, Any]) -> tuple[str, bool]:
        """Read first (the tool answers about now), then charge the time spent reading."""
        read: Callable[[dict[str, Any]], str] = getattr(self, f"_{name}")
        try:
            text, error = read(args), False
        except ToolsUnavailable as exc:          # the responders lost their tools: real, and not their fault
            text, error = str(exc), True
            if name == "list_alerts":
                text += "\n" + self._pages_block()
        except (PromQLError, LogQueryError) as exc:
            raise _Refused(f"{name}: {exc}") from None
        self.inc.investigate(name, np.array([0]))
        self._advance(ACTIONS[name].cost)
        return text, error

    def _list_alerts(self, args: dict[str, Any]) -> str:
        tel = self._telemetry()
        alerts = tel.alerts(0)
        silenced = self._silenced_fingerprints(alerts)
        return f"Alerts at {self.clock()}:\n{render_alerts(alerts, silenced=silenced)}\n{self._pages_block()}"

    def _query_metrics(self, args: dict[str, Any]) -> str:
        tel = self._telemetry()
        promql = args["promql"]
        span = args.get("range")
        if span is None:
            return render_vector(tel.query(promql, 0))
        step = _step(span)
        now = tel.now
        return render_matrix(tel.query_range(promql, now - span, now, step, 0))

    def _read_logs(self, args: dict[str, Any]) -> str:
        tel = self._telemetry()
        text = args.get("filter")
        query = None
        if text is not None:      # plain text: the lines containing it, in any case (as a person means it)
            query = text if text.startswith(_LOGQL_START) else f'|~ "{_quoted("(?i)" + re.escape(text))}"'
        now = tel.now
        lines = tel.logs(0, service=args["service"], query=query, start=now - args.get("range", LOG_RANGE), end=now,
                         limit=500)
        return render_logs(lines, limit=LOG_LINES)

    def _get_traces(self, args: dict[str, Any]) -> str:
        tel = self._telemetry()
        text = (args.get("filter") or "").lower()
        if text and text not in _ERROR_WORDS + _SLOW_WORDS:
            raise _Refused(f"get_traces: argument 'filter' must be 'error' (failed traces only) or 'slow' (the "
                           f"slowest); got {args['filter']!r}")
        now = tel.now
        found = tel.traces(0, service=args["service"], start=now - TRACE_RANGE, end=now,
                           error=True if text in _ERROR_WORDS else None, limit=50 if text in _SLOW_WORDS else 20)
        if text in _SLOW_WORDS:
            found = sorted(found, key=lambda t: -t.duration)
        else:                     # the viewer's default order: failed first, then the slowest
            found = sorted(found, key=lambda t: (not t.has_error, -t.duration))
        return render_traces(found, limit=TRACES_SHOWN)

    def _get_service_map(self, args: dict[str, Any]) -> str:
        return render_service_map(self.scenario)     # the documentation: readable without the monitoring

    def _list_changes(self, args: dict[str, Any]) -> str:
        tel = self._telemetry()
        now = tel.now
        changes = tel.changes(0, start=now - args.get("range", CHANGE_RANGE), end=now)
        return render_changes(changes, float(self.scenario.traffic.start))

    def _describe(self, args: dict[str, Any]) -> str:
        if not self._telemetry().reachable(0):        # the cluster API sits behind the same lost routes
            raise ToolsUnavailable(KUBE_DOWN)
        try:
            return render_component(self.inc.engine, args["component"], 0)
        except ValueError as exc:
            raise _Refused(f"describe: {exc}") from None

    # ---- mitigations and coordination ----------------------------------------------------------------------------
    def _mitigate(self, name: str, args: dict[str, Any]) -> str:
        m = MITIGATIONS[name]
        params = [p.name for p in ACTIONS[name].params]
        target = args.get(params[0]) if params and params[0] != m.amount else None
        amount = args.get(m.amount) if m.amount else None
        try:
            self.inc.mitigate(name, target, amount, np.array([0]))   # checks the target before anything
        except MitigationError as exc:
            raise _Refused(f"{name}: {exc}") from None
        text = _ordered(name, target, amount, target in self.inc.topology.endpoints, self.scenario)
        self._advance(ACTIONS[name].cost)
        return text

    def _silence(self, args: dict[str, Any]) -> str:
        self._notifier()
        seconds = args.get("duration", SILENCE_DEFAULT)
        until = self.world_time() + seconds
        sid, = self.inc.silence(np.array([0]), seconds, matchers=_matchers(args["matcher"]))
        self._advance(ACTIONS["silence_alert"].cost)
        return f"silence {sid} created: {args['matcher']} until {_utc(until)} UTC"

    def _acknowledge(self, args: dict[str, Any]) -> str:
        self._notifier()
        key = args["alert"]
        count = self.inc.acknowledge(np.array([0]), key)
        self._advance(ACTIONS["acknowledge"].cost)
        return f"acknowledged {count} firing alert(s) matching {key!r}; their pages stop repeating until they resolve"

    def _submit(self, args: dict[str, Any]) -> str:
        fault_class = args["fault_class"]
        if fault_class not in FAULT_CLASSES:
            raise _Refused(f"submit: argument 'fault_class' must be one of: {', '.join(FAULT_CLASSES)}; got "
                           f"{fault_class!r}")
        self.inc.submit(np.array([0]), [list(args["components"])], [fault_class], [args.get("chain")])
        self._finish()
        return score_text(self.report())

    # ---- helpers -------------------------------------------------------------------------------------------------
    def _advance(self, seconds: float) -> None:
        """Let the world run on for `seconds` (whole ticks, rounded up), never past the horizon; the first time it
        would run into the shift's last minute it stops there, and the call's answer says the shift is ending."""
        last_call = self.inc.ticks - int(math.ceil(LAST_CALL / self.dt - 1e-9))
        for _ in range(int(math.ceil(seconds / self.dt - 1e-9))):
            if self.inc.done:
                break
            if not self._warned and self.inc.system.tick >= last_call:
                self._warned = True
                return
            self.inc.advance()

    def _finish(self) -> None:
        self._over = True
        self.inc.run_to_end()

    def _telemetry(self):
        tel = self.inc.telemetry
        tel.check(0)
        return tel

    def _notifier(self):
        notifier = self.inc.telemetry.notifier
        if notifier is None:
            raise _Refused("no Alertmanager is configured for this system: there is nothing to silence or "
                           "acknowledge")
        return notifier

    def _pages(self) -> list[Notification]:
        return self.inc.telemetry.pages(0)

    def _notifications(self, receiver: str) -> list[Notification]:
        notifier = self.inc.telemetry.notifier
        return [n for n in notifier.notifications(0) if n.receiver == receiver] if notifier is not None else []

    def _pages_block(self) -> str:
        pages = self._pages()
        if not pages:
            return "Pages sent: none"
        shown = pages[-10:]
        more = [f"... {len(pages) - len(shown)} earlier pages"] if len(pages) > len(shown) else []
        return "\n".join([f"Pages sent ({len(pages)}):", *more, *[_notification(n) for n in shown]])

    def _silenced_fingerprints(self, alerts: list) -> set[str]:
        notifier = self.inc.telemetry.notifier
        if notifier is None:
            return set()
        active = [s for s in notifier.silences(0) if s.state(notifier.now) == "active"]
        return {a.fingerprint for a in alerts if any(s.matches(a.labels) for s in active)}


# ---- text ------------------------------------------------------------------------------------------------------------
def _utc(unix: float) -> str:
    return datetime.fromtimestamp(float(unix), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _span(seconds: float) -> str:
    """A duration as people say it: 45s, 2m, 1m30s, 1h5m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{sec}s" if sec and not h else ""]
    return "".join(parts)


def _quoted(text: str) -> str:
    """Text for inside a double-quoted LogQL string."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _step(span: float) -> float:
    """A range query's step: about 60 points, at least 15 s, in whole 15 s."""
    return max(15.0, 15.0 * round(span / 60.0 / 15.0))


def _notification(n: Notification) -> str:
    """One page as the pager shows it: time, status, group, then each alert's summary."""
    labels = " ".join(f"{k}={v}" for k, v in n.group_labels.items())
    lines = [f"  {_utc(n.time)} UTC  [{n.status.upper()}:{len(n.alerts)}] {labels}"]
    for a in n.alerts[:ALERTS_PER_PAGE]:
        text = a.annotations.get("summary") or a.labels.get("alertname", "")
        lines.append(f"      {a.status}: {text}  (fingerprint {a.fingerprint})")
    if len(n.alerts) > ALERTS_PER_PAGE:
        lines.append(f"      ... {len(n.alerts) - ALERTS_PER_PAGE} more alerts in this group (see list_alerts)")
    return "\n".join(lines)


def _matchers(text: str) -> list[Matcher]:
    """`alertname="X", service=~"cart.*"` (optionally in braces) -> matchers; `_Refused` naming the bad part."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    parts = [p for p in _MATCHER_SPLIT.split(body) if p.strip()]
    if not parts:
        raise _Refused("silence_alert: argument 'matcher' holds no matcher; write e.g. alertname=\"HighErrorRate\"")
    try:
        return [parse_matcher(p) for p in parts]
    except ValueError as exc:
        raise _Refused(f"silence_alert: {exc}") from None


def _edge(target: object) -> str:
    if isinstance(target, tuple):
        return f"{target[0]} -> {target[1]}"
    return f"every call into {target}"


def _rollout(scenario: Scenario | None, target: object) -> str:
    """How long replacing a component's replicas one by one takes: each new one is ready a startup after it starts."""
    comp = scenario.components.get(str(target)) if scenario is not None else None
    if comp is None:
        return "replicas are replaced one by one"
    each = _span(comp.startup)
    if comp.replicas == 1:
        return f"its replica is replaced (the new one ready about {each} after it starts)"
    return (f"its {comp.replicas} replicas are replaced one by one, each new one ready about {each} after it starts "
            f"(about {_span(comp.replicas * comp.startup)} in all)")


def _ordered(name: str, target: object, amount: object, endpoint: bool = False,
             scenario: Scenario | None = None) -> str:
    """What a mitigation order prints, as the operator's tooling would acknowledge it."""
    m = MITIGATIONS[name]
    takes = HUMAN_DELAY if name == "page_human" else m.takes
    when = f"takes effect in about {_span(takes)}"
    t = target
    texts = {
        "rollback_deploy": f"rollback of {t} to its previous deployment started ({when}); then "
                           f"{_rollout(scenario, t)}",
        "rollback_config": f"{t}'s previous config is being pushed ({when}); replicas pick it up on their next "
                           "reload",
        "restart": f"rolling restart of {t} started ({when}); then {_rollout(scenario, t)}",
        "scale": (f"{t} scaled to {amount} replicas" if amount is not None and t is not None
                  else f"{t} replicas doubled" if t is not None else "every component's replicas doubled")
        + f" ({when}); the autoscaler's bounds moved to hold them",
        "renew_cert": f"a new certificate for {t} is being issued and installed ({when})",
        "rotate_credentials": f"new credentials for {t} are being issued and rolled out ({when})",
        "drain_node": f"node {t} cordoned; its pods are evicted and rescheduled elsewhere ({when})",
        "reroute_zone": f"every node in zone {t} cordoned and draining; traffic moves to the other zones ({when})",
        "failover_db": f"failover of {t} started: a replica is being promoted to primary ({when})",
        "sync_clock": f"clock resynchronisation on {t} started ({when})",
        "dead_letter": f"the message {t} keeps failing on is being moved to the dead-letter queue ({when})",
        "rate_limit": f"rate limit on {t}: at most {amount:g} requests/s admitted ({when})" if amount is not None
        else f"rate limit on {t} at {'its usual rate' if endpoint else 'what its replicas can serve'} ({when})",
        "block_client": f"the client source flooding {t} is being blocked ({when})",
        "disable_retries": f"retries turned off on {_edge(t)} ({when})",
        "open_circuit": f"circuit breaker held open on {_edge(t)}: those calls fail fast ({when})",
        "set_pool_size": f"{t}'s datastore connection pools set to {amount} connections per replica ({when})",
        "raise_limit": f"{t}'s quota and connection limits raised ({when})",
        "flush_cache": f"cache {t} flushed: its replicas restart empty ({when})",
        "warm_cache": f"pre-loading cache {t}'s hot keys ({when})",
        "page_human": f"paged {t or 'the escalation on-call'}; someone will look in about {_span(HUMAN_ARRIVE)} "
                      f"and, if something is wrong then, expects to have it fixed in about {_span(takes)}",
    }
    return texts.get(name, f"{name} on {t} ordered ({when})")


def score_text(r: ScoreReport) -> str:
    """The score report as plain text: the reward and its terms, the field's metrics, impact and unsafe actions."""
    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    def took(seconds: float | None) -> str:
        return f" in {_span(seconds)}" if seconds is not None else ""

    d = r.diagnosis or {}
    lines = [f"The episode is over. Reward: {r.reward:.2f} points (an outage-minute costs 200; higher is better)",
             "  " + "  ".join(f"{k} {v:+.2f}" for k, v in r.terms.items()),
             f"Detection: {yes(r.detected)}" + (f" (your first act on it {_span(r.time_to_detect)} after its onset: an "
                                                "order, an acknowledgement or a diagnosis)" if r.detected else ""),
             f"Localisation: {yes(r.localized)} (NTAM {r.ntam:.2f}); you named "
             f"{', '.join(d.get('components') or []) or 'nothing'}; the root cause was "
             f"{', '.join(r.roots) or 'nothing (no fault)'}",
             f"Root cause analysis: {yes(r.root_cause_correct)}; fault class {yes(r.fault_class_correct)} (you said "
             f"{d.get('fault_class') or 'nothing'}; it was {r.fault})",
             *([f"Propagation chain: NTAM {r.chain_ntam:.2f}"] if r.chain_ntam is not None else []),
             f"Mitigation: {yes(r.mitigated)}{took(r.time_to_mitigate)}",
             f"User impact: {r.impact_minutes:.2f} outage-minutes; {r.impaired_requests:,.0f} of "
             f"{r.requests:,.0f} requests failed, were slow or wrong",
             "Unsafe actions: " + ("none" if not r.unsafe else
                                   "; ".join(f"{u.rule} at {_span(u.time)}" for u in r.unsafe)),
             f"Actions: {r.actions} ({r.bad_actions} refused); paged a human: {yes(r.paged)}; "
             f"handed over: {yes(r.submitted)}"]
    return "\n".join(lines)
