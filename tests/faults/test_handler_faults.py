"""Code-level faults in one handler, as a real bug is: an exception or an early return in the checkout handler fails
checkout alone (its metrics, its traces, the users' success), not every page of the frontend; inside a service, a
bug in one of its listed handlers fails that handler's share of its requests; the ground truth names the handler;
a handler the component does not have is a one-line error naming those it has."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from opsworld.engine import Engine
from opsworld.faults import FaultError
from opsworld.faults.ground_truth import fault_truths
from opsworld.faults.injector import Injector
from opsworld.faults.process import EarlyReturn, ErrorRate
from opsworld.observe.telemetry import Telemetry
from opsworld.spec import load_scenario

CHECKOUT = "POST /cart/checkout"


def test_a_bug_in_one_endpoint_handler_fails_that_endpoint_alone() -> None:
    engine = Engine("online-shop", worlds=3, seed=0)
    injector = Injector(engine)
    injector.add(ErrorRate(target="frontend", rate=0.7, onset=0.0), [0])
    injector.add(ErrorRate(target="frontend", rate=0.7, onset=0.0, handler=CHECKOUT), [1])
    run = injector.run(30)
    failed, requests = run.failed[5:].sum(axis=0), run.requests[5:].sum(axis=0)        # [B, P]
    share = failed / np.maximum(requests, 1.0)
    checkout = engine.topology.endpoints.index(CHECKOUT)
    assert share[1, checkout] == pytest.approx(0.7, abs=0.02)
    assert np.delete(share[1], checkout).max() < 1e-9                   # every other page untouched
    assert (np.delete(share[0], checkout) > 0.6).all()                  # the whole-service bug fails them all
    success = 1.0 - failed.sum(axis=1) / requests.sum(axis=1)
    assert success[1] == pytest.approx(1.0 - 0.7 * 0.06, abs=0.01) and success[2] == 1.0
    frontend = engine.topology.index("frontend")
    own = run.failed_by_cause[5:, 1, frontend, 0].sum()
    assert own == pytest.approx(failed[1, checkout], rel=1e-6)        # counted as the frontend's own errors


def test_traces_metrics_and_ground_truth_show_the_handler() -> None:
    fault = EarlyReturn(target="frontend", rate=0.7, onset=60.0, handler=CHECKOUT)
    injector = Injector(Engine("online-shop", worlds=1, seed=0), [fault])
    telemetry = Telemetry(injector, rules=False)
    telemetry.run(60)
    roots = Counter(t.spans[0].operation for t in telemetry.traces(error=True, limit=100))
    assert set(roots) == {CHECKOUT}, roots
    errors = telemetry.query('sum by (endpoint) (rate(http_server_requests_total{service="frontend",code=~"5.."}'
                             '[5m]))')
    by = dict(zip([labels["endpoint"] for labels in errors.labels], errors.values[0]))
    assert by[CHECKOUT] > 0 and all(v == 0 for e, v in by.items() if e != CHECKOUT)
    (_, truth), = fault_truths(injector)
    assert truth.handler == CHECKOUT and truth.roots[0].name == "frontend"


def test_a_listed_handler_inside_a_service_fails_its_share() -> None:
    scenario = load_scenario("online-shop", {"components": {"cartservice": {
        "handlers": {"GetCart": 3, "AddItem": 1}}}})
    assert scenario.handlers("cartservice") == {"GetCart": 0.75, "AddItem": 0.25}
    engine = Engine(scenario, worlds=2, seed=0)
    injector = Injector(engine)
    injector.add(ErrorRate(target="cartservice", rate=0.8, onset=0.0, handler="AddItem"), [0])
    injector.add(ErrorRate(target="cartservice", rate=0.8, onset=0.0), [1])
    run = injector.run(20)
    cart = engine.topology.index("cartservice")
    own = run.failed_by_cause[5:, :, cart, 0].sum(axis=0) / run.served[5:, :, cart].sum(axis=0)
    assert own[0] == pytest.approx(0.8 * 0.25, abs=0.01) and own[1] == pytest.approx(0.8, abs=0.01)


def test_a_handler_the_component_lacks_is_a_one_line_error() -> None:
    shop = load_scenario("online-shop")
    with pytest.raises(FaultError, match=r"'GET /nope' is not a handler of 'frontend'; its handlers: GET /, "):
        ErrorRate(target="frontend", handler="GET /nope").check(shop)
    with pytest.raises(FaultError, match="lists no handlers"):
        EarlyReturn(target="cartservice", handler="GetCart").check(shop)
    ErrorRate(target="frontend", handler=CHECKOUT).check(shop)           # a real one passes
