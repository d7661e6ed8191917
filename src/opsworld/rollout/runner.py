"""Batched rollouts: N episodes cut into batches, each batch one drawn world run as one batched engine, the batches
spread over worker processes (or Ray, `ray_runner.py`) and streamed in order to Parquet by one writer (`records.py`).

Everything an episode is follows from the rollout's seed and its place, never from the worker that ran it or when:
- batch k covers episodes [k * batch, (k + 1) * batch); its world is `WorldGenerator.draw(world_seed)` and its engine
  runs with `batch_seed`, both drawn from (seed, k);
- the engine's noise for episode e is that of world e (`first_world`), its fault is drawn from (seed, e), and the
  random policy's action at step t from counter-based streams keyed by (seed, e, t).
So the same seeds give the same rows on one process, on many, or on a cluster, and `replay_episode` reruns any one
episode alone from its row.
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import multiprocessing
import os
import resource
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa

from opsworld.act.vocabulary import sample_actions
from opsworld.agents import AgentError, agent_factory, context_of, load_agent
from opsworld.agents.runner import Act, batch_actor, play
from opsworld.engine.random import Streams
from opsworld.engine.topology import topology_of
from opsworld.envs.gym_env import IncidentVectorEnv
from opsworld.envs.worlds import Difficulty, World, WorldGenerator, world_from_record
from opsworld.faults.catalogue import CATALOGUE
from opsworld.rollout.records import EpisodeWriter, episode_row, episode_table
from opsworld.spec import templates

CELLS = 262_144        # worlds x (replica slots + components + call edges) one engine runs at once: bounds memory
RANDOM = "random"      # the built-in uniformly random valid policy (the hot path); any other name is a named agent
SUMMARY_FILE = "rollout.json"

# what each derived seed is for, so that no two uses of the rollout's seed share a stream
_WORLD, _ENGINE, _ACTIONS, _DRAW, _AGENT = range(1, 6)

Progress = Callable[[int, int], None]      # (episodes done, episodes in all)


class RolloutError(ValueError):
    """A rollout that cannot run as asked: a bad parameter, an unknown agent, an unusable output or cluster."""


@dataclass(frozen=True)
class RolloutPlan:
    """What a rollout runs; each batch is a pure function of the plan and its index (`run_batch`)."""

    episodes: int
    agent: str = RANDOM
    seed: int = 0
    batch: int = 256
    horizon: float | None = None           # seconds; None: each world's scenario duration
    services: tuple[int, int] = (5, 500)
    template: str | None = None            # a built-in template in place of generated topologies
    difficulty: Difficulty = Difficulty()
    exclude: tuple[str, ...] = ()          # catalogue entries never drawn (held out)
    entries: tuple[str, ...] | None = None  # the only catalogue entries drawn (None: all that fit)

    @property
    def worlds(self) -> WorldGenerator:
        """Where the batches' worlds come from."""
        return WorldGenerator(services=self.services, difficulty=self.difficulty, template=self.template,
                              exclude=self.exclude, entries=self.entries)

    @property
    def batches(self) -> int:
        return math.ceil(self.episodes / self.batch)

    def span(self, k: int) -> range:
        """The episode ids of batch k."""
        return range(k * self.batch, min(self.episodes, (k + 1) * self.batch))


@dataclass
class Batch:
    """One batch's rows, and what running it cost."""

    index: int
    table: pa.Table
    seconds: float
    peak_rss_mib: float          # of the process that ran it


def derive_seed(seed: int, *parts: int) -> int:
    """A 32-bit seed drawn from the rollout's seed and some integers (a purpose tag, a batch or episode index)."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1)[0])


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024      # bytes on macOS, KiB on Linux


# ---- one batch -------------------------------------------------------------------------------------------------------
def run_batch(plan: RolloutPlan, k: int) -> Batch:
    """Run batch k of the plan (in whatever process): draw its world, run all its episodes in one batched engine,
    return their rows."""
    started = time.perf_counter()
    episodes = plan.span(k)
    world = plan.worlds.draw(derive_seed(plan.seed, _WORLD, k))
    batch_seed = derive_seed(plan.seed, _ENGINE, k)
    draws = [_draw(world, plan.seed, e) for e in episodes]
    # a large system runs its batch in chunks, so that a worker's memory stays flat whatever the system (an episode is
    # the same in any chunk: see the module docstring)
    topo = topology_of(world.scenario)
    size = len(topo.replica_component) + topo.n_components + topo.n_edges
    chunk = max(1, min(len(draws), CELLS // size))
    reports = []
    for c in range(0, len(draws), chunk):
        reports += _play(world, draws[c:c + chunk], episodes.start + c, plan.horizon, plan.agent, plan.seed,
                         batch_seed)
        gc.collect()          # an env is a web of references (the score points back at its batch): free it now
    horizon = plan.horizon or world.scenario.duration
    rows = [episode_row(e, k, plan.seed, batch_seed, world, horizon, plan.agent, d, r)
            for e, d, r in zip(episodes, draws, reports)]
    return Batch(k, episode_table(rows), time.perf_counter() - started, peak_rss_mib())


def replay_episode(row: Mapping[str, Any]) -> dict:
    """Rerun one episode alone from its row (a dict of the Parquet columns, e.g. `table.to_pylist()[i]`) and return
    its score report (`ScoreReport` as a dict); its `reward` equals the row's exactly. Exact for the random policy
    and for agents that act on each world on its own (every registered baseline)."""
    world = world_from_record(json.loads(row["world"]))
    episode, seed = int(row["episode"]), int(row["seed"])
    draws = [_draw(world, seed, episode)]
    return _play(world, draws, episode, float(row["horizon"]), row["agent"], seed, int(row["batch_seed"]))[0]


def _draw(world: World, seed: int, episode: int):
    """Episode e's incident on its world, from (seed, e) alone."""
    return world.generator.draw(world.scenario, np.random.default_rng([seed, _DRAW, episode]))


