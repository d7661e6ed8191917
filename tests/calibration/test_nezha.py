"""The fault signatures against the Nezha recordings: small folders written here in Nezha's layout (fast), and the
real Online Boutique and Train Ticket days where they are present (skipped where absent)."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from opsworld.calibration import Calibration, CalibrationError, calibrate
from opsworld.calibration import nezha, recording
from opsworld.calibration.checks import CHECKS
from opsworld.calibration.nezha import CATALOGUE_ENTRY, PARAMS, _mixture_quantile, locate
from opsworld.calibration.recording import FAULT_LISTS, NEZHA_TYPES, RealData
from opsworld.spec.traces import service_of_pod as service_of
from opsworld.calibration.systems import SYSTEMS
from opsworld.cli import app
from opsworld.engine import queueing as qt

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
DATA = Path(os.environ.get("OPSWORLD_NEZHA") or SHARED / "nezha-online-boutique")
TT_DATA = Path(os.environ.get("OPSWORLD_NEZHA_TRAIN_TICKET") or SHARED / "nezha-train-ticket")
needs_data = pytest.mark.skipif(not any(DATA.glob(FAULT_LISTS)), reason=f"no Nezha recordings at {DATA}")
needs_tt = pytest.mark.skipif(not any(TT_DATA.glob(FAULT_LISTS)), reason=f"no Nezha recordings at {TT_DATA}")
runner = CliRunner()


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    return calibrate(DATA)


def _check(cal: Calibration, name: str):
    return next(c for c in cal.checks if c.name == name)


# -- small recordings in Nezha's layout -----------------------------------------------------------------------------
POD = {"auth": "ts-auth-service-7f8d7d756d-k7b9j", "gateway": "ts-gateway-service-6f6cfc45b-h5m2n",
       "food": "ts-food-service-f5756978c-k8vqf", "cart": "cartservice-579f59597d-wc2lz",
       "front": "frontend-579b9bff58-t2dbm"}


def _at(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _write(root: Path, faults: dict[str, list[tuple[str, str, str]]], pods: list[str],
           spans: list[tuple[str, str]], *, success: float = 100.0, stamp_off: float = 0.0, time_off: float = 0.0,
           no_metrics: tuple[str, ...] = ()) -> Path:
    """A folder in Nezha's layout: per day a fault list of (inject_time, pod, type), whose inject_timestamp is
    `stamp_off` and whose written inject_time `time_off` seconds off the true time; one metric row a minute per pod
    over `spans` (first, last), the CPU at 90% and server P90 at 0.5 s for 4 minutes after each injection into the
    pod (5% and 10 ms otherwise); the frontend's success rate at `success` throughout."""
    (root / "metric").mkdir(parents=True, exist_ok=True)
    when = {pod: [_at(t) for day in faults.values() for t, p, _ in day if p == pod] for pod in pods}
    minutes = [t for a, b in spans for t in np.arange(_at(a), _at(b) + 1, 60.0)]
    for day, listed in faults.items():
        hours: dict[str, list[dict[str, str]]] = {}
        for t, pod, kind in listed:
            hours.setdefault(t[11:13], []).append({
                "inject_time": _utc(_at(t) + time_off), "inject_timestamp": str(int(_at(t) + stamp_off)),
                "inject_pod": pod, "inject_type": kind})
        (root / f"{day}-fault_list.json").write_text(json.dumps(hours))
    for pod in pods:
        if pod in no_metrics:
            continue
        with (root / "metric" / f"{pod}_metric.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["Time", "TimeStamp", "PodName", "CpuUsageRate(%)", "PodClientLatencyP90(s)",
                        "PodServerLatencyP90(s)", "PodSuccessRate(%)"])
            for t in minutes:
                hit = any(0 < t - i <= 240 for i in when[pod])
                w.writerow([f"{_utc(t)}.5 +0000 UTC m=+1.0", int(t), pod, 90.0 if hit else 5.0, 0.02,
                            0.5 if hit else 0.01, 0])
    with (root / "metric" / "front_service.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Time", "TimeStamp", "ServiceName", "SuccessRate(%)", "LatencyP90(s)"])
        for t in minutes:
            w.writerow([f"{_utc(t)}.5 +0000 UTC m=+1.0", int(t), "Frontend", success, 0.5])
    return root


