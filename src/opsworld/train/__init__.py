"""Training a PPO policy on generated worlds (the train/test splits are in `opsworld.eval.splits`).

Import the submodules directly; this package imports nothing itself, so that its torch-free parts load without torch."""