def _play(world: World, draws: list, first: int, horizon: float | None, agent: str, seed: int,
          batch_seed: int) -> list[dict]:
    """Episodes first, first+1, ... (one per draw) in one vector env on `world`, to the horizon: their reports."""

    n = len(draws)
    # the engine's noise of each world is that of its episode id, whatever batch it runs in
    env = IncidentVectorEnv(num_envs=n, config=world.config(horizon), seed=batch_seed, first_world=first)
    obs, info = env.reset(seed=batch_seed, options={"draws": draws})
    reports, _ = play(env, obs, info, _policy(agent, env, info["action_mask"], seed, batch_seed, first))
    return reports


def _policy(agent: str, env, masks: dict[str, np.ndarray], seed: int, batch_seed: int, first: int) -> Act:
    """observations -> [n, 3] actions for the batch."""
    n = env.num_envs
    if agent == RANDOM:
        streams = Streams(derive_seed(seed, _ACTIONS), np.arange(first, first + n))
        steps = itertools.count()
        return lambda obs: sample_actions(masks, _CounterKeys(streams, next(steps)), n)
    # one agent per world is seeded by its episode, so an episode's actions do not depend on its batch
    return batch_actor(agent_factory(agent), context_of(env), batch_seed,
                       [derive_seed(seed, _AGENT, first + i) for i in range(n)])


class _CounterKeys:
    """What `sample_actions` asks of a numpy Generator, `random((worlds, K))`, answered from counter-based streams
    keyed by (seed, episode, step, call): an episode's random actions then depend on nothing else, not on the batch
    around it nor on the process that runs it."""

    def __init__(self, streams: Streams, step: int) -> None:
        self.streams, self.step, self.calls = streams, step, 0

    def random(self, shape: tuple[int, int]) -> np.ndarray:
        keys = self.streams.uniform(self.step, self.calls, shape[1])
        self.calls += 1
        return keys


# ---- running the batches in order ------------------------------------------------------------------------------------
def in_order(count: int, window: int, submit: Callable[[int], Hashable],
             wait_any: Callable[[list], list[tuple[Hashable, Batch]]]) -> Iterator[Batch]:
    """Batches 0..count-1 in order, from a pool that finishes them in any order: at most `window` batches are running
    or waiting to be written, so memory stays flat however many there are. `submit(k)` starts batch k and returns a
    handle; `wait_any(handles)` blocks until some finish and returns their (handle, batch)."""
    running: dict[Hashable, int] = {}
    ready: dict[int, Batch] = {}
    submitted = 0
    for k in range(count):
        while k not in ready:
            while submitted < count and len(running) + len(ready) < window:
                running[submit(submitted)] = submitted
                submitted += 1
            for handle, batch in wait_any(list(running)):
                ready[running.pop(handle)] = batch
        yield ready.pop(k)


def local_batches(plan: RolloutPlan, workers: int) -> Iterator[Batch]:
    """The plan's batches in order, run by `workers` processes (in this one when 1)."""
    yield from local_tasks([(plan, k) for k in range(plan.batches)], workers)


def local_tasks(tasks: Sequence[tuple[RolloutPlan, int]], workers: int) -> Iterator[Batch]:
    """The batches of several plans, each task a (plan, batch index), in the order given, run by `workers` processes
    (in this one when 1): one pool for many small plans (an evaluation's splits and agents) keeps every worker busy."""
    workers = min(workers, len(tasks))
    if workers <= 1:
        for plan, k in tasks:
            yield run_batch(plan, k)
        return
    # forkserver: safe beside the progress bar's thread, and the server imports the engine once for every worker
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        yield from in_order(len(tasks), 2 * workers, lambda i: pool.submit(run_batch, *tasks[i]), _finished)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _finished(futures: list[Future]) -> list[tuple[Future, Batch]]:
    done, _ = wait(futures, return_when=FIRST_COMPLETED)
    return [(f, f.result()) for f in done]


