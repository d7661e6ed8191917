"""A batch of incidents: B worlds of one scenario, each with its own fault, its own responder and its own score.

This is the one way into an incident: every interface (the Gymnasium envs, the text tools, the MCP server, `opsworld
play`, the audit) is a thin adapter over its runbook verbs (`investigate`, `wait`, `mitigate`, `silence`,
`acknowledge`, `submit`, `leave`, `refuse`). It drives a running system through the backend seam (`act.system.System`:
the model by default), takes the responder's orders for any subset of worlds at once, lands mitigations when they take
effect, and keeps the score from the truth state only (`opsworld.score`).
Everything is arrays over worlds; orders are grouped by (action, target) so a step costs a few numpy calls, not one
Python call per world.

Time: the worlds advance together, one tick per `advance()`. An order costs its responder `Action.cost`
seconds: that world's responder is busy until then (`busy_until`) and its further orders are refused as `busy`.
After `submit` a world's responder is gone; the world runs on to the horizon, so handing over early never escapes
the impact that follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from opsworld.act.human import Humans
from opsworld.act.mitigations import MITIGATIONS, MitigationError
from opsworld.act.runbook import ACTIONS, ActionError
from opsworld.act.system import ModelSystem, System
from opsworld.engine import Engine, Trajectory, Truth
from opsworld.engine.graph import hops
from opsworld.engine.topology import compile_topology, read_only
from opsworld.envs.generator import CONTROLS, CatalogueGenerator, Draw
from opsworld.faults.ground_truth import FaultTruth, ground_truth, truth_of
from opsworld.faults.injector import Injector
from opsworld.observe.alerts.notifier import Matcher, matches
from opsworld.score.reward import RewardWeights, ScoreBook
from opsworld.spec import Scenario, load_scenario

if TYPE_CHECKING:
    from opsworld.observe.coverage import Coverage


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
    coverage: how the alerting falls short of ideal in each world (missing, mis-tuned, silenced, noisy alerts; None:
      as written). `opsworld.envs.difficulty` sets it and the generator from one dial.
    backend: builds the running system (`act.system.System`; default: the model) from the scenario, the worlds, the
      seed and the faults placed.
    """

    scenario: str | Path | Scenario = "online-shop"
    horizon: float | None = None
    generator: CatalogueGenerator = field(default_factory=CatalogueGenerator)
    telemetry: bool = False
    counterfactual: bool = False
    weights: RewardWeights = field(default_factory=RewardWeights)
    telemetry_gaps: float = 0.0
    coverage: "Coverage | None" = None
    backend: Callable[..., System] = ModelSystem


