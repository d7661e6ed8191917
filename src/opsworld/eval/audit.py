"""The reward audit: every baseline agent on one fixed suite of incidents, and the checks that the reward pays for the
right things.

The suite: on each of the four templates, every catalogue entry that runs there (`envs.generator.entries_for`), times
`seeds`, each with its target and onset drawn from a generator seeded by (template, entry, seed) — the same
episodes for every agent and every run, in the same order. Each template is one batch of the vector env. Around each
incident the system lives as real ones do: `BACKGROUND` healthy deploys, config pushes and passing health-check flaps
an hour, so a change in the log is usually not the cause (a responder who rolls back whatever changed pays for the
healthy ones).

Margins are in paired standard errors: every agent meets the same episodes in the same order, so two agents are
compared on their per-episode differences, and the standard error is that of the mean difference (what the episodes
share — a hard incident is hard for everyone — cancels; as `train.splits.paired_se`).

The checks, each with its figure:
(a) the heuristic SRE's mean reward beats every other agent's by at least 3 paired standard errors;
(b) reward falls as user impact rises: the Spearman rank correlation between reward and impact_minutes, across the
    audit's episodes of one template, is at most -0.9 — one figure per template. The pool is the registered
    baseline agents only (the non-learned ones in `AGENTS`: the heuristic, random, do-nothing, idle and the cheats),
    not trained policies and not compositions: the check asks whether the reward itself ranks episodes by user
    impact, and a policy added to the audit (a newly trained one, an attacker) must not move that figure by
    bringing its own spread of episodes. Every agent's own figure stays in the detail;
(c) silence never pays: each heuristic and random episode is replayed with the same actions at the same ticks, where
    the responder idled, a `silence_alert` instead of the idling; the reward must never rise;
(d) the heuristic SRE mitigates at least 60% of the non-control episodes;
(e) with a trained policy among the agents (`ppo`, or a policy file): it beats every cheat by at least 3 paired
    standard errors. (A trained policy is not held to (a): it may well beat the heuristic.)

`score.attack` goes further: it bolts habits onto policies and searches for a composition the reward overpays.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from opsworld.act.runbook import ACTIONS
from opsworld.act.vocabulary import SILENCE_SECONDS, WAIT_TICKS
from opsworld.agents import AGENTS, CHEATS, agent_factory
from opsworld.agents.base import context_of
from opsworld.agents.runner import batch_actor, play
from opsworld.envs.difficulty import Difficulty
from opsworld.envs.generator import CONTROLS, Draw, background, entries_for
from opsworld.faults.placement import fitting
from opsworld.envs.gym_env import IncidentVectorEnv
from opsworld.envs.incident import IncidentConfig
from opsworld.score.reward import RewardWeights
from opsworld.spec import load_scenario

TEMPLATES = ("online-shop", "hotel-reservation", "social-network", "llm-inference")
ONSET = (300.0, 900.0)       # seconds after the start the fault begins, drawn per episode
SUITE_SEED = 20260214
BACKGROUND = 4.0             # healthy changes and passing flaps per hour around each incident, as a real system has
HEURISTIC = "heuristic-sre"
MARGIN_SE = 3.0              # (a), (e): paired standard errors the leader must lead by
SPEARMAN_MAX = -0.9          # (b)
MITIGATION_MIN = 0.6         # (d)

Progress = Callable[[int, int, str], None]


# ---- the suite -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One incident of a suite: its template, catalogue entry, seed index and the fault drawn for it."""

    template: str
    entry: str
    seed: int
    draw: Draw

    @property
    def control(self) -> bool:
        return self.entry in CONTROLS


