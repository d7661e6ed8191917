"""PPO with action masking on generated worlds, CleanRL style: the config, then `train` from top to bottom.

Imitation first (`imitate`): for the first `imitate_iterations` iterations a teacher agent (the heuristic SRE, say)
acts, and the policy learns to give its actions high probability (behaviour cloning) while the value head
learns what they earn; PPO then improves on the copy, held near it by a KL term (`anchor`, as AlphaStar held its
agents near their supervised policy). With `imitate="none"` it is PPO from scratch.

Advice (`advisor`): the policy may also read a scripted responder's proposed action at every decision and learn
where to depart from it (residual learning; `policy.ServicePolicy` with `advice`). The advisor runs beside the
policy, in training and wherever the policy file acts; it is not told when it is overruled. Imitating the advisor
itself then teaches mostly the values: the untrained network already follows the advice by its `trust` bonus.

One iteration = `topologies` worlds drawn from the training distribution (`splits.TRAIN`), each run as one batched
engine of `worlds` incidents for a whole episode (every world of an engine ends together, at the horizon), then
`update_epochs` passes of clipped PPO over what was collected. The topologies are collected on `workers` processes
(one batched engine and a one-thread copy of the policy each); the update runs here on `threads` threads.

Decisions only: a responder that is busy with its last action, or has handed over, is not asked (the env ignores its
action), so a sample is a decision, and its reward is what the world earned until the responder's next decision,
discounted tick by tick (a semi-MDP; GAE discounts by the ticks between decisions). Environment steps (`global_step`,
`charts/SPS`) still count every world-tick.

Safety as a constraint (Lagrangian PPO): each unsafe control action the policy takes (`unsafe.ACTIVE`, less
`unpriced`) is charged
`unsafe_price` points in training on top of the score's own penalty, and the price follows the constraint: after
each iteration it rises by `unsafe_price_rate` x (share of episodes with one - `unsafe_target`), and falls when the
share is below the target. So the policy is pushed off unsafe actions exactly as hard as it takes, whatever they
would earn otherwise. (What it leaves undone — no page where one was needed, a fix too late — no price on actions
can push it off: the score's own terms charge those.) The diagnosis
credit counts `diagnosis_weight` times in training, so that handing over with a right diagnosis is a signal the
policy can find among hundreds of points of impact (the score is unchanged).

Determinism: everything an iteration does follows from (seed, iteration): its worlds, faults and engine noise, the
action draws (a torch Generator per topology), the minibatch order. A checkpoint is written after every iteration,
so `--resume` continues bit-for-bit as if never stopped (with the same `threads`).
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from opsworld.act.vocabulary import ARGUMENTS, VERBS
from opsworld.rollout.runner import derive_seed
from opsworld.score.unsafe import ACTIVE
from opsworld.train.collect import Rollout, collect, priced
from opsworld.train.config import TrainConfig
from opsworld.train.policy import ServicePolicy, scored

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
CURVE = "learning_curve.png"
POLICY = "policy.pt"
_SHUFFLE = 0x5F1E          # seed tag of the minibatch order (collect.py has the others)
WAIT = VERBS.index("wait")


@dataclass
class ReturnStats:
    """Running mean and variance of the discounted return (Chan's merge): rewards are divided by its deviation, as
    CleanRL's NormalizeReward does, so that one learning rate suits any reward weights."""

    count: float = 1e-4
    mean: float = 0.0
    var: float = 1.0

    def merge(self, count: float, mean: float, var: float) -> None:
        total = self.count + count
        delta = mean - self.mean
        m2 = self.var * self.count + var * count + delta * delta * self.count * count / total
        self.mean, self.var, self.count = self.mean + delta * count / total, m2 / total, total

    @property
    def scale(self) -> float:
        return 1.0 / math.sqrt(self.var + 1e-8)


def train(config: TrainConfig, resume: bool = False, progress: Callable[[int, int, dict], None] | None = None
          ) -> dict[str, float]:
    """Train a policy; write OUT/checkpoint.pt (after every iteration), OUT/metrics.csv, TensorBoard events (when
    tensorboard is installed) and OUT/learning_curve.png; return the last iteration's metrics. `resume` continues
    from OUT/checkpoint.pt."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model = ServicePolicy(len(VERBS), ARGUMENTS, config.hidden, config.advisor != "none")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-5)
    stats = ReturnStats()
    price = config.unsafe_price
    start, global_step, elapsed = 0, 0, 0.0
    anchor: ServicePolicy | None = None      # the copy of the teacher, once imitation is over
    if resume:
        state = torch.load(out / CHECKPOINT, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        stats = ReturnStats(**state["returns"])
        price = state["unsafe_price"]
        start, global_step, elapsed = state["iteration"], state["global_step"], state["elapsed"]
        if state.get("anchor") is not None:
            anchor = _frozen(state["anchor"], config)
    log = _MetricsLog(out, keep=start)
    pool = _pool(config.workers)
    last: dict[str, float] = {}
    try:
        for iteration in range(start, config.iterations):
            began = time.perf_counter()
            if config.anneal_lr:
                optimizer.param_groups[0]["lr"] = config.learning_rate * (1.0 - iteration / config.iterations)

            # ---- collect: each topology's episode on a worker, with the policy as it is now
            weights = {k: v.clone() for k, v in model.state_dict().items()}
            imitating = config.imitate != "none" and iteration < config.imitate_iterations
            if config.imitate != "none" and iteration == config.imitate_iterations and config.anchor > 0:
                anchor = _frozen(weights, config)
            teacher = config.imitate if imitating else None
            jobs = [(weights, config, iteration, g, teacher) for g in range(config.topologies)]
            rollouts: list[Rollout] = pool.starmap(collect, jobs) if pool is not None else [collect(*j) for j in jobs]
            for r in rollouts:
                stats.merge(*r.return_moments(config.gamma))
            collected = time.perf_counter()

            # ---- update: clipped PPO over the decisions, minibatches within one topology
            torch.set_num_threads(config.threads)
            tensors = [r.tensors(stats.scale, config.gamma, config.gae_lambda, price, config.diagnosis_weight)
                       for r in rollouts]
            losses = _update(model, optimizer, tensors, config, iteration, imitating, anchor)
            episodes = _episode_metrics(rollouts, priced(config))
            charged = price
            excess = episodes["charts/unsafe_taken_share"] - config.unsafe_target
            price = max(0.0, price + config.unsafe_price_rate * excess)

            global_step += sum(r.steps for r in rollouts)
            elapsed += time.perf_counter() - began
            last = {"global_step": global_step, **episodes, **losses, "charts/unsafe_price": charged,
                    "charts/learning_rate": optimizer.param_groups[0]["lr"],
                    "charts/SPS": global_step / elapsed,
                    "charts/collect_seconds": collected - began, "charts/update_seconds": time.perf_counter() - collected,
                    "charts/decisions": sum(len(r.actions) for r in rollouts), "charts/reward_scale": stats.scale,
                    **_advice_metrics(rollouts, config)}
            log.write(iteration, last)
            _save(out / CHECKPOINT, model, optimizer, stats, price, iteration + 1, global_step, elapsed, config,
                  anchor)
            if progress is not None:
                progress(iteration + 1, config.iterations, last)
            if config.minutes is not None and elapsed >= 60.0 * config.minutes:
                break
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        log.close()
    from opsworld.train.agent import save_policy
    save_policy(out / POLICY, model, {"config": asdict(config), "command": command_of(config),
                                      "global_step": global_step, "metrics": last})
    _plot(out)
    return last


def command_of(config: TrainConfig) -> str:
    """The `opsworld train` command line that makes this config (the defaults left out)."""
    default = TrainConfig()
    parts = ["opsworld train"]
    for name, value in asdict(config).items():
        flag = "--" + name.replace("_", "-")
        if value == getattr(default, name) or value is None:
            continue
        if isinstance(value, bool):
            parts.append(flag if value else flag.replace("--", "--no-", 1))
        elif value == "":
            parts.append(f'{flag} ""')          # an empty option must survive the shell
        else:
            parts.append(f"{flag} {value[0]}-{value[1]}" if isinstance(value, (tuple, list)) else f"{flag} {value}")
    return " ".join(parts)


def _frozen(weights: dict, config: TrainConfig) -> ServicePolicy:
    """A copy of the policy with `weights`, for reference only (no gradients)."""
    copy = ServicePolicy(len(VERBS), ARGUMENTS, config.hidden, config.advisor != "none")
    copy.load_state_dict(weights)
    copy.requires_grad_(False)
    return copy


def _imitation_loss(log_probs: list[torch.Tensor], actions: torch.Tensor, weight: float) -> torch.Tensor:
    """The teacher's actions' negative log-likelihood, split as the teacher decides: whether to act at all (weight
    1), then what to do (`weight` when it acts). Weighting the whole likelihood of acting would teach the copy to
    act more often than its teacher; weighting only the choice among acts teaches it the right fix."""
    verb, target, argument = actions[:, 0], actions[:, 1], actions[:, 2]
    lp_verb = log_probs[0].gather(1, verb[:, None])[:, 0]
    lp_wait = log_probs[0][:, WAIT]
    acts = verb != WAIT
    lp_act = torch.log1p(-lp_wait.exp().clamp(max=1.0 - 1e-6))
    whether = torch.where(acts, lp_act, lp_wait)
    what = torch.where(acts, lp_verb - lp_act, torch.zeros_like(lp_verb)) \
        + log_probs[1].gather(1, target[:, None])[:, 0] + log_probs[2].gather(1, argument[:, None])[:, 0]
    return -(whether + (1.0 + (weight - 1.0) * acts.float()) * what).mean()


def _divergence(reference: list[torch.Tensor], log_probs: list[torch.Tensor]) -> torch.Tensor:
    """KL(reference || policy) of the verb, and of the target and argument given the taken action's verb and
    target, averaged over the decisions."""
    return sum((ref.exp() * (ref - lp)).sum(dim=1) for ref, lp in zip(reference, log_probs)).mean()


def _update(model: ServicePolicy, optimizer: torch.optim.Optimizer, tensors: list[dict], config: TrainConfig,
            iteration: int, imitating: bool = False, anchor: ServicePolicy | None = None) -> dict[str, float]:
    """`update_epochs` passes of clipped PPO over each topology's decisions (`Rollout.tensors`), held near `anchor`
    when given (`config.anchor`), or of behaviour cloning (`_imitation_loss`) while `imitating`; the losses of the
    last minibatch and the iteration's diagnostics."""
    order = torch.Generator().manual_seed(derive_seed(config.seed, _SHUFFLE, iteration))
    clipfracs, kls = [], []
    stats: dict[str, float] = {}
    for epoch in range(config.update_epochs):
        batches = [(g, idx) for g, t in enumerate(tensors)
                   for idx in torch.randperm(len(t["actions"]), generator=order).split(config.minibatch_size)]
        for b in torch.randperm(len(batches), generator=order).tolist():
            g, idx = batches[b]
            t = tensors[g]
            advice = t["advice"][idx] if model.advice else None
            context, places = model.trunk(t["services"][idx], t["world"][idx], t["structure"].relation,
                                          t["structure"].place_kind, advice)
            _, log_probs = model.choices(context, places, t["structure"].masks, t["actions"][idx], advice=advice)
            chosen = t["actions"][idx]
            logp, entropy = scored(log_probs, chosen)
            value = model.value_head(context)[:, 0]
            log_ratio = logp - t["logp"][idx]
            ratio = log_ratio.exp()
            with torch.no_grad():
                approx_kl = ((ratio - 1) - log_ratio).mean()
                clipfracs.append(((ratio - 1.0).abs() > config.clip_coef).float().mean().item())
                kls.append(approx_kl.item())
            adv = t["advantages"][idx]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8) if len(idx) > 1 else adv
            divergence = torch.zeros(())
            if imitating:
                policy_loss = _imitation_loss(log_probs, chosen, config.imitate_weight)
            else:
                policy_loss = torch.max(-adv * ratio,
                                        -adv * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)).mean()
                if anchor is not None:
                    with torch.no_grad():
                        reference = anchor.log_probs(t["services"][idx], t["world"][idx], t["structure"], chosen,
                                                     advice)
                    divergence = _divergence(reference, log_probs)
                    policy_loss = policy_loss + config.anchor * divergence
            value_loss = 0.5 * ((value - t["returns"][idx]) ** 2).mean()
            entropy_loss = entropy.mean()
            loss = policy_loss - config.ent_coef * entropy_loss + config.vf_coef * value_loss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            stats = {"losses/policy_loss": policy_loss.item(), "losses/value_loss": value_loss.item(),
                     "losses/entropy": entropy_loss.item(), "losses/anchor_kl": divergence.item()}
        if config.target_kl is not None and kls and np.mean(kls[-len(batches):]) > config.target_kl:
            break
    values = torch.cat([t["values"] for t in tensors])
    returns = torch.cat([t["returns"] for t in tensors])
    var = returns.var().item() if len(returns) > 1 else 0.0
    explained = float("nan") if var == 0 else 1.0 - (returns - values).var().item() / var
    return {**stats, "charts/imitating": float(imitating), "losses/approx_kl": float(np.mean(kls)) if kls else 0.0,
            "losses/clipfrac": float(np.mean(clipfracs)) if clipfracs else 0.0,
            "losses/explained_variance": explained}


