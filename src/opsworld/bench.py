"""`opsworld bench`: engine episodes per second, against the request-level reference on the same scenario, and the
Gymnasium vector env's agent steps per second.

An episode is the scenario's hour at 10-second ticks (360 ticks), in this one process: engine only, and again with
the telemetry on (metrics and alerts each tick, in batches of fewer worlds since the store holds the rules' window).
The SimPy reference is run over a shorter horizon and normalised per simulated hour. The rollout runner
(`opsworld rollout`) is timed end to end on two worker processes: random policy, generated worlds, the gym observation
on, one-hour episodes, Parquet written. Every figure is the median of several timed runs; the individual runs are
reported too, because these machines are noisy.
"""

from __future__ import annotations

import gc
import math
import os
import re
import platform
import statistics
import tempfile
import time
from typing import Any, Callable

import numpy as np

from opsworld.act.vocabulary import sample_actions
from opsworld.engine import Engine
from opsworld.engine.queueing import ErlangTable
from opsworld.envs.gym_env import IncidentVectorEnv
from opsworld.observe.promql.selectors import LOOKBACK_MS
from opsworld.observe.alerts.rules import RuleFile, rules_for
from opsworld.observe.telemetry import Telemetry
from opsworld.reference import ReferenceSimulator
from opsworld.rollout import rollout
from opsworld.spec import load_scenario, units


def _engine_episode_seconds(scenario: Any, worlds: int, seed: int) -> float:
    engine = Engine(scenario, worlds=worlds, seed=seed)
    start = time.perf_counter()
    for _ in range(engine.ticks):
        engine.step()
    return time.perf_counter() - start


def longest_window(rules: RuleFile) -> float:
    """Seconds of history the rules read at most: their longest range plus offset."""
    longest = 0.0
    for group in rules.groups:
        for rule in group.rules:
            ranges = [units.parse_duration(d) for d in re.findall(r"\[(\w+)(?::\w*)?\]", rule.expr)]
            offsets = [units.parse_duration(d) for d in re.findall(r"offset\s+(\w+)", rule.expr)]
            longest = max(longest, max(ranges, default=0.0) + max(offsets, default=0.0))
    return longest


def _telemetry_episode_seconds(scenario: Any, worlds: int, seed: int, every_tick: bool = True) -> float:
    """An episode with the metric sensors scraping each tick and every alert rule evaluated each tick (or at its
    group's interval, as the rule files set it); logs and traces are lazy, produced only when queried, so none here.
    The store keeps what the longest rule window needs."""
    engine = Engine(scenario, worlds=worlds, seed=seed)
    rules = rules_for(scenario.name)
    if every_tick:
        rules = rules.model_copy(update={"groups": [g.model_copy(update={"interval": engine.dt})
                                                    for g in rules.groups]})
    keep = min(int(np.ceil((longest_window(rules) + LOOKBACK_MS / 1000.0) / engine.dt)) + 1, engine.ticks)
    telemetry = Telemetry(engine, rules=rules, text=False, retention=keep)
    start = time.perf_counter()
    for _ in range(engine.ticks):
        telemetry.step()
    seconds = time.perf_counter() - start
    del telemetry, engine
    gc.collect()        # the sensors' closures hold the store in reference cycles: free its gigabytes before the next
    return seconds


def _env_steps_per_s(scenario_name: str, envs: int, seed: int) -> float:
    """Agent steps per second of the Gymnasium vector env under a uniformly random valid policy, one episode."""
    env = IncidentVectorEnv(num_envs=envs, scenario=scenario_name, seed=seed)
    _, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    steps = 0
    start = time.perf_counter()
    while True:
        _, _, terminated, _, info = env.step(sample_actions(info["action_mask"], rng, envs))
        steps += 1
        if terminated.all():
            break
    return steps * envs / (time.perf_counter() - start)


ROLLOUT_WORKERS = 2
ROLLOUT_HORIZON = 3600.0


def _rollout(episodes: int, batch: int, seed: int = 1, template: str | None = None) -> dict[str, Any]:
    """One timed rollout (random policy, generated worlds or `template`, one-hour episodes) into a scratch directory:
    its summary."""
    with tempfile.TemporaryDirectory() as out:
        return rollout(episodes=episodes, out=out, seed=seed, batch=batch, workers=ROLLOUT_WORKERS,
                       horizon=ROLLOUT_HORIZON, template=template)


def _rollout_size(seconds: float) -> tuple[int, int]:
    """(episodes, batch) for a rollout run of about `seconds`. Generated worlds range from a handful of services to
    hundreds, so their cost is measured first: four batches of 32 (four worlds) give the batch size at which a run is
    about 8 batches (enough to keep both workers busy to the end; a power of two from 16 to the runner's default 256),
    then four batches of that size give the number of batches."""
    small = 32
    per_batch = _rollout(4 * small, small)["batch_seconds"] / 4           # worker-seconds
    fits = small * seconds * ROLLOUT_WORKERS / 8 / per_batch
    batch = min(max(2 ** int(math.log2(max(fits, 1.0))), 16), 256)
    wall = _rollout(4 * batch, batch)["wall_seconds"]
    return max(8, round(4 * seconds / wall)) * batch, batch


