"""A batch of incidents: B worlds of one scenario, each with its own fault, its own responder and its own score.

This is the core every interface drives (the Gymnasium envs, the text tools, the MCP server, `opsworld play`, the
audit). It owns the engine, the injector and the sensors, takes the responder's orders for any subset of worlds at
once, lands mitigations when they take effect, and keeps the score from the truth state only (`opsworld.score`).
Everything is arrays over worlds; orders are grouped by (action, target) so a step costs a few numpy calls, not one
Python call per world.

Time: the worlds advance together, one engine tick per `advance()`. An order costs its responder `Action.cost`
seconds: that world's responder is busy until then (`busy_until`) and its further orders are refused as `busy`.
After `submit` a world's responder is gone; the world runs on to the horizon, so handing over early never escapes
the impact that follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from opsworld.act.human import Humans
from opsworld.act.mitigations import MITIGATIONS, MitigationError
from opsworld.act.runbook import ACTIONS
from opsworld.engine import Engine, Trajectory, Truth
from opsworld.envs.generator import CONTROLS, CatalogueGenerator, Draw
from opsworld.faults.ground_truth import FaultTruth, fault_truths, ground_truth, neighbours
from opsworld.faults.injector import Injector
from opsworld.observe.dashboard import Dashboard
from opsworld.observe.telemetry import Telemetry
from opsworld.score.reward import RewardWeights, ScoreBook
from opsworld.spec import Scenario, load_scenario


@dataclass
class IncidentConfig:
    """How a batch of incidents is made.

    scenario: a template name or a scenario file.
    horizon: seconds each episode lasts (default: the scenario's duration).
    generator: draws each world's fault (default: the catalogue's entries on the template).
    telemetry: also run the full observability stack (PromQL, alerts, logs, traces) — for text tools, one world.
    counterfactual: also run the same worlds with no fault, to read the causal chain off the two (`ground_truth()`)
      and score a submitted propagation chain; doubles the engine's work, so for text tools, one world.
    weights: the reward's weights (see docs/reward.md).
    telemetry_gaps: chance that a component's signals on the dashboard miss a tick (they stay stale).
    """

    scenario: str | Path | Scenario = "online-shop"
    horizon: float | None = None
    generator: CatalogueGenerator = field(default_factory=CatalogueGenerator)
    telemetry: bool = False
    counterfactual: bool = False
    weights: RewardWeights = field(default_factory=RewardWeights)
    telemetry_gaps: float = 0.0


class Incidents:
    """B worlds with one incident each. `reset(seed)`, then `order_*` and `advance()` until `done`."""

    def __init__(self, config: IncidentConfig | None = None, worlds: int = 1, seed: int = 0,
                 first_world: int = 0) -> None:
        self.config = config or IncidentConfig()
        self.first_world = first_world     # the engine's noise of world b is that of world `first_world + b` alone
        sc = self.config.scenario
        self.scenario = sc if isinstance(sc, Scenario) else load_scenario(sc)
        self.worlds = worlds
        self.telemetry = None
        self.reset(seed)

    # ---- episode lifecycle -----------------------------------------------------------------------------------------
    def reset(self, seed: int = 0, draws: list[Draw] | None = None) -> None:
        """New incidents in every world: a fresh engine, faults drawn from `seed` (or given as `draws`)."""
        self.seed = seed
        self.engine = engine = Engine(self.scenario, worlds=self.worlds, seed=seed, first_world=self.first_world)
        self.topology = topo = engine.topology
        rng = np.random.default_rng([seed, 0x1C1D])
        self.draws = draws if draws is not None else [self.config.generator.draw(self.scenario, rng)
                                                      for _ in range(self.worlds)]
        if len(self.draws) != self.worlds:
            raise ValueError(f"{len(self.draws)} draws for {self.worlds} worlds")
        self.injector = Injector(engine)
        for fault, worlds, onsets in _grouped(self.draws, self.scenario):
            self.injector.add(fault, worlds, onsets)
        main = len(self.injector.running)             # the drawn faults first; what they need beside them after
        for fault, worlds, onsets in _grouped(self.draws, self.scenario, companions=True):
            self.injector.add(fault, worlds, onsets)
        self.dashboard = Dashboard(engine, gaps=self.config.telemetry_gaps)
        if self.config.telemetry:
            self.telemetry = Telemetry(self.injector)
        self.twin = (Engine(self.scenario, worlds=self.worlds, seed=seed, first_world=self.first_world)
                     if self.config.counterfactual else None)
        self.frames: list[tuple[Truth, Truth]] = []     # (faulted, counterfactual) per tick, with a twin only
        horizon = self.config.horizon or self.scenario.duration
        self.ticks = int(np.ceil(horizon / engine.dt - 1e-9))
        self.truths: list[FaultTruth | None] = [None] * self.worlds
        for worlds, truth in fault_truths(self.injector, first=main):     # the ground truth is the drawn fault's
            for b in worlds:
                self.truths[int(b)] = truth
        self.control = np.array([d.entry in CONTROLS for d in self.draws])
        # (change, component) -> the injector entries whose deploy/config version carries a harmful fault
        self.carriers: dict[tuple[str, int], list] = {}
        for run in self.injector.running:
            if run.fault.change != "none" and run.fault.kind != "benign_change":
                key = (run.fault.change, topo.index(run.fault.change_target))
                self.carriers.setdefault(key, []).append(run)
        self.onset = np.array([t.onset if t is not None and not c else np.inf
                               for t, c in zip(self.truths, self.control)])
        self.beyond_runbook = np.array([bool(t and t.beyond_runbook) for t in self.truths]) & ~self.control
        B = self.worlds
        self.busy_until = np.zeros(B)
        self.on_call_since = np.zeros(B)      # when the responder took over (a tool session starts at the page)
        self.submitted_at = np.full(B, np.inf)
        self.paged_at = np.full(B, np.inf)    # the first page, whatever it brought
        self.humans = Humans(B)
        self.pending: list[tuple[float, str, object, object, np.ndarray]] = []   # (lands, action, target, amount, worlds)
        self.silenced_until = np.zeros((B, topo.n_components))
        self.diagnosis: list[dict | None] = [None] * B
        self.score = ScoreBook(self, self.config.weights)
        self.distance = _hops(topo)
        self.last: Truth | None = None

    @property
    def time(self) -> float:
        return self.engine.time

    @property
    def done(self) -> bool:
        return self.engine.tick >= self.ticks

    def advance(self) -> Truth:
        """One tick for every world: land the mitigations due, let paged humans look or fix, step the faults, engine
        and sensors, score."""
        now = self.engine.time
        due = [p for p in self.pending if p[0] <= now + 1e-9]
        if due:
            self.pending = [p for p in self.pending if p[0] > now + 1e-9]
            for lands, name, target, amount, worlds in due:
                self._land(name, target, amount, worlds)
        if self.humans.present:
            self.humans.tick(now, self.wrong, lambda w: self._land("page_human", None, None, w), self.score.human)
        truth = self.telemetry.step() if self.telemetry is not None else self.injector.step()
        self.last = truth
        if self.twin is not None:
            self.frames.append((truth, self.twin.step()))
        self.dashboard.update(truth)
        self.score.tick(truth)
        return truth

    def run_to_end(self) -> None:
        while not self.done:
            self.advance()

    # ---- orders ------------------------------------------------------------------------------------------------------
    def free(self, worlds: np.ndarray) -> np.ndarray:
        """[W] whether each world's responder can act now (not busy, not handed over)."""
        return (self.busy_until[worlds] <= self.time + 1e-9) & ~np.isfinite(self.submitted_at[worlds])

    def spend(self, name: str, worlds: np.ndarray, seconds: float | np.ndarray | None = None) -> None:
        """Charge the responders of `worlds` the action's time (or `seconds`)."""
        cost = ACTIONS[name].cost if seconds is None else seconds
        self.busy_until[worlds] = self.time + cost
        self.score.action(name, worlds)

    def order_mitigation(self, name: str, target: object, amount: object, worlds: np.ndarray,
                         checked: bool = False) -> None:
        """A mitigation for some worlds: it lands `takes` seconds from now. Raises `MitigationError` for a target or
        amount the mitigation cannot take, before anything changes (`checked`: the caller has made sure)."""
        worlds = np.asarray(worlds, dtype=np.int64)
        if not len(worlds):
            return
        if name not in MITIGATIONS:
            raise MitigationError(f"no mitigation '{name}'; known: {', '.join(MITIGATIONS)}")
        if not checked:
            MITIGATIONS[name].check(self.engine, target, amount, worlds)
        self.spend(name, worlds)
        self.score.ordered(name, target, worlds)
        if name == "page_human":     # a person is on their way: what they do is theirs (`act.human`)
            self.paged_at[worlds] = np.minimum(self.paged_at[worlds], self.time)
            self.humans.page(worlds, self.time)
            return
        self.pending.append((self.time + MITIGATIONS[name].takes, name, target, amount, worlds))

    def _land(self, name: str, target: object, amount: object, worlds: np.ndarray) -> None:
        try:
            MITIGATIONS[name].act(self.engine, self.injector, target, amount, worlds)   # (act checks first too)
        except MitigationError:     # checked when ordered; the world may have changed since (a node is gone)
            self.score.failed_orders[worlds] += 1
            return
        self.score.landed(name, target, worlds)

    def silence(self, components: np.ndarray, worlds: np.ndarray, seconds: float | np.ndarray) -> None:
        """Silence the dashboard's alerts about components[w] in worlds[w] for a while (what the agent sees only)."""
        self.silenced_until[worlds, components] = self.time + seconds
        self.score.silenced(worlds)

    def silenced_pages(self, worlds: np.ndarray) -> None:
        """The responders of `worlds` silenced pages at the notifier (the text tools' silence): charged and judged as
        any silence; the notifier itself keeps the silence."""
        self.spend("silence_alert", worlds)
        self.score.silenced(worlds)

    def acknowledge(self, worlds: np.ndarray) -> None:
        """The responders of `worlds` acknowledged their pages."""
        self.spend("acknowledge", worlds)
        self.score.acknowledged(worlds)

    def refuse(self, worlds: np.ndarray) -> None:
        """An invalid action in `worlds`: charged as one, and nothing else changes (the caller spends the time)."""
        self.score.bad(worlds)

    def take_reward(self) -> np.ndarray:
        """[B] the reward earned since the last call."""
        return self.score.take()

    def submit(self, worlds: np.ndarray, components: list[list[str]], fault_class: list[str],
               chain: list[list[str] | None] | None = None) -> None:
        """Hand over with a diagnosis per world; their responders act no more."""
        worlds = np.asarray(worlds, dtype=np.int64)
        self.submitted_at[worlds] = self.time
        for i, b in enumerate(worlds):
            self.diagnosis[int(b)] = {"components": list(components[i]), "fault_class": fault_class[i],
                                      "chain": list(chain[i]) if chain and chain[i] else None, "time": self.time}
        self.score.submitted(worlds)

    def wrong(self, worlds: np.ndarray) -> np.ndarray:
        """[W] whether anything is wrong in these worlds now, as the truth has it: a fault acting, or users hurt."""
        return (self.injector.acting() | self.score.hurting)[worlds]

    def alerts_seen(self) -> np.ndarray:
        """[B, S, A] the dashboard's firing alerts, less the silenced ones."""
        return self.dashboard.firing & (self.silenced_until <= self.time)[:, :, None]

    def ground_truth(self) -> list:
        """Per world, the ground truth so far (`GroundTruth`: faults, root causes, the causal chain, user impact),
        read off the faulted worlds and their counterfactual. Needs `IncidentConfig(counterfactual=True)`."""
        if self.twin is None:
            raise ValueError("the causal chain needs the counterfactual: IncidentConfig(counterfactual=True)")
        if not self.frames:
            return []
        faulted = Trajectory.stack([f for f, _ in self.frames])
        baseline = Trajectory.stack([b for _, b in self.frames])
        return ground_truth(self.injector, faulted, baseline)

    def reports(self) -> list:
        """Per world: the score report (call at the end)."""
        return self.score.reports()


