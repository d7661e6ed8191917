"""One topology's episode for the trainer: draw the world, run its batched engine to the horizon with the policy
choosing every decision, and return the decisions and what each world earned tick by tick (in whatever process
runs it). The trainer computes the advantages (`Rollout.advantages`) once it has updated its reward normalisation.

Only worlds whose responder is free are asked for an action (`features.decisions`); a decision's reward is what its
world earned until its next decision, and GAE discounts by the ticks between them (a semi-MDP). Each world keeps a
`features.Memory` of what its responder has seen and done, as `PolicyAgent` does at evaluation.

Beside the reward, each tick's cost is counted: the unsafe control actions it found that the responder took (the
scorer's rules, read off the truth like the reward; `unsafe.ACTIVE`: an action that was the hazard). The trainer
charges them at a price it adapts (`Rollout.tensors(penalty=...)`). What a responder leaves undone (no page for a
fault beyond the runbook, a fix too late) is not an action a price can push it off; the score's own terms charge it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from opsworld.agents import load_agent
from opsworld.agents.base import context_of
from opsworld.envs.gym_env import IncidentVectorEnv
from opsworld.eval.splits import TRAIN
from opsworld.rollout.runner import derive_seed
from opsworld.score.unsafe import ACTIVE, RULES
from opsworld.train.features import (GLOBAL_FEATURES, SERVICE_FEATURES, Memory, Structure, decisions,
                                     global_features, service_features, structure_of)
from opsworld.train.policy import ServicePolicy, TorchStructure

# seed tags of the trainer (apart from the rollout runner's and the eval's, so no stream is shared)
_WORLD, _ENGINE, _DRAW, _ACT = 0x7A1, 0x7A2, 0x7A3, 0x7A4


@dataclass
class Rollout:
    """One topology's decisions (N of them) and its episodes' outcomes."""

    structure: Structure
    services: np.ndarray        # [N, S, SERVICE_FEATURES]
    world: np.ndarray           # [N, GLOBAL_FEATURES]
    actions: np.ndarray         # [N, 3]
    advice: np.ndarray          # [N, 3] the advisor's actions for the same decisions (zeros without an advisor)
    logp: np.ndarray            # [N] log-probability of the action when drawn
    rewards: np.ndarray         # [T, W] each world's reward per tick (raw points)
    costs: np.ndarray           # [T, W] each world's unsafe control actions taken, found per tick
    diagnosis: np.ndarray       # [T, W] each world's diagnosis credit per tick (points, part of `rewards`)
    values: np.ndarray          # [T, W] the value estimate at each decision (0 elsewhere)
    asked: np.ndarray           # [T, W] bool: the decisions (row-major order = the order of the N above)
    reports: list[dict]         # per world: its score report

    @property
    def steps(self) -> int:
        """World-ticks."""
        return self.rewards.size

    def return_moments(self, gamma: float) -> tuple[float, float, float]:
        """(count, mean, variance) of the discounted return as it runs tick by tick, as a running normaliser sees
        it."""
        running = np.zeros(self.rewards.shape[1])
        seen = np.empty(self.rewards.shape)
        for t in range(len(self.rewards)):
            running = running * gamma + self.rewards[t]
            seen[t] = running
        return float(seen.size), float(seen.mean()), float(seen.var())

    def tensors(self, scale: float, gamma: float, lam: float, penalty: float = 0.0, diagnosis: float = 1.0) -> dict:
        """The decisions as tensors, with advantages and value targets for rewards less `penalty` points per unsafe
        action, with the diagnosis credit counted `diagnosis` times, multiplied by `scale`."""
        shaped = (self.rewards - penalty * self.costs + (diagnosis - 1.0) * self.diagnosis) * scale
        advantages = advantages_of(shaped, self.values, self.asked, gamma, lam)[self.asked]
        values = self.values[self.asked]
        return {"services": torch.from_numpy(self.services), "world": torch.from_numpy(self.world),
                "actions": torch.from_numpy(self.actions), "advice": torch.from_numpy(self.advice),
                "logp": torch.from_numpy(self.logp),
                "values": torch.from_numpy(values), "advantages": torch.from_numpy(advantages.astype(np.float32)),
                "returns": torch.from_numpy((advantages + values).astype(np.float32)),
                "structure": TorchStructure(self.structure)}


def priced(config) -> tuple[str, ...]:
    """The unsafe rules the training's price charges: those broken by an action taken, less `config.unpriced`."""
    unpriced = {r.strip() for r in config.unpriced.split(",")}
    return tuple(r for r in ACTIVE if r not in unpriced)


def training_world(config, iteration: int, topology: int):
    """The world of topology g at iteration i: drawn from the training distribution (`splits.TRAIN`), sized by
    `config.services`."""
    from dataclasses import replace

    return replace(TRAIN, services=tuple(config.services)).draw(derive_seed(config.seed, _WORLD, iteration, topology))


