"""The on-call dashboard drawn from the agent's observation: as text (`render_mode="ansi"`) and as an image
(`render_mode="rgb_array"`).

Both read one world's observation (the `Dict` of `opsworld.envs.gym_env`) and the static names on its axes, nothing
else: the picture shows what the agent sees, never the ground truth. Neither touches the engine or a random number
generator, so rendering an episode does not change it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_TOP = 5            # the most entries a text line lists: the dashboard shows the worst first, not every component


@dataclass(frozen=True)
class Labels:
    """What the dashboard needs beside the observation: the names on its axes and the clock's scale (all static)."""

    scenario: str
    components: tuple[str, ...]     # [S]
    alerts: tuple[str, ...]         # [A]
    signals: tuple[str, ...]        # [F]
    log_signatures: tuple[str, ...]  # [L]
    horizon: float                  # seconds: clock[0] is the elapsed share of it
    change_decay: float             # seconds: changes[s, k] = exp(-age / change_decay)


def ansi(obs: dict[str, np.ndarray], labels: Labels) -> str:
    """The dashboard of one world as text: clock, firing alerts per component, recent changes, last investigations."""
    comps = labels.components
    lines = [_status_line(obs, labels)]

    alerts = obs["alerts"] > 0.5                                      # [S, A]
    firing = np.flatnonzero(alerts.any(axis=1))
    lines.append(f"Firing alerts: {int(alerts.sum())} on {len(firing)} of {len(comps)} components")
    for s in firing:
        names = " ".join(labels.alerts[a] for a in np.flatnonzero(alerts[s]))
        lines.append(f"  {comps[s]:<28} {names}")

    lines.append("Recent changes:")
    changed = []
    for s in range(len(comps)):
        for k, kind in enumerate(("deploy", "config")):
            age = _age(float(obs["changes"][s, k]), labels.change_decay)
            if age is not None:
                changed.append((age, f"  {comps[s]:<28} {kind} {_minutes(age)} ago"))
    lines += [text for _, text in sorted(changed)] or ["  none this episode"]

    signal = np.flatnonzero(obs["query_signal"] > 0.5)
    if len(signal):
        lines.append(f"Last query: {labels.signals[signal[0]]}")
        lines.append("  " + _ranked(obs["query"], comps, "{:.3g}", keep_zeros=True))
    else:
        lines.append("Last query: none yet")

    service = np.flatnonzero(obs["logs_of"] > 0.5)
    if len(service):
        lines.append(f"Last logs: {comps[service[0]]}")
        lines.append("  " + (_ranked(obs["logs"], labels.log_signatures, "{:.0%}") or "no error lines"))
    else:
        lines.append("Last logs: none yet")

    # the observation does not say which service was traced: an all-zero row is "none yet" or "all well below it"
    traces = _ranked(obs["traces"], comps, "{:.3g}")
    lines.append("Last traces: " + ("failures and delay from " + traces if traces else "none, or nothing failing"))
    return "\n".join(lines) + "\n"


def rgb_array(obs: dict[str, np.ndarray], labels: Labels, size: tuple[int, int] = (960, 540)) -> np.ndarray:
    """[H, W, 3] uint8 the dashboard of one world as an image: a heat map of the firing alerts by component, beside it
    a strip of what the last investigations and the change log say of each component, below the last logs."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:        # an optional dependency (the `plot` extra): only the image needs it
        raise ImportError("render_mode='rgb_array' needs matplotlib: pip install 'opsworld[plot]'") from e

    comps, S = labels.components, len(labels.components)
    width, height = size
    dpi = 100
    # no pyplot: a bare Figure on its own Agg canvas keeps no global state between frames or threads
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    small = max(5.0, min(8.0, 160.0 / max(S, 1)))       # label size: fit S component names down the side
    grid = fig.add_gridspec(2, 2, width_ratios=(len(labels.alerts), 5), height_ratios=(6, 1),
                            left=0.2, right=0.98, top=0.9, bottom=0.15, wspace=0.05, hspace=0.8)
    fig.suptitle(_status_line(obs, labels), fontsize=9)

    heat = fig.add_subplot(grid[0, 0])
    heat.imshow(obs["alerts"], cmap="Reds", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")  # [S, A]
    heat.set_yticks(range(S), comps, fontsize=small)
    heat.set_xticks(range(len(labels.alerts)), labels.alerts, fontsize=7, rotation=55, ha="right")
    heat.set_title("firing alerts", fontsize=8)

    # each column on its own scale: ratios and shares are not comparable across signals
    signal = np.flatnonzero(obs["query_signal"] > 0.5)
    query_name = labels.signals[signal[0]] if len(signal) else "query"
    strip = np.stack([_unit(obs["query"]), _unit(obs["traces"]), obs["changes"][:, 0], obs["changes"][:, 1],
                      obs["logs_of"]], axis=1)                                                              # [S, 5]
    side = fig.add_subplot(grid[0, 1], sharey=heat)
    side.imshow(strip, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    side.set_xticks(range(5), [query_name, "traces", "deploy", "config", "logs of"], fontsize=7, rotation=55,
                    ha="right")
    side.tick_params(axis="y", left=False, labelleft=False)
    side.set_title("signals", fontsize=8)

    logs = fig.add_subplot(grid[1, :])
    logs.imshow(obs["logs"][None, :], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto",
                interpolation="nearest")                                                                    # [1, L]
    logs.set_xticks(range(len(labels.log_signatures)), labels.log_signatures, fontsize=5.5, rotation=40, ha="right")
    logs.set_yticks([0], ["logs"], fontsize=small)

    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3]                                                     # [H, W, 3]
    return np.ascontiguousarray(image, dtype=np.uint8)


def _status_line(obs: dict[str, np.ndarray], labels: Labels) -> str:
    """The clock, and what the responder is doing: clock = [elapsed share, busy, paged, last action refused]."""
    share, busy, paged, refused = (float(x) for x in obs["clock"])
    now = share * labels.horizon
    return (f"opsworld on-call | {labels.scenario} | t+{_clock(now)} of {_clock(labels.horizon)} | "
            f"responder {'busy' if busy > 0.5 else 'free'} | paged {'yes' if paged > 0.5 else 'no'}"
            + (" | last action refused" if refused > 0.5 else ""))


def _age(recency: float, decay: float) -> float | None:
    """Seconds since a change from its recency exp(-age / decay); None where the episode has seen none."""
    if recency <= 0.0:
        return None
    return max(-decay * float(np.log(recency)), 0.0)


def _ranked(values: np.ndarray, names: tuple[str, ...], fmt: str, keep_zeros: bool = False) -> str:
    """The largest `_TOP` values with their names, largest first; ties in name order so the text is stable."""
    order = np.argsort(-values, kind="stable")[:_TOP]
    return "  ".join(f"{names[i]} {fmt.format(float(values[i]))}" for i in order if keep_zeros or values[i] > 0)


def _unit(x: np.ndarray) -> np.ndarray:
    """x scaled to [0, 1] by its largest value (all zeros stay zeros)."""
    top = float(x.max(initial=0.0))
    return x / top if top > 0 else np.zeros_like(x)


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m:02d}:{s:02d}"


def _minutes(seconds: float) -> str:
    return "<1m" if seconds < 60 else f"{seconds / 60:.0f}m"
