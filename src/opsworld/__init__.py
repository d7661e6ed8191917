"""opsworld: an executable world model of production operations."""

from opsworld.spec import Scenario, ScenarioError, load_scenario, templates

__all__ = ["Scenario", "ScenarioError", "load_scenario", "templates", "Engine", "verify"]
__version__ = "0.1.0"

try:     # gymnasium.make("opsworld/Incident-v0") works once opsworld is imported
    from opsworld.envs import register as _register

    _register()
except ImportError:      # pragma: no cover - gymnasium is a core dependency; a trimmed install may lack it
    pass


def __getattr__(name: str):
    # The engine pulls in more numpy machinery than the spec layer; import it on first use.
    if name == "Engine":
        from opsworld.engine import Engine

        return Engine
    if name == "verify":     # the dataset's verifier: verify(item, answer) -> score in [0, 1]
        from opsworld.dataset.verify import verify

        return verify
    raise AttributeError(name)
