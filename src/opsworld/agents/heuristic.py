"""A scripted on-call engineer: the written runbook below, followed one step at a time for every world. It reads only
what the env shows (alerts, the change history, the results of its own queries, log reads and traces) and the
inventory in the context (the documented service map, where replicas run, which component serves which
certificate); it never silences an alert."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from opsworld.act.mitigations import HUMAN_DELAY
from opsworld.act.vocabulary import SCALE_FACTORS
from opsworld.agents.base import PerWorld
from opsworld.engine.graph import below

_CHANGE_DECAY = 1800.0      # the env's `changes` observation is exp(-age / 30 min)
_PAGE = ("page_human", None)


@dataclass
class _Candidate:
    """One mitigation to try: the verb, its target and argument, how long to give it before judging, the fault class
    it would mean and the place to blame."""

    verb: str
    target: str | None
    argument: int = 0
    settle: float = 120.0
    fault_class: str = "error_rate"
    blame: str | None = None
    checked: bool = False       # a change already found wrong (rolled back without another look)
    look: bool = False          # a change to look at before undoing it, whatever the alerts say


@dataclass
class _Case:
    """One world's incident as the responder sees it."""

    phase: str = "watch"
    t: float = 0.0
    changed: np.ndarray | None = None            # [S, 2] when each component last had a deploy / config change
    verified: set = field(default_factory=set)   # changes (s, i) already checked
    recheck: dict = field(default_factory=dict)  # (s, i) -> when to look at it once more
    checking: tuple | None = None
    cleared: set = field(default_factory=set)    # changes (verb, component, when) a look found innocent
    clean: set = field(default_factory=set)      # changes (s, i, when) their verification found well once baked
    deferred: list = field(default_factory=list) # suspected changes kept while a lost node or zone is looked for
    placed: bool = False                         # a lost node or zone was looked for in this incident
    next_sweep: float = 600.0                    # when to look at the CPU and error boards next
    silent: int = 0                              # glances in a row that found the users' SLOs burning, no alert
    burning_quietly: bool = False                # this incident was opened by a burn no alert showed
    start: float = math.inf                      # when the alerts began
    seen: np.ndarray | None = None               # [S, A] every alert seen since the incident began
    plan: list = field(default_factory=list)     # investigations queued: ("query", signal) / ("logs", c) / ...
    asked: tuple | None = None                   # the investigation just made, whose result the next obs holds
    signals: dict = field(default_factory=dict)  # signal -> [S] its latest query result
    logs: dict = field(default_factory=dict)     # component -> [L] its latest log signature shares
    ever: dict = field(default_factory=dict)     # component -> every kind of error line read in its logs
    off: list = field(default_factory=list)      # what a change verification found wrong
    traces: dict = field(default_factory=dict)   # component -> [S] its latest trace summary
    root: str | None = None
    candidates: list = field(default_factory=list)
    tried: list = field(default_factory=list)
    failed: int = 0
    settle_until: float = 0.0
    clear_since: float = math.inf
    paged: bool = False
    standby_since: float = math.inf              # out of ideas with users well: since when warnings fire unbroken
    escalated: bool = False                      # paged while still working on it (users hurt too long)
    burning_since: float = math.inf              # when the users' alert (SLO burn) began firing, this time
    users_hurt: bool = False                     # the users' alert fired during this incident
    guess: _Candidate | None = None              # what we believe it was (for the hand-over)
    kept: tuple | None = None                    # (guess, root) of an earlier incident that hurt users
    refine: bool = False                         # read the suspect's logs right after ordering its rollback
    confirming: bool = False                     # alerts clear: checking the signals before calling it resolved
    submitted: bool = False
    quiet: bool = True                           # no alert fires now (the users' included)
    firing_since: np.ndarray | None = None       # [S, A] when each alert began firing (inf: not firing)
    flaps: np.ndarray | None = None              # [S, A] times it fired briefly and cleared while users were well


def _change(st: _Case, s: int, i: int) -> tuple | None:
    """The identity of component s's latest change i (0: deploy, 1: config): (s, i, when), None if it has none."""
    when = float(st.changed[s, i])
    return (s, i, round(when)) if math.isfinite(when) else None


