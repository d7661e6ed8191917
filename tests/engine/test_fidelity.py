"""Fidelity of the batched engine against the request-level SimPy reference, on three templates.

Each template runs 20 simulated minutes (`opsworld.reference.compare`): 10 at its base load (moderate: components
at 5-30% CPU), then one service overloaded to 1.3x its capacity for 5 minutes (its work slowed down), then 5 minutes
of recovery. Both simulators see the same traffic and the same slowdown.
"""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.reference.compare import Comparison, compare

CASES = {"online-shop": "productcatalogservice", "social-network": "post-storage-service",
         "hotel-reservation": "profile"}


@pytest.fixture(scope="module", params=list(CASES))
def run(request: pytest.FixtureRequest) -> Comparison:
    return compare(request.param, overload=CASES[request.param], factor=1.3)


def test_entry_latency_at_moderate_load(run: Comparison) -> None:
    for e in run.endpoints:
        assert e.engine_p50 == pytest.approx(e.reference_p50, rel=0.10), e.endpoint
        assert e.engine_p99 == pytest.approx(e.reference_p99, rel=0.25), e.endpoint


def test_entry_error_rate_at_moderate_load(run: Comparison) -> None:
    for e in run.endpoints:
        assert abs(e.engine_error - e.reference_error) <= 0.005, e.endpoint


def test_overload_error_timelines_correlate(run: Comparison) -> None:
    assert run.reference_timeline.max() > 0.2, "the overload must actually fail requests"
    assert run.correlation >= 0.9


def test_overload_total_failed_requests_agree(run: Comparison) -> None:
    assert run.engine_failed == pytest.approx(run.reference_failed, rel=0.20)


def test_every_check_is_reported(run: Comparison) -> None:
    checks = run.checks()
    assert len(checks) == 3 * len(run.endpoints) + 2
    assert all(ok for _, ok in checks), [name for name, ok in checks if not ok]
    assert np.isfinite(run.as_dict()["error_timeline_correlation"])
