"""Summaries of a simulated episode: per entry endpoint and per busiest component, over ticks and worlds.

Everything here reads the truth state, so it is a statement of what happened, not of what a dashboard showed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from opsworld.engine.topology import KINDS, Topology
from opsworld.engine.truth import Trajectory


# The truth fields `summarize` and `plot_endpoints` read: enough to record for a summary, far less than everything.
SUMMARY_FIELDS = ("requests", "failed", "slo_met", "slo_breached", "latency_mean", "latency_var", "latency_third", "offered",
                  "failed_by_cause", "cpu_utilisation", "response_mean", "response_var")


def recorded_bytes(topology: Topology, worlds: int, ticks: int, fields: tuple[str, ...] = SUMMARY_FIELDS) -> int:
    """Memory a trajectory of these fields takes (float32), to refuse a run that cannot fit before starting it."""
    S, P = topology.n_components, len(topology.endpoints)
    per_tick = {"failed_by_cause": 4 * S}
    width = sum(per_tick.get(f, P if f in ("requests", "failed", "slo_met", "slo_breached") or f.startswith("latency")
                             else S)
                for f in fields)
    return 4 * width * worlds * ticks


def _spread(values: np.ndarray) -> dict[str, float]:
    """Mean over worlds and its standard error."""
    values = np.asarray(values, dtype=np.float64)
    err = float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0
    return {"mean": float(values.mean()), "stderr": err}


def summarize(topology: Topology, trajectory: Trajectory, busiest: int = 5) -> dict[str, Any]:
    """Per-endpoint traffic, errors, latency and SLO attainment; the busiest components; over all worlds."""
    tr = trajectory
    seconds = float(tr.time[-1]) if len(tr.time) else 0.0
    requests = tr.requests.sum(axis=0)                                  # [B, P]
    failed = tr.failed.sum(axis=0)
    met = tr.slo_met.sum(axis=0)
    weights = np.maximum(tr.requests, 1e-12)                            # request-weighted latency over ticks
    endpoints = []
    for p, name in enumerate(topology.endpoints):
        w = weights[:, :, p]
        endpoints.append({
            "endpoint": name,
            "service": topology.components[int(topology.endpoint_component[p])],
            "rate_per_s": _spread(requests[:, p] / max(seconds, 1e-9)),
            "error_ratio": _spread(failed[:, p] / np.maximum(requests[:, p], 1.0)),
            "p50_s": _spread((tr.latency_p50[:, :, p] * w).sum(0) / w.sum(0)),
            "p99_s": _spread((tr.latency_p99[:, :, p] * w).sum(0) / w.sum(0)),
            "slo_attainment": _spread(met[:, p] / np.maximum(requests[:, p], 1.0)),
            "slo_breached_ticks": _spread(tr.slo_breached[:, :, p].mean(axis=0)),
            "slo_target": float(topology.endpoint_slo_availability[p]),
        })
    offered = tr.offered.sum(axis=0)                                    # [B, S]
    failed_c = tr.failed_by_cause.sum(axis=(0, 3))
    cpu = tr.cpu_utilisation.mean(axis=0)
    order = np.argsort(-cpu.mean(axis=0), kind="stable")[:busiest]
    components = [{
        "component": topology.components[s],
        "kind": KINDS[int(topology.kind[s])],
        "rate_per_s": _spread(offered[:, s] / max(seconds, 1e-9)),
        "cpu_utilisation": _spread(cpu[:, s]),
        "p99_s": _spread(np.median(tr.response_p99[:, :, s], axis=0)),
        "failed_ratio": _spread(failed_c[:, s] / np.maximum(offered[:, s], 1.0)),
    } for s in order]
    all_requests = requests.sum(axis=1)
    score = met.sum(axis=1) / np.maximum(all_requests, 1.0)
    return {
        "scenario": topology.scenario.name,
        "worlds": int(requests.shape[0]),
        "simulated_seconds": seconds,
        "ticks": int(len(tr.time)),
        "slo_attainment": _spread(score),
        "endpoints": endpoints,
        "busiest": components,
    }