def _episode_metrics(rollouts: list[Rollout], charged: tuple[str, ...] = ACTIVE) -> dict[str, float]:
    """The iteration's episodes, in the field's terms: return, mitigated share, unsafe share (all rules, and the
    `charged` ones the price is on), ..."""
    reports = [r for ro in rollouts for r in ro.reports]
    mean = lambda key: float(np.mean([float(bool(x[key])) if isinstance(x[key], (bool, list)) else float(x[key])  # noqa
                                      for x in reports]))
    return {"charts/episodic_return": float(np.mean([x["reward"] for x in reports])),
            "charts/episodic_length": float(np.mean([len(ro.rewards) for ro in rollouts])),
            "charts/mitigated": mean("mitigated"), "charts/localized": mean("localized"),
            "charts/impact_minutes": mean("impact_minutes"), "charts/unsafe_share": mean("unsafe"),
            "charts/unsafe_taken_share": float(np.mean([any(u["rule"] in charged for u in x["unsafe"])
                                                        for x in reports])),
            "charts/paged": mean("paged"), "charts/submitted": mean("submitted")}


def _advice_metrics(rollouts: list[Rollout], config: TrainConfig) -> dict[str, float]:
    """With an advisor: the share of decisions that took its advice, and of those it advised to act (not wait)."""
    if config.advisor == "none":
        return {}
    taken = np.concatenate([r.actions for r in rollouts])
    advice = np.concatenate([r.advice for r in rollouts])
    same = (taken == advice).all(axis=1)
    acts = advice[:, 0] != WAIT
    return {"charts/follows_advice": float(same.mean()) if len(same) else float("nan"),
            "charts/follows_advice_to_act": float(same[acts].mean()) if acts.any() else float("nan")}


