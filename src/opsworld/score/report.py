"""The per-episode score report: the reward with its terms, and the metrics the field already uses (AIOpsLab's
detection, localisation, root-cause analysis and mitigation with their times; ITBench's NTAM; user impact), plus the
unsafe control actions by rule name. Everything here is read off the truth and the ground truth."""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from opsworld.score.reward import TERMS
from opsworld.score.scored import ScoredIncidents


class UnsafeAction(BaseModel):
    time: float = Field(description="seconds after the start")
    rule: str


class ScoreReport(BaseModel):
    """One world's episode, scored."""

    world: int
    reward: float = Field(description="the episode's reward in points; an outage-minute costs 200 (higher is better)")
    terms: dict[str, float] = Field(description="impact, mitigation, diagnosis, costs, unsafe")
    fault: str = Field(description="the fault type, or no_fault for a control")
    also: list[str] = Field(default_factory=list, description="the types of further faults that struck beside it "
                                                              "(a compound incident)")
    roots: list[str] = Field(description="the root causes of every fault in the incident")
    control: bool = Field(description="no fault to find: a detection control")
    detected: bool
    time_to_detect: float | None = Field(description="seconds from onset to the first act on the incident")
    localized: bool = Field(description="the diagnosis names a true root cause (exact match)")
    root_cause_correct: bool = Field(description="the exact root cause and the fault class")
    fault_class_correct: bool
    ntam: float = Field(description="topology-aware localisation match, 0..1")
    chain_ntam: float | None = Field(None, description="topology-aware match of the submitted propagation chain "
                                                      "against the true one, 0..1 (None: no chain submitted, or "
                                                      "no counterfactual to read the true chain off)")
    mitigated: bool = Field(description="the true fault was neutralised and the SLOs held for the hold window")
    time_to_mitigate: float | None = Field(description="seconds from onset until neutralised (None: never)")
    impact_minutes: float = Field(description="outage-minutes: the share of entry requests that went wrong beyond "
                                              "the SLOs' error budgets, integrated over the episode")
    impaired_requests: float = Field(description="entry requests that went wrong beyond the error budgets")
    requests: float
    unsafe: list[UnsafeAction]
    actions: int
    bad_actions: int
    failed_orders: int = Field(description="mitigations that could not take effect when they landed")
    paged: bool
    submitted: bool
    diagnosis: dict | None


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def report(inc: ScoredIncidents, b: int) -> ScoreReport:
    """The report of world b (at any time; final once the episode is done)."""
    s = inc.score
    truth = inc.truths[b]
    onset = float(inc.onset[b])
    faults = [truth, *inc.others[b]] if truth is not None and not inc.control[b] else []
    roots = list(dict.fromkeys(p.name for f in faults for p in f.roots))
    named = (inc.diagnosis[b] or {}).get("components") or []
    detected = bool(math.isfinite(s.detected_at[b]))
    mitigated = bool(math.isfinite(s.mitigated_at[b]))
    return ScoreReport(
        world=b, reward=float(sum(s.terms[t][b] for t in TERMS)),
        terms={t: float(s.terms[t][b]) for t in TERMS},
        fault=truth.kind if faults else "no_fault", also=[f.kind for f in faults[1:]], roots=roots,
        control=bool(inc.control[b]), detected=detected,
        time_to_detect=_finite(s.detected_at[b] - onset) if detected else None,
        localized=bool(roots) and any(n in roots for n in named) and bool(s.ntam[b] > 0),   # (0: no evidence yet)
        root_cause_correct=bool(s.class_right[b]) and (bool(roots) and set(roots) <= set(named) or not roots),
        fault_class_correct=bool(s.class_right[b]), ntam=float(s.ntam[b]),
        chain_ntam=None if math.isnan(s.chain_ntam[b]) else float(s.chain_ntam[b]),
        mitigated=mitigated, time_to_mitigate=_finite(s.neutral_at[b] - onset) if mitigated else None,
        impact_minutes=float(s.impact_minutes[b]), impaired_requests=float(s.impaired[b]),
        requests=float(s.requests[b]),
        unsafe=[UnsafeAction(time=t, rule=r) for t, r in s.rules.hits[b]],
        actions=int(s.actions[b]), bad_actions=int(s.bad_actions[b]), failed_orders=int(s.failed_orders[b]),
        paged=bool(math.isfinite(inc.paged_at[b])), submitted=bool(math.isfinite(inc.submitted_at[b])),
        diagnosis=inc.diagnosis[b])
