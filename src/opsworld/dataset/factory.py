"""The dataset factory: verifiable incident problems for training language models with reinforcement learning,
written as sharded Parquet.

Items come in blocks of `ITEMS_PER_WORLD`, one block per drawn world (`WorldGenerator(...).draw(seed)`: a system and
the incidents it may have). Each item is one world of that system with its own incident, run in a batch of worlds
(`Incidents`) until its on-call engineer looks: a few minutes after the first page, or a while after the onset when
nothing pages (a healthy world: a while after nothing happened). Its bundle (`bundle`) is what the monitoring shows
then; its task (`tasks`) one of localize, classify, mitigate, with the answer from the ground truth.

Every draw follows from (seed, block, world): the world's incident from its own generator, its engine noise from its
global number, the item's choices (when to look, the task, lost samples, the options) from its own generator. An item
is therefore the same whatever batch it ran in and however many worlds the machine runs at once, the same (n, seed,
difficulty) give the same files, and `regenerate(item)` rebuilds any item from its `world` column alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from opsworld.dataset.bundle import Layout, Recorder, build_bundle, next_minute
from opsworld.dataset.tasks import TASKS, Places, Solution, make_task, pick_task, solutions
from opsworld.envs.generator import CONTROLS
from opsworld.envs.incident import Incidents
from opsworld.envs.difficulty import FIRST_DIALS
from opsworld.envs.worlds import Difficulty, World, WorldGenerator, world_from_record
from opsworld.faults.base import FaultError
from opsworld.spec import ScenarioError

DIFFICULTIES = {
    "easy": Difficulty(),
    # medium and hard also draw every fault's parameters, make the monitoring imperfect and leave some culprits out of
    # the change log (docs/difficulty.md)
    "medium": Difficulty(red_herrings=0.3, hidden_couplings=0.25, telemetry_gaps=0.3, compound=0.15, spread=1.0,
                         anomaly=0.3, monitoring=0.5, unlogged=0.2),
    "hard": Difficulty(red_herrings=0.6, hidden_couplings=0.5, telemetry_gaps=0.6, compound=0.3, spread=1.0,
                       anomaly=0.6, monitoring=1.0, unlogged=0.4),
}
ITEMS_PER_WORLD = 512      # items drawn from one system before the next is drawn
CELLS = 262_144            # worlds x components run at once: bounds the memory a batch takes on large systems
SHARD_SIZE = 10_000
# When the responder looks: a while after the first page (at least a minute and a half, so that the worlds about to be
# looked at are known a minute ahead), and by a time drawn apart from the onset when nothing pages (at least a few
# minutes after it; a healthy world, at least a minute after nothing happened). Seconds; a batch runs until its last
# look, so these bound the simulation's cost.
ONSET = (120.0, 240.0)     # after the start
PAGE_DELAY = (90.0, 300.0)   # after the page
QUIET_LOOK = (420.0, 540.0)  # after the start, and
QUIET_AFTER = 180.0          # after the onset
CONTROL_LOOK = (240.0, 540.0)
CONTROL_AFTER = 60.0
_DRAW, _ITEM = 0xD4A3, 0x17E4        # apart from every other use of a seed


class DatasetError(ValueError):
    """A dataset that cannot be made as asked; the message is one line naming what to change."""


@dataclass(frozen=True)
class Spec:
    """What a dataset is drawn from (everything but its size)."""

    seed: int = 0
    difficulty: str = "easy"
    services: tuple[int, int] = (5, 500)
    template: str | None = None

    @property
    def levels(self) -> Difficulty:
        return parse_difficulty(self.difficulty)[1]

    def generator(self) -> WorldGenerator:
        return WorldGenerator(services=self.services, difficulty=self.levels, template=self.template, onset=ONSET)


def parse_difficulty(value: str | Difficulty) -> tuple[str, Difficulty]:
    """(name, levels) of a difficulty: `easy`, `medium`, `hard`, four numbers in [0, 1] separated by commas
    (red_herrings, hidden_couplings, telemetry_gaps, compound), or a `Difficulty`. Raises DatasetError."""
    if isinstance(value, Difficulty):
        levels = value
    elif str(value).strip().lower() in DIFFICULTIES:
        name = str(value).strip().lower()
        return name, DIFFICULTIES[name]
    else:
        parts = [p.strip() for p in str(value).split(",")]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) != 4:
            raise DatasetError(f"difficulty {value!r} is not one of {', '.join(DIFFICULTIES)} nor four numbers "
                               "red_herrings,hidden_couplings,telemetry_gaps,compound, e.g. 0.3,0.2,0.1,0.1")
        bad = [f"{k}={v:g}" for k, v in zip(FIRST_DIALS, numbers) if not 0.0 <= v <= 1.0 or not math.isfinite(v)]
        if bad:
            raise DatasetError(f"difficulty levels must lie in [0, 1]; got {', '.join(bad)}")
        levels = Difficulty(*numbers)
    named = next((n for n, d in DIFFICULTIES.items() if d == levels), None)
    return named or ",".join(f"{getattr(levels, k):g}" for k in FIRST_DIALS), levels


def world_seed(seed: int, block: int) -> int:
    """The seed of the system drawn for block `block` of a dataset."""
    return int(np.random.SeedSequence([seed, block]).generate_state(1)[0])


# ---- items -----------------------------------------------------------------------------------------------------------

def make_items(spec: Spec, block: int, worlds: range, world: World | None = None) -> list[dict]:
    """The items of worlds `worlds` of block `block` (rows as written to Parquet), in world order. They are run as
    batches of at most CELLS / components worlds; the result does not depend on how they are split."""
    world = world or spec.generator().draw(world_seed(spec.seed, block))
    size = max(16, min(ITEMS_PER_WORLD, CELLS // max(len(world.scenario.components), 1)))
    rows: list[dict] = []
    for lo in range(worlds.start, worlds.stop, size):
        rows += _run(spec, block, world, range(lo, min(lo + size, worlds.stop)))
    return rows


def _run(spec: Spec, block: int, world: World, worlds: range) -> list[dict]:
    """One batch: run the worlds until each responder has looked, and make each world's item as it looks."""
    sc = world.scenario
    W = len(worlds)
    draws = [_draw(world, b) for b in worlds]
    rngs = [np.random.default_rng([spec.seed, block, b, _ITEM]) for b in worlds]
    onset = np.array([d.fault.onset_seconds(sc) for d in draws])
    delay = np.array([r.uniform(*PAGE_DELAY) for r in rngs])
    quiet = np.maximum([r.uniform(*QUIET_LOOK) for r in rngs], onset + QUIET_AFTER)
    control_look = np.maximum([r.uniform(*CONTROL_LOOK) for r in rngs], onset + CONTROL_AFTER)
    control = np.array([d.entry in CONTROLS for d in draws])
    latest = np.where(control, control_look, quiet)
    horizon = float(next_minute(latest.max())) + 60.0
    config = dataclasses.replace(world.config(horizon), generator=_Given(draws))
    inc = Incidents(config, worlds=W, seed=world.seed, first_world=worlds.start)
    recorder, layout, where, sols = Recorder(inc), Layout(sc, inc.topology), Places(inc), solutions(inc)
    paged = np.full(W, np.inf)
    look = next_minute(latest)
    rows: dict[int, dict] = {}
    while len(rows) < W and not inc.done:
        inc.advance()
        now = float(inc.time)
        # the logs of the worlds looked at within the next minute (and a tick) are read then
        recorder.step(np.flatnonzero(look <= now + recorder.log_ticks * recorder.dt + 60.0 + 1e-6))
        # the page: a dashboard alert that begins firing after the onset (what the notifier would send)
        new = recorder.newly_firing & (now >= onset) & ~np.isfinite(paged) & ~control
        paged[new] = now
        look = next_minute(np.minimum(latest, paged + delay))
        if abs(now / 60.0 - round(now / 60.0)) > 1e-6:
            continue
        for i in np.flatnonzero(look <= now + 1e-6):
            if int(i) not in rows:
                rows[int(i)] = _item(spec, block, world, worlds.start + int(i), int(i), recorder, layout, where,
                                     sols[int(i)], rngs[int(i)])
    if len(rows) < W:      # cannot happen with the horizon above; say so plainly if it does
        raise RuntimeError(f"block {block}: {W - len(rows)} worlds never reached their look before {horizon:g}s")
    return [rows[i] for i in range(W)]


