"""`query_logs`: the lines a query selects, derived lazily from the recorded ticks it walks, newest first."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from opsworld.observe.imperfection import Imperfections
from opsworld.observe.logs.lines import N_SOURCES, component_lines
from opsworld.observe.logs.logql import LogQuery, LogQueryError, Matcher, parse_logql
from opsworld.observe.logs.templates import Rand
from opsworld.observe.logs.view import LEVELS, LOGS, LogLine, WorldView
from opsworld.observe.logs.view import clock_skews
from opsworld.observe.noise import hashed
from opsworld.observe.recording import Recording


def _levels_wanted(level: str | Iterable[str] | None, matchers: tuple[Matcher, ...]) -> set[str]:
    wanted = set(LEVELS)
    if level is not None:
        asked = {level.upper()} if isinstance(level, str) else {str(x).upper() for x in level}
        wanted &= {"WARN" if x == "WARNING" else x for x in asked}
    for m in matchers:
        if m.label == "level":
            wanted = {lv for lv in wanted if m.matches(lv)}
    return wanted


def _line_labels(view: WorldView, s: int, r: int, level: str) -> dict[str, str]:
    topo = view.topology
    node = int(topo.replica_node[r])
    name = topo.components[s]
    return {"service": name, "app": name, "container": name, "pod": view.pod_names[r], "level": level,
            "namespace": view.names.namespace, "node": topo.nodes[node], "zone": topo.zones[int(topo.node_zone[node])]}


def query_logs(rec: Recording, world: int, service: str | None = None, level: str | Iterable[str] | None = None,
               start: float | None = None, end: float | None = None, query: str | None = None, limit: int = 500,
               imperfections: Imperfections | None = None, direction: str = "backward") -> list[LogLine]:
    """The log lines of one world matching a query, newest first (`direction="forward"`: oldest first), at most
    `limit`. `service`/`level` narrow like selector matchers; `start`/`end` are Unix seconds (both inclusive);
    `query` is LogQL: a stream selector and line filters (see `parse_logql`)."""
    if direction not in ("backward", "forward"):
        raise LogQueryError(f"direction must be 'backward' or 'forward', got {direction!r}")
    parsed = parse_logql(query) if query is not None and query.strip() else LogQuery((), ())
    if limit <= 0 or rec.ticks == 0:
        return []
    imp = imperfections or Imperfections()
    view = WorldView(rec, world)
    levels = _levels_wanted(level, parsed.matchers)
    service_labels = ("service", "app", "container")
    services = [s for s, name in enumerate(view.topology.components)
                if (service is None or name == service)
                and all(m.matches(name) for m in parsed.matchers if m.label in service_labels)]
    if not levels or not services:
        return []
    skews = clock_skews(view, imp.clock_skew)
    worst = float(np.abs(skews).max()) if len(skews) else 0.0
    lo = -math.inf if start is None else float(start)
    hi = math.inf if end is None else float(end)
    visible = rec.start + rec.ticks * rec.dt - imp.ingestion_delay        # newer lines are not ingested yet
    first = max(int(math.floor((lo - worst - rec.start) / rec.dt)), 0) if math.isfinite(lo) else 0
    last = min(int(math.floor((min(hi + worst, visible) - rec.start) / rec.dt)), rec.ticks - 1)
    if last < first:
        return []
    other = [m for m in parsed.matchers if m.label not in service_labels and m.label != "level"]
    found: list[tuple[float, int, LogLine]] = []
    order = range(last, first - 1, -1) if direction == "backward" else range(first, last + 1)
    svc = np.array(services, dtype=np.int64)
    src = np.arange(N_SOURCES)
    for k in order:
        if len(found) >= limit:
            cut = sorted(found, key=lambda x: (x[0], x[1]), reverse=direction == "backward")[limit - 1][0]
            if direction == "backward" and rec.start + (k + 1) * rec.dt + worst < cut:
                break
            if direction == "forward" and rec.start + k * rec.dt - worst > cut:
                break
        ts = view.tick(k)
        bases = hashed(rec.seed, LOGS, view.gworld, k, svc[:, None], src[None, :]).tolist()
        for j, s in enumerate(services):
            for time, r, lv, message, key in component_lines(ts, s, levels, bases[j]):
                if time > visible:
                    continue
                if imp.log_drop or imp.log_sample < 1.0:
                    # the line's own coins, apart from the draws that wrote it
                    keep = Rand(bases[j][0] ^ (key * 0x9E3779B97F4A7C15 + 0x5851F42D4C957F2D) & 0xFFFFFFFFFFFFFFFF)
                    if keep.random() < imp.log_drop:
                        continue
                    if lv in ("INFO", "DEBUG") and keep.random() >= imp.log_sample:
                        continue
                shown = time + float(skews[s])
                if not lo <= shown <= hi:
                    continue
                if other:
                    labels = _line_labels(view, s, r, lv)
                    if not all(m.matches(labels.get(m.label, "")) for m in other):
                        continue
                line = LogLine(round(shown, 6), view.topology.components[s], view.pod_names[r], lv, message)
                # filters read the line as it is printed, its level included (`|= "WARN"` finds the warnings, as
                # on a real line that carries its level)
                text = f"{lv} {message}"
                if not all(f.matches(text) for f in parsed.filters):
                    continue
                found.append((shown, len(found), line))
    found.sort(key=lambda x: (x[0], x[1]), reverse=direction == "backward")
    return [line for _, _, line in found[:limit]]
