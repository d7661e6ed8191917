"""Queueing fidelity: the engine's steady-state response time of one M/M/c service against Erlang C."""

from __future__ import annotations

import numpy as np
import pytest

from opsworld import Engine, load_scenario
from opsworld.engine import queueing as qt

from scenarios import single_service


@pytest.mark.parametrize("servers", [1, 4, 16])
@pytest.mark.parametrize("rho", [0.3, 0.6, 0.8, 0.9])
def test_mmc_mean_response_matches_erlang_c(servers: int, rho: float) -> None:
    mean = 0.01
    scenario = load_scenario(single_service(servers, rho, mean, arrivals="expected"))
    trajectory = Engine(scenario, worlds=2, seed=3).run()
    simulated = float(trajectory.response_mean[5:, :, 0].mean())
    expected = qt.mmc_mean_response(servers, rho * servers / mean, 1.0 / mean)
    assert simulated == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("servers", [1, 4, 16])
def test_mmc_with_poisson_arrivals_stays_close_at_moderate_load(servers: int) -> None:
    scenario = load_scenario(single_service(servers, 0.6, 0.01))
    trajectory = Engine(scenario, worlds=8, seed=3).run()
    expected = qt.mmc_mean_response(servers, 0.6 * servers / 0.01, 100.0)
    assert float(trajectory.response_mean[5:, :, 0].mean()) == pytest.approx(expected, rel=0.05)


def test_erlang_table_agrees_with_exact_formula() -> None:
    for servers in (1, 2, 7, 16, 64, 200):
        for rho in (0.05, 0.5, 0.77, 0.95):
            got = qt.ErlangTable.lookup(np.array([float(servers)]), np.array([rho]))[0]
            assert got == pytest.approx(qt.erlang_c(servers, servers * rho), abs=1e-4)


def test_gamma_quantiles_of_an_exponential() -> None:
    mean, var = np.array([2.0]), np.array([4.0])
    for z, p in ((qt.Z50, 0.5), (qt.Z90, 0.9), (qt.Z99, 0.99)):
        exact = -2.0 * np.log(1.0 - p)
        assert qt.gamma_quantile(mean, var, z)[0] == pytest.approx(exact, rel=0.02)
        assert qt.gamma_sf(mean, var, np.array([exact]))[0] == pytest.approx(1.0 - p, abs=0.01)