def _key(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def suite(seeds: int = 5, templates: Sequence[str] = TEMPLATES, entries: Sequence[str] | None = None,
          controls: bool = True, extra_controls: int = 0, background: float = BACKGROUND,
          difficulty: Difficulty = Difficulty()) -> dict[str, list[Case]]:
    """Per template (or scenario file), its episodes: every entry that runs there (on a scenario no worked example
    was written for, every entry that can strike it by role), or those of `entries` that do, x `seeds`.
    `extra_controls` adds that many `no_fault` episodes per seed on templates that have none of their own;
    `background` healthy changes and passing flaps per hour happen around each incident (0: a clean change log), and
    more at a `difficulty` with red herrings, which also draws the faults' parameters, compounds and anomalies."""
    out: dict[str, list[Case]] = {}
    for template in templates:
        scenario = load_scenario(template)
        names = [e.name for e in entries_for(scenario, controls=controls)]
        if not names:       # a system of one's own: every entry with a place of its role there
            names = [n for n, _ in fitting(scenario) if controls or n not in CONTROLS]
        if entries is not None:      # NAME, or NAME:TARGET for one place
            names = [spec for spec in entries if spec.partition(":")[0] in names]
        eps: list[Case] = []
        for name in names:
            for k in range(seeds):
                eps.append(Case(template, name, k, _draw(scenario, name, k, background, difficulty)))
        if extra_controls and not any(n in CONTROLS for n in names):
            for k in range(seeds):
                for j in range(extra_controls):
                    eps.append(Case(template, "no_fault", k, _draw(scenario, "no_fault", k * 100 + j,
                                                                      background, difficulty)))
        if eps:
            out[template] = eps
    return out


def _draw(scenario, entry: str, k: int, per_hour: float = BACKGROUND, difficulty: Difficulty = Difficulty()) -> Draw:
    rng = np.random.default_rng([SUITE_SEED, _key(scenario.name, entry), k])
    draw = difficulty.generator(entries=[entry], onset=ONSET, background=0.0).draw(scenario, rng)
    # the system's own life around the incident (its own stream: the incident is drawn as before)
    rng = np.random.default_rng([SUITE_SEED, _key(scenario.name, entry), k, 0xB6])
    mean = per_hour * (1.0 + difficulty.red_herrings) * scenario.duration / 3600.0
    if difficulty.red_herrings:       # some of them near the onset, none over the fault's own components
        onset = min(f.onset_seconds(scenario) for f in (draw.fault, *draw.others))
        around = background(scenario, rng, mean, scenario.duration, onset=onset,
                            avoid=[f.target for f in (draw.fault, *draw.others)])
    else:
        around = background(scenario, rng, mean, scenario.duration)
    return replace(draw, also=draw.also + tuple(around))


# ---- running an agent on a batch -------------------------------------------------------------------------------------
@dataclass
class Run:
    """One agent on one template's batch: the reports, and what it did step by step."""

    reports: list[dict]
    actions: np.ndarray       # [T, N, 3] the actions sent
    free: np.ndarray          # [T, N] whether the responder could act at that step (else the action was ignored)
    alerting: np.ndarray      # [T, N, S] the components with a visible alert
    rewards: np.ndarray       # [N] the episode's summed step rewards
    seconds: float


def batch_seed(template: str) -> int:
    return SUITE_SEED + _key(template) % 10_000


def make_env(template: str, n: int, weights=None, horizon: float | None = None,
             difficulty: Difficulty = Difficulty()):
    """The vector env for a batch of `n` episodes of a template (the reward's `weights`, default the standard ones;
    the `difficulty`'s monitoring and telemetry gaps)."""
    config = IncidentConfig(scenario=template, horizon=horizon, weights=weights or RewardWeights(),
                            telemetry_gaps=0.3 * difficulty.telemetry_gaps, coverage=difficulty.coverage())
    return IncidentVectorEnv(num_envs=n, config=config)


def run_agent(factory: Callable[[], object], template: str, episodes: Sequence[Case], seed: int | None = None,
              env=None) -> Run:
    """Run a fresh agent from `factory` on the episodes (one world each) of one template, to the horizon."""
    started = time.perf_counter()
    n = len(episodes)
    seed = batch_seed(template) if seed is None else seed
    env = env or make_env(template, n)
    obs, info = env.reset(seed=seed, options={"draws": [e.draw for e in episodes]})
    act = batch_actor(factory, context_of(env), seed, [seed + i for i in range(n)])
    actions, free, alerting = [], [], []

    def record(obs: dict, info: dict, a: np.ndarray) -> None:
        actions.append(a)
        free.append(obs["clock"][:, 1] == 0)
        alerting.append(obs["alerts"].any(axis=2))
    reports, total = play(env, obs, info, act, record)
    return Run(reports=reports, actions=np.stack(actions), free=np.stack(free),
               alerting=np.stack(alerting), rewards=total, seconds=time.perf_counter() - started)


def replay(template: str, episodes: Sequence[Case], actions: np.ndarray, seed: int | None = None,
           env=None) -> np.ndarray:
    """[N] the rewards of the episodes driven open-loop by recorded actions [T, N, 3]."""
    n = len(episodes)
    seed = batch_seed(template) if seed is None else seed
    env = env or make_env(template, n)
    env.reset(seed=seed, options={"draws": [e.draw for e in episodes]})
    total = np.zeros(n)
    for a in actions:
        _, reward, terminated, _, _ = env.step(a)
        total += reward
        if terminated.all():
            break
    return total


def with_silences(run: Run, context) -> tuple[np.ndarray, np.ndarray]:
    """The run's actions with a `silence_alert` at the start of every stretch where the responder idled long enough;
    [N] the silences inserted.

    Timing (why every other action happens at the same tick, on the same world state): a silence costs the responder
    `ACTIONS["silence_alert"].cost` seconds, k ticks, exactly as a k-tick wait does. An idle stretch is a run of
    waits, each taken at a step where the responder was free (the first step after the previous wait ended), L ticks
    in all. Where L >= k, the first wait becomes the silence; the responder is then busy for k ticks, so the env
    ignores whatever is recorded for the k-1 steps after it, and at step t+k we put waits (of the env's wait lengths,
    largest first) that fill the other L-k ticks — steps that were idle or ignored in the recording too. The
    responder is therefore free again at t+L, as recorded, and every non-wait action lands at its recorded tick.
    The engine never reads what the responder sees and a silence only hides alerts, so the world evolves the same
    (the identity replay checks that the recording replays bit for bit); any change of reward comes from the
    silences alone (their cost, and the unsafe-action rule for silencing while users are hurt)."""
    k = max(1, int(math.ceil(ACTIONS["silence_alert"].cost / context.dt - 1e-9)))
    wait, silence = context.verb("wait"), context.verb("silence_alert")
    ticks = np.asarray(WAIT_TICKS)
    acts = run.actions.copy()
    T, N, _ = acts.shape
    is_wait = run.free & (acts[..., 0] == wait)
    length = np.where(is_wait, ticks[np.clip(acts[..., 2], 0, len(ticks) - 1)], 0)     # [T, N] ticks idled
    fallback = int(np.flatnonzero(context.masks["target"][silence])[0])
    inserted = np.zeros(N, np.int64)
    for b in range(N):
        t = 0
        while t < T:
            if not is_wait[t, b]:
                t += 1
                continue
            end = t                                    # the idle stretch [t, end)
            while end < T and is_wait[end, b]:
                end += int(length[end, b])
            room = min(end, T) - t
            if room >= k:                              # silence what shows (one per k ticks), then idle on
                targets = [int(c) for c in np.flatnonzero(run.alerting[t, b])][:room // k] or [fallback]
                at = t
                for c in targets:
                    acts[at, b] = (silence, c, len(SILENCE_SECONDS) - 2)
                    at += k
                    inserted[b] += 1
                rest = end - at
                for n in sorted(WAIT_TICKS, reverse=True):
                    while rest >= n and at < T:
                        acts[at, b] = (wait, 0, WAIT_TICKS.index(n))
                        at, rest = at + n, rest - n
            t = max(end, t + 1)
    return acts, inserted


# ---- statistics ------------------------------------------------------------------------------------------------------
def rank(x: np.ndarray) -> np.ndarray:
    """Ranks (1-based) with ties given their average rank."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    """Spearman's rank correlation (Pearson's on average ranks); NaN when either side is constant."""
    rx, ry = rank(np.asarray(list(x))), rank(np.asarray(list(y)))
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(mean of a - b, its standard error), episode by episode: a and b hold the rewards of the same episodes in
    the same order."""
    d = np.subtract(np.asarray(a, dtype=float), np.asarray(b, dtype=float))     # [E]
    if len(d) == 0:
        return float("nan"), float("nan")
    if len(d) == 1 or np.ptp(d) <= 1e-9 * (1.0 + np.abs(d).max()):     # one difference throughout: rounding aside
        return float(d.mean()), 0.0
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def paired_margin(a: Sequence[float], b: Sequence[float]) -> float:
    """How far a's mean is above b's, in paired standard errors (0 where they agree on every episode)."""
    diff, se = paired(a, b)
    if se > 0:
        return diff / se
    return 0.0 if diff == 0 else math.copysign(math.inf, diff)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


# ---- the result ------------------------------------------------------------------------------------------------------
class AgentSummary(BaseModel):
    agent: str
    episodes: int
    mean_reward: float
    se_reward: float = Field(description="standard error of the mean reward")
    mitigation_rate: float = Field(description="share of the non-control episodes mitigated")
    mitigated_unpaged: float = Field(description="share of the non-control episodes mitigated without paging a human")
    detection_rate: float = Field(description="share of the non-control episodes detected")
    rca_accuracy: float = Field(description="share of all episodes with the exact root cause and class")
    mean_ntam: float
    mean_impact: float = Field(description="outage-minutes per episode")
    unsafe_per_episode: float
    paged_share: float
    seconds: float = Field(description="wall time of its runs")


class ClassRow(BaseModel):
    entry: str
    fault: str
    template: str
    episodes: int
    mitigated_share: float
    localised_share: float = Field(description="hand-overs naming a true root cause, of the episodes")
    mean_ntam: float
    mean_reward: float
    mean_impact: float


class Check(BaseModel):
    name: str
    passed: bool
    figure: float | None
    target: str
    detail: dict = Field(default_factory=dict)


class AuditResult(BaseModel):
    episodes: int = Field(description="episodes in the suite (each agent runs all of them)")
    seeds: int
    templates: dict[str, int]
    agents: list[AgentSummary]
    heuristic_classes: list[ClassRow]
    checks: list[Check]
    spearman: dict[str, float]
    runtime_s: float
    rewards: dict[str, list[float]] = Field(default_factory=dict, exclude=True,
                                            description="per agent, its episodes' rewards in the suite's order")

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


# ---- the audit -------------------------------------------------------------------------------------------------------
def audit(agents: Sequence[str] | None = None, seeds: int = 5, progress: Progress | None = None,
          templates: Sequence[str] = TEMPLATES, entries: Sequence[str] | None = None,
          silence_agents: Sequence[str] = (HEURISTIC, "random"), difficulty: Difficulty = Difficulty()
          ) -> AuditResult:
    """Run every agent on the same suite, at a `difficulty`, and check the reward (see the module docstring)."""
    started = time.perf_counter()
    names = list(agents) if agents is not None else list(AGENTS)
    if HEURISTIC not in names:
        names.insert(0, HEURISTIC)
    plan = suite(seeds, templates, entries, difficulty=difficulty)
    total_eps = sum(len(v) for v in plan.values())
    silence_on = [a for a in silence_agents if a in names]
    steps = len(plan) * (len(names) + 2 * len(silence_on))
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, steps, label)

    rows: dict[str, list[dict]] = {a: [] for a in names}
    seconds: dict[str, float] = {a: 0.0 for a in names}
    silence_detail: dict[str, dict] = {}
    worst_rise, identity_gap, silenced, silenced_eps = -math.inf, 0.0, 0, 0
    for template, eps in plan.items():
        env = make_env(template, len(eps), difficulty=difficulty)
        ctx = None
        for name in names:
            run = run_agent(agent_factory(name), template, eps, env=env)
            seconds[name] += run.seconds
            for e, r in zip(eps, run.reports):
                rows[name].append({**r, "template": template, "entry": e.entry, "seed": e.seed})
            tick(f"{template}: {name}")
            if name in silence_on:
                ctx = ctx or context_of(env)
                same = replay(template, eps, run.actions, env=env)
                tick(f"{template}: {name} replay")
                acts, inserted = with_silences(run, ctx)
                quiet = replay(template, eps, acts, env=env)
                tick(f"{template}: {name} with silences")
                rise = (quiet - run.rewards)[inserted > 0]          # episodes with at least one silence
                identity_gap = max(identity_gap, float(np.abs(same - run.rewards).max()))
                worst_rise = max(worst_rise, float(rise.max()) if len(rise) else -math.inf)
                silenced += int(inserted.sum())
                silenced_eps += int((inserted > 0).sum())
                d = silence_detail.setdefault(name, {"episodes": 0, "with_silences": 0, "silences": 0,
                                                     "max_rise": -math.inf, "mean_change": 0.0})
                d["episodes"] += len(eps)
                d["with_silences"] += int((inserted > 0).sum())
                d["silences"] += int(inserted.sum())
                d["max_rise"] = max(d["max_rise"], float(rise.max()) if len(rise) else -math.inf)
                d["mean_change"] += float(rise.sum())
    for d in silence_detail.values():
        d["mean_change"] = round(d["mean_change"] / max(d["with_silences"], 1), 4)
        d["max_rise"] = round(d["max_rise"], 6) if math.isfinite(d["max_rise"]) else None

    summaries = [_summary(a, rows[a], seconds[a]) for a in names]
    by = {s.agent: s for s in summaries}
    h = by[HEURISTIC]
    checks: list[Check] = []
    rewards = {a: [float(r["reward"]) for r in rows[a]] for a in names}     # same episodes, same order
    learned = [a for a in names if is_learned(a)]
    margins = {a: paired_margin(rewards[HEURISTIC], rewards[a]) for a in names
               if a != HEURISTIC and a not in learned}
    worst = min(margins, key=margins.get) if margins else None
    checks.append(Check(name="heuristic beats every other agent", passed=all(m >= MARGIN_SE for m in margins.values()),
                        figure=round(margins[worst], 2) if worst else None,
                        target=f">= {MARGIN_SE:g} paired standard errors over each",
                        detail={"closest": worst, "margins_se": {k: round(v, 2) for k, v in margins.items()}}))
    rho, by_agent, impact_only = {}, {}, {}
    pool = baselines(names)
    for template in plan:
        pooled = [r for a in pool for r in rows[a] if r["template"] == template]
        impact = [r["impact_minutes"] for r in pooled]
        rho[template] = round(spearman([r["reward"] for r in pooled], impact), 4)
        # what the other terms do to it: reward less everything but the impact and the mitigation credit
        impact_only[template] = round(spearman([r["terms"]["impact"] + r["terms"]["mitigation"] for r in pooled],
                                               impact), 4)
        by_agent[template] = {a: _round(spearman([r["reward"] for r in rows[a] if r["template"] == template],
                                                 [r["impact_minutes"] for r in rows[a] if r["template"] == template]))
                              for a in names}
    finite = [v for v in rho.values() if not math.isnan(v)]
    checks.append(Check(name="reward falls with user impact (Spearman, per template)",
                        passed=bool(finite) and all(v <= SPEARMAN_MAX for v in finite),
                        figure=max(finite) if finite else None, target=f"<= {SPEARMAN_MAX:g} on every template",
                        detail={"per_template": rho, "impact_and_mitigation_terms_only": impact_only,
                                "pooled_agents": pool, "per_agent": by_agent}))
    if silence_on:
        checks.append(Check(name="silencing alerts never raises the reward", passed=bool(silenced) and
                            worst_rise <= 1e-9 and identity_gap == 0.0,
                            figure=round(worst_rise, 6) if silenced else None,
                            target="largest reward change from inserted silences <= 0 (replays exact)",
                            detail={"silences": silenced, "episodes_with_silences": silenced_eps,
                                    "identity_replay_max_gap": identity_gap,
                                    "per_agent": silence_detail}))
    checks.append(Check(name="heuristic mitigates the non-control episodes", passed=h.mitigation_rate >= MITIGATION_MIN,
                        figure=round(h.mitigation_rate, 4), target=f">= {MITIGATION_MIN:.0%}"))
    cheats = [c for c in CHEATS if c in by]
    if learned and cheats:
        over = {f"{a} over {c}": paired_margin(rewards[a], rewards[c]) for a in learned for c in cheats}
        closest = min(over, key=over.get)
        checks.append(Check(name="the trained policy beats every cheat",
                            passed=all(m >= MARGIN_SE for m in over.values()), figure=round(over[closest], 2),
                            target=f">= {MARGIN_SE:g} paired standard errors over each",
                            detail={"closest": closest, "margins_se": {k: round(v, 2) for k, v in over.items()}}))
    classes = _classes(rows[HEURISTIC])
    return AuditResult(episodes=total_eps, seeds=seeds, templates={t: len(v) for t, v in plan.items()},
                       agents=summaries, heuristic_classes=classes, checks=checks, spearman=rho,
                       runtime_s=round(time.perf_counter() - started, 2), rewards=rewards)


