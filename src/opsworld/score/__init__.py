"""Reward and verifiers from the truth state and the ground truth only: the running reward (`reward.py`), the
unsafe-control-action rules (`unsafe.py`) and the per-episode report with the field's metrics (`report.py`)."""