def _train_ticket(root: Path, **kwargs) -> Path:
    """Two Train Ticket-like days with a broken success rate and Nezha's morning clock (inject_timestamp read as
    UTC+8); a trace file in which the gateway calls auth."""
    faults = {"2023-01-29": [("2023-01-29 08:20:00", POD["auth"], "cpu_contention"),
                             ("2023-01-29 08:40:00", POD["food"], "exception")],
              "2023-01-30": [("2023-01-30 09:20:00", POD["auth"], "cpu_contention")]}
    _write(root, faults, [POD["auth"], POD["gateway"], POD["food"]],
           [("2023-01-29 08:00:09", "2023-01-29 09:00:09"), ("2023-01-30 09:00:09", "2023-01-30 09:40:09")],
           success=0.0, stamp_off=-8 * 3600.0, **kwargs)
    (root / "trace").mkdir(exist_ok=True)
    with gzip.open(root / "trace" / "08_20_trace.csv.gz", "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["TraceID", "SpanID", "ParentID", "PodName", "OperationName", "StartTimeUnixNano",
                    "EndTimeUnixNano", "Duration"])
        w.writerow(["t1", "a", "root", POD["gateway"], "/api", 0, 1000, 1])
        w.writerow(["t1", "b", "a", POD["auth"], "/login", 0, 1000, 1])
    return root


@pytest.fixture
def no_train_ticket_template(monkeypatch: pytest.MonkeyPatch) -> None:
    """As today: no built-in `train-ticket` template (another one is being written)."""
    monkeypatch.setattr(nezha, "templates", lambda: ["online-shop"])


def test_no_fault_list_is_one_line_naming_the_folder_and_the_pattern(tmp_path: Path) -> None:
    for folder in (tmp_path, tmp_path / "nowhere"):
        with pytest.raises(CalibrationError) as err:
            calibrate(folder)
        message = str(err.value)
        assert "\n" not in message and str(folder) in message and FAULT_LISTS in message


def test_unknown_pods_are_one_line_naming_the_file_and_the_pod(tmp_path: Path) -> None:
    _write(tmp_path, {"2023-01-29": [("2023-01-29 08:20:00", "mystery-5f6585d649-fnmft", "return")]},
           ["mystery-5f6585d649-fnmft"], [("2023-01-29 08:00:09", "2023-01-29 08:40:09")])
    with pytest.raises(CalibrationError) as err:
        calibrate(tmp_path)
    message = str(err.value)
    assert "\n" not in message and "2023-01-29-fault_list.json" in message
    assert "inject_pod `mystery-5f6585d649-fnmft`" in message and "ts-" in message


def test_pods_of_two_systems_in_one_folder_are_one_line(tmp_path: Path) -> None:
    _write(tmp_path, {"2023-01-29": [("2023-01-29 08:20:00", POD["auth"], "return"),
                                     ("2023-01-29 08:40:00", POD["cart"], "return")]},
           [POD["auth"], POD["cart"]], [("2023-01-29 08:00:09", "2023-01-29 09:00:09")])
    with pytest.raises(CalibrationError, match=r"^[^\n]*Online Boutique[^\n]*Train Ticket|Train Ticket[^\n]*Online"):
        RealData.read(tmp_path)


