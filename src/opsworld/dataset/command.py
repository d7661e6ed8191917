"""`opsworld dataset`: write verifiable incident problems as sharded Parquet (register with
`app.command("dataset")(dataset)` in `opsworld.cli`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from opsworld.dataset.factory import ITEMS_PER_WORLD, SHARD_SIZE, DatasetError, write_dataset


def dataset(
    n: Annotated[int, typer.Option("--n", help="how many items to write")],
    out: Annotated[Path, typer.Option("--out", help="directory for the Parquet shards and dataset.json")],
    seed: Annotated[int, typer.Option(help="random seed: the same n, seed and difficulty give the same files")] = 0,
    difficulty: Annotated[str, typer.Option(
        help="easy, medium, hard (these two also draw fault parameters and imperfect monitoring), or four "
             "numbers in 0..1: red_herrings,hidden_couplings,telemetry_gaps,compound"
    )] = "easy",
    services: Annotated[str, typer.Option(help="components per generated system, fewest-most, e.g. 5-500")] = "5-500",
    template: Annotated[Optional[str], typer.Option(
        help="draw every system from this built-in template instead of generating topologies")] = None,
    per_system: Annotated[int, typer.Option("--per-system", help="items drawn from each generated system")
                          ] = ITEMS_PER_WORLD,
    shard_size: Annotated[int, typer.Option("--shard-size", help="items per Parquet shard")] = SHARD_SIZE,
    workers: Annotated[int, typer.Option(help="worker processes (0: one per core)")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Write N verifiable incident problems (localize, classify, mitigate) as Parquet shards for LLM training; score
    answers with opsworld.verify(item, answer)."""
    err = Console(stderr=True)

    def fail(message: str) -> None:
        err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)

    lo, _, hi = services.partition("-")
    try:
        span = (int(lo), int(hi or lo))
    except ValueError:
        fail(f"--services: {services!r} is not a range of whole numbers; write e.g. 5-500")
    show = not json_out and sys.stderr.isatty()
    bar = Progress(TextColumn("[bold]writing items"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                   console=err, disable=not show, transient=False)
    task = bar.add_task("items", total=n if n > 0 else None, rate="")

    def progress(done: int, total: int) -> None:
        elapsed = bar.tasks[task].elapsed or 0.0
        bar.update(task, completed=done, rate=f"{done / elapsed:,.0f} items/s" if elapsed > 0 else "")

    try:
        # the worker processes are forked before the bar starts its refresh thread
        summary = write_dataset(n, out, seed=seed, difficulty=difficulty, shard_size=shard_size,
                                workers=workers or None, services=span, template=template,
                                items_per_world=per_system, progress=progress, on_start=bar.start)
    except (DatasetError, OSError) as exc:      # an OSError: the disk filled up or the directory went away
        bar.stop()
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return
    bar.stop()
    if json_out:
        print(json.dumps(summary, indent=2))
        return
    seconds = summary["seconds"]
    Console().print(f"[green]wrote[/] {n:,} items in {len(summary['shards'])} shard(s) to {out} in {seconds:.1f} s "
                    f"({n / max(seconds, 1e-9):,.0f} items/s); tasks: "
                    + ", ".join(f"{k} {v:,}" for k, v in summary["tasks"].items()), highlight=False)
