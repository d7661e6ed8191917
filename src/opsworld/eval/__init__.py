"""Evaluation of agents, above them all: fixed suites and leaderboards (`suites.py`), the reward's audit against
cheats and baselines (`audit.py`), the attacker search over habits (`attack.py`) and the train/test splits of a
policy trained on generated worlds (`splits.py`). Import the submodules directly; this package imports nothing
itself."""
