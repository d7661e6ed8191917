"""Verifiable incident problems for training language models: observation bundles (`bundle`), tasks with answers
from the ground truth (`tasks`), the verifier (`verify`) and the Parquet factory (`factory`, `opsworld dataset`).

`verify` is imported at once (a trainer's reward function needs nothing else); the factory on first use.
"""

from opsworld.dataset.verify import verify

__all__ = ["CLASSES", "DIFFICULTIES", "SCHEMA", "TASKS", "DatasetError", "make_items", "parse_difficulty",
           "regenerate", "verify", "write_dataset"]

_FACTORY = ("DIFFICULTIES", "SCHEMA", "DatasetError", "make_items", "parse_difficulty", "regenerate", "write_dataset")


def __getattr__(name: str):
    if name in _FACTORY:
        from opsworld.dataset import factory

        return getattr(factory, name)
    if name in ("CLASSES", "TASKS"):
        from opsworld.dataset import tasks

        return getattr(tasks, name)
    raise AttributeError(name)
