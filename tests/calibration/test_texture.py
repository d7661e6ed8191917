"""The texture of the model's telemetry against the Nezha recordings (skipped without ../shared/data beside the checkout), and the
statistics themselves on series whose texture is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opsworld.calibration.texture import METRICS, cv, is_broken, lag1, outlier_rate, texture, texture_report

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"      # ../shared/data beside the checkout
RECORDINGS = [("nezha-online-boutique", "online-shop"), ("nezha-train-ticket", "train-ticket")]


def test_statistics_of_known_series() -> None:
    rng = np.random.default_rng(0)
    calm = np.ones(600, dtype=bool)
    noise = 100.0 + 10.0 * rng.standard_normal(600)
    assert abs(cv(noise, calm) - 0.1) < 0.02
    assert abs(lag1(noise, calm) + 0.1) < 0.1          # within 10-point windows about their means: about -1/10
    assert outlier_rate(noise, calm) < 0.005
    spiky = noise.copy()
    spiky[::50] += 200.0
    assert abs(outlier_rate(spiky, calm) - 0.02) < 0.005
    walk = 100.0 + np.cumsum(rng.standard_normal(600))
    assert lag1(walk, calm) > 0.4
    assert is_broken(np.zeros(10)) and is_broken(np.full(10, np.nan)) and not is_broken(np.arange(10.0))
    t = texture([noise, np.zeros(600), spiky])
    assert t.series == 3 and t.broken == pytest.approx(1 / 3) and abs(t.cv - 0.1) < 0.03


@pytest.mark.parametrize("folder,template", RECORDINGS)
def test_texture_matches_the_recordings(folder: str, template: str) -> None:
    path = DATA / folder
    if not path.is_dir():
        pytest.skip(f"no recordings at {path}")
    report = texture_report(path, template, minutes=60, seed=0)
    assert report.passed, "\n".join(report.lines())
    assert {j.metric for j in report.judged} == set(METRICS)
    # the model is not the expected value any more: every metric varies
    for metric in METRICS:
        assert report.model[metric].cv > 0, metric
    assert report.as_dict()["passed"] is True
