"""A simulated incident to look at: a scenario, its faults, a seed and a length, run with its telemetry on.

An episode file is YAML:

    scenario: online-shop          # a template name or a scenario file (relative to the episode file)
    seed: 7
    duration: 1h                   # default: the scenario's
    overrides: {traffic: {start: "2026-11-25T01:45:00Z"}}   # optional scenario fields changed
    faults:                        # catalogue entries (`opsworld faults`) or fault kinds, with parameters
      - {fault: certificate_expiry, target: cartservice-tls, onset: "02:00"}
    telemetry: {trace_sample: 0.2, scrape_failure: 0.01}     # optional imperfections

`load_episode` reads one (or takes a bare scenario: no faults); `Episode.run()` simulates it into a `Telemetry`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsworld.engine import Engine
from opsworld.faults.base import Fault, FaultError, Seconds, one_line
from opsworld.faults.catalogue import fault_from
from opsworld.faults.injector import Injector
from opsworld.observe.imperfection import Imperfections
from opsworld.observe.telemetry import Telemetry
from opsworld.spec import Scenario, load_scenario


class EpisodeError(ValueError):
    """An episode file that cannot be run: one line naming the file, the field and the fix."""


class Episode(BaseModel):
    """What to simulate."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    scenario: str = Field(description="a template name or a scenario file")
    seed: int = Field(0, ge=0)
    duration: Seconds | None = Field(None, gt=0.0, description="default: the scenario's")
    overrides: dict[str, Any] = Field(default_factory=dict)
    faults: list[dict[str, Any]] = Field(default_factory=list)
    telemetry: Imperfections = Field(default_factory=Imperfections)

    def load(self) -> tuple[Scenario, list[Fault]]:
        """The scenario (with the episode's duration) and the faults, checked."""
        overrides = dict(self.overrides)
        if self.duration is not None:
            overrides["duration"] = f"{self.duration}s"
        scenario = load_scenario(self.scenario, overrides or None)
        faults = [fault_from(f) for f in self.faults]
        for f in faults:
            f.check(scenario)
        return scenario, faults

    def run(self, worlds: int = 1, text: bool = True, progress: Any = None) -> Telemetry:
        """Simulate the episode to its end with its telemetry on."""
        scenario, faults = self.load()
        engine = Engine(scenario, worlds=worlds, seed=self.seed)
        telemetry = Telemetry(Injector(engine, faults), self.telemetry, text=text)
        for _ in range(engine.ticks):
            telemetry.step()
            if progress is not None:
                progress(1)
        return telemetry


def load_episode(source: str | Path, **changes: Any) -> Episode:
    """An episode from a YAML file, or a bare scenario (template name or scenario file) with no faults; `changes`
    override its fields (seed, duration, faults...). Raises EpisodeError (one line) on bad input."""
    path = Path(str(source))
    label = str(source)
    raw: dict[str, Any]
    if path.suffix in (".yaml", ".yml") and path.is_file():
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise EpisodeError(f"{label}: cannot be read as YAML ({one_line(exc)})") from None
        if not isinstance(raw, dict):
            raise EpisodeError(f"{label}: an episode file is a mapping with `scenario:`; a scenario file has "
                               f"`components:`")
        if "components" in raw:                        # a scenario file, not an episode
            raw = {"scenario": str(path)}
        elif isinstance(raw.get("scenario"), str) and not Path(raw["scenario"]).is_absolute() and \
                (path.parent / raw["scenario"]).is_file():
            raw["scenario"] = str(path.parent / raw["scenario"])
    else:
        raw = {"scenario": label}
    raw.update({k: v for k, v in changes.items() if v is not None})
    try:
        episode = Episode.model_validate(raw)
        episode.load()
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise EpisodeError(f"{label}: {where}: {err['msg']}") from None
    except (FaultError, ValueError) as exc:
        raise EpisodeError(f"{label}: {one_line(exc)}") from None
    return episode