def run_bench(runs: int = 5, worlds: int = 8192, reference_horizon: float = 120.0,
              scenario_name: str = "online-shop", progress: Callable[[str], None] | None = None,
              telemetry_worlds: int = 1024, env_worlds: int = 1024, rollout_seconds: float = 30.0) -> dict[str, Any]:
    """Time the engine and the reference; return medians and every run."""
    scenario = load_scenario(scenario_name, {"duration": "1h", "tick": "10s"})
    ErlangTable.table()                                   # built once per process, not part of an episode
    _engine_episode_seconds(scenario, min(worlds, 64), seed=0)  # warm caches and imports
    engine_eps = []
    for run in range(runs):
        seconds = _engine_episode_seconds(scenario, worlds, seed=run + 1)
        engine_eps.append(worlds / seconds)
        if progress:
            progress(f"engine run {run + 1}/{runs}: {engine_eps[-1]:,.0f} episodes/s")

    _telemetry_episode_seconds(scenario, min(telemetry_worlds, 2), seed=0)     # warm the parser and caches
    telemetry_eps, interval_eps = [], []
    for run in range(runs):
        seconds = _telemetry_episode_seconds(scenario, telemetry_worlds, seed=run + 1)
        telemetry_eps.append(telemetry_worlds / seconds)
        seconds = _telemetry_episode_seconds(scenario, telemetry_worlds, seed=run + 1, every_tick=False)
        interval_eps.append(telemetry_worlds / seconds)
        if progress:
            progress(f"telemetry run {run + 1}/{runs}: {telemetry_eps[-1]:,.0f} episodes/s with rules every tick, "
                     f"{interval_eps[-1]:,.0f} at their interval")

    _env_steps_per_s(scenario_name, 8, seed=0)         # warm imports and the catalogue
    env_sps = []
    for run in range(runs):
        env_sps.append(_env_steps_per_s(scenario_name, env_worlds, seed=run + 1))
        if progress:
            progress(f"vector env run {run + 1}/{runs}: {env_sps[-1]:,.0f} agent steps/s (random policy)")

    # the rollout runner end to end; rollout_seconds <= 0 leaves it out (a quick smoke run of the bench)
    rollout_episodes, rollout_batch = _rollout_size(rollout_seconds) if rollout_seconds > 0 else (0, 0)
    rollout_eph, rollout_peak = [], []
    for run in range(runs if rollout_episodes else 0):   # the same seed each run: the same worlds, the same work
        summary = _rollout(rollout_episodes, rollout_batch)
        rollout_eph.append(summary["episodes_per_hour"])
        rollout_peak.append(max(summary["peak_rss_mib"].values()))
        if progress:
            progress(f"rollout run {run + 1}/{runs}: {rollout_eph[-1]:,.0f} episodes/h on {ROLLOUT_WORKERS} workers "
                     f"({summary['wall_seconds']:.0f} s)")

    reference = load_scenario(scenario_name, {"duration": f"{reference_horizon:g}s", "tick": "10s"})
    rates = Engine(reference, worlds=1).rates          # the engine's own traffic profile, so both see the same
    reference_eps, reference_rps = [], []
    for run in range(max(1, min(runs, 3))):
        start = time.perf_counter()
        result = ReferenceSimulator(reference, seed=run + 1, rates=rates).run()
        seconds = time.perf_counter() - start
        reference_eps.append(reference_horizon / 3600.0 / seconds)   # simulated hours per second
        reference_rps.append(result.events / seconds)
        if progress:
            progress(f"reference run {run + 1}: {seconds:.1f} s for {reference_horizon:g} simulated s")

    eps = statistics.median(engine_eps)
    ref = statistics.median(reference_eps)
    ticks_per_episode = int(np.ceil(3600.0 / 10.0))
    return {
        "scenario": scenario_name,
        "episode": "1 h at 10 s ticks, engine only, one process",
        "worlds_per_batch": worlds,
        "episodes_per_s": eps,
        "episodes_per_hour": eps * 3600.0,
        "episodes_per_s_with_telemetry": statistics.median(telemetry_eps),
        "telemetry_share": statistics.median(telemetry_eps) / eps,
        "episodes_per_s_with_telemetry_rules_at_interval": statistics.median(interval_eps),
        "telemetry_worlds_per_batch": telemetry_worlds,
        "telemetry": "metrics scraped and every alert rule evaluated each tick; logs and traces only on query",
        "world_ticks_per_s": eps * ticks_per_episode,
        "env_steps_per_s": statistics.median(env_sps),
        "env_worlds_per_batch": env_worlds,
        "env": "opsworld/Incident-v0 vector env, a random valid action per world per step, one process and thread; "
               "each world has a fault drawn from the catalogue",
        "episodes_per_hour_2_cores": statistics.median(rollout_eph) if rollout_eph else None,
        "rollout": f"opsworld rollout on {ROLLOUT_WORKERS} worker processes: random policy, generated worlds "
                   f"(WorldGenerator defaults), 1 h episodes at 10 s ticks, the gym observation on, Parquet "
                   f"written; wall time from the start of the pool to the file closed",
        "rollout_episodes_per_run": rollout_episodes,
        "rollout_batch": rollout_batch,
        "rollout_peak_rss_mib": max(rollout_peak, default=None),
        "reference_episodes_per_s": ref,
        "reference_horizon_s": reference_horizon,
        "reference_component_requests_per_s": statistics.median(reference_rps),
        "speedup_vs_reference": eps / ref,
        "runs": {"episodes_per_s": engine_eps, "episodes_per_s_with_telemetry": telemetry_eps,
                 "episodes_per_s_with_telemetry_rules_at_interval": interval_eps,
                 "reference_episodes_per_s": reference_eps, "env_steps_per_s": env_sps,
                 "episodes_per_hour_2_cores": rollout_eph},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "numpy": np.__version__, "processor": platform.processor() or platform.machine()},
    }
