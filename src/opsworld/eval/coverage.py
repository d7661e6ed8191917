"""Alert coverage: which of the catalogue's failures page a system's on-call engineer, under the rules it runs.

Every place each catalogue entry can strike the scenario runs as one world of a batch, with the telemetry on and the
scenario's alerting rules (its template's hand-written file, or rules generated from it). Per entry: in how many of
its places users were hurt, in how many a page reached the on-call engineer, which alerts paged first and how long
after the onset. An entry that pages nowhere is given a reason: it hurt no user here, it hurt them only with wrong
answers reported as successes (which no metric counts), or no rule saw what it did (a gap in the rules).

    rows = alert_coverage(load_scenario("my-system.yaml"))
    paged_share(rows)        # the share of entries that page in at least half of their places
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from opsworld.envs.generator import CONTROLS, CatalogueGenerator, Draw
from opsworld.envs.incident import IncidentConfig, Incidents
from opsworld.faults.catalogue import CATALOGUE
from opsworld.faults.placement import fitting
from opsworld.observe.alerts import PAGER
from opsworld.spec import Scenario

HURT = 0.5                  # outage-minutes from which an incident counts as having hurt users
SILENT = ("wrong_answers", "replication_lag")        # fault kinds whose harm is answers that look right


@dataclass(frozen=True)
class Coverage:
    """One catalogue entry on one scenario: what its places did to users and to the pager."""

    name: str
    kind: str
    places: int
    hurt: int                    # places where users were hurt (>= HURT outage-minutes)
    paged: int                   # places where the on-call engineer was paged after the onset
    hurt_paged: int              # places where users were hurt and a page came
    alerts: tuple[str, ...]      # the alerts that paged first, over all places
    minutes_to_page: float | None    # median minutes from the onset to the first page, where paged
    others: tuple[str, ...]      # alerts that fired without paging (tickets), where nothing paged

    @property
    def pages(self) -> bool:
        """Whether the entry pages in at least half of its places."""
        return 2 * self.paged >= self.places > 0

    @property
    def why_not(self) -> str | None:
        """Why the entry does not page (None when it does)."""
        if self.pages:
            return None
        if self.name in CONTROLS:
            return "no fault: nothing to page for"
        if 2 * self.hurt < self.places:
            return "hurts no user in most of its places here (the system absorbs it)"
        if self.kind in SILENT:
            return "hurts users with wrong answers reported as successes: no metric counts them (logs show a few)"
        return "hurts users but no page rule sees it" + (f" (tickets: {', '.join(self.others)})" if self.others
                                                         else " (nothing fires)")


def alert_coverage(scenario: Scenario, onset: float = 300.0, seed: int = 0,
                   names: Sequence[str] | None = None,
                   progress: Callable[[str], None] | None = None) -> list[Coverage]:
    """Run every placement of every catalogue entry (or of `names`) that can strike `scenario`, one world each,
    from a fault at `onset` seconds to the scenario's end. The last row is the `no_fault` control, run beside them:
    a page there is a false page."""
    pairs = [(n, p) for n, spots in fitting(scenario, names) if n not in CONTROLS for p in spots]
    if not pairs:
        return []
    pairs.append(("no_fault", {}))
    draws = [Draw(n, CATALOGUE[n].make(**{**p, "onset": onset})) for n, p in pairs]
    if progress is not None:
        progress(f"{len(draws) - 1} places of {len({n for n, _ in pairs}) - 1} entries and a no-fault control, "
                 "one world each, "
                 f"{scenario.duration / 60:.0f} simulated minutes")
    inc = Incidents(IncidentConfig(scenario=scenario, telemetry=True,
                                   generator=CatalogueGenerator(entries=sorted({n for n, _ in pairs}))),
                    worlds=len(draws), seed=seed)
    inc.reset(seed, draws=draws)
    inc.run_to_end()
    start = scenario.traffic.start + onset
    telemetry = inc.telemetry
    assert telemetry is not None and telemetry.notifier is not None
    impact = np.array([r.impact_minutes for r in inc.reports()])
    per: dict[str, list[int]] = {}
    for b, (n, _) in enumerate(pairs):
        per.setdefault(n, []).append(b)
    rows = []
    for name, worlds in per.items():
        first, minutes, others, hurt_paged = [], [], set(), 0
        for b in worlds:
            pages = [p for p in telemetry.notifier.pages(b) if p.receiver == PAGER and p.time >= start]
            hurt_paged += int(bool(pages) and impact[b] >= HURT)
            if pages:
                first += [a.labels["alertname"] for a in pages[0].alerts]
                minutes.append((pages[0].time - start) / 60.0)
            else:
                others |= {a.name for a in telemetry.evaluator.alerts(b) if a.state == "firing"}
        rows.append(Coverage(name, CATALOGUE[name].fault.kind, len(worlds), int((impact[worlds] >= HURT).sum()),
                             len(minutes), hurt_paged, tuple(sorted(set(first))),
                             float(np.median(minutes)) if minutes else None, tuple(sorted(others))))
    return rows


def paged_share(rows: Sequence[Coverage]) -> float:
    """The share of fault entries (the control left out) that page in at least half of their places."""
    faults = [r for r in rows if r.name not in CONTROLS]
    return sum(r.pages for r in faults) / max(len(faults), 1)
