"""Offline-RL transitions: every step of an agent's episodes on one scenario (the observation, each of its Dict keys
with its shape, the action, the reward, terminated/truncated and the action masks), written as a Minari dataset
(Farama's format for offline RL; extra `offline`) or as plain Parquet, and read back as numpy arrays.

```python
from opsworld.rollout.transitions import load_transitions, record_transitions, transitions_config
config = transitions_config("online-shop", horizon=600, entries=["bad_deploy_errors"])
record_transitions("heuristic-sre", config, episodes=256, seed=1, out="out/bc", fmt="minari")
data = load_transitions("out/bc")          # data.observations["alerts"]: [E, T, S, A], data.actions: [E, T, 3], ...
# or with Minari itself: MINARI_DATASETS_PATH=out/bc, minari.load_dataset("opsworld/online-shop/heuristic-sre-v0")
```

Episodes are drawn and seeded as `opsworld rollout`'s (`runner.py`): batch k covers episodes [k * batch, (k + 1) *
batch) in one vector env seeded from (seed, k), episode e's incident is drawn from (seed, e) and a named agent's
world e is seeded from (seed, e). So the episodes of `transitions_config(template, ...)` are exactly those of
`opsworld rollout --template TEMPLATE` with the same seed, batch, horizon and entries (their rows' `reward` is the
transitions' summed rewards), and the same arguments always write the same bytes.

## On disk (OUT)
Both formats: `OUT/transitions.json`, what was run (agent, seed, episodes, batch, scenario, horizon, entries), the
shapes of the observation keys and masks, the verbs, the format and where the data is.

`fmt="minari"`: OUT is a Minari datasets root, the dataset in `OUT/<dataset_id>/data/` (default id
`opsworld/<scenario>/<agent>-v0`) in Minari's own layout: `metadata.json` (spaces, totals, `data_format`), one folder
per episode (`<episode>/`, its steps, and `metadata.json` with `id`, `total_steps`, `seed` and ours: `episode`,
`fault_entry`, `fault_class`, `fault_target`, `score`). An episode holds T + 1 observations (the last one after the
last step), T actions, rewards, terminations and truncations, and T + 1 infos: `action_mask_verb` [V],
`action_mask_target` [V, T'], `action_mask_argument` [V, G] (the masks valid for that observation) and `time`
(seconds).

`fmt="parquet"`: `OUT/steps/part-NNNNN.parquet`, one file per batch (row groups of some 32 MB), one row per step
and world in (episode, step) order: `episode`, `step`, `world` (its slot in the batch), `time`, `obs_<key>` for
each observation key (float32, a fixed-size list of the key's values in C order; shapes in transitions.json),
`action` (int64 [3]), `reward` (float64), `terminated`, `truncated` (bool), `mask_verb`, `mask_target`,
`mask_argument` (int8, flattened [V], [V, T'], [V, G]); and `OUT/episodes.parquet`, one row per episode: `episode`,
`batch`, `world`, `steps`, `fault_entry`, `fault_class`, `fault_target`, `score`. The observation after an
episode's last step is not kept there (that step is terminal).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from opsworld.act.vocabulary import VERBS
from opsworld.agents import AgentError, load_agent
from opsworld.agents.runner import play
from opsworld.envs.gym_env import IncidentVectorEnv
from opsworld.envs.incident import IncidentConfig
from opsworld.envs.worlds import Difficulty, WorldGenerator
from opsworld.faults.catalogue import CATALOGUE
from opsworld.rollout.runner import _DRAW, _ENGINE, RANDOM, _policy, derive_seed
from opsworld.spec import templates

FORMATS = ("minari", "parquet")
MANIFEST = "transitions.json"
STEPS_DIR = "steps"                      # fmt="parquet": OUT/steps/part-NNNNN.parquet, one per batch
EPISODES_FILE = "episodes.parquet"       # fmt="parquet": one row per episode
MASKS = ("verb", "target", "argument")   # the env's `info["action_mask"]` keys
_PARTIAL = ".transitions.partial"        # hidden: Minari's listing of a root skips dot folders
_COMPRESSION = "zstd"
_ROW_GROUP_BYTES = 32 * 2**20            # Parquet's writer holds a row group's levels and pages: bound its memory

Progress = Callable[[int, int], None]    # (episodes done, episodes in all)


class TransitionsError(ValueError):
    """A recording that cannot run as asked: a bad parameter, an unknown agent, a missing Minari, unreadable data."""


@dataclass(frozen=True)
class Transitions:
    """A transitions dataset read back: E whole episodes of T steps each, in episode order."""

    observations: dict[str, np.ndarray]   # key -> [E, T, *shape] float32: what each action was chosen on
    actions: np.ndarray                   # [E, T, 3] int64: verb, target, argument
    rewards: np.ndarray                   # [E, T] float64
    terminated: np.ndarray                # [E, T] bool
    truncated: np.ndarray                 # [E, T] bool
    masks: dict[str, np.ndarray]          # verb [E, T, V], target [E, T, V, T'], argument [E, T, V, G] int8
    time: np.ndarray                      # [E, T] seconds into the episode of each observation
    episodes: np.ndarray                  # [E] episode ids
    scores: np.ndarray                    # [E] each episode's score (its truth report's reward)
    faults: list[str]                     # [E] each episode's catalogue entry
    manifest: dict = field(default_factory=dict)   # transitions.json

    @property
    def verbs(self) -> np.ndarray:
        """[E, T] the verb of each action."""
        return self.actions[..., 0]


# ---- what to run -----------------------------------------------------------------------------------------------------
def transitions_config(template: str = "online-shop", horizon: float | None = None,
                       entries: Sequence[str] | None = None, exclude: Sequence[str] = (),
                       difficulty: Difficulty = Difficulty()) -> IncidentConfig:
    """The config of `opsworld rollout --template TEMPLATE`'s worlds (the same incident generator), so that
    `record_transitions` on it records that rollout's episodes. Raises `TransitionsError` for an unknown template or
    catalogue entry."""
    if template not in templates():
        raise TransitionsError(f"no template named '{template}'; templates: {', '.join(templates())}")
    for option, names in (("entries", entries or ()), ("exclude", exclude)):
        unknown = [n for n in names if n not in CATALOGUE]
        if unknown:
            raise TransitionsError(f"{option}: no catalogue entry named {', '.join(unknown)}; see `opsworld faults`")
    worlds = WorldGenerator(template=template, difficulty=difficulty, exclude=tuple(exclude),
                            entries=None if entries is None else tuple(entries))
    # a template's world is the same whatever the seed (the seed only draws generated topologies)
    return worlds.draw(0).config(horizon)


def default_dataset_id(scenario: str, agent: str) -> str:
    """`opsworld/<scenario>/<agent>-v0`, each part reduced to the characters a Minari id allows."""
    clean = lambda text: re.sub(r"[^-_\w]+", "_", text).strip("_") or "x"     # noqa: E731
    return f"opsworld/{clean(scenario)}/{clean(Path(agent).stem if agent.endswith('.pt') else agent)}-v0"


# ---- recording -------------------------------------------------------------------------------------------------------
def record_transitions(agent: str, config: IncidentConfig | None = None, episodes: int = 64, seed: int = 0,
                       out: str | Path = "out/transitions", fmt: str = "minari", batch: int = 256,
                       dataset_id: str | None = None, progress: Progress | None = None) -> dict:
    """Run `agent` (a registered name, `module:Class`, a policy file, or "random" for the rollout's random policy)
    for episodes 0..episodes-1 of `config` (default: `IncidentConfig()`), `batch` worlds to a vector env, from reset
    to the horizon, and write every step to OUT as a Minari dataset or Parquet (see the module docstring). Returns
    the manifest written to OUT/transitions.json. Raises `TransitionsError` for a bad request, before anything is run;
    what an earlier recording of the same format left in OUT is replaced only once this one is complete."""
    config = config or IncidentConfig()
    _check(agent, episodes, seed, fmt, batch)
    out = Path(out)
    probe = IncidentVectorEnv(num_envs=1, config=config).inc       # a bad config fails here, before anything is written
    scenario, horizon = probe.scenario, probe.ticks * probe.system.dt
    dataset_id = dataset_id or default_dataset_id(scenario.name, agent)
    if fmt == "minari":
        _minari()                                                             # fail before running, not after
        _check_id(dataset_id)
    staging, made = out / _PARTIAL, not out.exists()
    shutil.rmtree(staging, ignore_errors=True)                     # what a killed run left
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise TransitionsError(f"out: cannot write to {out}: {exc.strerror or exc}") from None
    done = False
    try:
        writer = (_MinariWriter(staging, dataset_id, agent, seed) if fmt == "minari" else _ParquetWriter(staging))
        shapes: dict[str, Any] = {}
        for k in range(math.ceil(episodes / batch)):
            span = range(k * batch, min(episodes, (k + 1) * batch))
            steps = _run_batch(config, agent, seed, k, span)
            shapes = steps.shapes()
            writer.write(steps, span)
            if progress is not None:
                progress(span.stop, episodes)
        written = writer.close()
        paths = written.pop("paths")
        manifest = {
            "format": fmt,
            "parameters": {"agent": agent, "seed": seed, "episodes": episodes, "batch": batch,
                           "scenario": scenario.name, "horizon": float(horizon), "entries": _entries(config)},
            **written,
            "steps_per_episode": shapes["steps"],
            "observation_shapes": shapes["observations"],
            "mask_shapes": shapes["masks"],
            "action_nvec": shapes["nvec"],
            "verbs": list(VERBS),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _move_into_place(staging, out, [*paths, MANIFEST])
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if made and not done:
            shutil.rmtree(out, ignore_errors=True)                 # it held nothing but what this run staged
    return manifest


def _entries(config: IncidentConfig) -> list[str] | None:
    """The catalogue entries the config's generator draws from (None: all that fit)."""
    entries = getattr(config.generator, "entries", None)
    return None if entries is None else list(entries)


def _check(agent: str, episodes: int, seed: int, fmt: str, batch: int) -> None:
    if fmt not in FORMATS:
        raise TransitionsError(f"format must be one of {', '.join(FORMATS)} (got '{fmt}')")
    if episodes < 1:
        raise TransitionsError(f"episodes must be at least 1 (got {episodes})")
    if batch < 1:
        raise TransitionsError(f"batch must be at least 1 (got {batch})")
    if seed < 0:
        raise TransitionsError(f"seed must be 0 or more (got {seed})")
    if agent != RANDOM:
        try:
            load_agent(agent)
        except AgentError as exc:
            raise TransitionsError(str(exc)) from None


@dataclass
class _Steps:
    """One batch's N episodes, every array world-major: observations [N, T + 1, ...], the rest [N, T, ...]."""

    observations: dict[str, np.ndarray]   # key -> [N, T + 1, *shape] float32
    actions: np.ndarray                   # [N, T, 3] int64
    rewards: np.ndarray                   # [N, T] float64
    terminated: np.ndarray                # [N, T] bool
    truncated: np.ndarray                 # [N, T] bool
    masks: dict[str, np.ndarray]          # verb [N, T + 1, V], target [N, T + 1, V, T'], argument [N, T + 1, V, G]
    time: np.ndarray                      # [N, T + 1] seconds
    reports: list[dict]                   # [N] the truth reports (score: `reward`)
    draws: list                           # [N] the incidents drawn
    batch: int
    batch_seed: int
    spaces: tuple[Any, Any]               # the env's single-world observation and action spaces

    def shapes(self) -> dict[str, Any]:
        return {"steps": int(self.actions.shape[1]),
                "observations": {k: list(v.shape[2:]) for k, v in self.observations.items()},
                "masks": {k: list(v.shape[2:]) for k, v in self.masks.items()},
                "nvec": [int(x) for x in self.spaces[1].nvec]}


class _Recorder:
    """The vector env as `play` uses it (`num_envs`, `step`), keeping each step's [N, ...] arrays on the way: one
    agent loop for rollouts, evaluation and recording alike."""

    def __init__(self, env: IncidentVectorEnv, obs: dict[str, np.ndarray], info: dict) -> None:
        self.env, self.num_envs = env, env.num_envs
        self.obs = [_copy(obs)]                         # T + 1 of key -> [N, *shape]
        self.masks = [info["action_mask"]]              # T + 1 of name -> [V, ...] (or [N, V, ...])
        self.time = [np.asarray(info["time"], float)]   # T + 1 of [N]
        self.actions: list[np.ndarray] = []             # T of [N, 3]
        self.rewards: list[np.ndarray] = []             # T of [N]
        self.terminated: list[np.ndarray] = []
        self.truncated: list[np.ndarray] = []

    def __getattr__(self, name: str) -> Any:
        if name == "env":                     # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.env, name)        # anything else `play` may come to ask of the env

    def step(self, actions: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self.actions.append(np.asarray(actions, np.int64).reshape(self.num_envs, 3))
        self.rewards.append(np.asarray(reward, np.float64))
        self.terminated.append(np.asarray(terminated, bool))
        self.truncated.append(np.asarray(truncated, bool))
        self.obs.append(_copy(obs))
        self.masks.append(info["action_mask"])
        self.time.append(np.asarray(info["time"], float))
        return obs, reward, terminated, truncated, info

    def steps(self, reports: list[dict], draws: list, batch: int, batch_seed: int) -> _Steps:
        n = self.num_envs
        return _Steps(
            observations={k: _world_major([o[k] for o in self.obs]) for k in self.obs[0]},
            actions=_world_major(self.actions), rewards=_world_major(self.rewards),
            terminated=_world_major(self.terminated), truncated=_world_major(self.truncated),
            masks={m: _world_major([_per_world(f, m, n) for f in self.masks]) for m in MASKS},
            time=_world_major(self.time), reports=reports, draws=draws, batch=batch, batch_seed=batch_seed,
            spaces=(self.env.single_observation_space, self.env.single_action_space))


def _world_major(frames: list[np.ndarray]) -> np.ndarray:
    """T frames of [N, ...] -> [N, T, ...] (one copy, by np.stack; the swap is a view)."""
    return np.swapaxes(np.stack(frames), 0, 1)


def _copy(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # an env may hand out views of buffers it overwrites next step: keep each step's own
    return {k: np.array(v, np.float32) for k, v in obs.items()}


def _per_world(masks: dict[str, np.ndarray], name: str, n: int) -> np.ndarray:
    """[N, ...] int8 of one of the env's masks: the env gives one set for every world ([V] verbs) or one per world."""
    m = np.asarray(masks[name], np.int8)
    return m if np.ndim(masks["verb"]) == 2 else np.broadcast_to(m, (n, *m.shape))


def _run_batch(config: IncidentConfig, agent: str, seed: int, k: int, span: range) -> _Steps:
    """Batch k's episodes (one vector env, to the horizon), seeded as the rollout's batch k (module docstring)."""
    n = len(span)
    batch_seed = derive_seed(seed, _ENGINE, k)
    env = IncidentVectorEnv(num_envs=n, config=config, seed=batch_seed, first_world=span.start)
    draws = [config.generator.draw(env.inc.scenario, np.random.default_rng([seed, _DRAW, e])) for e in span]
    obs, info = env.reset(seed=batch_seed, options={"draws": draws})
    recorder = _Recorder(env, obs, info)
    reports, _ = play(recorder, obs, info, _policy(agent, env, info["action_mask"], seed, batch_seed, span.start))
    return recorder.steps(reports, draws, k, batch_seed)


def _episode_meta(steps: _Steps, i: int, episode: int) -> dict[str, Any]:
    """What one episode was: its incident and its score."""
    fault = steps.draws[i].fault
    return {"episode": episode, "batch": steps.batch, "world": i, "steps": int(steps.actions.shape[1]),
            "fault_entry": steps.draws[i].entry, "fault_class": fault.kind, "fault_target": fault.target,
            "score": float(steps.reports[i]["reward"])}


def _move_into_place(staging: Path, out: Path, paths: Sequence[str]) -> None:
    """Move each finished path from the staging folder to OUT, replacing what an earlier run left there."""
    for rel in paths:
        target = out / rel
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, target)


# ---- Parquet ---------------------------------------------------------------------------------------------------------
class _ParquetWriter:
    """OUT/steps/part-NNNNN.parquet (one per batch) and OUT/episodes.parquet."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / STEPS_DIR).mkdir()
        self.files: list[str] = []
        self.episodes: list[dict] = []

    def write(self, steps: _Steps, ids: range) -> None:
        n, t = steps.rewards.shape

        def flat(a: np.ndarray) -> np.ndarray:
            return a.reshape(n * t, *a.shape[2:])             # [N, T, ...] -> [N * T, ...], rows by (world, step)
        columns: dict[str, pa.Array] = {
            "episode": pa.array(np.repeat(np.asarray(ids, np.int64), t)),
            "step": pa.array(np.tile(np.arange(t, dtype=np.int32), n)),
            "world": pa.array(np.repeat(np.arange(n, dtype=np.int32), t)),
            "time": pa.array(flat(steps.time[:, :t])),
        }
        for key, value in steps.observations.items():
            columns[f"obs_{key}"] = _fixed_list(flat(value[:, :t]))
        columns["action"] = _fixed_list(flat(steps.actions))
        columns["reward"] = pa.array(flat(steps.rewards))
        columns["terminated"] = pa.array(flat(steps.terminated))
        columns["truncated"] = pa.array(flat(steps.truncated))
        for name, value in steps.masks.items():
            columns[f"mask_{name}"] = _fixed_list(flat(value[:, :t]))
        table = pa.table(columns)
        name = f"{STEPS_DIR}/part-{len(self.files):05d}.parquet"
        rows = max(1, _ROW_GROUP_BYTES * len(table) // max(table.nbytes, 1))       # a function of the shapes alone
        pq.write_table(table, self.directory / name, row_group_size=rows, compression=_COMPRESSION)
        self.files.append(name)
        self.episodes += [_episode_meta(steps, i, e) for i, e in enumerate(ids)]

    def close(self) -> dict[str, Any]:
        pq.write_table(pa.Table.from_pylist(self.episodes), self.directory / EPISODES_FILE, compression=_COMPRESSION)
        return {"files": self.files, "episodes_file": EPISODES_FILE, "paths": [STEPS_DIR, EPISODES_FILE]}


def _fixed_list(values: np.ndarray) -> pa.FixedSizeListArray:
    """[rows, *shape] -> a fixed-size list per row of the values in C order."""
    rows = values.reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(rows).reshape(-1)), rows.shape[1])


def _column(table: pa.Table, name: str, shape: Sequence[int] | None) -> np.ndarray:
    """A column as numpy: a fixed-size list column (`shape` given) back to [rows, *shape], any other as [rows]."""
    column = table.column(name).combine_chunks()
    if shape is None:
        return column.to_numpy(zero_copy_only=False)
    return column.flatten().to_numpy(zero_copy_only=False).reshape(table.num_rows, *shape)


# ---- Minari ----------------------------------------------------------------------------------------------------------
def _minari():
    """The minari module (and Pillow, which its storages import), or a `TransitionsError` saying what to install."""
    try:
        import minari
        from minari.dataset.minari_storage import MinariStorage  # noqa: F401
    except ImportError:
        raise TransitionsError("format 'minari' needs Minari: pip install -e '.[offline]' "
                               "(or write --format parquet)") from None
    try:
        import PIL  # noqa: F401  (Minari's Arrow and Parquet storages import it, and Minari does not require it)
    except ImportError:
        raise TransitionsError("Minari's storage needs Pillow: pip install pillow "
                               "(or write --format parquet)") from None
    return minari


def _check_id(dataset_id: str) -> None:
    from minari.dataset.minari_dataset import parse_dataset_id
    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError):       # TypeError: no version (Minari's parser needs one, its pattern does not)
        raise TransitionsError(f"dataset id: '{dataset_id}' is not a Minari id, (namespace/)name-vN, "
                               "e.g. opsworld/online-shop/heuristic-sre-v0") from None


def _minari_format() -> str:
    """Minari's Parquet storage where this Minari has it (compressed, and no h5py), else its Arrow one (0.5 on)."""
    try:
        from minari.dataset._storages import get_storage_keys    # private, but the only way to ask
    except ImportError:
        return "arrow"
    return "parquet" if "parquet" in get_storage_keys() else "arrow"


class _MinariWriter:
    """A Minari dataset at ROOT/<dataset_id>/data, an episode at a time, written through Minari's own storage (what
    `minari.create_dataset_from_buffers` does, without its fixed root ~/.minari or MINARI_DATASETS_PATH)."""

    def __init__(self, root: Path, dataset_id: str, agent: str, seed: int) -> None:
        self.root, self.dataset_id, self.agent, self.seed = root, dataset_id, agent, seed
        self.storage = None

    def write(self, steps: _Steps, ids: range) -> None:
        minari = _minari()
        from minari.data_collector.episode_buffer import EpisodeBuffer
        from minari.dataset.minari_storage import MinariStorage

        if self.storage is None:
            self.storage = MinariStorage.new(self._data_path(), observation_space=steps.spaces[0],
                                             action_space=steps.spaces[1], data_format=_minari_format())
            self.storage.update_metadata({
                "dataset_id": self.dataset_id, "minari_version": minari.__version__,
                "algorithm_name": self.agent, "author": {"opsworld"},
                "description": f"opsworld: {self.agent} on incidents, every step from reset to the horizon "
                               f"(seed {self.seed}); infos hold the action masks valid for each observation"})
        buffers = [EpisodeBuffer(
            id=e, seed=steps.batch_seed,
            observations={k: v[i] for k, v in steps.observations.items()},      # key -> [T + 1, *shape]
            actions=steps.actions[i], rewards=steps.rewards[i],                   # [T, 3], [T]
            terminations=steps.terminated[i], truncations=steps.truncated[i],
            infos={**{f"action_mask_{m}": np.ascontiguousarray(v[i]) for m, v in steps.masks.items()},
                   # a list: Minari reads a 1-D array info back wrong (it stores its shape as "")
                   "time": steps.time[i].tolist()})                               # [T + 1, ...]
            for i, e in enumerate(ids)]
        self.storage.update_episodes(buffers)
        self.storage.update_episode_metadata([_episode_meta(steps, i, e) for i, e in enumerate(ids)], list(ids))

    def close(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "data_format": _minari_format(), "paths": [self.dataset_id]}

    def _data_path(self) -> Path:
        path = self.root / self.dataset_id / "data"
        path.mkdir(parents=True)
        return path


# ---- reading ---------------------------------------------------------------------------------------------------------
def load_transitions(path: str | Path) -> Transitions:
    """The transitions recorded in `path` (an OUT of `record_transitions`, either format) as [E, T, ...] arrays.
    Raises `TransitionsError` when there is none or it is not whole."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise TransitionsError(f"{path}: no transitions here ({MANIFEST}: {exc})") from None
    read = _read_minari if manifest["format"] == "minari" else _read_parquet
    return read(path, manifest)


def _read_parquet(path: Path, manifest: dict) -> Transitions:
    shapes = {"action": [3], **{f"obs_{k}": s for k, s in manifest["observation_shapes"].items()},
              **{f"mask_{m}": s for m, s in manifest["mask_shapes"].items()}}
    chunks: dict[str, list[np.ndarray]] = {}
    for name in manifest["files"]:          # a row group at a time: the peak stays near the arrays' own size
        file = pq.ParquetFile(path / name)
        for g in range(file.num_row_groups):
            table = file.read_row_group(g)
            for column in table.column_names:
                chunks.setdefault(column, []).append(_column(table, column, shapes.get(column)))
    columns = {k: np.concatenate(v) for k, v in chunks.items()}                     # name -> [E * T, ...]
    episodes = pq.read_table(path / manifest["episodes_file"]).to_pydict()
    e, t = len(episodes["episode"]), manifest["steps_per_episode"]
    if len(columns["step"]) != e * t:
        raise TransitionsError(f"{path}: {len(columns['step'])} steps, not {e} episodes of {t}")
    shaped = lambda a: a.reshape(e, t, *a.shape[1:])          # [E * T, ...] -> [E, T, ...]  # noqa: E731
    if (shaped(columns["episode"]) != np.asarray(episodes["episode"])[:, None]).any() or \
            (shaped(columns["step"]) != np.arange(t)).any():
        raise TransitionsError(f"{path}: the steps are not whole episodes in order")
    return Transitions(
        observations={k: shaped(columns[f"obs_{k}"]) for k in manifest["observation_shapes"]},
        actions=shaped(columns["action"]), rewards=shaped(columns["reward"]),
        terminated=shaped(columns["terminated"]), truncated=shaped(columns["truncated"]),
        masks={m: shaped(columns[f"mask_{m}"]) for m in MASKS}, time=shaped(columns["time"]),
        episodes=np.asarray(episodes["episode"]), scores=np.asarray(episodes["score"], float),
        faults=list(episodes["fault_entry"]), manifest=manifest)


def _read_minari(path: Path, manifest: dict) -> Transitions:
    _minari()
    from minari import MinariDataset

    dataset = MinariDataset(path / manifest["dataset_id"] / "data")
    episodes = list(dataset.iterate_episodes())
    meta = list(dataset.storage.get_episode_metadata(range(dataset.total_episodes)))
    t = manifest["steps_per_episode"]
    if any(len(ep) != t for ep in episodes):
        raise TransitionsError(f"{path}: episodes of other lengths than {t} steps")
    stack = lambda values: np.stack(values)                   # E of [T, ...] -> [E, T, ...]  # noqa: E731
    return Transitions(
        observations={k: stack([ep.observations[k][:t] for ep in episodes]) for k in episodes[0].observations},
        actions=stack([ep.actions for ep in episodes]).astype(np.int64),
        rewards=stack([ep.rewards for ep in episodes]).astype(np.float64),
        terminated=stack([ep.terminations for ep in episodes]).astype(bool),
        truncated=stack([ep.truncations for ep in episodes]).astype(bool),
        masks={m: stack([ep.infos[f"action_mask_{m}"][:t] for ep in episodes]) for m in MASKS},
        time=stack([ep.infos["time"][:t] for ep in episodes]),
        episodes=np.array([m["episode"] for m in meta]), scores=np.array([m["score"] for m in meta], float),
        faults=[m["fault_entry"] for m in meta], manifest=manifest)
