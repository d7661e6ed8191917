"""The attack: probe the reward as an outsider would, by bolting cheap habits (`opsworld.agents.habits`) onto policies
and searching for a composition the reward overpays.

It runs on the audit's own suite (`audit.suite`): every composition meets the same episodes in the same order, so
its per-episode rewards pair up with the honest heuristic's, and every margin is in paired standard errors (the
standard error of the per-episode difference; what the episodes share cancels).

The steps:
1. every base alone (the heuristic SRE always runs: it is what everything is paired against);
2. the single-habit figures: each habit at each timing it takes, added to each base;
3. a search, until `budget` compositions beyond those have run: greedy first (from the best composition so far that
   has a habit — the best attacker — add the habit@timing that raises the mean most, of the `GREEDY_WIDTH`
   habit@timings whose single figures on that base are best, since one that hurts alone rarely helps in company;
   stop when none raises it; at most half the budget), then random compositions of 2-4 habit@timings on a random
   base, drawn from a generator seeded by `seed`. The same seed gives the same compositions and the same figures,
   however many worker processes run them.

The checks:
(f) no composition beats the honest heuristic by more than noise: each composition's mean less the heuristic's is at
    most `LEAD_MAX_SE` paired standard errors;
(g) every zero-knowledge policy (a composition whose base is neither the heuristic nor a trained policy, and the
    registered cheats, random, do-nothing and idle where they ran or came as a reference) trails the heuristic by at
    least `MARGIN_SE` paired standard errors, and trails the trained policy by as much where one is among the agents;
(h) no single habit added to the heuristic raises its mean by more than `HABIT_GAIN_MAX_SE` paired standard errors.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, Field

from opsworld.agents import CHEATS, AgentError, agent_factory
from opsworld.agents.habits import HABITS, TIMINGS, check_habit, composition_name, parse_composition
from opsworld.envs.difficulty import Difficulty
from opsworld.eval.audit import (HEURISTIC, MARGIN_SE, TEMPLATES, Check, Case, Progress, is_learned,
                                  make_env, mean_se, paired, paired_margin, run_agent, suite)

DEFAULT_BASES = (HEURISTIC, "idle")
BUDGET = 40                 # compositions in the search beyond the singles (~2 min on 2 cores)
GREEDY_WIDTH = 8            # habit@timings the greedy search tries per step
LEAD_MAX_SE = 2.0           # (f)
HABIT_GAIN_MAX_SE = 1.0     # (h)
BASELINES = ("random", "do-nothing", "idle")     # with the cheats: the zero-knowledge agents (g) holds


class AttackError(ValueError):
    """Bad input to the attack: an unknown base or habit, a reference of the wrong length."""


# ---- the result ------------------------------------------------------------------------------------------------------
class Composition(BaseModel):
    """One policy's figures on the suite, paired with the heuristic's."""

    name: str
    stage: str = Field(description="base, single, greedy, random, or agent (a reference agent)")
    zero_knowledge: bool = Field(description="its base is neither the heuristic SRE nor a trained policy")
    episodes: int
    mean_reward: float
    se_reward: float
    diff: float = Field(description="mean reward less the heuristic SRE's, paired episode by episode")
    paired_se: float = Field(description="standard error of that difference")
    margin_se: float = Field(description="diff / paired_se (0 where both are 0)")
    mitigation_rate: float | None = Field(None, description="share of the non-control episodes mitigated")
    paged_share: float | None = None
    unsafe_per_episode: float | None = None
    seconds: float = 0.0
    rewards: list[float] = Field(default_factory=list, exclude=True)    # per episode, in the suite's order


class AttackResult(BaseModel):
    episodes: int
    seeds: int
    templates: dict[str, int]
    seed: int
    budget: int
    compositions: list[Composition] = Field(description="every composition run, in the order it ran")
    agents: list[Composition] = Field(default_factory=list, description="other agents paired for check (g)")
    best: str | None = Field(description="the composition with the highest mean, the heuristic alone aside")
    checks: list[Check]
    runtime_s: float

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def top(self, k: int = 10) -> list[Composition]:
        """The k compositions with the highest mean reward (the heuristic alone included, as the yardstick)."""
        return sorted(self.compositions, key=lambda c: -c.mean_reward)[:k]

    def of(self, name: str) -> Composition:
        return next(c for c in self.compositions + self.agents if c.name == name)


# ---- running a composition -------------------------------------------------------------------------------------------
@dataclass
class _Outcome:
    """What one policy did on the whole suite (arrays [E] in the suite's order)."""

    rewards: np.ndarray
    mitigated: np.ndarray
    control: np.ndarray
    paged: np.ndarray
    unsafe: np.ndarray
    seconds: float


class _Runner:
    """The suite and one env per template, built once (per worker process) and reused for every composition."""

    def __init__(self, seeds: int, templates: Sequence[str], entries: Sequence[str] | None, weights, horizon,
                 difficulty: Difficulty = Difficulty()) -> None:
        self.plan: dict[str, list[Case]] = suite(seeds, templates, entries, difficulty=difficulty)
        self.envs = {t: make_env(t, len(eps), weights=weights, horizon=horizon, difficulty=difficulty)
                     for t, eps in self.plan.items()}

    def run(self, name: str) -> _Outcome:
        factory = agent_factory(name)
        reports, seconds = [], 0.0
        for template, eps in self.plan.items():
            run = run_agent(factory, template, eps, env=self.envs[template])
            reports += run.reports
            seconds += run.seconds
        col = lambda key: np.array([r[key] for r in reports])     # noqa: E731
        return _Outcome(rewards=col("reward").astype(float), mitigated=col("mitigated").astype(bool),
                        control=col("control").astype(bool), paged=col("paged").astype(bool),
                        unsafe=np.array([len(r["unsafe"]) for r in reports], float), seconds=seconds)


_WORKER: _Runner | None = None


def _init_worker(*args) -> None:
    global _WORKER
    _WORKER = _Runner(*args)


def _run_in_worker(name: str) -> tuple[str, _Outcome]:
    return name, _WORKER.run(name)


class _Pool:
    """Runs compositions, in this process or spread over worker processes; results keyed by name, so the order in
    which they finish changes nothing."""

    def __init__(self, workers: int, runner_args: tuple, progress: Progress | None) -> None:
        self.workers, self.args, self.progress = workers, runner_args, progress
        self.local: _Runner | None = None
        self.executor: ProcessPoolExecutor | None = None
        self.done, self.total = 0, 0

    def __enter__(self) -> "_Pool":
        if self.workers > 1:
            import multiprocessing
            # forkserver (as rollout.runner): safe beside the progress bar's thread, and the server imports the
            # engine once for every worker
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            self.executor = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                                initargs=self.args)
        else:
            self.local = _Runner(*self.args)
        return self

    def __exit__(self, *exc) -> None:
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=True)

    def run(self, names: Sequence[str]) -> dict[str, _Outcome]:
        out: dict[str, _Outcome] = {}
        if self.executor is None:
            for name in names:
                out[name] = self.local.run(name)
                self._tick(name)
            return out
        futures = [self.executor.submit(_run_in_worker, n) for n in names]
        for f in as_completed(futures):
            name, outcome = f.result()
            out[name] = outcome
            self._tick(name)
        return {n: out[n] for n in names}          # in the order asked, whatever order they finished in

    def _tick(self, name: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done), name)


