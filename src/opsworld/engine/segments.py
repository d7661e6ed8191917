"""Sums over groups of rows (a component's replicas, a caller's calls, a node's replicas), for arrays shaped
[rows, worlds]."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segments:
    """Edges grouped by a key row, summed per group member by member: the k-th member of every group is gathered
    and added at once. (numpy's reduceat along the first axis walks it innermost, which is slow on [rows, worlds];
    this adds whole rows, in a fixed order, so a world's sum never depends on the batch.)"""

    targets: np.ndarray              # the row each group belongs to
    members: list[np.ndarray]        # members[k]: position of the k-th member of each group that has one
    groups: list[np.ndarray | None]  # groups[k]: which groups have a k-th member (None: all of them)

    @classmethod
    def of(cls, edges: np.ndarray, keys: np.ndarray) -> "Segments | None":
        if len(edges) == 0:
            return None
        targets = np.unique(keys)
        by_group = [edges[keys == t] for t in targets]
        longest = max(len(g) for g in by_group)
        members, groups = [], []
        for k in range(longest):
            have = np.array([i for i, g in enumerate(by_group) if len(g) > k], dtype=np.int64)
            members.append(np.array([by_group[i][k] for i in have], dtype=np.int64))
            groups.append(None if len(have) == len(by_group) else have)
        return cls(targets, members, groups)

    def sum(self, values: np.ndarray, op: np.ufunc = np.add) -> np.ndarray:
        """[groups, ...] the combination (`op`: add, maximum...) of each group's rows of `values`."""
        out = values[self.members[0]]
        for members, groups in zip(self.members[1:], self.groups[1:]):
            if groups is None:
                op(out, values[members], out=out)
            else:
                out[groups] = op(out[groups], values[members])
        return out
