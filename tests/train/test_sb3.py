"""The env trains with Stable-Baselines3's PPO out of the box: its env checker passes, a few thousand steps learn,
and the learned model predicts valid-shaped actions."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import gymnasium as gym  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_checker import check_env  # noqa: E402

import opsworld.envs  # noqa: E402,F401  (registers opsworld/Incident-v0)


def test_stable_baselines3_ppo_trains_on_the_env():
    env = gym.make("opsworld/Incident-v0", horizon=600.0)
    with pytest.warns(UserWarning, match="unconventional shape"):     # [S, A] boxes: SB3 flattens them itself
        check_env(env.unwrapped)
    model = PPO("MultiInputPolicy", env, n_steps=512, batch_size=128, n_epochs=2, seed=0, verbose=0)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(total_timesteps=3072)
    assert model.num_timesteps >= 3072
    assert any(not np.array_equal(before[k].numpy(), v.numpy()) for k, v in model.policy.state_dict().items())
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)
    obs, reward, terminated, truncated, info = env.step(action)
    assert np.isfinite(reward)
