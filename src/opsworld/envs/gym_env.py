"""Gymnasium environments: `opsworld/Incident-v0`, one world, and its native vector form, N worlds in one batched
engine with no Python loop per world.

## Observation Space
A `Dict` of float32 boxes (S components, A dashboard alerts, F dashboard signals, L log signatures):
- `alerts` [S, A]: the dashboard's firing alerts per component (silenced ones hidden);
- `changes` [S, 2]: recency of the last deploy and config change of each component, exp(-age / 30 min);
- `query` [S]: the last `query_metrics` result — one dashboard signal for every component; `query_signal` [F] its
  one-hot;
- `logs` [L]: the last `read_logs` — the share of each kind of error line in that service's logs; `logs_of` [S];
- `traces` [S]: the last `get_traces` — where the failures and delay of the traced service's requests come from;
- `clock` [4]: elapsed share of the episode, whether the responder is busy, has paged, and whether the last action
  was refused as invalid.

## Action Space
`MultiDiscrete([V, T, G])`: a verb (`VERBS`), a target (`places`: components, nodes, zones, endpoints,
certificates) and an argument whose meaning depends on the verb (a signal for `query_metrics`, a duration level for
`wait` and `silence_alert`, a replica level for `scale`, a fault class for `submit`, ...). `info["action_mask"]`
holds `verb` [V], `target` [V, T] and `argument` [V, G] masks (int8) of the valid choices; an invalid action is
refused with `clock[3] = 1`, costs one tick and changes nothing.

## Rewards
Per tick, from the truth state only (`opsworld.score.reward`; docs/reward.md): minus user impact (200 points per
outage-minute), credits for a true mitigation and a right diagnosis, minus action costs and unsafe-action penalties.
The episode
lasts the scenario's horizon whatever the agent does; `submit` hands over and the world runs on. Ground truth is in
`info["truth"]` only on the last step.

## Action masking (sb3-contrib's `MaskablePPO`)
`action_masks()` returns the flat boolean mask `MaskablePPO` reads for a `MultiDiscrete` space: [V + T + G], the verb,
target and argument masks end to end ([N, V + T + G] from the vector env, a row per world). A flat mask masks each
dimension on its own, so it cannot say "this target only with that verb": it holds the verb mask, and for targets and
arguments the union over the valid verbs (valid for some verb). A policy that samples through it never picks a
verb with no valid target, nor a target or argument no valid verb takes; it can still pair a verb with a target or
argument only another verb takes (`wait` on a node, `scale` with a fault class), and the env refuses that as any
invalid action (`clock[3] = 1`, one tick, nothing changes): most of the verb-conditional structure is left for the
policy to learn. `info["action_mask"]` keeps the exact masks for policies that sample the verb first.

## Rendering
`render_mode="ansi"` gives the on-call dashboard as text, `"rgb_array"` as a [H, W, 3] uint8 image (needs
matplotlib): the clock, the firing alerts by component, recent changes, the last query, logs and traces, and whether
the responder is busy (`opsworld.envs.render`). It draws the agent's observation only, never the ground truth, and
does not change the episode. The vector env renders a tuple, one frame per world.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from opsworld.act.mitigations import MITIGATIONS
from opsworld.act.vocabulary import (ARGUMENTS, FAULT_CLASSES, POOL_FACTORS, RATE_FACTORS, SCALE_FACTORS,
                                     SILENCE_SECONDS, VERBS, WAIT_TICKS, masks, places, valid)
from opsworld.engine.graph import below
from opsworld.envs.difficulty import Difficulty, level
from opsworld.envs.incident import IncidentConfig, Incidents
from opsworld.envs.render import Labels, ansi, rgb_array
from opsworld.observe.dashboard import ALERTS, LOG_SIGNATURES, SIGNALS

_CHANGE_DECAY = 1800.0
_HIGH = 100.0        # signals are ratios and shares; clipped here so the spaces are bounded
_RENDER_MODES = ["ansi", "rgb_array"]
_RENDER_FPS = 4      # frames are ticks of the simulated clock: a playback speed only, nothing runs in real time


class IncidentVectorEnv(VectorEnv):
    """N incidents in one batched engine. See the module docstring for the spaces and the reward."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": _RENDER_MODES, "render_fps": _RENDER_FPS}

    def __init__(self, num_envs: int = 1, scenario: str = "online-shop", faults: list[str] | None = None,
                 horizon: float | None = None, onset: tuple[float, float] = (300.0, 900.0), seed: int = 0,
                 config: IncidentConfig | None = None, first_world: int = 0, render_mode: str | None = None,
                 difficulty: str | Difficulty = "easy") -> None:
        if render_mode is not None and render_mode not in _RENDER_MODES:
            raise ValueError(f"render_mode {render_mode!r} is none of {_RENDER_MODES}")
        self.render_mode = render_mode
        self.num_envs = num_envs
        dial = level(difficulty)
        self.config = config or IncidentConfig(scenario=scenario, horizon=horizon,
                                               generator=dial.generator(entries=faults, onset=onset,
                                                                        horizon=horizon or 3600.0),
                                               telemetry_gaps=0.3 * dial.telemetry_gaps, coverage=dial.coverage())
        # first_world: the engine's noise of world i is that of world first_world + i alone (an episode id)
        self.inc = Incidents(self.config, worlds=num_envs, seed=seed, first_world=first_world)
        self._seed = seed
        self._episodes = 0
        inc = self.inc
        topo = inc.topology
        self.places = list(places(inc.scenario, topo))
        S, A, F, L = topo.n_components, len(ALERTS), len(SIGNALS), len(LOG_SIGNATURES)
        V, T = len(VERBS), len(self.places)
        G = ARGUMENTS
        box = lambda *shape, high=_HIGH: spaces.Box(0.0, high, shape, np.float32)   # noqa: E731
        self.single_observation_space = spaces.Dict({
            "alerts": box(S, A, high=1.0), "changes": box(S, 2, high=1.0), "query": box(S),
            "query_signal": box(F, high=1.0), "logs": box(L, high=1.0), "logs_of": box(S, high=1.0),
            "traces": box(S), "clock": box(4, high=1.0)})
        self.single_action_space = spaces.MultiDiscrete([V, T, G])
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._masks = masks(inc.engine, inc.scenario, self.places)
        self._flat_mask = flat_mask(self._masks)                                  # [V + T + G] static per scenario
        # the dashboard's static names and scales: with the observation, all that render() draws from
        self.labels = Labels(scenario=inc.scenario.name, components=tuple(topo.components), alerts=tuple(ALERTS),
                              signals=tuple(SIGNALS), log_signatures=tuple(LOG_SIGNATURES),
                              horizon=inc.ticks * inc.system.dt, change_decay=_CHANGE_DECAY)
        self._below = below(topo.edge_src, topo.edge_dst, S).astype(np.float32)   # [S, S] the real calls' reach
        self._G = G
        self._needs_reset = False
        self._clear(np.arange(num_envs))

    # ---- gymnasium API ---------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self._seed, self._episodes = seed, 0
        draws = (options or {}).get("draws")      # a fixed suite: one `Draw` per world (see envs/generator.py)
        self.inc.reset(self._seed + self._episodes * 1_000_003, draws=draws)
        self._episodes += 1
        self._needs_reset = False
        self._clear(np.arange(self.num_envs))
        return self._obs(), self._info()

    def step(self, actions: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, dict]:
        B = self.num_envs
        if self._needs_reset:            # next-step autoreset: every world ends together, at the horizon
            obs, info = self.reset()
            return obs, np.zeros(B), np.zeros(B, bool), np.zeros(B, bool), info
        inc = self.inc
        actions = np.asarray(actions, dtype=np.int64).reshape(B, 3)
        verb, target, arg = actions[:, 0], actions[:, 1], actions[:, 2]
        self.error[:] = False
        free = np.flatnonzero(inc.free(np.arange(B)))
        ok = valid(self._masks, verb[free], target[free], arg[free])
        bad = free[~ok]
        if len(bad):
            self.error[bad] = True
            inc.refuse(bad, inc.system.dt)
        self._act(free[ok], verb[free[ok]], target[free[ok]], arg[free[ok]])
        inc.advance()
        self._track_changes()
        reward = inc.take_reward()
        done = inc.done
        terminated = np.full(B, done)
        info = self._info()
        if done:
            info["truth"] = np.array([r.model_dump() for r in inc.reports()], dtype=object)
            self._needs_reset = True
        return self._obs(), reward, terminated, np.zeros(B, bool), info

    def action_masks(self) -> np.ndarray:
        """[N, V + T + G] bool: per world the flat mask sb3-contrib's `MaskablePPO` reads (see the module docstring)."""
        return np.tile(self._flat_mask, (self.num_envs, 1))

    def render(self) -> tuple[str | np.ndarray, ...] | None:
        """A dashboard frame per world (text or [H, W, 3] uint8, as `render_mode` says), drawn from the observation."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode: pass render_mode='ansi' or 'rgb_array'")
            return None
        draw = ansi if self.render_mode == "ansi" else rgb_array
        obs = self._obs()             # a fresh read of what the agent sees; reading it changes nothing
        return tuple(draw({k: v[w] for k, v in obs.items()}, self.labels) for w in range(self.num_envs))

    # ---- the verbs -----------------------------------------------------------------------------------------------------
    def _act(self, worlds: np.ndarray, verb: np.ndarray, target: np.ndarray, arg: np.ndarray) -> None:
        """Decode the indices into the incident's verbs, grouped by verb; investigations also fill the observation."""
        inc, dt = self.inc, self.inc.system.dt
        for v in np.unique(verb):
            pick = verb == v
            w, t, a = worlds[pick], target[pick], arg[pick]
            name = VERBS[int(v)]
            if name == "wait":
                inc.wait(w, np.asarray(WAIT_TICKS)[a] * dt)
            elif name == "query_metrics":
                inc.investigate(name, w)
                self.query[w] = inc.dashboard.signals[w, :, a]
                self.query_signal[w] = 0.0
                self.query_signal[w, a] = 1.0
            elif name == "read_logs":
                inc.investigate(name, w)
                self.logs[w] = inc.dashboard.log_signatures(t, w)
                self.logs_of[w] = 0.0
                self.logs_of[w, t] = 1.0
            elif name == "get_traces":
                inc.investigate(name, w)
                self.traces[w] = self._trace_summary(t, w)
            elif name == "silence_alert":
                inc.silence(w, np.asarray(SILENCE_SECONDS)[a], components=t)
            elif name == "acknowledge":
                inc.acknowledge(w)
            elif name == "submit":
                classes = [FAULT_CLASSES[int(x)] for x in a]
                comps = [[] if c in ("no_fault", "benign_change") else [self.places[int(x)]]
                         for x, c in zip(t, classes)]
                inc.submit(w, comps, classes)
            else:
                self._mitigate(name, w, t, a)

    def _mitigate(self, name: str, worlds: np.ndarray, target: np.ndarray, arg: np.ndarray) -> None:
        """Group the worlds by target: one order per (mitigation, target), the amounts per world."""
        inc, topo = self.inc, self.inc.topology
        m = MITIGATIONS[name]
        for t in np.unique(target):
            pick = target == t
            w, a = worlds[pick], arg[pick]
            place = self.places[int(t)] if m.target not in ("nothing", "team") else None
            amount = None
            if name == "scale":
                s = topo.index(place)
                amount = np.maximum(np.rint(np.asarray(SCALE_FACTORS)[a] * topo.replicas[s]), 1.0)
            elif name == "rate_limit":
                rate = self._usual_rate(place, w)
                amount = np.maximum(np.asarray(RATE_FACTORS)[a] * rate, 1.0)
            elif name == "set_pool_size":
                amount = np.maximum(np.rint(np.asarray(POOL_FACTORS)[a] * _pool(inc, place)), 1.0)
            inc.mitigate(name, place, amount, w, checked=True)     # the masks allow only valid targets

    def _usual_rate(self, place: str, worlds: np.ndarray) -> np.ndarray:
        """[W] requests per second the target usually takes, as the dashboard's baseline knows it."""
        inc = self.inc
        if place in inc.topology.components:
            base = inc.dashboard.usual_load
            return base[worlds, inc.topology.index(place)] if base is not None else np.ones(len(worlds))
        p = inc.topology.endpoints.index(place)
        return np.full(len(worlds), float(inc.engine.rates[min(inc.engine.tick, len(inc.engine.rates) - 1), p]))

    def _trace_summary(self, target: np.ndarray, worlds: np.ndarray) -> np.ndarray:
        """[W, S] for each traced service, how much each component below it (the real calls) fails or lags."""
        inc = self.inc
        sig = inc.dashboard.signals[worlds]
        hurt = sig[..., SIGNALS.index("error_ratio")] + np.maximum(sig[..., SIGNALS.index("latency_ratio")] - 1, 0)
        below = self._below[target]                                  # [W, S]
        return (hurt * below).astype(np.float32)

    # ---- observation -------------------------------------------------------------------------------------------------
    def _clear(self, worlds: np.ndarray) -> None:
        inc = self.inc
        S, F, L = inc.topology.n_components, len(SIGNALS), len(LOG_SIGNATURES)
        B = self.num_envs
        self.query = np.zeros((B, S), np.float32)
        self.query_signal = np.zeros((B, F), np.float32)
        self.logs = np.zeros((B, L), np.float32)
        self.logs_of = np.zeros((B, S), np.float32)
        self.traces = np.zeros((B, S), np.float32)
        self.error = np.zeros(B, bool)
        self.changed_at = np.full((B, S, 2), -np.inf)
        k = inc.system.knobs
        self._versions = (k.deploy.copy(), k.config.copy())

    def _track_changes(self) -> None:
        k = self.inc.system.knobs
        for i, now in enumerate((k.deploy, k.config)):
            moved = (now != self._versions[i]).T              # [B, S]
            if moved.any():
                self.changed_at[..., i][moved] = self.inc.time
                self._versions[i][...] = now

    def _obs(self) -> dict[str, np.ndarray]:
        inc = self.inc
        horizon = inc.ticks * inc.system.dt
        clock = np.stack([np.full(self.num_envs, inc.time / horizon),
                          ~inc.free(np.arange(self.num_envs)), np.isfinite(inc.paged_at), self.error], axis=1)
        return {"alerts": inc.alerts_seen().astype(np.float32),
                "changes": np.exp((self.changed_at - inc.time) / _CHANGE_DECAY).astype(np.float32),
                "query": np.clip(self.query, 0.0, _HIGH), "query_signal": self.query_signal.copy(),
                "logs": self.logs.copy(), "logs_of": self.logs_of.copy(), "traces": np.clip(self.traces, 0.0, _HIGH),
                "clock": clock.astype(np.float32)}

    def _info(self) -> dict[str, Any]:
        return {"action_mask": {k: v.copy() for k, v in self._masks.items()},
                "time": np.full(self.num_envs, self.inc.time)}


