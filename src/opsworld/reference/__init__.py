"""The request-level reference simulator (SimPy): docs/model.md followed literally, used to validate the engine."""

from opsworld.reference.simulator import ReferenceResult, ReferenceSimulator, Slowdown

__all__ = ["ReferenceResult", "ReferenceSimulator", "Slowdown"]
