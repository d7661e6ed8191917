"""The observability stack of a batch of worlds: scrapes, rule evaluation, notifications, and the lazy sensors.

`Telemetry(source)` wraps an `Engine` or an `Injector`: call `step()` instead of theirs. Each tick it scrapes the
metrics into the store, evaluates the alert rules and lets the notifier route what fires; logs and traces are
produced only when queried, from a `Recording` of the ticks (`text=False` skips it, for long batched runs that read
only metrics and alerts). The query methods answer for one world, as the tools of an on-call engineer would.

With a `Coverage` the rule set is the one world `engine.first_world` runs under (`observe.coverage.covered_rules`:
the evaluator runs one rule set for the whole batch, so every world of a batch shares it — the text tools run one
world per batch), and each world gets its own stale silences, put into the notifier before the episode starts.
"""

from __future__ import annotations

from typing import Any

from opsworld.engine import Engine, Truth
from opsworld.engine.changes import Change
from opsworld.faults.injector import Injector
from opsworld.observe.alerts.evaluator import Alert, RuleEvaluator
from opsworld.observe.alerts.notifier import Notification, Notifier
from opsworld.observe.alerts.generate import rules_for_scenario
from opsworld.observe.alerts.rules import RuleFile
from opsworld.observe.coverage import Coverage, apply_silences, covered_rules, stale_silences
from opsworld.observe.imperfection import Imperfections
from opsworld.observe.metrics import MetricSensor
from opsworld.observe.promql import Matrix, Scalar, Vector, instant_query, range_query
from opsworld.observe.recording import Recording, new_recording
from opsworld.observe.store import MetricStore


class ToolsUnavailable(RuntimeError):
    """The monitoring cannot be reached (no route to it): every query fails, as the responders' dashboards would."""


class Telemetry:
    """Sensors, metric store, alerting and notifier for one batch of worlds."""

    def __init__(self, source: Engine | Injector, imperfections: Imperfections | None = None,
                 rules: RuleFile | None | bool = True, text: bool = True, retention: int | None = None,
                 coverage: Coverage | None = None) -> None:
        """`coverage`: how far the monitoring falls short of naming causes (None or `Coverage()`: it does not)."""
        self.source = source
        self.engine = engine = source.engine if isinstance(source, Injector) else source
        self.imperfections = imperfections or Imperfections()
        self.metrics = MetricSensor(engine, self.imperfections, retention)
        self.store: MetricStore = self.metrics.store
        self.recording: Recording | None = new_recording(engine) if text else None
        if rules is True:     # a template's hand-written rule set; any other scenario gets rules generated from it
            rules = rules_for_scenario(engine.scenario)
        self.coverage = coverage
        if rules and coverage is not None and not coverage.off:
            rules = covered_rules(rules, coverage, engine.seed, engine.first_world, engine.topology.components)
        self.rules: RuleFile | None = rules or None
        self.evaluator = RuleEvaluator(self.rules, self.store) if self.rules is not None else None
        self.notifier = Notifier() if self.evaluator is not None else None
        if self.notifier is not None and self.rules is not None and coverage is not None and coverage.stale_silence:
            start = float(engine.scenario.traffic.start)
            for b in range(engine.worlds):
                apply_silences(self.notifier, stale_silences(self.rules, coverage, engine.seed,
                                                             engine.first_world + b, start), [b])

    # ---- running ---------------------------------------------------------------------------------------------------
    def step(self) -> Truth:
        """Advance the worlds one tick, then scrape, evaluate the rules and notify."""
        truth = self.source.step()
        self.metrics.scrape(truth)
        if self.recording is not None:
            self.recording.record(self.engine, truth)
        now = self.now
        if self.evaluator is not None and self.notifier is not None:
            self.evaluator.evaluate(now)
            self.notifier.update(now, self.evaluator)
        return truth

    def run(self, ticks: int | None = None) -> None:
        """Advance `ticks` ticks (default: to the end of the scenario)."""
        n = self.engine.ticks - self.engine.tick if ticks is None else ticks
        for _ in range(max(n, 0)):
            self.step()

    @property
    def start(self) -> float:
        """Wall-clock time, Unix seconds, the episode started at (the store holds scrapes from before it too)."""
        return float(self.engine.scenario.traffic.start)

    @property
    def now(self) -> float:
        """Wall-clock time, Unix seconds, at the end of the last tick."""
        return float(self.engine.scenario.traffic.start + self.engine.time)

    # ---- the tools, for one world ------------------------------------------------------------------------------------
    def reachable(self, world: int) -> bool:
        """Whether the monitoring can be reached in a world now (not when every node has lost its routes)."""
        return not bool(self.engine.knobs.isolated[:, world].all())

    def check(self, world: int) -> None:
        """Raise ValueError for a world outside the batch, ToolsUnavailable when the monitoring cannot be reached."""
        if not 0 <= world < self.engine.worlds:
            raise ValueError(f"world must be in 0..{self.engine.worlds - 1}, got {world}")
        if not self.reachable(world):
            raise ToolsUnavailable("dial tcp 10.96.0.20:9090: connect: no route to host")

    def visible(self, world: int) -> MetricStore:
        """One world's metric store as a query sees it now (samples not yet ingested left out)."""
        store = self.store.world(world)
        delay = self.imperfections.ingestion_delay
        return store.until(self.now - delay) if delay else store

    def query(self, promql: str, world: int = 0, at: float | None = None) -> Vector | Scalar:
        """An instant PromQL query in one world at `at` (Unix seconds; default now)."""
        self.check(world)
        return instant_query(promql, self.visible(world), self.now if at is None else at)

    def query_range(self, promql: str, start: float, end: float, step: float, world: int = 0) -> Matrix:
        """A range PromQL query in one world."""
        self.check(world)
        return range_query(promql, self.visible(world), start, end, step)

    def alerts(self, world: int = 0) -> list[Alert]:
        """The pending and firing alerts in one world."""
        self.check(world)
        return self.evaluator.alerts(world) if self.evaluator is not None else []

    def pages(self, world: int = 0) -> list[Notification]:
        """The pages sent so far in one world (the notifier keeps sending them while the tools are dark)."""
        return self.notifier.pages(world) if self.notifier is not None else []

    def changes(self, world: int = 0, start: float | None = None, end: float | None = None) -> list[Change]:
        """The change history of one world, between `start` and `end` (Unix seconds). Each change carries both
        clocks, labelled: `time` (seconds since the episode started) and `wall` (Unix seconds, as alerts' `active_at`,
        logs and traces)."""
        self.check(world)
        t0 = self.engine.scenario.traffic.start
        return [c for c in self.engine.changes.events(world)
                if (start is None or t0 + c.time >= start) and (end is None or t0 + c.time <= end)]

    def logs(self, world: int = 0, **query: Any) -> list:
        """Log lines of one world (see `observe.logs.query_logs` for the filters)."""
        from opsworld.observe.logs import query_logs
        self.check(world)
        return query_logs(self._recording(), world, imperfections=self.imperfections, **query)

    def traces(self, world: int = 0, **query: Any) -> list:
        """Sampled traces of one world (see `observe.traces.query_traces` for the filters)."""
        from opsworld.observe.traces import query_traces
        self.check(world)
        return query_traces(self._recording(), world, imperfections=self.imperfections, **query)

    def _recording(self) -> Recording:
        if self.recording is None:
            raise ValueError("logs and traces need a recording: build Telemetry with text=True")
        return self.recording