class IncidentEnv(gym.Env):
    """One incident: the vector env with N=1, unbatched. Registered as `opsworld/Incident-v0`."""

    metadata = {"render_modes": _RENDER_MODES, "render_fps": _RENDER_FPS}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self.vec = IncidentVectorEnv(num_envs=1, render_mode=render_mode, **kwargs)
        self.render_mode = render_mode
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        obs, info = self.vec.reset(seed=seed)
        return _first(obs), _first_info(info)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.vec.step(np.asarray(action)[None])
        out = _first_info(info)
        if "truth" in info:
            out["truth"] = info["truth"][0]
        return _first(obs), float(reward[0]), bool(terminated[0]), bool(truncated[0]), out

    def action_masks(self) -> np.ndarray:
        """[V + T + G] bool: the flat mask sb3-contrib's `MaskablePPO` reads (see the module docstring)."""
        return self.vec.action_masks()[0]

    def render(self) -> str | np.ndarray | None:
        """The dashboard as text or a [H, W, 3] uint8 image, as `render_mode` says; None without one."""
        frames = self.vec.render()
        return None if frames is None else frames[0]

    @property
    def incidents(self) -> Incidents:
        return self.vec.inc


def flat_mask(masks: dict[str, np.ndarray]) -> np.ndarray:
    """[V + T + G] bool: the verb mask, then the targets and the arguments some valid verb takes.

    The flat form cannot hold the verb-conditional masks ([V, T], [V, G]); the union keeps every valid action
    reachable and leaves the env to refuse a pairing of a verb with another verb's target or argument."""
    verb = masks["verb"] > 0                                   # [V]
    target = (masks["target"][verb] > 0).any(axis=0)           # [T]
    argument = (masks["argument"][verb] > 0).any(axis=0)       # [G]
    return np.concatenate([verb, target, argument])


def _first(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v[0] for k, v in obs.items()}


def _first_info(info: dict) -> dict:
    return {"action_mask": info["action_mask"], "time": float(info["time"][0])}


def _pool(inc: Incidents, place: str) -> float:
    topo = inc.topology
    s = topo.index(place)
    pools = topo.edge_pool[topo.edge_src == s]
    return float(pools[pools > 0].max()) if (pools > 0).any() else 1.0