def is_learned(agent: str) -> bool:
    """A trained policy (held to beating the cheats, not the heuristic)."""
    return agent == "ppo" or agent.endswith(".pt")


def baselines(names: Sequence[str]) -> list[str]:
    """Those of `names` that are registered baseline agents (non-learned, in `AGENTS`): the pool of check (b)."""
    return [a for a in names if a in AGENTS and not is_learned(a)]


def _round(x: float, digits: int = 4) -> float | None:
    return round(x, digits) if math.isfinite(x) else None


def _summary(agent: str, rows: list[dict], seconds: float) -> AgentSummary:
    faults = [r for r in rows if not r["control"]]
    mean, se = mean_se([r["reward"] for r in rows])
    share = lambda rs, key: float(np.mean([bool(r[key]) for r in rs])) if rs else float("nan")   # noqa: E731
    return AgentSummary(
        agent=agent, episodes=len(rows), mean_reward=round(mean, 4), se_reward=round(se, 4),
        mitigation_rate=round(share(faults, "mitigated"), 4),
        mitigated_unpaged=round(float(np.mean([r["mitigated"] and not r["paged"] for r in faults])), 4) if faults
        else float("nan"),
        detection_rate=round(share(faults, "detected"), 4),
        rca_accuracy=round(share(rows, "root_cause_correct"), 4),
        mean_ntam=round(float(np.mean([r["ntam"] for r in rows])), 4) if rows else float("nan"),
        mean_impact=round(float(np.mean([r["impact_minutes"] for r in rows])), 4) if rows else float("nan"),
        unsafe_per_episode=round(float(np.mean([len(r["unsafe"]) for r in rows])), 4) if rows else float("nan"),
        paged_share=round(share(rows, "paged"), 4), seconds=round(seconds, 2))


def _classes(rows: list[dict]) -> list[ClassRow]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["template"], r["entry"]), []).append(r)
    out = []
    for (template, entry), rs in groups.items():
        out.append(ClassRow(entry=entry, fault=rs[0]["fault"], template=template, episodes=len(rs),
                            mitigated_share=round(float(np.mean([r["mitigated"] for r in rs])), 4),
                            localised_share=round(float(np.mean([r["localized"] for r in rs])), 4),
                            mean_ntam=round(float(np.mean([r["ntam"] for r in rs])), 4),
                            mean_reward=round(float(np.mean([r["reward"] for r in rs])), 4),
                            mean_impact=round(float(np.mean([r["impact_minutes"] for r in rs])), 4)))
    return out
