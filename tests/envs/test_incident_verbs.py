"""`Incidents` is the one way into an incident: its runbook verbs run on any `System` (the backend seam), silence
means the same on every surface, and the per-scenario helpers give one answer."""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.act.runbook import ActionError
from opsworld.act.system import ModelSystem, System
from opsworld.engine.graph import below, hops, neighbours
from opsworld.envs.generator import CatalogueGenerator
from opsworld.envs.incident import IncidentConfig, Incidents
from opsworld.envs.tools import ToolSession
from opsworld.faults import FaultError, scenario_for


class Delegating:
    """A backend that is not the model's class: it offers only the `System` members, passed on to a model, and
    counts what it was asked. An `Incidents` that reached past the seam would fail on it."""

    def __init__(self, *args, **kwargs) -> None:
        self._model = ModelSystem(*args, **kwargs)
        self.asked: dict[str, int] = {}
        for name in ("scenario", "topology", "worlds", "dt", "dashboard", "telemetry", "truths", "carriers"):
            setattr(self, name, getattr(self._model, name))

    def _count(self, name: str) -> None:
        self.asked[name] = self.asked.get(name, 0) + 1

    time = property(lambda self: self._model.time)
    tick = property(lambda self: self._model.tick)
    knobs = property(lambda self: self._model.knobs)

    def version_id(self, name: str) -> int:
        return self._model.version_id(name)

    def step(self):
        self._count("step")
        return self._model.step()

    def check(self, *args) -> None:
        self._count("check")
        self._model.check(*args)

    def apply(self, *args) -> None:
        self._count("apply")
        self._model.apply(*args)

    def acting(self, *args) -> np.ndarray:
        return self._model.acting(*args)


def _episode(backend) -> tuple[Incidents, np.ndarray]:
    gen = CatalogueGenerator(entries=["bad_deploy_errors"], onset=(300.0, 300.0), move_target=False)
    inc = Incidents(IncidentConfig(generator=gen, horizon=1800.0, backend=backend), worlds=2, seed=3)
    root = inc.truths[0].roots[0].name
    w = np.array([0, 1])
    while inc.time < 600.0:
        inc.advance()
    inc.investigate("query_metrics", w)
    inc.silence(w, 600.0, components=np.array([0, 1]))
    inc.acknowledge(w)
    inc.mitigate("rollback_deploy", root, None, w)
    while inc.time < 900.0:
        inc.advance()
    inc.submit(w, [[root], []], ["error_rate", "no_fault"])
    inc.run_to_end()
    return inc, np.array([r.reward for r in inc.reports()])


def test_incidents_run_on_any_system_through_the_seam_alone():
    assert isinstance(ModelSystem.__init__, object) and hasattr(System, "step")
    model, expected = _episode(ModelSystem)
    other, got = _episode(Delegating)
    np.testing.assert_array_equal(got, expected)
    assert other.system.asked["step"] == other.ticks and other.system.asked["apply"] >= 1
    assert other.system.asked["check"] >= 1
    with pytest.raises(AttributeError):        # what reads the model itself says so
        other.engine


def test_a_silence_reaches_the_dashboard_and_the_notifier_alike():
    inc = Incidents(IncidentConfig(horizon=600.0, telemetry=True,
                                   generator=CatalogueGenerator(entries=["bad_deploy_errors"])), worlds=1, seed=0)
    cart = inc.topology.index("cartservice")
    ids = inc.silence(np.array([0]), 900.0, components=np.array([cart]))
    assert inc.silenced_until[0, cart] == inc.time + 900.0
    (silence,) = [s for s in inc.telemetry.notifier.silences(0) if s.id in ids]
    assert silence.matchers == (("service", "=", "cartservice"),)
    assert inc.score.actions[0] == 1

    # the tools' matcher silence also hides that service's alerts on the dashboard
    session = ToolSession("online-shop", seed=0, fault="bad_deploy_errors", horizon=1800.0, page_wait=60.0)
    session.call("silence_alert", {"matcher": 'service="checkoutservice"', "duration": 1200})
    s = session.inc.topology.index("checkoutservice")
    assert session.inc.silenced_until[0, s] > session.inc.time
    assert (session.inc.silenced_until[0, np.arange(len(session.inc.topology.components)) != s] == 0).all()


def test_a_refused_silence_or_acknowledgement_changes_nothing():
    inc = Incidents(IncidentConfig(horizon=600.0, telemetry=True), worlds=1, seed=0)
    before = (inc.score.actions.copy(), inc.busy_until.copy())
    with pytest.raises(ActionError, match="silence_alert"):
        inc.silence(np.array([0]), 600.0, matchers=[("service", "=~", ".*")])     # mutes everything: refused
    with pytest.raises(ActionError, match="no firing alert named"):
        inc.acknowledge(np.array([0]), "NoSuchAlert")
    assert (inc.score.actions == before[0]).all() and (inc.busy_until == before[1]).all()
    assert not inc.telemetry.notifier.silences(0)


def test_call_graph_reach():
    src, dst = np.array([0, 1, 1]), np.array([1, 2, 3])     # 0 -> 1 -> {2, 3}; 4 alone
    assert neighbours(src, dst, 5)[1] == {0, 2, 3}
    h = hops(src, dst, 5)
    assert h[0, 3] == 2 and h[3, 2] == 2 and h[0, 4] == 6 and (np.diag(h) == 0).all()
    b = below(src, dst, 5)
    assert b[0].tolist() == [True, True, True, True, False] and not b[2, 0] and b[4, 4]


def test_the_scenario_a_catalogue_fault_runs_on():
    storm = scenario_for("metastable_retry_storm")       # its template, in the state its failure needs
    assert storm.name == "online-shop"
    assert str(storm.components["productcatalogservice"].cpu) != str(
        scenario_for(None).components["productcatalogservice"].cpu)
    assert scenario_for("memory_creep", "social-network").name == "social-network"
    assert scenario_for(None, overrides={"duration": "10m"}).duration == 600.0
    with pytest.raises(FaultError, match="no fault named"):
        scenario_for("no_such_fault")
