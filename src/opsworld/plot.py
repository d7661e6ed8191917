"""Plots of an episode: what people would rather look at than read. Needs the `plot` extra (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opsworld.engine.topology import Topology
from opsworld.engine.truth import Trajectory


def plot_endpoints(topology: Topology, trajectory: Trajectory, path: str | Path) -> Path:
    """Request rate, error ratio and p99 latency of every entry endpoint over time (median and 10-90% of worlds)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("plotting needs matplotlib: pip install 'opsworld[plot]'") from exc

    tr = trajectory
    dt = float(tr.time[1] - tr.time[0]) if len(tr.time) > 1 else 1.0
    minutes = tr.time / 60.0
    panels = [
        ("requests / s", tr.requests / dt),
        ("error ratio", tr.failed / np.maximum(tr.requests, 1.0)),
        ("p99 latency (ms)", tr.latency_p99 * 1e3),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 8), sharex=True)
    for ax, (label, data) in zip(axes, panels):
        for p, name in enumerate(topology.endpoints):
            series = data[:, :, p]
            line, = ax.plot(minutes, np.median(series, axis=1), label=name, lw=1.4)
            if series.shape[1] > 1:
                lo, hi = np.percentile(series, [10, 90], axis=1)
                ax.fill_between(minutes, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"{topology.scenario.name}: entry endpoints ({tr.requests.shape[1]} worlds, median and 10-90%)")
    axes[0].legend(fontsize=8, ncol=2, loc="upper right")
    axes[-1].set_xlabel("minutes")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
