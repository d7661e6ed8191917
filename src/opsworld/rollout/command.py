"""`opsworld rollout`: many episodes on generated worlds, on local processes or a Ray cluster, streamed to Parquet;
`opsworld transitions`: every step of an agent's episodes, for offline RL.

A mistake in the request (no episodes, an unknown agent, an output that cannot be written, a cluster that does not
answer) ends with one line on stderr and exit code 2, and nothing written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from opsworld.spec.units import UnitError, parse_duration

err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _horizon(text: str | None) -> float | None:
    """--horizon as seconds (None: the scenario's); one line for a bad one."""
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except UnitError as exc:
        _fail(f"--horizon: {exc}")
    if not seconds > 0:
        _fail(f"--horizon must be above 0 seconds (got {text})")
    return seconds


def _services(text: str) -> tuple[int, int]:
    """'5-500' (or '20' for exactly 20) -> (5, 500)."""
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        _fail(f"--services: '{text}' is not a range; write MIN-MAX, e.g. 5-500")


def rollout(
    episodes: int = typer.Option(1000, "--episodes", "-n", help="episodes to run (ids 0..N-1)"),
    agent: str = typer.Option("random", help="'random' (a uniformly random valid action per tick), a registered "
                                             "agent (opsworld eval) or module:Class"),
    out: Path = typer.Option(Path("out/rollout"), help="directory for episodes/ (Parquet) and rollout.json"),
    seed: int = typer.Option(0, help="the rollout's seed: worlds, faults, noise and random actions follow from it"),
    batch: int = typer.Option(256, help="episodes per batch: one drawn world, one batched engine"),
    workers: Optional[int] = typer.Option(None, help="local worker processes (default: one per CPU)"),
    horizon: Optional[str] = typer.Option(None, help="episode length, e.g. 10m (default: the scenario's, 1h)"),
    services: str = typer.Option("5-500", help="services in the generated topologies: MIN-MAX"),
    template: Optional[str] = typer.Option(None, help="run a built-in template (opsworld templates) in place of "
                                                      "generated topologies"),
    ray: Optional[str] = typer.Option(None, help="run on a Ray cluster instead: its address (HOST:PORT) or auto"),
    json_out: bool = typer.Option(False, "--json", help="print the run's summary (rollout.json) as JSON"),
) -> None:
    """Run many incident episodes in batches (a generated world per batch, one batched engine each) on local worker
    processes or a Ray cluster, and stream one row per episode to Parquet files in OUT/episodes/."""
    from opsworld.rollout.runner import RolloutError, rollout as run_rollout

    seconds = _horizon(horizon)
    request = dict(episodes=episodes, agent=agent, out=out, seed=seed, batch=batch, workers=workers,
                   horizon=seconds, services=_services(services), template=template, ray=ray)
    bar = None
    if sys.stderr.isatty():
        bar = Progress(TextColumn("rollout"), BarColumn(), MofNCompleteColumn(), TextColumn("episodes"),
                       TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=err, transient=True)
    try:
        if bar is None:
            summary = run_rollout(**request)
        else:
            with bar:
                task = bar.add_task("rollout", total=max(episodes, 1), rate="")

                def progress(done: int, total: int) -> None:
                    speed = bar.tasks[0].speed
                    bar.update(task, completed=done, rate=f"{speed:,.1f} episodes/s" if speed else "")

                summary = run_rollout(**request, progress=progress)
    except RolloutError as exc:
        _fail(str(exc))
    if json_out:
        print(json.dumps(summary, indent=2))
        return
    peak = summary["peak_rss_mib"]
    where = Path(out) / "episodes"
    print(f"wrote {summary['episodes']:,} episodes to {where} ({len(summary['files'])} Parquet files) in "
          f"{summary['wall_seconds']:.1f} s: "
          f"{summary['episodes_per_hour']:,.0f} episodes/h; peak memory {peak['main']:,.0f} MiB (main), "
          f"{peak['workers']:,.0f} MiB (largest worker)")


def transitions(
    episodes: int = typer.Option(256, "--episodes", "-n", help="episodes to record (ids 0..N-1)"),
    agent: str = typer.Option("heuristic-sre", help="the teacher: a registered agent (opsworld eval), module:Class, "
                                                    "a policy file, or 'random' (the rollout's random policy)"),
    out: Path = typer.Option(Path("out/transitions"), help="directory: a Minari datasets root (--format minari), or "
                                                           "steps/ and episodes.parquet (--format parquet)"),
    fmt: str = typer.Option("minari", "--format", help="minari (a Minari dataset; extra offline) or parquet"),
    template: str = typer.Option("online-shop", help="the built-in template every episode runs on"),
    entry: Optional[list[str]] = typer.Option(None, "--fault", "--entry",
                                              help="a catalogue entry to draw incidents from (repeat it; default: "
                                                   "all that fit)"),
    horizon: Optional[str] = typer.Option(None, help="episode length, e.g. 10m (default: the scenario's, 1h)"),
    seed: int = typer.Option(0, help="the same seed, batch, horizon and template as `opsworld rollout --template` "
                                     "record that rollout's episodes"),
    batch: int = typer.Option(256, help="episodes per batched engine (as `opsworld rollout --batch`)"),
    dataset_id: Optional[str] = typer.Option(None, "--dataset-id",
                                             help="Minari dataset id (default: opsworld/TEMPLATE/AGENT-v0)"),
    json_out: bool = typer.Option(False, "--json", help="print the manifest (transitions.json) as JSON"),
) -> None:
    """Record every step of an agent's episodes (observations, actions, rewards, terminations, action masks) for
    offline RL and behaviour cloning, as a Minari dataset or Parquet."""
    from opsworld.rollout.transitions import TransitionsError, record_transitions, transitions_config

    seconds = _horizon(horizon)
    bar = Progress(TextColumn("transitions"), BarColumn(), MofNCompleteColumn(), TextColumn("episodes"),
                   TimeRemainingColumn(), console=err, transient=True)
    try:
        config = transitions_config(template, horizon=seconds, entries=entry or None)
        with bar:
            task = bar.add_task("transitions", total=max(episodes, 1))
            manifest = record_transitions(agent=agent, config=config, episodes=episodes, seed=seed, out=out, fmt=fmt,
                                          batch=batch, dataset_id=dataset_id,
                                          progress=lambda done, _: bar.update(task, completed=done))
    except TransitionsError as exc:
        _fail(str(exc))
    if json_out:
        print(json.dumps(manifest, indent=2))
        return
    steps = episodes * manifest["steps_per_episode"]
    where = (f"Minari dataset {manifest['dataset_id']} in {out} (MINARI_DATASETS_PATH={out})"
             if fmt == "minari" else f"{out / 'steps'} and {out / 'episodes.parquet'}")
    print(f"wrote {episodes:,} episodes, {steps:,} steps of {agent} to {where}")
