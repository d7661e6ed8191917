"""The rollout runner: the rows it writes, the same bytes whatever the workers and the order batches finish in,
exact replay of an episode from its row, and one clear line for a bad request with nothing written."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from opsworld.envs.worlds import world_from_record
from opsworld.rollout import (EPISODES_DIR, SCHEMA, SUMMARY_FILE, EpisodeWriter, RolloutError, RolloutPlan,
                              replay_episode, rollout, run_batch)
from opsworld.rollout.command import rollout as rollout_command
from opsworld.rollout.runner import in_order

SHORT = dict(horizon=600.0, services=(5, 10))      # 60 ticks: enough for the faults (onset 5-15 min) to show


def _bytes(directory: Path) -> dict[str, bytes]:
    """Every episodes file of a run, by name."""
    return {p.name: p.read_bytes() for p in sorted((directory / EPISODES_DIR).iterdir())}


def _rollout(**kwargs) -> dict:
    """A rollout whose writer starts a new file every 2 batches (the default is far more), to see files roll over."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("opsworld.rollout.runner.EpisodeWriter", functools.partial(EpisodeWriter, batches_per_file=2))
        return rollout(**kwargs)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """70 random-policy episodes in batches of 32 (32 + 32 + 6), on one process, two batches a file."""
    out = tmp_path_factory.mktemp("small")
    _rollout(episodes=70, out=out, seed=3, batch=32, workers=1, **SHORT)
    return out


def test_one_row_per_episode_with_the_schema(small_run: Path) -> None:
    table = pq.read_table(small_run / EPISODES_DIR)
    assert table.schema.names == SCHEMA.names
    assert table.schema.metadata is None or b"pandas" not in table.schema.metadata
    assert table["episode"].to_pylist() == list(range(70))
    assert table["batch"].to_pylist() == [0] * 32 + [1] * 32 + [2] * 6
    files = sorted((small_run / EPISODES_DIR).iterdir())
    assert [p.name for p in files] == ["part-00000.parquet", "part-00001.parquet"]
    groups = [[m.row_group(i).num_rows for i in range(m.num_row_groups)] for m in map(pq.read_metadata, files)]
    assert groups == [[32, 32], [6]]         # one row group per batch
    rows = table.to_pylist()
    for row in rows:
        terms = sum(row[f"reward_{t}"] for t in ("impact", "mitigation", "diagnosis", "costs", "unsafe"))
        assert row["reward"] == pytest.approx(terms)
        assert row["agent"] == "random" and row["horizon"] == 600.0
        assert row["components"] >= row["services"] >= 1
        assert row["fault_entry"] and row["fault_class"] and (row["fault_target"] or row["control"])
        assert row["unsafe"] == len(row["unsafe_rules"])
        assert row["detected"] == (row["time_to_detect"] is not None)
        assert row["mitigated"] == (row["time_to_mitigate"] is not None)
    # one world per batch, rebuilt from its record
    assert len({r["world"] for r in rows if r["batch"] == 0}) == 1
    record = json.loads(rows[40]["world"])
    assert world_from_record(record).seed == rows[40]["world_seed"]
    # the random responder acted, and the incidents cost something
    assert all(r["actions"] > 0 for r in rows)
    assert any(r["impact_minutes"] > 0 for r in rows)
    assert len({r["fault_entry"] for r in rows}) > 5
    summary = json.loads((small_run / SUMMARY_FILE).read_text())
    assert summary["episodes"] == 70 and summary["batches"] == 3
    assert summary["parameters"]["seed"] == 3 and summary["episodes_per_hour"] > 0
    assert summary["peak_rss_mib"]["main"] > 0 and summary["peak_rss_mib"]["workers"] > 0
    assert summary["files"] == ["episodes/part-00000.parquet", "episodes/part-00001.parquet"]
    assert sorted(p.name for p in small_run.iterdir()) == [EPISODES_DIR, SUMMARY_FILE]


def test_two_workers_write_the_same_bytes(small_run: Path, tmp_path: Path) -> None:
    _rollout(episodes=70, out=tmp_path / "two", seed=3, batch=32, workers=2, **SHORT)
    assert _bytes(tmp_path / "two") == _bytes(small_run)
    _rollout(episodes=70, out=tmp_path / "other", seed=4, batch=32, workers=2, **SHORT)
    assert _bytes(tmp_path / "other") != _bytes(small_run)


def test_the_order_batches_finish_in_does_not_matter(small_run: Path, tmp_path: Path) -> None:
    plan = RolloutPlan(episodes=70, seed=3, batch=32, **SHORT)
    done = {k: run_batch(plan, k) for k in reversed(range(plan.batches))}     # last batch first
    writer = EpisodeWriter(tmp_path, batches_per_file=2)
    for k in range(plan.batches):
        writer.write(done[k].table)
    writer.close()
    assert _bytes(tmp_path) == _bytes(small_run)


def test_a_new_run_replaces_the_files_of_an_old_one(tmp_path: Path) -> None:
    _rollout(episodes=70, out=tmp_path, seed=3, batch=32, workers=1, **SHORT)       # 2 files
    rollout(episodes=10, out=tmp_path, seed=3, batch=32, workers=1, **SHORT)        # 1 file
    assert list(_bytes(tmp_path)) == ["part-00000.parquet"]
    assert pq.read_table(tmp_path / EPISODES_DIR).num_rows == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == [EPISODES_DIR, SUMMARY_FILE]