# ---- a whole rollout -------------------------------------------------------------------------------------------------
def rollout(episodes: int, agent: str = RANDOM, out: str | Path = "out/rollout", seed: int = 0, batch: int = 256,
            workers: int | None = None, horizon: float | None = None, services: tuple[int, int] = (5, 500),
            template: str | None = None, ray: str | None = None, progress: Progress | None = None,
            difficulty: Difficulty = Difficulty(), exclude: tuple[str, ...] = (),
            entries: tuple[str, ...] | None = None) -> dict:
    """Run episodes 0..episodes-1 and write `out/episodes/part-*.parquet` (one row per episode; read them all with
    `pyarrow.parquet.read_table(out / "episodes")`) and `out/rollout.json` (the parameters, the files, wall time,
    episodes per hour, peak memory); return the latter. Worlds are generated topologies of
    `services` services, or the built-in `template`, their incidents drawn with `difficulty`, from the catalogue's
    `entries` (default: all that fit) less `exclude`. `ray`: a cluster address or "auto" to run the batches there
    instead of on `workers` local processes (default: one per CPU). Raises `RolloutError` for a bad request, before
    anything is written.

    Local workers are started with forkserver: a script that calls this needs the `if __name__ == "__main__":` guard
    (as for any multiprocessing start method but fork)."""
    workers = workers if workers is not None else os.cpu_count() or 1
    plan = RolloutPlan(episodes=episodes, agent=agent, seed=seed, batch=batch, horizon=horizon,
                       services=tuple(services), template=template, difficulty=difficulty,
                       exclude=tuple(exclude), entries=None if entries is None else tuple(entries))
    check(plan, workers)
    directory = Path(out)
    _check_writable(directory)
    owned = False
    if ray is not None:
        from opsworld.rollout import ray_runner
        owned = ray_runner.connect(ray)
    try:
        return _run(plan, workers, directory, ray, progress)
    finally:
        if owned:
            ray_runner.disconnect()


def check(plan: RolloutPlan, workers: int = 1) -> None:
    """Raise `RolloutError` naming the first thing wrong with the plan."""
    if plan.episodes < 1:
        raise RolloutError(f"episodes must be at least 1 (got {plan.episodes})")
    if plan.batch < 1:
        raise RolloutError(f"batch must be at least 1 (got {plan.batch})")
    if workers < 1:
        raise RolloutError(f"workers must be at least 1 (got {workers})")
    if plan.seed < 0:
        raise RolloutError(f"seed must be 0 or more (got {plan.seed})")
    if plan.horizon is not None and not plan.horizon > 0:
        raise RolloutError(f"horizon must be above 0 seconds (got {plan.horizon:g})")
    low, high = plan.services
    if not 1 <= low <= high:
        raise RolloutError(f"services must be a range MIN-MAX with 1 <= MIN <= MAX (got {low}-{high})")
    if plan.template is not None:
        if plan.template not in templates():
            raise RolloutError(f"no template named '{plan.template}'; templates: {', '.join(templates())}")
    for option, names in (("entries", plan.entries or ()), ("exclude", plan.exclude)):
        unknown = [n for n in names if n not in CATALOGUE]
        if unknown:
            raise RolloutError(f"{option}: no catalogue entry named {', '.join(unknown)}; see `opsworld faults`")
    if plan.entries is not None and not set(plan.entries) - set(plan.exclude):
        raise RolloutError("entries: every entry asked for is also excluded; nothing is left to draw")
    if plan.agent != RANDOM:
        try:
            load_agent(plan.agent)
        except AgentError as exc:
            raise RolloutError(str(exc)) from None


def _check_writable(directory: Path) -> None:
    """The output directory exists and is writable, or can be made (its nearest existing parent is writable)."""
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise RolloutError(f"out: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RolloutError(f"out: cannot write to {probe}")


def _run(plan: RolloutPlan, workers: int, directory: Path, ray: str | None, progress: Progress | None) -> dict:
    made = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        writer = EpisodeWriter(directory)
    except OSError as exc:
        raise RolloutError(f"out: cannot write to {directory}: {exc.strerror or exc}") from None
    started = time.perf_counter()
    if ray is not None:
        from opsworld.rollout import ray_runner
        batches = ray_runner.ray_batches(plan)
        workers = ray_runner.cluster_cpus()
    else:
        batches = local_batches(plan, workers)
    done, worker_peak, batch_seconds = 0, 0.0, 0.0
    try:
        for b in batches:
            writer.write(b.table)
            done += len(b.table)
            worker_peak = max(worker_peak, b.peak_rss_mib)
            batch_seconds += b.seconds
            if progress is not None:
                progress(done, plan.episodes)
        files = writer.close()
    except BaseException:
        batches.close()            # stop the pool or the cluster's tasks first, then drop the partial files
        writer.abort()
        if made:
            _remove_if_empty(directory)
        raise
    wall = time.perf_counter() - started
    summary = {
        "parameters": {**asdict(plan), "services": list(plan.services), "workers": workers, "ray": ray},
        "episodes": done,
        "batches": plan.batches,
        "files": files,
        "wall_seconds": round(wall, 3),
        "episodes_per_hour": round(done / wall * 3600.0, 1),
        "batch_seconds": round(batch_seconds, 3),       # summed over batches: the work the workers did
        "peak_rss_mib": {"main": round(peak_rss_mib(), 1), "workers": round(worker_peak, 1)},
    }
    partial = directory / (SUMMARY_FILE + ".partial")
    partial.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(partial, directory / SUMMARY_FILE)
    return summary


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass
