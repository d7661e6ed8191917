"""Batched rollouts of many incidents, on local processes or a Ray cluster, streamed to Parquet (`opsworld rollout`).

```python
from opsworld.rollout import rollout, replay_episode
summary = rollout(episodes=10_000, out="out/rollout", seed=1, horizon=600)   # out/rollout/episodes/, rollout.json
import pyarrow.parquet as pq
row = pq.read_table("out/rollout/episodes").slice(42, 1).to_pylist()[0]
assert replay_episode(row)["reward"] == row["reward"]
```
"""

from opsworld.rollout.records import BATCHES_PER_FILE, EPISODES_DIR, SCHEMA, EpisodeWriter
from opsworld.rollout.runner import (RANDOM, SUMMARY_FILE, Batch, RolloutError, RolloutPlan, local_batches,
                                     local_tasks, replay_episode, rollout, run_batch)
from opsworld.rollout.transitions import (Transitions, TransitionsError, load_transitions, record_transitions,
                                          transitions_config)

__all__ = ["BATCHES_PER_FILE", "EPISODES_DIR", "SCHEMA", "SUMMARY_FILE", "RANDOM", "Batch", "EpisodeWriter",
           "RolloutError", "RolloutPlan", "local_batches", "local_tasks",
           "replay_episode", "rollout", "run_batch",
           "Transitions", "TransitionsError", "load_transitions", "record_transitions", "transitions_config"]