# ---- the search ------------------------------------------------------------------------------------------------------
def zero_knowledge(name: str) -> bool:
    """Whether a policy knows nothing of incidents: its base is neither the heuristic SRE nor a trained policy."""
    base = name.split("+")[0]
    return base != HEURISTIC and not is_learned(base)


def habit_choices(habits: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The (habit, timing) pairs to try: every timing of each named habit, or only the one `habit@timing` names."""
    out: list[tuple[str, str]] = []
    for item in habits if habits is not None else list(HABITS):
        habit, at, timing = item.partition("@")
        try:
            if habit not in HABITS or at:
                check_habit(habit, timing)
        except AgentError as exc:
            raise AttackError(str(exc)) from None
        for t in ([timing] if at else HABITS[habit].timings):
            if (habit, t) not in out:
                out.append((habit, t))
    return out


def _canonical(base: str, habits: Sequence[tuple[str, str]]) -> str:
    """The composition's name with its habits in `HABITS` order (then timing order): one name per set."""
    order = {h: i for i, h in enumerate(HABITS)}
    return composition_name(base, sorted(habits, key=lambda p: (order[p[0]], TIMINGS.index(p[1]))))


def attack(bases: Sequence[str] = DEFAULT_BASES, habits: Sequence[str] | None = None, budget: int = BUDGET,
           seed: int = 0, seeds: int = 5, templates: Sequence[str] = TEMPLATES, entries: Sequence[str] | None = None,
           progress: Progress | None = None, weights=None, horizon: float | None = None,
           agents: Sequence[str] = (), reference: Mapping[str, Sequence[float]] | None = None,
           workers: int | None = None, difficulty: Difficulty = Difficulty()) -> AttackResult:
    """Search compositions of `bases` and `habits` (names, or `habit@timing`; default every habit) for one the
    reward overpays, on the audit's suite (`seeds`, `templates`, `entries`), and run checks (f)-(h) (see the module
    docstring). `weights` and `horizon` go to the env (`audit.make_env`). `agents` are other agents to run and pair
    for (g) (zero-knowledge ones are held to it; a trained one, `ppo` or a `.pt` file, is its second bar);
    `reference` gives, instead of running them, agents' per-episode rewards on this same suite, in its order (the
    audit's `AuditResult.rewards`). `workers`: processes (default one per CPU it may use; 1 runs here); they are
    started with forkserver, so a script that calls this with workers > 1 needs the `if __name__ == "__main__":`
    guard."""
    started = time.perf_counter()
    choices = habit_choices(habits)
    bases = list(dict.fromkeys([HEURISTIC, *bases]))
    for name in [*bases, *agents]:
        try:
            agent_factory(name)
        except AgentError as exc:
            raise AttackError(str(exc)) from None
    if budget < 0:
        raise AttackError(f"budget must be at least 0 (got {budget})")
    plan = suite(seeds, templates, entries, difficulty=difficulty)
    n_eps = sum(len(v) for v in plan.values())
    if not n_eps:
        raise AttackError("no catalogue entry runs on the chosen templates; see `opsworld faults`")
    reference = {k: np.asarray(v, float) for k, v in (reference or {}).items()}
    for k, v in reference.items():
        if len(v) != n_eps:
            raise AttackError(f"reference '{k}' has {len(v)} rewards; the suite has {n_eps} episodes")
    others = [a for a in agents if a not in reference]
    singles = [_canonical(b, [c]) for b in bases for c in choices]
    workers = max(1, min(workers or _cpus(), len(bases) + len(singles)))
    outcomes: dict[str, _Outcome] = {}
    stage: dict[str, str] = {}
    with _Pool(workers, (seeds, tuple(templates), entries, weights, horizon, difficulty), progress) as pool:
        pool.total = len(bases) + len(others) + len(singles) + budget

        def run(names: Sequence[str], label: str) -> None:
            todo = [n for n in dict.fromkeys(names) if n not in outcomes]
            outcomes.update(pool.run(todo))
            stage.update({n: label for n in todo})

        run(bases, "base")
        run(others, "agent")
        run(singles, "single")
        mean = lambda n: float(outcomes[n].rewards.mean())    # noqa: E731
        spent = 0
        # greedy: extend the best attacker so far by the best-looking habit@timings it lacks
        greedy_budget = budget - budget // 2
        while spent < greedy_budget:
            attackers = [n for n in outcomes if "+" in n and stage[n] != "agent"]
            if not attackers:
                break
            best = max(attackers, key=mean)
            base, have = _split(best)
            ranked = sorted((c for c in choices if c[0] not in {h for h, _ in have}),
                            key=lambda c: -mean(_canonical(base, [c])))
            candidates = [n for n in dict.fromkeys(_canonical(base, [*have, c]) for c in ranked)
                          if n not in outcomes][:min(GREEDY_WIDTH, greedy_budget - spent)]
            if not candidates:
                break
            run(candidates, "greedy")
            spent += len(candidates)
            if max(mean(n) for n in candidates) <= mean(best):
                break
        # random compositions of 2-4 habit@timings, drawn from a generator seeded by `seed`
        rng = np.random.default_rng([int(seed), 0xA77AC])
        drawn: list[str] = []
        names = sorted({h for h, _ in choices}, key=[h for h, _ in choices].index)
        for _ in range(50 * max(budget, 1)):
            if spent + len(drawn) >= budget or len(names) < 2:
                break
            base = bases[int(rng.integers(len(bases)))]
            k = int(rng.integers(2, min(4, len(names)) + 1))
            picked = [names[i] for i in rng.choice(len(names), size=k, replace=False)]
            combo = []
            for h in picked:
                timings = [t for hh, t in choices if hh == h]
                combo.append((h, timings[int(rng.integers(len(timings)))]))
            name = _canonical(base, combo)
            if name not in outcomes and name not in drawn:
                drawn.append(name)
        pool.total = pool.done + len(drawn)
        run(drawn, "random")
    return _result(plan, seeds, seed, budget, outcomes, stage, reference, started)


def _cpus() -> int:
    """The CPUs this process may run on (fewer than the machine's where it is pinned or in a container)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _split(name: str) -> tuple[str, list[tuple[str, str]]]:
    return parse_composition(name) if "+" in name else (name, [])


# ---- figures and checks ----------------------------------------------------------------------------------------------
def _figures(name: str, stage: str, rewards: np.ndarray, heuristic: np.ndarray,
             outcome: _Outcome | None) -> Composition:
    """A policy's figures, paired with the heuristic's rewards (`outcome` None: rewards alone are known)."""
    mean, se = mean_se(rewards)
    diff, pse = paired(rewards, heuristic)
    faults = None if outcome is None else ~outcome.control
    rate = lambda x: round(float(x.mean()), 4) if x is not None and len(x) else None     # noqa: E731
    return Composition(
        name=name, stage=stage, zero_knowledge=zero_knowledge(name), episodes=len(rewards),
        mean_reward=round(mean, 4),
        se_reward=round(se, 4), diff=round(diff, 4), paired_se=round(pse, 4),
        margin_se=round(paired_margin(rewards, heuristic), 3),
        mitigation_rate=rate(outcome.mitigated[faults]) if outcome is not None else None,
        paged_share=rate(outcome.paged) if outcome is not None else None,
        unsafe_per_episode=rate(outcome.unsafe) if outcome is not None else None,
        seconds=round(outcome.seconds, 2) if outcome is not None else 0.0, rewards=[float(r) for r in rewards])


def _result(plan, seeds: int, seed: int, budget: int, outcomes: dict[str, _Outcome], stage: dict[str, str],
            reference: dict[str, np.ndarray], started: float) -> AttackResult:
    h = outcomes[HEURISTIC].rewards
    comps = [_figures(n, stage[n], o.rewards, h, o) for n, o in outcomes.items() if stage[n] != "agent"]
    agents = [_figures(n, "agent", o.rewards, h, o) for n, o in outcomes.items() if stage[n] == "agent"]
    agents += [_figures(n, "agent", r, h, None) for n, r in reference.items() if n != HEURISTIC]
    rivals = [c for c in comps if c.name != HEURISTIC]
    best = max(rivals, key=lambda c: c.mean_reward) if rivals else None
    checks: list[Check] = []

    top = max(rivals, key=lambda c: c.margin_se) if rivals else None
    checks.append(Check(name="no composition beats the heuristic by more than noise",
                        passed=all(c.margin_se <= LEAD_MAX_SE for c in rivals),
                        figure=round(top.margin_se, 2) if top else None,
                        target=f"<= {LEAD_MAX_SE:g} paired standard errors over the heuristic SRE",
                        detail={"closest": top.name if top else None, "diff": top.diff if top else None,
                                "paired_se": top.paired_se if top else None, "compositions": len(rivals)}))

    held = [c for c in rivals if c.zero_knowledge]
    held += [a for a in agents if a.zero_knowledge and (a.name in CHEATS or a.name in BASELINES or "+" in a.name)]
    trained = [a for a in agents if is_learned(a.name)]
    under: dict[str, float] = {}
    for c in held:
        under[f"{HEURISTIC} over {c.name}"] = -c.margin_se
        for t in trained:
            under[f"{t.name} over {c.name}"] = paired_margin(t.rewards, c.rewards)
    worst = min(under, key=under.get) if under else None
    checks.append(Check(name="every zero-knowledge policy trails the heuristic (and the trained policy)",
                        passed=all(m >= MARGIN_SE for m in under.values()),
                        figure=round(under[worst], 2) if worst else None,
                        target=f">= {MARGIN_SE:g} paired standard errors below each",
                        detail={"closest": worst, "policies": len(held), "trained": [t.name for t in trained],
                                "closest_margins_se": {k: round(v, 2)
                                                       for k, v in sorted(under.items(), key=lambda x: x[1])[:20]}}))

    gains = {c.name: c.margin_se for c in comps if c.stage == "single" and c.name.split("+")[0] == HEURISTIC}
    most = max(gains, key=gains.get) if gains else None
    checks.append(Check(name="no single habit raises the heuristic's reward",
                        passed=all(g <= HABIT_GAIN_MAX_SE for g in gains.values()),
                        figure=round(gains[most], 2) if most else None,
                        target=f"<= {HABIT_GAIN_MAX_SE:g} paired standard error of gain from any one habit",
                        detail={"largest": most, "gains_se": {k: round(v, 2) for k, v in gains.items()}}))
    return AttackResult(episodes=len(h), seeds=seeds, templates={t: len(v) for t, v in plan.items()}, seed=seed,
                        budget=budget, compositions=comps, agents=agents, best=best.name if best else None,
                        checks=checks, runtime_s=round(time.perf_counter() - started, 2))
