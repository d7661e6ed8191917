"""The shape of one request's call graph, drawn to match production statistics.

Alibaba's public microservice traces (84,030 call graphs, 2021 sample) give the target figures: nodes per request
graph p50 6 / p90 10 / p99 18 (max 65); depth p50 3 / p99 4 (max 12); largest fan-out p50 4 / p90 7 / p99 16; call
types rpc 59%, http 13%, memcached 13%, db 1.7%, message queue under 0.1% (the rest untyped).

Those graphs are wide and shallow: the entry service fans out to a handful of callees, one of which usually makes a
call or two of its own. So a graph is drawn as: a depth, the entry's fan-out (from the published quantiles,
interpolated in log space), a chain of calls that reaches the depth, and a few extra calls below the first tier.
Interior nodes are services (rpc, http, other); leaves may also be caches, datastores and queues, in the shares that
make the whole graph's mix come out as published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

CALL_TYPES = ("rpc", "http", "memcached", "db", "mq", "other")
# share of all calls per type (Alibaba 2021); "other" is the rest the trace leaves untyped
CALL_SHARES = {"rpc": 0.59, "http": 0.13, "memcached": 0.13, "db": 0.017, "mq": 0.0008, "other": 0.1322}
SERVICE_TYPES = ("rpc", "http", "other")          # calls to a service: the only nodes that call further
LEAF_KINDS = {"memcached": "cache", "db": "datastore", "mq": "queue"}

# (cumulative probability, value) points of the published quantiles; between points, log-linear
FANOUT_QUANTILES = ((0.0, 1.0), (0.5, 4.0), (0.9, 7.0), (0.99, 16.0), (1.0, 48.0))
# depth in tiers (the entry service is tier 1): P(2), P(3), P(4), then 5..12 share the rest
DEPTH_LAW = (0.36, 0.55, 0.082)


@dataclass
class RequestGraph:
    """One request's call tree. Node 0 is the entry service; `parent[i]` is the caller of node i (-1 for the entry),
    `call[i]` the type of the call that reached it (index into CALL_TYPES; -1 for the entry)."""

    parent: np.ndarray     # [n]
    call: np.ndarray       # [n]

    @property
    def nodes(self) -> int:
        return len(self.parent)

    @property
    def depth(self) -> int:
        """Tiers from the entry (1) to the deepest call."""
        tier = np.ones(self.nodes, np.int64)
        for i in range(1, self.nodes):         # parents come before their children
            tier[i] = tier[self.parent[i]] + 1
        return int(tier.max())

    @property
    def fanout(self) -> int:
        """The most calls one node makes."""
        return int(np.bincount(self.parent[1:], minlength=1).max()) if self.nodes > 1 else 0

    def children(self, i: int) -> list[int]:
        return [int(j) for j in np.flatnonzero(self.parent == i)]


@dataclass(frozen=True)
class CallGraphModel:
    """Draws request graphs. `extra_calls` is the mean number of calls made below the first tier besides the chain
    that sets the depth; `cache_hit_ratio` is what the caches answer (their misses become db calls)."""

    extra_calls: float = 0.45
    cache_hit_ratio: float = 0.95
    shares: dict = field(default_factory=lambda: dict(CALL_SHARES))

    def fanout(self, rng: np.random.Generator) -> int:
        u = rng.random()
        qs, vs = zip(*FANOUT_QUANTILES)
        return max(1, int(round(float(np.exp(np.interp(u, qs, np.log(vs)))))))

    def depth(self, rng: np.random.Generator) -> int:
        u = rng.random()
        p2, p3, p4 = DEPTH_LAW
        if u < p2:
            return 2
        if u < p2 + p3:
            return 3
        if u < p2 + p3 + p4:
            return 4
        return int(min(12, 5 + rng.geometric(0.45) - 1))

    def shape(self, rng: np.random.Generator) -> np.ndarray:
        """[n] parents of one drawn tree, without call types."""
        depth, fan = self.depth(rng), self.fanout(rng)
        parent = [-1] + [0] * fan
        tier = [1] + [2] * fan
        node = 1                                    # the chain hangs off the first callee
        for _ in range(depth - 2):
            parent.append(node)
            tier.append(tier[node] + 1)
            node = len(parent) - 1
        if depth >= 3:
            for _ in range(int(rng.poisson(self.extra_calls))):
                # below the first tier and above the deepest: the depth stays what was drawn
                callers = [i for i in range(1, len(parent)) if tier[i] < depth]
                c = callers[int(rng.integers(len(callers)))]
                parent.append(c)
                tier.append(tier[c] + 1)
        return np.array(parent, np.int64)

    @cached_property
    def leaf_shares(self) -> np.ndarray:
        """[len(CALL_TYPES)] type probabilities for calls to leaves, so that with services at the interior nodes
        the mix over all calls (cache misses included) comes out as `shares`."""
        rng = np.random.default_rng(0)
        interior = leaves = 0
        for _ in range(4000):
            parent = self.shape(rng)
            calls = np.bincount(parent[1:], minlength=len(parent))
            interior += int((calls[1:] > 0).sum())
            leaves += int((calls[1:] == 0).sum())
        f = interior / (interior + leaves)
        target = np.array([self.shares[t] for t in CALL_TYPES])
        mc, db = CALL_TYPES.index("memcached"), CALL_TYPES.index("db")
        # each memcached call misses with 1 - hit ratio and then calls the datastore: those db calls come free
        miss = target[mc] * (1.0 - self.cache_hit_ratio)
        target = target.copy()
        target[db] = max(0.0, target[db] - miss)
        service = np.array([t in SERVICE_TYPES for t in CALL_TYPES])
        inner = np.where(service, target, 0.0) / target[service].sum()
        leaf = np.clip((target - f * inner) / (1.0 - f), 0.0, None)
        return leaf / leaf.sum()

    @cached_property
    def interior_shares(self) -> np.ndarray:
        target = np.array([self.shares[t] if t in SERVICE_TYPES else 0.0 for t in CALL_TYPES])
        return target / target.sum()

    def draw(self, rng: np.random.Generator) -> RequestGraph:
        """One request graph with its call types (cache misses not included: they depend on the cache)."""
        parent = self.shape(rng)
        calls = np.bincount(parent[1:], minlength=len(parent))
        call = np.full(len(parent), -1, np.int64)
        inner = calls[1:] > 0
        call[1:] = np.where(inner, rng.choice(len(CALL_TYPES), size=len(parent) - 1, p=self.interior_shares),
                            rng.choice(len(CALL_TYPES), size=len(parent) - 1, p=self.leaf_shares))
        return RequestGraph(parent, call)
