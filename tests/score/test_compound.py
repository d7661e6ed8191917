"""A compound incident — two harmful faults in one world — is scored as one incident with both in its ground truth:
mitigated only once both are fixed, localised by both roots, either fault's class named is right."""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.envs.generator import Draw
from opsworld.envs.incident import IncidentConfig, Incidents
from opsworld.faults.catalogue import CATALOGUE

FIRST, SECOND = "currencyservice", "paymentservice"


def _compound(worlds: int = 3) -> Incidents:
    make = CATALOGUE["bad_config_push"].make
    first, second = make(target=FIRST, onset=120.0), make(target=SECOND, onset=180.0)
    inc = Incidents(IncidentConfig(scenario="online-shop", horizon=2400.0), worlds=worlds, seed=5)
    inc.reset(5, draws=[Draw("bad_config_push", first, others=(second,)) for _ in range(worlds)])
    return inc


def _run_until(inc: Incidents, seconds: float) -> None:
    while inc.time < seconds and not inc.done:
        inc.advance()


@pytest.fixture(scope="module")
def fixed_one_or_both() -> list[dict]:
    """World 0 rolls back both configs, world 1 only the first, world 2 nothing."""
    inc = _compound()
    _run_until(inc, 300.0)
    inc.mitigate("rollback_config", FIRST, None, np.array([0, 1]))
    inc.mitigate("rollback_config", SECOND, None, np.array([0]))
    inc.run_to_end()
    return [r.model_dump() for r in inc.reports()]


def test_the_incident_holds_both_faults() -> None:
    inc = _compound(1)
    assert inc.onset[0] == 120.0                              # the first of the two began it
    assert [t.kind for t in inc.others[0]] == ["error_rate"]
    report = inc.reports()[0]
    assert report.also == ["error_rate"] and set(report.roots) == {FIRST, SECOND}


def test_mitigated_only_once_every_fault_is_fixed(fixed_one_or_both: list[dict]) -> None:
    both, one, none = fixed_one_or_both
    assert both["mitigated"] and not one["mitigated"] and not none["mitigated"]
    # fixing one of two still spares users something, and fixing both spares them more
    assert both["impact_minutes"] < one["impact_minutes"] < none["impact_minutes"]
    assert both["reward"] > one["reward"] > none["reward"]


def test_localisation_counts_both_roots() -> None:
    inc = _compound(3)
    _run_until(inc, 600.0)
    inc.submit(np.array([0, 1, 2]), [[FIRST, SECOND], [FIRST], ["frontend"]], ["error_rate"] * 3)
    ntam = inc.score.ntam
    assert ntam[0] == pytest.approx(1.0)
    assert 0.3 < ntam[1] < 0.8                                 # one of two roots: about half
    assert ntam[2] < ntam[1]
    assert inc.score.class_right.all()


def test_a_single_fault_scores_as_before() -> None:
    """No others: the fix table has one layer, and one fix mitigates."""
    inc = Incidents(IncidentConfig(scenario="online-shop", horizon=1800.0), worlds=1, seed=5)
    inc.reset(5, draws=[Draw("bad_config_push", CATALOGUE["bad_config_push"].make(target=FIRST, onset=120.0))])
    assert len(inc.score.fixes) == 1 and inc.others == [[]]
    _run_until(inc, 300.0)
    inc.mitigate("rollback_config", FIRST, None, np.array([0]))
    inc.run_to_end()
    assert inc.reports()[0].mitigated
