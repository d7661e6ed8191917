"""The observability stack of a batch: determinism, imperfections as knobs, change events with who made them, and
tools that go dark when the routes are gone."""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.engine import Engine
from opsworld.act.mitigations import mitigate
from opsworld.faults import CATALOGUE
from opsworld.faults.injector import Injector
from opsworld.observe.imperfection import Imperfections
from opsworld.observe.telemetry import Telemetry, ToolsUnavailable


def shop(faults=(), worlds: int = 2, seed: int = 5, imperfections: Imperfections | None = None,
         ticks: int = 120) -> Telemetry:
    telemetry = Telemetry(Injector(Engine("online-shop", worlds=worlds, seed=seed), list(faults)), imperfections)
    telemetry.run(ticks)
    return telemetry


def bad_deploy():
    return CATALOGUE["bad_deploy_errors"].make(target="cartservice", onset="5m")


def test_same_seed_and_faults_give_identical_telemetry() -> None:
    a, b = shop([bad_deploy()]), shop([bad_deploy()])
    assert a.store.labels == b.store.labels
    assert np.array_equal(a.store.values, b.store.values, equal_nan=True)
    assert np.array_equal(a.store.times, b.store.times)
    for world in (0, 1):
        assert [str(x) for x in a.logs(world, limit=300)] == [str(x) for x in b.logs(world, limit=300)]
        assert [t.render() for t in a.traces(world, limit=10)] == [t.render() for t in b.traces(world, limit=10)]
        assert a.evaluator.alerts_json(world) == b.evaluator.alerts_json(world)
        assert [str(p) for p in a.pages(world)] == [str(p) for p in b.pages(world)]
    c = shop([bad_deploy()], seed=6)
    assert not np.array_equal(a.store.values, c.store.values, equal_nan=True)


def test_a_world_reads_the_same_in_any_batch() -> None:
    batch = shop([bad_deploy()], worlds=3)
    alone = Telemetry(Injector(Engine("online-shop", worlds=1, seed=5, first_world=2), [bad_deploy()]))
    alone.run(120)
    assert np.array_equal(batch.store.values[:, 2], alone.store.values[:, 0], equal_nan=True)
    assert [str(x) for x in batch.logs(2, limit=200)] == [str(x) for x in alone.logs(0, limit=200)]


def test_scrape_failures_missing_and_stuck_series() -> None:
    clean = shop(ticks=60)
    flaky = shop(imperfections=Imperfections(scrape_failure=0.2, missing_series=0.1,
                                             stuck_at_zero=("http_server_requests",)), ticks=60)
    up = np.array([lab["__name__"] == "up" for lab in flaky.store.labels])
    down = flaky.store.values[:, :, up] == 0
    assert 0.1 < down.sum() / (~np.isnan(flaky.store.values[:, :, up])).sum() < 0.3   # about a fifth of scrapes
    assert (clean.store.values[:, :, up] == 0).sum() == 0
    requests = np.array([lab["__name__"] == "http_server_requests_total" for lab in flaky.store.labels])
    seen = flaky.store.values[:, :, requests]
    assert np.nanmax(seen) == 0.0 and np.nanmax(clean.store.values[:, :, requests]) > 0
    never = np.isnan(flaky.store.values).all(axis=0) & ~np.isnan(clean.store.values).all(axis=0)   # [B, M]
    assert 0.05 < never.sum() / (~np.isnan(clean.store.values).all(axis=0)).sum() < 0.2


def test_ingestion_delay_hides_the_newest_samples() -> None:
    late = shop(imperfections=Imperfections(ingestion_delay=120.0), ticks=60)
    now = late.now
    assert late.query("max(up)", at=now).values.size == 1       # still answered, from samples ingested by then
    store = late.visible(0)
    assert store.times[-1] <= now - 120.0 < late.store.times[-1]


def test_changes_say_who_made_them() -> None:
    engine = Engine("online-shop", worlds=1, seed=2)
    injector = Injector(engine, [bad_deploy(), CATALOGUE["benign_config"].make(target="adservice", onset="2m")])
    telemetry = Telemetry(injector)
    telemetry.run(60)
    mitigate(engine, "rollback_deploy", "cartservice", injector=injector)
    telemetry.run(30)
    history = [(c.kind, c.target, c.by) for c in telemetry.changes(0)]
    assert ("config", "adservice", "config-sync") in history
    assert ("deploy", "cartservice", "deploy-pipeline") in history
    assert ("deploy", "cartservice", "oncall") in history          # the rollback
    assert all("fault" not in c.describe().lower() for c in telemetry.changes(0))


def test_autoscaler_changes_are_recorded() -> None:
    crowd = CATALOGUE["flash_crowd"].make(target="GET /product/{id}", factor=10.0, onset="2m")
    telemetry = Telemetry(Injector(Engine("online-shop", worlds=1, seed=1), [crowd]))
    telemetry.run(60)
    scaled = [c for c in telemetry.changes(0) if c.by == "horizontal-pod-autoscaler"]
    assert scaled and scaled[0].kind == "scale" and scaled[0].target == "frontend" and int(scaled[0].after) > 3


def test_control_plane_loss_takes_the_tools_down() -> None:
    entry = CATALOGUE["control_plane_loss"]
    telemetry = Telemetry(Injector(Engine(entry.example.scenario(), worlds=1, seed=1), entry.example_faults()))
    telemetry.run(50)
    assert telemetry.reachable(0) and telemetry.query("sum(up)").values.size
    telemetry.run(30)                                             # the routes went at 10 minutes
    assert not telemetry.reachable(0)
    for tool in (lambda: telemetry.query("up"), lambda: telemetry.logs(0), lambda: telemetry.traces(0),
                 lambda: telemetry.alerts(0), lambda: telemetry.changes(0)):
        with pytest.raises(ToolsUnavailable, match="no route to host"):
            tool()
    up = np.array([lab["__name__"] == "up" for lab in telemetry.store.labels])
    assert np.nansum(telemetry.store.values[-1, 0, up]) == 0.0     # nothing could be scraped


def test_a_silence_suppresses_pages_and_nothing_else() -> None:
    faults = [CATALOGUE["bad_deploy_errors"].make(target="cartservice", onset="2m", rate=0.9)]
    loud, quiet = shop(faults, worlds=1, ticks=20), shop(faults, worlds=1, ticks=20)
    quiet.notifier.silence([("alertname", "=~", ".+")], quiet.now, quiet.now + 7200, "oncall", "working on it")
    loud.run(100)
    quiet.run(100)
    assert np.array_equal(loud.store.values, quiet.store.values, equal_nan=True)
    assert [a.name for a in loud.alerts(0)] == [a.name for a in quiet.alerts(0)] and loud.alerts(0)
    after = quiet.now - 100 * 10.0
    assert [p for p in quiet.pages(0) if p.time > after] == [] and [p for p in loud.pages(0) if p.time > after]


def test_a_world_outside_the_batch_is_refused() -> None:
    telemetry = shop(worlds=2, ticks=3)
    with pytest.raises(ValueError, match="world must be in 0..1"):
        telemetry.store.world(2)
    with pytest.raises(ValueError, match="world must be in 0..1"):
        telemetry.query("up", world=5)