def collect(weights: dict, config, iteration: int, topology: int, teacher: str | None = None) -> Rollout:
    """Run topology `topology` of iteration `iteration` with the policy `weights` (its values estimated by it, reading
    `config.advisor`'s advice when it names one), the actions drawn from the policy, or taken by the `teacher` agent
    when one is named (to imitate)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # the same arithmetic in a worker and in the trainer's process
    try:
        return _collect(weights, config, iteration, topology, teacher)
    finally:
        torch.set_num_threads(threads)


def _collect(weights: dict, config, iteration: int, topology: int, teacher: str | None) -> Rollout:
    world = training_world(config, iteration, topology)
    W = config.worlds
    engine_seed = derive_seed(config.seed, _ENGINE, iteration, topology)
    draws = [world.generator.draw(world.scenario, np.random.default_rng([config.seed, _DRAW, iteration, topology, b]))
             for b in range(W)]
    env = IncidentVectorEnv(num_envs=W, config=world.config(config.horizon), seed=engine_seed)
    obs, _ = env.reset(seed=engine_seed, options={"draws": draws})
    structure = structure_of(context_of(env))
    torch_structure = TorchStructure(structure)
    advised = config.advisor != "none"
    model = ServicePolicy(len(structure.verb_mask), structure.argument_mask.shape[1], config.hidden, advised)
    model.load_state_dict(weights)
    seed = derive_seed(config.seed, _ACT, iteration, topology)
    generator = torch.Generator().manual_seed(seed)
    advisor = load_agent(config.advisor) if advised else None
    guide = None if teacher is None else advisor if teacher == config.advisor else load_agent(teacher)
    for agent in {id(a): a for a in (advisor, guide) if a is not None}.values():
        agent.reset(context_of(env), seed)
    T = env.inc.ticks
    rewards = np.zeros((T, W), np.float32)
    costs = np.zeros((T, W), np.float32)
    credit = np.zeros((T, W), np.float32)
    diagnosed = env.inc.score.terms["diagnosis"].copy()
    memory = Memory(W, structure)
    active = np.array([name in priced(config) for name in RULES])     # what the constraint charges: actions taken
    unsafe = env.inc.score.rule_hits[:, active].sum(axis=1)
    free = np.zeros((T, W), bool)
    values = np.zeros((T, W), np.float32)
    kept: dict[str, list[np.ndarray]] = {"services": [], "world": [], "actions": [], "advice": [], "logp": []}
    reports: list[dict] = []
    for t in range(T):
        memory.observe(obs)
        asked = np.flatnonzero(decisions(obs))
        actions = np.zeros((W, 3), np.int64)
        # the advisor and the teacher see every tick (a teacher that is the advisor is asked once)
        advice = advisor.act_batch(obs)[asked] if advisor is not None else np.zeros((len(asked), 3), np.int64)
        shown = None if guide is None else advice if guide is advisor else guide.act_batch(obs)[asked]
        if len(asked):
            s, g = service_features(obs, structure, memory, asked), global_features(obs, memory, asked)
            with torch.no_grad():
                a, logp, _, v = model(torch.from_numpy(s), torch.from_numpy(g), torch_structure,
                                      actions=None if shown is None else torch.from_numpy(shown),
                                      generator=generator, advice=torch.from_numpy(advice) if advised else None)
            actions[asked] = a.numpy()
            memory.acted(asked, actions[asked])
            values[t, asked] = v.numpy()
            free[t, asked] = True
            for key, x in (("services", s), ("world", g), ("actions", a.numpy()), ("advice", advice),
                           ("logp", logp.numpy())):
                kept[key].append(x)
        obs, reward, terminated, _, info = env.step(actions)
        rewards[t] = reward
        hits = env.inc.score.rule_hits[:, active].sum(axis=1)
        costs[t], unsafe = hits - unsafe, hits
        now = env.inc.score.terms["diagnosis"]
        credit[t], diagnosed = now - diagnosed, now.copy()
        if terminated.all():
            reports = list(info["truth"])
            T = t + 1
            break
    join = lambda key, shape, kind: (np.concatenate(kept[key]) if kept[key] else np.zeros(shape)).astype(kind)  # noqa
    S = structure.components
    return Rollout(structure=structure, services=join("services", (0, S, SERVICE_FEATURES), np.float32),
                   world=join("world", (0, GLOBAL_FEATURES), np.float32), actions=join("actions", (0, 3), np.int64),
                   advice=join("advice", (0, 3), np.int64),
                   logp=join("logp", (0,), np.float32), rewards=rewards[:T], costs=costs[:T],
                   diagnosis=credit[:T], values=values[:T],
                   asked=free[:T], reports=reports)


def advantages_of(rewards: np.ndarray, values: np.ndarray, free: np.ndarray, gamma: float, lam: float
                  ) -> np.ndarray:
    """[T, W] GAE at the decisions (0 elsewhere), every world's episode ending at T (no bootstrap).

    Backwards over ticks, per world: `pending` is the discounted reward from this tick to the next decision, `k` the
    ticks to it; at a decision, delta = pending + gamma^k V(next) - V(now) and A = delta + (gamma lam)^k A(next)."""
    T, W = rewards.shape
    out = np.zeros((T, W), np.float64)
    next_value, next_adv = np.zeros(W), np.zeros(W)
    pending, k = np.zeros(W), np.zeros(W)
    for t in range(T - 1, -1, -1):
        pending = rewards[t] + gamma * pending
        k += 1.0
        d = free[t]
        delta = pending + gamma ** k * next_value - values[t]
        adv = delta + (gamma * lam) ** k * next_adv
        out[t] = np.where(d, adv, 0.0)
        next_value = np.where(d, values[t], next_value)
        next_adv = np.where(d, adv, next_adv)
        pending = np.where(d, 0.0, pending)
        k = np.where(d, 0.0, k)
    return out
