"""The human a page brings: a real person, with a real cost, who fixes what is wrong when they get there.

Paged, they take `HUMAN_ARRIVE` seconds to get to a keyboard and look. If nothing is wrong then (no fault acts and
users are well), they go back to what they were doing: the page cost their organisation those minutes and nothing
was gained (alert fatigue). If something is wrong, they stay: they diagnose it as a good on-call engineer would and
their fix lands `HUMAN_DELAY` seconds after the page. They fix what was wrong when they looked — a fault that only
begins after that is not theirs to have foreseen — and while one human is on it, a second page brings nobody new.

Arrays over worlds; the few worlds with a human in them are handled each tick with a few numpy calls.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from opsworld.act.mitigations import HUMAN_ARRIVE, HUMAN_DELAY


class Humans:
    """The paged humans of a batch of B worlds. `page` when paged; `tick` each tick, before the faults step."""

    def __init__(self, worlds: int) -> None:
        B = worlds
        self.paged_at = np.full(B, np.inf)       # [B] the page that brought the human on their way (inf: none)
        self.arrives_at = np.full(B, np.inf)     # [B] when they will look (inf: not on their way)
        self.looked_at = np.full(B, np.inf)      # [B] when the human at work looked
        self.fixes_at = np.full(B, np.inf)       # [B] when their fix lands (they found something wrong)
        self.escalated_at = np.full(B, np.inf)   # [B] the first page whose human found something wrong
        self.minutes = np.zeros(B)               # [B] minutes of human work so far

    def page(self, worlds: np.ndarray, now: float) -> np.ndarray:
        """Page for these worlds; return those where it brings somebody (no human is on their way or at work)."""
        free = worlds[~np.isfinite(self.arrives_at[worlds]) & ~np.isfinite(self.looked_at[worlds])]
        self.paged_at[free] = now
        self.arrives_at[free] = now + HUMAN_ARRIVE
        return free

    def tick(self, now: float, wrong: Callable[[np.ndarray], np.ndarray], fixed: Callable[[np.ndarray], None],
             worked: Callable[[np.ndarray, np.ndarray], None]) -> None:
        """Humans arriving look (`wrong(worlds)` -> [W] whether anything is wrong there now) and stay or leave;
        where a staying human's fix is due, `fixed(worlds)` lands it (the `page_human` mitigation: it repairs what
        had begun when they looked). `worked(worlds, minutes)` is told
        each human's minutes when they leave."""
        due = np.isfinite(self.arrives_at) & (self.arrives_at <= now + 1e-9)
        if due.any():
            arriving = np.flatnonzero(due)
            stays = wrong(arriving)
            stay, leave = arriving[stays], arriving[~stays]
            self.fixes_at[stay] = self.paged_at[stay] + HUMAN_DELAY
            self.looked_at[stay] = now
            self.escalated_at[stay] = np.minimum(self.escalated_at[stay], self.paged_at[stay])
            self.arrives_at[arriving] = np.inf
            self._leave(leave, now, worked)
        due = np.isfinite(self.fixes_at) & (self.fixes_at <= now + 1e-9)
        if due.any():
            fixing = np.flatnonzero(due)
            fixed(fixing)
            self.fixes_at[fixing] = np.inf
            self.looked_at[fixing] = np.inf
            self._leave(fixing, now, worked)

    def _leave(self, worlds: np.ndarray, now: float, worked: Callable[[np.ndarray, np.ndarray], None]) -> None:
        if len(worlds):
            minutes = (now - self.paged_at[worlds]) / 60.0
            self.minutes[worlds] += minutes
            worked(worlds, minutes)

    @property
    def present(self) -> bool:
        """Whether a human is on their way or at work in any world."""
        return bool(np.isfinite(self.arrives_at).any() or np.isfinite(self.looked_at).any())