def _pool(workers: int):
    if workers <= 1:
        return None
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["opsworld.train.collect"])
    return context.Pool(workers)


def _save(path: Path, model: ServicePolicy, optimizer: torch.optim.Optimizer, stats: ReturnStats, price: float,
          iteration: int, global_step: int, elapsed: float, config: TrainConfig,
          anchor: ServicePolicy | None = None) -> None:
    partial = path.with_suffix(".partial")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "returns": asdict(stats),
                "unsafe_price": price, "anchor": anchor.state_dict() if anchor is not None else None,
                "iteration": iteration, "global_step": global_step, "elapsed": elapsed, "config": asdict(config)},
               partial)
    os.replace(partial, path)


class _MetricsLog:
    """metrics.csv (one row per iteration; on resume, the rows past the checkpoint are dropped) and TensorBoard
    events when tensorboard is installed."""

    def __init__(self, out: Path, keep: int) -> None:
        self.path = out / METRICS
        rows: list[dict] = []
        if keep and self.path.exists():
            with self.path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) < keep]
        self.rows = rows
        self._rewrite()
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=None)
        except ImportError:
            self.tb = None

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        self.rows.append({"iteration": iteration, **metrics})
        self._rewrite()
        if self.tb is not None:
            for k, v in metrics.items():
                if k != "global_step":
                    self.tb.add_scalar(k, v, int(metrics["global_step"]))

    def _rewrite(self) -> None:
        if not self.rows:
            self.path.write_text("")
            return
        names = list(dict.fromkeys(k for r in self.rows for k in r))
        partial = self.path.with_suffix(".partial")
        with partial.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=names)
            w.writeheader()
            w.writerows(self.rows)
        os.replace(partial, self.path)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _plot(out: Path) -> None:
    """OUT/learning_curve.png: the episodic return, the mitigated and unsafe shares (and with an advisor, how often
    its advice to act was taken) against environment steps."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    with (out / METRICS).open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    steps = [float(r["global_step"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(steps, [float(r["charts/episodic_return"]) for r in rows])
    axes[0].set(xlabel="environment steps", ylabel="mean episode reward", title="episodic return")
    axes[1].plot(steps, [float(r["charts/mitigated"]) for r in rows], label="mitigated")
    axes[1].plot(steps, [float(r["charts/unsafe_share"]) for r in rows], label="unsafe share")
    if "charts/follows_advice_to_act" in rows[0]:
        axes[1].plot(steps, [float(r["charts/follows_advice_to_act"]) for r in rows], label="took advice to act")
    axes[1].set(xlabel="environment steps", ylabel="share of episodes", title="outcomes", ylim=(0, 1))
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out / CURVE, dpi=110)
    plt.close(fig)
