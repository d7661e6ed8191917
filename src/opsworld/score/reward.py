"""The reward, kept tick by tick from the truth state and the ground truth — never from alerts or any telemetry.

Units are points; an *outage-minute* (one minute in which every request at the entry endpoints went wrong, beyond
what the SLOs' error budgets allow) costs 200. The terms (docs/reward.md gives the reasoning):

- impact: minus the share of users' requests at the entry endpoints that failed (refused at the door included: a
  user turned away is a user failed), missed their SLO latency or were answered wrongly (beyond each endpoint's error
  budget), times the tick's minutes, times 200 — the main term, by far;
- mitigation: a credit once the true fault is neutralised (a true fix landed, or it no longer acts) *and* the SLOs
  have held for `hold` seconds since, provided the responder acted;
- diagnosis: credit for the root-cause component (partial by hops in the real call graph, as ITBench's NTAM) and for
  the fault class, at a hand-over made once the fault had begun (before it, a diagnosis is a guess with no evidence);
- costs: the responder's time per action, a page and the paged human's minutes of work, and replicas kept above
  the scenario's;
- unsafe: a penalty per unsafe control action (STPA), each found by a named rule in `opsworld.score.unsafe`.

Everything is arrays over worlds: `take()` returns what each world earned since it was last called (the per-step
reward), `total` the episode's so far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opsworld.act.mitigations import HUMAN_ARRIVE, HUMAN_DELAY, MITIGATIONS
from opsworld.act.runbook import ACTIONS
from opsworld.act.vocabulary import places
from opsworld.engine import Truth
from opsworld.score import unsafe
from opsworld.score.scored import ScoredIncidents


HURT_SHARE = 0.01       # users are hurt in a tick when more than this share of entry requests went wrong
TERMS = ("impact", "mitigation", "diagnosis", "costs", "unsafe")


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward's terms, in points: one outage-minute (every entry request going wrong for a minute,
    beyond the SLOs' error budget) costs 200 points."""

    impact: float = 200.0            # per outage-minute (about 3.3 per outage-second)
    mitigation: float = 10.0         # once, when the fault is neutralised and the SLOs held for `hold`
    hold: float = 300.0              # seconds the SLOs must hold after neutralisation
    root_cause: float = 3.0          # the root-cause component (partial credit 1/(1+hops))
    fault_class: float = 3.0         # the kind of failure
    chain: float = 2.0               # the propagation chain (topology-aware match, 0..1), where one is submitted
    investigate: float = 0.02        # per investigation
    mitigate: float = 0.3            # per mitigation ordered
    coordinate: float = 0.02         # silence, acknowledge
    page: float = 8.0                # a page: someone is woken
    human_minute: float = 1.0        # per minute of the paged human's work (from the page until they leave)
    replica_hour: float = 0.5        # per replica-hour above the scenario's replicas
    unsafe: float = 5.0              # the first unsafe control action under each rule
    unpaged: float = 50.0            # instead, for a fault beyond the runbook that no human was paged for: it runs on
    #                                  past the episode's end, so leaving it is never cheaper than calling someone
    lost_change: float = 60.0        # instead, for each healthy change rolled back: its author's hour to ship it again
    unsafe_repeat: float = 1.0       # each repeat under the same rule


