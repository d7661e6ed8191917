"""The trainer's configuration: every field documented, one `opsworld train` option each (no torch needed)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Everything a training run depends on; `opsworld train --help` lists the same fields."""

    seed: int = 1
    """seed of the run: worlds, faults, engine noise, action draws, initial weights, minibatch order"""
    total_steps: int = 200_000_000
    """environment steps (world-ticks) to train for"""
    minutes: float | None = None
    """stop at the end of the first iteration past this many minutes of wall time (None: run to total_steps)"""
    worlds: int = 256
    """incidents per topology in an iteration (one batched engine)"""
    topologies: int = 4
    """topologies drawn per iteration"""
    services: tuple[int, int] = (5, 30)
    """size range of the generated topologies (components)"""
    horizon: float = 3600.0
    """seconds an episode lasts (10-second ticks)"""
    workers: int = 2
    """processes collecting the topologies (1: in this process)"""
    threads: int = 2
    """torch threads for the update (a resumed run must use the same to continue bit-for-bit)"""
    hidden: int = 64
    """width of the policy network"""
    learning_rate: float = 3e-4
    """Adam's step size"""
    anneal_lr: bool = True
    """decay the learning rate linearly to 0 over total_steps"""
    gamma: float = 0.995
    """discount per 10-second tick"""
    gae_lambda: float = 0.95
    """GAE's lambda, per tick"""
    update_epochs: int = 4
    """passes over an iteration's decisions"""
    minibatch_size: int = 1024
    """decisions per gradient step (drawn within one topology)"""
    clip_coef: float = 0.2
    """PPO's clipping of the probability ratio"""
    ent_coef: float = 0.003
    """weight of the entropy bonus"""
    vf_coef: float = 0.5
    """weight of the value loss"""
    max_grad_norm: float = 0.5
    """gradients are clipped to this global norm"""
    target_kl: float | None = None
    """stop an iteration's update early past this approximate KL (None: never)"""
    unsafe_target: float = 0.01
    """share of episodes with an unsafe control action taken (`unsafe.ACTIVE`) that the training aims at or below"""
    unsafe_price: float = 100.0
    """starting price, in reward points, charged in training for each unsafe control action on top of the score's
    own penalty (a Lagrange multiplier: it adapts after every iteration; the score itself is unchanged)"""
    unsafe_price_rate: float = 1000.0
    """points the price moves per iteration per unit of unsafe share above the target (down when below, never
    under 0)"""
    unpriced: str = "paged_with_nothing_wrong"
    """unsafe rules (comma-separated) the price leaves to the score's own penalty: a page with nothing wrong already
    costs the page, the human's wasted minutes and the rule's points, enough to learn from, while a price in the
    thousands would stop the policy ever finding out when a page is worth it"""
    diagnosis_weight: float = 10.0
    """times the score's diagnosis credit counts in training (the score itself is unchanged): a right diagnosis is
    worth a few outage-seconds in the score, too faint among hundreds of points of impact for the policy to learn to
    hand over with one"""
    imitate: str = "none"
    """an agent whose actions the policy first learns to copy (behaviour cloning) before PPO goes on, or 'none'
    (PPO from scratch, as the shipped policy was trained)"""
    advisor: str = "none"
    """an agent whose proposed action the policy reads at every decision, or 'none' (residual learning: the policy
    learns when to follow a scripted responder and when to depart from it; the advisor is not told when it is
    overruled, and goes on as if its advice had been taken). The policy file names it: the agent runs beside the
    policy wherever the policy acts"""
    imitate_iterations: int = 10
    """iterations of imitation at the start"""
    imitate_weight: float = 1.0
    """times the choice of what to do counts in the imitation loss when the teacher acts (anything but waiting): a
    responder waits in most of its decisions, and the few that act decide the episode. Whether to act at all keeps
    weight 1, so the copy acts as often as the teacher, not more"""
    anchor: float = 0.0
    """weight of the policy's divergence from its copy of the teacher (KL, the copy as it was when imitation ended)
    in PPO's loss: PPO improves on the teacher's habits instead of drifting from them where the reward is silent"""
    out: str = "runs/ppo"
    """where the checkpoint, metrics.csv, TensorBoard events and the learning curve go"""

    @property
    def steps_per_iteration(self) -> int:
        return self.worlds * self.topologies * int(math.ceil(self.horizon / 10.0 - 1e-9))

    @property
    def iterations(self) -> int:
        return max(1, self.total_steps // self.steps_per_iteration)
