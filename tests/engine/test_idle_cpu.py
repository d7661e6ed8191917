"""A runtime's work at rest (`idle_cpu`: garbage collection, background threads): busy in the CPU a replica shows
whatever its load, not there for requests; a runaway burns on top of it, and a restart that clears the runaway
leaves the runtime's own share. Scenarios without it run exactly as before."""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.engine import Engine
from opsworld.faults.injector import Injector
from opsworld.faults.process import CpuHog
from opsworld.spec import ScenarioError, load_scenario


def _cpu(scenario, component: str, faults=(), ticks: int = 30) -> float:
    engine = Engine(scenario, worlds=1, seed=0)
    run = Injector(engine, list(faults)).run(ticks)
    return float(run.cpu_utilisation[10:, 0, engine.topology.index(component)].mean())


def test_the_runtime_at_rest_shows_in_the_cpu_and_a_runaway_burns_on_top() -> None:
    plain = load_scenario("online-shop")
    idle = load_scenario("online-shop", {"components": {"cartservice": {"idle_cpu": "5%"}}})
    assert idle.components["cartservice"].idle_cpu == pytest.approx(0.05)
    base, at_rest = _cpu(plain, "cartservice"), _cpu(idle, "cartservice")
    assert at_rest == pytest.approx(base + 0.05, abs=1e-3)
    hog = CpuHog(target="cartservice", share=0.5, onset=0.0)
    assert _cpu(idle, "cartservice", [hog]) > _cpu(plain, "cartservice", [hog]) + 0.03
    engine = Engine(idle, worlds=1, seed=0)
    assert engine.knobs.cpu_hog[engine.topology.index("cartservice"), 0] == pytest.approx(0.05)


def test_without_it_nothing_changes_and_bad_values_are_refused() -> None:
    a = Engine("online-shop", worlds=2, seed=3).run(20)
    b = Engine(load_scenario("online-shop", {"components": {"cartservice": {"idle_cpu": 0}}}), worlds=2,
               seed=3).run(20)
    assert np.array_equal(a.cpu_utilisation, b.cpu_utilisation) and np.array_equal(a.failed, b.failed)
    with pytest.raises(ScenarioError, match="idle_cpu"):
        load_scenario("online-shop", {"components": {"cartservice": {"idle_cpu": "95%"}}})
