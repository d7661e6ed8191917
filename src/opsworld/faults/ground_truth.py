"""Ground truth of an episode, per world: what was broken, how it spread, what fixes it, and what users felt.

The causal chain is not listed by hand: it is read off the engine's own propagation by comparing the faulted
episode with its counterfactual (the same worlds, seed and traffic with no fault). A component is impaired from the
first tick where one of its truth signals departs from the counterfactual by more than a threshold (`SIGNALS`);
links are ordered by that time, then by distance from the root cause in the call graph.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

from opsworld.engine import Topology, Trajectory
from opsworld.engine.graph import neighbours

if TYPE_CHECKING:
    from opsworld.faults.injector import Injector

IMPACT_SHARE = 0.01      # a tick hurts users when more than this share of its requests went wrong beyond the baseline


class Place(BaseModel):
    """Where something is: a component, node, zone, endpoint, or the network itself."""

    kind: str = Field(description="component | node | zone | endpoint | network")
    name: str


class Fix(BaseModel):
    action: str = Field(description="a mitigation from the runbook catalogue (`opsworld.act.MITIGATIONS`)")
    target: str | None = Field(description="what it acts on; none for page_human")


class FaultTruth(BaseModel):
    """One injected fault, as the ground truth knows it."""

    kind: str = Field(description="the fault type")
    fault_class: str
    mechanism: str
    via: str = Field(description="deploy | config | none: the change that carried it")
    roots: list[Place]
    handler: str | None = Field(None, description="the one handler (operation) of the root component a code-level "
                                                  "bug is in; none when every request is struck")
    onset: float = Field(description="seconds after the episode start")
    fixes: list[Fix] = Field(description="mitigations that truly neutralise it")
    masks: list[Fix] = Field(description="mitigations that only hide it for a while")
    beyond_runbook: bool = Field(description="nothing in the runbook fixes it: paging a human is the right act")


class Link(BaseModel):
    """A place the fault reached: what happened to it, and when it became impaired."""

    place: Place
    effect: str = Field(description="the signals that departed first, e.g. 'errors', 'latency, saturation'")
    time: float = Field(description="seconds after the episode start")
    via: str | None = Field(description="the impaired neighbour it was reached from (none for a root cause)")


class Impact(BaseModel):
    """Requests at the entry endpoints that went wrong beyond the counterfactual, tick by tick."""

    times: list[float] = Field(description="end of each tick, seconds after the start")
    endpoints: list[str]
    failed: list[list[float]] = Field(description="[tick][endpoint] extra failed requests")
    slow: list[list[float]] = Field(description="[tick][endpoint] extra requests that succeeded past the SLO latency")
    wrong: list[list[float]] = Field(description="[tick][endpoint] extra requests answered wrongly as successes")
    requests: list[float] = Field(description="[tick] requests at all entry endpoints")
    start: float | None = Field(description="first tick end with more than 1% of requests impaired")
    end: float | None = Field(description="last tick end with more than 1% of requests impaired")
    total: float = Field(description="impaired requests over the episode")


class GroundTruth(BaseModel):
    """The exact truth of one world's episode. Reward and verifiers read this, never the telemetry."""

    world: int
    faults: list[FaultTruth]
    root_causes: list[Place]
    chain: list[Link]
    impact: Impact

    @property
    def fixes(self) -> list[Fix]:
        return [f for t in self.faults for f in t.fixes]


# signal name -> test on (faulted, baseline) arrays [T, B, S]
def _signals(f: Trajectory, b: Trajectory) -> dict[str, np.ndarray]:
    def rate(t: Trajectory) -> np.ndarray:
        return t.failed_by_cause.sum(axis=-1) / np.maximum(t.offered, 1.0)
    excess_failed = f.failed_by_cause.sum(axis=-1) - b.failed_by_cause.sum(axis=-1)
    return {
        "errors": (rate(f) - rate(b) > 0.02) & (excess_failed > 1.0),
        "latency": f.response_mean > 1.2 * b.response_mean + 0.002,
        "unavailable": f.ready_replicas < b.ready_replicas - 0.5,
        "saturation": (f.cpu_utilisation > b.cpu_utilisation + 0.25) | (f.slot_utilisation > b.slot_utilisation + 0.25)
        | (f.backlog > b.backlog + 1.0),
        "restarts": f.restarts > b.restarts,
        "memory": (f.memory_max_fraction >= 0.9) & (b.memory_max_fraction < 0.9),
        "disk": (f.disk_max_fraction >= 0.95) & (b.disk_max_fraction < 0.95),
        "wrong answers": f.wrong_answers > 0.01 * np.maximum(f.served, 1.0) + b.wrong_answers,
        "queue backlog": f.queue_depth > b.queue_depth + 50.0,
        "load": f.offered > 1.5 * b.offered + 1.0,
    }