class ScoreBook:
    """The running score of a batch of incidents. `Incidents` calls the hooks; `step` and `total` are read by the
    environments."""

    def __init__(self, inc: ScoredIncidents, weights: RewardWeights) -> None:
        self.inc, self.w = inc, weights
        B = inc.worlds
        self.step = np.zeros(B)
        self.terms = {t: np.zeros(B) for t in TERMS}
        self.impact_minutes = np.zeros(B)
        self.impaired = np.zeros(B)            # requests that went wrong
        self.requests = np.zeros(B)
        self.hurting = np.zeros(B, bool)
        self.hurt_since = np.full(B, np.inf)   # first tick end users were hurt (after the onset)
        self.hurt_last = np.full(B, np.inf)
        self.felt_seconds = np.zeros(B)        # how long in all users felt it beyond their error budget
        self.detected_at = np.full(B, np.inf)
        self.fixed_at = np.full(B, np.inf)     # a true fix landed (or the paged human fixed it)
        self.neutral_at = np.full(B, np.inf)   # when the fault was neutralised (a true fix landed)
        self.mitigated_at = np.full(B, np.inf) # credit given: neutralised and the SLOs held since
        self.slo_ok_since = np.zeros(B)
        self.actions = np.zeros(B, np.int64)
        self.bad_actions = np.zeros(B, np.int64)
        self.failed_orders = np.zeros(B, np.int64)    # orders that could not land (their target was gone)
        self.rules = unsafe.Rules(inc)
        self.table = places(inc.scenario, inc.topology)               # place name -> column
        # per fault of a world (the drawn one, then a compound incident's others): [B, M, T+1] whether (mitigation,
        # place) truly fixes it, and when it was fixed (-inf: no such fault in that world)
        faults = [[t, *others] for t, others in zip(inc.truths, inc.others)]
        depth = max(map(len, faults), default=1)
        self.fixes = [_fix_table(inc, self.table, [f[k] if k < len(f) else None for f in faults])
                      for k in range(depth)]
        self._fixed_each = np.array([[np.inf if k < len(f) else -np.inf for k in range(depth)] for f in faults]
                                    ).reshape(B, depth)
        self._onset_each = np.array([[f[k].onset if k < len(f) and f[k] is not None else np.inf
                                      for k in range(depth)] for f in faults]).reshape(B, depth)
        self.ntam = np.zeros(B)
        self.chain_ntam = np.full(B, np.nan)       # the submitted chain against the true one (NaN: none given)
        self.class_right = np.zeros(B, bool)
        self._spec_replicas = inc.topology.replicas.astype(float)
        self._budget = 1.0 - inc.topology.endpoint_slo_availability      # [P] share of requests the SLO lets fail
        self.rule_hits = np.zeros((B, len(unsafe.RULES)), np.int64)

    # ---- hooks -------------------------------------------------------------------------------------------------------
    def tick(self, truth: Truth) -> None:
        """After each tick: impact, SLOs, neutralisation, costs of capacity, end-of-episode rules."""
        inc, w = self.inc, self.w
        now, minutes = inc.time, inc.system.dt / 60.0
        # [B, P] in rows of their own: a row then sums in the same order whatever the batch (a world's episode is
        # the same alone or in a batch, to the last bit). What users sent is the demand: a request of theirs refused
        # at the door is one that went wrong; a flooding client's requests are no user's, and their share of what
        # went wrong is not counted.
        arrived = truth.requests
        requests_p = np.ascontiguousarray(truth.users)
        per_endpoint = np.minimum(arrived - truth.slo_met + truth.wrong, arrived)
        per_endpoint = np.where(requests_p < arrived, per_endpoint * (requests_p / np.maximum(arrived, 1e-9)),
                                per_endpoint)
        # what users felt beyond what the SLOs allow (their error budget): a calm tick costs exactly nothing
        over = np.maximum(per_endpoint - self._budget * requests_p, 0.0).sum(axis=1)
        requests = requests_p.sum(axis=1)
        wrong = per_endpoint.sum(axis=1)
        share = np.where(requests > 0, over / np.maximum(requests, 1e-9), 0.0)
        self._add("impact", -w.impact * share * minutes)
        self.impact_minutes += share * minutes
        self.impaired += over
        self.requests += requests
        share = np.where(requests > 0, wrong / np.maximum(requests, 1e-9), 0.0)
        started = now >= inc.onset
        self.hurting = share > HURT_SHARE
        newly = self.hurting & started & ~np.isfinite(self.hurt_since)
        self.hurt_since[newly] = now
        self.hurt_last[self.hurting & started] = now
        self.felt_seconds[(over > 0.0) & started] += inc.system.dt
        # capacity above the scenario's costs money
        extra = np.ascontiguousarray(np.maximum(truth.desired_replicas - self._spec_replicas, 0.0)).sum(axis=1)
        self._add("costs", -w.replica_hour * extra * inc.system.dt / 3600.0)
        # mitigation credit: the true fault neutralised, then the SLOs held
        breached = truth.slo_breached.any(axis=1)
        self.slo_ok_since = np.where(breached, np.inf, np.minimum(self.slo_ok_since, now))
        self.slo_ok_since[~breached & ~np.isfinite(self.slo_ok_since)] = now
        # neutralised when one of the ground truth's fixes landed (a mask, a self-healing fault or a human paged for
        # what the runbook could fix earn nothing); then the SLOs must hold for the hold window
        self.neutral_at = self.fixed_at
        held = now - np.maximum(self.neutral_at, self.slo_ok_since) >= w.hold
        credit = held & np.isfinite(self.neutral_at) & ~np.isfinite(self.mitigated_at)
        self.mitigated_at[credit] = now
        self._add("mitigation", w.mitigation * credit)
        if inc.system.tick >= inc.ticks:
            self._penalise(self.rules.at_end())

    def action(self, name: str, worlds: np.ndarray) -> None:
        """An action taken (its time already charged)."""
        kind = ACTIONS[name].kind if name in ACTIONS else "investigate"
        cost = {"investigate": self.w.investigate, "mitigate": self.w.mitigate, "coordinate": self.w.coordinate,
                "finish": 0.0}[kind]
        if name == "page_human":
            cost = self.w.page
        elif name == "wait":
            cost = 0.0
        self.actions[worlds] += 1
        self._add("costs", -cost, worlds)

    def human(self, worlds: np.ndarray, minutes: np.ndarray) -> None:
        """Paged humans left these worlds after `minutes` [W] of work each: their organisation pays for it."""
        self._add("costs", -self.w.human_minute * np.asarray(minutes, dtype=float), worlds)

    def bad(self, worlds: np.ndarray) -> None:
        """An action refused as malformed: it costs its investigation's worth of time and nothing else."""
        self.bad_actions[worlds] += 1
        self._add("costs", -self.w.investigate, worlds)

    def ordered(self, name: str, target: object, worlds: np.ndarray) -> None:
        now = self.inc.time
        after = worlds[now >= self.inc.onset[worlds]]
        self.detected_at[after] = np.minimum(self.detected_at[after], now)
        self._penalise(self.rules.at_order(name, target, worlds))

    def acknowledged(self, worlds: np.ndarray) -> None:
        now = self.inc.time
        after = worlds[now >= self.inc.onset[worlds]]
        self.detected_at[after] = np.minimum(self.detected_at[after], now)

    def landed(self, name: str, target: object, worlds: np.ndarray) -> None:
        t = self.place(target)
        m = _MITIGATION_INDEX[name]
        # a fix is true of a fault that had begun (for a human: by the time they looked)
        began_by = self.inc.time - ((HUMAN_DELAY - HUMAN_ARRIVE) if name == "page_human" else 0.0)
        for k, fixes in enumerate(self.fixes):
            true = worlds[fixes[worlds, m, t]]     # a page is a true fix only where the runbook has none
            true = true[began_by >= self._onset_each[true, k]]
            self._fixed_each[true, k] = np.minimum(self._fixed_each[true, k], self.inc.time)
        # the incident is fixed once every fault in it is (a compound incident: the last of them)
        fixed = self._fixed_each.max(axis=1)
        self.fixed_at[worlds] = np.where(np.isfinite(fixed[worlds]), np.minimum(self.fixed_at[worlds], fixed[worlds]),
                                         self.fixed_at[worlds])
        self._penalise(self.rules.landed(name, target, worlds))

    def silenced(self, worlds: np.ndarray) -> None:
        self._penalise(self.rules.at_silence(worlds))

    def submitted(self, worlds: np.ndarray) -> None:
        """Credit the diagnoses of these worlds, just handed over."""
        inc, w = self.inc, self.w
        self._penalise(self.rules.at_submit(worlds))
        for b in worlds:
            b = int(b)
            d = inc.diagnosis[b] or {}
            named_class = d.get("fault_class") or ""
            ntam, right = diagnosis_match(inc, b, d.get("components") or [], named_class)
            if not inc.control[b] and inc.time < inc.onset[b]:   # before the fault began: a guess from priors
                ntam, right = 0.0, False
            self.ntam[b], self.class_right[b] = ntam, right
            # naming a failure (not "nothing is wrong") after the onset is detecting it
            if named_class not in _CONTROL_CLASSES and inc.time >= inc.onset[b]:
                self.detected_at[b] = min(self.detected_at[b], inc.time)
        credit = self.w.root_cause * self.ntam[worlds] + w.fault_class * self.class_right[worlds]
        if inc.twin is not None:            # a propagation chain can be checked against the true one
            truths = inc.ground_truth()
            for i, b in enumerate(worlds):
                chain = (inc.diagnosis[int(b)] or {}).get("chain")
                if chain:
                    true = [link.place.name for link in truths[int(b)].chain]
                    self.chain_ntam[b] = chain_match(inc, true, chain)
                    credit[i] += w.chain * self.chain_ntam[b]
        self._add("diagnosis", credit, worlds)

    # ---- helpers -----------------------------------------------------------------------------------------------------
    def place(self, target: object) -> int:
        """Column of a target in the fix table (edges count as their callee; None is the last column)."""
        if isinstance(target, tuple):
            target = target[1]
        return self.table.get(target, len(self.table)) if target is not None else len(self.table)

    def _add(self, term: str, value: np.ndarray | float, worlds: np.ndarray | None = None) -> None:
        if worlds is None:
            self.terms[term] += value
            self.step += value
        else:
            np.add.at(self.terms[term], worlds, value)
            np.add.at(self.step, worlds, value)

    def _penalise(self, hits: list[tuple[str, np.ndarray]]) -> None:
        """The first hit of a rule costs `unsafe`, each repeat `unsafe_repeat`: doing the same wrong thing to ten
        components is worse than once, but the first is the lesson. Two rules are priced at what they cost: a fault
        nobody was paged for (`unpaged`), and each healthy change rolled back (`lost_change`)."""
        for rule, worlds in hits:
            if len(worlds):
                r = _RULE_INDEX[rule]
                first = self.rule_hits[worlds, r] == 0
                if rule == "rolled_back_healthy_change":      # each one is somebody's work undone
                    self._add("unsafe", -self.w.lost_change, worlds)
                else:
                    price = self.w.unpaged if rule == "no_page_beyond_runbook" else self.w.unsafe
                    self._add("unsafe", np.where(first, -price, -self.w.unsafe_repeat), worlds)
                np.add.at(self.rule_hits, (worlds, r), 1)

    def take(self) -> np.ndarray:
        """[B] the reward earned since the last call (the environments' per-step reward)."""
        out, self.step = self.step, np.zeros(self.inc.worlds)
        return out

    @property
    def total(self) -> np.ndarray:
        return sum(self.terms.values())

    def reports(self) -> list:
        from opsworld.score.report import report
        return [report(self.inc, b) for b in range(self.inc.worlds)]


