"""The request-level reference simulator (SimPy): docs/model.md followed literally, used to validate the engine."""

from opsworld.reference.simulator import ReferenceResult, ReferenceSimulator, Slowdown

__all__ = ["Comparison", "ReferenceResult", "ReferenceSimulator", "Slowdown", "compare"]


def __getattr__(name: str):
    # compare needs the engine; keep importing the reference alone cheap
    if name in ("compare", "Comparison"):
        from opsworld.reference import compare as module

        return getattr(module, name)
    raise AttributeError(name)
