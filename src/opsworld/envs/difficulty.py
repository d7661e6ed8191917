"""How hard incidents are: one dial, `easy`, `realistic` or `hard`, over what makes real incidents hard.

Each field is a dial from 0 (none) to 1 (much). At `easy` every one is 0: the catalogue's published parameters, the
hand-written alerts exactly as tuned, a change log with only the incident's own change. `realistic` is what an
on-call engineer meets: parameters drawn from their documented ranges, a background of healthy changes (some near the
onset), cause-specific alerts sometimes missing, mis-tuned or silenced days ago while the symptom alerts page, a few
flapping warnings, now and then a benign anomaly beside the fault or a second fault, now and then a culprit
change pushed by hand and missing from the change log. `hard` turns all of it up.
`docs/difficulty.md` says what each level does and what it does to the honest heuristic.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Sequence

from opsworld.envs.generator import CatalogueGenerator

if TYPE_CHECKING:
    from opsworld.observe.coverage import Coverage

BACKGROUND_PER_HOUR = 4.0      # healthy changes and passing flaps an hour at red_herrings = 1 (the audit's, at easy)


@dataclass(frozen=True)
class Difficulty:
    """What makes the drawn incidents hard to read and to fix, each from 0 (none) to 1 (much).

    red_herrings: benign changes and flapping alerts beside the real fault.
    hidden_couplings: share of real calls left out of the service map the responder is shown (generated systems).
    telemetry_gaps: share of metric samples and log lines lost (0.3 of them at 1).
    compound: chance that a second, independent fault strikes the same world (scored as part of the incident).
    spread: how far each fault's parameters are drawn from the catalogue's presets within their documented ranges,
      and the day's traffic from the scenario's (0.78-1.28x at 1).
    anomaly: chance of a benign anomaly beside the fault (a mild traffic spike, a dependency a bit slow all along).
    monitoring: how far the alerting is from ideal: cause-specific alerts missing, mis-tuned or silenced days ago,
      warnings that flap by themselves (symptom alerts always page).
    unlogged: chance that the deploy or config push carrying a fault was made by hand, past the pipeline, so the
      culprit is not in the change log (the running version and the pods' ages still show it).
    """

    red_herrings: float = 0.0
    hidden_couplings: float = 0.0
    telemetry_gaps: float = 0.0
    compound: float = 0.0
    spread: float = 0.0
    anomaly: float = 0.0
    monitoring: float = 0.0
    unlogged: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"difficulty {f.name} must be in 0..1, got {value}")

    def coverage(self) -> Coverage | None:
        """The alerting's imperfection at this difficulty (None: the rules as written)."""
        m = self.monitoring
        if not m:
            return None
        from opsworld.observe.coverage import Coverage     # the sensors' layer, needed only when turned up
        return Coverage(missing=0.35 * m, mistuned=0.35 * m, noisy=3.0 * m, stale_silence=0.6 * m)

    def generator(self, entries: Sequence[str] | None = None, onset: tuple[float, float] = (300.0, 900.0),
                  background: float | None = None, horizon: float = 3600.0) -> CatalogueGenerator:
        """A generator of catalogue incidents at this difficulty for episodes of `horizon` seconds (`background`:
        healthy changes and flaps per episode around the incident; default from `red_herrings`)."""
        per_episode = BACKGROUND_PER_HOUR * self.red_herrings * horizon / 3600.0 if background is None else background
        turned = {k: v for k, v in dict(spread=self.spread, background=per_episode, compound=self.compound,
                                        anomaly=self.anomaly, unlogged=self.unlogged, load=self.spread).items()
                  if v}
        return CatalogueGenerator(entries=entries, onset=onset, horizon=horizon, **turned)

    def record(self) -> dict[str, float]:
        """The dials as records hold them: the first four always (records written before the others existed stay the
        same), the later ones only when turned up."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name in FIRST_DIALS or getattr(self, f.name)}


FIRST_DIALS = ("red_herrings", "hidden_couplings", "telemetry_gaps", "compound")


LEVELS: dict[str, Difficulty] = {
    "easy": Difficulty(),
    "realistic": Difficulty(red_herrings=0.5, telemetry_gaps=0.1, compound=0.1, spread=1.0, anomaly=0.3,
                            monitoring=0.5, hidden_couplings=0.1, unlogged=0.2),
    "hard": Difficulty(red_herrings=1.0, telemetry_gaps=0.3, compound=0.3, spread=1.0, anomaly=0.6, monitoring=1.0,
                       hidden_couplings=0.3, unlogged=0.4),
}
DEFAULT_LEVEL = "realistic"      # for play, mcp and eval: what an on-call engineer meets


def level(name: str | Difficulty) -> Difficulty:
    """The difficulty called `name` (easy, realistic, hard); raises ValueError naming the levels."""
    if isinstance(name, Difficulty):
        return name
    if name not in LEVELS:
        raise ValueError(f"unknown difficulty {name!r}; choose one of: {', '.join(LEVELS)}")
    return LEVELS[name]