def _grouped(draws: list[Draw], scenario: Scenario, companions: bool = False
             ) -> list[tuple[object, np.ndarray, np.ndarray]]:
    """Worlds whose faults differ only in onset share one injector entry (the injector's work per tick is then per
    kind of fault, not per world). A certificate's expiry is its onset, so those stay apart. `companions`: group the
    faults the drawn ones need beside them instead."""
    groups: dict[str, tuple[object, list[int], list[float]]] = {}
    pairs = [(b, f) for b, d in enumerate(draws) for f in (d.also if companions else (d.fault,))]
    for b, f in pairs:
        apart = f.strikes == "certificate"
        key = f"{type(f).__name__}:{f.model_dump(exclude=set() if apart else {'onset'})}"
        groups.setdefault(key, (f, [], []))
        groups[key][1].append(b)
        groups[key][2].append(f.onset_seconds(scenario))
    return [(f, np.array(w), np.array(o)) for f, w, o in groups.values()]


def _hops(topo) -> np.ndarray:
    """[S, S] hops between components in the real call graph (undirected); S+1 where unconnected."""
    S = topo.n_components
    adj = np.zeros((S, S), np.float32)
    for a, near in enumerate(neighbours(topo)):
        adj[a, list(near)] = 1.0
    out = np.full((S, S), S + 1, np.int64)
    np.fill_diagonal(out, 0)
    frontier = np.eye(S, dtype=np.float32)          # row a: the components first reached from a at this distance
    for d in range(1, S + 1):                        # breadth-first from every component at once
        reached = (frontier @ adj > 0) & (out > d)
        if not reached.any():
            break
        out[reached] = d
        frontier = reached.astype(np.float32)
    return out
