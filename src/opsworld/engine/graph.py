"""Reach in a call graph of n components given as edges (src[i] calls dst[i]): who is next to whom, how many hops
apart, and what lies below a component. The real graph is the topology's edges; an agent's documented map may differ
(principle 6), so these take edges, not a topology."""

from __future__ import annotations

import numpy as np


def neighbours(src: np.ndarray, dst: np.ndarray, n: int) -> list[set[int]]:
    """Per component, the components it calls or is called by (undirected adjacency)."""
    adj: list[set[int]] = [set() for _ in range(n)]
    for a, b in zip(src, dst):
        adj[int(a)].add(int(b))
        adj[int(b)].add(int(a))
    return adj


def hops(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    """[n, n] hops between components, either way along the calls; n+1 where unconnected."""
    adj = np.zeros((n, n), np.float32)
    for a, near in enumerate(neighbours(src, dst, n)):
        adj[a, list(near)] = 1.0
    out = np.full((n, n), n + 1, np.int64)
    np.fill_diagonal(out, 0)
    frontier = np.eye(n, dtype=np.float32)          # row a: the components first reached from a at this distance
    for d in range(1, n + 1):                        # breadth-first from every component at once
        reached = (frontier @ adj > 0) & (out > d)
        if not reached.any():
            break
        out[reached] = d
        frontier = reached.astype(np.float32)
    return out


def below(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    """[n, n] bool: component j is i itself or reached from i by following calls (the transitive closure)."""
    reach = np.eye(n, dtype=bool)
    reach[np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)] = True
    while True:                                      # squaring doubles the path length covered: log2(n) rounds
        wider = (reach.astype(np.float32) @ reach.astype(np.float32)) > 0
        if (wider == reach).all():
            return reach
        reach = wider
