"""What the lazy sensors (logs, traces) read after the fact: the truth of every tick and the state they may see.

The engine keeps per-tick truth; logs and traces are produced only when someone queries them, deterministically from
the world's seed, so a million episodes do not pay for text nobody reads. A `Recording` holds what that needs for a
batch: the `Trajectory`, the knobs as they were (snapshots taken whenever one changed), and the replicas' states.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from opsworld.engine import Engine, Trajectory, Truth
from opsworld.engine.changes import ChangeLog
from opsworld.engine.knobs import Knobs

KNOB_FIELDS = tuple(Knobs.__dataclass_fields__)
from opsworld.engine.topology import Topology
from opsworld.observe.names import Names


@dataclass
class Recording:
    """A batch's episode as the lazy sensors see it. Arrays keep the world axis where the engine has it."""

    topology: Topology
    seed: int
    first_world: int
    start: float                       # Unix seconds at t = 0
    dt: float                          # seconds per tick; tick k covers [k dt, (k+1) dt)
    frames: list[Truth] = field(default_factory=list)            # truth of each tick ([B, ...] arrays)
    knob_times: list[float] = field(default_factory=list)        # when each snapshot began to hold (seconds)
    knob_snapshots: list[Knobs] = field(default_factory=list)
    replica_state: list[np.ndarray] = field(default_factory=list)     # per tick [R, B] int8 (replicas.py states)
    replica_launched: list[np.ndarray] = field(default_factory=list)  # per tick [R, B] seconds the slot last started
    changes: ChangeLog = field(default_factory=ChangeLog)
    versions: list[str] = field(default_factory=list)            # deploy/config version names, by knob id

    @property
    def names(self) -> Names:
        return Names(self.topology)

    @property
    def ticks(self) -> int:
        return len(self.frames)

    @property
    def worlds(self) -> int:
        return self.frames[0].requests.shape[0] if self.frames else 0

    def trajectory(self) -> Trajectory:
        """The truth over the episode, [T, B, ...]."""
        return Trajectory.stack(self.frames)

    def knobs_at(self, time: float) -> Knobs:
        """The knobs that held at `time` (seconds since the start)."""
        i = bisect.bisect_right(self.knob_times, time) - 1
        return self.knob_snapshots[max(i, 0)]

    def tick_of(self, time: float) -> int:
        """The tick covering `time` (seconds since the start), clipped to the recorded ones."""
        return int(min(max(time // self.dt, 0), max(self.ticks - 1, 0)))

    def record(self, engine: Engine, truth: Truth) -> None:
        """Keep one tick (just stepped): its truth, the replicas' states, and the knobs when they changed."""
        last = self.knob_snapshots[-1] if self.knob_snapshots else None
        if last is None or any(not np.array_equal(getattr(last, f), getattr(engine.knobs, f))
                               for f in KNOB_FIELDS):
            self.knob_times.append(engine.time - engine.dt)
            self.knob_snapshots.append(engine.knobs.copy())
        self.frames.append(truth)
        self.replica_state.append(engine.replicas.state.copy())
        self.replica_launched.append(engine.replicas.launched.copy())
        self.versions = engine.versions
        self.changes = engine.changes


def new_recording(engine: Engine) -> Recording:
    """An empty recording of an engine's batch."""
    return Recording(engine.topology, engine.seed, engine.first_world, float(engine.scenario.traffic.start),
                     engine.dt, changes=engine.changes, versions=engine.versions)
