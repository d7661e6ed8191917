"""The `opsworld` command line: templates, validate, simulate, fidelity, bench, faults, inject, calibrate.

Mistakes in what the user gives (a scenario file, an option) end with one clear line on stderr and exit code 2,
never a stack trace.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from opsworld.spec import ScenarioError, load_scenario, templates
from opsworld.spec.loader import template_path
from opsworld.spec.units import UnitError, parse_duration

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="opsworld: an executable world model of production operations.")
# Tables are wide: when the output is not a terminal (a pipe, CI, a file), do not squeeze them to 80 columns.
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _memory_bytes() -> int:
    """Physical memory of this machine (a generous default where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def _load(source: str, overrides: dict | None = None):
    try:
        return load_scenario(source, overrides)
    except ScenarioError as exc:
        _fail(str(exc))


@app.command("templates")
def list_templates(json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the built-in scenario templates."""
    rows = []
    for name in templates():
        sc = load_scenario(name)
        rows.append({"name": name, "components": len(sc.components), "endpoints": len(sc.traffic.endpoints),
                     "base_rate_per_s": sc.traffic.base_rate, "description": sc.description.strip(),
                     "file": str(template_path(name))})
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="built-in templates")
    for col in ("name", "components", "endpoints", "base rate", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], str(r["components"]), str(r["endpoints"]), f"{r['base_rate_per_s']:g}/s",
                      r["description"].splitlines()[0] if r["description"] else "")
    out.print(table)


@app.command()
def validate(file: str = typer.Argument(..., help="scenario YAML file or template name")) -> None:
    """Check a scenario file; exit 2 with one line naming the field and the fix if it is wrong."""
    sc = _load(file)
    kinds: dict[str, int] = {}
    for comp in sc.components.values():
        kinds[comp.kind] = kinds.get(comp.kind, 0) + 1
    parts = ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in sorted(kinds.items()))
    out.print(f"[green]ok[/] {file}: {sc.name}: {parts}, {len(sc.nodes)} nodes, "
              f"{len(sc.traffic.endpoints)} endpoints, {_span(sc.duration)} at {sc.tick:g} s ticks")


@app.command()
def simulate(
    scenario: str = typer.Argument("online-shop", help="template name or scenario YAML file"),
    duration: Optional[str] = typer.Option(None, help="simulated time, e.g. 30m or 6h (default: the scenario's)"),
    seed: int = typer.Option(0, help="random seed; the same seed gives the same episode"),
    worlds: int = typer.Option(16, min=1, max=1_000_000, help="independent worlds simulated side by side"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    plot: Optional[Path] = typer.Option(None, help="write a PNG of rate, error ratio and p99 latency over time"),
) -> None:
    """Simulate a scenario and summarise its entry endpoints and busiest components."""
    from opsworld.engine import Engine
    from opsworld.summary import SUMMARY_FIELDS, recorded_bytes, summarize

    overrides = None
    if duration is not None:
        try:
            parse_duration(duration)
        except UnitError as exc:
            _fail(f"--duration: {exc}")
        overrides = {"duration": duration}
    sc = _load(scenario, overrides)
    engine = Engine(sc, worlds=worlds, seed=seed)
    need = recorded_bytes(engine.topology, worlds, engine.ticks)
    if need > _memory_bytes() // 2:
        _fail(f"--worlds {worlds} over {engine.ticks} ticks needs about {need / 2**30:.1f} GiB to record; "
              f"use fewer worlds or a shorter --duration")
    work = engine.ticks * worlds * len(sc.components)
    if work > 2_000_000 and not json_out:
        with Progress(TextColumn("simulating {task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} ticks"),
                      TimeRemainingColumn(), console=err, transient=True) as bar:
            task = bar.add_task(sc.name, total=engine.ticks)
            trajectory = engine.run(progress=lambda n: bar.advance(task, n), fields=SUMMARY_FIELDS)
    else:
        trajectory = engine.run(fields=SUMMARY_FIELDS)
    summary = summarize(engine.topology, trajectory)
    summary["seed"] = seed
    if plot is not None:
        from opsworld.plot import plot_endpoints

        try:
            summary["plot"] = str(plot_endpoints(engine.topology, trajectory, plot))
        except (OSError, RuntimeError) as exc:
            _fail(f"--plot {plot}: {exc}")
    if json_out:
        print(json.dumps(summary, indent=2))
        return
    _print_summary(summary)


def _fmt(stat: dict, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    mean, se = stat["mean"] * scale, stat["stderr"] * scale
    return f"{mean:.{digits}f}{unit} ± {se:.{digits}f}" if se > 0 else f"{mean:.{digits}f}{unit}"


def _span(seconds: float) -> str:
    """A simulated time span for people: 20 min, 1 h, 1.5 h, 2 d."""
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} d"


def _print_summary(s: dict) -> None:
    span = _span(s["simulated_seconds"])
    table = Table(title=f"{s['scenario']}: entry endpoints ({s['worlds']} worlds x {span}, seed {s['seed']})")
    for col in ("endpoint", "req/s", "errors", "p50", "p99", "within SLO", "target", "ticks in breach"):
        table.add_column(col, justify="left" if col == "endpoint" else "right")
    for e in s["endpoints"]:
        table.add_row(e["endpoint"], _fmt(e["rate_per_s"]), _fmt(e["error_ratio"], 100, 2, "%"),
                      _fmt(e["p50_s"], 1e3, 1, " ms"), _fmt(e["p99_s"], 1e3, 1, " ms"),
                      _fmt(e["slo_attainment"], 100, 3, "%"), f"{e['slo_target'] * 100:g}%",
                      _fmt(e["slo_breached_ticks"], 100, 1, "%"))
    out.print(table)
    busy = Table(title="busiest components")
    for col in ("component", "kind", "req/s", "CPU", "p99", "failed"):
        busy.add_column(col, justify="left" if col in ("component", "kind") else "right")
    for c in s["busiest"]:
        busy.add_row(c["component"], c["kind"], _fmt(c["rate_per_s"]), _fmt(c["cpu_utilisation"], 100, 1, "%"),
                     _fmt(c["p99_s"], 1e3, 1, " ms"), _fmt(c["failed_ratio"], 100, 3, "%"))
    out.print(busy)
    score = s["slo_attainment"]
    out.print(f"[bold]score[/]: {score['mean'] * 100:.3f}% of requests served within their SLO "
              f"(± {score['stderr'] * 100:.3f} over worlds)")
    if "plot" in s:
        out.print(f"plot written to {s['plot']}")


@app.command()
def fidelity(
    scenario: str = typer.Argument("online-shop", help="template name or scenario YAML file"),
    overload: Optional[str] = typer.Option(None, help="component to push past its capacity after the calm phase"),
    factor: float = typer.Option(1.3, min=0.1, max=100.0, help="offered load over capacity while overloaded"),
    calm: str = typer.Option("10m", help="length of the calm phase at base load"),
    seed: int = typer.Option(7, help="random seed for both simulators"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Run the engine and the request-level SimPy reference side by side and compare what they say."""
    from opsworld.reference.compare import compare

    try:
        calm_s = parse_duration(calm)
    except UnitError as exc:
        _fail(f"--calm: {exc}")
    sc = _load(scenario)
    if overload is not None and overload not in sc.components:
        _fail(f"--overload: no component '{overload}' in {scenario}; use one of: {', '.join(sc.components)}")
    with err.status("running the engine and the SimPy reference..."):
        result = compare(sc, overload=overload, factor=factor, calm=calm_s, seed=seed)
    if json_out:
        print(json.dumps(result.as_dict(), indent=2))
        return
    table = Table(title=f"{result.scenario}: engine vs request-level reference (calm phase)")
    for col in ("endpoint", "p50 engine", "p50 ref", "p99 engine", "p99 ref", "errors engine", "errors ref"):
        table.add_column(col, justify="left" if col == "endpoint" else "right")
    for e in result.endpoints:
        table.add_row(e.endpoint, f"{e.engine_p50 * 1e3:.1f} ms", f"{e.reference_p50 * 1e3:.1f} ms",
                      f"{e.engine_p99 * 1e3:.1f} ms", f"{e.reference_p99 * 1e3:.1f} ms",
                      f"{e.engine_error:.2%}", f"{e.reference_error:.2%}")
    out.print(table)
    if overload:
        out.print(f"{overload} at {factor:g}x capacity for {result.hot / 60:g} min: error timelines correlate "
                  f"{result.correlation:.3f}; failed requests engine {result.engine_failed:,.0f}, "
                  f"reference {result.reference_failed:,.0f}")
    for name, ok in result.checks():
        out.print(f"[{'green' if ok else 'red'}]{'pass' if ok else 'FAIL'}[/] {name}")


@app.command()
def bench(
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
    runs: int = typer.Option(5, min=1, max=50, help="timed runs; medians are reported"),
    worlds: int = typer.Option(8192, min=1, max=1_000_000, help="worlds per engine batch"),
    reference_horizon: str = typer.Option("2m", help="simulated time for the SimPy reference run"),
) -> None:
    """Measure engine episodes per second against the request-level reference simulator."""
    from opsworld.bench import run_bench

    try:
        horizon = parse_duration(reference_horizon)
    except UnitError as exc:
        _fail(f"--reference-horizon: {exc}")
    if json_out:
        result = run_bench(runs=runs, worlds=worlds, reference_horizon=horizon)
    else:
        with err.status("benchmarking...") as status:
            result = run_bench(runs=runs, worlds=worlds, reference_horizon=horizon,
                               progress=lambda msg: status.update(msg))
    if json_out:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"opsworld bench ({result['scenario']}, {result['episode']})")
    table.add_column("figure")
    table.add_column("median", justify="right")
    for key in ("episodes_per_s", "reference_episodes_per_s", "speedup_vs_reference", "world_ticks_per_s"):
        value = result[key]
        table.add_row(key, f"{value:,.4g}" if value < 1000 else f"{value:,.0f}")
    out.print(table)


@app.command("faults")
def list_faults(json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the fault catalogue: each failure mode, its class, what it strikes, its parameters and its fixes."""
    from opsworld.faults import CATALOGUE

    rows = [entry.describe() for entry in CATALOGUE.values()]
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"fault catalogue: {len(rows)} failure modes")
    for col in ("name", "class", "strikes", "via", "fixed by", "masked by", "models"):
        table.add_column(col)
    for r in rows:
        fixes = ", ".join(r["fixes"]) or "-"
        strikes = "/".join(r["component_kinds"]) if r["strikes"] == "component" else r["strikes"]
        table.add_row(r["name"], r["class"], strikes, r["via"],
                      fixes, ", ".join(r["masks"]) or "-", r["behaviour"])
    out.print(table)
    out.print("parameters of each: `opsworld faults --json`; try one: `opsworld inject NAME`")


@app.command()
def inject(
    fault: str = typer.Argument(..., help="a catalogue entry (see `opsworld faults`)"),
    target: Optional[str] = typer.Option(None, help="what it strikes (default: the entry's example target)"),
    scenario: Optional[str] = typer.Option(None, help="template or scenario YAML (default: the entry's example)"),
    onset: str = typer.Option("10m", help="when it starts: after the start (10m) or a time of day (02:00)"),
    duration: str = typer.Option("1h", help="simulated time"),
    fix: Optional[str] = typer.Option(None, help="a mitigation ordered during the episode: ACTION[:TARGET]@TIME, "
                                                 "e.g. rollback_deploy@30m"),
    seed: int = typer.Option(0, help="random seed"),
    worlds: int = typer.Option(1, min=1, max=4096, help="worlds (each gets its own ground truth)"),
    json_out: bool = typer.Option(False, "--json", help="print the ground truth of every world as JSON"),
) -> None:
    """Inject a fault from the catalogue, run it beside its counterfactual and print the ground truth."""
    from opsworld.act import MITIGATIONS
    from opsworld.faults import FaultError, Order, entry, run_episode

    try:
        chosen = entry(fault)
        seconds = parse_duration(duration)
        example = chosen.example
        sc = _load(scenario or example.template, {"duration": duration} if scenario else
                   {**example.overrides, "duration": duration})
        params = dict(example.params) if target is None and scenario is None else {}
        made = chosen.make(**{**params, "target": target or example.target, "onset": onset})
        companions = ([entry(n).make(**p) for n, p in example.also] if target is None and scenario is None else [])
        orders = [_order(fix, made, MITIGATIONS, Order)] if fix else []
        ticks = int(seconds // sc.tick)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} ticks"),
                      TimeRemainingColumn(), console=err, transient=True, disable=json_out or ticks < 1000) as bar:
            task = bar.add_task(f"{fault} beside its counterfactual", total=ticks)
            ep = run_episode(sc, [made, *companions], worlds=worlds, seed=seed, ticks=ticks, orders=orders,
                             progress=lambda n: bar.advance(task, n))
    except (FaultError, UnitError, ValueError) as exc:
        _fail(str(exc))
        return
    if json_out:
        print(json.dumps([t.model_dump() for t in ep.truth], indent=2))
        return
    _print_truth(ep.truth[0], sc.name)


def _order(text: str, fault, mitigations: dict, order_type):
    """ACTION[:TARGET]@TIME -> an order; the target defaults to where the fault's own fix acts."""
    if "@" not in text:
        raise ValueError(f"--fix {text!r}: write ACTION[:TARGET]@TIME, e.g. rollback_deploy@30m")
    action, when = text.rsplit("@", 1)
    action, _, target = action.partition(":")
    if action not in mitigations:
        raise ValueError(f"--fix: no mitigation {action!r}; known: {', '.join(mitigations)}")
    if not target:
        from opsworld.faults.ground_truth import fix_target
        target = fix_target(fault, action, None) if action != "renew_certificate" else fault.target
    return order_type(parse_duration(when), action, target or None)


def _actions(fixes) -> str:
    return ", ".join(f"{x.action} {x.target}" if x.target else x.action for x in fixes) or "-"


def _print_truth(truth, name: str) -> None:
    for f in truth.faults:
        roots = ", ".join(f"{p.kind} {p.name}" for p in f.roots) or "-"
        out.print(f"[bold]{f.kind}[/] ({f.fault_class}, via {f.via}) at {_span(f.onset)}: {f.mechanism}")
        out.print(f"  root cause: {roots}")
        fixes, masks = _actions(f.fixes), _actions(f.masks)
        out.print(f"  fixed by: {fixes}; masked by: {masks}"
                  + ("  [yellow](beyond the runbook: page a human)[/]" if f.beyond_runbook else ""))
    table = Table(title=f"{name}: causal chain, read off the engine against its counterfactual")
    for col in ("time", "place", "effect", "reached from"):
        table.add_column(col)
    for link in truth.chain:
        table.add_row(_span(link.time), f"{link.place.kind} {link.place.name}", link.effect, link.via or "-")
    out.print(table)
    imp = truth.impact
    total = sum(imp.requests)
    if imp.start is None:
        out.print("[bold]user impact[/]: none (no tick with more than 1% of requests failed, slow or wrong)")
    else:
        out.print(f"[bold]user impact[/]: from {_span(imp.start)} to {_span(imp.end)}, {imp.total:,.0f} requests "
                  f"failed, slow or wrong ({imp.total / max(total, 1):.1%} of {total:,.0f})")


@app.command()
def calibrate(
    nezha: Path = typer.Option(..., "--nezha", help="folder of the Nezha Online Boutique recordings"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
    worlds: int = typer.Option(4, min=1, max=1024, help="simulated worlds per fault"),
    seed: int = typer.Option(0, help="random seed"),
) -> None:
    """Compare the simulated signatures of the Nezha fault types with the real recordings; exit 1 if any fails."""
    from opsworld.calibration import CalibrationError, calibrate as run_calibration

    try:
        result = run_calibration(nezha, worlds=worlds, seed=seed)
    except CalibrationError as exc:
        _fail(str(exc))
        return
    if json_out:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        out.print(result.table())
        passed = sum(c.passed for c in result.checks)
        out.print(f"[bold]{passed}/{len(result.checks)} signature checks pass[/]")
    if not result.passed:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