def test_a_bad_fault_list_is_one_line_naming_the_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "2023-01-29-fault_list.json").write_text(json.dumps({"08": [{"inject_type": "return"}]}))
    with pytest.raises(CalibrationError) as err:
        calibrate(tmp_path)
    assert "\n" not in str(err.value) and "2023-01-29-fault_list.json" in str(err.value)
    assert "inject_pod" in str(err.value)
    _write(tmp_path, {"2023-01-29": [("2023-01-29 08:20:00", POD["auth"], "return")]}, [POD["auth"]],
           [("2023-01-29 08:00:09", "2023-01-29 08:40:09")])
    listed = json.loads((tmp_path / "2023-01-29-fault_list.json").read_text())
    listed["08"][0]["inject_time"] = "yesterday"
    (tmp_path / "2023-01-29-fault_list.json").write_text(json.dumps(listed))
    with pytest.raises(CalibrationError, match=r"`inject_time` of the fault at ts-auth-service.*'yesterday'"):
        calibrate(tmp_path)


def test_train_ticket_reads_every_day_aligned_on_inject_time(tmp_path: Path, no_train_ticket_template: None) -> None:
    cal = calibrate(_train_ticket(tmp_path), worlds=1)
    assert cal.system.key == "train-ticket" and cal.days == ["2023-01-29", "2023-01-30"]
    assert [(r.service, r.kind) for r in cal.per_injection] == [
        ("ts-auth-service", "cpu_contention"), ("ts-food-service", "exception"), ("ts-auth-service", "cpu_contention")]
    assert not cal.dropped
    # aligned on inject_time: the CPU rises at the target (inject_timestamp is 8 h off: there, no rows at all)
    assert cal.real["cpu_contention"]["cpu"].n == 2 and cal.real["cpu_contention"]["cpu"].ratio == pytest.approx(18.0)
    # the callers come from the traces (no dependency.csv): the gateway calls auth
    assert cal.real["cpu_contention"]["client_p90"].n == 2


def test_a_broken_success_rate_makes_its_checks_not_applicable(tmp_path: Path, no_train_ticket_template: None) -> None:
    cal = calibrate(_train_ticket(tmp_path), worlds=1)
    broken = [c for c in cal.checks if c.signal == "success"]
    assert {c.fault for c in broken} == {"cpu_contention", "exception"}
    for c in broken:
        assert c.status == "n.a." and not c.passed
        assert c.reason == "metric/front_service.csv: SuccessRate(%) reads 0 in every row (a broken metric)"
    rows = [c for row in cal.per_injection for c in row.checks if c.signal == "success"]
    assert len(rows) == 3 and all(c.status == "n.a." and "reads 0 in every row" in c.reason for c in rows)
    assert any("n.a. (2 checks): metric/front_service.csv: SuccessRate(%)" in line for line in cal.summary())


def test_without_its_template_train_ticket_reports_the_real_side_and_does_not_pass(
        tmp_path: Path, no_train_ticket_template: None) -> None:
    cal = calibrate(_train_ticket(tmp_path), worlds=1)
    assert "needs the `train-ticket` template" in cal.unavailable and "\n" not in cal.unavailable
    assert not cal.passed and not cal.simulated
    assert all(c.status == "n.a." for c in cal.checks)
    cpu = _check(cal, "cpu_contention: target CPU level")
    assert cpu.real == pytest.approx(90.0)
    assert cpu.reason == "no simulated side: the `train-ticket` template is not installed"
    assert cal.agreement == {"share": None, "agree": 0, "decided": 0, "not_applicable": 15, "direction": None}
    row = cal.per_injection[0].checks[0]
    assert row.real == pytest.approx(90.0) and row.status == "n.a."
    assert cal.summary()[-1].endswith("only the real side is reported[/]")
    report = json.loads(json.dumps(cal.as_dict(), allow_nan=False))     # strict JSON: NaN written as null
    assert report["system"] == "train-ticket" and report["simulated_side"] == cal.unavailable
    assert report["per_injection"][0]["checks"][0]["verdict"] == "n.a."


