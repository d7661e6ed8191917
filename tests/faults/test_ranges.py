"""The documented parameter ranges of the catalogue (`faults.ranges`): published values inside, every draw valid,
spread 0 the presets, draws quantised."""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.faults.base import Fault
from opsworld.faults.catalogue import CATALOGUE, Entry
from opsworld.faults.ranges import IDENTITY, Range, draw_params, preset, ranges_of, ranges_text

ENTRIES = list(CATALOGUE.values())


def _example_params(e: Entry) -> dict:
    return {**e.example.params, "target": e.example.target}


@pytest.mark.parametrize("e", ENTRIES, ids=lambda e: e.name)
def test_ranges_hold_the_published_values(e: Entry) -> None:
    fault = e.make(**_example_params(e))
    for name, r in ranges_of(e).items():
        assert name not in IDENTITY
        assert r.contains(float(getattr(fault, name))), (name, r)
        if name in e.params and not isinstance(e.params[name], str):
            assert r.contains(float(e.params[name])), (name, r)
        assert r.lo <= r.hi and r.scale in ("linear", "log")


@pytest.mark.parametrize("e", ENTRIES, ids=lambda e: e.name)
def test_every_draw_at_full_spread_validates(e: Entry) -> None:
    scenario = e.example.scenario()
    seen = set()
    for seed in range(40):
        params = draw_params(e, _example_params(e), np.random.default_rng(seed), 1.0)
        fault = e.make(**params)
        fault.check(scenario)
        for name, r in ranges_of(e).items():
            assert r.contains(float(getattr(fault, name))), (name, getattr(fault, name), r)
        seen.add(tuple(sorted((k, v) for k, v in params.items() if k in ranges_of(e))))
    if ranges_of(e):
        assert len(seen) > 1            # the draws do vary


@pytest.mark.parametrize("e", ENTRIES, ids=lambda e: e.name)
def test_spread_zero_is_the_presets_and_draws_nothing(e: Entry) -> None:
    rng = np.random.default_rng(3)
    params = _example_params(e)
    assert draw_params(e, params, rng, 0.0) == params
    assert rng.random() == np.random.default_rng(3).random()


def test_draws_are_quantised_and_spread_shrinks_them_around_the_preset() -> None:
    e = CATALOGUE["bad_config_push"]
    params = _example_params(e)
    full = {draw_params(e, params, np.random.default_rng(s), 1.0, levels=5)["rate"] for s in range(300)}
    assert len(full) == 5 and min(full) == pytest.approx(0.15) and max(full) == pytest.approx(0.6)
    half = {draw_params(e, params, np.random.default_rng(s), 0.5, levels=5)["rate"] for s in range(300)}
    assert len(half) == 5 and 0.15 < min(half) < 0.3 < max(half) < 0.6


def test_identity_parameters_are_never_drawn() -> None:
    for e in ENTRIES:
        assert not set(ranges_of(e)) & set(IDENTITY)
    params = draw_params(CATALOGUE["service_partition"], {"target": "productcatalogservice",
                                                          "caller": "recommendationservice"},
                         np.random.default_rng(0), 1.0)
    assert params["caller"] == "recommendationservice" and params["target"] == "productcatalogservice"


def test_rules_by_meaning_and_field_bounds() -> None:
    assert ranges_of(CATALOGUE["bad_config_push"])["rate"] == Range(0.15, 0.6, "linear", "share")
    delay = ranges_of(CATALOGUE["bad_deploy_latency"])["delay"]
    assert delay.scale == "log" and delay.lo == pytest.approx(0.05) and delay.hi == pytest.approx(0.45)
    work = ranges_of(CATALOGUE["gc_pauses"])["work"]
    assert work.lo == pytest.approx(1 + 1 / 3, rel=1e-5) and work.hi == pytest.approx(4.0)
    # a share bounded below 1 by its field stays below it; 1.0 is the top of a share
    assert ranges_of(CATALOGUE["regex_cpu_exhaustion"])["share"].hi < 1.0
    assert ranges_of(CATALOGUE["third_party_outage"])["rate"].hi == 1.0
    # counts stay as published unless the entry gives a range; off mechanisms (0) are not drawn
    assert "most" not in ranges_of(CATALOGUE["autoscaler_max_too_low"])
    assert ranges_of(CATALOGUE["retries_without_backoff"])["retries"].what == "count"
    assert "backoff" not in ranges_of(CATALOGUE["retries_without_backoff"])
    assert "ramp" not in ranges_of(CATALOGUE["bad_config_push"]) and "duration" not in ranges_of(CATALOGUE["deadlock"])
    assert "duration" in ranges_of(CATALOGUE["db_primary_failure_auto_failover"])
    assert "work" not in ranges_of(CATALOGUE["gpu_xid_error"])     # an entry's override: never drawn
    ints = {draw_params(CATALOGUE["retries_without_backoff"], {"target": "cartservice", "caller": "checkoutservice"},
                        np.random.default_rng(s), 1.0)["retries"] for s in range(100)}
    assert all(isinstance(i, int) for i in ints) and min(ints) >= 3 and max(ints) <= 10


def test_describe_and_table_text_carry_the_ranges() -> None:
    info = CATALOGUE["bad_config_push"].describe()
    assert info["ranges"] == {"rate": {"lo": 0.15, "hi": 0.6, "scale": "linear", "what": "share"}}
    assert ranges_text(CATALOGUE["bad_config_push"]) == "rate 0.15-0.6"
    assert ranges_text(CATALOGUE["disk_filling"]) == "fills_in 8m-30m"
    assert ranges_text(CATALOGUE["no_fault"]) == ""


def test_preset_reads_the_published_value_in_seconds() -> None:
    assert preset(CATALOGUE["disk_filling"], "fills_in") == 900.0
    assert preset(CATALOGUE["bad_config_push"], "rate") == 0.3
    assert isinstance(CATALOGUE["bad_config_push"].make(target="cartservice"), Fault)
