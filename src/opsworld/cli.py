"""The `opsworld` command line: templates, validate, simulate, fidelity, bench, faults, inject, calibrate; over one
simulated episode's observability stack: query, logs, traces, alerts, export, serve; and the agent side: play (be the
on-call engineer), mcp (the runbook as an MCP server), audit (the baselines against the reward) and eval (a suite).

Mistakes in what the user gives (a scenario file, an option) end with one clear line on stderr and exit code 2,
never a stack trace.

Each command imports what it needs inside its function: `opsworld --help` and a one-line error stay fast, and a
command of an optional extra (mcp, train, ray) loads nothing of the others.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional, TypeVar

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from opsworld.spec import Scenario, ScenarioError, load_scenario, templates
from opsworld.spec.loader import template_path
from opsworld.spec.units import UnitError, parse_duration

if TYPE_CHECKING:
    from opsworld.observe.telemetry import Telemetry
    from opsworld.spec.traces import TraceModel

T = TypeVar("T")

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
    report_only: bool = typer.Option(False, "--report-only", help="exit 0 even when a check fails (a report)"),
) -> None:
    """Run the engine and the request-level SimPy reference side by side and compare what they say; exit 1 if a check
    fails (--report-only: 0)."""
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
    failed = not all(ok for _, ok in result.checks())
    if json_out:
        print(json.dumps(result.as_dict(), indent=2))
        if failed and not report_only:
            raise typer.Exit(1)
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
    if failed and not report_only:
        raise typer.Exit(1)


@app.command()
def bench(
    json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
    runs: int = typer.Option(5, min=1, max=50, help="timed runs; medians are reported"),
    worlds: int = typer.Option(8192, min=1, max=1_000_000, help="worlds per engine batch"),
    reference_horizon: str = typer.Option("2m", help="simulated time for the SimPy reference run"),
    telemetry_worlds: int = typer.Option(1024, min=1, max=100_000,
                                         help="worlds per batch with the telemetry on (the store holds the rules' "
                                              "window of every series)"),
    env_worlds: int = typer.Option(1024, min=1, max=100_000, help="worlds of the Gymnasium vector env"),
    rollout_seconds: float = typer.Option(30.0, min=0.0, help="seconds per timed rollout run (0: leave it out)"),
) -> None:
    """Measure engine episodes per second, with and without the telemetry, against the request-level reference, and
    the Gymnasium vector env's agent steps per second under a random policy."""
    from opsworld.bench import run_bench

    try:
        horizon = parse_duration(reference_horizon)
    except UnitError as exc:
        _fail(f"--reference-horizon: {exc}")
    # progress goes to stderr, so --json (stdout) stays one clean object while a person sees signs of life
    with err.status("benchmarking...") as status:
        result = run_bench(runs=runs, worlds=worlds, reference_horizon=horizon, progress=lambda msg: status.update(msg),
                           telemetry_worlds=telemetry_worlds, env_worlds=env_worlds, rollout_seconds=rollout_seconds)
    if json_out:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"opsworld bench ({result['scenario']}, {result['episode']})")
    table.add_column("figure")
    table.add_column("median", justify="right")
    for key in ("episodes_per_s", "episodes_per_s_with_telemetry", "telemetry_share", "reference_episodes_per_s",
                "speedup_vs_reference", "world_ticks_per_s", "env_steps_per_s", "episodes_per_hour_2_cores"):
        value = result[key]
        if value is None:
            continue
        table.add_row(key, f"{value:,.4g}" if value < 1000 else f"{value:,.0f}")
    out.print(table)


@app.command("faults")
def list_faults(
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
    scenario: Optional[str] = typer.Option(None, "--scenario",
                                           help="a template or scenario YAML: what can strike it, and where"),
    paging: bool = typer.Option(False, "--paging", help="with --scenario: run each fault at each place it can "
                                                        "strike and report whether the on-call engineer is paged"),
    duration: str = typer.Option("45m", help="with --paging: simulated time per run (the faults start at 5m)"),
) -> None:
    """List the fault catalogue: each failure mode, its class, what it strikes, its parameters and its fixes; with
    --scenario, where each can strike that system (NAME:TARGET) and why the others cannot; with --paging too,
    whether each pages the on-call engineer under the rules the system runs (alert coverage)."""
    from opsworld.faults import CATALOGUE
    from opsworld.faults.placement import placements, why_not
    from opsworld.faults.ranges import ranges_text

    if paging:
        if scenario is None:
            _fail("--paging needs --scenario FILE (the system whose on-call engineer is paged)")
        _paging(_load(scenario, {"duration": duration}), json_out)
        return
    rows = [entry.describe() for entry in CATALOGUE.values()]
    if scenario is not None:
        sc = _load(scenario)
        for r in rows:
            spots = placements(CATALOGUE[r["name"]], sc)
            r["targets"] = sorted({str(p["target"]) for p in spots if "target" in p})
            r["strikes_here"] = bool(spots)
            r["why_not"] = None if spots else why_not(CATALOGUE[r["name"]], sc)
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    if scenario is not None:
        table = Table(title=f"what can strike {sc.name}: {sum(r['strikes_here'] for r in rows)} of {len(rows)} "
                            f"failure modes (run one: `opsworld play {scenario} --fault NAME:TARGET`)")
        _name_column(table, "name", [r["name"] for r in rows])
        _name_column(table, "fault_class", [r["kind"] for r in rows])
        table.add_column("targets here (or why not)", overflow="fold")
        for r in rows:
            table.add_row(r["name"], r["kind"], ", ".join(r["targets"]) or ("anywhere" if r["strikes_here"] else
                                                                               f"[dim]{r['why_not']}[/]"))
        out.print(table)
        return
    table = Table(title=f"fault catalogue: {len(rows)} failure modes")
    _name_column(table, "name", [r["name"] for r in rows])
    _name_column(table, "fault_class", [r["kind"] for r in rows])     # what `submit` takes
    for col in ("strikes", "via", "fixed by", "masked by", "drawn from", "models"):
        table.add_column(col, overflow="fold")          # wrapped, never cut: fixes are typed too
    for r in rows:
        fixes = ", ".join(r["fixes"]) or "-"
        strikes = "/".join(r["component_kinds"]) if r["strikes"] == "component" else r["strikes"]
        table.add_row(r["name"], r["kind"], strikes, r["via"],
                      fixes, ", ".join(r["masks"]) or "-", ranges_text(CATALOGUE[r["name"]]) or "-", r["behaviour"])
    out.print(table)
    out.print("parameters of each: `opsworld faults --json`; what can strike a system: `opsworld faults --scenario "
              "FILE`; try one: `opsworld inject NAME`; `drawn from`: the ranges a generator's spread draws from")


def _paging(sc: Scenario, json_out: bool) -> None:
    """`opsworld faults --scenario FILE --paging`: the alert coverage table (eval.coverage)."""
    from dataclasses import asdict

    from opsworld.eval.coverage import alert_coverage, paged_share
    from opsworld.observe.alerts.generate import rules_for_scenario

    rows = alert_coverage(sc, progress=lambda line: err.print(f"[dim]{line}[/]"))
    if json_out:
        print(json.dumps([{**asdict(r), "pages": r.pages, "why_not": r.why_not} for r in rows], indent=2))
        return
    faults = [r for r in rows if r.name != "no_fault"]
    table = Table(title=f"who gets paged on {sc.name} (rules: {rules_for_scenario(sc).source}): "
                        f"{sum(r.pages for r in faults)} of {len(faults)} failure modes page in at least half of their "
                        "places "
                        f"({100 * paged_share(rows):.0f}%)")
    _name_column(table, "name", [r.name for r in rows])
    for col in ("places", "hurt users", "paged", "min to page"):
        table.add_column(col, justify="right")
    table.add_column("first page (or why none)", overflow="fold")
    for r in rows:
        why = ", ".join(r.alerts) if r.pages else f"[dim]{r.why_not}[/]"
        table.add_row(r.name, str(r.places), str(r.hurt), str(r.paged),
                      "-" if r.minutes_to_page is None else f"{r.minutes_to_page:.1f}", why)
    out.print(table)
    hurt = sum(r.hurt for r in faults)
    out.print(f"users were hurt at {hurt} places; a page reached the on-call engineer at "
              f"{sum(r.hurt_paged for r in faults)} of them; pages in the no-fault control: {rows[-1].paged}")


