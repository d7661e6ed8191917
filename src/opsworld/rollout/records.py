"""What a rollout writes: one Parquet row per episode, with everything needed to replay it exactly, and the one
writer that streams batches of rows to disk.

The files are a pure function of the rows: a fixed schema with no pandas metadata, one row group per batch written in
episode order, a fixed number of row groups per file, no timestamps. So the same seeds give the same bytes whichever
runner (processes or Ray) produced the rows and in whatever order the batches finished.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from opsworld.score.reward import TERMS

SCHEMA = pa.schema([
    # which episode, and what rebuilds it (`replay_episode` reads these)
    ("episode", pa.int64()),
    ("batch", pa.int64()),
    ("seed", pa.int64()),                  # the rollout's seed: the fault draw and the random actions follow from it
    ("batch_seed", pa.int64()),            # the engine's seed (and a named agent's), drawn from (seed, batch)
    ("world_seed", pa.int64()),            # the world's seed, drawn from (seed, batch)
    ("world", pa.string()),                # the world's record (JSON): `world_from_record` rebuilds it
    ("horizon", pa.float64()),             # seconds the episode lasted
    ("agent", pa.string()),
    # the world and its incident
    ("components", pa.int32()),
    ("services", pa.int32()),
    ("fault_entry", pa.string()),          # the catalogue entry drawn
    ("fault_class", pa.string()),          # the fault's kind, what a diagnosis must name (no_fault for a control)
    ("fault_target", pa.string()),
    ("fault_onset", pa.float64()),         # seconds after the start
    ("fault", pa.string()),                # the fault's parameters (JSON)
    ("also", pa.string()),                 # the faults drawn beside it: a compound's (marked), companions,
    #                                        distractions (JSON)
    ("control", pa.bool_()),
    ("roots", pa.list_(pa.string())),
    # the score (`ScoreReport`)
    ("reward", pa.float64()),
    *[(f"reward_{t}", pa.float64()) for t in TERMS],
    ("detected", pa.bool_()),
    ("time_to_detect", pa.float64()),      # null: never detected
    ("mitigated", pa.bool_()),
    ("time_to_mitigate", pa.float64()),    # null: never mitigated
    ("localized", pa.bool_()),
    ("root_cause_correct", pa.bool_()),
    ("fault_class_correct", pa.bool_()),
    ("ntam", pa.float64()),
    ("impact_minutes", pa.float64()),      # outage-minutes
    ("impaired_requests", pa.float64()),
    ("requests", pa.float64()),
    ("unsafe", pa.int32()),                # unsafe control actions
    ("unsafe_rules", pa.list_(pa.string())),
    ("actions", pa.int32()),
    ("bad_actions", pa.int32()),
    ("failed_orders", pa.int32()),
    ("paged", pa.bool_()),
    ("submitted", pa.bool_()),
])

EPISODES_DIR = "episodes"        # DIR/episodes/part-00000.parquet, ...: `pq.read_table(DIR / "episodes")` reads all
BATCHES_PER_FILE = 256           # a file's footer grows with its row groups in the writer's memory: start a new one
_COMPRESSION = "zstd"


def to_json(value: object) -> str:
    """Canonical JSON (sorted keys, no spaces): the same value always gives the same string."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def episode_row(episode: int, batch: int, seed: int, batch_seed: int, world, horizon: float, agent: str,
                draw, report: dict) -> dict:
    """The row of one episode: its identity and seeds, its world and drawn fault, and its score report."""
    scenario = world.scenario
    fault = draw.fault
    return {
        "episode": episode, "batch": batch, "seed": seed, "batch_seed": batch_seed, "world_seed": world.seed,
        "world": to_json(world.record), "horizon": horizon, "agent": agent,
        "components": len(scenario.components),
        "services": sum(c.kind == "service" for c in scenario.components.values()),
        "fault_entry": draw.entry, "fault_class": fault.kind, "fault_target": fault.target,
        "fault_onset": fault.onset_seconds(scenario), "fault": to_json(fault.model_dump(mode="json")),
        "also": to_json([{"kind": f.kind, "compound": True, **f.model_dump(mode="json")} for f in draw.others]
                        + [{"kind": f.kind, **f.model_dump(mode="json")} for f in draw.also]),
        "control": report["control"], "roots": report["roots"],
        "reward": report["reward"], **{f"reward_{t}": report["terms"][t] for t in TERMS},
        "detected": report["detected"], "time_to_detect": report["time_to_detect"],
        "mitigated": report["mitigated"], "time_to_mitigate": report["time_to_mitigate"],
        "localized": report["localized"], "root_cause_correct": report["root_cause_correct"],
        "fault_class_correct": report["fault_class_correct"], "ntam": report["ntam"],
        "impact_minutes": report["impact_minutes"], "impaired_requests": report["impaired_requests"],
        "requests": report["requests"],
        "unsafe": len(report["unsafe"]), "unsafe_rules": [u["rule"] for u in report["unsafe"]],
        "actions": report["actions"], "bad_actions": report["bad_actions"], "failed_orders": report["failed_orders"],
        "paged": report["paged"], "submitted": report["submitted"],
    }


def episode_table(rows: list[dict]) -> pa.Table:
    """Rows as a table of the fixed schema (no pandas, no metadata)."""
    return pa.Table.from_pylist(rows, schema=SCHEMA)


class EpisodeWriter:
    """Streams tables of episodes into `DIR/episodes/part-NNNNN.parquet`, one row group per table, in the order given,
    `batches_per_file` row groups to a file (a writer keeps every row group's metadata until it closes the file, some
    30 KB each: files of bounded size keep its memory flat over millions of episodes).

    The files are written in `DIR/episodes.partial/` and moved into place only on `close()`, so a run that fails or
    is interrupted leaves nothing half-written behind (`abort()` removes them)."""

    def __init__(self, directory: Path, batches_per_file: int = BATCHES_PER_FILE) -> None:
        self.path = Path(directory) / EPISODES_DIR
        self.partial = Path(directory) / (EPISODES_DIR + ".partial")
        self.batches_per_file = batches_per_file
        self.files: list[str] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_file = 0
        shutil.rmtree(self.partial, ignore_errors=True)       # what a killed run left
        self.partial.mkdir()

    def write(self, table: pa.Table) -> None:
        """Append one batch's rows as one row group."""
        if self._writer is None or self._in_file == self.batches_per_file:
            self._next_file()
        self._writer.write_table(table, row_group_size=max(len(table), 1))
        self._in_file += 1
        self.rows += len(table)

    def close(self) -> list[str]:
        """Finish the files and move them into place (replacing an earlier run's); their paths under DIR."""
        if self._writer is not None:
            self._writer.close()
        if self.path.exists():
            old = self.path.with_name(EPISODES_DIR + ".old")
            shutil.rmtree(old, ignore_errors=True)
            self.path.rename(old)
            shutil.rmtree(old)
        self.partial.rename(self.path)
        return [f"{EPISODES_DIR}/{name}" for name in self.files]

    def abort(self) -> None:
        """Drop what was written."""
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            shutil.rmtree(self.partial, ignore_errors=True)

    def _next_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
        name = f"part-{len(self.files):05d}.parquet"
        # statistics only where they help a reader skip row groups: those of the JSON columns would be long strings
        numeric = [f.name for f in SCHEMA if not pa.types.is_string(f.type) and not pa.types.is_list(f.type)]
        self._writer = pq.ParquetWriter(self.partial / name, SCHEMA, compression=_COMPRESSION,
                                        write_statistics=numeric)
        self.files.append(name)
        self._in_file = 0
