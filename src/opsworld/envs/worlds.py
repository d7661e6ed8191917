"""Worlds for domain randomisation: a seed becomes a topology, the traffic it serves and the incidents it may have.

`WorldGenerator(services=(5, 500), difficulty=Difficulty(...)).draw(seed)` gives a `World`: a checked `Scenario` and
the incident generator for its batches (`World.config()` is the `IncidentConfig` to run it). Everything drawn follows
from the generator's parameters and the seed, which `World.record` holds, so `world_from_record(record)` rebuilds the
same world exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from opsworld.envs.difficulty import Difficulty
from opsworld.envs.generator import PortableGenerator
from opsworld.envs.incident import IncidentConfig
from opsworld.spec import Scenario, load_scenario, templates
from opsworld.spec.generate import TopologyGenerator


@dataclass(frozen=True)
class World:
    """One drawn world: its scenario, the incident generator for its batches, and the record that rebuilds it."""

    seed: int
    scenario: Scenario
    generator: PortableGenerator
    record: dict = field(default_factory=dict)

    def config(self, horizon: float | None = None) -> IncidentConfig:
        """The `IncidentConfig` that runs batches of this world."""
        dials = Difficulty(**self.record.get("difficulty", {}))
        return IncidentConfig(scenario=self.scenario, horizon=horizon, generator=self.generator,
                              telemetry_gaps=0.3 * dials.telemetry_gaps, coverage=dials.coverage())


@dataclass(frozen=True)
class WorldGenerator:
    """Draws worlds from seeds: a generated topology of `services` components (or the built-in `template`), and
    incidents drawn on it with the `difficulty` asked. `exclude`: catalogue entries never drawn (held out);
    `entries`: the only ones drawn (None: all that fit)."""

    services: tuple[int, int] = (5, 500)
    difficulty: Difficulty = Difficulty()
    template: str | None = None
    exclude: tuple[str, ...] = ()
    onset: tuple[float, float] = (300.0, 900.0)
    entries: tuple[str, ...] | None = None

    def draw(self, seed: int) -> World:
        """The world of this seed."""
        d = self.difficulty
        if self.template is not None:
            scenario = load_scenario(self.template)
        else:
            scenario = TopologyGenerator(services=tuple(self.services),
                                         hidden_couplings=0.3 * d.hidden_couplings).draw(seed)
        generator = PortableGenerator(onset=self.onset, red_herrings=3.0 * d.red_herrings, compound=d.compound,
                                      spread=d.spread, anomaly=d.anomaly, unlogged=d.unlogged, load=d.spread,
                                      exclude=tuple(self.exclude), horizon=scenario.duration,
                                      entries=None if self.entries is None else tuple(self.entries))
        return World(seed, scenario, generator, self.record(seed))

    def record(self, seed: int) -> dict:
        """What rebuilds the world of `seed`: the generator's parameters and the seed."""
        record = {"seed": int(seed), "services": list(self.services), "difficulty": self.difficulty.record(),
                  "template": self.template, "exclude": list(self.exclude), "onset": list(self.onset)}
        if self.entries is not None:      # only when asked: the records (and rollout files) of before stay the same
            record["entries"] = list(self.entries)
        return record


def world_from_record(record: dict) -> World:
    """The world a `World.record` describes, exactly as it was drawn."""
    generator = WorldGenerator(services=tuple(record["services"]), difficulty=Difficulty(**record["difficulty"]),
                               template=record.get("template"), exclude=tuple(record.get("exclude", ())),
                               onset=tuple(record.get("onset", (300.0, 900.0))),
                               entries=None if record.get("entries") is None else tuple(record["entries"]))
    return generator.draw(int(record["seed"]))


PLAYED_SIZES = (6, 30)      # a generated system `play` draws: small enough to read through its tools


def system_for_seed(seed: int) -> str | Scenario:
    """The system an incident of `seed` runs on when none is named (`opsworld play --seed S`): each built-in template
    or a generated system of `PLAYED_SIZES` components, equally likely, drawn from the seed."""
    choices: list[str | None] = [*templates(), None]
    pick = choices[int(np.random.default_rng([int(seed), 0x5157]).integers(len(choices)))]
    return pick if pick is not None else TopologyGenerator(services=PLAYED_SIZES).draw(int(seed))
