"""Training on generated worlds: the train/test splits (`opsworld.train.splits`) and the PPO policy.

Import the submodules directly; this package imports nothing itself, so that the splits load without torch."""