def test_dropped_injections_are_listed_with_their_reasons(tmp_path: Path, no_train_ticket_template: None) -> None:
    faults = {"2023-01-29": [("2023-01-29 08:02:00", POD["auth"], "cpu_contention"),     # 2 minutes in
                             ("2023-01-29 08:20:00", POD["auth"], "return"),
                             ("2023-01-29 08:23:00", POD["auth"], "exception"),          # 3 minutes after it
                             ("2023-01-29 08:40:00", POD["food"], "return"),             # no metric file
                             ("2023-01-29 08:45:00", POD["gateway"], "disk_fill"),       # not a Nezha type
                             ("2023-01-29 11:00:00", POD["gateway"], "return")]}         # after the recording
    _write(tmp_path, faults, [POD["auth"], POD["gateway"], POD["food"]],
           [("2023-01-29 08:00:09", "2023-01-29 09:00:09")], no_metrics=(POD["food"],))
    cal = calibrate(tmp_path, worlds=1)
    reasons = {(_utc(d.time)[11:16], d.kind): d.reason for d in cal.dropped}
    assert reasons[("08:02", "cpu_contention")] == ("2 minutes of baseline, 3 needed: the pod's metrics start at "
                                                    "2023-01-29 08:00:09")
    # the 08:20 return's 1-4 minute window holds the exception injected three minutes later, whose baseline holds it
    assert "next injection into the same pod (exception at 08:23:00, 3.0 min after)" in reasons[("08:20", "return")]
    assert ("previous injection into the same pod (return at 08:20:00, 3.0 min before)"
            in reasons[("08:23", "exception")])
    assert reasons[("08:40", "return")] == f"no metric rows for the pod: metric/{POD['food']}_metric.csv is missing"
    assert reasons[("08:45", "disk_fill")].startswith("type `disk_fill` is none of Nezha's")
    assert reasons[("11:00", "return")].startswith("no metric rows for the pod around it")
    assert not cal.per_injection and cal.dropped_table().row_count == 6
    assert all(d.pod and d.time > 0 for d in cal.dropped)
    assert [d["type"] for d in cal.as_dict()["dropped"]] == ["cpu_contention", "return", "exception", "return",
                                                             "disk_fill", "return"]


def test_online_boutique_is_timed_by_inject_timestamp(tmp_path: Path) -> None:
    # as on 2022-08-22 at 07:10: inject_time a minute late, the metrics siding with the time stamp
    _write(tmp_path, {"2022-08-22": [("2022-08-22 07:09:43", POD["cart"], "cpu_contention")]},
           [POD["cart"], POD["front"]], [("2022-08-22 07:00:20", "2022-08-22 07:20:20")], time_off=60.0)
    data = RealData.read(tmp_path)
    assert data.system.key == "online-boutique" and data.system.template == "online-shop"
    assert [i.time for i in data.injections] == [_at("2022-08-22 07:09:43")]
    assert data.callers == ("no call between the pods in metric/dependency.csv or the trace files "
                            "trace/*_trace.csv.gz: the callers are unknown")