def _name_column(table: Table, header: str, names: list[str]) -> None:
    """A column of names a user must type: never cut or wrapped, whatever the terminal's width."""
    table.add_column(header, no_wrap=True, min_width=max([len(header), *map(len, names)]))


@app.command()
def inject(
    fault: str = typer.Argument(..., help="a catalogue entry, NAME[:TARGET] (see `opsworld faults`)"),
    target: Optional[str] = typer.Option(None, help="what it strikes (default: its worked example's target on its "
                                                    "template, else the first place of the role it needs)"),
    scenario: Optional[str] = typer.Option(None, help="template or scenario YAML (default: the entry's template)"),
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
    from opsworld.act.scripted import Order, run_scripted
    from opsworld.faults import FaultError, entry, scenario_for
    from opsworld.faults.placement import FaultSpec, example_fits, parse_fault, place

    try:
        spec = parse_fault(fault)
        spec = FaultSpec(spec.name, target or spec.target)
        chosen = spec.entry
        seconds = parse_duration(duration)
        sc = scenario_for(spec.name, scenario, {"duration": duration})
        made = chosen.make(**{**place(spec, sc), "onset": onset})
        worked = spec.target is None and example_fits(chosen, sc)       # its worked example, companions and all
        companions = [entry(n).make(**p) for n, p in chosen.example.also] if worked else []
        orders = [_order(fix, made, MITIGATIONS, Order)] if fix else []
        ticks = int(seconds // sc.tick)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} ticks"),
                      TimeRemainingColumn(), console=err, transient=True, disable=json_out or ticks < 1000) as bar:
            task = bar.add_task(f"{fault} beside its counterfactual", total=ticks)
            ep = run_scripted(sc, [made, *companions], worlds=worlds, seed=seed, ticks=ticks, orders=orders,
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
        target = fix_target(fault, action, None) if action != "renew_cert" else fault.target
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
    nezha: Path = typer.Option(..., "--nezha", help="folder of Nezha recordings in its rca_data layout (Online "
                                                     "Boutique or Train Ticket; every *-fault_list.json in it)"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
    worlds: int = typer.Option(4, min=1, max=1024, help="simulated worlds per fault"),
    seed: int = typer.Option(0, help="random seed"),
    texture: bool = typer.Option(False, "--texture", help="compare the telemetry's texture instead: per-series "
                                                          "variation, outliers, broken series and lag-1 correlation "
                                                          "of calm minutes, recording beside a no-fault run"),
) -> None:
    """Compare the simulated signatures of the Nezha fault types with the real recordings, pooled per fault type and
    per injection; list the injections left out and why (or, with --texture, the telemetry's texture). Exit 1 if an
    applicable pooled check fails or the system's template is not installed; 2 for unreadable recordings."""
    from opsworld.calibration import CalibrationError, calibrate as run_calibration

    if texture:
        from opsworld.calibration.texture import texture_report
        try:
            report = texture_report(nezha, seed=seed)
        except (CalibrationError, ValueError, OSError) as exc:
            _fail(str(exc).splitlines()[0])
            return
        if json_out:
            print(json.dumps(report.as_dict(), indent=2))
        else:
            for line in report.lines():
                out.print(line, highlight=False, soft_wrap=True)
        if not report.passed:
            raise typer.Exit(1)
        return
    try:
        result = run_calibration(nezha, worlds=worlds, seed=seed)
    except CalibrationError as exc:
        _fail(str(exc))
        return
    if json_out:
        print(json.dumps(result.as_dict(), indent=2))
        if result.unavailable:        # the JSON says it too; a person reading the terminal sees why it exits 1
            err.print(result.unavailable, markup=False, highlight=False, soft_wrap=True)
    else:
        for table in result.tables():
            out.print(table)
        for line in result.summary():
            out.print(line, highlight=False, soft_wrap=True)
    if not result.passed:
        raise typer.Exit(1)


# ---- scenarios from what a real system recorded ------------------------------------------------------------------
import_app = typer.Typer(no_args_is_help=True, help="Make a scenario from what a real system recorded.")
app.add_typer(import_app, name="import")


@import_app.command("traces")
def import_traces(
    path: Path = typer.Argument(..., help="a trace file or a folder of them: OTLP JSON, Jaeger JSON, Zipkin JSON "
                                          "or Nezha CSV"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the scenario YAML here (default: print it)"),
    name: Optional[str] = typer.Option(None, help="the scenario's name (default: the folder's)"),
    fmt: Optional[str] = typer.Option(None, "--format", help="otlp, jaeger, zipkin or nezha (default: detected)"),
    pods: Optional[Path] = typer.Option(None, "--pods", help="a folder of per-pod files (Nezha's metric/): services "
                                                             "running beside the traced ones (default: a sibling "
                                                             "metric/ folder of a Nezha trace/ folder)"),
    check: bool = typer.Option(False, "--check", help="simulate the scenario and compare its calls per request and "
                                                      "median latencies with the traces' (a table on stderr)"),
) -> None:
    """A scenario from recorded traces: services, endpoints, the call graph per endpoint with call ratios, rates,
    service times, parallel calls and retries, measured; what traces cannot show, assumed and said in comments."""
    from opsworld.spec.traces import TraceFormatError, build, read_spans, service_of_pod

    try:
        spans = read_spans(path, fmt)
    except TraceFormatError as exc:
        _error(str(exc))
    if pods is None and path.is_dir() and path.name == "trace" and (path.parent / "metric").is_dir():
        pods = path.parent / "metric"
    listed = None
    if pods is not None:
        if not pods.is_dir():
            _error(f"--pods {pods}: no such folder")
        listed = sorted({service_of_pod(f.name.split("_")[0]) for f in pods.iterdir()
                         if f.name.endswith("_metric.csv")})
    base = path.parent.name if path.name == "trace" else path.stem
    try:
        model = build(spans, name=name or base, source=str(path), pods=listed)
    except ValueError as exc:
        _error(str(exc))
    text = model.yaml()
    try:
        scenario = load_scenario(yaml.safe_load(text))
    except ScenarioError as exc:        # a bug of the importer, not the user's: say what and where
        _error(f"the imported scenario does not validate: {exc}")
    if out is None:
        print(text, end="")
    else:
        try:
            out.write_text(text)
        except OSError as exc:
            _error(f"--out {out}: cannot write it ({exc.strerror})")
        err.print(f"{out}: {len(model.services)} services, {len(model.endpoints)} endpoints from {model.spans:,} "
                  f"spans ({model.seconds / 60:.0f} recorded minutes); check it with `opsworld validate {out}`")
    if check:
        _import_check(model, scenario)


def _import_check(model: "TraceModel", scenario: Scenario) -> None:
    """The imported scenario, simulated, beside the traces (calibration.imported), as a table on stderr."""
    from opsworld.calibration.imported import TOLERANCE, agreement_share, check_import

    rows = check_import(model, scenario)
    table = Table(title=f"the imported model beside its traces: {agreement_share(rows):.0%} of {len(rows)} figures "
                        f"within {TOLERANCE:.0%}")
    for col in ("figure", "where", "traces", "model", "model/traces"):
        table.add_column(col, overflow="fold")
    for r in rows:
        fmt = (lambda x: f"{x:.3g}") if r.what == "calls" else (lambda x: f"{x * 1e3:.3g}ms")
        table.add_row(r.what, r.name, fmt(r.traces), fmt(r.model),
                      f"{r.ratio:.2f}" if r.agrees else f"[red]{r.ratio:.2f}[/]")
    err.print(table)


# ---- the observability stack of one episode: query, logs, traces, alerts, export, serve ---------------------------
_EPISODE_HELP = "an episode YAML, a scenario YAML or a template name"


def _error(message: str) -> NoReturn:
    """`_fail` for messages that quote what the user typed or a query: printed as is (no markup, no emoji codes)."""
    err.print("[bold red]error:[/] ", end="")
    err.print(message, markup=False, emoji=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _seed_option() -> Any:
    return typer.Option(None, help="random seed (default: the episode's, else 0)")


def _duration_option() -> Any:
    return typer.Option(None, help="simulated time, e.g. 1h (default: the episode's, else the scenario's)")


def _fault_option() -> Any:
    return typer.Option(None, "--fault", help="add a catalogue fault, NAME[:TARGET] (repeatable; without a target, "
                                              "its worked example on its template, else a place of the role it "
                                              "needs)")


def _world_option() -> Any:
    return typer.Option(0, min=0, max=4095, help="which world of the batch to look at")


def _fault_spec(text: str, scenario: Any) -> dict[str, Any]:
    """NAME[:TARGET] -> an episode's fault mapping on `scenario`: on the entry's own template without a target, its
    worked example (target and parameters), as `opsworld inject` uses it; elsewhere, or with a target, the place of
    the role it needs (`faults.placement`)."""
    from opsworld.faults import FaultError
    from opsworld.faults.placement import parse_fault, place

    try:
        spec = parse_fault(text)
        return {"fault": spec.name, **place(spec, scenario)}
    except FaultError as exc:
        _error(f"--fault {text}: {exc}")


def _telemetry(source: str, seed: Optional[int], duration: Optional[str], faults: Optional[list[str]], world: int,
               text: bool = True) -> Telemetry:
    """Run an episode (with a progress bar on stderr) with enough worlds to hold `world`; one-line errors."""
    from opsworld.observe.episode import EpisodeError, load_episode

    try:
        episode = load_episode(source, seed=seed, duration=duration)
        if faults:
            scenario, _ = episode.load()
            extra = [_fault_spec(f, scenario) for f in faults]
            episode = load_episode(source, seed=seed, duration=duration, faults=[*episode.faults, *extra])
        scenario, _ = episode.load()
    except EpisodeError as exc:
        _error(str(exc))
    ticks = int(math.ceil(scenario.duration / scenario.tick - 1e-9))
    with Progress(TextColumn("simulating {task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} ticks"), TimeRemainingColumn(), console=err,
                  transient=True) as bar:
        task = bar.add_task(scenario.name, total=ticks)
        return episode.run(worlds=world + 1, text=text, progress=lambda n: bar.advance(task, n))


def _when(text: str, telemetry: Telemetry, what: str) -> float:
    """A time option: after the start (`45m`, `1h30m`) or absolute (Unix seconds, RFC 3339) -> Unix seconds."""
    from opsworld.observe.serve import parse_time

    if text and (text[0].isdigit() and text.replace(".", "", 1).isdigit() or re.match(r"\d{4}-\d\d-\d\dT", text)):
        try:
            return parse_time(text)
        except ValueError as exc:
            _error(f"{what}: {exc}")
    try:
        return telemetry.engine.scenario.traffic.start + parse_duration(text)
    except UnitError as exc:
        _error(f"{what}: {text!r} is neither a time after the start (45m) nor Unix seconds nor RFC 3339 ({exc})")


def _tools(call: Callable[[], T], world: int) -> T:
    """Run a query of the tools; their failures as one line."""
    from opsworld.observe.promql import PromQLError
    from opsworld.observe.telemetry import ToolsUnavailable

    try:
        return call()
    except PromQLError as exc:
        _error(str(exc))
    except ToolsUnavailable as exc:
        _error(f"world {world}: the monitoring cannot be reached at the end of the episode ({exc})")


def _series_name(labels: dict) -> str:
    """`name{a="1", b="2"}` as Prometheus prints a series."""
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    name = labels.get("__name__", "")
    return f"{name}{{{rest}}}" if rest or not name else name


def _clock(telemetry: Telemetry, at: float) -> str:
    """A time as `+45m (08:45:00)`: after the start, and the wall clock in UTC."""
    from datetime import datetime, timezone

    since = at - telemetry.engine.scenario.traffic.start
    wall = datetime.fromtimestamp(at, tz=timezone.utc).strftime("%H:%M:%S")
    h, rest = divmod(round(abs(since)), 3600)
    m, sec = divmod(rest, 60)
    offset = (f"{h}h{m:02d}m" if h else f"{m}m" if m else "") + (f"{sec:02d}s" if sec or not (h or m) else "")
    return f"{'+' if since >= 0 else '-'}{offset} ({wall})"


@app.command()
def query(
    promql: str = typer.Argument(..., metavar="PROMQL", help="a PromQL expression"),
    episode: str = typer.Argument(..., metavar="EPISODE_OR_SCENARIO", help=_EPISODE_HELP),
    at: Optional[str] = typer.Option(None, help="when: after the start (45m) or Unix / RFC 3339 (default: the end)"),
    range_: Optional[str] = typer.Option(None, "--range", help="a range query: START, END and STEP joined by colons, "
                                                               "e.g. 30m:1h:1m or ::1m (START and END as for --at; "
                                                               "empty: the episode's)"),
    json_out: bool = typer.Option(False, "--json", help="print the result as Prometheus' API `data` JSON"),
    seed: Optional[int] = _seed_option(), duration: Optional[str] = _duration_option(),
    fault: Optional[list[str]] = _fault_option(), world: int = _world_option(),
) -> None:
    """Run an episode and evaluate a PromQL query on its metrics, as Prometheus would answer it."""
    from opsworld.observe.promql import PromQLError, parse
    from opsworld.observe.serve import matrix_json, vector_json

    try:
        parse(promql)                     # a typo is reported before the episode is simulated
    except PromQLError as exc:
        _error(str(exc))
    if at is not None and range_ is not None:
        _error("--at and --range exclude each other: --at is an instant query, --range a range query")
    telemetry = _telemetry(episode, seed, duration, fault, world, text=False)
    if range_ is None:
        when = telemetry.now if at is None else _when(at, telemetry, "--at")
        data = vector_json(_tools(lambda: telemetry.query(promql, world, when), world), when)
    else:
        start, end, step = _range(range_, telemetry)
        data = matrix_json(_tools(lambda: telemetry.query_range(promql, start, end, step, world), world))
    if json_out:
        print(json.dumps(data, indent=2))
        return
    _print_result(promql, data, telemetry, world)


_RFC3339 = r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d+)?(?:[Zz]|[+-]\d\d:\d\d)"


def _range(text: str, telemetry: Telemetry) -> tuple[float, float, float]:
    """START:END:STEP -> Unix seconds and step seconds (RFC 3339 times keep their own colons)."""
    from opsworld.observe.serve import parse_duration as step_seconds

    match = re.fullmatch(rf"({_RFC3339}|[^:]*):({_RFC3339}|[^:]*):([^:]+)", text)
    if match is None:
        _error(f"--range {text!r}: write START:END:STEP, e.g. 30m:1h:1m or ::30s for the whole episode")
    start = _when(match[1], telemetry, "--range START") if match[1] else telemetry.start
    end = _when(match[2], telemetry, "--range END") if match[2] else telemetry.now
    try:
        step = step_seconds(match[3])
    except ValueError as exc:
        _error(f"--range STEP: {exc}")
    if step <= 0:
        _error(f"--range STEP: must be above 0, got {match[3]!r}")
    if end < start:
        _error("--range: END is before START")
    if (end - start) / step > 11_000:
        _error(f"--range: {(end - start) / step:,.0f} steps is over Prometheus' 11,000; use a longer STEP")
    return start, end, step


def _print_result(promql: str, data: dict, telemetry: Telemetry, world: int) -> None:
    kind, result = data["resultType"], data["result"]
    if kind == "scalar":
        out.print(f"scalar at {_clock(telemetry, result[0])}: {result[1]}", highlight=False)
        return
    if not result:
        out.print(f"no series for {promql} in world {world}", highlight=False, markup=False, emoji=False)
        return
    if kind == "vector":
        out.print(f"{promql} at {_clock(telemetry, result[0]['value'][0])}", highlight=False, markup=False,
                  emoji=False)
        table = Table()
        table.add_column("series", overflow="fold")
        table.add_column("value", justify="right")
        for r in result:
            table.add_row(Text(_series_name(r["metric"])), r["value"][1])
        out.print(table)
        return
    first, last = result[0]["values"][0][0], result[0]["values"][-1][0]
    out.print(f"{promql} from {_clock(telemetry, first)} to {_clock(telemetry, last)}", highlight=False, markup=False,
              emoji=False)
    table = Table()
    table.add_column("series", overflow="fold")
    for col in ("points", "min", "mean", "max", "last"):
        table.add_column(col, justify="right")
    for r in result:
        values = [float(v) for _, v in r["values"]]
        finite = [v for v in values if math.isfinite(v)] or [math.nan]
        table.add_row(Text(_series_name(r["metric"])), str(len(values)), f"{min(finite):.6g}",
                      f"{sum(finite) / len(finite):.6g}", f"{max(finite):.6g}", r["values"][-1][1])
    out.print(table)
    out.print("every point: --json", highlight=False)


@app.command()
def logs(
    episode: str = typer.Argument(..., metavar="EPISODE_OR_SCENARIO", help=_EPISODE_HELP),
    query_: Optional[str] = typer.Option(None, "--query", help='a LogQL-style query, e.g. {service="cartservice"} '
                                                               '|= "error"'),
    service: Optional[str] = typer.Option(None, help="only this service's lines"),
    level: Optional[str] = typer.Option(None, help="only lines of this level (e.g. error)"),
    since: Optional[str] = typer.Option(None, help="only the last part of the episode, e.g. 10m"),
    limit: int = typer.Option(100, min=1, max=1_000_000, help="the last this many lines"),
    json_out: bool = typer.Option(False, "--json", help="print the lines as a JSON list, newest first"),
    seed: Optional[int] = _seed_option(), duration: Optional[str] = _duration_option(),
    fault: Optional[list[str]] = _fault_option(), world: int = _world_option(),
) -> None:
    """Run an episode and print its log lines, as a log search would show them."""
    from opsworld.observe.logs import LogQueryError, parse_logql

    if query_ is not None and query_.strip():
        try:
            parse_logql(query_)           # a typo is reported before the episode is simulated
        except LogQueryError as exc:
            _error(f"--query: {exc}")
    window = _seconds(since, "--since")
    telemetry = _telemetry(episode, seed, duration, fault, world)
    filters = _filters(query=query_, service=service, level=level, limit=limit,
                       start=None if window is None else telemetry.now - window)
    try:
        lines = _tools(lambda: telemetry.logs(world, **filters), world)
    except (LogQueryError, ValueError) as exc:
        _error(str(exc))
    if json_out:
        from opsworld.observe.serve import log_json

        print(json.dumps([log_json(line) for line in lines], indent=2))
        return
    for line in reversed(lines):          # the newest `limit` lines, printed oldest first as `tail` does
        out.print(str(line), highlight=False, markup=False, emoji=False, soft_wrap=True)
    if not lines:
        err.print("[yellow]no log lines match[/]")


@app.command()
def traces(
    episode: str = typer.Argument(..., metavar="EPISODE_OR_SCENARIO", help=_EPISODE_HELP),
    service: Optional[str] = typer.Option(None, help="traces through this service"),
    operation: Optional[str] = typer.Option(None, help="traces with this operation (span name)"),
    min_duration: Optional[str] = typer.Option(None, help="traces at least this long, e.g. 500ms"),
    error: bool = typer.Option(False, "--error", help="only traces with a failed span"),
    limit: int = typer.Option(10, min=1, max=10_000, help="at most this many traces"),
    json_out: bool = typer.Option(False, "--json", help="print the traces (every span) as a JSON list"),
    seed: Optional[int] = _seed_option(), duration: Optional[str] = _duration_option(),
    fault: Optional[list[str]] = _fault_option(), world: int = _world_option(),
) -> None:
    """Run an episode and print sampled traces as span trees."""
    shortest = _seconds(min_duration, "--min-duration")
    telemetry = _telemetry(episode, seed, duration, fault, world)
    filters = _filters(service=service, operation=operation, min_duration=shortest, error=error or None,
                       limit=limit)
    try:
        found = _tools(lambda: telemetry.traces(world, **filters), world)
    except ValueError as exc:
        _error(str(exc))
    if json_out:
        from opsworld.observe.serve import trace_json

        print(json.dumps([trace_json(t) for t in found], indent=2))
        return
    for trace in found:
        out.print(trace.render(), highlight=False, markup=False, emoji=False, soft_wrap=True)
        out.print()
    if not found:
        err.print("[yellow]no traces match[/]")


def _seconds(text: Optional[str], what: str) -> Optional[float]:
    """A duration option in seconds (None when not given); a bad one ends with one line naming the option."""
    if text is None:
        return None
    try:
        return parse_duration(text)
    except UnitError as exc:
        _error(f"{what}: {exc}")


def _filters(**given: Any) -> dict[str, Any]:
    """Only the filters given, so that the query functions keep their own defaults."""
    return {k: v for k, v in given.items() if v is not None}


@app.command()
def alerts(
    episode: str = typer.Argument(..., metavar="EPISODE_OR_SCENARIO", help=_EPISODE_HELP),
    json_out: bool = typer.Option(False, "--json", help="print `/api/v1/alerts` data and the pages as JSON"),
    seed: Optional[int] = _seed_option(), duration: Optional[str] = _duration_option(),
    fault: Optional[list[str]] = _fault_option(), world: int = _world_option(),
) -> None:
    """Run an episode and print the alerts pending or firing at its end, and the pages sent during it."""
    from opsworld.observe.serve import jsonable

    telemetry = _telemetry(episode, seed, duration, fault, world, text=False)
    active = _tools(lambda: telemetry.alerts(world), world)
    pages = telemetry.pages(world)
    if json_out:
        data = telemetry.evaluator.alerts_json(world)["data"]["alerts"] if telemetry.evaluator is not None else []
        print(json.dumps({"alerts": data, "pages": [jsonable(p) for p in pages]}, indent=2))
        return
    if telemetry.evaluator is None:
        out.print(f"[yellow]no alerting rules are in force[/] for {telemetry.engine.scenario.name}")
    table = Table(title=f"alerts at the end ({_clock(telemetry, telemetry.now)}), world {world}",
                  title_justify="left")
    for col in ("state", "alert", "labels", "since", "value", "summary"):
        table.add_column(col, overflow="fold")
    for a in active:
        labels = ", ".join(f"{k}={v}" for k, v in a.labels.items() if k != "alertname")
        table.add_row(Text(a.state, style="red" if a.state == "firing" else "yellow"), Text(a.name), Text(labels),
                      _clock(telemetry, a.active_at), f"{a.value:.4g}", Text(a.annotations.get("summary", "")))
    out.print(table if active else "[green]no alert pending or firing at the end[/]")
    sent = Table(title="pages sent", title_justify="left")
    for col in ("time", "receiver", "status", "group", "alerts"):
        sent.add_column(col, overflow="fold")
    for p in pages:
        sent.add_row(_clock(telemetry, p.time), Text(p.receiver), p.status,
                     Text(", ".join(f"{k}={v}" for k, v in p.group_labels.items())),
                     Text(", ".join(sorted({a.labels.get("alertname", "?") for a in p.alerts}))
                          + f" ({len(p.alerts)})"))
    out.print(sent if pages else "no pages sent")


@app.command("export")
def export_episode(
    episode: str = typer.Argument(..., metavar="EPISODE_OR_SCENARIO", help=_EPISODE_HELP),
    format_: list[str] = typer.Option(..., "--format", help="openmetrics, otlp or parquet (repeatable)"),
    out_dir: Path = typer.Option(..., "--out", help="folder to write into (created)"),
    seed: Optional[int] = _seed_option(), duration: Optional[str] = _duration_option(),
    fault: Optional[list[str]] = _fault_option(), world: int = _world_option(),
) -> None:
    """Run an episode and write its telemetry as files other tools read (promtool, OTLP collectors, DuckDB)."""
    from opsworld.observe.export.files import FORMATS, export

    formats = [f.strip() for text in format_ for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        _error(f"--format {', '.join(unknown) or '(none)'}: use {', '.join(FORMATS)}")
    telemetry = _telemetry(episode, seed, duration, fault, world)
    try:
        written = _tools(lambda: export(telemetry, world, out_dir, formats), world)
    except OSError as exc:
        _error(f"--out {out_dir}: {exc.strerror or exc}")
    for path in written:
        out.print(f"wrote {path} ({path.stat().st_size:,} bytes)", highlight=False, markup=False)


@app.command()
def serve(
    episode: str = typer.Argument(..., metavar="EPISODE_OR_SCENARIO", help=_EPISODE_HELP),
    port: int = typer.Option(9090, min=0, max=65535, help="TCP port (0: any free one)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0 to reach it from a container)"),
    seed: Optional[int] = _seed_option(), duration: Optional[str] = _duration_option(),
    fault: Optional[list[str]] = _fault_option(), world: int = _world_option(),
) -> None:
    """Run an episode, then serve it as a Prometheus HTTP API (plus logs, traces, changes) until Ctrl-C."""
    import errno

    from opsworld.observe.alerts.wire import rfc3339
    from opsworld.observe.serve import PrometheusAPI, PrometheusServer

    # bind first: a taken port is reported at once, not after the minutes the simulation may take
    try:
        server = PrometheusServer((host, port))
    except OSError as exc:
        fix = ("use another --port, or --port 0 for any free one" if exc.errno in (errno.EADDRINUSE, errno.EACCES)
               else "check --host and --port")
        _error(f"cannot listen on {host}:{port}: {exc.strerror or exc}; {fix}")
    try:
        telemetry = _telemetry(episode, seed, duration, fault, world)
        server.api = PrometheusAPI(telemetry, world)
        url = server.url
        first, last = rfc3339(telemetry.start), rfc3339(telemetry.now)
        out.print(f"[bold]serving[/] {telemetry.engine.scenario.name} (world {world}) as Prometheus at {url}",
                  highlight=False)
        out.print(f"  episode: {first} to {last} (set this absolute time range in Grafana)", highlight=False)
        out.print(f"  Grafana: add a Prometheus data source with URL {url} (from a container: run with --host "
                  f"0.0.0.0 and use http://host.docker.internal:{server.server_address[1]})", highlight=False,
                  soft_wrap=True)
        out.print(f"  promtool query instant {url} 'sum by (service) (rate(http_server_requests_total[5m]))' "
                  f"--time={last}", highlight=False, markup=False, soft_wrap=True)
        out.print(f"  curl '{url}/api/v1/alerts'   logs: {url}/api/v1/logs   traces: {url}/api/v1/traces   "
                  f"changes: {url}/api/v1/changes", highlight=False, markup=False, soft_wrap=True)
        out.print("  Ctrl-C stops it", highlight=False)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            out.print("stopped")
    finally:
        server.server_close()


# ---- one incident for an agent or a person: mcp, play ---------------------------------------------------------------
def _scenario_for(scenario: Optional[str], faults: Optional[list[str]], seed: Optional[int] = None) -> Any:
    """The scenario asked for, else the first fault's own template, else the system the seed draws (any template or
    a generated system; online-shop without a seed); a fault the catalogue does not have ends with one line
    (exit 2)."""
    from opsworld.envs.worlds import system_for_seed
    from opsworld.faults import FaultError
    from opsworld.faults.placement import parse_fault

    specs = []
    for text in faults or []:
        try:
            specs.append(parse_fault(text))
        except FaultError as exc:
            _error(f"--fault {text}: {exc}")
    if scenario or specs:
        return scenario or specs[0].entry.example.template
    return system_for_seed(seed) if seed is not None else "online-shop"


def _incident(scenario: Any, seed: int, faults: Optional[list[str]], horizon: Optional[str], difficulty: str):
    """A ToolSession from the command line's options; mistakes end with one line (exit 2). Without a scenario, the
    fault's own template (or the system the seed draws)."""
    from opsworld.envs.tools import ToolSession
    from opsworld.faults import FaultError

    seconds = _seconds(horizon, "--horizon")
    try:
        return ToolSession(scenario, seed=seed, fault=faults or None, horizon=seconds, difficulty=difficulty)
    except (ScenarioError, FaultError, ValueError) as exc:
        _error(str(exc).splitlines()[0])


def _difficulty_option(default: str = "realistic") -> Any:
    return typer.Option(default, "--difficulty", help="easy (the catalogue as published: preset parameters, alerts "
                                                      "as tuned, a clean change log), realistic (what on-call meets: "
                                                      "drawn parameters and load, missing and mis-tuned alerts, a "
                                                      "busy change log that may lack the culprit, now and then two "
                                                      "faults) or hard (docs/difficulty.md)")


def _difficulty(name: str) -> str:
    """The difficulty's name, checked (exit 2 with one line naming the levels)."""
    from opsworld.envs.difficulty import level
    try:
        level(name)
    except ValueError as exc:
        _error(f"--difficulty: {exc}")
    return name


_FAULTS_HELP = ("a catalogue entry, NAME[:TARGET]; repeat it to draw from several (default: drawn from the seed among "
                "those that can strike the scenario)")


_SCENARIO_HELP = "template or scenario YAML (default: the fault's template, else online-shop)"


@app.command("mcp")
def mcp_server(
    scenario: Optional[str] = typer.Option(None, help=_SCENARIO_HELP),
    seed: int = typer.Option(0, help="random seed: which system (without a scenario or fault), which incident, when, "
                                     "and the world's noise"),
    fault: Optional[list[str]] = typer.Option(None, "--fault", help=_FAULTS_HELP),
    horizon: Optional[str] = typer.Option(None, help="episode length, e.g. 1h (default: the scenario's)"),
    difficulty: str = _difficulty_option(),
    next_incident: bool = typer.Option(True, "--next-incident/--one-incident",
                                       help="offer `new_incident`: once an episode is over, start the next one on "
                                            "the same scenario in the same process"),
) -> None:
    """Serve an incident as an MCP server on stdio: the runbook's actions as tools, `score` (text and structured),
    `new_incident`; the service map, runbook and alerting rules as resources; an `on_call` prompt."""
    try:
        from opsworld.envs.mcp_server import make_server  # noqa: F401  (the optional `mcp` extra)
    except ImportError:
        _fail("the MCP server needs the `mcp` package: pip install 'opsworld[mcp]'")
    from opsworld.envs.mcp_server import serve_mcp

    chosen = _scenario_for(scenario, fault, seed)
    session = _incident(chosen, seed, fault, horizon, _difficulty(difficulty))
    serve_mcp(session=session, scenario=chosen, next_incident=next_incident)


@app.command()
def play(
    scenario: Optional[str] = typer.Argument(None, help=_SCENARIO_HELP),
    seed: int = typer.Option(0, help="random seed: which system (without a scenario or fault), which incident, when, "
                                     "and the world's noise"),
    fault: Optional[list[str]] = typer.Option(None, "--fault", help=_FAULTS_HELP),
    horizon: Optional[str] = typer.Option(None, help="episode length, e.g. 1h (default: the scenario's)"),
    difficulty: str = _difficulty_option(),
    watch: Optional[str] = typer.Option(None, "--watch", metavar="AGENT",
                                        help="watch an agent (registered name, module:Class or a policy .pt file) "
                                             "handle the incident instead"),
) -> None:
    """Be the on-call engineer: read the pages, type runbook actions, submit a diagnosis, get scored."""
    from opsworld.act.runbook import ActionError

    chosen = _scenario_for(scenario, fault, seed)
    if watch is not None:
        _watch(watch, chosen, seed, fault, horizon, _difficulty(difficulty))
        return
    session = _incident(chosen, seed, fault, horizon, _difficulty(difficulty))
    out.print(session.pages_text(), markup=False, highlight=False)
    service = next(iter(session.scenario.components))
    out.print("Type runbook actions, e.g.  query_metrics promql='sum by (service) (rate(http_server_requests_total"
              f"[5m]))'  or  read_logs service={service}  or JSON {{\"name\": ..., \"args\": {{...}}}}.  `help` "
              "lists them, `help NAME` shows one, `quit` hands over with no diagnosis.", markup=False,
              highlight=False, soft_wrap=True)
    while not session.done:
        try:
            line = input(f"[{session.clock()}] oncall> ")
        except EOFError:
            line = "quit"
        line = line.strip()
        if not line:
            continue
        if line in ("quit", "exit"):
            session.hand_over()
            break
        if line == "help" or line.startswith("help "):
            _play_help(session, line[4:].strip())
            continue
        try:
            name, args = _play_line(line)
            session.check(name, args)         # a typo at the prompt costs no simulated time
        except (ValueError, ActionError) as exc:
            err.print(f"error: {exc} (no time passed)", markup=False, highlight=False, soft_wrap=True)
            continue
        result = session.call(name, args)
        if result.error:
            err.print(f"error: {result.text}", markup=False, highlight=False, soft_wrap=True)
        elif name != "submit":
            out.print(result.text, markup=False, highlight=False, soft_wrap=True)
    _print_score(session.report())


def _watch(agent: str, scenario: Any, seed: int, fault: Optional[list[str]], horizon: Optional[str],
           difficulty: str) -> None:
    """`play --watch`: the agent's actions and the alerts as they come, then the score."""
    from opsworld.agents import AgentError
    from opsworld.agents.watch import watch
    from opsworld.faults import FaultError
    from opsworld.score.report import ScoreReport

    seconds = _seconds(horizon, "--horizon")
    try:
        report = watch(agent, scenario, seed, fault, seconds, difficulty=difficulty,
                       say=lambda line: out.print(line, markup=False, highlight=False, soft_wrap=True))
    except (AgentError, ScenarioError, FaultError, ValueError) as exc:
        _error(str(exc).splitlines()[0])
    _print_score(ScoreReport.model_validate(report))


def _play_line(line: str) -> tuple[str, dict[str, Any]]:
    """`NAME key=value ...` (values may be quoted; bare values fill the required parameters in order) or JSON
    `{"name": ..., "args": {...}}` -> (name, args). Raises ValueError (one line) for text it cannot read."""
    import shlex

    from opsworld.act.runbook import ACTIONS

    if line.startswith("{"):
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ValueError('JSON calls look like {"name": "read_logs", "args": {"service": "frontend"}}')
        args = data.get("args", data.get("arguments")) or {}
        if not isinstance(args, dict):
            raise ValueError('"args" must be an object of named values')
        return data["name"], args
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise ValueError(f"cannot read that line: {exc} (quote values with spaces)") from None
    name, rest = words[0], words[1:]
    action = ACTIONS.get(name)
    if action is None:             # let the runbook say what is known
        return name, {}
    types_ = {p.name: p.type for p in action.params}
    args: dict[str, Any] = {}
    bare: list[str] = []
    for word in rest:
        key, eq, value = word.partition("=")
        if eq and key in types_:
            args[key] = _play_value(types_[key], value)
        else:
            bare.append(word)
    free = [p for p in action.params if p.name not in args]
    if len(bare) > len(free):
        raise ValueError(f"{name} takes {', '.join(p.name for p in action.params) or 'no arguments'}; "
                         f"too many values: {' '.join(bare)}")
    for p, word in zip(free, bare):
        args[p.name] = _play_value(p.type, word)
    return name, args


def _play_value(kind: str, text: str) -> Any:
    """A typed value from the command line: numbers for counts and rates, lists for components, else the text."""
    if kind in ("number", "integer"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text                  # the runbook refuses it with its own message
    if kind in ("components", "chain"):
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(f"not a JSON list: {text}") from None
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _play_help(session: Any, name: str) -> None:
    from opsworld.act.runbook import ACTIONS

    tools = {t["name"]: t for t in session.tools()}
    if name:
        tool = tools.get(name)
        if tool is None:
            err.print(f"error: no action {name!r}; `help` lists them", markup=False, highlight=False)
            return
        out.print(f"{name}: {tool['description']}", markup=False, highlight=False, soft_wrap=True)
        schema = tool["input_schema"]
        for pname, prop in schema["properties"].items():
            need = "required" if pname in schema["required"] else "optional"
            out.print(f"  {pname} ({prop['type']}, {need}): {prop['description']}", markup=False, highlight=False,
                      soft_wrap=True)
        return
    table = Table(title="runbook actions")
    for col in ("action", "arguments", "what it does"):
        table.add_column(col)
    for tool in tools.values():
        schema = tool["input_schema"]
        params = " ".join(p if p in schema["required"] else f"[{p}]" for p in schema["properties"])
        table.add_row(tool["name"], params, ACTIONS[tool["name"]].summary)
    out.print(table)


def _print_score(report: Any) -> None:
    """The score report as rich tables: reward and terms, the field's metrics, unsafe actions."""
    def fmt_time(seconds: Optional[float]) -> str:
        return "-" if seconds is None else _span(seconds)

    terms = Table(title=f"reward {report.reward:+.2f}", caption="points (an outage-minute costs 200); higher is better")
    terms.add_column("term")
    terms.add_column("value", justify="right")
    for key, value in report.terms.items():
        terms.add_row(key, f"{value:+.2f}")
    out.print(terms)
    metrics = Table(title="the incident")
    metrics.add_column("metric")
    metrics.add_column("value")
    diagnosis = report.diagnosis or {}
    rows = [("root cause (truth)", ", ".join(report.roots) or "none (no fault)"),
            ("failure mode (truth)", report.fault),
            ("you named", ", ".join(diagnosis.get("components") or []) or "-"),
            ("you said", diagnosis.get("fault_class") or "-"),
            # detection is counted at the first act on the incident after its onset (an order, an acknowledgement,
            # a diagnosis): reading dashboards is not yet saying so
            ("detected", f"{report.detected} (first act {fmt_time(report.time_to_detect)} after the onset)"
             if report.detected else "False (no act on it after the onset)"),
            ("localised", f"{report.localized} (NTAM {report.ntam:.2f})"),
            ("root cause correct", str(report.root_cause_correct)),
            ("failure mode correct", str(report.fault_class_correct)),
            ("mitigated", f"{report.mitigated} (after {fmt_time(report.time_to_mitigate)})"),
            ("user impact", f"{report.impact_minutes:.2f} outage-minutes ({report.impaired_requests:,.0f} of "
                            f"{report.requests:,.0f} requests)"),
            ("actions", f"{report.actions} ({report.bad_actions} refused)"),
            ("paged a human", str(report.paged)), ("handed over", str(report.submitted))]
    for key, value in rows:
        metrics.add_row(key, value)
    out.print(metrics)
    if report.unsafe:
        unsafe = Table(title="unsafe control actions")
        unsafe.add_column("time")
        unsafe.add_column("rule")
        for u in report.unsafe:
            unsafe.add_row(_span(u.time), u.rule)
        out.print(unsafe)
    else:
        out.print("unsafe control actions: none")


# ---- audit and eval: the baseline agents on fixed suites -------------------------------------------------------------
def _suite_filter(template: Optional[list[str]], entry: Optional[list[str]]) -> tuple[tuple[str, ...], list | None]:
    from opsworld.faults.catalogue import CATALOGUE
    from opsworld.eval.audit import TEMPLATES

    known = templates()              # the audit's default four, and any other built-in template by name
    bad = [t for t in template or [] if t not in known and not Path(t).is_file()]
    if bad:
        _fail(f"unknown template(s) {', '.join(bad)} and no such scenario file; templates: {', '.join(known)}")
    for t in template or []:
        if t not in known:
            _load(t)                 # a scenario file with a mistake ends with its one line
    bad = [e for e in entry or [] if e.partition(":")[0] not in CATALOGUE]
    if bad:
        _fail(f"unknown catalogue entr{'ies' if len(bad) > 1 else 'y'} {', '.join(bad)}; see `opsworld faults`")
    return tuple(template or TEMPLATES), (list(entry) if entry else None)


def _progress_bar(label: str):
    """A rich progress bar on stderr and the callback that advances it (`callback(done, total, what)`)."""
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[what]}"), TimeRemainingColumn(), console=err, transient=True)
    task = bar.add_task(label, total=1, what="")

    def callback(done: int, total: int, what: str) -> None:
        bar.update(task, completed=done, total=total, what=what)
    return bar, callback


@app.command()
def audit(
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
    seeds: int = typer.Option(5, min=1, max=100, help="episodes per catalogue entry and template"),
    agent: Optional[list[str]] = typer.Option(None, "--agent",
                                              help="only these agents (the heuristic SRE always runs); a registered "
                                                   "name, module:Class, a policy file, or a composition such as "
                                                   "heuristic-sre+page@first_alert"),
    report_only: bool = typer.Option(False, "--report-only", help="exit 0 even when a check fails (a report)"),
    template: Optional[list[str]] = typer.Option(None, "--template", help="only these templates or scenario files "
                                                                          "(default: the four templates)"),
    entry: Optional[list[str]] = typer.Option(None, "--fault", "--entry",
                                              help="only these catalogue entries, NAME[:TARGET] (repeatable)"),
    attack: bool = typer.Option(False, "--attack", help="then attack the reward: bolt habits onto policies and search "
                                                        "for a composition it overpays (opsworld.eval.attack)"),
    budget: int = typer.Option(40, "--budget", min=0, help="with --attack: compositions in the search beyond the "
                                                             "single habits"),
    search_seed: int = typer.Option(0, "--search-seed", help="with --attack: the seed of the search's random draws"),
    difficulty: str = _difficulty_option("easy"),
) -> None:
    """Every baseline agent on one fixed suite of incidents (all templates x catalogue entries x seeds), and the checks
    that the reward pays for the right things: the heuristic SRE beats every cheat, reward falls with user impact,
    silencing alerts never pays, the heuristic mitigates most incidents; with --attack, also that no composition of
    habits beats the heuristic, zero-knowledge ones trail it, and no single habit lifts it. Exits 1 if a check fails
    (--report-only: 0)."""
    from opsworld.agents import AgentError, agent_factory
    from opsworld.envs.difficulty import level
    from opsworld.eval.audit import audit as run_audit

    for name in agent or []:
        try:
            agent_factory(name)
        except AgentError as exc:
            _fail(f"unknown agent: {exc}")
    templates_, entries_ = _suite_filter(template, entry)
    dial = level(_difficulty(difficulty))
    bar, callback = _progress_bar(f"audit ({difficulty})")
    with bar:
        result = run_audit(agents=agent or None, seeds=seeds, progress=callback, templates=templates_,
                           entries=entries_, difficulty=dial)
    if not result.episodes:
        _fail("no catalogue entry runs on the chosen templates; see `opsworld faults`")
    found = None
    if attack:
        from opsworld.eval.attack import attack as run_attack
        bar, callback = _progress_bar("attack")
        with bar:
            found = run_attack(seeds=seeds, templates=templates_, entries=entries_, budget=budget, seed=search_seed,
                               progress=callback, reference=result.rewards, difficulty=dial)
    checks = result.checks + (found.checks if found else [])
    if json_out:
        payload = json.loads(result.model_dump_json())
        if found is not None:
            payload["attack"] = json.loads(found.model_dump_json())
        print(json.dumps(payload, indent=2))
    else:
        table = Table(title=f"reward audit ({difficulty}): {result.episodes} episodes per agent "
                            f"({', '.join(f'{t} {n}' for t, n in result.templates.items())}), {result.runtime_s:.0f} s")
        for col in ("agent", "reward (mean ± se)", "mitigated", "w/o page", "detected", "RCA", "NTAM",
                    "impact (min)", "unsafe/ep", "paged"):
            table.add_column(col, justify="left" if col == "agent" else "right")
        for a in sorted(result.agents, key=lambda a: -a.mean_reward):
            table.add_row(a.agent, f"{a.mean_reward:.2f} ± {a.se_reward:.2f}", f"{a.mitigation_rate:.0%}",
                          f"{a.mitigated_unpaged:.0%}", f"{a.detection_rate:.0%}", f"{a.rca_accuracy:.0%}",
                          f"{a.mean_ntam:.2f}",
                          f"{a.mean_impact:.2f}", f"{a.unsafe_per_episode:.2f}", f"{a.paged_share:.0%}")
        out.print(table)
        classes = Table(title="heuristic SRE by catalogue entry")
        for col in ("template", "entry", "fault", "episodes", "mitigated", "localised", "NTAM", "reward",
                    "impact (min)"):
            classes.add_column(col, justify="left" if col in ("template", "entry", "fault") else "right")
        for c in result.heuristic_classes:
            classes.add_row(c.template, c.entry, c.fault, str(c.episodes), f"{c.mitigated_share:.0%}",
                            f"{c.localised_share:.0%}", f"{c.mean_ntam:.2f}", f"{c.mean_reward:.2f}",
                            f"{c.mean_impact:.2f}")
        out.print(classes)
        if found is not None:
            h = found.of("heuristic-sre")
            best = Table(title=f"best attackers: {len(found.compositions)} compositions in {found.runtime_s:.0f} s; "
                               f"heuristic SRE alone {h.mean_reward:.2f} ± {h.se_reward:.2f}; vs it: the paired "
                               f"difference ± its standard error, and their ratio")
            for col in ("composition", "reward ± se", "vs heuristic", "margin", "mitigated", "paged", "unsafe/ep",
                        "zero-kn."):
                best.add_column(col, justify="left" if col == "composition" else "right",
                                overflow="fold" if col == "composition" else "ellipsis",
                                min_width=40 if col == "composition" else None)
            for c in [c for c in found.top(11) if c.name != "heuristic-sre"][:10]:
                share = lambda x: "-" if x is None else f"{x:.0%}"      # noqa: E731 (no fault episodes: none)
                best.add_row(c.name, f"{c.mean_reward:.2f} ± {c.se_reward:.2f}", f"{c.diff:+.2f} ± {c.paired_se:.2f}",
                             f"{c.margin_se:+.1f}", share(c.mitigation_rate), share(c.paged_share),
                             f"{c.unsafe_per_episode:.2f}", "yes" if c.zero_knowledge else "no")
            out.print(best)
            if found.best is not None:
                b = found.of(found.best)
                out.print(f"best attacker: {b.name}, {b.diff:+.2f} ± {b.paired_se:.2f} vs the heuristic SRE "
                          f"({b.margin_se:+.1f} paired se)", highlight=False)
        for c in checks:
            mark = "[green]PASS[/]" if c.passed else "[red]FAIL[/]"
            out.print(f"{mark} {c.name}: {c.figure} (target {c.target})", highlight=False)
            if c.name.startswith("reward falls"):
                out.print("     " + ", ".join(f"{t} {v}" for t, v in c.detail.get("per_template", {}).items()),
                          highlight=False)
            elif found is not None and c in found.checks:          # which policy the figure is of
                who = c.detail.get("closest") or c.detail.get("largest")
                if who:
                    out.print(f"     {who}", highlight=False)
    if not report_only and not all(c.passed for c in checks):
        raise typer.Exit(1)


@app.command("eval")
def evaluate_agent(
    suite: Optional[str] = typer.Option(None, "--suite", help="detection, localization, rca or mitigation"),
    split: Optional[list[str]] = typer.Option(None, "--split", help="a train/test split instead: a, b, c, d or all "
                                                                    "(opsworld.eval.splits); repeat it (or a,b) "
                                                                    "for several"),
    agents: Optional[list[str]] = typer.Option(None, "--agent", help="a registered agent, module:Class or policy "
                                               "file (default heuristic-sre); repeat it for several"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
    leaderboard: bool = typer.Option(False, "--leaderboard", help="every registered agent on the suite, ranked, "
                                     "with the --agent ones (module:Class too) among them"),
    seeds: int = typer.Option(2, min=1, max=100, help="episodes per catalogue entry and template"),
    template: Optional[list[str]] = typer.Option(None, "--template", help="only these templates or scenario files "
                                                                          "(default: the four templates)"),
    entry: Optional[list[str]] = typer.Option(None, "--fault", "--entry",
                                              help="only these catalogue entries, NAME[:TARGET] (repeatable)"),
    background: Optional[float] = typer.Option(None, "--background", min=0.0, max=60.0,
                                               help="with --suite: healthy changes and passing flaps per hour around "
                                                    "each incident (default: the audit's; 0: a clean change log)"),
    episodes: int = typer.Option(256, "--episodes", help="with --split: episodes per agent and split"),
    seed: int = typer.Option(0, "--seed", help="with --split: the evaluation's seed"),
    workers: Optional[int] = typer.Option(None, "--workers", help="with --split: worker processes (default: one "
                                                                  "per CPU)"),
    horizon: Optional[str] = typer.Option(None, "--horizon", help="with --split: episode length, e.g. 10m "
                                                                  "(default 1h)"),
    batch: int = typer.Option(16, "--batch", help="with --split: episodes per drawn world (smaller: more worlds)"),
    difficulty: Optional[str] = typer.Option(None, "--difficulty",
                                             help="with --suite: easy, realistic (the default) or hard "
                                                  "(docs/difficulty.md); a split has its own"),
) -> None:
    """Score an agent on one of the field's tasks (AIOpsLab/ITBench style), or rank every registered agent; or, with
    --split, score agents on the train/test splits of a policy trained on generated worlds."""
    split = split or None
    if (suite is None) == (split is None):
        _fail("give exactly one of --suite (a task suite) or --split (a train/test split)")
    if split is not None:
        if leaderboard or template or entry or difficulty:
            _fail("--leaderboard, --template, --entry and --difficulty go with --suite, not --split")
        _evaluate_splits(split, agents or ["heuristic-sre"], episodes, seed, workers, horizon, batch, json_out)
        return
    from opsworld.agents import AGENTS, AgentError, agent_factory
    from opsworld.envs.difficulty import DEFAULT_LEVEL, level
    from opsworld.eval.suites import SUITES, evaluate, leaderboard as rank

    if suite not in SUITES:
        _fail(f"no suite named '{suite}'; suites: {', '.join(SUITES)}")
    named = list(dict.fromkeys(agents or ([] if leaderboard else ["heuristic-sre"])))    # repeated: each once
    for name in named:
        try:
            agent_factory(name)
        except AgentError as exc:
            _fail(str(exc))
    templates_, entries_ = _suite_filter(template, entry)
    dial = level(_difficulty(difficulty or DEFAULT_LEVEL))
    if background is None:
        from opsworld.eval.audit import BACKGROUND as background
    bar, callback = _progress_bar(f"eval {suite} ({difficulty or DEFAULT_LEVEL})")
    with bar:
        if leaderboard:         # the named agents beside every registered one, ranked
            everyone = list(AGENTS) + [n for n in named if n not in AGENTS]
            results = rank(suite, agents=everyone, seeds=seeds, templates=templates_, entries=entries_,
                           progress=callback, background=background, difficulty=dial).rows
        else:
            results = [evaluate(suite, name, seeds=seeds, templates=templates_, entries=entries_, progress=callback,
                                background=background, difficulty=dial) for name in named]
    if not results[0].episodes:
        _fail("no catalogue entry runs on the chosen templates; see `opsworld faults`")
    if json_out:
        payload = [r.model_dump() for r in results] if leaderboard or len(results) > 1 else results[0].model_dump()
        print(json.dumps(payload, indent=2))
        return
    first = results[0]
    keys = [first.primary] + [k for k in first.metrics if k not in (first.primary, "se_reward")]
    table = Table(title=f"{suite}: {first.episodes} episodes ({seeds} seed{'s' if seeds > 1 else ''}, "
                        f"{difficulty or DEFAULT_LEVEL})")
    table.add_column("agent")
    for k in keys:
        table.add_column(k, justify="right")
    for r in results:
        cells = []
        for k in keys:
            v = r.metrics.get(k)
            cells.append("-" if v is None else f"{v:.2f} ± {r.metrics['se_reward']:.2f}" if k == "mean_reward"
                         else f"{v:.3g}")
        table.add_row(r.agent, *cells)
    out.print(table)


def _evaluate_splits(split: list[str], agents: list[str], episodes: int, seed: int, workers: Optional[int],
                     horizon: Optional[str], batch: int, json_out: bool) -> None:
    """`opsworld eval --split`: every agent on the split(s), a table (or JSON) of their scores and transfer gaps."""
    import time
    from dataclasses import asdict

    from opsworld.eval.splits import HORIZON, RANDOM, SPLITS, SplitError, gap, split_table

    asked = [n.strip() for text in split for n in text.split(",") if n.strip()]
    names = list(SPLITS) if "all" in asked else list(dict.fromkeys(asked))
    for n in names:
        if n not in SPLITS:
            _fail(f"no split named '{n}'; splits: {', '.join(SPLITS)} or all")
    seconds = HORIZON if horizon is None else _seconds(horizon, "--horizon")
    request = dict(episodes=episodes, seed=seed, workers=workers, horizon=seconds, batch=batch)
    started = time.perf_counter()
    try:
        if sys.stderr.isatty():        # a bar only where someone watches, as `opsworld rollout`
            bar, callback = _progress_bar(f"eval split {','.join(names)}")
            with bar:
                results = split_table(agents, names, progress=lambda done, total: callback(done, total, "episodes"),
                                      **request)
        else:
            results = split_table(agents, names, **request)
    except SplitError as exc:
        _fail(str(exc))
    wall = time.perf_counter() - started
    gaps = {(g.agent, g.split): g for g in gap(results)}
    if json_out:
        print(json.dumps({"episodes": episodes, "seed": seed, "horizon": seconds, "batch": batch,
                          "wall_seconds": round(wall, 2),
                          "splits": {n: SPLITS[n].description for n in names},
                          "results": [{k: v for k, v in asdict(r).items() if k != "rewards"} for r in results],
                          "gaps": [asdict(g) for g in gaps.values()]},
                         indent=2))
        return
    share = lambda v: "-" if v is None else f"{v:.0%}"      # noqa: E731
    table = Table(title=f"train/test splits: {episodes} episodes per agent and split, {seconds:g} s each",
                  caption="  ".join(f"({n}) {SPLITS[n].description}." for n in names))
    for name in ("agent", "split", "reward", "mitigated", "localized", "root cause", "unsafe", "impact min"):
        table.add_column(name, justify="left" if name in ("agent", "split") else "right")
    versus = RANDOM in agents and len(agents) > 1
    if versus:
        table.add_column("vs random", justify="right")
        table.add_column("kept of (a)", justify="right")
    for r in results:
        cells = [r.agent, r.split, f"{r.mean_reward:.1f} ± {r.se_reward:.1f}", share(r.mitigated_share),
                 share(r.localized_share), share(r.root_cause_share), share(r.unsafe_share),
                 f"{r.mean_impact_minutes:.1f}"]
        if versus:
            g = gaps.get((r.agent, r.split))
            cells += ["-", "-"] if g is None else [f"{g.advantage:+.1f} ± {g.se_advantage:.1f}", share(g.kept)]
        table.add_row(*cells)
    out.print(table)
    out.print("paged a human / handed over with a diagnosis: " + ", ".join(
        f"{r.agent} ({r.split}) {share(r.paged_share)} / {share(r.submitted_share)}" for r in results), highlight=False)
    for r in results:
        if r.unsafe_rules:
            out.print(f"unsafe, {r.agent} on ({r.split}), episodes per rule: "
                      + ", ".join(f"{rule} {n}" for rule, n in r.unsafe_rules), highlight=False)
    out.print(f"wall time {wall:.1f} s", highlight=False)


def _range_of(text: str, option: str) -> tuple[int, int]:
    """`5-500` or `40` -> (low, high)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", text)
    if not match:
        _error(f"{option}: '{text}' is not a range; write e.g. 5-500 or 40")
    low = int(match.group(1))
    return low, int(match.group(2) or low)


@app.command()
def generate(
    seed: int = typer.Option(0, "--seed", help="which system to draw"),
    services: str = typer.Option("5-500", "--services", help="range of the number of components, e.g. 5-500"),
    hidden: float = typer.Option(0.0, "--hidden-couplings", min=0.0, max=1.0,
                                 help="share of calls left off the documented service map"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the scenario as a YAML file to edit and run"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Draw a random production topology whose request graphs follow production call-graph statistics."""
    import numpy as np
    import yaml

    from opsworld.spec.generate import TopologyGenerator, request_graphs

    low, high = _range_of(services, "--services")
    generator = TopologyGenerator(services=(low, high), hidden_couplings=hidden)
    try:
        raw = generator.raw(seed)
    except ValueError as exc:
        _error(f"--services: {exc}")
    scenario = generator.draw(seed)
    graphs = request_graphs(scenario, 2000, np.random.default_rng(seed))
    kinds: dict[str, int] = {}
    for c in scenario.components.values():
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    quant = lambda values: {f"p{int(q * 100)}": float(np.quantile(values, q, method="inverted_cdf"))  # noqa: E731
                            for q in (0.5, 0.9, 0.99)}
    summary = {"name": scenario.name, "components": len(scenario.components), "kinds": kinds,
               "endpoints": len(scenario.traffic.endpoints), "nodes": len(scenario.nodes),
               "zones": len(scenario.zones), "base_rate_per_s": scenario.traffic.base_rate,
               "request_graph_nodes": quant([g.nodes for g in graphs]),
               "request_graph_depth": quant([g.depth for g in graphs]),
               "request_graph_fanout": quant([g.fanout for g in graphs])}
    if out is not None:
        try:
            out.write_text(yaml.safe_dump(raw, sort_keys=False))
        except OSError as exc:
            _error(f"--out: cannot write {out}: {exc.strerror}")
        summary["written"] = str(out)
    if json_out:
        print(json.dumps(summary, indent=2))
        return
    console = Console()
    console.print(f"[bold]{summary['name']}[/]: {summary['components']} components "
                  f"({', '.join(f'{v} {k}' for k, v in kinds.items())}), {summary['endpoints']} endpoints, "
                  f"{summary['nodes']} nodes in {summary['zones']} zone(s), {scenario.traffic.base_rate:.0f} req/s")
    for name in ("nodes", "depth", "fanout"):
        q = summary[f"request_graph_{name}"]
        console.print(f"  request graph {name:6s}  p50 {q['p50']:g}  p90 {q['p90']:g}  p99 {q['p99']:g}")
    if out is not None:
        console.print(f"written to {out}: run it with `opsworld simulate {out}`")


from opsworld.rollout.command import rollout as _rollout_command  # noqa: E402  (its own module: a long command)
from opsworld.rollout.command import transitions as _transitions_command  # noqa: E402

from opsworld.dataset.command import dataset as _dataset_command  # noqa: E402

from opsworld.train.command import register as _register_train  # noqa: E402

app.command("rollout")(_rollout_command)
app.command("transitions")(_transitions_command)
app.command("dataset")(_dataset_command)
_register_train(app)


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
