"""Evaluation suites in the field's own terms, and a leaderboard over them.

Four suites mirror the tasks AIOpsLab and ITBench score (the episodes come from the audit's fixed suite builder, so
the same seed count gives the same incidents to every agent):

- `detection`: every catalogue entry on every template plus no-fault controls (two per seed on templates without
  controls of their own). Metric: detection accuracy over faults and controls (a fault is detected when the responder
  acted on it; a control is a false alarm when the responder mitigated, paged, acknowledged or named a fault),
  true- and false-positive rates, time to detect (TTD).
- `localization`: the fault episodes. Exact match (the named places are the true root causes), subset match (a true
  root cause is among those named), NTAM (ITBench's topology-aware match), time to localise (TTL: the hand-over of a
  localised diagnosis, from onset).
- `rca`: the fault episodes. Root cause and fault class both right, class accuracy, component accuracy.
- `mitigation`: the fault episodes. Share mitigated (the true fault neutralised and the SLOs held), time to mitigate
  (TTM), user impact in outage-minutes, unsafe actions per episode.

Every result also carries the mean reward and its standard error. `leaderboard(suite)` runs every registered agent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from opsworld.act.vocabulary import valid
from opsworld.agents import AGENTS, agent_factory
from opsworld.agents.base import context_of
from opsworld.envs.difficulty import Difficulty
from opsworld.eval.audit import BACKGROUND, TEMPLATES, Progress, make_env, mean_se, run_agent, suite

_CONTROL_CLASSES = ("no_fault", "benign_change", "none")


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    description: str
    primary: str                 # the metric the leaderboard sorts by (higher is better)
    controls: bool               # include control episodes
    extra_controls: int = 0      # no_fault episodes per seed on templates without their own controls


SUITES: dict[str, SuiteSpec] = {
    "detection": SuiteSpec("detection", "faults and no-fault controls: did the responder notice, and only then?",
                           "detection_accuracy", controls=True, extra_controls=2),
    "localization": SuiteSpec("localization", "fault episodes: did the hand-over name the root cause?", "exact_match",
                              controls=False),
    "rca": SuiteSpec("rca", "fault episodes: root cause and fault class", "rca_accuracy", controls=False),
    "mitigation": SuiteSpec("mitigation", "fault episodes: was the fault neutralised, how fast, at what cost?",
                            "mitigation_rate", controls=False),
}


class EvalResult(BaseModel):
    suite: str
    agent: str
    seeds: int
    episodes: int
    primary: str = Field(description="the suite's headline metric")
    metrics: dict[str, float | None]
    runtime_s: float


class Leaderboard(BaseModel):
    suite: str
    seeds: int
    primary: str
    rows: list[EvalResult] = Field(description="best first by the primary metric")


class SuiteError(ValueError):
    """An unknown suite name."""


def _spec(name: str) -> SuiteSpec:
    if name not in SUITES:
        raise SuiteError(f"no suite named '{name}'; suites: {', '.join(SUITES)}")
    return SUITES[name]


def evaluate(suite_name: str, agent: str, seeds: int = 2, templates: Sequence[str] = TEMPLATES,
             entries: Sequence[str] | None = None, progress: Progress | None = None,
             background: float = BACKGROUND, difficulty: Difficulty = Difficulty()) -> EvalResult:
    """Run `agent` (a registered name or `module:Class`) on the suite and score it (`background`: healthy changes
    and passing flaps per hour around each incident, as in the audit; `difficulty`: how hard the incidents are)."""
    spec = _spec(suite_name)
    factory = agent_factory(agent)
    started = time.perf_counter()
    plan = suite(seeds, templates, entries, controls=spec.controls, extra_controls=spec.extra_controls,
                 background=background, difficulty=difficulty)
    rows: list[dict] = []
    for i, (template, eps) in enumerate(plan.items()):
        env = make_env(template, len(eps), difficulty=difficulty)
        run = run_agent(factory, template, eps, env=env)
        alarms = _alarms(run, env)
        onsets = env.inc.onset
        for b, (e, r, alarm) in enumerate(zip(eps, run.reports, alarms)):
            rows.append({**r, "entry": e.entry, "template": template, "alarm": bool(alarm),
                         "onset": float(onsets[b]) if np.isfinite(onsets[b]) else None})
        if progress is not None:
            progress(i + 1, len(plan), template)
    return EvalResult(suite=spec.name, agent=agent, seeds=seeds, episodes=len(rows), primary=spec.primary,
                      metrics=_metrics(spec, rows), runtime_s=round(time.perf_counter() - started, 2))


def leaderboard(suite_name: str, agents: Sequence[str] | None = None, seeds: int = 2,
                templates: Sequence[str] = TEMPLATES, entries: Sequence[str] | None = None,
                progress: Callable[[int, int, str], None] | None = None,
                background: float = BACKGROUND, difficulty: Difficulty = Difficulty()) -> Leaderboard:
    """Every agent (default: all registered) on the same suite, best first."""
    spec = _spec(suite_name)
    names = list(agents) if agents is not None else list(AGENTS)
    results = []
    for i, name in enumerate(names):
        results.append(evaluate(suite_name, name, seeds, templates, entries, background=background,
                                difficulty=difficulty))
        if progress is not None:
            progress(i + 1, len(names), name)
    key = lambda r: (r.metrics.get(spec.primary) if r.metrics.get(spec.primary) is not None else -math.inf,  # noqa
                     r.metrics.get("mean_reward") or -math.inf)
    return Leaderboard(suite=spec.name, seeds=seeds, primary=spec.primary, rows=sorted(results, key=key, reverse=True))


# ---- scoring --------------------------------------------------------------------------------------------------------
def _alarms(run, env) -> np.ndarray:
    """[N] whether the responder raised the alarm: a mitigation, a page or an acknowledgement accepted by the env, or a
    hand-over naming a fault (checked against the masks, at steps where it was free to act)."""
    ctx = context_of(env)
    verbs = [i for i, v in enumerate(ctx.verbs) if v not in ("wait", "query_metrics", "read_logs", "get_traces",
                                                            "silence_alert", "submit")]
    v, t, g = run.actions[..., 0], run.actions[..., 1], run.actions[..., 2]
    acted = (run.free & valid(ctx.masks, v, t, g) & np.isin(v, verbs)).any(axis=0)
    named = np.array([bool(r.get("diagnosis")) and (r["diagnosis"] or {}).get("fault_class") not in _CONTROL_CLASSES
                      for r in run.reports])
    return acted | named


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def _metrics(spec: SuiteSpec, rows: list[dict]) -> dict[str, float | None]:
    faults = [r for r in rows if not r["control"]]
    controls = [r for r in rows if r["control"]]
    mean, se = mean_se([r["reward"] for r in rows])
    out: dict[str, float | None] = {"mean_reward": round(mean, 4), "se_reward": round(se, 4)}
    if spec.name == "detection":
        tp = sum(r["detected"] for r in faults)
        tn = sum(not r["alarm"] for r in controls)
        out.update(detection_accuracy=round((tp + tn) / max(len(rows), 1), 4),
                   true_positive_rate=round(tp / len(faults), 4) if faults else None,
                   false_positive_rate=round(1 - tn / len(controls), 4) if controls else None,
                   ttd_s=_mean([r["time_to_detect"] for r in faults if r["time_to_detect"] is not None]),
                   faults=len(faults), controls=len(controls))
    elif spec.name == "localization":
        named = [((r.get("diagnosis") or {}).get("components") or []) for r in faults]
        exact = [bool(n) and set(n) == set(r["roots"]) for n, r in zip(named, faults)]
        ttl = [_since_onset(r) for r, ok in zip(faults, exact) if ok and _since_onset(r) is not None]
        out.update(exact_match=_mean([float(x) for x in exact]),
                   subset_match=_mean([float(r["localized"]) for r in faults]),
                   ntam=_mean([r["ntam"] for r in faults]), ttl_s=_mean(ttl),
                   submitted=_mean([float(r["submitted"]) for r in faults]))
    elif spec.name == "rca":
        out.update(rca_accuracy=_mean([float(r["root_cause_correct"]) for r in faults]),
                   class_accuracy=_mean([float(r["fault_class_correct"]) for r in faults]),
                   component_accuracy=_mean([float(r["localized"]) for r in faults]),
                   ntam=_mean([r["ntam"] for r in faults]))
    else:
        out.update(mitigation_rate=_mean([float(r["mitigated"]) for r in faults]),
                   ttm_s=_mean([r["time_to_mitigate"] for r in faults if r["time_to_mitigate"] is not None]),
                   impact_minutes=_mean([r["impact_minutes"] for r in faults]),
                   unsafe_per_episode=_mean([float(len(r["unsafe"])) for r in faults]),
                   paged_share=_mean([float(r["paged"]) for r in faults]))
    return out


def _since_onset(r: dict) -> float | None:
    """Seconds from the fault's onset to the hand-over."""
    d = r.get("diagnosis") or {}
    onset = r.get("onset")
    if d.get("time") is None or onset is None:
        return None
    return float(d["time"]) - float(onset)