def test_a_template_for_train_ticket_gives_the_per_injection_agreement(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # the row a `train-ticket` template will fill, borrowed here: auth stands for online-shop's cartservice, and
    # the gateway stands for no component
    row = dataclasses.replace(SYSTEMS[1], template="online-shop", components={"ts-auth-service": "cartservice"})
    monkeypatch.setattr(recording, "SYSTEMS", (SYSTEMS[0], row))
    faults = {"2023-01-29": [("2023-01-29 08:20:00", POD["auth"], "cpu_contention"),
                             ("2023-01-29 08:40:00", POD["gateway"], "cpu_contention")]}
    _write(tmp_path, faults, [POD["auth"], POD["gateway"]], [("2023-01-29 08:00:09", "2023-01-29 09:00:09")],
           stamp_off=-8 * 3600.0)
    cal = calibrate(tmp_path, worlds=1)
    assert cal.unavailable == "" and set(cal.per_service["cpu_contention"]) == {"ts-auth-service"}
    auth, gateway = cal.per_injection
    level = auth.checks[0]
    assert level.name == "cpu_contention: target CPU level" and level.applicable
    assert level.simulated > 80.0 and level.passed          # 90% real, the template's contended cartservice
    assert not any(c.applicable for c in gateway.checks)
    assert gateway.checks[0].reason == ("the `online-shop` template has no component `ts-gateway-service` for "
                                        "ts-gateway-service")
    share = cal.agreement
    assert share["decided"] >= 3 and 0.0 <= share["share"] <= 1.0
    assert _check(cal, "cpu_contention: target CPU level").passed
    assert cal.injection_table().row_count == 2


# -- the command ----------------------------------------------------------------------------------------------------
def test_cli_json_parses_and_a_missing_template_exits_1_with_one_line(tmp_path: Path,
                                                                      no_train_ticket_template: None) -> None:
    result = runner.invoke(app, ["calibrate", "--nezha", str(_train_ticket(tmp_path)), "--json", "--worlds", "1"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["system"] == "train-ticket" and report["days"] == ["2023-01-29", "2023-01-30"]
    assert {"checks", "per_injection", "agreement", "dropped", "simulated_side"} <= set(report)
    assert len(result.stderr.strip().splitlines()) == 1 and "train-ticket` template" in result.stderr
    text = runner.invoke(app, ["calibrate", "--nezha", str(tmp_path), "--worlds", "1"])
    assert text.exit_code == 1 and "only the real side is reported" in text.stdout
    assert "Per injection: Nezha Train Ticket" in text.stdout


def test_cli_bad_recordings_exit_2_with_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["calibrate", "--nezha", str(tmp_path), "--json"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = result.stderr.strip()
    assert "\n" not in message and FAULT_LISTS in message and result.stdout == ""
    _write(tmp_path, {"2023-01-29": [("2023-01-29 08:20:00", "mystery-5f6585d649-fnmft", "return")]},
           ["mystery-5f6585d649-fnmft"], [("2023-01-29 08:00:09", "2023-01-29 08:40:09")])
    result = runner.invoke(app, ["calibrate", "--nezha", str(tmp_path)])
    assert result.exit_code == 2 and "inject_pod" in result.stderr and "Traceback" not in result.output


# -- without the recordings -----------------------------------------------------------------------------------------
@needs_data
def test_a_missing_metric_file_is_named(tmp_path: Path) -> None:
    shutil.copy(DATA / "2022-08-22-fault_list.json", tmp_path)        # a copy outside the repository, removed after
    with pytest.raises(CalibrationError, match=r"metric/front_service\.csv is missing"):
        calibrate(tmp_path)


def test_pod_names_lose_their_two_hash_suffixes() -> None:
    assert set(CATALOGUE_ENTRY) == set(NEZHA_TYPES)          # every type the recordings hold has its model
    assert service_of("frontend-579b9bff58-t2dbm") == "frontend"
    assert service_of("productcatalogservice-668d5f85fb-wckp8") == "productcatalogservice"
    assert service_of(POD["auth"]) == "ts-auth-service"


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


@needs_data
def test_online_boutique_keeps_every_injection_timed_by_its_time_stamp(calibration: Calibration) -> None:
    assert calibration.system.key == "online-boutique" and calibration.days == ["2022-08-22"]
    assert not calibration.dropped and len(calibration.per_injection) == 24
    # recommendationservice's cpu_consumed: listed at 07:10:43, its time stamp (and its CPU) say 07:09:43
    assert any(r["utc"] == "2022-08-22 07:09:43" and r["type"] == "cpu_consumed" for r in calibration.injections)


# -- the checks -----------------------------------------------------------------------------------------------------
@needs_data
def test_every_signature_check_passes(calibration: Calibration) -> None:
    assert len(calibration.checks) == len(CHECKS)
    failed = [f"{c.name}: real {c.real:.3g}, simulated {c.simulated:.3g}" for c in calibration.checks if not c.passed]
    assert not failed and calibration.passed


@needs_data
def test_each_injection_is_held_to_its_type_s_checks(calibration: Calibration) -> None:
    for row in calibration.per_injection:
        assert [(c.fault, c.signal, c.rule) for c in row.checks] == [k for k in CHECKS if k[0] == row.kind]
    pairs = [c for row in calibration.per_injection for c in row.checks]
    # n.a. only where there is nothing to compare: the frontend has no caller among the pods
    assert [c.reason for c in pairs if not c.applicable] == ["frontend has no caller in the call graph"]
    share = calibration.agreement
    assert share["decided"] == len(pairs) - 1 and share["agree"] == sum(c.passed for c in pairs)
    assert 0.0 < share["share"] < 1.0 and share["share"] <= share["direction"]


@needs_data
def test_report_is_json_and_a_table(calibration: Calibration) -> None:
    report = json.loads(json.dumps(calibration.as_dict(), allow_nan=False))
    assert report["passed"] and len(report["checks"]) == len(CHECKS)
    assert report["params"]["cpu_contention"] == PARAMS["cpu_contention"]
    assert set(report["simulated"]["network_delay"]["services"]) == {
        "cartservice", "checkoutservice", "currencyservice", "emailservice", "paymentservice",
        "recommendationservice", "shippingservice"}
    assert report["system"] == "online-boutique" and report["days"] == ["2022-08-22"] and report["dropped"] == []
    assert len(report["per_injection"]) == 24 and report["agreement"]["share"] == calibration.agreement["share"]
    assert calibration.table().row_count == len(CHECKS)
    assert calibration.injection_table().row_count == 24 and len(calibration.tables()) == 2


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


@needs_data
def test_cli_passes_on_online_boutique() -> None:
    result = runner.invoke(app, ["calibrate", "--nezha", str(DATA), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passed"]


# -- Train Ticket ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_ticket() -> Calibration:
    return calibrate(TT_DATA, worlds=1)


@needs_tt
def test_train_ticket_day_is_read_with_its_quirks(train_ticket: Calibration) -> None:
    cal = train_ticket
    assert cal.system.key == "train-ticket" and cal.days == ["2023-01-29"]
    assert len(cal.per_injection) + len(cal.dropped) == 28
    assert {r.kind for r in cal.per_injection} == {"exception", "return", "cpu_contention"}
    dropped = {_utc(d.time)[11:]: d.reason for d in cal.dropped}
    assert dropped == {
        "08:43:04": "2 minutes of baseline, 3 needed: the pod's metrics start at 2023-01-29 08:41:09",
        "09:25:39": "its 5-minute baseline holds the previous injection into the same pod (return at 09:21:39, "
                    "4.0 min before)",
        "09:34:19": "its 5-minute baseline holds the previous injection into the same pod (return at 09:30:09, "
                    "4.2 min before)"}
    # aligned on inject_time read as UTC: every contention shows at its target (80-100% CPU from about 1%)
    contention = [r for r in cal.injections if r["type"] == "cpu_contention"]
    assert len(contention) == 4 and all(r["cpu"]["ratio"] > 50 and r["cpu"]["after"] > 75 for r in contention)
    for c in cal.checks:
        if c.signal == "success":
            assert c.status == "n.a." and "SuccessRate(%) reads 0 in every row" in c.reason
    assert cal.real["exception"]["located"].after == 1.0


@needs_tt
def test_train_ticket_is_simulated_on_its_template_once_installed(train_ticket: Calibration) -> None:
    from opsworld.spec import templates

    if "train-ticket" not in templates():
        pytest.skip("no train-ticket template yet")
    assert not train_ticket.unavailable and train_ticket.simulated and train_ticket.agreement["decided"] > 0


@needs_tt
def test_train_ticket_without_its_template_exits_1_with_the_real_side(no_train_ticket_template: None) -> None:
    result = runner.invoke(app, ["calibrate", "--nezha", str(TT_DATA), "--json", "--worlds", "1"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert "needs the `train-ticket` template" in report["simulated_side"] and not report["passed"]
    assert result.stderr.strip() == report["simulated_side"]
    assert len(report["per_injection"]) == 25 and len(report["dropped"]) == 3
    contention = [r for r in report["per_injection"] if r["type"] == "cpu_contention"]
    assert all(r["checks"][0]["real"] > 75 and r["checks"][0]["verdict"] == "n.a." for r in contention)
