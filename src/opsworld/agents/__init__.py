"""Baseline agents for the incident envs, and a registry to load them by name (`opsworld eval --agent NAME`) or by
`module:Class` (any class with `reset(context, seed)` and `act(observation)`; `act_batch` optional)."""

from __future__ import annotations

import importlib
from typing import Callable

from opsworld.agents.base import Agent, Context, PerWorld, context_of
from opsworld.agents.cheats import (BlameMostAlerting, PageAtOnce, RestartEverything, RollbackEverything,
                                    ScaleEverythingToMax, SilenceEverything)
from opsworld.agents.heuristic import HeuristicSRE
from opsworld.agents.idle import DoNothingAgent
from opsworld.agents.random import RandomAgent

AGENTS: dict[str, Callable[[], Agent]] = {
    "random": RandomAgent,
    "do-nothing": DoNothingAgent,
    "heuristic-sre": HeuristicSRE,
    "silence-all": SilenceEverything,
    "restart-all": RestartEverything,
    "rollback-all": RollbackEverything,
    "scale-max": ScaleEverythingToMax,
    "page-at-once": PageAtOnce,
    "blame-most-alerting": BlameMostAlerting,
}
CHEATS = ("silence-all", "restart-all", "rollback-all", "scale-max", "page-at-once", "blame-most-alerting")


class AgentError(ValueError):
    """An agent name that is neither registered nor an importable `module:Class`."""


def agent_factory(name: str) -> Callable[[], Agent]:
    """The factory (a class) of a registered agent, or of `module:Class`."""
    if name in AGENTS:
        return AGENTS[name]
    if ":" not in name:
        raise AgentError(f"no agent named '{name}'; registered: {', '.join(AGENTS)}; or give module:Class")
    module, _, attr = name.partition(":")
    try:
        obj = importlib.import_module(module)
    except ImportError as exc:
        raise AgentError(f"cannot import '{module}': {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AgentError(f"'{module}' has no '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise AgentError(f"'{name}' is not a class or factory")
    return obj


def load_agent(name: str) -> Agent:
    """A fresh agent: a registered name (`AGENTS`) or `module:Class`."""
    agent = agent_factory(name)()
    if not (hasattr(agent, "reset") and hasattr(agent, "act")):
        raise AgentError(f"'{name}' makes no agent: it needs reset(context, seed) and act(observation)")
    return agent


__all__ = ["AGENTS", "CHEATS", "Agent", "AgentError", "Context", "PerWorld", "context_of", "agent_factory",
           "load_agent", "RandomAgent", "DoNothingAgent", "HeuristicSRE", "SilenceEverything", "RestartEverything",
           "RollbackEverything", "ScaleEverythingToMax", "PageAtOnce", "BlameMostAlerting"]
