"""A responder who does nothing: it waits the whole episode. What the incident costs on its own."""

from __future__ import annotations

import numpy as np

from opsworld.act.vocabulary import WAIT_TICKS
from opsworld.agents.base import Context


class DoNothingAgent:
    """Waits (the longest wait, again and again); never investigates, mitigates or hands over."""

    name = "do-nothing"
    ticks: int | None = None       # ticks per wait (None: the longest wait the env offers)

    def __init__(self) -> None:
        self._action = np.zeros(3, np.int64)

    def reset(self, context: Context, seed: int = 0) -> None:
        wait = len(WAIT_TICKS) - 1 if self.ticks is None else WAIT_TICKS.index(self.ticks)
        self._action = np.array([context.verb("wait"), 0, wait], np.int64)

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self._action.copy()

    def act_batch(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        return np.tile(self._action, (len(observations["clock"]), 1))


class IdleAgent(DoNothingAgent):
    """Waits one tick at a time, for the whole episode: a zero-knowledge base on which habits fire on time (the
    do-nothing agent waits 30 ticks at a time, so a habit would wait up to 5 minutes for its turn)."""

    name = "idle"
    ticks = 1