_CONTROL_CLASSES = ("no_fault", "benign_change", "none")
_RULE_INDEX = {name: i for i, name in enumerate(unsafe.RULES)}


_MITIGATION_INDEX = {name: i for i, name in enumerate(MITIGATIONS)}


def _fix_table(inc: ScoredIncidents, table: dict[str, int], truths: list) -> np.ndarray:
    """[B, M, T+1] whether ordering mitigation m on place t truly fixes the fault `truths[b]` (None: none) of world b
    (the last column: no target)."""
    T = len(table)
    out = np.zeros((inc.worlds, len(_MITIGATION_INDEX), T + 1), bool)
    certs = {c.name: c.component for c in inc.scenario.certificates}
    for b, truth in enumerate(truths):
        if truth is None or inc.control[b]:
            continue
        for fix in truth.fixes:
            m = _MITIGATION_INDEX.get(fix.action)
            if m is None:
                continue
            if fix.target is None:
                out[b, m, :] = True
                continue
            for name in (fix.target, certs.get(fix.target)):
                if name in table:
                    out[b, m, table[name]] = True
    return out


def diagnosis_match(inc: ScoredIncidents, b: int, components: list[str], fault_class: str) -> tuple[float, bool]:
    """(NTAM-style localisation score in 0..1, whether the class is right) of one world's diagnosis."""
    truth = inc.truths[b]
    if inc.control[b] or truth is None:
        return (1.0 if not components else 0.0), fault_class in _CONTROL_CLASSES
    faults = [truth, *inc.others[b]]       # a compound incident: naming one of its two roots earns half
    roots = list(dict.fromkeys(p.name for f in faults for p in f.roots))
    return localisation(inc, roots, components), fault_class in {f.kind for f in faults}


