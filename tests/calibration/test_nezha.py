"""The fault signatures against the Nezha Online Boutique recordings (skipped where the recordings are absent)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from opsworld.calibration import Calibration, CalibrationError, calibrate
from opsworld.calibration.nezha import CHECKS, FAULT_LIST, PARAMS, _mixture_quantile, locate, service_of
from opsworld.engine import queueing as qt

DATA = Path(os.environ.get("OPSWORLD_NEZHA")
            or Path(__file__).resolve().parents[3] / "shared" / "data" / "nezha-online-boutique")
needs_data = pytest.mark.skipif(not (DATA / FAULT_LIST).is_file(), reason=f"no Nezha recordings at {DATA}")


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    return calibrate(DATA)


def _check(cal: Calibration, name: str):
    return next(c for c in cal.checks if c.name == name)


# -- without the recordings -----------------------------------------------------------------------------------------
def test_missing_recordings_give_one_line_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError) as err:
        calibrate(tmp_path / "nowhere")
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "nowhere" / FAULT_LIST) in message


@needs_data
def test_a_missing_metric_file_is_named(tmp_path: Path) -> None:
    shutil.copy(DATA / FAULT_LIST, tmp_path / FAULT_LIST)        # a copy outside the repository, removed after
    with pytest.raises(CalibrationError, match=r"metric/frontend-579b9bff58-t2dbm_metric\.csv is missing"):
        calibrate(tmp_path)


def test_pod_names_lose_their_two_hash_suffixes() -> None:
    assert service_of("frontend-579b9bff58-t2dbm") == "frontend"
    assert service_of("productcatalogservice-668d5f85fb-wckp8") == "productcatalogservice"


def test_mixture_quantile_of_one_gamma_is_its_quantile_and_mixes_by_weight() -> None:
    mean, var = np.array([[0.01], [0.2]]), np.array([[1e-4], [0.01]])
    one = _mixture_quantile(lambda x: qt.gamma_sf(mean, var, x), np.ones((2, 1)))
    assert one == pytest.approx(qt.gamma_quantile(mean[:, 0], var[:, 0], qt.Z90), rel=1e-4)
    # 20% of the weight on a slow component: the P90 lies inside it, well above the fast one's
    m, v = np.array([0.01, 1.0]), np.array([1e-6, 1e-4])
    mixed = _mixture_quantile(lambda x: qt.gamma_sf(m, v, x), np.array([0.8, 0.2]))
    assert 0.95 < float(mixed) < 1.05


# -- the real figures -----------------------------------------------------------------------------------------------
@needs_data
def test_real_medians_match_the_data_readme(calibration: Calibration) -> None:
    real = calibration.real
    contention, consumed, delay = real["cpu_contention"], real["cpu_consumed"], real["network_delay"]
    assert contention["cpu"].n == 8 and consumed["cpu"].n == 3 and delay["cpu"].n == 7
    assert contention["cpu"].before == pytest.approx(7.0, abs=1.0)        # "from about 7% to about 93%"
    assert contention["cpu"].after == pytest.approx(93.0, abs=2.0)
    assert contention["server_p90"].ratio == pytest.approx(50.0, rel=0.1)   # "rises about 50x"
    assert contention["frontend_p90"].ratio == pytest.approx(1.5, abs=0.1)
    assert contention["success"].after == 100.0
    assert consumed["cpu"].before == pytest.approx(30.0, abs=2.0)          # "from about 30% to about 79%"
    assert consumed["cpu"].after == pytest.approx(79.0, abs=2.0)
    assert consumed["server_p90"].ratio == pytest.approx(3.0, rel=0.1)
    assert consumed["frontend_p90"].ratio == pytest.approx(2.3, abs=0.1)
    assert delay["server_p90"].ratio == pytest.approx(0.6, abs=0.1)         # "does not rise (ratio about 0.6)"
    assert delay["cpu"].ratio < 1.0                                         # (0.85: the README's 0.6 is the latency's)
    assert delay["client_p90"].ratio > 1.5
    assert delay["frontend_p90"].ratio == pytest.approx(1.25, abs=0.05)
    assert real["return"]["success"].after == pytest.approx(93.0, abs=1.0)
    assert real["exception"]["success"].after == pytest.approx(97.0, abs=1.0)


@needs_data
def test_code_level_faults_are_located_in_traces_and_logs_not_metrics(calibration: Calibration) -> None:
    # Nezha's root-cause list names a log pattern of the target for every exception and return injection
    for kind in ("exception", "return"):
        assert calibration.real[kind]["located"].after == 1.0 and calibration.real[kind]["located"].n == 3
        assert calibration.simulated[kind]["located"].after >= 0.8
        assert _check(calibration, f"{kind}: target CPU stays flat").passed   # while the pod metrics stay flat


def test_a_fault_too_small_to_leave_errors_is_not_located() -> None:
    located = locate({"exception": ["cartservice", "checkoutservice"]}, {"exception": {"rate": 1e-6}})
    assert all(f.after == 0.0 for f in located["exception"].values())
    assert all(f.after == 1.0 for f in locate({"exception": ["cartservice"]}, {"exception": {"rate": 0.7}})
               ["exception"].values())


@needs_data
def test_adservice_is_read_by_its_time_column(calibration: Calibration) -> None:
    # its TimeStamp column is 2e8 s off: read by it, the adservice injections would have no metrics at all
    rows = [r for r in calibration.injections if r["service"] == "adservice"]
    assert len(rows) == 2 and all(r["cpu"] is not None for r in rows)
    assert calibration.real["return"]["cpu"].n == 3


# -- the checks -----------------------------------------------------------------------------------------------------
@needs_data
def test_every_signature_check_passes(calibration: Calibration) -> None:
    assert len(calibration.checks) == len(CHECKS)
    failed = [f"{c.name}: real {c.real:.3g}, simulated {c.simulated:.3g}" for c in calibration.checks if not c.passed]
    assert not failed and calibration.passed


@needs_data
def test_report_is_json_and_a_table(calibration: Calibration) -> None:
    report = json.loads(json.dumps(calibration.as_dict()))
    assert report["passed"] and len(report["checks"]) == len(CHECKS)
    assert report["params"]["cpu_contention"] == PARAMS["cpu_contention"]
    assert set(report["simulated"]["network_delay"]["services"]) == {
        "cartservice", "checkoutservice", "currencyservice", "emailservice", "paymentservice",
        "recommendationservice", "shippingservice"}
    assert calibration.table().row_count == len(CHECKS)


@needs_data
def test_faults_without_effect_fail_their_checks() -> None:
    weak = calibrate(DATA, worlds=2, params={"cpu_contention": {"share": 0.02}, "network_delay": {"delay": 0.0002},
                                             "exception": {"rate": 0.001}})
    assert not weak.passed
    for name in ("cpu_contention: target CPU level", "cpu_contention: target server P90 rises",
                 "network_delay: callers' client P90 rises", "network_delay: frontend P90 rises",
                 "exception: frontend success drops"):
        assert not _check(weak, name).passed, name
    assert _check(weak, "cpu_consumed: target CPU level").passed        # the faults left alone still agree


@needs_data
def test_faults_far_too_strong_fail_their_checks() -> None:
    strong = calibrate(DATA, worlds=2, params={"cpu_contention": {"share": 0.97}, "network_delay": {"delay": 0.5},
                                               "return": {"rate": 1.0, "speedup": 4.0}})
    for name in ("cpu_contention: frontend success stays at 100%", "network_delay: frontend P90 rises",
                 "return: target CPU stays flat"):
        assert not _check(strong, name).passed, name
