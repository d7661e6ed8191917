"""The batched, vectorised dynamics: B worlds x S components as struct-of-arrays numpy, and the truth state."""

from opsworld.engine.engine import Engine
from opsworld.engine.knobs import KnobError, Knobs
from opsworld.engine.topology import Topology, compile_topology
from opsworld.engine.truth import Trajectory, Truth

__all__ = ["Engine", "KnobError", "Knobs", "Topology", "Trajectory", "Truth", "compile_topology"]