def _draw(world: World, b: int):
    """World b's incident, from its own generator: redrawn (from the same generator) while a fault drawn does not fit
    the system, which the injector would refuse."""
    sc = world.scenario
    rng = np.random.default_rng([world.seed, b, _DRAW])
    for _ in range(100):
        draw = world.generator.draw(sc, rng)
        try:
            for fault in (draw.fault, *draw.also):
                fault.check(sc)
        except (FaultError, ValueError, KeyError):
            continue
        return draw
    raise DatasetError(f"no incident drawn for world {b} fits system {sc.name}")


class _Given:
    """An incident generator that hands out draws made beforehand, in order (each world's incident is drawn from its
    own generator, so that it does not depend on the batch it runs in)."""

    def __init__(self, draws: list) -> None:
        self._next = iter(list(draws))

    def draw(self, scenario, rng: np.random.Generator):
        return next(self._next)


def _item(spec: Spec, block: int, world: World, b: int, local: int, recorder: Recorder, layout: Layout,
          where: Places, sol: Solution, rng: np.random.Generator) -> dict:
    """The item of world b (`local` in its batch), as its responder looks now."""
    difficulty, levels = parse_difficulty(spec.difficulty)
    task_name = pick_task(sol, rng)
    cap = recorder.capture(local)
    bundle = build_bundle(cap, layout, rng, levels.telemetry_gaps)
    in_view = {"changed": [c.target for c in cap.changes if c.kind in ("deploy", "config")],
               "alerting": [a["service"] for a in bundle.fields["alerts"]]}
    task = make_task(task_name, sol, where, rng, in_view)
    return {
        "id": f"{spec.seed}-{block:05d}-{b:04d}",
        "task": task.name,
        "prompt": f"{bundle.text}\n\n{task.text}",
        "question": task.question,
        "options": task.options,
        "answer": task.answer,
        "grading": json.dumps(task.grading, sort_keys=True),
        **bundle.fields,
        "difficulty": {"name": difficulty, **levels.record()},
        "world": json.dumps({"record": world.record, "block": block, "world": b, "dataset_seed": spec.seed,
                             "difficulty": difficulty, "look": cap.time,
                             "components": len(world.scenario.components)}, sort_keys=True),
        "truth": json.dumps(sol.record(), sort_keys=True),
    }


