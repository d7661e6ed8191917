"""Baseline agents for the incident envs, and a registry to load them by name (`opsworld eval --agent NAME`), by
`module:Class` (any class with `reset(context, seed)` and `act(observation)`; `act_batch` optional), by the path
of a policy file written by `opsworld train` (`PATH.pt`), or as a composition: any of those plus habits,
`heuristic-sre+page@first_alert+shed@start` (`opsworld.agents.habits`)."""

from __future__ import annotations

import importlib
import os
import sys
import importlib.util
from pathlib import Path
from typing import Callable

from opsworld.agents.base import Agent, Context, PerWorld, context_of
from opsworld.agents.cheats import (BlameMostAlerting, PageAtOnce, RestartEverything, RollbackEverything,
                                    ScaleEverythingToMax, SilenceEverything)
from opsworld.agents.heuristic import HeuristicSRE
from opsworld.agents.idle import DoNothingAgent, IdleAgent
from opsworld.agents.random import RandomAgent

AGENTS: dict[str, Callable[[], Agent]] = {
    "random": RandomAgent,
    "do-nothing": DoNothingAgent,
    "idle": IdleAgent,
    "heuristic-sre": HeuristicSRE,
    "silence-all": SilenceEverything,
    "restart-all": RestartEverything,
    "rollback-all": RollbackEverything,
    "scale-max": ScaleEverythingToMax,
    "page-at-once": PageAtOnce,
    "blame-most-alerting": BlameMostAlerting,
}

# the trained network as an agent, named by entry point as Gymnasium registers envs: the registry sits below the
# trainer and imports it only when a trained agent is asked for
POLICY_AGENT = "opsworld.train.agent:PolicyAgent"


def _shipped_policy() -> Agent:
    """The trained PPO policy that ships with the package (PolicyAgent's default weights; extra `train`)."""
    return _resolve(POLICY_AGENT)()


_SHIPPED = Path(__file__).parent.parent / "train" / "weights" / "ppo.pt"
if _SHIPPED.exists() and importlib.util.find_spec("torch") is not None:    # it runs on PyTorch (extra `train`)
    AGENTS["ppo"] = _shipped_policy
CHEATS = ("silence-all", "restart-all", "rollback-all", "scale-max", "page-at-once", "blame-most-alerting")


class AgentError(ValueError):
    """An agent name that is neither registered nor an importable `module:Class`."""


def agent_factory(name: str) -> Callable[[], Agent]:
    """The factory (a class) of a registered agent, of `module:Class`, of a policy file, or of a composition
    `base+habit@timing+...`."""
    if name in AGENTS:
        return AGENTS[name]
    if "+" in name:                    # a base agent with habits bolted on
        from opsworld.agents.habits import composed
        return composed(name)
    if name.endswith(".pt"):           # a policy file written by `opsworld train`
        if importlib.util.find_spec("torch") is None:
            raise AgentError(f"'{name}': a trained policy needs PyTorch: pip install -e '.[train]'")
        if not Path(name).is_file():
            raise AgentError(f"'{name}': no such policy file")
        return lambda: _resolve(POLICY_AGENT)(name)
    if ":" not in name:
        raise AgentError(f"no agent named '{name}'; registered: {', '.join(AGENTS)}; or give module:Class")
    return _resolve(name)


def _resolve(name: str) -> Callable[..., Agent]:
    """The object an entry point `module:Class` names."""
    module, _, attr = name.partition(":")
    try:
        obj = _import(module)
    except ImportError as exc:
        raise AgentError(f"cannot import '{module}': {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AgentError(f"'{module}' has no '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise AgentError(f"'{name}' is not a class or factory")
    return obj


def _import(module: str) -> object:
    """Import a module as `python -m` finds it: installed, or else from the working directory (where a user runs
    `opsworld eval --agent mypkg.agents:MyAgent` beside `mypkg/`). The folder is searched last, so it never shadows
    an installed package."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        top = module.split(".")[0]
        if exc.name != top or here in sys.path or not (Path(here, top).is_dir() or Path(here, top + ".py").is_file()):
            raise
        sys.path.append(here)
        return importlib.import_module(module)


def load_agent(name: str) -> Agent:
    """A fresh agent: a registered name (`AGENTS`) or `module:Class`."""
    agent = agent_factory(name)()
    if not (hasattr(agent, "reset") and hasattr(agent, "act")):
        raise AgentError(f"'{name}' makes no agent: it needs reset(context, seed) and act(observation)")
    return agent


__all__ = ["AGENTS", "CHEATS", "Agent", "AgentError", "Context", "PerWorld", "context_of", "agent_factory",
           "load_agent", "RandomAgent", "DoNothingAgent", "IdleAgent", "HeuristicSRE", "SilenceEverything",
           "RestartEverything", "RollbackEverything", "ScaleEverythingToMax", "PageAtOnce", "BlameMostAlerting"]
