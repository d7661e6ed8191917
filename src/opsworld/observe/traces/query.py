"""`query_traces`: the sampled requests a query selects, simulated lazily from the recorded ticks, newest first."""


from __future__ import annotations

import math

import numpy as np

from opsworld.observe.imperfection import Imperfections
from opsworld.observe.logs.view import WorldView, clock_skews
from opsworld.observe.noise import hashed, name_key, uniform
from opsworld.observe.recording import Recording
from opsworld.observe.traces.build import Builder
from opsworld.observe.traces.calls import Params, Run, Tree
from opsworld.observe.traces.spans import CELLS, CHUNK_TICKS, OK, SAMPLE, TRACES, Trace


# ---- the query ------------------------------------------------------------------------------------------------------

def _sampled(view: WorldView, ticks: list[int], endpoint: int, rate: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sampled requests of an endpoint in some ticks: (tick position, request index, request key)."""
    rec = view.rec
    counts = [int(round(float(view.tick(k).requests[endpoint]))) for k in ticks]
    if not sum(counts):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint64)
    pos = np.repeat(np.arange(len(ticks)), counts)
    idx = np.concatenate([np.arange(n) for n in counts])
    tick = np.asarray(ticks)[pos]
    keep = uniform(rec.seed, SAMPLE, view.gworld, tick, endpoint, idx) < rate
    pos, idx, tick = pos[keep], idx[keep], tick[keep]
    keys = hashed(rec.seed, TRACES, name_key(view.topology.scenario.name), view.gworld, tick, endpoint, idx)
    return pos, idx, np.atleast_1d(keys)


def query_traces(rec: Recording, world: int, service: str | None = None, operation: str | None = None,
                 start: float | None = None, end: float | None = None, min_duration: float | None = None,
                 error: bool | None = None, limit: int = 20, imperfections: Imperfections | None = None
                 ) -> list[Trace]:
    """Sampled traces of one world's requests, newest first, at most `limit`: those with a span of `service`, a
    span named `operation`, arriving in [start, end] (Unix seconds), lasting at least `min_duration` seconds,
    and with (error=True) or without (error=False) an error span."""
    if limit <= 0 or rec.ticks == 0:
        return []
    imp = imperfections or Imperfections()
    view = WorldView(rec, world)
    topo = view.topology
    if service is not None and service not in topo.components:
        return []
    skews = clock_skews(view, imp.clock_skew)
    recorded_end = rec.start + rec.ticks * rec.dt
    visible = recorded_end - imp.ingestion_delay
    lo = -math.inf if start is None else float(start)
    hi = min(math.inf if end is None else float(end), visible)
    first = max(int(math.floor((lo - rec.start) / rec.dt)), 0) if math.isfinite(lo) else 0
    last = min(int(math.floor((hi - rec.start) / rec.dt)), rec.ticks - 1)
    if last < first:
        return []
    max_tries = np.ones(view.E)
    for snap in rec.knob_snapshots:
        max_tries = np.maximum(max_tries, snap.retries[:, world] + 1.0)
    trees = [Tree(view, p, max_tries) for p in range(len(topo.endpoints))]
    wanted_comp = topo.components.index(service) if service is not None else None
    found: list[Trace] = []
    # ticks are simulated newest first in chunks that grow (a plain query needs the last tick or two; a search
    # through an hour, a few large chunks), each small enough that its [span positions, requests] arrays stay small
    widest = max(len(tree.nodes) for tree in trees)
    per_tick = float(np.mean([view.tick(k).requests.sum() for k in (first, last)])) * imp.trace_sample
    most = max(1, min(CHUNK_TICKS, int(CELLS / max(widest * per_tick, 1.0))))
    span = min(2, most)
    k = last
    while k >= first and len(found) < limit:
        ticks = list(range(max(k - span + 1, first), k + 1))
        params = Params(view, ticks)
        candidates: list[tuple[float, int, Run, int]] = []
        for p, tree in enumerate(trees):
            if wanted_comp is not None and wanted_comp not in tree.comp:
                continue
            if operation is not None and operation not in tree.names:
                continue
            pos, idx, keys = _sampled(view, ticks, p, imp.trace_sample)
            if not len(keys):
                continue
            arrive = params.wall[pos] + uniform(keys, 0x51A27) * rec.dt
            run = Run(tree, params, pos, keys, arrive, visible)
            ok = run.served & (arrive >= lo) & (arrive <= hi)
            ok &= run.end[tree.root] <= visible               # a trace is queryable once its request ended
            if wanted_comp is not None:
                ok &= run.exists[tree.comp == wanted_comp].any(axis=0)
            if operation is not None:
                named = np.array([n == operation for n in tree.names])
                ok &= run.exists[named].any(axis=0)
            if min_duration is not None:
                ok &= run.end[tree.root] - run.start[tree.root] >= float(min_duration)
            if error is not None:
                erred = (run.exists & (run.status != OK)).any(axis=0)
                ok &= erred if error else ~erred
            for r in np.flatnonzero(ok):
                candidates.append((float(arrive[r]), p, run, int(r)))
        candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
        builders: dict[int, Builder] = {}
        for _, p, run, r in candidates[:limit - len(found)]:
            if p not in builders:
                builders[p] = Builder(run, params, skews)
            found.append(builders[p].trace(r))
        k = ticks[0] - 1
        span = min(2 * span, most)
    return found
