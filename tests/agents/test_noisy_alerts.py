"""The heuristic responder on monitoring as teams have it: warnings that flap on their own open no incident, so a
quiet shift with noisy alerts ends with nothing touched; taking every alert at its word (the old behaviour) does
not."""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.act.mitigations import MITIGATIONS
from opsworld.act.vocabulary import VERBS
from opsworld.agents import HeuristicSRE
from opsworld.envs.difficulty import Difficulty
from opsworld.eval.audit import make_env, run_agent, suite

NOISY = Difficulty(monitoring=1.0)
MITIGATING = np.array([v in MITIGATIONS for v in VERBS])


class Credulous(HeuristicSRE):
    """Every alert at its word, at once."""

    patience = 0.0
    flaps_to_learn = 0


@pytest.fixture(scope="module")
def quiet_shifts():
    episodes = suite(seeds=6, templates=("online-shop",), entries=["no_fault"], background=0.0,
                     difficulty=NOISY)["online-shop"]
    env = make_env("online-shop", len(episodes), difficulty=NOISY)
    return episodes, env


def _orders(run) -> int:
    """Mitigations ordered (a step where the responder was free and sent a mitigation verb)."""
    return int((MITIGATING[run.actions[:, :, 0]] & run.free).sum())


def test_noise_alerts_fire_on_a_quiet_shift(quiet_shifts) -> None:
    episodes, env = quiet_shifts
    run = run_agent(HeuristicSRE, "online-shop", episodes, env=env)
    assert run.alerting.any(axis=(0, 2)).sum() >= len(episodes) // 2     # the warnings do fire


def test_a_careful_responder_touches_nothing_for_them(quiet_shifts) -> None:
    episodes, env = quiet_shifts
    careful = run_agent(HeuristicSRE, "online-shop", episodes, env=env)
    credulous = run_agent(Credulous, "online-shop", episodes, env=env)
    assert _orders(careful) < _orders(credulous)
    assert careful.rewards.mean() >= credulous.rewards.mean()
