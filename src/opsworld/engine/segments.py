"""Sums over groups of rows (a component's replicas, a caller's calls, a node's replicas), for arrays shaped
[rows, worlds]."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segments:
    """Edges grouped by a key row, summed per group member by member: the k-th member of every group is gathered
    and added at once. (numpy's reduceat along the first axis walks it innermost, which is slow on [rows, worlds];
    this adds whole rows, in a fixed order, so a world's sum never depends on the batch.)

    The groups are worked on longest first, so the groups that have a k-th member are always the first `counts[k]`
    and each step adds into a leading slice in place; `rank` puts them back in the order of `targets` at the end.
    """

    targets: np.ndarray              # the row each group belongs to (ascending)
    members: list[np.ndarray]        # members[k]: position of the k-th member of each group that has one, longest first
    counts: list[int]                # counts[k]: how many groups have a k-th member
    rank: np.ndarray | None          # rank[g]: where group g (of `targets`) is among the longest-first; None: in place

    @classmethod
    def of(cls, edges: np.ndarray, keys: np.ndarray) -> "Segments | None":
        if len(edges) == 0:
            return None
        targets = np.unique(keys)
        by_group = [edges[keys == t] for t in targets]
        order = sorted(range(len(by_group)), key=lambda g: -len(by_group[g]))   # stable: ties keep target order
        members, counts = [], []
        for k in range(len(by_group[order[0]])):
            have = [g for g in order if len(by_group[g]) > k]                    # a prefix of `order`
            members.append(np.array([by_group[g][k] for g in have], dtype=np.int64))
            counts.append(len(have))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return cls(targets, members, counts, None if np.array_equal(rank, np.arange(len(order))) else rank)

    def sum(self, values: np.ndarray, op: np.ufunc = np.add) -> np.ndarray:
        """[groups, ...] the combination (`op`: add, maximum...) of each group's rows of `values`."""
        out = values[self.members[0]]
        for members, n in zip(self.members[1:], self.counts[1:]):
            head = out[:n]
            op(head, values[members], out=head)
        return out if self.rank is None else out[self.rank]
