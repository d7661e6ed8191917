"""The names the telemetry uses for a topology's parts: pods, addresses, routes, GPUs.

Pods are named by replica slot (`cartservice-0`, `cartservice-1`, ...), as a StatefulSet names them, so every world
of a batch shares one series catalogue; addresses are private ones laid out by zone and node.
"""

from __future__ import annotations

from opsworld.engine.topology import Topology
from opsworld.observe.noise import hashed, name_key

NAMESPACE = "prod"


class Names:
    """Names and addresses of one topology's components, replicas, nodes and endpoints."""

    namespace = NAMESPACE

    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def component(self, s: int) -> str:
        return self.topology.components[s]

    def pod(self, r: int) -> str:
        topo = self.topology
        return f"{topo.components[int(topo.replica_component[r])]}-{int(topo.replica_index[r])}"

    def pod_ip(self, r: int) -> str:
        topo = self.topology
        n = int(topo.replica_node[r])
        return f"10.{8 + int(topo.node_zone[n])}.{n}.{2 + r % 250}"

    def instance(self, r: int, port: int = 8080) -> str:
        return f"{self.pod_ip(r)}:{port}"

    def service_ip(self, s: int) -> str:
        return f"10.96.{s // 250}.{10 + s % 240}"

    def node(self, n: int) -> str:
        return self.topology.nodes[n]

    def node_ip(self, n: int) -> str:
        return f"10.128.{int(self.topology.node_zone[n])}.{10 + n}"

    def node_instance(self, n: int, port: int) -> str:
        return f"{self.node_ip(n)}:{port}"

    def route(self, p: int) -> str:
        """An entry endpoint as the scenario names it, e.g. `GET /cart`."""
        return self.topology.endpoints[p]

    def gpu_uuid(self, r: int, g: int) -> str:
        h = int(hashed(name_key(self.pod(r)), g)) & (2 ** 128 - 1)
        x = f"{h:016x}{h * 2654435761 % 2 ** 64:016x}"
        return f"GPU-{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:32]}"
