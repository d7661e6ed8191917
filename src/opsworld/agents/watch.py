"""Watch an agent handle one incident (`opsworld play --watch AGENT`): each action it takes, the alerts it sees as
they fire and clear, then the ground truth and its score."""

from __future__ import annotations

from typing import Callable

import numpy as np

from opsworld.act import vocabulary
from opsworld.agents import load_agent
from opsworld.agents.base import context_of
from opsworld.agents.runner import batch_actor, play
from opsworld.envs.gym_env import IncidentVectorEnv
from opsworld.observe.dashboard import ALERTS
from opsworld.spec import Scenario


def describe(context, action: np.ndarray) -> str:
    """An action [verb, target, argument] as an on-call engineer would write it."""
    verb, target, arg = (int(x) for x in action)
    name = context.verbs[verb]
    place = context.places[target]
    if name == "wait":
        return f"wait {vocabulary.WAIT_TICKS[arg] * context.dt:g}s"
    if name == "query_metrics":
        return f"query_metrics {context.signals[arg]}"
    if name == "silence_alert":
        return f"silence_alert {place} for {vocabulary.SILENCE_SECONDS[arg]:g}s"
    if name == "submit":
        return f"submit {place}: {context.fault_classes[arg]}"
    factor = {"scale": vocabulary.SCALE_FACTORS, "rate_limit": vocabulary.RATE_FACTORS,
              "set_pool_size": vocabulary.POOL_FACTORS}.get(name)
    if factor is not None:
        return f"{name} {place} x{factor[arg]:g}"
    if context.masks["target"][verb].sum() == 1 and context.masks["target"][verb][0] and target == 0:
        return name                                   # a verb that takes no target (page_human)
    return f"{name} {place}"


def watch(agent: str, scenario: str | Scenario, seed: int = 0, fault: str | list[str] | None = None,
          horizon: float | None = None, say: Callable[[str], None] = print, difficulty: str = "easy") -> dict:
    """Run one episode of `agent` on `scenario` (a template, scenario file or Scenario) at a `difficulty`, saying
    what happens; return its score report (a dict). Raises `AgentError`, `ScenarioError` or `FaultError` for a bad
    request, before anything runs."""
    actor = load_agent(agent)        # checked before anything runs
    faults = [fault] if isinstance(fault, str) else fault or None        # NAME or NAME:TARGET, or several
    env = IncidentVectorEnv(num_envs=1, scenario=scenario, faults=faults, horizon=horizon, seed=seed,
                            difficulty=difficulty)
    obs, info = env.reset(seed=seed)
    context = context_of(env)
    names = list(ALERTS)
    firing: set[tuple[str, str]] = set()

    def narrate(obs: dict, info: dict, actions: np.ndarray) -> None:
        nonlocal firing
        now = float(info["time"][0])
        clock = f"[{int(now) // 3600:02d}:{int(now) % 3600 // 60:02d}:{int(now) % 60:02d}]"
        alerts = obs["alerts"][0]
        seen = {(context.components[s], names[a]) for s, a in zip(*np.nonzero(alerts > 0.5))}
        for comp, alert in sorted(seen - firing):
            say(f"{clock} alert   {alert} on {comp}")
        for comp, alert in sorted(firing - seen):
            say(f"{clock} cleared {alert} on {comp}")
        firing = seen
        if obs["clock"][0, 1] < 0.5 and context.verbs[int(actions[0, 0])] != "wait":
            say(f"{clock} {agent}: {describe(context, actions[0])}")
    reports, _ = play(env, obs, info, batch_actor(lambda: actor, context, seed, [seed]), narrate)
    return reports[0]