def test_in_order_reorders_with_bounded_work() -> None:
    """A pool that always finishes its newest task first: batches still come out 0, 1, 2, ..., and no more than the
    window are ever running or waiting."""
    running: list[int] = []
    waiting_most = 0
    out = []

    def submit(k: int) -> int:
        running.append(k)
        return k

    def newest_first(handles: list[int]) -> list[tuple[int, str]]:
        nonlocal waiting_most
        waiting_most = max(waiting_most, len(handles))
        k = max(handles)
        running.remove(k)
        return [(k, f"batch {k}")]

    for batch in in_order(10, 3, submit, newest_first):
        out.append(batch)
    assert out == [f"batch {k}" for k in range(10)]
    assert waiting_most <= 3


def test_replay_reproduces_an_episode_from_its_row(small_run: Path) -> None:
    rows = pq.read_table(small_run / EPISODES_DIR).to_pylist()
    for i in (0, 45, 69):                  # batches 0, 1 and the short last one
        report = replay_episode(rows[i])
        assert report["reward"] == rows[i]["reward"]
        assert report["terms"]["impact"] == rows[i]["reward_impact"]
        assert report["actions"] == rows[i]["actions"]


class ActOnly:
    """An agent with `act` only (one per world): it restarts the first component it may, then waits."""

    def reset(self, context, seed: int = 0) -> None:
        self.context, self.acted = context, False
        self.rng = np.random.default_rng(seed)

    def act(self, observation: dict) -> np.ndarray:
        ctx = self.context
        if not self.acted and observation["clock"][0] > self.rng.uniform(0.3, 0.6):
            self.acted = True
            verb = ctx.verb("restart")
            return np.array([verb, int(np.flatnonzero(ctx.masks["target"][verb])[0]), 0])
        return np.array([ctx.verb("wait"), 0, 0])


@pytest.mark.parametrize("agent", ["heuristic-sre", "test_rollout:ActOnly"])
def test_named_agents_run_and_replay(agent: str, tmp_path: Path) -> None:
    rollout(episodes=12, agent=agent, out=tmp_path, seed=5, batch=8, workers=1, **SHORT)
    rows = pq.read_table(tmp_path / EPISODES_DIR).to_pylist()
    assert [r["agent"] for r in rows] == [agent] * 12
    for i in (3, 10):
        assert replay_episode(rows[i])["reward"] == rows[i]["reward"]


class Breaks:
    """An agent that fails mid-episode."""

    def reset(self, context, seed: int = 0) -> None:
        self.context, self.steps = context, 0

    def act_batch(self, observations: dict) -> np.ndarray:
        self.steps += 1
        if self.steps > 5:
            raise RuntimeError("agent broke")
        return np.zeros((len(observations["clock"]), 3), np.int64)

    def act(self, observation: dict) -> np.ndarray:
        return self.act_batch({k: v[None] for k, v in observation.items()})[0]


def test_a_failed_run_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "new" / "run"
    with pytest.raises(RuntimeError, match="agent broke"):
        rollout(episodes=10, agent="test_rollout:Breaks", out=out, batch=5, workers=1, **SHORT)
    assert not out.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(RuntimeError, match="agent broke"):
        rollout(episodes=10, agent="test_rollout:Breaks", out=kept, batch=5, workers=1, **SHORT)
    assert list(kept.iterdir()) == []


# ---- the command -----------------------------------------------------------------------------------------------------
app = typer.Typer()
app.command("rollout")(rollout_command)
app.callback()(lambda: None)          # keep `rollout` a subcommand, as in `opsworld rollout`
runner = CliRunner()


def test_command_runs_and_prints_the_summary(tmp_path: Path) -> None:
    result = runner.invoke(app, ["rollout", "--episodes", "9", "--batch", "4", "--workers", "1", "--horizon", "5m",
                                 "--template", "online-shop", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["episodes"] == 9 and summary["parameters"]["horizon"] == 300.0
    table = pq.read_table(tmp_path / EPISODES_DIR)
    assert table.num_rows == 9 and set(table["components"].to_pylist()) == {11}     # the shop's components


@pytest.mark.parametrize("args, says", [
    (["--episodes", "0"], "episodes must be at least 1"),
    (["--agent", "no-such-agent"], "no agent named 'no-such-agent'"),
    (["--agent", "no_such_module:Agent"], "cannot import 'no_such_module'"),
    (["--batch", "0"], "batch must be at least 1"),
    (["--horizon", "ten minutes"], "--horizon"),
    (["--services", "many"], "--services"),
    (["--services", "10-5"], "services must be a range"),
    (["--template", "no-such-shop"], "no template named 'no-such-shop'"),
])
def test_bad_requests_say_one_line_and_write_nothing(args: list[str], says: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["rollout", "--out", str(out), *args])
    assert result.exit_code == 2
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_an_unwritable_out_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = runner.invoke(app, ["rollout", "--episodes", "2", "--out", str(blocker / "run")])
    assert result.exit_code == 2
    assert "is a file, not a directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(RolloutError):
        rollout(episodes=2, out=blocker)
    assert blocker.read_text() == "not a directory"
