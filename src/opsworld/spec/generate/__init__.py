"""Domain randomisation: request-graph shapes and whole topologies drawn from seeds."""

from opsworld.spec.generate.callgraph import CALL_TYPES, CallGraphModel, RequestGraph
from opsworld.spec.generate.topology import TopologyGenerator, request_graphs

__all__ = ["CALL_TYPES", "CallGraphModel", "RequestGraph", "TopologyGenerator", "request_graphs"]
