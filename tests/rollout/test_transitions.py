"""Offline-RL transitions: whole episodes of every step, the same arrays from Parquet and from Minari's own reader,
rewards that add up to the episodes' scores (and to `opsworld rollout`'s rows), the same bytes from the same seed,
and a behaviour-cloned classifier that reproduces the teacher's verbs on held-out episodes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from opsworld.act.vocabulary import VERBS
from opsworld.envs.generator import CatalogueGenerator
from opsworld.envs.gym_env import IncidentVectorEnv
from opsworld.envs.incident import IncidentConfig
from opsworld.rollout import (RolloutPlan, TransitionsError, load_transitions, record_transitions, run_batch,
                              transitions_config)
from opsworld.rollout.transitions import EPISODES_FILE, MANIFEST, STEPS_DIR

TEACHER = "heuristic-sre"
ENTRIES = ("bad_deploy_errors", "cpu_hog")     # a deploy to roll back, a runaway process to restart
HORIZON = 600.0                                # 60 ticks: the faults begin 5-15 minutes in
EPISODES, BATCH, SEED = 96, 48, 7


def _config() -> IncidentConfig:
    return transitions_config("online-shop", horizon=HORIZON, entries=ENTRIES)


def _bytes(directory: Path) -> dict[str, bytes]:
    """Every file under a directory, by its path there."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """96 episodes of the heuristic teacher, in two batches of 48, as Parquet."""
    out = tmp_path_factory.mktemp("teacher")
    record_transitions(TEACHER, _config(), episodes=EPISODES, seed=SEED, out=out, fmt="parquet", batch=BATCH)
    return out


# ---- layout and episodes ---------------------------------------------------------------------------------------------
def test_parquet_layout_shapes_and_episode_boundaries(teacher: Path) -> None:
    data = load_transitions(teacher)
    env = IncidentVectorEnv(num_envs=1, config=_config())
    ticks = env.inc.ticks
    assert ticks == 60
    # the files: one per batch, one row per step and world, by (episode, step)
    assert data.manifest["files"] == [f"{STEPS_DIR}/part-00000.parquet", f"{STEPS_DIR}/part-00001.parquet"]
    table = pq.read_table(teacher / STEPS_DIR / "part-00001.parquet")
    assert table.num_rows == BATCH * ticks
    assert table.column("episode").to_pylist()[:ticks + 1] == [BATCH] * ticks + [BATCH + 1]
    assert table.column("world").to_pylist()[ticks] == 1
    # every observation key with its shape, the actions, the masks
    E, T = EPISODES, ticks
    space = env.single_observation_space
    assert set(data.observations) == set(space.spaces)
    for key, value in data.observations.items():
        assert value.shape == (E, T, *space[key].shape) and value.dtype == np.float32, key
        assert data.manifest["observation_shapes"][key] == list(space[key].shape)
    V, P, G = (int(x) for x in env.single_action_space.nvec)
    assert data.actions.shape == (E, T, 3) and data.actions.dtype == np.int64
    assert ((data.actions >= 0) & (data.actions < [V, P, G])).all()
    assert data.rewards.shape == data.terminated.shape == data.truncated.shape == data.time.shape == (E, T)
    assert {k: v.shape for k, v in data.masks.items()} == {"verb": (E, T, V), "target": (E, T, V, P),
                                                            "argument": (E, T, V, G)}
    _, info = env.reset(seed=0)
    for name, mask in info["action_mask"].items():
        assert (data.masks[name] == mask).all(), name
    # whole episodes: from reset (t = 0) to the horizon, terminated at the last step only, never truncated
    assert (data.episodes == np.arange(E)).all()
    assert (data.time == np.arange(T) * env.inc.system.dt).all()
    assert data.terminated[:, -1].all() and not data.terminated[:, :-1].any()
    assert not data.truncated.any()
    assert data.observations["clock"][:, 0, 0].max() == 0.0       # the elapsed share at reset
    assert set(ENTRIES) <= set(data.faults)
    episodes = pq.read_table(teacher / EPISODES_FILE)
    assert episodes.column("episode").to_pylist() == list(range(E))
    assert episodes.column("batch").to_pylist() == [0] * BATCH + [1] * BATCH


def test_rewards_sum_to_the_episodes_scores_and_to_the_rollouts_rows(teacher: Path) -> None:
    data = load_transitions(teacher)
    assert data.rewards.sum(axis=1) == pytest.approx(data.scores, rel=1e-9, abs=1e-6)
    assert (data.scores != 0).any()
    # the same episodes as `opsworld rollout --template online-shop` with the same seed, batch, horizon and entries
    plan = RolloutPlan(episodes=EPISODES, agent=TEACHER, seed=SEED, batch=BATCH, horizon=HORIZON,
                       template="online-shop", entries=ENTRIES)
    rows = run_batch(plan, 1).table.to_pydict()
    assert rows["episode"] == list(range(BATCH, EPISODES))
    assert rows["fault_entry"] == data.faults[BATCH:]
    assert data.rewards[BATCH:].sum(axis=1) == pytest.approx(rows["reward"], rel=1e-9, abs=1e-6)


def test_any_incident_config_and_the_random_policy(tmp_path: Path) -> None:
    config = IncidentConfig(scenario="online-shop", horizon=300.0,
                            generator=CatalogueGenerator(entries=["bad_deploy_errors"]))
    manifest = record_transitions("random", config, episodes=5, seed=2, out=tmp_path, fmt="parquet", batch=3)
    data = load_transitions(tmp_path)
    assert manifest["steps_per_episode"] == 30 and data.actions.shape == (5, 30, 3)
    assert data.faults == ["bad_deploy_errors"] * 5
    assert data.rewards.sum(axis=1) == pytest.approx(data.scores, rel=1e-9, abs=1e-6)
    assert len(np.unique(data.verbs)) > 3                  # the random policy's verbs, not a teacher's waits


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    def run(name: str, seed: int, fmt: str) -> dict[str, bytes]:
        record_transitions(TEACHER, _config(), episodes=5, seed=seed, out=tmp_path / name, fmt=fmt, batch=3)
        return _bytes(tmp_path / name)

    first = run("a", 3, "parquet")
    assert sorted(first) == [EPISODES_FILE, f"{STEPS_DIR}/part-00000.parquet", f"{STEPS_DIR}/part-00001.parquet",
                             MANIFEST]
    assert run("b", 3, "parquet") == first
    assert run("c", 4, "parquet") != first
    run("a", 4, "parquet")                                  # a rerun into the same place replaces it whole
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "c")
    if _has_minari():
        assert run("m1", 3, "minari") == run("m2", 3, "minari")


def test_bad_requests_write_nothing(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"

    def refused(message: str, **kwargs) -> None:
        request = dict(agent=TEACHER, config=_config(), episodes=2, seed=0, out=out, fmt="parquet") | kwargs
        with pytest.raises(TransitionsError, match=message):
            record_transitions(**request)
        assert not out.exists()

    refused("format must be one of", fmt="hdf5")
    refused("episodes must be at least 1", episodes=0)
    refused("batch must be at least 1", batch=0)
    refused("seed must be 0 or more", seed=-1)
    refused("no agent named", agent="no-such-agent")
    if _has_minari():
        refused("is not a Minari id", fmt="minari", dataset_id="opsworld/no-version")
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "minari", None)          # as if the extra `offline` were not installed
        refused(r"needs Minari: pip install -e '\.\[offline\]'", fmt="minari")
    with pytest.raises(TransitionsError, match="no template named"):
        transitions_config("no-such-template")
    with pytest.raises(TransitionsError, match="no catalogue entry named"):
        transitions_config("online-shop", entries=["no_such_entry"])
    with pytest.raises(TransitionsError, match="no transitions here"):
        load_transitions(tmp_path)


# ---- Minari ----------------------------------------------------------------------------------------------------------
def _has_minari() -> bool:
    try:
        import minari  # noqa: F401
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True


def test_minari_dataset_reads_back_with_minaris_own_loader(tmp_path: Path, monkeypatch) -> None:
    minari = pytest.importorskip("minari")
    pytest.importorskip("PIL", reason="Minari's storage imports Pillow")
    request = dict(agent=TEACHER, config=_config(), episodes=5, seed=3, batch=3)
    manifest = record_transitions(**request, out=tmp_path / "minari", fmt="minari")
    record_transitions(**request, out=tmp_path / "parquet", fmt="parquet")
    dataset_id = manifest["dataset_id"]
    assert dataset_id == "opsworld/online-shop/heuristic-sre-v0"
    assert (tmp_path / "minari" / dataset_id / "data" / "metadata.json").is_file()

    # OUT is a Minari datasets root: Minari's own loader finds the dataset by its id
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    assert dataset_id in minari.list_local_datasets()
    dataset = minari.load_dataset(dataset_id)
    assert dataset.total_episodes == 5 and dataset.total_steps == 5 * 60
    assert dataset.action_space.nvec.tolist() == manifest["action_nvec"]
    assert dataset.storage.metadata["algorithm_name"] == TEACHER

    # the same arrays as the Parquet layout holds, episode by episode
    flat = load_transitions(tmp_path / "parquet")
    meta = list(dataset.storage.get_episode_metadata(range(5)))
    for e, episode in enumerate(dataset.iterate_episodes()):
        assert episode.id == e and len(episode) == 60
        for key, value in flat.observations.items():
            assert episode.observations[key].shape == (61, *value.shape[2:])     # and the one after the last step
            assert (episode.observations[key][:60] == value[e]).all(), key
        assert (episode.actions == flat.actions[e]).all()
        assert (episode.rewards == flat.rewards[e]).all()
        assert (episode.terminations == flat.terminated[e]).all() and episode.terminations[-1]
        assert not episode.truncations.any()
        for name, mask in flat.masks.items():
            assert (episode.infos[f"action_mask_{name}"][:60] == mask[e]).all(), name
        assert meta[e]["score"] == flat.scores[e] and meta[e]["fault_entry"] == flat.faults[e]
        assert episode.rewards.sum() == pytest.approx(meta[e]["score"], rel=1e-9, abs=1e-6)

    # and our reader gives the same from either format
    both = load_transitions(tmp_path / "minari")
    assert (both.actions == flat.actions).all() and (both.scores == flat.scores).all()
    assert all((both.observations[k] == v).all() for k, v in flat.observations.items())


# ---- behaviour cloning -----------------------------------------------------------------------------------------------
def test_behaviour_cloning_reproduces_the_teacher(teacher: Path) -> None:
    """A 1-nearest-neighbour classifier from observation to verb, fitted on the first 72 episodes, matches the
    teacher's verb on the held-out 24 far better than always answering its most common verb (`wait`)."""
    data = load_transitions(teacher)
    E, T = data.actions.shape[:2]
    X = np.concatenate([data.observations[k].reshape(E, T, -1) for k in sorted(data.observations)], axis=2)
    #                                                                              [E, T, F] every key flattened
    y = data.verbs                                                                 # [E, T]
    free = data.observations["clock"][..., 1] == 0      # the responder can act (else the env ignores the action)
    train = np.arange(E) < E * 3 // 4
    Xtr, ytr = X[train][free[train]], y[train][free[train]]                        # [n, F], [n]
    Xte, yte = X[~train][free[~train]], y[~train][free[~train]]                    # [m, F], [m]

    # squared distances by |a|^2 + |b|^2 - 2 a.b: one matrix product, [m, n]
    d2 = (Xte ** 2).sum(1)[:, None] + (Xtr ** 2).sum(1)[None, :] - 2.0 * Xte @ Xtr.T
    predicted = ytr[d2.argmin(axis=1)]
    match = (predicted == yte).mean()

    # chance: always the training set's most common verb
    majority = np.bincount(ytr, minlength=len(VERBS)).argmax()
    assert VERBS[majority] == "wait"
    baseline = (yte == majority).mean()
    acting = yte != majority                     # the steps where the teacher did something: baseline gets 0 right
    recall = (predicted[acting] == yte[acting]).mean()
    assert acting.sum() >= 20 and len(np.unique(yte[acting])) >= 3
    print(f"BC verb match {match:.4f} vs majority baseline {baseline:.4f}; "
          f"on the teacher's {acting.sum()} non-wait steps {recall:.3f} vs 0")
    assert match >= baseline + (1.0 - baseline) / 2       # at least halves the baseline's error
    assert recall >= 0.5


def test_the_transitions_command_writes_and_reads_back(tmp_path):
    import json

    from typer.testing import CliRunner

    from opsworld.cli import app
    runner = CliRunner()
    out = tmp_path / "t"
    result = runner.invoke(app, ["transitions", "-n", "2", "--batch", "2", "--horizon", "5m", "--fault",
                                 "bad_deploy_errors", "--format", "parquet", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    loaded = load_transitions(out)
    assert loaded.actions.shape[:2] == (2, manifest["steps_per_episode"])
    bad = runner.invoke(app, ["transitions", "-n", "2", "--format", "hdf5", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "error" in bad.output and not (tmp_path / "x").exists()
