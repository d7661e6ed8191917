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


# ---- action_masks() for sb3-contrib's MaskablePPO --------------------------------------------------------------------
def test_action_masks_are_the_verb_mask_and_the_unions_of_the_conditional_masks() -> None:
    env = gym.make("opsworld/Incident-v0", **SHORT)
    _, info = env.reset(seed=0)
    m = info["action_mask"]
    V, T, G = env.action_space.nvec
    flat = env.unwrapped.action_masks()
    assert flat.shape == (V + T + G,) and flat.dtype == bool                  # MaskablePPO's MultiDiscrete layout
    verb, target, argument = np.split(flat, [V, V + T])
    assert np.array_equal(verb, m["verb"] > 0)
    ok = m["verb"] > 0
    for t in range(T):                    # a target is allowed when some valid verb takes it
        assert target[t] == any(m["target"][v, t] for v in np.flatnonzero(ok))
    for g in range(G):
        assert argument[g] == any(m["argument"][v, g] for v in np.flatnonzero(ok))
    assert not verb.all()                 # online-shop has verbs with no target: the mask masks something

    vec = IncidentVectorEnv(num_envs=5, seed=0, **SHORT)
    vec.reset(seed=0)
    rows = vec.action_masks()
    assert rows.shape == (5, V + T + G) and (rows == flat).all()              # a row per world
    rows[0, :] = False                                                        # a copy: the env's masks stay intact
    assert vec.action_masks()[0].any()


def test_flat_masked_actions_are_refused_only_for_a_pairing_of_another_verbs_target() -> None:
    """Actions drawn through the flat mask: the env refuses exactly those the conditional masks forbid."""
    env = IncidentVectorEnv(num_envs=256, seed=3, **SHORT)
    _, info = env.reset(seed=3)
    V, T, _ = env.single_action_space.nvec
    rng = np.random.default_rng(0)
    parts = np.split(env.action_masks()[0], [V, V + T])
    actions = np.stack([[rng.choice(np.flatnonzero(p)) for p in parts] for _ in range(256)])   # [256, 3]
    m = info["action_mask"]
    v, t, a = actions.T
    assert (m["verb"][v] == 1).all()
    conditional = (m["target"][v, t] == 1) & (m["argument"][v, a] == 1)
    assert 0 < conditional.sum() < 256
    obs, *_ = env.step(actions)
    assert np.array_equal(obs["clock"][:, 3] == 1, ~conditional)


# ---- render() --------------------------------------------------------------------------------------------------------
def test_render_modes_are_declared_and_pass_through_make() -> None:
    for mode in ("ansi", "rgb_array"):
        env = gym.make("opsworld/Incident-v0", render_mode=mode, **SHORT)
        assert env.render_mode == mode and env.unwrapped.vec.render_mode == mode
        assert set(env.metadata["render_modes"]) == {"ansi", "rgb_array"}
    env = gym.make("opsworld/Incident-v0", render_mode="ansi", **SHORT)
    check_env(env.unwrapped)              # with the render check: every declared mode, through the spec
    vec = gym.make_vec("opsworld/Incident-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       render_mode="ansi", **SHORT)
    vec.reset(seed=0)
    frames = vec.render()
    assert len(frames) == 3 and all(isinstance(f, str) for f in frames)
    with pytest.raises(ValueError):
        IncidentVectorEnv(num_envs=1, render_mode="human", **SHORT)


def _investigate(env: gym.Env, seed: int) -> dict:
    """A short scripted shift: wait for the fault, then query the error ratio, read logs, get traces."""
    from opsworld.observe.dashboard import SIGNALS
    places = env.unwrapped.vec.places
    obs, _ = env.reset(seed=seed)
    script = [(VERBS.index("wait"), 0, 3), (VERBS.index("query_metrics"), 0, SIGNALS.index("error_ratio")),
              (VERBS.index("read_logs"), places.index("checkoutservice"), 0),
              (VERBS.index("get_traces"), places.index("frontend"), 0)]
    for action in script:
        obs, *_ = env.step(np.array(action))
        while obs["clock"][1] > 0:          # busy: let the action finish before the next
            obs, *_ = env.step(np.array([0, 0, 0]))
    return obs


def test_ansi_dashboard_is_drawn_from_the_observation() -> None:
    from opsworld.envs.render import ansi
    env = gym.make("opsworld/Incident-v0", render_mode="ansi", horizon=1200.0, onset=(60.0, 120.0),
                   faults=["bad_deploy_errors"])
    obs = _investigate(env, seed=1)
    text = env.render()
    assert text == ansi(obs, env.unwrapped.vec.labels)       # a function of what the agent saw, nothing more
    assert "online-shop" in text and "of 20:00" in text and "responder free" in text
    assert "Last query: error_ratio" in text and "Last logs: checkoutservice" in text
    firing = obs["alerts"].any(axis=1)
    components = env.unwrapped.incidents.topology.components
    assert firing.any()
    for s, name in enumerate(components):             # a component is listed under the alerts iff one fires on it
        listed = any(line.startswith(f"  {name} ") for line in text.split("Recent changes:")[0].splitlines())
        assert listed == bool(firing[s])


def test_rgb_array_dashboard_is_an_image_of_the_observation() -> None:
    env = gym.make("opsworld/Incident-v0", render_mode="rgb_array", horizon=1200.0, onset=(60.0, 120.0),
                   faults=["bad_deploy_errors"])
    env.reset(seed=1)
    calm = env.render()
    assert calm.dtype == np.uint8 and calm.ndim == 3 and calm.shape[2] == 3
    _investigate(env, seed=1)
    busy = env.render()
    assert busy.shape == calm.shape and not np.array_equal(busy, calm)        # alerts fired and signals were read
    assert np.array_equal(busy, env.render())                                 # the same observation, the same image


@pytest.mark.parametrize("mode,every", [("ansi", 1), ("rgb_array", 15)])
def test_rendering_does_not_change_the_episode(mode: str, every: int) -> None:
    def run(render_mode: str | None) -> tuple[list, list]:
        env = gym.make("opsworld/Incident-v0", render_mode=render_mode, horizon=600.0, onset=(60.0, 120.0))
        obs, info = env.reset(seed=7)
        rng = np.random.default_rng(2)
        seen, rewards = [obs], []
        for k in range(60):
            if render_mode is not None and k % every == 0:
                env.render()
            obs, reward, terminated, _, info = env.step(sample_actions(info["action_mask"], rng, 1)[0])
            seen.append(obs)
            rewards.append(reward)
        assert terminated
        return seen, rewards
    plain, drawn = run(None), run(mode)
    assert plain[1] == drawn[1]
    for a, b in zip(plain[0], drawn[0]):
        assert all(np.array_equal(a[k], b[k]) for k in a)
