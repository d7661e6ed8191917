"""A queue's consumer keeps stores up to date: while its messages wait longer than the queue's freshness, reads of
those stores are stale (answered as success, counted as wrong), and they are fresh again once the backlog drains."""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.engine import Engine
from opsworld.faults import CATALOGUE, Injector
from opsworld.spec import ScenarioError, load_scenario

QUEUE, CONSUMER = "write-home-timeline-rabbitmq", "write-home-timeline-service"


def _stale_share(scenario, entry: str | None, ticks: int = 240, restart_at: int | None = None) -> np.ndarray:
    """[T, P] the share of each endpoint's requests answered wrongly, tick by tick."""
    engine = Engine(scenario, worlds=1, seed=0)
    injector = Injector(engine)
    for fault in CATALOGUE[entry].example_faults() if entry else ():
        injector.add(fault)
    out = []
    for t in range(ticks):
        if t == restart_at:
            engine.set("restart_at", engine.time, CONSUMER, by="on-call")
        truth = injector.step()
        out.append(truth.wrong[0] / np.maximum(truth.requests[0], 1e-9))
    return np.array(out)


def test_a_stalled_consumer_makes_what_it_writes_read_stale_until_it_catches_up() -> None:
    sc = load_scenario("social-network")
    home = [ep.name for ep in sc.traffic.endpoints].index("GET /api/home-timeline/read")
    share = _stale_share(sc, "queue_consumer_stall", restart_at=150)
    onset = int(CATALOGUE["queue_consumer_stall"].example_faults()[0].onset_seconds(sc) / sc.tick)
    assert share[: onset + 6].max() == 0.0                      # within the freshness nobody notices
    assert share[onset + 30: 150, home].min() > 0.95            # then every home timeline is stale
    assert np.delete(share, home, axis=1).max() == 0.0          # the user timelines are not fed by the queue
    assert share[-30:].max() == 0.0                             # restarted, it drains the backlog: fresh again
    assert _stale_share(sc, None).max() == 0.0                  # a healthy consumer keeps up


def test_a_longer_freshness_tolerates_a_longer_wait() -> None:
    tolerant = load_scenario("social-network", {"components": {QUEUE: {"freshness": "10m"}}})
    quick, slow = _stale_share("social-network", "queue_consumer_stall"), _stale_share(tolerant, "queue_consumer_stall")
    assert np.argmax(slow[:, 0] > 0.5) > np.argmax(quick[:, 0] > 0.5) + 50


def test_feeds_names_the_stores_and_must_name_one() -> None:
    from opsworld.engine.topology import compile_topology

    topo = compile_topology(load_scenario("social-network"))
    assert [(topo.components[q], topo.components[s]) for q, s in topo.feeds] == [(QUEUE, "home-timeline-redis")]
    none = compile_topology(load_scenario("social-network", {"components": {QUEUE: {"feeds": []}}}))
    assert none.feeds.shape == (0, 2)
    with pytest.raises(ScenarioError, match=rf"components.{QUEUE}.feeds\[0\]: 'social-graph-service' is a service"):
        load_scenario("social-network", {"components": {QUEUE: {"feeds": ["social-graph-service"]}}})



def test_the_chain_says_the_stale_reads_came_from_the_store_not_the_queue() -> None:
    # web publishes to the queue and reads the store the queue's consumer writes: its wrong answers were reached from
    # the store that went stale (the same effect), not from the queue backing up; the store's from the consumer
    from opsworld.act.scripted import run_scripted
    from opsworld.faults.data import ConsumerStall

    shop = load_scenario({
        "name": "tiny", "duration": "30m", "tick": "10s",
        "nodes": [{"name": "node-a", "zone": "zone-a", "cpu": 8, "memory": "32Gi"}],
        "components": {
            "web": {"replicas": 2, "service_time": {"mean": "4ms"},
                    "dependencies": [{"target": "orders", "timeout": "200ms"}, {"target": "db", "timeout": "100ms"}]},
            "orders": {"kind": "queue", "consumer": "worker", "service_time": {"mean": "500us"}},
            "worker": {"service_time": {"mean": "5ms"}, "dependencies": [{"target": "db", "timeout": "100ms"}]},
            "db": {"kind": "datastore", "pool_size": 8, "service_time": {"mean": "2ms"}}},
        "traffic": {"base_rate": "50/s", "endpoints": [
            {"name": "GET /", "service": "web", "share": 1.0, "slo": {"availability": "99.9%", "latency": "300ms"}}]}})
    truth = run_scripted(shop, [ConsumerStall(target="worker", onset="5m")], seed=0, ticks=120).truth[0]
    via = {link.place.name: link.via for link in truth.chain}
    assert via["db"] == "worker" and via["web"] == "db", via
