"""The Gymnasium envs: registration, env_checker, the native vector env, determinism, masks and bad actions."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import opsworld  # noqa: F401  (registers opsworld/Incident-v0)
from opsworld.envs.gym_env import IncidentVectorEnv
from opsworld.act.vocabulary import FAULT_CLASSES, VERBS, sample_actions

SHORT = {"horizon": 1200.0, "onset": (120.0, 300.0)}


def test_make_and_check_env() -> None:
    env = gym.make("opsworld/Incident-v0", **SHORT)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert set(info["action_mask"]) == {"verb", "target", "argument"}


def test_make_vec_uses_the_batched_engine() -> None:
    envs = gym.make_vec("opsworld/Incident-v0", num_envs=16, vectorization_mode="vector_entry_point", **SHORT)
    assert isinstance(envs.unwrapped, IncidentVectorEnv)
    assert envs.unwrapped.inc.engine.worlds == 16          # one engine for all worlds, not 16 envs
    obs, info = envs.reset(seed=1)
    assert envs.observation_space.contains(obs)
    actions = sample_actions(info["action_mask"], np.random.default_rng(0), 16)
    obs, reward, terminated, truncated, info = envs.step(actions)
    assert reward.shape == (16,) and not terminated.any() and "truth" not in info


def _episode(seed: int, policy_seed: int, n: int = 8) -> tuple[list, list, list]:
    env = IncidentVectorEnv(num_envs=n, seed=seed, **SHORT)
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(policy_seed)
    observations, rewards, truths = [obs], [], []
    while True:
        obs, reward, terminated, _, info = env.step(sample_actions(info["action_mask"], rng, n))
        observations.append(obs)
        rewards.append(reward)
        if terminated.all():
            truths = list(info["truth"])
            break
        assert "truth" not in info        # the ground truth only when the episode ends
    return observations, rewards, truths


def test_same_seed_and_actions_give_a_bit_identical_episode() -> None:
    a, b = _episode(5, 9), _episode(5, 9)
    for oa, ob in zip(a[0], b[0]):
        for key in oa:
            assert np.array_equal(oa[key], ob[key])
    assert all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))
    assert a[2] == b[2]
    c = _episode(6, 9)
    assert not all(np.array_equal(x, y) for x, y in zip(a[1], c[1]))


def test_episode_reward_is_the_sum_of_step_rewards() -> None:
    _, rewards, truths = _episode(2, 4)
    total = np.sum(rewards, axis=0)
    assert np.allclose(total, [t["reward"] for t in truths])


def test_next_step_autoreset_starts_a_new_episode() -> None:
    env = IncidentVectorEnv(num_envs=4, seed=1, horizon=60.0, onset=(10.0, 20.0))
    obs, info = env.reset(seed=1)
    wait = np.zeros((4, 3), np.int64)
    for _ in range(6):
        obs, reward, terminated, _, info = env.step(wait)
    assert terminated.all() and "truth" in info
    obs, reward, terminated, _, info = env.step(wait)       # the reset step
    assert not terminated.any() and (reward == 0).all() and env.inc.time == 0.0


def test_bad_actions_are_refused_cost_a_tick_and_change_nothing() -> None:
    env = IncidentVectorEnv(num_envs=3, seed=1, **SHORT)
    env.reset(seed=1)
    knobs = copy.deepcopy(env.inc.engine.knobs)
    restart = VERBS.index("restart")
    node = env.places.index(env.inc.topology.nodes[0])       # a node is no target for a restart
    bad = np.array([[len(VERBS) + 3, 0, 0],                   # no such verb
                    [restart, node, 0],                       # a target the verb cannot take
                    [VERBS.index("submit"), 0, len(FAULT_CLASSES) + 1]])   # an argument out of range
    obs, reward, *_ = env.step(bad)
    assert (obs["clock"][:, 3] == 1).all()                    # the observation says it was refused
    assert (env.inc.score.bad_actions == 1).all() and (reward < 0).all()
    assert not env.inc.pending and not np.isfinite(env.inc.submitted_at).any()
    for name in ("restart_at", "replicas", "deploy", "config", "drained"):
        assert np.array_equal(getattr(knobs, name), getattr(env.inc.engine.knobs, name))
    obs, *_ = env.step(np.zeros((3, 3), np.int64))           # busy for a tick, then free again
    assert (obs["clock"][:, 3] == 0).all()


def test_random_actions_follow_the_masks() -> None:
    env = IncidentVectorEnv(num_envs=64, seed=2, **SHORT)
    _, info = env.reset(seed=2)
    actions = sample_actions(info["action_mask"], np.random.default_rng(1), 64)
    masks = info["action_mask"]
    v, t, a = actions.T
    assert (masks["verb"][v] == 1).all() and (masks["target"][v, t] == 1).all() and (masks["argument"][v, a] == 1).all()
    obs, *_ = env.step(actions)
    assert (obs["clock"][:, 3] == 0).all()                    # none refused


@pytest.mark.parametrize("template", ["hotel-reservation", "social-network", "llm-inference"])
def test_every_template_makes_an_env(template: str) -> None:
    env = gym.make("opsworld/Incident-v0", scenario=template, **SHORT)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.array([0, 0, 0]))
    assert env.observation_space.contains(obs) and np.isfinite(reward)
