"""sb3-contrib's MaskablePPO on the env: it reads `action_masks()`, trains a few thousand steps, and its masked
sampling never picks a choice the flat mask forbids, where unmasked random actions on the same seeds do.

The flat mask is the verb mask plus the unions of the targets and arguments over the valid verbs (see the module
docstring of `opsworld.envs.gym_env`), so the masked policy can still pair a verb with another verb's target: those,
and only those, are what the env refuses it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sb3_contrib")

import gymnasium as gym  # noqa: E402
import torch  # noqa: E402
from sb3_contrib import MaskablePPO  # noqa: E402
from sb3_contrib.common.maskable.distributions import MaskableMultiCategoricalDistribution  # noqa: E402
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported  # noqa: E402

import opsworld.envs  # noqa: E402,F401  (registers opsworld/Incident-v0)
from opsworld.envs.gym_env import IncidentVectorEnv  # noqa: E402

SMALL = {"horizon": 600.0, "faults": ["bad_deploy_errors"]}     # 60 ticks, one fault entry (and the controls)
SEEDS = range(100, 104)


def _outside(actions: np.ndarray, flat: np.ndarray, nvec: np.ndarray) -> np.ndarray:
    """[n] whether each action [n, 3] picks a verb, target or argument the flat mask [V + T + G] forbids."""
    offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])          # [3] where each dimension starts in the mask
    return ~flat[actions.astype(np.int64) + offsets].all(axis=1)


def _play(env: gym.Env, policy, seeds: range) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The actions the env looked at (the responder was free), whether each was refused, and the exact masks'
    verdict on it: ([n, 3], [n], [n])."""
    actions, refused, allowed = [], [], []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        m = info["action_mask"]
        terminated = False
        while not terminated:
            free = obs["clock"][1] == 0          # a busy responder's action is ignored, not refused
            action = np.asarray(policy(obs, rng), dtype=np.int64)
            obs, _, terminated, _, info = env.step(action)
            if free:
                v, t, a = action
                actions.append(action)
                refused.append(obs["clock"][3] == 1)
                inside = v < len(m["verb"]) and t < m["target"].shape[1] and a < m["argument"].shape[1]
                allowed.append(bool(inside and m["verb"][v] and m["target"][v, t] and m["argument"][v, a]))
    return np.array(actions), np.array(refused), np.array(allowed)


def test_maskable_ppo_trains_and_samples_only_what_the_mask_allows() -> None:
    env = gym.make("opsworld/Incident-v0", **SMALL)
    assert is_masking_supported(env)
    nvec = env.action_space.nvec
    flat = env.unwrapped.action_masks()
    assert not flat.all()                   # online-shop has verbs with no target: there is something to mask

    model = MaskablePPO("MultiInputPolicy", env, n_steps=512, batch_size=128, n_epochs=2, seed=0, verbose=0)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(total_timesteps=2048)
    assert model.num_timesteps >= 2048
    assert any(not torch.equal(before[k], v) for k, v in model.policy.state_dict().items())

    # the last rollout: MaskablePPO stored our masks beside the actions it sampled through them
    buffer = model.rollout_buffer
    assert np.array_equal(buffer.action_masks.reshape(-1, flat.size), np.tile(flat, (buffer.buffer_size, 1)))
    assert not _outside(buffer.actions.reshape(-1, 3), flat, nvec).any()

    # the trained policy, masked, against unmasked uniform random actions on the same seeds
    masked = _play(env, lambda obs, rng: model.predict(obs, action_masks=get_action_masks(env))[0], SEEDS)
    unmasked = _play(env, lambda obs, rng: rng.integers(0, nvec), SEEDS)
    assert not _outside(masked[0], flat, nvec).any()
    forbidden = _outside(unmasked[0], flat, nvec)
    assert forbidden.any() and unmasked[1][forbidden].all()     # unmasked, forbidden verbs get picked and refused
    # the env refuses exactly what the conditional masks forbid: so every refusal of the masked policy is a valid
    # verb paired with a target or argument only another verb takes (the flat mask cannot say more)
    for _, refused, allowed in (masked, unmasked):
        assert np.array_equal(refused, ~allowed)


def test_vector_env_masks_fit_maskable_multicategorical_sampling() -> None:
    """[N, V + T + G] from the vector env is the layout MaskablePPO's MultiDiscrete distribution splits per row."""
    env = IncidentVectorEnv(num_envs=32, seed=0, **SMALL)
    env.reset(seed=0)
    nvec = env.single_action_space.nvec
    flat = env.action_masks()                                                  # [32, V + T + G]
    dist = MaskableMultiCategoricalDistribution([int(n) for n in nvec])
    torch.manual_seed(0)
    dist.proba_distribution(torch.zeros(32, int(nvec.sum())))                  # uniform logits
    dist.apply_masking(flat)
    actions = np.concatenate([dist.sample().numpy() for _ in range(20)])       # [640, 3]
    assert not _outside(actions, flat[0], nvec).any()
    V = nvec[0]
    assert set(np.unique(actions[:, 0])) == set(np.flatnonzero(flat[0, :V]))  # every valid verb, no other
