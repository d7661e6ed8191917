"""What the score reads of a batch of incidents: the score's side of the backend seam.

`envs.incident.Incidents` provides it over any running system (`act.system.System`: the model, or real processes). Read
only: the score never changes an incident, and nothing here reaches a sensor (principle 1: the reward comes from
the controlled process, never from what an agent was shown)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from opsworld.act.human import Humans
from opsworld.act.system import System
from opsworld.engine import Engine, Truth
from opsworld.engine.topology import Topology
from opsworld.faults.ground_truth import FaultTruth, GroundTruth
from opsworld.spec import Scenario

if TYPE_CHECKING:
    from opsworld.score.reward import ScoreBook


class ScoredIncidents(Protocol):
    """B worlds, each with its fault (or two, in a compound incident), worked by a responder (shapes: B worlds)."""

    scenario: Scenario
    topology: Topology
    system: System                       # the running system: its knobs, tick, dt, versions, which faults act
    humans: Humans                       # paged humans, when they looked and fixed
    twin: Engine | None                  # the counterfactual, where the causal chain is checked
    worlds: int
    ticks: int                           # the horizon, in ticks
    truths: list[FaultTruth | None]      # per world, its fault's truth (None: a control)
    others: list[list[FaultTruth]]       # per world, the truths of further faults striking beside it (compound)
    carriers: dict[tuple[str, int], list]   # (change kind, component) -> the placed faults that change carries
    onset: np.ndarray                    # [B] seconds the first fault began, inf for a control
    control: np.ndarray                  # [B] bool: no fault to find
    beyond_runbook: np.ndarray           # [B] bool: only a paged human can fix it (one of its faults)
    on_call_since: np.ndarray            # [B] seconds: when the responder took over
    submitted_at: np.ndarray             # [B] seconds, inf until handed over
    paged_at: np.ndarray                 # [B] seconds of the first page, inf if none
    diagnosis: list[dict | None]         # per world, what the responder submitted
    distance: np.ndarray                 # [S, S] hops between components in the real call graph
    last: Truth | None                   # the truth of the last tick
    score: ScoreBook                     # the running score (the rules read its hurting and fixed-at records)

    @property
    def time(self) -> float:
        """Seconds since the episode began."""

    def wrong(self, worlds: np.ndarray) -> np.ndarray:
        """[n] whether anything is wrong in these worlds now, as the truth has it."""

    def ground_truth(self) -> list[GroundTruth]:
        """Per world, the ground truth so far (needs the counterfactual)."""