def regenerate(item: Mapping[str, Any]) -> dict:
    """Rebuild an item from its `world` column: the same row, made again from the world's record."""
    info = json.loads(item["world"])
    record = info["record"]
    spec = Spec(seed=int(info["dataset_seed"]), difficulty=info["difficulty"],
                services=tuple(record["services"]), template=record.get("template"))
    world = world_from_record(record)
    b = int(info["world"])
    return make_items(spec, int(info["block"]), range(b, b + 1), world)[0]


# ---- the schema ------------------------------------------------------------------------------------------------------

_S = pa.string()
SCHEMA = pa.schema([
    ("id", _S), ("task", _S), ("prompt", _S), ("question", _S), ("options", pa.list_(_S)), ("answer", _S),
    ("grading", _S),
    ("now", _S),
    ("alerts", pa.list_(pa.struct([("alertname", _S), ("severity", _S), ("service", _S), ("since", _S),
                                   ("summary", _S)]))),
    ("alerts_firing", pa.int32()),
    ("changes", pa.list_(pa.struct([("time", _S), ("kind", _S), ("target", _S), ("before", _S), ("after", _S),
                                    ("by", _S)]))),
    ("metric_times", pa.list_(_S)),
    ("metrics", pa.list_(pa.struct([("metric", _S), ("query", _S), ("unit", _S), ("service", _S),
                                    ("values", pa.list_(pa.float64()))]))),
    ("logs", pa.list_(pa.struct([("time", _S), ("service", _S), ("pod", _S), ("level", _S), ("message", _S)]))),
    ("service_map", pa.list_(pa.struct([("name", _S), ("kind", _S), ("replicas", pa.int32()),
                                        ("calls", pa.list_(_S)), ("nodes", pa.list_(_S))]))),
    ("endpoints", pa.list_(pa.struct([("name", _S), ("service", _S)]))),
    ("difficulty", pa.struct([("name", _S), ("red_herrings", pa.float64()), ("hidden_couplings", pa.float64()),
                              ("telemetry_gaps", pa.float64()), ("compound", pa.float64())])),
    ("world", _S), ("truth", _S),
])
# what an agent is shown (the rest is the answer, its grading, and how to make the item again)
OBSERVED = ("prompt", "question", "options", "now", "alerts", "alerts_firing", "changes", "metric_times", "metrics",
            "logs", "service_map", "endpoints")


def as_table(rows: list[dict]) -> pa.Table:
    """Rows as an Arrow table of SCHEMA (column by column: ten times quicker than row by row)."""
    return pa.table([pa.array([r[f.name] for r in rows], type=f.type) for f in SCHEMA], schema=SCHEMA)


def _block(args: tuple[Spec, int, int]) -> pa.Table:
    spec, block, count = args
    return as_table(make_items(spec, block, range(count)))


# ---- writing ---------------------------------------------------------------------------------------------------------

Progress = Callable[[int, int], None]


