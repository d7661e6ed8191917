"""Train/test splits for a policy trained on generated worlds, and their evaluation for any registered agent.

The policy trains on `TRAIN`: generated topologies of 5-30 services, incidents of every catalogue entry but the
held-out fault classes, with some red herrings, hidden couplings and telemetry gaps. Each test split asks one thing:

  a  new seeds of the training distribution: has it learned more than its training worlds?
  b  the four built-in templates, hand-written systems never seen in training: does it transfer to other topologies?
  c  only the held-out fault classes: does it handle faults it never met?
  d  telemetry gaps and hidden couplings turned up to the most: does it hold when the picture is worse?

`evaluate_split(agent, split)` runs a split's episodes through the rollout runner's batches (no files written) and
`gap(results)` measures each agent's advantage over `random` per split and the share of its split-(a) advantage it
keeps elsewhere (the transfer measure: on (b) a trained policy should keep at least 80% of it).

Seeds: the evaluation's rollout seeds are drawn from (seed, `EVAL_TAG`, split, generator); the trainer draws its own
with tags of its own (`collect.py`), so the two never share a stream even for the same base seed.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from opsworld.envs.worlds import Difficulty, WorldGenerator
from opsworld.eval.audit import mean_se, paired
from opsworld.faults.catalogue import CATALOGUE
from opsworld.rollout.runner import RANDOM, RolloutError, RolloutPlan, check, derive_seed, local_tasks

HELD_OUT_CLASSES = ("crash_loop", "deadlock", "network_delay", "fd_exhaustion")     # fault kinds never trained on
TRAIN_SERVICES = (5, 30)
# split (b): the four hand-written templates the policy was first evaluated on (a template added later, such as
# train-ticket, joins them only when the policy is retrained and its figures re-measured)
SPLIT_B_TEMPLATES = ("hotel-reservation", "llm-inference", "online-shop", "social-network")
TRAIN_DIFFICULTY = Difficulty(red_herrings=0.5, hidden_couplings=0.2, telemetry_gaps=0.2)
HORIZON = 3600.0           # seconds an evaluation episode lasts
EVAL_TAG = 102            # what the evaluation's derived seeds are for

Progress = Callable[[int, int], None]      # (episodes done, episodes in all)


class SplitError(RolloutError):
    """An evaluation that cannot run as asked (an unknown split or agent, a bad parameter): one line says why."""


@lru_cache(maxsize=1)
def held_out_entries() -> tuple[str, ...]:
    """The catalogue entries of the held-out fault classes."""
    return tuple(name for name, e in CATALOGUE.items() if e.fault.kind in HELD_OUT_CLASSES)


TRAIN = WorldGenerator(services=TRAIN_SERVICES, difficulty=TRAIN_DIFFICULTY, exclude=held_out_entries())


@dataclass(frozen=True)
class Split:
    """A test split: the generators its worlds come from (its episodes are spread evenly over them)."""

    name: str
    description: str
    generators: tuple[WorldGenerator, ...]


SPLITS: dict[str, Split] = {s.name: s for s in (
    Split("a", "new seeds of the training distribution", (TRAIN,)),
    Split("b", "the four built-in templates, never seen in training",
          tuple(WorldGenerator(template=t, difficulty=TRAIN_DIFFICULTY, exclude=held_out_entries())
                for t in SPLIT_B_TEMPLATES)),
    Split("c", "held-out fault classes only: " + ", ".join(HELD_OUT_CLASSES),
          (WorldGenerator(services=TRAIN_SERVICES, difficulty=TRAIN_DIFFICULTY, entries=held_out_entries()),)),
    Split("d", "telemetry gaps and hidden couplings turned up",
          (WorldGenerator(services=TRAIN_SERVICES, exclude=held_out_entries(),
                          difficulty=Difficulty(red_herrings=0.5, hidden_couplings=1.0, telemetry_gaps=1.0)),)),
)}


@dataclass(frozen=True)
class SplitResult:
    """One agent on one split. Shares of mitigated and localized episodes are over those with a fault to fix (not
    the controls); the rest over all. `runtime_s` is the work its batches took, summed over the processes that ran
    them; it is left out of comparisons, so the same request gives an equal result whatever the workers."""

    split: str
    agent: str
    episodes: int
    mean_reward: float
    se_reward: float
    mitigated_share: float | None      # None: every episode was a control
    localized_share: float | None
    root_cause_share: float
    mean_impact_minutes: float
    unsafe_share: float            # episodes with at least one unsafe control action
    unsafe_per_episode: float
    runtime_s: float = field(compare=False)
    paged_share: float = 0.0       # episodes where a human was paged
    submitted_share: float = 0.0   # episodes handed over with a diagnosis
    unsafe_rules: tuple[tuple[str, int], ...] = ()     # (rule, episodes that broke it), most broken first
    rewards: tuple[float, ...] = field(default=(), compare=False, repr=False)   # per episode, in episode order


@dataclass(frozen=True)
class Gap:
    """An agent's advantage over `random` on a split (mean reward, same episodes), and the share of its split-(a)
    advantage it keeps there (None where that is not defined: no split (a), or no advantage on it)."""

    agent: str
    split: str
    advantage: float
    se_advantage: float            # paired over the same episodes (of two independent means where they are unknown)
    kept: float | None


def evaluate_split(agent: str, split: str, episodes: int = 256, seed: int = 0, workers: int | None = None,
                   batch: int = 16, horizon: float = HORIZON, progress: Progress | None = None) -> SplitResult:
    """`agent` ('random' or a registered agent) on `episodes` episodes of `split`. Raises `SplitError` for a bad
    request, before anything runs."""
    return split_table([agent], [split], episodes, seed, workers, batch, horizon, progress)[0]


def split_table(agents: Sequence[str], splits: Sequence[str] = ("a", "b", "c", "d"), episodes: int = 256,
                seed: int = 0, workers: int | None = None, batch: int = 16, horizon: float = HORIZON,
                progress: Progress | None = None) -> list[SplitResult]:
    """Every agent on every split (agent-major), all their batches in one pool of `workers` processes (default: one
    per CPU). Every agent meets the same episodes of a split: its seeds do not depend on the agent."""
    workers = workers if workers is not None else os.cpu_count() or 1
    requests = [(a, s) for a in agents for s in splits]
    plans = [_plans(a, s, episodes, seed, batch, horizon) for a, s in requests]
    for ps in plans:
        for p in ps:
            try:
                check(p, workers)
            except RolloutError as exc:
                raise SplitError(str(exc)) from None
    tasks = [(p, k) for ps in plans for p in ps for k in range(p.batches)]
    owner = [i for i, ps in enumerate(plans) for p in ps for _ in range(p.batches)]
    rows: list[list[dict]] = [[] for _ in requests]
    seconds = [0.0] * len(requests)
    total, done = len(requests) * episodes, 0
    batches = local_tasks(tasks, workers)
    try:
        for i, b in zip(owner, batches):
            rows[i] += b.table.select(_COLUMNS).to_pylist()
            seconds[i] += b.seconds
            done += len(b.table)
            if progress is not None:
                progress(done, total)
    finally:
        batches.close()          # a failed agent or ^C: stop the pool now, not when the generator is collected
    return [_result(a, s, rs, t) for (a, s), rs, t in zip(requests, rows, seconds)]


def gap(results: Sequence[SplitResult]) -> list[Gap]:
    """For each agent but `random` and each split where `random` ran too: its advantage over random, and the share
    of its split-(a) advantage it keeps."""
    by = {(r.agent, r.split): r for r in results}
    out = []
    for r in results:
        base = by.get((RANDOM, r.split))
        if r.agent == RANDOM or base is None:
            continue
        advantage = r.mean_reward - base.mean_reward
        a, a_base = by.get((r.agent, "a")), by.get((RANDOM, "a"))
        on_a = a.mean_reward - a_base.mean_reward if a and a_base else float("nan")
        kept = round(advantage / on_a, 4) if on_a > 0 else None
        out.append(Gap(r.agent, r.split, round(advantage, 4), round(paired_se(r, base), 4), kept))
    return out


def paired_se(one: SplitResult, other: SplitResult) -> float:
    """The standard error of `one`'s mean reward less `other`'s: paired episode by episode where both hold their
    episodes' rewards (they met the same episodes, so what the episodes share cancels), else as of two independent
    means (an upper bound)."""
    if len(one.rewards) == len(other.rewards) > 1:
        return paired(one.rewards, other.rewards)[1]
    return float(np.hypot(one.se_reward, other.se_reward))


# ---- inside ----------------------------------------------------------------------------------------------------------
_COLUMNS = ["control", "reward", "mitigated", "localized", "root_cause_correct", "impact_minutes", "unsafe",
            "unsafe_rules", "paged", "submitted"]


def _plans(agent: str, split: str, episodes: int, seed: int, batch: int, horizon: float) -> list[RolloutPlan]:
    """The rollouts of one agent on one split: one per generator, the episodes shared out evenly."""
    if split not in SPLITS:
        raise SplitError(f"no split named '{split}'; splits: {', '.join(SPLITS)}")
    if episodes < 1:
        raise SplitError(f"episodes must be at least 1 (got {episodes})")
    generators = SPLITS[split].generators
    number = list(SPLITS).index(split)
    plans = []
    for j, g in enumerate(generators):
        n = episodes // len(generators) + (j < episodes % len(generators))
        if n:
            plans.append(RolloutPlan(episodes=n, agent=agent, seed=derive_seed(seed, EVAL_TAG, number, j),
                                     batch=batch, horizon=horizon, services=g.services, template=g.template,
                                     difficulty=g.difficulty, exclude=g.exclude, entries=g.entries))
    return plans


def _result(agent: str, split: str, rows: list[dict], seconds: float) -> SplitResult:
    faults = [r for r in rows if not r["control"]]

    def share(rs: list[dict], key: str) -> float | None:
        return round(float(np.mean([bool(r[key]) for r in rs])), 4) if rs else None

    mean, se = mean_se([r["reward"] for r in rows])
    broken = Counter(rule for r in rows for rule in set(r["unsafe_rules"]))
    return SplitResult(
        split=split, agent=agent, episodes=len(rows), mean_reward=round(mean, 4), se_reward=round(se, 4),
        mitigated_share=share(faults, "mitigated"), localized_share=share(faults, "localized"),
        root_cause_share=round(float(np.mean([r["root_cause_correct"] for r in rows])), 4),
        mean_impact_minutes=round(float(np.mean([r["impact_minutes"] for r in rows])), 4),
        unsafe_share=round(float(np.mean([r["unsafe"] > 0 for r in rows])), 4),
        unsafe_per_episode=round(float(np.mean([r["unsafe"] for r in rows])), 4),
        runtime_s=round(seconds, 3), unsafe_rules=tuple(broken.most_common()),
        paged_share=round(float(np.mean([r["paged"] for r in rows])), 4),
        submitted_share=round(float(np.mean([r["submitted"] for r in rows])), 4),
        rewards=tuple(float(r["reward"]) for r in rows))