def localisation(inc: ScoredIncidents, roots: list[str], named: list[str]) -> float:
    """Topology-aware match of named places against the true roots: for each root the best match among the names,
    averaged over roots, less a share for names that match no root at all.

    A place stands for its components (a node or zone: those with replicas on it; an endpoint: its entry service).
    A name matches a root by how much of what each stands for is the same (Jaccard: the components both stand for,
    over those either does), so a broad name is diluted by breadth — naming a zone is credited by the share of its
    components truly at fault, never more than naming the right one. Where they share no component, by the hops
    between them in the real call graph, 1/(1+hops), diluted the same way."""
    if not named:
        return 0.0
    scores = []
    for root in roots:
        if root in named:
            scores.append(1.0)
            continue
        rs = _components_of(inc, root)
        best = 0.0
        for n in named:
            ns = _components_of(inc, n)
            if not (rs and ns):
                continue
            both, either = len(rs & ns), len(rs | ns)
            if both:
                best = max(best, both / either)
            else:
                hops = min(int(inc.distance[a, c]) for a in rs for c in ns)
                best = max(best, 1.0 / (1.0 + hops) / max(len(rs), len(ns)))
        scores.append(best)
    wrong = sum(1 for n in named if n not in roots) / max(len(named), 1)
    return float(np.mean(scores) * (1.0 - 0.5 * wrong * (len(named) > 1)))


def _components_of(inc: ScoredIncidents, name: str) -> set[int]:
    """The components a place stands for: itself, the components with replicas on a node or in a zone, an endpoint's
    entry service (empty for a place that stands for none, e.g. a certificate)."""
    topo = inc.topology
    if name in topo.components:
        return {topo.index(name)}
    if name in topo.endpoints:
        return {int(topo.endpoint_component[topo.endpoints.index(name)])}
    nodes = inc.scenario.nodes
    return {int(s) for s, n in zip(topo.replica_component, topo.replica_node)
            if name in (topo.nodes[int(n)], nodes[int(n)].zone)}


def chain_match(inc: ScoredIncidents, true: list[str], named: list[str]) -> float:
    """Topology-aware match of a submitted propagation chain against the true one (as ITBench's NTAM for the chain):
    the harmonic mean of recall (each true link's best 1/(1+hops) among the named) and precision (each named place's
    best among the true links). Order is not scored: the chain's links are what reached users, in any order."""
    if not true or not named:
        return 0.0
    recall = float(np.mean([max(localisation(inc, [t], [n]) for n in named) for t in true]))
    precision = float(np.mean([max(localisation(inc, [t], [n]) for t in true) for n in named]))
    return 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)