def write_dataset(n: int, out: str | Path, seed: int = 0, difficulty: str | Difficulty = "easy",
                  shard_size: int = SHARD_SIZE, workers: int | None = None, services: tuple[int, int] = (5, 500),
                  template: str | None = None, items_per_world: int = ITEMS_PER_WORLD,
                  progress: Progress | None = None, on_start: Callable[[], None] | None = None) -> dict:
    """Write `n` items as `out/train-XXXXX-of-YYYYY.parquet` shards of `shard_size` rows and a `dataset.json` summary
    (returned too, with the seconds it took). Each drawn system gives `items_per_world` items (a block); `workers`
    processes share the blocks (None or 0: one per core).
    `progress(done, n)` is called as items arrive; `on_start()` once the workers run (a progress bar's thread must
    start after they are forked). Raises DatasetError with one line for anything it cannot do as asked."""
    name, _ = parse_difficulty(difficulty)
    spec = Spec(seed=int(seed), difficulty=name, services=_services(services), template=template)
    if not isinstance(n, int) or n < 1:
        raise DatasetError(f"the number of items must be at least 1, got {n}")
    if not isinstance(shard_size, int) or shard_size < 1:
        raise DatasetError(f"the shard size must be at least 1, got {shard_size}")
    if not isinstance(items_per_world, int) or items_per_world < 1:
        raise DatasetError(f"items per system must be at least 1, got {items_per_world}")
    if workers is not None and workers < 0:
        raise DatasetError(f"workers must be 0 (one per core) or more, got {workers}")
    out = _writable(Path(out))
    try:
        spec.generator().draw(world_seed(spec.seed, 0))     # a bad template fails here, before any work
    except (ScenarioError, FaultError) as exc:
        raise DatasetError(str(exc).splitlines()[0]) from None
    blocks = [(spec, k, min(items_per_world, n - k * items_per_world))
              for k in range(math.ceil(n / items_per_world))]
    shards = math.ceil(n / shard_size)
    for old in list(out.glob("train-*-of-*.parquet")) + [out / "dataset.json"]:
        old.unlink(missing_ok=True)
    procs = min(workers or os.cpu_count() or 1, len(blocks))
    started = time.perf_counter()
    stats = _Stats()
    pending: list[pa.Table] = []
    buffered = written = 0
    names: list[str] = []

    def consume(table: pa.Table) -> None:
        nonlocal buffered, written
        stats.add(table)
        pending.append(table)
        buffered += table.num_rows
        if progress is not None:
            progress(written + buffered, n)
        while buffered >= shard_size or (buffered and written + buffered >= n):
            whole = pa.concat_tables(pending)
            rows = min(shard_size, whole.num_rows)
            path = out / f"train-{len(names):05d}-of-{shards:05d}.parquet"
            pq.write_table(whole.slice(0, rows), path, compression="zstd", row_group_size=1000)
            names.append(path.name)
            rest = whole.slice(rows)
            pending[:] = [rest] if rest.num_rows else []
            buffered -= rows
            written += rows

    if procs <= 1:
        if on_start is not None:
            on_start()
        for args in blocks:
            consume(_block(args))
    else:
        # fork: the workers start at once with opsworld imported; results come back in block order
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            if on_start is not None:
                on_start()
            for table in pool.imap(_block, blocks):
                consume(table)
    summary = {
        "name": "opsworld-incidents",
        "items": n, "seed": spec.seed,
        "difficulty": {"name": name, **spec.levels.record()},
        "services": list(spec.services), "template": spec.template,
        "items_per_world": items_per_world, "worlds": len(blocks),
        "shards": names,
        "tasks": stats.tasks, "fault_kinds": dict(sorted(stats.kinds.items())), "components": stats.components(),
        "columns": {f.name: str(f.type) for f in SCHEMA},
        "observed": list(OBSERVED),
        "verifier": "opsworld.dataset.verify(item, answer) -> float in [0, 1]",
        "regenerate": "opsworld.dataset.regenerate(item) rebuilds an item from its world column",
    }
    (out / "dataset.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["seconds"] = time.perf_counter() - started       # for the caller; not in the file (it would vary)
    return summary


class _Stats:
    """Counts for the summary, gathered from the tables as they are written."""

    def __init__(self) -> None:
        self.tasks: dict[str, int] = {t: 0 for t in TASKS}
        self.kinds: Counter = Counter()
        self.sizes: list[int] = []

    def add(self, table: pa.Table) -> None:
        for t, c in Counter(table.column("task").to_pylist()).items():
            self.tasks[t] = self.tasks.get(t, 0) + c
        for truth in table.column("truth").to_pylist():
            self.kinds[json.loads(truth)["kind"]] += 1
        if table.num_rows:          # a table is one block: one system
            self.sizes.append(json.loads(table.column("world")[0].as_py())["components"])

    def components(self) -> dict:
        """Components per system drawn: fewest, most, mean."""
        if not self.sizes:
            return {}
        return {"min": min(self.sizes), "max": max(self.sizes), "mean": round(float(np.mean(self.sizes)), 1)}


def _services(services: Any) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in services)
    except (TypeError, ValueError):
        raise DatasetError(f"services must be two whole numbers (fewest, most), got {services!r}") from None
    if not 1 <= lo <= hi:
        raise DatasetError(f"services must be a range like 5-500 with 1 <= fewest <= most, got {lo}-{hi}")
    return lo, hi


def _writable(out: Path) -> Path:
    """`out`, made if missing, after checking a file can be written there."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe-"):
            pass
    except OSError as exc:
        raise DatasetError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return out
