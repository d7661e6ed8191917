"""A responder that picks uniformly random valid actions: a verb among the valid ones, then a valid target and a valid
argument for it (the env's masks). The floor every other agent should clear."""

from __future__ import annotations

import numpy as np

from opsworld.act.vocabulary import sample_actions
from opsworld.agents.base import Context


class RandomAgent:
    """Uniformly random valid actions (verb, then target, then argument), from a generator seeded at `reset`."""

    name = "random"

    def __init__(self) -> None:
        self.context: Context | None = None
        self.rng = np.random.default_rng(0)

    def reset(self, context: Context, seed: int = 0) -> None:
        self.context = context
        self.rng = np.random.default_rng([int(seed), 0x5EED])

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.act_batch({k: np.asarray(v)[None] for k, v in observation.items()})[0]

    def act_batch(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        return sample_actions(self.context.masks, self.rng, len(observations["clock"]))
