"""opsworld: an executable world model of production operations."""

from opsworld.spec import Scenario, ScenarioError, load_scenario, templates

__all__ = ["Scenario", "ScenarioError", "load_scenario", "templates", "Engine"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The engine pulls in more numpy machinery than the spec layer; import it on first use.
    if name == "Engine":
        from opsworld.engine import Engine

        return Engine
    raise AttributeError(name)