class HeuristicSRE(PerWorld):
    """The runbook of a careful on-call engineer.

    1. Watch: wait a tick at a time until an alert fires. Meanwhile, five minutes after a deploy or config change
       shows in the change history, verify it: query the error and latency ratios of every service, read the logs of
       the changed component's callers and its own, then its CPU, memory and disk; at the first thing wrong, roll the
       change back (step 4) — but a component's errors count against its change only while what it calls is well,
       and its callers' lines only where it is the one thing they call that shows anything wrong. Look once more a
       quarter of an hour later. Every ten minutes glance at the CPU and SLO-burn boards: a service pinned near its
       limit with no alert yet is a runaway process — restart it; an entry burning its users' error budget faster
       than the SLOs allow on two glances in a row, with no alert, is a failure the alerts miss that users feel —
       localise it (step 3), and page when nothing found explains it.
    2. Triage: when alerts fire, look first at the change history. A deploy or config changed, before the alerts
       began, in an alerting component, below one in the documented map, or in a direct caller of one, is the prime
       suspect: roll it back. Read a config's logs first (its rollback lands at once and takes the evidence with
       it); roll a deploy back first and read while it rolls out (unless its alerts say nothing but errors). A change
       in a component that shows nothing itself is looked at first, as in step 1 (and its worker saturation, and a
       latency far below its usual): on a busy day most changes are innocent, and undoing one costs its author.
       Alerts back after a fix are more often the last fault's aftermath than a new change's: a change is looked at
       then before it is undone. So is one its verification found well once baked, and only what grows with uptime
       (memory, disk, worker pool, the lines of a leak) counts against it then. A deploy still rolling out is given
       its time: its latency alone is no alarm (its replicas restart). Replicas missing in several components at once
       are a lost node or zone before they are one component's change: that is looked for first. The users' alert
       alone (their SLOs burning, no component alerting: wrong answers, which only the correctness SLI shows) points
       at every change below the burning entry made before the burn began: each is looked at before it is undone.
    3. Localise: otherwise query the error and latency ratios of every service (and the ready share, the load,
       when replicas are missing or traffic surges). Missing replicas that the loss of one node, or of one zone,
       explains far better than no loss at all point at it: drain the node, reroute the zone. Else the suspect is the
       deepest anomalous component of the documented call graph whose callees are healthy (ties: the most
       anomalous). Read its logs, and its most anomalous caller's when its own say nothing specific. If it only
       complains of failing calls yet has no documented callee, the map is missing one: get its traces (they follow
       the real graph) and move the suspect down to the component they blame.
    4. Mitigate, one thing at a time, most specific first, from what the lines and the board say:
       certificate_expired (in a caller) -> renew the certificates of the components it calls;
       unauthorized -> rotate that component's credentials; clock_skew -> resync the clocks of the nodes the
       complaining components share, then drain them; rate_limited / too_many_clients (in a caller) -> raise the
       callee's limits; id overflow, wraparound -> page; read_only -> fail the datastore over; crash_back_off in a
       queue consumer -> dead-letter the message, elsewhere restart; oom_killed, disk_full, fd_exhausted -> restart;
       queue_full / a queue backlog -> restart the queue's consumer; a surge at the entry service -> block the client
       flooding the endpoint whose path carries the surge (when the load is several times the usual), scale out;
       no_endpoints / replicas unavailable -> fail a datastore over, restart a consumer, drain a sick accelerator
       node, or scale the component back to its replicas; a datastore with failing writes or stale reads -> fail it
       over, one only slow, with something beside it on its node slow too -> drain that node; a sick
       accelerator (errors or slow steps on the GPU pool) -> scale out, drain its nodes one by one; refusals, unknown
       hosts and timeouts between services, with no change to undo -> page; the suspect's calls failing while what
       it calls is well, failures spread over zones -> reroute the zone holding most of the failing replicas, then
       page; a slow service -> restart it, then drain its nodes; a code exception or wrong answers with no change to
       undo -> page.
    5. Watch the fix: give it the time it takes to land and roll out. Alerts clear for three minutes and the error
       and latency ratios back to normal: resolved. Still failing: the next candidate (or look again). Alerts back:
       triage again.
    6. Escalate: page a human when nothing fits, after two failed attempts, or when it is getting late (a human
       needs half an hour, and the SLOs must hold after) — never leave users hurt with no one on it; but out of ideas
       while users are well (a warning, no burn of the SLOs), stand by and page once they feel it, or once the
       warnings have held ten minutes more (a fault that stays, and nothing here removes it). When the
       users' alert (the SLO burning at the entry) fires, page at once and keep working: a human's half hour is
       cheap beside users failing, and they leave again if it is fixed before they look.
    7. Hand over: five minutes after resolving, or near the end, submit the suspect and the best-guess fault class —
       never while alerts still fire. With no incident at all, hand over near the end as a quiet shift (no fault).

    Never silence an alert; but while users are well, a warning opens an incident only once it has held two
    minutes, and one that fired briefly and cleared by itself is a known flapper (a threshold too tight for its
    signal): it opens no incident, and counts for nothing. Every team has a few.
    """

    name = "heuristic-sre"

    verify_after = 300.0       # a change bakes this long (its rollout done) before it is verified
    recheck_after = 900.0      # and is looked at once more this much later
    clear_for = 180.0          # alerts clear this long (and the signals well): resolved
    submit_after: float | None = None    # hand over this long after resolved (None: near the end only — the shift
    #                                      goes on, and the next problem may be another one)
    reopen_after = 300.0       # alerts back this long after it was resolved: a new incident, triaged afresh
    max_failed = 2             # failed mitigations before paging
    page_margin = 420.0        # page no later than horizon - human delay - this (the SLOs must hold after)
    sweep_every = 600.0        # look at every component's CPU this often while nothing alerts (0: never)
    hot_cpu = 0.85             # a CPU share this high with no alert: a runaway process
    silent_burn = 1.0          # an entry's SLO burn this high on two glances in a row, no alert: a silent failure
    escalate_after = 0.0       # users' alert firing this long: page, and keep working (None: never)
    flap_within = 300.0        # an alert that clears by itself this soon after firing, while users are well, flapped
    patience = 120.0           # with users well, an alert must fire this long before it opens an incident
    standby_patience = 600.0   # out of ideas, users well, warnings unbroken this long: a fault that stays — page
    flaps_to_learn = 1         # flaps before it is read as noise (0: never learn; every alert is taken at its word)

    # ---- context -----------------------------------------------------------------------------------------------------
    def _ready(self) -> None:
        ctx = self.context
        comps = ctx.components
        self.S = S = len(comps)
        self.index = {c: i for i, c in enumerate(comps)}
        self.kind = {c: k for c, k in zip(ctx.places, ctx.kinds)}
        self.callees = [[self.index[b] for a, b in ctx.calls if a == c and b in self.index] for c in comps]
        self.callers = [[self.index[a] for a, b in ctx.calls if b == c and a in self.index] for c in comps]
        src = [s for s in range(S) for _ in self.callees[s]]
        self.below = below(np.array(src, np.int64), np.array([d for c in self.callees for d in c], np.int64), S)
        #                                          [S, S] documented reachability (itself included)
        entries = set(ctx.extra.get("endpoints", {}).values())
        self.entries = [self.index[e] for e in entries if e in self.index]
        self.queues = [s for s in range(S) if self.kind[comps[s]] == "queue"]
        self.consumer_of = {q: self.callees[q][0] for q in self.queues if self.callees[q]}
        self.consumers = set(self.consumer_of.values())
        self.placement = ctx.extra.get("placement", {})
        self.zones = ctx.extra.get("zones", {})
        self.pools = ctx.extra.get("pools", {})
        self.certs = ctx.extra.get("certificates", {})
        self.endpoint_calls = ctx.extra.get("endpoint_calls", {})
        self.A = {a: i for i, a in enumerate(ctx.alerts)}
        self.users_alert = self.A.get("SLOBurn")     # says users suffer, not where: kept out of localisation
        self.L = {name: i for i, name in enumerate(ctx.log_signatures)}
        self.scale_same = SCALE_FACTORS.index(1.0)
        self.scale_out = SCALE_FACTORS.index(2.0)
        self.page_by = ctx.horizon - HUMAN_DELAY - self.page_margin

    def _fresh(self, world: int) -> _Case:
        c = _Case()
        c.changed = np.full((self.S, 2), -np.inf)
        c.seen = np.zeros((self.S, len(self.context.alerts)), bool)
        c.firing_since = np.full((self.S, len(self.context.alerts)), np.inf)
        c.flaps = np.zeros((self.S, len(self.context.alerts)), np.int64)
        return c

    def _known_flappers(self, st: _Case, alerts: np.ndarray, burning: bool) -> np.ndarray:
        """[S, A] the alerts this responder has learnt to read as noise: each fired briefly (within `flap_within`)
        and cleared by itself `flaps_to_learn` times while users were well (a threshold too tight for its signal's
        noise). A careful engineer does not open an incident for them (the users' alert is never one)."""
        cleared = np.isfinite(st.firing_since) & ~alerts
        if not burning:
            st.flaps += cleared & (st.t - st.firing_since <= self.flap_within)
        st.firing_since = np.where(alerts, np.minimum(st.firing_since, st.t), np.inf)
        noisy = (st.flaps >= self.flaps_to_learn) & (self.flaps_to_learn > 0)
        if self.users_alert is not None:
            noisy[:, self.users_alert] = False
        return noisy

    # ---- one step ----------------------------------------------------------------------------------------------------
    def _act_one(self, world: int, st: _Case, obs: dict[str, np.ndarray]) -> np.ndarray:
        ctx = self.context
        st.t = t = float(obs["clock"][0]) * ctx.horizon
        self._remember(st, obs)
        alerts = obs["alerts"] > 0
        burning = self.users_alert is not None and bool(alerts[:, self.users_alert].any())
        alerts = alerts & ~self._known_flappers(st, alerts, burning)
        if not burning and self.patience:    # users well: a warning counts once it has held a while, not at once
            alerts = alerts & (st.t - st.firing_since >= self.patience)
        if not burning:      # a deploy still rolling out is slow while its replicas restart: give it its time
            alerts = alerts.copy()
            alerts[t - st.changed[:, 0] < self.verify_after, self.A["HighLatency"]] = False
        loud = alerts.any(axis=1)
        st.burning_since = min(st.burning_since, t) if burning else math.inf
        st.users_hurt |= burning
        st.quiet = not loud.any()
        if self.users_alert is not None:
            alerts = alerts.copy()
            alerts[:, self.users_alert] = False
        if st.phase not in ("watch", "verify", "sweep"):
            st.seen |= alerts
        if obs["clock"][1] > 0 or st.submitted:          # busy, or handed over
            return self.wait()
        if t >= ctx.horizon - 2 * ctx.dt:
            return self._hand_over(st, loud, final=True)
        if self.escalate_after is not None and not (st.paged or st.escalated) and \
                t - st.burning_since >= self.escalate_after:
            st.escalated = True
            return self.action("page_human", 0)
        phase = st.phase
        if phase in ("watch", "verify", "sweep") and loud.any():
            self._open(st, alerts)
            phase = st.phase
        if phase == "watch":
            return self._watch(st)
        if phase == "verify":
            return self._verify(st)
        if phase == "sweep":
            return self._sweep(st)
        if phase == "localise":
            return self._localise(st, alerts)
        if phase == "act":
            return self._mitigate(st)
        if phase == "suspect":
            return self._suspect(st, alerts)
        if phase == "fixwatch":
            return self._fixwatch(st, alerts, loud)
        if phase == "resolved":
            return self._resolved(st, alerts, loud)
        if phase == "standby":     # out of ideas: call someone once users feel it, or the fault plainly stays
            st.standby_since = t if st.quiet else st.standby_since
            if st.users_hurt or t - st.standby_since >= self.standby_patience:
                return self._page(st, None, stand_by=False)
        return self.wait()                              # paged: the human is on it (or standing by)

    def _remember(self, st: _Case, obs: dict[str, np.ndarray]) -> None:
        """Record the change history and the result of the investigation made last step."""
        seen = obs["changes"] > 1e-6
        if seen.any():
            when = st.t + _CHANGE_DECAY * np.log(np.maximum(obs["changes"], 1e-30))
            st.changed = np.where(seen & (np.abs(when - st.changed) > 30.0), when, st.changed)
        if st.asked is None:
            return
        kind, what = st.asked
        if kind == "query" and obs["query_signal"][what] > 0:
            st.signals[self.context.signals[what]] = obs["query"].astype(float).copy()
        elif kind == "logs" and obs["logs_of"][what] > 0:
            st.logs[what] = obs["logs"].astype(float).copy()
            names = self.context.log_signatures
            st.ever.setdefault(what, set()).update(names[i] for i in np.flatnonzero(st.logs[what] > 0))
        elif kind == "traces":
            st.traces[what] = obs["traces"].astype(float).copy()
        st.asked = None

    def _investigate(self, st: _Case, step: tuple) -> np.ndarray:
        kind, what = step
        st.asked = step
        if kind == "query":
            return self.action("query_metrics", 0, what)
        if kind == "logs":
            return self.action("read_logs", what)
        return self.action("get_traces", what)

    def _query(self, *signals: str) -> list[tuple]:
        return [("query", self.context.signals.index(s)) for s in signals]

    # ---- 1. watch ----------------------------------------------------------------------------------------------------
    def _watch(self, st: _Case) -> np.ndarray:
        t = st.t
        for (s, i) in zip(*np.nonzero(np.isfinite(st.changed))):
            key = (int(s), int(i), float(round(st.changed[s, i])))
            due = st.recheck.get(key[:2])
            if key not in st.verified and t - st.changed[s, i] >= self.verify_after or \
                    due is not None and t >= due:
                st.verified.add(key)
                st.recheck[key[:2]] = t + self.recheck_after if due is None else math.inf
                st.checking = (int(s), int(i))
                st.signals = {}
                st.plan = self._change_plan(int(s))
                st.phase = "verify"
                return self._verify(st)
        if self.sweep_every and t >= st.next_sweep:      # a look at the CPU board now and then
            st.next_sweep = t + self.sweep_every
            st.signals = {}
            st.plan = self._query("cpu", "slo_burn")
            st.phase = "sweep"
            return self._investigate(st, st.plan.pop(0))
        return self.wait()

    def _sweep(self, st: _Case) -> np.ndarray:
        """A component pinned near its CPU limit with no alert yet: a runaway process — restart it. The users' SLOs
        burning faster than they allow (requests failing or too slow at the entry) on two glances in a row with no
        alert: a failure the alerts miss — users feel it; localise it, and page if nothing found explains it."""
        if st.plan:
            return self._investigate(st, st.plan.pop(0))
        st.phase = "watch"
        st.silent = st.silent + 1 if self._burning_quietly(st) else 0
        cpu = st.signals.get("cpu")
        hot = cpu is not None and not cpu.max() < self.hot_cpu
        if not hot and st.silent >= 2:
            st.start, st.silent = min(st.start, st.t), 0
            st.users_hurt = st.burning_quietly = True
            self._relocalise(st)
            return self._localise(st, np.zeros_like(st.seen))
        if not hot:
            return self.wait()
        s = int(np.argmax(cpu))
        comp = self.context.components[s]
        if self.kind.get(comp) not in ("service", None) or any(c.target == comp for c in st.tried):
            return self.wait()
        st.start = min(st.start, st.t)
        st.root = comp
        st.candidates = [_Candidate("restart", comp, 0, self._settle("restart"), "cpu_hog", comp)]
        st.phase = "act"
        return self._mitigate(st)

    def _hanging(self, st: _Case, s: int) -> bool:
        """Component s's replicas went missing or restarted in this incident: a build that hangs or crashes in time."""
        return bool(st.seen[s, [self.A["ReplicasUnavailable"], self.A["PodRestarting"]]].any())

    def _burning_quietly(self, st: _Case) -> bool:
        """The last look at the users' SLO burn found an entry burning its error budget faster than allowed."""
        burn = st.signals.get("slo_burn")
        return burn is not None and bool(self.entries) and float(burn[self.entries].max()) > self.silent_burn

    def _change_plan(self, s: int, *also: str) -> list[tuple]:
        """The look at a change to component s: its error and latency ratios (and `also`), its callers' log lines
        and its own, then its CPU, memory and disk."""
        return self._query("error_ratio", "latency_ratio", *also) + [("logs", c) for c in self.callers[s][:2]] + \
            [("logs", s)] + self._query("cpu", "memory", "disk")

    def _change_looks_wrong(self, st: _Case, s: int, i: int) -> list[str]:
        """What is wrong with component s that its change i (0: deploy, 1: config) may explain. Its errors count
        only while what it calls is well and once its own lines are read, unless they speak only of failing calls
        (else they are its callees' failures passing through), its callers' error
        lines only where s is the one thing they call that shows anything wrong (else the lines may be about another
        callee), and its latency not while a deploy still rolls out (replicas restarting move it) nor while its own
        calls fail."""
        sig, off = st.signals, []
        rolling = i == 0 and st.t - st.changed[s, i] < self.verify_after
        err = sig.get("error_ratio", np.zeros(self.S))
        sick = self._showing(st)
        own = self._log_kinds(st, [s]) if s in st.logs else None
        if err[s] > 0.01 and not any(sick[d] for d in self.callees[s]) and own is not None and \
                not (own and own <= self._VAGUE | {"invalid_response"}):
            off.append("errors")
        latency = sig.get("latency_ratio", np.ones(self.S))[s]
        if (latency > 1.4 or latency < 0.5) and not rolling and "upstream_error" not in (own or ()):
            # far faster is no better sign (failing fast, or hung); slow while its own calls fail is theirs
            off.append("latency")
        if sig.get("saturation", np.zeros(self.S))[s] > 0.8:
            off.append("workers")
        if sig.get("cpu", np.zeros(self.S))[s] > 0.8:
            off.append("cpu")
        if sig.get("memory", np.zeros(self.S))[s] > 0.6:
            off.append("memory")
        if sig.get("disk", np.zeros(self.S))[s] > 0.35:
            off.append("disk")
        callers = [c for c in self.callers[s] if not any(sick[d] for d in self.callees[c] if d != s)]
        # lines that only time a call or report a callee failing, gone or answering wrong are about what it calls; a
        # caller's complaints of wrong answers are about it only where its change is the latest of all that caller
        # calls (wrong answers show nothing else to tell the callees apart by)
        lines = self._log_kinds(st, [s]) - self._VAGUE - {"no_endpoints", "invalid_response"}
        for c in callers:       # (a name their resolver cannot find is about them, never about what they call)
            theirs = self._log_kinds(st, [c]) - self._VAGUE - {"no_such_host"}
            if self._latest_changed_callee(st, c) != s:
                theirs.discard("invalid_response")
            lines |= theirs
        if _change(st, s, i) in st.clean and not self._hanging(st, s):
            # found well once it had baked: what shows later is its doing only where it grows with uptime (a leak,
            # a filling disk, a draining pool, replicas that hang or crash in time), else something else happened
            off = [o for o in off if o in ("memory", "disk", "workers")]
            lines &= self._SLOW_LINES
        if lines:
            off.append("logs")
        return off

    def _showing(self, st: _Case) -> np.ndarray:
        """[S] components showing something wrong: an alert seen in this incident, errors, or far slower than usual."""
        err = st.signals.get("error_ratio", np.zeros(self.S))
        lat = st.signals.get("latency_ratio", np.ones(self.S))
        return st.seen.any(axis=1) | (err > 0.01) | (lat > 1.4)

    def _verify(self, st: _Case) -> np.ndarray:
        s, i = st.checking
        off = self._change_looks_wrong(st, s, i)
        if st.plan and not off:
            return self._investigate(st, st.plan.pop(0))
        st.plan = []
        st.phase = "watch"
        if not off:
            st.clean.add(_change(st, s, i))
            below = self._wrong_answers_below(st, s)
            if below is None:
                return self.wait()
            st.candidates = [below]
        else:
            verb = ("rollback_deploy", "rollback_config")[i]
            comp = self.context.components[s]
            st.off = off
            cls = self._class_of_change(st, s, i)
            st.candidates = [_Candidate(verb, comp, 0, self._settle(verb), cls, comp, checked=True)]
        st.start = min(st.start, st.t)
        st.phase = "act"
        return self._mitigate(st)

    def _latest_change_below(self, st: _Case, c: int) -> tuple[int, int] | None:
        """(component, 0: deploy / 1: config) of the latest change among what c calls (None: none changed)."""
        changed = [(float(st.changed[d, i]), d, i) for d in self.callees[c] for i in (0, 1)
                   if math.isfinite(st.changed[d, i])]
        return max(changed)[1:] if changed else None

    def _latest_changed_callee(self, st: _Case, c: int) -> int | None:
        """The component called by c whose deploy or config changed last (None: none changed)."""
        latest = self._latest_change_below(st, c)
        return None if latest is None else latest[0]

    def _wrong_answers_below(self, st: _Case, s: int) -> _Candidate | None:
        """Component s complains of wrong answers from what it calls: the latest change among its callees, if any,
        is the culprit (a build or a model that answers wrong raises nothing else)."""
        latest = self._latest_change_below(st, s)
        if "invalid_response" not in self._log_kinds(st, [s]) or latest is None:
            return None
        d, i = latest
        verb, comp = ("rollback_deploy", "rollback_config")[i], self.context.components[d]
        return _Candidate(verb, comp, 0, self._settle(verb), "wrong_answers", comp, checked=True)

    # ---- 2. triage ---------------------------------------------------------------------------------------------------
    def _open(self, st: _Case, alerts: np.ndarray) -> None:
        """Alerts are firing: an incident. Suspect a recent change first, else plan the localisation. It began when
        its alerts began firing, not when they had held long enough to be believed: a change made since is no suspect."""
        began = float(st.firing_since[alerts].min()) if alerts.any() else st.t
        st.start = min(st.start, began, st.burning_since)
        st.seen |= alerts
        st.plan = []                                # what was being checked gives way to the incident
        if alerts.any():
            st.candidates = self._changes_suspected(st, alerts.any(axis=1))
        else:       # only the users' alert: nothing points anywhere but at what changed below them — look first
            st.candidates = self._changes_suspected(st, np.isfinite(st.firing_since[:, self.users_alert]))
            for c in st.candidates:
                c.look = True
        if st.candidates:
            first = st.candidates[0]
            s_ = self.index[first.target]
            named = [self.A[a] for a in ("PodRestarting", "MemoryNearLimit", "DiskNearlyFull", "ReplicasUnavailable",
                                         "HighLatency")]
            if first.verb == "rollback_config" or not st.seen[s_, named].any():
                st.plan = [("logs", s_)]
            else:
                st.refine = True
            st.phase = "act"
            return
        self._relocalise(st)

    def _relocalise(self, st: _Case) -> None:
        st.root, st.signals, st.logs, st.traces = None, {}, {}, {}
        extra = []
        if st.seen[:, self.A["ReplicasUnavailable"]].any():
            extra.append("ready")
        if st.seen[:, self.A["TrafficSurge"]].any():
            extra.append("load_ratio")
        st.plan = self._query(*extra, "error_ratio", "latency_ratio")
        st.phase = "localise"

    def _changes_suspected(self, st: _Case, loud: np.ndarray) -> list[_Candidate]:
        idx = np.flatnonzero(loud | st.seen.any(axis=1))
        scope = np.zeros(self.S, bool)
        scope[idx] = True
        scope |= self.below[idx].any(axis=0)
        for s in idx:
            scope[self.callers[s]] = True
        out = []
        done = {(c.verb, c.target) for c in st.tried}
        for s, i in sorted(zip(*np.nonzero(np.isfinite(st.changed) & scope[:, None])),
                           key=lambda p: -st.changed[p[0], p[1]]):
            if st.changed[s, i] > st.start + 60.0:
                continue
            verb = ("rollback_deploy", "rollback_config")[int(i)]
            comp = self.context.components[int(s)]
            if (verb, comp) in done or (verb, comp, round(float(st.changed[s, i]))) in st.cleared:
                continue
            out.append(_Candidate(verb, comp, 0, self._settle(verb), self._class_of_change(st, int(s), int(i)), comp,
                                  look=_change(st, int(s), int(i)) in st.clean and not self._hanging(st, int(s))))
        return out

    # ---- 3. localise -------------------------------------------------------------------------------------------------
    _VAGUE = frozenset({"upstream_error", "deadline_exceeded", "slow_requests"})
    _SLOW_LINES = frozenset({"oom_killed", "disk_full", "fd_exhausted", "crash_back_off"})
    _NO_CHANGE_LINES = frozenset({"id_overflow", "wraparound", "read_only", "clock_skew"})   # what no push makes

    def _localise(self, st: _Case, alerts: np.ndarray) -> np.ndarray:
        if st.root is not None and st.plan and st.plan[0][0] == "logs":
            kinds = self._log_kinds(st, list(st.logs))
            if kinds - self._VAGUE:               # the suspect's own lines say enough: no need to read on
                st.plan = [p for p in st.plan if p[0] != "logs"]
        if st.plan:
            return self._investigate(st, st.plan.pop(0))
        if st.root is None:
            late = [q for q, a in (("ready", "ReplicasUnavailable"), ("load_ratio", "TrafficSurge"))
                    if q not in st.signals and st.seen[:, self.A[a]].any()]
            if late:                            # alerts that fired while we looked: their signal too
                st.plan = self._query(*late)
                return self._investigate(st, st.plan.pop(0))
            node = self._node_level(st) or st.deferred
            st.deferred, st.placed = [], True
            if node:
                st.candidates = node
                st.phase = "act"
                return self._mitigate(st)
            root = self._deepest(st, alerts)
            if root is None and st.burning_quietly and not st.paged:    # users feel what nothing here shows
                return self._page(st, None, stand_by=False)
            if root is None:                    # the alerts went away while we looked
                st.phase = "watch" if not st.tried else "resolved"
                st.clear_since = st.t
                return self.wait()
            st.root = self.context.components[root]
            bad = self._anomalous(st, alerts)
            sev = self._severity(st, alerts)
            callers = sorted((c for c in self.callers[root] if bad[c] or st.seen[c].any()), key=lambda c: -sev[c])
            st.plan = [("logs", root)] + [("logs", c) for c in callers[:1]]
            return self._investigate(st, st.plan.pop(0))
        root = self.index[st.root]
        if root not in st.traces and self._blames_callees(st, root):
            st.plan = [("traces", root)]
            return self._investigate(st, st.plan.pop(0))
        if root in st.traces:
            lower = self._lower_suspect(st, root)
            if lower is not None and lower != root and lower not in st.logs:
                st.root = self.context.components[lower]
                st.traces[lower] = st.traces[root]
                st.plan = [("logs", lower)]
                return self._investigate(st, st.plan.pop(0))
        st.candidates = self._diagnose(st, alerts)
        st.phase = "act"
        return self._mitigate(st)

    def _anomalous(self, st: _Case, alerts: np.ndarray) -> np.ndarray:
        err = st.signals.get("error_ratio", np.zeros(self.S))
        lat = st.signals.get("latency_ratio", np.ones(self.S))
        return alerts.any(axis=1) | (err > 0.03) | (lat > 2.0)

    def _severity(self, st: _Case, alerts: np.ndarray) -> np.ndarray:
        err = st.signals.get("error_ratio", np.zeros(self.S))
        lat = st.signals.get("latency_ratio", np.ones(self.S))
        return err + 0.1 * np.maximum(lat - 1.0, 0.0) + 0.05 * alerts.sum(axis=1) + 0.01 * st.seen.sum(axis=1)

    def _deepest(self, st: _Case, alerts: np.ndarray) -> int | None:
        bad = self._anomalous(st, alerts) | st.seen.any(axis=1)
        idx = np.flatnonzero(bad)
        if not len(idx):
            return None
        leaves = [s for s in idx if not any(bad[d] for d in self.callees[s])]
        sev = self._severity(st, alerts)
        return int(max(leaves or list(idx), key=lambda s: (sev[s], -s)))

    def _blames_callees(self, st: _Case, root: int) -> bool:
        """The suspect's logs speak only of failing calls, yet it has no documented callee: the map misses one."""
        kinds = self._log_kinds(st, [root])
        return "upstream_error" in kinds and kinds <= self._VAGUE and not self.callees[root]

    def _lower_suspect(self, st: _Case, root: int) -> int | None:
        hurt = st.traces[root].copy()
        hurt[root] = 0.0
        return int(np.argmax(hurt)) if hurt.max() > 0.05 else None

    def _node_level(self, st: _Case) -> list[_Candidate]:
        """Replicas missing in a pattern one node (or one zone) explains: drain it (reroute the zone).

        For each node and each zone, the ready share every component would have if it were lost (its replicas
        there gone); the place whose loss fits the observed `ready` ratios far better than no loss at all wins."""
        ready = st.signals.get("ready")
        if ready is None or not st.seen[:, self.A["ReplicasUnavailable"]].any():
            return []
        comps = self.context.components
        obs = np.minimum(ready, 1.0)
        where = [self.placement.get(c, []) for c in comps]
        places = [("drain_node", n, (n,)) for n in sorted(self.zones)] + \
            [("reroute_zone", z, tuple(n for n in sorted(self.zones) if self.zones[n] == z))
             for z in sorted(set(self.zones.values()))]
        base = float(((obs - 1.0) ** 2).sum())
        best, fit = None, base
        for verb, name, nodes in places:
            pred = np.array([1.0 - sum(n in nodes for n in w) / len(w) if w else 1.0 for w in where])
            if (pred >= 1.0).all():
                continue
            err = float(((obs - pred) ** 2).sum())
            if err < fit - 1e-9:
                best, fit = (verb, name, nodes), err
        if best is None or base < 0.3 or fit > 0.35 * base:
            return []
        verb, name, nodes = best
        if not self.valid(verb, name):
            return []
        cls = "zone_outage" if verb == "reroute_zone" else \
            ("gpu_lost" if self.pools.get(name) not in (None, "default") else "node_failure")
        return [_Candidate(verb, name, 0, self._settle(verb), cls, name)]

    # ---- 4. what the evidence says -----------------------------------------------------------------------------------
    def _log_kinds(self, st: _Case, comps: list[int]) -> set[str]:
        names = self.context.log_signatures
        out: set[str] = set()
        for c in comps:
            lg = st.logs.get(c)
            if lg is not None:
                out |= {names[i] for i in np.flatnonzero(lg > 0)}
        return out

    def _diagnose(self, st: _Case, alerts: np.ndarray) -> list[_Candidate]:
        """The mitigations the evidence points at, most specific first; a page where the runbook has no fix."""
        comps = self.context.components
        root = self.index[st.root]
        R = st.root
        seen = st.seen | alerts
        A = self.A
        says = {c: self._log_kinds(st, [c]) for c in st.logs}
        everywhere = set().union(*says.values()) if says else set()
        own = says.get(root, set())
        kind = self.kind.get(R)
        gpu = [n for n in self.placement.get(R, []) if self.pools.get(n) not in (None, "default")]
        out: list[_Candidate] = []
        err = st.signals.get("error_ratio", np.zeros(self.S))
        # a datastore is failed over only while it is sick now (its alerts still firing, or its lines or its
        # callers' saying so): one whose own failover already ran loses its writes in flight to a second, for nothing
        sick_now = bool(alerts[root].any() or own & {"read_only"} or "invalid_response" in everywhere)

        def add(verb: str, target: str | None, cls: str, blame: str | None, settle: float | None = None,
                argument: int = 0) -> None:
            if target is not None and not self.valid(verb, target):
                return
            if verb == "failover_db" and target == R and not sick_now:
                return
            if any(c.verb == verb and c.target == target for c in out):
                return
            out.append(_Candidate(verb, target, argument, settle or self._settle(verb), cls, blame))

        # a. what the error lines name exactly
        for c, kinds in says.items():
            if "certificate_expired" in kinds:
                called = {comps[d] for d in self.callees[c]} | {R}
                for cert, comp in sorted(self.certs.items()):
                    if comp in called:
                        add("renew_cert", cert, "certificate_expiry", comp)
            if "unauthorized" in kinds:
                add("rotate_credentials", comps[c], "expired_credentials", comps[c])
        if "clock_skew" in everywhere:
            skewed = [comps[c] for c, k in says.items() if "clock_skew" in k]
            nodes = set.intersection(*[set(self.placement.get(x, [])) for x in skewed])
            for n in sorted(nodes):
                add("sync_clock", n, "clock_skew", n)
            for n in sorted(nodes):
                add("drain_node", n, "clock_skew", n)
        for c, kinds in says.items():
            if kinds & {"rate_limited", "too_many_clients"}:
                hurt = [d for d in self.callees[c] if seen[d].any()] or ([root] if root != c else [])
                cls = "quota_exhaustion" if "rate_limited" in kinds else "connection_limit"
                for d in hurt:
                    add("raise_limit", comps[d], cls, comps[d])
        if own & {"id_overflow", "wraparound"}:
            add(*_PAGE, "hard_limit", R)
        if "read_only" in own:
            add("failover_db", R, "primary_failure", R)
        if "crash_back_off" in own:
            if root in self.consumers:
                add("dead_letter", R, "poison_message", R)
            add("restart", R, "crash_loop", R)
        if "oom_killed" in own:
            add("restart", R, "memory_leak", R)
        if "disk_full" in own:
            add("restart", R, "disk_fill", R)
        if "fd_exhausted" in own:
            add("restart", R, "fd_exhaustion", R)
        if "queue_full" in everywhere or seen[:, A["QueueBacklog"]].any():
            for q in self.queues:
                if seen[q].any() and q in self.consumer_of:
                    c = comps[self.consumer_of[q]]
                    add("restart", c, "consumer_stall", c)
        # b. a surge at the entry: one client flooding an endpoint (several times the usual load), or a crowd
        surging = np.flatnonzero(seen[:, A["TrafficSurge"]])
        if len(surging) and any(s in self.entries for s in surging):
            load = st.signals.get("load_ratio", np.ones(self.S))
            if load.max() >= 3.5:
                def pressure(e: str) -> float:
                    called = [self.index[c] for c in self.endpoint_calls[e] if c in self.index]
                    return float(np.mean(load[called])) if called else 0.0
                for e in sorted(self.endpoint_calls, key=lambda e: (-pressure(e), e))[:2]:
                    if pressure(e) > 1.5:
                        add("block_client", e, "client_flood", e)
            for s in sorted(surging, key=lambda s: -load[s])[:2]:
                add("scale", comps[s], "flash_crowd", comps[s], argument=self.scale_out)
        # c. replicas missing
        if seen[root, A["ReplicasUnavailable"]] or "no_endpoints" in everywhere:
            if kind == "datastore":
                add("failover_db", R, "primary_failure", R)
            elif root in self.consumers:
                add("restart", R, "consumer_stall", R)
            elif gpu:
                for n in gpu:
                    add("drain_node", n, "gpu_lost", n)
            else:
                add("scale", R, "capacity_removal", R, argument=self.scale_same)
                add("restart", R, "crash_loop", R)
        # d. a sick datastore: stale reads or failing writes are its primary's; slowness alone, shared with what runs
        #    beside it, is its node's (a neighbour taking the cores): fail over only a primary that fails
        if kind == "datastore" and (seen[root].any() or "invalid_response" in everywhere):
            failing = bool(seen[root, A["HighErrorRate"]] or seen[root, A["ReplicasUnavailable"]]
                           or "invalid_response" in everywhere or own & {"read_only", "no_endpoints"})
            if failing:
                add("failover_db", R, "primary_failure" if seen[root, A["HighErrorRate"]] else "replication_lag", R)
            else:
                for n in self._crowded_nodes(st, root, seen):
                    add("drain_node", n, "noisy_neighbour", n)
        # e. a sick accelerator: requests preempted (errors) or slow steps
        slow = bool(seen[root, A["HighLatency"]] or seen[root, A["CPUSaturated"]]
                    or own & {"deadline_exceeded", "slow_requests"})
        if gpu and (slow or seen[root, A["HighErrorRate"]]):
            if seen[root, A["HighErrorRate"]]:
                add("scale", R, "kv_cache_exhaustion", R, argument=self.scale_out)
            for n in gpu:
                add("drain_node", n, "gpu_degraded", n)
        # f. calls between services failing on the way (no change made them): the network, names, a partition
        if everywhere & {"no_such_host", "refused", "timeout"}:
            add(*_PAGE, "unreachable", R)
        # f2. the suspect's calls fail while what it calls looks well and its lines say nothing more: the network
        #     between them. Failing components spread over zones: reroute the zone holding most of their replicas.
        if not out and "upstream_error" in own and own <= self._VAGUE and self.callees[root] and \
                not any(err[d] > 0.03 or seen[d].any() for d in self.callees[root]):
            failing = [comps[c] for c in np.flatnonzero(seen[:, A["HighErrorRate"]])]
            zones: dict[str, int] = {}
            for c in failing:
                for n in self.placement.get(c, []):
                    z = self.zones.get(n)
                    if z is not None:
                        zones[z] = zones.get(z, 0) + 1
            if len(zones) >= 2 and len(failing) >= 3:
                z = sorted(zones, key=lambda z: (-zones[z], z))[0]
                add("reroute_zone", z, "zone_partition", z)
            add(*_PAGE, "unreachable", R)
        # g. a slow, CPU-bound service: a runaway process, else a neighbour on its node
        if slow and kind in ("service", None):
            add("restart", R, "cpu_hog", R)
            nodes = self.placement.get(R, [])
            if len(nodes) <= 2:
                for n in nodes:
                    add("drain_node", n, "noisy_neighbour", n)
        # h. a bug in the code or a dependency outside our hands, with no change to undo (errors the alerts alone
        #    spoke of, and no longer do, are past)
        if own & {"exception", "config"} or "invalid_response" in everywhere or \
                seen[root, A["HighErrorRate"]] and not st.quiet:
            add(*_PAGE, "error_rate", R)
        return out

    def _crowded_nodes(self, st: _Case, root: int, seen: np.ndarray) -> list[str]:
        """The nodes of component `root` where something else placed there is slow too (a node-level slowdown), when
        the pool keeps another node to move to."""
        comps = self.context.components
        lat = st.signals.get("latency_ratio", np.ones(self.S))
        slow = (lat > 1.4) | seen[:, self.A["HighLatency"]] | seen[:, self.A["CPUSaturated"]]
        out = []
        for n in self.placement.get(comps[root], []):
            beside = [s for s in range(self.S) if s != root and n in self.placement.get(comps[s], [])]
            spare = [m for m in self.zones if m != n and self.pools.get(m) == self.pools.get(n)]
            if spare and any(slow[s] for s in beside):
                out.append(n)
        return out

    # ---- 5/6. mitigate, watch, escalate ------------------------------------------------------------------------------
    def _settle(self, verb: str) -> float:
        return {"rollback_deploy": 240.0, "restart": 180.0, "scale": 180.0, "drain_node": 240.0,
                "reroute_zone": 240.0, "renew_cert": 120.0, "rotate_credentials": 120.0}.get(verb, 120.0)

    def _mitigate(self, st: _Case) -> np.ndarray:
        if st.plan:                                 # look once before acting
            return self._investigate(st, st.plan.pop(0))
        first = st.candidates[0] if st.candidates else None
        missing = self.A["ReplicasUnavailable"]
        if first is not None and first.verb.startswith("rollback") and not st.placed and \
                (st.seen[:, missing] | np.isfinite(st.firing_since[:, missing])).sum() >= 2:
            # replicas missing in several components at once: a lost node or zone explains that, a change in one of
            # them does not — look for the place first, and keep the changes for after
            st.deferred, st.candidates = st.candidates, []
            self._relocalise(st)
            return self._investigate(st, st.plan.pop(0))
        if first is not None and first.verb.startswith("rollback") and first.target in self.index and \
                self._log_kinds(st, [self.index[first.target]]) & self._NO_CHANGE_LINES:
            # its lines name a failure no deploy or config push makes (a wrapped counter, a read-only primary, a
            # skewed clock): its change is not the cause — localise, and the runbook's fix for what they name
            st.candidates = [c for c in st.candidates if c.target != first.target]
            if not st.candidates:
                self._relocalise(st)
                return self._investigate(st, st.plan.pop(0))
        if st.candidates and st.candidates[0].verb.startswith("rollback") and st.candidates[0].target in self.index:
            c = st.candidates[0]
            c.fault_class = self._class_of_change(st, self.index[c.target], int(c.verb == "rollback_config"))
        while st.candidates:
            c = st.candidates[0]
            if c.verb.startswith("rollback") and not c.checked and c.target in self.index and \
                    (c.look or not st.seen[self.index[c.target]].any()):
                return self._look_at_change(st, c)
            st.candidates.pop(0)
            if c.verb == "page_human":
                return self._page(st, c)
            if any(x.verb == c.verb and x.target == c.target for x in st.tried):
                continue
            st.tried.append(c)
            if st.guess is None or not st.guess.verb.startswith("rollback"):
                st.guess = c
            st.settle_until = st.t + c.settle
            st.clear_since = math.inf
            st.phase = "fixwatch"
            return self.action(c.verb, c.target, c.argument)
        return self._page(st, None)

    def _look_at_change(self, st: _Case, c: _Candidate) -> np.ndarray:
        """A change in a component that shows nothing itself (a red herring, as often as not, on a busy day): look at
        it, and its callers' lines, before undoing it."""
        s = self.index[c.target]
        st.checking = (s, int(c.verb == "rollback_config"))
        st.plan = self._change_plan(s, "saturation")
        st.phase = "suspect"
        return self._investigate(st, st.plan.pop(0))

    def _suspect(self, st: _Case, alerts: np.ndarray) -> np.ndarray:
        """Judge the change looked at: found wrong, roll it back; else clear it and go on with the rest. Every alert
        gone quiet while we looked clears it too: a bad change does not heal itself."""
        s, i = st.checking
        off = [] if st.quiet else self._change_looks_wrong(st, s, i)
        if st.plan and not off:
            return self._investigate(st, st.plan.pop(0))
        st.plan = []
        c = st.candidates.pop(0)
        if off:
            st.off, c.checked = off, True
            st.candidates.insert(0, c)
        else:
            st.cleared.add((c.verb, c.target, round(float(st.changed[s, i]))))
        st.phase = "act"
        if st.candidates:
            return self._mitigate(st)
        self._relocalise(st)
        return self._localise(st, alerts)

    def _page(self, st: _Case, why: _Candidate | None, stand_by: bool = True) -> np.ndarray:
        if why is None and st.quiet and not st.tried and not st.burning_quietly:   # it passed on its own: wake no one
            st.guess = st.guess or _Candidate("page_human", None, blame=st.root)
            st.phase, st.clear_since = "resolved", min(st.clear_since, st.t)
            return self.wait()
        if why is None and not st.users_hurt and stand_by:    # out of ideas, but users are well: no one to wake yet
            st.phase, st.standby_since = "standby", st.t
            return self.wait()
        st.paged = True
        st.phase = "paged"
        if st.guess is None or why is not None:
            st.guess = why or st.guess or _Candidate("page_human", None, blame=st.root)
        if st.escalated:                           # a human is on it already
            return self.wait()
        return self.action("page_human", 0)

    def _symptoms(self, st: _Case, alerts: np.ndarray) -> np.ndarray:
        """[S] components whose alerts say users (or the work) still suffer. Replicas still coming up after a drain
        are the drain's doing, not the fault's."""
        loud = alerts.copy()
        loud[:, self.A["TrafficSurge"]] = False
        if st.tried and st.tried[-1].verb in ("drain_node", "reroute_zone", "scale"):
            loud[:, self.A["ReplicasUnavailable"]] = False
        return loud.any(axis=1)

    def _users_hurt(self, st: _Case) -> bool:
        """The users' alert fires: whatever the components' alerts say, it is not over."""
        return math.isfinite(st.burning_since)

    def _healthy(self, st: _Case) -> bool:
        """Quiet and well: no errors to speak of, and no component much slower than its (recent) usual."""
        err = st.signals.get("error_ratio")
        lat = st.signals.get("latency_ratio")
        if err is None or lat is None:
            return True
        return bool(err.max() <= 0.02 and lat.max() <= 1.6) and not self._burning_quietly(st)

    def _fixwatch(self, st: _Case, alerts: np.ndarray, loud: np.ndarray) -> np.ndarray:
        t = st.t
        if st.refine and st.guess is not None and st.guess.target in self.index:
            st.refine = False                      # name the failure while the fix lands
            return self._investigate(st, ("logs", self.index[st.guess.target]))
        if st.guess is not None and st.guess.target in self.index:
            self._refine_class(st)
        if st.plan:                                 # confirming the recovery
            return self._investigate(st, st.plan.pop(0))
        hurt = self._symptoms(st, alerts)
        if not (hurt.any() or self._users_hurt(st)):
            st.clear_since = min(st.clear_since, t)
            if t - st.clear_since < self.clear_for:
                return self.wait()
            if not st.confirming:
                st.confirming = True
                st.signals = {}
                st.plan = self._query("error_ratio", "latency_ratio", "slo_burn")
                return self._investigate(st, st.plan.pop(0))
            st.confirming = False
            if self._healthy(st) or t >= st.settle_until + 900.0:
                st.phase = "resolved"
                return self.wait()
            # quiet, but not well: the fix did not take — yet users are well unless their SLOs burn (then no one is
            # woken for it before they feel it again)
            st.users_hurt = self._burning_quietly(st)
        else:
            st.clear_since = math.inf
            st.confirming = False
            if t < st.settle_until and not (not st.paged and t >= self.page_by and
                                            t >= st.settle_until - st.tried[-1].settle + 90.0):
                return self.wait()
        st.failed += 1
        if not st.paged and (t >= self.page_by or st.failed >= self.max_failed):
            return self._page(st, None)
        if not st.candidates:                      # look again, with what we know now
            st.seen |= alerts
            st.candidates = self._changes_suspected(st, hurt)
            if not st.candidates:
                self._relocalise(st)
                return self._localise(st, alerts)
        st.phase = "act"
        return self._mitigate(st)

    def _resolved(self, st: _Case, alerts: np.ndarray, loud: np.ndarray) -> np.ndarray:
        if (self._symptoms(st, alerts).any() or self._users_hurt(st)) and \
                st.t - st.clear_since >= self.clear_for + self.reopen_after and alerts.any():
            return self._new_incident(st, alerts)   # long quiet, then alerts: another problem, maybe a new cause
        if self._symptoms(st, alerts).any() or self._users_hurt(st):      # it came back
            st.clear_since = math.inf
            st.phase = "fixwatch"
            st.settle_until = st.t
            return self.wait()
        if self.submit_after is not None and st.t - st.clear_since >= self.clear_for + self.submit_after:
            return self._hand_over(st, loud, final=False)
        return self.wait()

    def _new_incident(self, st: _Case, alerts: np.ndarray) -> np.ndarray:
        """Forget the last incident's working state (not the change history) and triage the new one. The hand-over
        names the incident users felt: an earlier one's diagnosis is kept unless this one hurts them too."""
        if st.users_hurt and st.guess is not None:
            st.kept = (st.guess, st.root)
        st.start, st.seen = st.t, np.zeros_like(st.seen)
        st.tried, st.candidates, st.plan, st.failed, st.deferred, st.placed = [], [], [], 0, [], False
        st.root, st.refine, st.confirming, st.clear_since = None, False, False, math.inf
        st.escalated, st.users_hurt = st.escalated and st.paged, math.isfinite(st.burning_since)
        st.burning_quietly = False
        self._open(st, alerts)
        for c in st.candidates:     # alerts back after a fix are more often the last fault's aftermath than a change's
            c.look = True
        return self._localise(st, alerts) if st.phase == "localise" else self._mitigate(st)

    # ---- 7. hand over ------------------------------------------------------------------------------------------------
    def _hand_over(self, st: _Case, loud: np.ndarray, final: bool) -> np.ndarray:
        ctx = self.context
        if self._users_hurt(st) or (loud.any() and not final):
            return self.wait()                     # never leave while users suffer (nor early, while alerts fire)
        st.submitted = True
        if st.kept is not None and not st.users_hurt:
            st.guess, st.root = st.kept
        if st.guess is None or not math.isfinite(st.start):
            return self.action("submit", 0, ctx.fault_classes.index("no_fault"))
        blame = st.guess.blame or st.root
        target = blame if blame in ctx.places and self.valid("submit", blame) else (st.root or ctx.places[0])
        cls = st.guess.fault_class if st.guess.fault_class in ctx.fault_classes else "error_rate"
        return self.action("submit", target, ctx.fault_classes.index(cls))

    # ---- naming the failure ------------------------------------------------------------------------------------------
    def _refine_class(self, st: _Case) -> None:
        g = st.guess
        if g.verb in ("rollback_deploy", "rollback_config"):
            g.fault_class = self._class_of_change(st, self.index[g.target], int(g.verb == "rollback_config"))

    def _class_of_change(self, st: _Case, s: int, i: int) -> str:
        """The best-guess fault class of a change (i: 0 deploy, 1 config) on component s, from everything seen: its
        alerts, the lines in its logs and its callers', what a verification found."""
        A, seen, off = self.A, st.seen[s], st.off
        kind = self.kind.get(self.context.components[s])
        logs = st.ever.get(s, set())
        callers_say = set().union(*[st.ever.get(c, set()) for c in self.callers[s]])
        below = [d for d in self.callees[s] if st.seen[d].any()]
        if kind == "cache" and i == 1:
            return "cache_failure"
        if "crash_back_off" in logs or seen[A["PodRestarting"]]:
            return "crash_loop"
        if "oom_killed" in logs or seen[A["MemoryNearLimit"]] or "memory" in off:
            return "memory_leak"
        if "disk_full" in logs or seen[A["DiskNearlyFull"]] or "disk" in off:
            return "disk_fill"
        if "fd_exhausted" in logs:
            return "fd_exhaustion"
        if logs & {"refused", "no_such_host", "timeout"}:
            return "unreachable"
        if kind == "cache":
            return "cache_failure"
        if "too_many_clients" in logs | callers_say or kind == "datastore" and i == 1:
            return "connection_limit"
        if "invalid_response" in callers_say:
            return "wrong_answers"
        if i == 0:                                  # deploys: a build that errs, stalls, leaks or is slow
            if seen[A["ReplicasUnavailable"]]:
                return "deadlock"
            if kind == "datastore":
                return "slowdown"
            if any(self.kind.get(self.context.components[d]) == "datastore" and
                   (st.seen[d, A["HighLatency"]] or st.seen[d, A["CPUSaturated"]]) for d in below):
                return "lock_contention"
            if seen[A["WorkersExhausted"]] or "exception" not in logs and seen[A["HighErrorRate"]] and \
                    seen[A["HighLatency"]] and not seen[A["CPUSaturated"]]:
                return "connection_pool_leak"
            if logs & {"exception"} or seen[A["HighErrorRate"]] and not seen[A["HighLatency"]]:
                return "error_rate"
            return "slowdown"
        if seen[A["CPUSaturated"]] or "cpu" in off:
            return "cpu_hog"
        if seen[A["ReplicasUnavailable"]]:
            ready = st.signals.get("ready")
            return "autoscaler_bounds" if ready is not None and ready[s] < 0.05 else "health_check_flap"
        if logs & {"exception", "config"}:
            return "error_rate"
        if seen[A["HighLatency"]] or "latency" in off or logs & {"deadline_exceeded", "slow_requests"}:
            return "slowdown"
        return "error_rate"