SIGNALS = ("errors", "latency", "unavailable", "saturation", "restarts", "memory", "disk", "wrong answers",
           "queue backlog", "load")


def _root_components(topo: Topology, place: Place) -> list[int]:
    """Components a root cause touches first: itself, those placed on a node or zone, an endpoint's service."""
    scenario = topo.scenario
    if place.kind == "component":
        return [topo.index(place.name)]
    if place.kind == "endpoint":
        return [int(topo.endpoint_component[topo.endpoints.index(place.name)])]
    if place.kind in ("node", "zone"):
        nodes = [i for i, n in enumerate(scenario.nodes) if place.name in (n.name, n.zone)]
        on = np.isin(topo.replica_node, nodes) & (topo.replica_index < topo.replicas[topo.replica_component])
        return sorted({int(s) for s in topo.replica_component[on]})
    return list(range(topo.n_components))     # the network: everything


def fault_truths(injector: "Injector", first: int | None = None) -> list[tuple[np.ndarray, FaultTruth]]:
    """Each fault in the injector (or its `first` ones) with the worlds it is in (one entry per distinct onset)."""
    scenario = injector.engine.scenario
    out = []
    for run in injector.running[:first]:
        onsets, which = np.unique(run.onset, return_inverse=True)
        for i, onset in enumerate(onsets):
            out.append((run.worlds[which == i], truth_of(run.fault, scenario, float(onset))))
    return out


def truth_of(fault, scenario, onset: float | None = None) -> FaultTruth:
    """The ground truth of one fault placed in a scenario (at `onset` seconds; default its own)."""
    roots = [Place(kind=k, name=n) for k, n in fault.roots(scenario)]
    fixes = [Fix(action=a, target=t) for a in fault.mitigations for t in fix_targets(fault, a, scenario)]
    masks = [Fix(action=a, target=fix_target(fault, a, scenario)) for a in fault.masks]
    return FaultTruth(kind=fault.kind, fault_class=type(fault).__name__, mechanism=fault.mechanism, via=fault.change,
                      roots=roots, handler=getattr(fault, "handler", None),
                      onset=float(fault.onset_seconds(scenario) if onset is None else onset), fixes=fixes,
                      masks=masks, beyond_runbook=fault.beyond_runbook)


def fix_targets(fault, action: str, scenario) -> list[str | None]:
    """Every target a runbook mitigation truly fixes `fault` on: `fix_target`'s, and for a partition between two
    zones either zone (rerouting the other side ends it as well)."""
    first = fix_target(fault, action, scenario)
    other = getattr(fault, "other", None) if action == "reroute_zone" else None
    return [first] if other is None or other == first else [first, other]


def fix_target(fault, action: str, scenario) -> str | None:
    """The target a runbook mitigation acts on to fix (or mask) `fault` (None: no target, or every component).
    Without a scenario, the fault's own target where the action takes a component."""
    if action == "page_human" or (action == "scale" and fault.kind == "flash_crowd"):
        return None
    if action in ("rollback_deploy", "rollback_config"):
        return fault.change_target
    if action == "renew_cert":
        return fault.certificate(scenario)
    if action == "block_client":
        return fault.target
    if action == "rotate_credentials":
        return getattr(fault, "caller", None) or fault.target
    if action == "set_pool_size":        # the pools are the caller's
        return getattr(fault, "caller", None) or fault.target
    if action == "rate_limit":           # a component, or the endpoint the traffic arrives at
        if scenario is None or fault.target in scenario.components:
            return fault.target
        return fault.target if fault.target in [e.name for e in scenario.traffic.endpoints] else None
    if action in ("restart", "scale", "disable_retries", "open_circuit", "raise_limit", "failover_db", "dead_letter",
                  "flush_cache", "warm_cache"):
        return fault.target if scenario is None or fault.target in scenario.components else None
    return fault.target        # drain_node, reroute_zone, sync_clock: the node or zone


def onset_order(truth: FaultTruth) -> tuple:
    """How a world's faults are listed: in the order they begin, not the order its batch's injector met them (a
    world's truth is its own, whatever batch it runs in)."""
    return truth.onset, truth.kind, [p.name for p in truth.roots]


def ground_truth(injector: "Injector", faulted: Trajectory, baseline: Trajectory) -> list[GroundTruth]:
    """Per world: the faults, the causal chain read off the two trajectories, and the user impact."""
    topo = injector.engine.topology
    B = faulted.requests.shape[1]
    first_world = injector.engine.first_world
    signals = _signals(faulted, baseline)
    names = list(signals)
    stacked = np.stack([signals[n] for n in names])              # [K, T, B, S]
    impaired = stacked.any(axis=0)                               # [T, B, S]
    ever = impaired.any(axis=0)                                  # [B, S]
    first = np.where(ever, impaired.argmax(axis=0), -1)          # [B, S] tick index
    times = faulted.time
    adj = neighbours(topo.edge_src, topo.edge_dst, topo.n_components)
    faults = fault_truths(injector)
    impact = _impact(topo, faulted, baseline)
    out = []
    for b in range(B):
        mine = sorted((t for worlds, t in faults if b in worlds), key=onset_order)
        roots = [p for t in mine for p in t.roots]
        chain = _chain(topo, adj, mine, roots, first[b], stacked[:, :, b], names, times)
        out.append(GroundTruth(world=first_world + b, faults=mine, root_causes=roots, chain=chain,
                               impact=impact(b)))
    return out


