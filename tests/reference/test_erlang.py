"""The reference simulator against exact M/M/c theory: one service with c cores, exponential work, Poisson arrivals.

Slots are plentiful (concurrency 10 000) so only the c cores queue, and `cpu = c` makes the cores exactly c with no
quota scaling. The horizon of each case is set so that the standard deviation of the relative error of the mean is
about 2% or less (from the run-to-run spread measured over several seeds), i.e. the 5% bound is at least 2.5
standard deviations: M/M/1 at utilisation 0.9 needs about a million requests, light loads a few ten thousand.
"""

from __future__ import annotations

import pytest

from opsworld.engine.queueing import mmc_mean_response
from opsworld.reference import ReferenceSimulator
from opsworld.spec.loader import load_scenario

SERVICE_TIME = 0.01  # seconds; the time scale does not matter, only the number of requests does
WARMUP = 0.02  # fraction of the horizon discarded: the run starts empty (relaxation at rho 0.9 is ~400 services)
SEED = 1

# Requests simulated per case (c, rho): the relative standard error grows like 1 / (1 - rho) and shrinks with c.
REQUESTS = {
    (1, 0.3): 20_000, (4, 0.3): 20_000, (16, 0.3): 20_000,
    (1, 0.6): 40_000, (4, 0.6): 30_000, (16, 0.6): 20_000,
    (1, 0.8): 200_000, (4, 0.8): 120_000, (16, 0.8): 40_000,
    (1, 0.9): 1_000_000, (4, 0.9): 600_000, (16, 0.9): 200_000,
}


def mmc_scenario(servers: int, arrival_rate: float, duration: float):
    return load_scenario({
        "name": "mmc",
        "duration": f"{duration:.6f}s",
        "tick": f"{duration:.6f}s",
        "nodes": [{"name": "n1", "zone": "z1"}],
        "components": {"svc": {"replicas": 1, "concurrency": 10_000, "cpu": servers,
                               "service_time": {"mean": f"{SERVICE_TIME * 1000:g}ms", "cv": 1}}},
        "traffic": {"base_rate": f"{arrival_rate:.6f}/s",
                    "endpoints": [{"name": "GET /", "service": "svc", "timeout": "1h"}]},
    })


@pytest.mark.parametrize("servers,rho", sorted(REQUESTS), ids=lambda v: str(v))
def test_mean_response_matches_mmc(servers: int, rho: float) -> None:
    arrival_rate = rho * servers / SERVICE_TIME
    duration = REQUESTS[(servers, rho)] / arrival_rate
    result = ReferenceSimulator(mmc_scenario(servers, arrival_rate, duration), seed=SEED).run()
    simulated = result.mean_latency("GET /", start=WARMUP * duration)
    expected = mmc_mean_response(servers, arrival_rate, 1.0 / SERVICE_TIME)
    assert result.error_rate("GET /") == 0.0
    assert simulated == pytest.approx(expected, rel=0.05)
