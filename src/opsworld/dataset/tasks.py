"""The tasks an item poses over its observation bundle, with answers checked against the ground truth:

- `localize`: where the root cause is (a component, or the node, zone or entry endpoint at fault);
- `classify`: which failure mode it is, from the fixed list (`CLASSES`, the runbook's `fault_class` choices);
- `mitigate`: which one of a few runbook actions truly fixes the cause.

Answers and their grading come from the world's ground truth (`faults.ground_truth`: roots, fault kind, the fixes
and masks of the mitigation catalogue), never from the telemetry. Partial credit follows the reward's own rules
(`score.reward`): a place near the root cause earns 1/(1 + hops) as the reward's localisation does (up to two hops
here), a mask (it hides the fault for a while) a quarter, the other "nothing to fix" class half. The ground truth is
the drawn fault's, as `Incidents` keeps it: a second fault of a compound world and the red herrings beside it (benign
changes, short flaps) are listed in an item's `truth` but earn nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opsworld.act.mitigations import MITIGATIONS
from opsworld.act.runbook import places_by_kind
from opsworld.act.vocabulary import FAULT_CLASSES
from opsworld.envs.incident import Incidents
from opsworld.engine.graph import neighbours
from opsworld.faults.ground_truth import FaultTruth, fault_truths, onset_order

TASKS = ("localize", "classify", "mitigate")
CLASSES = FAULT_CLASSES
CONTROL_CLASSES = ("no_fault", "benign_change")       # nothing to fix: a healthy system, a harmless change
NEAR_HOPS = 2
MASK_CREDIT = 0.25
CONTROL_CREDIT = 0.5
OPTIONS = 5
LETTERS = "ABCDEFGH"


@dataclass(frozen=True)
class Solution:
    """The ground truth of one world, as the tasks need it."""

    kind: str                                  # the failure mode (a CLASSES entry)
    fault_class: str                           # the fault type's class name
    entry: str                                 # the catalogue entry drawn
    control: bool                              # nothing to fix (no fault, or a harmless change)
    roots: tuple[str, ...]                     # root-cause places
    root_kinds: tuple[str, ...]                # component, node, zone, endpoint or network, per root
    fixes: tuple[tuple[str, str | None], ...]  # (mitigation, target) that truly fix it
    masks: tuple[tuple[str, str | None], ...]  # (mitigation, target) that only hide it for a while
    beyond_runbook: bool
    onset: float                               # seconds after the start
    also: tuple[FaultTruth, ...] = ()          # faults acting beside it in the same world

    def record(self) -> dict:
        """The solution as plain JSON-able data (for an item's `truth` column)."""
        return {"kind": self.kind, "fault_class": self.fault_class, "entry": self.entry, "control": self.control,
                "roots": [{"kind": k, "name": n} for k, n in zip(self.root_kinds, self.roots)],
                "fixes": [{"action": a, "target": t} for a, t in self.fixes],
                "masks": [{"action": a, "target": t} for a, t in self.masks],
                "beyond_runbook": self.beyond_runbook, "onset": self.onset,
                "also": [{"kind": t.kind, "roots": [p.name for p in t.roots]} for t in self.also]}


def solutions(inc: Incidents) -> list[Solution]:
    """The solution of every world of a batch."""
    beside: dict[int, list[FaultTruth]] = {}
    for worlds, truth in fault_truths(inc.injector):
        for b in worlds:
            beside.setdefault(int(b), []).append(truth)
    out = []
    for b, (draw, truth) in enumerate(zip(inc.draws, inc.truths)):
        control = bool(inc.control[b])
        if truth is None:          # not drawn by the generators here; read as a healthy world
            out.append(Solution("no_fault", "NoFault", draw.entry, True, (), (), (), (), False, 0.0))
            continue
        harmful = not control      # a control has nothing to find or fix
        out.append(Solution(
            kind=truth.kind, fault_class=truth.fault_class, entry=draw.entry, control=control,
            roots=tuple(p.name for p in truth.roots) if harmful else (),
            root_kinds=tuple(p.kind for p in truth.roots) if harmful else (),
            fixes=tuple((f.action, f.target) for f in truth.fixes) if harmful else (),
            masks=tuple((f.action, f.target) for f in truth.masks) if harmful else (),
            beyond_runbook=truth.beyond_runbook, onset=float(truth.onset),
            also=tuple(sorted((t for t in beside.get(b, []) if t != truth), key=onset_order))))
    return out


class Places:
    """Every nameable place of a batch's system as an undirected graph: the real call graph (undocumented couplings
    too), pods on their nodes, nodes in their zones, entry endpoints at their services."""

    def __init__(self, inc: Incidents) -> None:
        topo, sc = inc.topology, inc.scenario
        comps = list(topo.components)
        self.graph: dict[str, set[str]] = {n: set() for n in comps}

        def link(a: str, b: str) -> None:
            self.graph.setdefault(a, set()).add(b)
            self.graph.setdefault(b, set()).add(a)

        for a, near in enumerate(neighbours(topo.edge_src, topo.edge_dst, topo.n_components)):
            for b in near:
                link(comps[a], comps[b])
        for s, n in zip(topo.replica_component[topo.replica_index < topo.replicas[topo.replica_component]],
                        topo.replica_node[topo.replica_index < topo.replicas[topo.replica_component]]):
            link(comps[int(s)], topo.nodes[int(n)])
        for node in sc.nodes:
            link(node.name, node.zone)
        for ep in sc.traffic.endpoints:
            link(ep.name, ep.service)
        self.where = places_by_kind(sc)
        self.certificates = {c.name: c.component for c in sc.certificates}

    def near(self, root: str, hops: int = NEAR_HOPS) -> dict[str, int]:
        """Places within `hops` of `root` (not itself), with their distance."""
        out: dict[str, int] = {}
        frontier = [root]
        for d in range(1, hops + 1):
            nxt = []
            for p in frontier:
                for q in sorted(self.graph.get(p, ())):
                    if q != root and q not in out:
                        out[q] = d
                        nxt.append(q)
            frontier = nxt
        return out


@dataclass(frozen=True)
class Task:
    """One task over a bundle: its question (with the options, if any), the canonical answer, and how any answer
    is graded (`verify` reads only this)."""

    name: str
    question: str
    options: list[str]
    answer: str
    grading: dict

    @property
    def text(self) -> str:
        return f"== Task ==\n{self.question}"


def applicable(sol: Solution) -> tuple[str, ...]:
    """The tasks whose answer is well defined for this world: a healthy world has no root cause and nothing to fix;
    a root in the network itself has no place to name."""
    if sol.control:
        return ("classify",)
    out = []
    if sol.roots and all(k != "network" for k in sol.root_kinds):
        out.append("localize")
    out.append("classify")
    if sol.fixes:
        out.append("mitigate")
    return tuple(out)


def pick_task(sol: Solution, rng: np.random.Generator, tasks: tuple[str, ...] = TASKS) -> str:
    """A task for this world: drawn among `tasks`; where the drawn one has no well-defined answer, the first of
    `tasks` that has (or any that has)."""
    drawn = tasks[int(rng.integers(len(tasks)))]
    ok = applicable(sol)
    if drawn in ok:
        return drawn
    return next((t for t in tasks if t in ok), ok[0])


def make_task(name: str, sol: Solution, where: Places, rng: np.random.Generator,
              in_view: dict[str, list[str]] | None = None) -> Task:
    """The task `name` for this world. `in_view` lists what the bundle shows (changed components under "changed",
    alerting ones under "alerting"): the mitigation options' red herrings are drawn from it."""
    if name == "localize":
        return _localize(sol, where)
    if name == "classify":
        return _classify(sol)
    if name == "mitigate":
        return _mitigate(sol, where, rng, in_view or {})
    raise ValueError(f"no task named {name!r}; tasks: {', '.join(TASKS)}")


def _localize(sol: Solution, where: Places) -> Task:
    near = {root: {p: 1.0 / (1.0 + d) for p, d in sorted(where.near(root).items())} for root in sol.roots}
    question = ("Where is the root cause of what you see? Name the component at fault as the service map names it "
                "(or the node, zone or entry endpoint, when the fault is there). If it lies between places, name "
                "each of them, separated by commas. Reply with the name(s) only.")
    return Task("localize", question, [], ", ".join(sol.roots),
                {"task": "localize", "roots": list(sol.roots), "near": near})


def _classify(sol: Solution) -> Task:
    scores = {sol.kind: 1.0}
    if sol.control:        # both say that nothing needs fixing; only one says why
        scores.update({k: CONTROL_CREDIT for k in CONTROL_CLASSES if k != sol.kind})
    question = ("Which failure mode is this? Reply with exactly one name from this list (it has a choice for a "
                "healthy system and one for a harmless change too):\n" + ", ".join(CLASSES))
    return Task("classify", question, list(CLASSES), sol.kind, {"task": "classify", "scores": scores})


def _matches(action: str, target: str | None, fix: tuple[str, str | None], certificates: dict[str, str]) -> bool:
    """Whether ordering (action, target) is the fix, as the reward's fix table reads it (a fix without a target
    works on any; a certificate's fix works through the component serving it too)."""
    a, t = fix
    return a == action and (t is None or t == target or certificates.get(t) == target)


def _score(action: str, target: str | None, sol: Solution, where: Places) -> float:
    if any(_matches(action, target, f, where.certificates) for f in sol.fixes):
        return 1.0
    if any(_matches(action, target, m, where.certificates) for m in sol.masks):
        return MASK_CREDIT
    return 0.0


def _targets(kind: str, where: Places, focus: list[str]) -> list[str | None]:
    """The places among `focus` a mitigation acting on `kind` can take."""
    w = where.where
    valid = {"component": w["component"], "datastore": w["datastore"], "cache": w["cache"], "node": w["node"],
             "zone": w["zone"], "endpoint": w["endpoint"], "edge": w["component"],
             "certificate": w["certificate"] + w["serving"],
             "component_or_endpoint": w["component"] + w["endpoint"]}.get(kind)
    if valid is None:
        return [None]
    ok = set(valid)
    return [p for p in focus if p in ok]


def _option(action: str, target: str | None) -> str:
    return action if target is None else f"{action} {target}"


def _mitigate(sol: Solution, where: Places, rng: np.random.Generator, in_view: dict[str, list[str]]) -> Task:
    right = sol.fixes[int(rng.integers(len(sol.fixes)))]
    changed = list(dict.fromkeys(in_view.get("changed", [])))
    alerting = list(dict.fromkeys(in_view.get("alerting", [])))
    # the places an on-call engineer would think of: the roots and the fixes' targets, their neighbours, what
    # changed lately and what alerts
    focus = list(sol.roots) + [t for _, t in sol.fixes + sol.masks if t is not None]
    focus += [p for r in sol.roots for p, d in where.near(r, 1).items()]
    focus = list(dict.fromkeys(focus + changed + alerting))
    pool: dict[tuple[str, str | None], float] = {}
    for name, m in MITIGATIONS.items():
        for target in _targets(m.target, where, focus):
            pool[(name, target)] = _score(name, target, sol, where)
    pool.setdefault(("page_human", None), _score("page_human", None, sol, where))
    wrong = [(k, s) for k, s in pool.items() if s < 1.0]
    weights = []
    for (action, target), s in wrong:
        w = 1.0
        if s > 0:                                              # a mask: the tempting half-measure
            w = 4.0
        elif action in ("rollback_deploy", "rollback_config") and target in changed:
            w = 4.0                                            # a change that is not the cause
        elif target in sol.roots or action == right[0]:
            w = 2.0                                            # the right place, or the right act elsewhere
        weights.append(w)
    # drawn one at a time, no place more than twice among the options: the answer's place must not stand out by
    # how often it is named
    named = {right[1]: 1}
    picked: list[tuple[tuple[str, str | None], float]] = []
    left = list(range(len(wrong)))
    while left and len(picked) < OPTIONS - 1:
        w = np.array([weights[i] for i in left])
        i = left.pop(int(rng.choice(len(left), p=w / w.sum())))
        target = wrong[i][0][1]
        if target is not None and named.get(target, 0) >= 2:
            continue
        named[target] = named.get(target, 0) + 1
        picked.append(wrong[i])
    chosen = [(right, 1.0)] + picked
    order = rng.permutation(len(chosen))
    chosen = [chosen[int(i)] for i in order]
    options, graded = [], []
    for letter, ((action, target), score) in zip(LETTERS, chosen):
        options.append(f"{letter}) {_option(action, target)}: {MITIGATIONS[action].summary}")
        graded.append({"label": letter, "action": action, "target": target, "text": _option(action, target),
                       "score": score})
    answer = next(g["label"] for g in graded if g["score"] == 1.0)
    question = ("Which one of these actions fixes the cause, not only the symptoms? Reply with the option's "
                "letter.\n" + "\n".join(options))
    return Task("mitigate", question, options, answer, {"task": "mitigate", "options": graded})