class Incidents:
    """B worlds with one incident each. `reset(seed)`, then `order_*` and `advance()` until `done`."""

    def __init__(self, config: IncidentConfig | None = None, worlds: int = 1, seed: int = 0,
                 first_world: int = 0) -> None:
        self.config = config or IncidentConfig()
        self.first_world = first_world     # the engine's noise of world b is that of world `first_world + b` alone
        sc = self.config.scenario
        self.scenario = sc if isinstance(sc, Scenario) else load_scenario(sc)
        self.worlds = worlds
        # fixed per scenario, shared by every reset
        self._compiled = topo = read_only(compile_topology(self.scenario))     # every reset's system shares it
        self.distance = hops(topo.edge_src, topo.edge_dst, topo.n_components)   # [S, S] in the real call graph
        self.reset(seed)

    # ---- episode lifecycle -----------------------------------------------------------------------------------------
    def reset(self, seed: int = 0, draws: list[Draw] | None = None) -> None:
        """New incidents in every world: a fresh system, faults drawn from `seed` (or given as `draws`)."""
        self.seed = seed
        rng = np.random.default_rng([seed, 0x1C1D])
        self.draws = draws if draws is not None else [self.config.generator.draw(self.scenario, rng)
                                                      for _ in range(self.worlds)]
        if len(self.draws) != self.worlds:
            raise ValueError(f"{len(self.draws)} draws for {self.worlds} worlds")
        self.system = system = self.config.backend(
            self.scenario, worlds=self.worlds, seed=seed, first_world=self.first_world,
            faults=_grouped(self.draws, self.scenario), companions=_grouped(self.draws, self.scenario, companions=True),
            telemetry=self.config.telemetry, gaps=self.config.telemetry_gaps, topology=self._compiled,
            **({"coverage": self.config.coverage} if self.config.coverage is not None else {}))
        self.topology = topo = system.topology
        self.dashboard, self.telemetry = system.dashboard, system.telemetry
        self.twin = (Engine(self.scenario, worlds=self.worlds, seed=seed, first_world=self.first_world,
                            topology=self._compiled)
                     if self.config.counterfactual else None)
        self.frames: list[tuple[Truth, Truth]] = []     # (faulted, counterfactual) per tick, with a twin only
        horizon = self.config.horizon or self.scenario.duration
        self.ticks = int(np.ceil(horizon / system.dt - 1e-9))
        self.truths: list[FaultTruth | None] = list(system.truths)    # the ground truth is the drawn fault's
        # a compound incident: further harmful faults beside the drawn one, each scored as the drawn one is
        self.others: list[list[FaultTruth]] = [[truth_of(f, self.scenario) for f in d.others]
                                               for d in self.draws]
        self.carriers = system.carriers
        self.control = np.array([d.entry in CONTROLS for d in self.draws])
        self.onset = np.array([min([t.onset, *(o.onset for o in others)]) if t is not None and not c else np.inf
                               for t, c, others in zip(self.truths, self.control, self.others)])
        self.beyond_runbook = np.array([bool(t and t.beyond_runbook) or any(o.beyond_runbook for o in others)
                                        for t, others in zip(self.truths, self.others)]) & ~self.control
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
        self.last: Truth | None = None

    @property
    def engine(self) -> Engine:
        """The model's engine (the model backend only): for readers of the model's own state (`describe`, datasets)."""
        return self.system.engine

    @property
    def injector(self) -> Injector:
        """The model's fault injector (the model backend only)."""
        return self.system.injector

    @property
    def time(self) -> float:
        """Seconds since the episode began."""
        return self.system.time

    @property
    def done(self) -> bool:
        return self.system.tick >= self.ticks

    def advance(self) -> Truth:
        """One tick for every world: land the mitigations due, let paged humans look or fix, run the system a tick,
        score."""
        now = self.system.time
        due = [p for p in self.pending if p[0] <= now + 1e-9]
        if due:
            self.pending = [p for p in self.pending if p[0] > now + 1e-9]
            for lands, name, target, amount, worlds in due:
                self._land(name, target, amount, worlds)
        if self.humans.present:
            self.humans.tick(now, self.wrong, lambda w: self._land("page_human", None, None, w), self.score.human)
        truth = self.system.step()
        self.last = truth
        if self.twin is not None:
            self.frames.append((truth, self.twin.step()))
        self.score.tick(truth)
        return truth

    def run_to_end(self) -> None:
        while not self.done:
            self.advance()

    # ---- the runbook's verbs: every front end (gym, text tools, MCP, play) acts through these -------------------------
    def free(self, worlds: np.ndarray) -> np.ndarray:
        """[W] whether each world's responder can act now (not busy, not handed over)."""
        return (self.busy_until[worlds] <= self.time + 1e-9) & ~np.isfinite(self.submitted_at[worlds])

    def spend(self, name: str, worlds: np.ndarray, seconds: float | np.ndarray | None = None) -> None:
        """Charge the responders of `worlds` the action's time (or `seconds`)."""
        cost = ACTIONS[name].cost if seconds is None else seconds
        self.busy_until[worlds] = self.time + cost
        self.score.action(name, worlds)

    def investigate(self, name: str, worlds: np.ndarray) -> None:
        """The responders of `worlds` read a sensor (`name`: query_metrics, read_logs, ...): charged its time; what
        they read is the front end's to show."""
        if ACTIONS[name].kind != "investigate":
            raise ActionError(f"{name} is not an investigation")
        self.spend(name, worlds)

    def wait(self, worlds: np.ndarray, seconds: float | np.ndarray) -> None:
        """The responders of `worlds` wait `seconds` (one per world, or one for all)."""
        self.spend("wait", worlds, seconds)

    def mitigate(self, name: str, target: object, amount: object, worlds: np.ndarray, checked: bool = False) -> None:
        """A mitigation for some worlds: it lands `takes` seconds from now. Raises `MitigationError` for a target or
        amount the mitigation cannot take, before anything changes (`checked`: the caller has made sure)."""
        worlds = np.asarray(worlds, dtype=np.int64)
        if not len(worlds):
            return
        if name not in MITIGATIONS:
            raise MitigationError(f"no mitigation '{name}'; known: {', '.join(MITIGATIONS)}")
        if not checked:
            self.system.check(name, target, amount, worlds)
        self.spend(name, worlds)
        self.score.ordered(name, target, worlds)
        if name == "page_human":     # a person is on their way: what they do is theirs (`act.human`)
            self.paged_at[worlds] = np.minimum(self.paged_at[worlds], self.time)
            self.humans.page(worlds, self.time)
            return
        self.pending.append((self.time + MITIGATIONS[name].takes, name, target, amount, worlds))

    def _land(self, name: str, target: object, amount: object, worlds: np.ndarray) -> None:
        try:
            self.system.apply(name, target, amount, worlds)   # (checks first too)
        except MitigationError:     # checked when ordered; the world may have changed since (a node is gone)
            self.score.failed_orders[worlds] += 1
            return
        self.score.landed(name, target, worlds)

    def silence(self, worlds: np.ndarray, seconds: float | np.ndarray, components: np.ndarray | None = None,
                matchers: list[Matcher] | None = None) -> list[str]:
        """Silence alerts in `worlds` for `seconds` (one per world, or one for all), everywhere the responder sees
        them: those about `components[w]` (the dashboard's, and the notifier's labelled with that service), or those
        `matchers` select (at the notifier, and on the dashboard those of the services they pick). Charged and judged
        as the runbook's silence. Returns the notifier's silence ids; raises `ActionError` for matchers the notifier
        refuses, before anything changes."""
        worlds = np.asarray(worlds, dtype=np.int64)
        until = self.time + np.broadcast_to(np.asarray(seconds, dtype=float), worlds.shape)     # [W]
        ids = self._silence_pages(worlds, until, components, matchers)
        self.spend("silence_alert", worlds)
        if components is not None:
            self.silenced_until[worlds, components] = self.time + seconds
        else:
            picked = np.flatnonzero([_selects(matchers or [], c) for c in self.topology.components])
            self.silenced_until[np.ix_(worlds, picked)] = until[:, None]
        self.score.silenced(worlds)
        return ids

    def _silence_pages(self, worlds: np.ndarray, until: np.ndarray, components: np.ndarray | None,
                       matchers: list[Matcher] | None) -> list[str]:
        """The notifier's side of a silence (none without one): one silence per (matchers, end)."""
        notifier = self.telemetry.notifier if self.telemetry is not None else None
        if notifier is None:
            return []
        names = self.topology.components
        pieces: dict[tuple, list[int]] = {}
        for i, b in enumerate(map(int, worlds)):
            ms = matchers if components is None else [("service", "=", names[int(components[i])])]
            pieces.setdefault((tuple(ms or ()), float(until[i])), []).append(b)
        start = self.scenario.traffic.start          # the notifier's clock is Unix seconds
        try:   # one set of matchers per call (a tool's), or service matchers that always check: all or nothing
            return [notifier.silence(list(ms), start + self.time, start + end, created_by="oncall",
                                     comment="silenced during the incident", worlds=where)
                    for (ms, end), where in pieces.items()]
        except ValueError as exc:
            raise ActionError(f"silence_alert: {exc}") from None

    def acknowledge(self, worlds: np.ndarray, alert: str | None = None) -> int:
        """The responders of `worlds` acknowledge their pages: those of the firing alerts named (or fingerprinted)
        `alert`, or all. At a notifier, those alerts' pages stop repeating until they resolve. Returns how many
        alerts the notifier acknowledged; raises `ActionError` when `alert` names no firing alert."""
        worlds = np.asarray(worlds, dtype=np.int64)
        count = 0
        notifier = self.telemetry.notifier if self.telemetry is not None else None
        if notifier is not None:
            # the pager app knows its alerts even when the monitoring is dark: read the evaluator, not the query API
            for b in map(int, worlds):
                firing = [a for a in self.telemetry.evaluator.alerts(b) if a.state == "firing"]
                chosen = sorted({a.fingerprint for a in firing if alert is None or alert in (a.name, a.fingerprint)})
                if alert is not None and not chosen:
                    known = sorted({a.name for a in firing})
                    raise ActionError(f"acknowledge: no firing alert named or with fingerprint {alert!r}; firing: "
                                      f"{', '.join(known) if known else 'none'}")
                count += sum(notifier.acknowledge(fp, b) for fp in chosen)
        self.spend("acknowledge", worlds)
        self.score.acknowledged(worlds)
        return count

    def refuse(self, worlds: np.ndarray, seconds: float | None = None) -> None:
        """An invalid action in `worlds`: charged as one, and nothing else changes. `seconds`: the responders are
        also held that long (a step-driven front end; a tool session moves its clock itself)."""
        if seconds is not None:
            self.spend("wait", worlds, seconds)
        self.score.bad(worlds)

    def take_reward(self) -> np.ndarray:
        """[B] the reward earned since the last call."""
        return self.score.take()

    def submit(self, worlds: np.ndarray, components: list[list[str]], fault_class: list[str],
               chain: list[list[str] | None] | None = None) -> None:
        """Hand over with a diagnosis per world (charged the runbook's time); their responders act no more."""
        worlds = np.asarray(worlds, dtype=np.int64)
        self.spend("submit", worlds)
        self._hand_over(worlds, components, fault_class, chain)

    def leave(self, worlds: np.ndarray) -> None:
        """The responders of `worlds` leave without a diagnosis (as one who quits): nothing charged, nothing
        credited; the worlds run on."""
        worlds = np.asarray(worlds, dtype=np.int64)
        # "none": no diagnosis (an empty class would read as a claim that something is wrong)
        self._hand_over(worlds, [[] for _ in worlds], ["none"] * len(worlds))

    def _hand_over(self, worlds: np.ndarray, components: list[list[str]], fault_class: list[str],
                   chain: list[list[str] | None] | None = None) -> None:
        self.submitted_at[worlds] = self.time
        for i, b in enumerate(worlds):
            self.diagnosis[int(b)] = {"components": list(components[i]), "fault_class": fault_class[i],
                                      "chain": list(chain[i]) if chain and chain[i] else None, "time": self.time}
        self.score.submitted(worlds)

    def wrong(self, worlds: np.ndarray) -> np.ndarray:
        """[W] whether anything is wrong in these worlds now, as the truth has it: a fault acting, or users hurt."""
        return (self.system.acting() | self.score.hurting)[worlds]

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
    pairs = [(b, f) for b, d in enumerate(draws)
             for f in ((*d.others, *d.also) if companions else (d.fault,))]
    for b, f in pairs:
        apart = f.strikes == "certificate"
        key = f"{type(f).__name__}:{f.model_dump(exclude=set() if apart else {'onset'})}"
        groups.setdefault(key, (f, [], []))
        groups[key][1].append(b)
        groups[key][2].append(f.onset_seconds(scenario))
    return [(f, np.array(w), np.array(o)) for f, w, o in groups.values()]


def _selects(matchers: list[Matcher], component: str) -> bool:
    """Whether matchers on the `service` label pick this component's alerts (no such matcher: none are picked)."""
    on_service = [m for m in matchers if m[0] == "service"]
    return bool(on_service) and all(matches(m, {"service": component}) for m in on_service)
