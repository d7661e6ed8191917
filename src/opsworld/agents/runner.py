"""Running an agent on a batch of worlds: the one loop the evaluation, the rollouts and `play --watch` share."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from opsworld.agents.base import Agent, Context

Act = Callable[[dict[str, np.ndarray]], np.ndarray]        # a batch of observations -> [n, 3] actions
Watch = Callable[[dict[str, np.ndarray], dict, np.ndarray], None]


def batch_actor(factory: Callable[[], Agent], context: Context, batch_seed: int, world_seeds: Sequence[int]) -> Act:
    """The actions of a fresh agent for a batch of len(world_seeds) worlds: one agent for the whole batch if it acts
    on batches (`act_batch`; reset with `batch_seed`), else one per world, reset with its world's seed (its state is
    that world's alone)."""
    one = factory()
    if hasattr(one, "act_batch"):
        one.reset(context, batch_seed)
        return one.act_batch
    agents = [one] + [factory() for _ in world_seeds[1:]]
    for agent, seed in zip(agents, world_seeds):
        agent.reset(context, int(seed))
    return lambda obs: np.stack([np.asarray(a.act({k: v[i] for k, v in obs.items()})) for i, a in enumerate(agents)])


def play(env, obs: dict[str, np.ndarray], info: dict, act: Act, watch: Watch | None = None
         ) -> tuple[list[dict], np.ndarray]:
    """Step a vector env from `obs, info` (its reset's) with `act` until every world's episode ends; `watch(obs,
    info, actions)` sees each step before it is taken. Returns (the worlds' truth reports, [n] their summed step
    rewards)."""
    n = env.num_envs
    total = np.zeros(n)
    while True:
        actions = np.asarray(act(obs), dtype=np.int64).reshape(n, 3)
        if watch is not None:
            watch(obs, info, actions)
        obs, reward, terminated, _, info = env.step(actions)
        total += reward
        if terminated.all():
            return list(info["truth"]), total
