"""An Alertmanager for a batch of worlds: routing, grouping, group_wait / group_interval / repeat_interval, resolved
notifications, silences and acknowledgements.

It follows Alertmanager's dispatcher and notification log: firing alerts enter an aggregation group (per route and
group_by label values); a new group flushes after `group_wait`, then every `group_interval`; a flush sends when a
firing alert is new to the receiver, when something resolved, or when `repeat_interval` has passed since the last
send. Silenced alerts are dropped from the flush (nothing else changes: the evaluator still fires them and the truth
is untouched); an acknowledged page stops repeating until it resolves.

Routes and groups are shared by every world (alert label sets are); per-world state is arrays [B, K] over group
memberships and [B, G] over groups, so the per-tick `update` is numpy over worlds and only touches a world where an
alert started or stopped firing or a group timer is due. Notifications are rare and kept as per-world lists.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsworld.observe.alerts.rules import Duration
from opsworld.observe.alerts.wire import go_quote, label_set_string, rfc3339

if TYPE_CHECKING:
    from opsworld.observe.alerts.evaluator import RuleEvaluator

PAGER, TICKET = "pager", "ticket"
RESEND_DELAY = 60.0   # Prometheus re-sends firing alerts at least this often; their endsAt is 4 of these ahead
_EPS = 1e-6
_OPS = ("=", "!=", "=~", "!~")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:\\.|[^"\\])*)"|(.*?))\s*')
_SILENCE_NS = uuid.UUID("5b7e3c1e-8f0a-4d2b-9a57-0c6d2e4f1a90")   # silence ids: UUIDs, deterministic per batch

Matcher = tuple[str, str, str]   # (label, op, value), op one of = != =~ !~


def parse_matcher(text: str) -> Matcher:
    """`severity="page"`, `service=~"cart.*"` -> (label, op, value), as Alertmanager's route matchers are written."""
    match = _MATCHER.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a matcher; write e.g. severity=\"page\" or service=~\"cart.*\"")
    name, op, quoted, bare = match.groups()
    value = bytes(quoted, "utf-8").decode("unicode_escape") if quoted is not None else bare
    return check_matcher((name, op, value))


def check_matcher(matcher: Any) -> Matcher:
    """A (label, op, value) triple, checked: a known op, and a regex that compiles."""
    if not (isinstance(matcher, (tuple, list)) and len(matcher) == 3 and all(isinstance(x, str) for x in matcher)):
        raise ValueError(f"{matcher!r} is not a matcher; write (label, op, value) such as ('service', '=', 'cart')")
    name, op, value = matcher
    if op not in _OPS:
        raise ValueError(f"unknown matcher op {op!r}; use one of = != =~ !~")
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regex {value!r} in matcher on {name!r}: {exc}") from None
    return (name, op, value)


def matches(matcher: Matcher, labels: dict[str, str]) -> bool:
    """Whether a label set satisfies one matcher (a missing label reads as "", regexes are anchored)."""
    name, op, value = matcher
    got = labels.get(name, "")
    if op == "=":
        return got == value
    if op == "!=":
        return got != value
    hit = re.fullmatch(value, got, re.DOTALL) is not None
    return hit if op == "=~" else not hit


def _matcher_text(matcher: Matcher) -> str:
    return f"{matcher[0]}{matcher[1]}{go_quote(matcher[2])}"


