"""Wrong answers at an entry service reach the users' view, where the services' own counters see successes: the
dashboard's SLO burn counts them (the correctness SLI), and the correctness prober's checks page through the rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opsworld.engine import Engine
from opsworld.engine.topology import topology_of
from opsworld.faults.catalogue import entry
from opsworld.faults.injector import Injector
from opsworld.observe.dashboard import ALERTS, SIGNALS, Dashboard
from opsworld.observe.telemetry import Telemetry
from opsworld.spec import Scenario, load_scenario

TICKS = 120


def _run(target: str | None) -> tuple[np.ndarray, np.ndarray, Dashboard]:
    """[T, B, S] the SLO burn and the error ratio, with wrong answers from `target`'s new build (None: no fault)."""
    example = entry("corrupt_responses")
    engine = Engine(example.example.scenario(), worlds=2, seed=5)
    faults = [example.make(target=target, onset="5m", share=0.3)] if target else []
    injector, dashboard = Injector(engine, faults), Dashboard(engine, noise=0.0)
    burn, errors = [], []
    for _ in range(TICKS):
        dashboard.update(injector.step())
        burn.append(dashboard.signals[..., SIGNALS.index("slo_burn")].copy())
        errors.append(dashboard.signals[..., SIGNALS.index("error_ratio")].copy())
    return np.array(burn), np.array(errors), dashboard


def test_wrong_answers_at_the_entry_burn_the_users_slos_though_no_request_fails() -> None:
    calm, calm_errors, dash = _run(None)
    entry_s = int(dash.engine.topology.endpoint_component[0])
    burn, errors, dash = _run(dash.engine.topology.components[entry_s])
    after = slice(TICKS // 2, None)
    assert calm[after, :, entry_s].max() < 1.0                       # a quiet day spends less than the budget
    assert burn[after, :, entry_s].min() > 10.0                      # 30% wrong against a 0.1% budget
    assert np.allclose(errors[after, :, entry_s], calm_errors[after, :, entry_s], atol=1e-3)   # nothing fails
    assert dash.firing[:, entry_s, list(ALERTS).index("SLOBurn")].all()


def _pages(target: str | None, scenario: Scenario | None = None) -> set[str]:
    """The alerts that paged within 20 minutes, with wrong answers from `target`'s new build from 5m (None: none)."""
    example = entry("corrupt_responses")
    scenario = scenario or example.example.scenario()
    engine = Engine(scenario, worlds=1, seed=5)
    faults = [example.make(target=target, onset="5m", share=0.1)] if target else []
    telemetry = Telemetry(Injector(engine, faults), text=False)
    paged = set()
    for _ in range(150):
        telemetry.step()
        for a in np.flatnonzero(telemetry.evaluator.firing()[0]):
            instance = telemetry.evaluator.instances[a]
            if instance.labels.get("severity") == "page":
                paged.add(instance.labels["alertname"])
    return paged


def _front(scenario: Scenario) -> str:
    topo = topology_of(scenario)
    return topo.components[int(topo.endpoint_component[0])]


def test_the_correctness_prober_pages_on_wrong_answers_at_the_entry_and_only_then() -> None:
    front = _front(entry("corrupt_responses").example.scenario())
    assert _pages(front) == {"CorrectnessBudgetBurn"}              # nothing fails: no other page
    assert _pages(None) == set()


def test_generated_rules_page_on_wrong_answers_too() -> None:
    scenario = load_scenario(Path(__file__).parents[1] / "data" / "my-system.yaml")
    assert "CorrectnessBudgetBurn" in _pages(_front(scenario), scenario)
