"""Cheats: strategies that a naive reward would pay and a sound one must not. Each reacts to the first alert it sees
(so that it acts after the incident began) and does one blunt thing without investigating. The audit checks that the
heuristic SRE beats every one of them by a clear margin.

- `SilenceEverything`: silences every component whose alerts show, as long as any show (the STPA lesson: optimise
  time-to-quiet and you train an agent that silences alerts).
- `RestartEverything`: a rolling restart of every component.
- `RollbackEverything`: rolls back the deploy and the config of every component.
- `ScaleEverythingToMax`: scales every component to the largest replica level.
- `PageAtOnce`: pages a human at the first alert, without looking.
- `BlameMostAlerting`: submits the component with the most firing alerts at once (a class read off its loudest
  alert) and leaves, without mitigating.
"""

from __future__ import annotations

import numpy as np

from opsworld.act.vocabulary import SCALE_FACTORS, SILENCE_SECONDS
from opsworld.agents.base import PerWorld

_CLASS_OF_ALERT = {"HighErrorRate": "error_rate", "HighLatency": "slowdown", "CPUSaturated": "cpu_hog",
                   "MemoryNearLimit": "memory_leak", "ReplicasUnavailable": "crash_loop",
                   "PodRestarting": "crash_loop", "QueueBacklog": "consumer_stall", "DiskNearlyFull": "disk_fill",
                   "WorkersExhausted": "connection_pool_leak", "TrafficSurge": "flash_crowd", "SLOBurn": "slowdown"}


class _Sweep(PerWorld):
    """At the first visible alert, queue `plan(obs)`; then take one queued action per free step; wait otherwise."""

    def _fresh(self, world: int) -> dict:
        return {"queue": None}

    def plan(self, obs: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def _act_one(self, world: int, state: dict, obs: dict[str, np.ndarray]) -> np.ndarray:
        if obs["clock"][1] > 0:               # busy (or handed over): whatever we send is ignored
            return self.wait()
        if state["queue"] is None and obs["alerts"].any():
            state["queue"] = list(self.plan(obs))
        if state["queue"]:
            return state["queue"].pop(0)
        return self.wait()

    def components(self, verb: str) -> list[str]:
        return [c for c in self.context.components if self.valid(verb, c)]


class SilenceEverything(_Sweep):
    """Silence every component whose alerts show, for the longest silence, whenever any show."""

    name = "silence-all"

    def _act_one(self, world: int, state: dict, obs: dict[str, np.ndarray]) -> np.ndarray:
        if obs["clock"][1] > 0:
            return self.wait()
        loud = np.flatnonzero(obs["alerts"].any(axis=1))
        if len(loud):
            return self.action("silence_alert", int(loud[0]), len(SILENCE_SECONDS) - 1)
        return self.wait()


class RestartEverything(_Sweep):
    """A rolling restart of every component, one after the other, from the first alert."""

    name = "restart-all"

    def plan(self, obs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [self.action("restart", c) for c in self.components("restart")]


class RollbackEverything(_Sweep):
    """Roll back the deploy and the config of every component, from the first alert."""

    name = "rollback-all"

    def plan(self, obs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [self.action(v, c) for c in self.components("rollback_deploy")
                for v in ("rollback_deploy", "rollback_config")]


class ScaleEverythingToMax(_Sweep):
    """Scale every component to the largest replica level, from the first alert."""

    name = "scale-max"

    def plan(self, obs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [self.action("scale", c, len(SCALE_FACTORS) - 1) for c in self.components("scale")]


class PageAtOnce(_Sweep):
    """Page a human at the first alert, without investigating."""

    name = "page-at-once"

    def plan(self, obs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [self.action("page_human", 0)]


class BlameMostAlerting(_Sweep):
    """Submit the component with the most firing alerts (ties: the first in the map) and a class read off its
    loudest alert, at the first alert; no mitigation."""

    name = "blame-most-alerting"

    def plan(self, obs: dict[str, np.ndarray]) -> list[np.ndarray]:
        ctx = self.context
        alerts = obs["alerts"] > 0
        s = int(np.argmax(alerts.sum(axis=1)))
        first = ctx.alerts[int(np.argmax(alerts[s]))]
        return [self.action("submit", s, ctx.fault_classes.index(_CLASS_OF_ALERT[first]))]