def _chain(topo: Topology, adj: list[set[int]], faults: list[FaultTruth], roots: list[Place], first: np.ndarray,
           signals: np.ndarray, names: list[str], times: np.ndarray) -> list[Link]:
    if not faults or not roots:
        return []
    links: list[Link] = []
    seeds: list[int] = []
    for onset, place in [(t.onset, p) for t in faults for p in t.roots]:
        touched = _root_components(topo, place)
        if place.kind == "component":
            s = touched[0]
            when = float(times[first[s]]) if first[s] >= 0 else onset
            effect = _effect(signals[:, first[s], s], names) if first[s] >= 0 else "changed"
            links.append(Link(place=place, effect=effect, time=when, via=None))
        else:
            links.append(Link(place=place, effect="failed", time=onset, via=None))
        seeds += touched
    distance = _distances(adj, seeds, topo.n_components)
    rooted = {p.name for p in roots if p.kind == "component"}
    order = sorted((int(first[s]), distance[s], s) for s in range(topo.n_components)
                   if first[s] >= 0 and topo.components[s] not in rooted)
    reached = set(seeds)     # root components, and those a node, zone or endpoint root touches first
    for tick, _, s in order:
        seed_root = next((p for p in roots if p.kind != "component" and s in _root_components(topo, p)), None)
        near = [n for n in adj[s] if n in reached]
        flags = signals[:, tick, s]

        def likelier(n: int) -> tuple:    # a neighbour showing the same effect first, then the earliest impaired
            shown = signals[:, first[n], n] if first[n] >= 0 else np.zeros_like(flags)
            return (not bool((shown & flags).any()), int(first[n]), n)
        via = seed_root.name if seed_root else (topo.components[min(near, key=likelier)] if near else None)
        links.append(Link(place=Place(kind="component", name=topo.components[s]),
                          effect=_effect(signals[:, tick, s], names), time=float(times[tick]), via=via))
        reached.add(s)
    return sorted(links, key=lambda link: link.time)    # stable: roots first within their tick


def _effect(flags: np.ndarray, names: list[str]) -> str:
    return ", ".join(n for n, f in zip(names, flags) if f) or "changed"


def _distances(adj: list[set[int]], seeds: list[int], n: int) -> list[int]:
    dist = [n + 1] * n
    queue = deque(seeds)
    for s in seeds:
        dist[s] = 0
    while queue:
        s = queue.popleft()
        for m in adj[s]:
            if dist[m] > dist[s] + 1:
                dist[m] = dist[s] + 1
                queue.append(m)
    return dist


def _excess(f: Trajectory, b: Trajectory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[T, B, P] requests beyond the counterfactual that failed, succeeded past the SLO latency, or were wrong."""
    failed = np.maximum(f.failed - b.failed, 0.0)
    slow = np.maximum((f.requests - f.slo_met - f.failed) - (b.requests - b.slo_met - b.failed), 0.0)
    return failed, slow, np.maximum(f.wrong - b.wrong, 0.0)


def impaired_share(f: Trajectory, b: Trajectory) -> np.ndarray:
    """[T, B] share of the entry requests that went wrong beyond the counterfactual (failed, slow or wrong)."""
    return sum(_excess(f, b)).sum(axis=-1) / np.maximum(f.requests.sum(axis=-1), 1.0)


def _impact(topo: Topology, f: Trajectory, b: Trajectory):
    failed, slow, wrong = _excess(f, b)
    requests = f.requests.sum(axis=-1)                                     # [T, B]
    hurt = (failed + slow + wrong).sum(axis=-1)
    bad = hurt > IMPACT_SHARE * np.maximum(requests, 1.0)
    times = [float(t) for t in f.time]

    def world(b: int) -> Impact:
        ticks = np.flatnonzero(bad[:, b])
        return Impact(times=times, endpoints=list(topo.endpoints),
                      failed=np.round(failed[:, b], 3).tolist(), slow=np.round(slow[:, b], 3).tolist(),
                      wrong=np.round(wrong[:, b], 3).tolist(), requests=np.round(requests[:, b], 3).tolist(),
                      start=times[ticks[0]] if len(ticks) else None, end=times[ticks[-1]] if len(ticks) else None,
                      total=float(hurt[:, b].sum()))
    return world
