"""The rollout runner on Ray: the same 1,000 episodes locally and on a local Ray cluster give the same Parquet bytes;
an unreachable cluster is one clear line and nothing written."""

from __future__ import annotations

import functools
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray")

from opsworld.rollout import EPISODES_DIR, EpisodeWriter, RolloutError, rollout  # noqa: E402

EPISODES = 1000
SHORT = dict(horizon=300.0, services=(5, 10), batch=128, seed=11)     # 8 batches of 30 ticks


@pytest.fixture
def cluster():
    """A local Ray cluster with two worker CPUs, shut down after the test."""
    context = ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


def test_ray_writes_the_same_bytes_as_local_processes(cluster: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # three batches a file (the default is far more), so that the files roll over as well
    monkeypatch.setattr("opsworld.rollout.runner.EpisodeWriter", functools.partial(EpisodeWriter, batches_per_file=3))
    local = rollout(episodes=EPISODES, out=tmp_path / "local", workers=2, **SHORT)
    on_ray = rollout(episodes=EPISODES, out=tmp_path / "ray", ray=cluster, **SHORT)
    assert local["episodes"] == on_ray["episodes"] == EPISODES
    assert on_ray["parameters"]["ray"] == cluster and on_ray["parameters"]["workers"] == 2
    assert ray.is_initialized()          # a connection made before the rollout is left to its owner
    a, b = tmp_path / "local" / EPISODES_DIR, tmp_path / "ray" / EPISODES_DIR
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir()) == [f"part-0000{i}.parquet" for i in range(3)]
    assert all((a / name).read_bytes() == (b / name).read_bytes() for name in files)
    ta, tb = pq.read_table(a), pq.read_table(b)
    assert ta.equals(tb)
    assert ta["episode"].to_pylist() == list(range(EPISODES))


def test_an_unreachable_cluster_is_refused(tmp_path: Path) -> None:
    assert not ray.is_initialized()
    out = tmp_path / "out"
    with pytest.raises(RolloutError, match="cannot reach the cluster at 127.0.0.1:1"):
        rollout(episodes=4, out=out, ray="127.0.0.1:1")
    with pytest.raises(RolloutError, match="not a cluster address"):
        rollout(episodes=4, out=out, ray="nowhere")
    assert not out.exists() and not ray.is_initialized()
