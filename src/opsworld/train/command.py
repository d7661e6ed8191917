"""`opsworld train`: one option per `TrainConfig` field, its help the docstring under the field (one source of truth).

Part of the CLI's start-up: the trainer, the rules and the agents are imported inside the functions that use them,
so `opsworld train --help` loads neither torch nor the engine."""

from __future__ import annotations

import ast
import inspect
from dataclasses import fields
from pathlib import Path
from typing import Any

import typer


def _field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass, read from its source."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[node.target.id] = " ".join(str(after.value.value).split())  # type: ignore[union-attr]
    return docs


def _services(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise typer.BadParameter(f"'{text}': give a range MIN-MAX, e.g. 5-30") from None


def train_command(**options: Any) -> None:
    """Train a PPO policy on generated worlds (extra `train`): checkpoint after every iteration, metrics.csv,
    TensorBoard events and a learning-curve PNG in --out; --resume continues bit-for-bit."""
    try:
        import torch  # noqa: F401
    except ImportError:
        typer.echo("error: training needs PyTorch: pip install -e '.[train]'", err=True)
        raise typer.Exit(2)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from opsworld.train.config import TrainConfig
    from opsworld.train.ppo import CHECKPOINT, CURVE, METRICS, POLICY, train
    resume = options.pop("resume")
    options["services"] = _services(options["services"])
    config = TrainConfig(**options)
    problem = _check(config, resume)
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    columns = (TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total} iterations"),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("train", total=config.iterations, status="collecting")

        def progress(done: int, total: int, m: dict) -> None:
            bar.update(task, completed=done, status=f"{m['global_step']:,} steps, "
                       f"{m['charts/SPS']:,.0f} SPS, return {m['charts/episodic_return']:.1f}, "
                       f"mitigated {m['charts/mitigated']:.0%}")
        last = train(config, resume=resume, progress=progress)
    out = Path(config.out)
    typer.echo(f"{last.get('global_step', 0):,} steps at {last.get('charts/SPS', 0):,.0f} SPS; "
               f"mean episode reward {last.get('charts/episodic_return', float('nan')):.1f}")
    typer.echo(f"wrote {out / POLICY}, {out / CHECKPOINT}, {out / METRICS}, {out / CURVE}")


def _check(config, resume: bool) -> str | None:
    """One line saying what is wrong with the config, or None."""
    from opsworld.train.ppo import CHECKPOINT
    low, high = config.services
    if not 2 <= low <= high:
        return f"--services must be MIN-MAX with 2 <= MIN <= MAX (got {low}-{high})"
    for name in ("worlds", "topologies", "workers", "threads", "hidden", "update_epochs", "minibatch_size"):
        if getattr(config, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1 (got {getattr(config, name)})"
    if config.total_steps < 1 or config.horizon < 10 or config.learning_rate <= 0:
        return "--total-steps, --horizon (>= 10 s) and --learning-rate must be positive"
    if not (0 < config.gamma <= 1 and 0 <= config.gae_lambda <= 1):
        return "--gamma must be in (0, 1] and --gae-lambda in [0, 1]"
    if not 0 <= config.unsafe_target <= 1 or config.unsafe_price < 0 or config.unsafe_price_rate < 0:
        return "--unsafe-target must be in [0, 1], --unsafe-price and --unsafe-price-rate at least 0"
    from opsworld.score.unsafe import ACTIVE
    unknown = [r for r in config.unpriced.split(",") if r.strip() and r.strip() not in ACTIVE]
    if unknown:
        return f"--unpriced: no rule of an action taken named {', '.join(unknown)}; rules: {', '.join(ACTIVE)}"
    for flag, name in (("--imitate", config.imitate), ("--advisor", config.advisor)):
        if name != "none":
            from opsworld.agents import AgentError, load_agent
            try:
                load_agent(name)
            except AgentError as exc:
                return f"{flag}: {exc} (or 'none')"
    if resume and not (Path(config.out) / CHECKPOINT).exists():
        return f"--resume: no checkpoint at {Path(config.out) / CHECKPOINT}"
    return None


def _signature() -> inspect.Signature:
    from opsworld.train.config import TrainConfig
    docs = _field_docs(TrainConfig)
    params = []
    for f in fields(TrainConfig):
        default = f.default
        kind: Any = eval(f.type) if isinstance(f.type, str) else f.type  # noqa: S307  (annotations kept as text)
        if f.name == "services":          # MIN-MAX on the command line
            default, kind = f"{default[0]}-{default[1]}", str
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=kind,
                                        default=typer.Option(default, help=docs.get(f.name, ""))))
    params.append(inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                    default=typer.Option(False, help="continue from OUT/checkpoint.pt")))
    return inspect.Signature(params)


def register(app: typer.Typer) -> None:
    """Add `train` to the CLI (its options are made from `TrainConfig` without importing torch)."""
    train_command.__signature__ = _signature()  # type: ignore[attr-defined]
    app.command("train")(train_command)
