"""Generators drawing each world's fault parameters from the documented ranges (`spread`), a change log beside the
fault (`background`), a second harmful fault (`compound`) and a benign anomaly (`anomaly`)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from opsworld.act.scripted import run_scripted
from opsworld.envs.generator import (CONTROLS, COMPOUND_WINDOW, CatalogueGenerator, PortableGenerator, background,
                                     optional_callees)
from opsworld.envs.incident import IncidentConfig, Incidents
from opsworld.faults.catalogue import CATALOGUE
from opsworld.faults.ranges import ranges_of
from opsworld.spec import load_scenario

SHOP = load_scenario("online-shop")


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0x1C1D])


def _dump(d) -> tuple:
    return (d.entry, d.fault.model_dump(), [f.model_dump() for f in d.also], [f.model_dump() for f in d.others])


def test_spread_zero_draws_the_presets_as_before() -> None:
    plain, zero = CatalogueGenerator(), CatalogueGenerator(spread=0.0, levels=3, background=0.0, compound=0.0,
                                                            anomaly=0.0)
    a, b = _rng(7), _rng(7)
    for _ in range(300):
        da, db = plain.draw(SHOP, a), zero.draw(SHOP, b)
        assert _dump(da) == _dump(db) and not db.others
        e = CATALOGUE[db.entry]
        published = e.make(**{**e.example.params, "target": db.fault.target})
        for name in ranges_of(e):
            assert getattr(db.fault, name) == getattr(published, name)
    assert a.random() == b.random()             # the same rng calls, one for one


def test_full_spread_varies_every_entry_within_quantised_levels() -> None:
    gen = CatalogueGenerator(spread=1.0)
    seen: dict[tuple, set] = defaultdict(set)
    distinct: dict[str, set] = defaultdict(set)
    for seed in range(1000):
        d = gen.draw(SHOP, _rng(seed))
        e = CATALOGUE[d.entry]
        drawn = tuple((n, getattr(d.fault, n)) for n in ranges_of(e))
        key = (d.entry, d.fault.target)
        assert (drawn, d.fault.onset) not in seen[key]          # same entry and place: never the same incident
        seen[key].add((drawn, d.fault.onset))
        distinct[d.entry].add(drawn)
        for n, r in ranges_of(e).items():
            assert r.contains(float(getattr(d.fault, n)))
    for name, values in distinct.items():
        assert len(values) <= gen.levels ** len(ranges_of(CATALOGUE[name]))    # quantised: few distinct faults
        if ranges_of(CATALOGUE[name]) and sum(1 for k in seen if k[0] == name):
            assert len(values) > 1 or sum(len(v) for k, v in seen.items() if k[0] == name) == 1, name


def test_spread_moves_more_kinds_to_places_they_fit() -> None:
    gen = CatalogueGenerator(entries=["network_delay", "service_partition", "packet_loss"], spread=1.0)
    places = defaultdict(set)
    for seed in range(200):
        d = gen.draw(SHOP, _rng(seed))
        d.fault.check(SHOP)
        places[d.entry].add((d.fault.target, getattr(d.fault, "caller", None)))
    assert all(len(p) > 1 for p in places.values()), places
    # a path fault with no caller named strikes only a component something calls
    called = {dep.target for c in SHOP.components.values() for dep in c.dependencies} | \
        {dep.target for ep in SHOP.traffic.endpoints for dep in ep.calls or ()}
    assert {t for t, _ in places["network_delay"]} <= called


def test_two_seeds_of_one_entry_show_different_numbers() -> None:
    gen = CatalogueGenerator(entries=["bad_config_push"], spread=1.0, move_target=False)
    ratios, rates = [], []
    for seed in range(4):
        inc = Incidents(IncidentConfig(scenario="online-shop", generator=gen), worlds=1, seed=seed)
        fault = inc.draws[0].fault
        while inc.time < fault.onset_seconds(SHOP) + 300.0:
            inc.advance()
        s = inc.topology.index(fault.target)
        ratios.append(float(inc.last.failed_by_cause[0, s].sum() / inc.last.offered[0, s]))
        rates.append(fault.rate)
    assert len(set(rates)) > 1
    assert len({round(r, 4) for r in ratios}) == len({round(r, 4) for r in rates})   # each rate its own numbers
    order = np.argsort(rates)
    assert np.all(np.diff(np.array(ratios)[order]) >= -1e-6)       # more failing requests with a higher rate


def test_compound_draws_a_second_harmful_fault_elsewhere() -> None:
    gen = CatalogueGenerator(compound=1.0, controls=False, spread=1.0)
    for seed in range(150):
        d = gen.draw(SHOP, _rng(seed))
        assert len(d.others) == 1
        second = d.others[0]
        second.check(SHOP)
        assert second.kind not in ("no_fault", "benign_change")
        assert not set(second.roots(SHOP)) & set(d.fault.roots(SHOP))
        gap = second.onset_seconds(SHOP) - d.fault.onset_seconds(SHOP)
        assert abs(gap) <= COMPOUND_WINDOW + 1e-9 or second.onset_seconds(SHOP) == 0.0
        assert second not in d.also


def test_portable_compound_goes_to_others() -> None:
    gen = PortableGenerator(compound=1.0, controls=0.0)
    draws = [gen.draw(SHOP, _rng(s)) for s in range(40)]
    assert sum(1 for d in draws if d.others) > 30
    assert all(f.kind in ("benign_change", "health_check_flap") for d in draws for f in d.also)


def test_background_clusters_near_the_onset_and_spares_the_faulted_place() -> None:
    gen = CatalogueGenerator(background=4.0, controls=False)
    near = kinds = 0
    raised = []
    for seed in range(200):
        d = gen.draw(SHOP, _rng(seed))
        onset = d.fault.onset_seconds(SHOP)
        for f in d.also:
            if f.kind in ("benign_change", "health_check_flap", "autoscaler_bounds"):
                assert f.target != d.fault.change_target
                kinds += 1
                near += abs(f.onset_seconds(SHOP) - onset) <= COMPOUND_WINDOW
            if f.kind == "autoscaler_bounds":
                raised.append(f.most - SHOP.components[f.target].autoscaler.max)
    assert near / kinds > 0.4                   # half are drawn near the onset, some more land there by chance
    assert raised and min(raised) >= 1          # the autoscaler only ever gets more room
    # the old call (no onset) is what it was: events anywhere, deploys, configs and flaps
    events = background(SHOP, np.random.default_rng(1), 5.0, 3600.0)
    assert {f.kind for f in events} <= {"benign_change", "health_check_flap"}


def test_anomaly_is_benign_on_online_shop() -> None:
    gen = CatalogueGenerator(entries=["no_fault"], anomaly=1.0)
    anomalies = [f for s in range(24) for f in gen.draw(SHOP, _rng(s)).also]
    assert len(anomalies) == 24
    assert {f.kind for f in anomalies} == {"flash_crowd", "slowdown"}
    assert {f.target for f in anomalies if f.kind == "slowdown"} <= set(optional_callees(SHOP))
    run = run_scripted(SHOP, [(f, np.array([i])) for i, f in enumerate(anomalies)], worlds=len(anomalies), seed=2)
    t = run.trajectory
    failed = t.failed.sum(axis=(0, 2)) / t.requests.sum(axis=(0, 2))
    assert failed.max() < 0.01, failed
    base = run.baseline
    assert np.all(t.slo_met.sum(axis=(0, 2)) / t.requests.sum(axis=(0, 2))
                  > base.slo_met.sum(axis=(0, 2)) / base.requests.sum(axis=(0, 2)) - 0.01)


@pytest.mark.parametrize("template", ["hotel-reservation", "social-network", "llm-inference", "train-ticket"])
def test_new_features_draw_valid_incidents_on_every_template(template: str) -> None:
    sc = load_scenario(template)
    gen = CatalogueGenerator(spread=1.0, background=2.0, compound=0.5, anomaly=0.5)
    port = PortableGenerator(spread=1.0, compound=0.5, anomaly=0.5, red_herrings=1.0)
    for seed in range(60):
        for d in (gen.draw(sc, _rng(seed)), port.draw(sc, _rng(seed))):
            for f in (d.fault, *d.also, *d.others):
                f.check(sc)
        d = gen.draw(sc, _rng(seed))
        assert d.entry not in CONTROLS or not d.others


def test_a_culprit_pushed_by_hand_is_in_the_running_version_but_not_in_the_change_log() -> None:
    from opsworld.act.mitigations import MITIGATIONS
    from opsworld.envs.text import render_component

    gen = CatalogueGenerator(entries=["bad_deploy_errors"], unlogged=1.0)
    inc = Incidents(IncidentConfig(scenario="online-shop", generator=gen), worlds=2, seed=3)
    fault = inc.draws[0].fault
    assert not fault.logged and fault.change == "deploy"
    while inc.time < fault.onset_seconds(SHOP) + 120.0:
        inc.advance()
    engine = inc.engine
    assert not [c for c in engine.changes.events(0) if c.kind == "deploy" and c.target == fault.target]
    version = engine.versions[int(engine.knobs.deploy[inc.topology.index(fault.target), 0])]
    assert version != SHOP.components[fault.target].deploy
    assert f"Version:         {version}" in render_component(engine, fault.target, 0)     # what `describe` shows
    s = inc.topology.index(fault.target)
    assert inc.last.failed_by_cause[0, s].sum() > 0
    logged = Incidents(IncidentConfig(scenario="online-shop",
                                      generator=CatalogueGenerator(entries=["bad_deploy_errors"])), worlds=1, seed=3)
    while logged.time < logged.draws[0].fault.onset_seconds(SHOP) + 120.0:
        logged.advance()
    assert [c for c in logged.engine.changes.events(0) if c.kind == "deploy" and c.by == "deploy-pipeline"]
    assert "rollback_deploy" in fault.mitigations and MITIGATIONS["rollback_deploy"]


def test_only_a_fault_a_change_carries_can_be_left_out_of_the_log() -> None:
    from opsworld.faults.base import FaultError

    with pytest.raises(FaultError, match="^cpu_hog: logged: only a fault carried by a deploy"):
        CATALOGUE["cpu_hog"].make(target="cartservice", logged=False)
    gen = CatalogueGenerator(spread=1.0, unlogged=1.0)
    draws = [gen.draw(SHOP, _rng(seed)) for seed in range(200)]
    carried = [d.fault for d in draws if d.fault.change != "none"]
    assert carried and not any(f.logged for f in carried)
    assert all(f.logged for d in draws for f in (d.fault, *d.others) if f.change == "none")