# ---- routing ------------------------------------------------------------------------------------------------------
class Route(BaseModel):
    """An Alertmanager route: unset timings, group_by and receiver are inherited from the parent."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    receiver: str | None = None
    group_by: list[str] | None = None        # ["..."] groups by every label
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    matchers: list[str] = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")
    routes: list["Route"] = Field(default_factory=list)

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_matcher(text)
        return value


def default_route() -> Route:
    """Pages for `severity="page"`, tickets for everything else, grouped by alertname and service."""
    return Route(receiver=TICKET, group_by=["alertname", "service"], group_wait="30s", group_interval="5m",
                 repeat_interval="4h", routes=[Route(receiver=PAGER, matchers=['severity="page"'])])


@dataclass(eq=False)
class _Node:
    """A route with everything inherited filled in."""

    key: str
    receiver: str
    group_by: tuple[str, ...] | None      # None: every label
    group_wait: float
    group_interval: float
    repeat_interval: float
    matchers: list[Matcher]
    continue_: bool
    children: list["_Node"] = field(default_factory=list)

    def match(self, labels: dict[str, str]) -> list["_Node"]:
        """The routes an alert goes to (Alertmanager's depth-first match; `continue` keeps looking)."""
        if not all(matches(m, labels) for m in self.matchers):
            return []
        out: list[_Node] = []
        for child in self.children:
            got = child.match(labels)
            if got:
                out += got
                if not child.continue_:
                    break
        return out or [self]


def _compile(route: Route, parent: _Node | None = None, index: int = 0) -> _Node:
    if parent is None:
        if route.receiver is None:
            raise ValueError("the root route needs a receiver")
        # Alertmanager's defaults for a root route that leaves them out
        base = {"group_wait": 30.0, "group_interval": 300.0, "repeat_interval": 4 * 3600.0}
        timings = {n: getattr(route, n) if getattr(route, n) is not None else base[n] for n in base}
        node = _Node("{}", route.receiver, None if route.group_by is None or "..." in route.group_by
                     else tuple(route.group_by), timings["group_wait"], timings["group_interval"],
                     timings["repeat_interval"], [], False)
    else:
        matchers = [parse_matcher(m) for m in route.matchers]
        own = "{" + ",".join(_matcher_text(m) for m in matchers) + "}"
        group_by = parent.group_by if route.group_by is None else (
            None if "..." in route.group_by else tuple(route.group_by))
        node = _Node(f"{parent.key}/{own}" + (f"/{index}" if not matchers else ""),
                     route.receiver or parent.receiver, group_by,
                     parent.group_wait if route.group_wait is None else route.group_wait,
                     parent.group_interval if route.group_interval is None else route.group_interval,
                     parent.repeat_interval if route.repeat_interval is None else route.repeat_interval,
                     matchers, route.continue_)
    node.children = [_compile(child, node, i) for i, child in enumerate(route.routes)]
    return node


# ---- records ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NotifiedAlert:
    """One alert in a notification."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    status: Literal["firing", "resolved"]
    starts_at: float
    ends_at: float | None
    value: float


@dataclass(frozen=True)
class Notification:
    """What a receiver got: one aggregation group's alerts at one flush."""

    time: float
    receiver: str
    group_labels: dict[str, str]
    alerts: tuple[NotifiedAlert, ...]
    status: Literal["firing", "resolved"]
    group_key: str


@dataclass(frozen=True)
class Silence:
    """A silence: alerts matching every matcher are not notified between `starts_at` and `ends_at`."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    worlds: tuple[int, ...] | None     # None: every world of the batch

    def state(self, at: float | None) -> Literal["pending", "active", "expired"]:
        """Its state at `at` (Unix seconds; None: before the first update, so nothing has started)."""
        if at is None or at < self.starts_at:
            return "pending"
        return "active" if at < self.ends_at else "expired"

    def matches(self, labels: dict[str, str]) -> bool:
        return all(matches(m, labels) for m in self.matchers)

    def applies_to(self, world: int) -> bool:
        return self.worlds is None or world in self.worlds


@dataclass(eq=False)
class _Group:
    key: str
    node: _Node
    labels: dict[str, str]
    members: list[int] = field(default_factory=list)   # membership indices


class Notifier:
    """Alertmanager for one batch: `update(at, evaluator)` every tick, then read `pages(world)` / `notifications`."""

    def __init__(self, route: Route | None = None) -> None:
        self.route = route or default_route()
        self._root = _compile(self.route)
        self._evaluator: RuleEvaluator | None = None
        self.worlds = 0
        self.now: float | None = None
        self.groups: list[_Group] = []
        self._group_index: dict[str, int] = {}
        self._mem_alert = np.zeros(0, dtype=np.int64)   # [K] membership -> alert instance
        self._mem_group = np.zeros(0, dtype=np.int64)   # [K] membership -> group
        self._routed = 0                                 # evaluator instances routed so far
        self._silences: list[Silence] = []
        self._silence_hits: dict[str, np.ndarray] = {}  # silence id -> [A] whether it matches each instance
        self._notifications: list[list[Notification]] = []

    # ---- binding and growth ---------------------------------------------------------------------------------------
    def _bind(self, evaluator: "RuleEvaluator") -> None:
        if self._evaluator is evaluator:
            return
        if self._evaluator is not None:
            raise ValueError("this notifier already follows another evaluator; make one Notifier per batch")
        self._evaluator = evaluator
        B = self.worlds = evaluator.worlds
        for s in self._silences:
            self._check_worlds(s.worlds)
        self._in_group = np.zeros((B, 0), dtype=bool)          # [B, K] alert is in its aggregation group
        self._prev_firing = np.zeros((B, 0), dtype=bool)       # [B, K] firing at the last update
        self._sent_firing = np.zeros((B, 0), dtype=bool)       # [B, K] firing in the group's last notification
        self._sent_resolved = np.zeros((B, 0), dtype=bool)     # [B, K] resolved in the group's last notification
        self._starts_at = np.zeros((B, 0))                     # [B, K] when it started firing
        self._ends_at = np.zeros((B, 0))                       # [B, K] when it resolved (NaN while firing)
        self._active = np.zeros((B, 0), dtype=bool)            # [B, G] the group holds alerts
        self._next_flush = np.zeros((B, 0))                    # [B, G] its timer (inf: none)
        self._last_sent = np.zeros((B, 0))                     # [B, G] its last notification (NaN: never)
        self._acked = np.zeros((B, 0), dtype=bool)             # [B, A] acknowledged while firing
        self._group_wait = np.zeros(0)                         # [G] each group's route's group_wait
        self._notifications = [[] for _ in range(B)]

    def _route_new(self) -> None:
        """Route instances the evaluator discovered since the last update; new groups and memberships get columns."""
        ev = self._evaluator
        assert ev is not None
        A = len(ev.instances)
        if A == self._routed:
            return
        alerts, groups = [], []
        for a in range(self._routed, A):
            labels = ev.instances[a].labels
            for node in self._root.match(labels):
                group_labels = ({k: v for k, v in labels.items()} if node.group_by is None
                                else {k: labels[k] for k in node.group_by if labels.get(k, "") != ""})
                key = f"{node.key}:{label_set_string(group_labels)}"
                g = self._group_index.get(key)
                if g is None:
                    g = self._group_index[key] = len(self.groups)
                    self.groups.append(_Group(key, node, group_labels))
                self.groups[g].members.append(len(self._mem_alert) + len(alerts))
                alerts.append(a)
                groups.append(g)
        self._routed = A
        B, K, G = self.worlds, len(alerts), len(self.groups) - self._active.shape[1]
        self._mem_alert = np.concatenate([self._mem_alert, np.array(alerts, dtype=np.int64)])
        self._mem_group = np.concatenate([self._mem_group, np.array(groups, dtype=np.int64)])

        def wider(arr: np.ndarray, n: int, fill: Any) -> np.ndarray:
            return np.concatenate([arr, np.full((B, n), fill, dtype=arr.dtype)], axis=1)

        self._in_group, self._prev_firing = wider(self._in_group, K, False), wider(self._prev_firing, K, False)
        self._sent_firing, self._sent_resolved = wider(self._sent_firing, K, False), wider(self._sent_resolved, K, False)
        self._starts_at, self._ends_at = wider(self._starts_at, K, np.nan), wider(self._ends_at, K, np.nan)
        self._active, self._next_flush = wider(self._active, G, False), wider(self._next_flush, G, np.inf)
        self._last_sent = wider(self._last_sent, G, np.nan)
        self._acked = wider(self._acked, A - self._acked.shape[1], False)
        self._group_wait = np.array([g.node.group_wait for g in self.groups])
        self._silence_hits.clear()   # recomputed for the longer instance list

    # ---- the per-tick update ---------------------------------------------------------------------------------------
    def update(self, at: float, evaluator: "RuleEvaluator") -> None:
        """Take the evaluator's firing alerts at `at` and send the notifications that are due."""
        self._bind(evaluator)
        self.now = at
        self._route_new()
        firing = evaluator.firing()                               # [B, A]
        self._acked &= firing                                     # an acknowledgement lasts while the alert fires
        now = firing[:, self._mem_alert]                          # [B, K]
        rising = now & ~self._prev_firing
        falling = self._prev_firing & ~now
        if rising.any():
            fired = evaluator.fired_at[:, self._mem_alert]
            self._starts_at = np.where(rising, fired, self._starts_at)
            self._ends_at[rising] = np.nan
            new = rising & ~self._in_group
            self._in_group |= rising
            if new.any():
                # a group that gets its first alert waits group_wait before its first notification
                b, k = np.nonzero(new)
                touched = np.zeros_like(self._active)
                touched[b, self._mem_group[k]] = True
                start = touched & ~self._active
                self._active |= start
                self._next_flush = np.where(start, at + self._group_wait[None, :], self._next_flush)
        if falling.any():
            resolved = evaluator.resolved_at[:, self._mem_alert]
            self._ends_at = np.where(falling, np.where(np.isnan(resolved), at, resolved), self._ends_at)
        self._prev_firing = now
        due = self._active & (self._next_flush <= at + _EPS)
        if due.any():
            for b, g in zip(*np.nonzero(due)):
                self._flush(int(b), int(g), at, firing)

    def _flush(self, b: int, g: int, at: float, firing: np.ndarray) -> None:
        group = self.groups[g]
        ks = np.array(group.members, dtype=np.int64)
        alerts = self._mem_alert[ks]
        inside = self._in_group[b, ks]
        fires = firing[b, alerts]
        muted = self._silenced(b, alerts, at)
        firing_k = ks[inside & fires & ~muted]
        resolved_k = ks[inside & ~fires & ~muted]
        if (firing_k.size or resolved_k.size) and self._needs_update(b, g, ks, firing_k, resolved_k, at):
            self._send(b, g, firing_k, resolved_k, at)
            self._sent_firing[b, ks] = np.isin(ks, firing_k)
            self._sent_resolved[b, ks] = np.isin(ks, resolved_k)
            self._last_sent[b, g] = at
        # resolved alerts leave the group once flushed, muted or not, as Alertmanager deletes them
        self._in_group[b, ks[inside & ~fires]] = False
        if self._in_group[b, ks].any():
            self._next_flush[b, g] = at + group.node.group_interval
        else:
            self._active[b, g], self._next_flush[b, g] = False, np.inf

    def _needs_update(self, b: int, g: int, ks: np.ndarray, firing_k: np.ndarray, resolved_k: np.ndarray,
                      at: float) -> bool:
        """Alertmanager's DedupStage against the group's last notification to this receiver."""
        last = self._last_sent[b, g]
        if np.isnan(last):
            return firing_k.size > 0
        sent_firing = set(ks[self._sent_firing[b, ks]].tolist())
        if not set(firing_k.tolist()) <= sent_firing:
            return True                                 # a firing alert the receiver has not heard of
        if firing_k.size == 0:
            return bool(sent_firing)                    # everything resolved: say so once
        if not set(resolved_k.tolist()) <= set(ks[self._sent_resolved[b, ks]].tolist()):
            return True
        if at - last + _EPS >= self.groups[g].node.repeat_interval:
            # an acknowledged page does not repeat; a new alert in the group still notifies (above)
            return not self._acked[b, self._mem_alert[firing_k]].all()
        return False

    def _send(self, b: int, g: int, firing_k: np.ndarray, resolved_k: np.ndarray, at: float) -> None:
        ev = self._evaluator
        assert ev is not None
        group = self.groups[g]
        out = []
        for status, ks in (("firing", firing_k), ("resolved", resolved_k)):
            for k in ks:
                a = int(self._mem_alert[k])
                inst = ev.instances[a]
                ends = self._ends_at[b, k]
                out.append(NotifiedAlert(inst.fingerprint, dict(inst.labels), ev.annotations(a, b), status,
                                         float(self._starts_at[b, k]), None if status == "firing" else float(ends),
                                         float(ev.value[b, a])))
        self._notifications[b].append(Notification(at, group.node.receiver, dict(group.labels), tuple(out),
                                                   "firing" if firing_k.size else "resolved", group.key))

    # ---- silences --------------------------------------------------------------------------------------------------
    def silence(self, matchers: list[Matcher], starts: float, ends: float, created_by: str, comment: str,
                worlds: list[int] | None = None) -> str:
        """Silence alerts matching every matcher from `starts` to `ends` (Unix s) in `worlds` (None: all);
        returns the silence's id. Only notifications change: the alerts keep firing."""
        checked = tuple(check_matcher(m) for m in matchers)
        if not checked:
            raise ValueError("a silence needs at least one matcher, e.g. ('alertname', '=', 'HighErrorRate')")
        if all(matches(m, {}) for m in checked):
            raise ValueError("at least one matcher must not match the empty string, or the silence would mute "
                             "every alert")
        if not ends > starts:
            raise ValueError(f"the silence ends ({ends}) before it starts ({starts}); give ends after starts")
        if not created_by.strip():
            raise ValueError("created_by is required: say who silences")
        chosen = None if worlds is None else tuple(sorted({int(w) for w in worlds}))
        self._check_worlds(chosen)
        sid = str(uuid.uuid5(_SILENCE_NS, str(len(self._silences))))
        self._silences.append(Silence(sid, checked, float(starts), float(ends), created_by, comment, chosen))
        return sid

    def expire(self, silence_id: str) -> None:
        """End a silence now (at the last update's time)."""
        for i, s in enumerate(self._silences):
            if s.id == silence_id:
                now = self.now if self.now is not None else s.starts_at
                if s.state(now) == "expired":
                    raise ValueError(f"silence {silence_id} has already expired")
                self._silences[i] = replace(s, starts_at=min(s.starts_at, now), ends_at=now)
                self._silence_hits.pop(silence_id, None)
                return
        raise KeyError(f"no silence with id {silence_id}")

    def silences(self, world: int) -> list[Silence]:
        """Every silence of one world, whatever its state (see `Silence.state(notifier.now)`)."""
        self._check_world(world)
        return [s for s in self._silences if s.applies_to(world)]

    def silences_json(self, world: int) -> list[dict[str, Any]]:
        """`GET /api/v2/silences` for one world."""
        return [{"id": s.id, "matchers": [{"name": n, "value": v, "isRegex": op in ("=~", "!~"),
                                           "isEqual": op in ("=", "=~")} for n, op, v in s.matchers],
                 "startsAt": rfc3339(s.starts_at), "endsAt": rfc3339(s.ends_at), "createdBy": s.created_by,
                 "comment": s.comment, "status": {"state": s.state(self.now)}} for s in self.silences(world)]

    def _hits(self, s: Silence) -> np.ndarray:
        hits = self._silence_hits.get(s.id)
        if hits is None:
            ev = self._evaluator
            labels = [] if ev is None else [inst.labels for inst in ev.instances[:self._routed]]
            hits = self._silence_hits[s.id] = np.array([s.matches(lab) for lab in labels], dtype=bool)
        return hits

    def _silenced(self, world: int, alerts: np.ndarray, at: float) -> np.ndarray:
        """[len(alerts)] whether an active silence of `world` mutes each alert instance."""
        out = np.zeros(len(alerts), dtype=bool)
        for s in self._silences:
            if s.state(at) == "active" and s.applies_to(world):
                out |= self._hits(s)[alerts]
        return out

    def silenced_by(self, world: int, a: int) -> list[str]:
        """Ids of the active silences muting alert instance `a` in `world`."""
        return [s.id for s in self._silences
                if s.state(self.now) == "active" and s.applies_to(world) and bool(self._hits(s)[a])]

    # ---- acknowledgements ------------------------------------------------------------------------------------------
    def acknowledge(self, key: str, world: int) -> int:
        """Acknowledge a firing alert (by fingerprint) or every firing alert of a group (by group key) in one world,
        so that its page stops repeating; returns how many alerts were acknowledged. It lapses when they resolve."""
        self._check_world(world)
        ev = self._evaluator
        if ev is None:
            raise KeyError(f"nothing has fired yet: no alert or group {key!r}")
        firing = ev.firing()[world]
        g = self._group_index.get(key)
        if g is not None:
            alerts = self._mem_alert[np.array(self.groups[g].members, dtype=np.int64)]
        else:
            alerts = np.array([a for a, inst in enumerate(ev.instances[:self._routed]) if inst.fingerprint == key],
                              dtype=np.int64)
            if not alerts.size:
                raise KeyError(f"no alert fingerprint or group key {key!r}; see notifications' group_key or "
                               "alerts' fingerprint")
        alerts = alerts[firing[alerts]]
        self._acked[world, alerts] = True
        return int(alerts.size)

    def acknowledged(self, world: int) -> list[str]:
        """Fingerprints of the acknowledged firing alerts of one world."""
        ev = self._evaluator
        if ev is None:
            return []
        return [ev.instances[int(a)].fingerprint for a in np.flatnonzero(self._acked[world])]

    # ---- views -----------------------------------------------------------------------------------------------------
    def notifications(self, world: int) -> list[Notification]:
        """Every notification sent in one world, oldest first."""
        self._check_world(world)
        return list(self._notifications[world]) if self._notifications else []

    def pages(self, world: int) -> list[Notification]:
        """The notifications to the pager receiver."""
        return [n for n in self.notifications(world) if n.receiver == PAGER]

    def alerts_json(self, world: int) -> list[dict[str, Any]]:
        """`GET /api/v2/alerts` for one world: the firing alerts, with `status.state` "suppressed" and
        `silencedBy` where a silence mutes them."""
        self._check_world(world)
        ev = self._evaluator
        if ev is None:
            return []
        out = []
        for a in np.flatnonzero(ev.firing()[world]):
            a = int(a)
            inst = ev.instances[a]
            silenced = self.silenced_by(world, a) if a < self._routed else []
            receivers = sorted({n.receiver for n in self._root.match(inst.labels)})
            interval = ev.rule_file.groups[ev.rules[inst.rule].group].interval
            out.append({
                "labels": dict(inst.labels), "annotations": ev.annotations(a, world),
                "startsAt": rfc3339(float(ev.fired_at[world, a])),
                "endsAt": rfc3339((self.now or 0.0) + 4 * max(RESEND_DELAY, interval)),
                "updatedAt": rfc3339(self.now), "fingerprint": inst.fingerprint, "generatorURL": "",
                "receivers": [{"name": r} for r in receivers],
                "status": {"state": "suppressed" if silenced else "active", "silencedBy": silenced,
                           "inhibitedBy": [], "mutedBy": []},
            })
        return out

    def _check_world(self, world: int) -> None:
        if self.worlds and not 0 <= world < self.worlds:
            raise IndexError(f"world {world} is out of range: this batch has worlds 0..{self.worlds - 1}")

    def _check_worlds(self, worlds: tuple[int, ...] | None) -> None:
        if worlds is not None and self.worlds:
            bad = [w for w in worlds if not 0 <= w < self.worlds]
            if bad:
                raise IndexError(f"worlds {bad} are out of range: this batch has worlds 0..{self.worlds - 1}")
