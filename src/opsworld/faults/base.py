"""What every fault is: typed parameters, when it acts, and the engine knobs it moves.

A fault never writes telemetry or truth. It names `Effect`s, knob values at full strength, and the injector moves
the knobs from the world's own values towards them as the fault ramps in, and back when it ends, is repaired, or
its cause is undone (a rolled-back deploy, a restarted process). Symptoms follow from the engine's dynamics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Callable, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from opsworld.spec import Scenario, units

if TYPE_CHECKING:
    from opsworld.engine import Engine

KINDS = ("service", "cache", "datastore", "queue")


def _seconds(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else units.parse_duration(value)


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0.0)]   # `200ms`, `4h` or a number of seconds
Via = Literal["deploy", "config", "none"]


class FaultError(ValueError):
    """A fault that cannot act on this scenario: an unknown target, a component of the wrong kind, a bad parameter."""


@dataclass(frozen=True)
class Effect:
    """One knob a fault moves. `full` is the value at full strength, given the knob's values before the fault
    (an array over the fault's worlds) and the engine; `switch` knobs (booleans, instants) take it as soon as the
    fault acts at all, the others are interpolated by the fault's level. `until` ends the effect that many seconds
    after onset (a trigger that goes away)."""

    knob: str
    target: object
    full: Callable[[np.ndarray, "Engine"], Any] | float | bool
    switch: bool = False
    until: float | None = None
    scale: Callable[["Engine"], np.ndarray] | None = None   # [B] share of the effect now (e.g. of the replicas
    #                                                          still on a bad node)


class Fault(BaseModel):
    """Base class of every fault type. Subclasses set the class facts below and implement `effects`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, validate_default=True)

    kind: ClassVar[str]                       # the fault type's name in the catalogue
    mechanism: ClassVar[str]                  # what it changes in the system, in a sentence
    component_kinds: ClassVar[tuple[str, ...]] = ("service",)   # kinds of component it can target
    fixes: ClassVar[tuple[str, ...]] = ()     # runbook mitigations that neutralise it (besides undoing its change)
    masks: ClassVar[tuple[str, ...]] = ()     # mitigations that only hide it for a while
    restart_clears: ClassVar[bool] = False    # state inside the processes: gone once every replica restarted
    #                                           (unless a deploy or config carries it)
    restart_resets: ClassVar[bool] = False    # grows with process uptime: a restart starts the clock again
    sudden: ClassVar[bool] = False            # with restart_resets: nothing until the ramp is done, then all at once
    default_via: ClassVar[Via] = "none"
    strikes: ClassVar[str] = "component"       # what `target` names: component, node, zone, endpoint, certificate
    made_by: ClassVar[str | None] = None      # a person whose command it is: its knob changes are in the history

    target: str = Field(description="the component (or node, certificate, endpoint, zone) it strikes")
    onset: float | str = Field("10m", description="when it starts: after the episode start (`10m`) or at a "
                                                   "wall-clock time of day (`02:00`)")
    ramp: float = Field(0.0, ge=0.0, description="seconds to reach full strength")
    severity: float = Field(1.0, ge=0.0, le=1.0, description="0..1 scale on the fault's strength")
    duration: float | None = Field(None, gt=0.0, description="seconds it lasts; none: until mitigated")
    via: Via | None = Field(None, description="rolled out as a deploy or config change (undone by rolling back) "
                                              "or `none`")
    logged: bool = Field(True, description="the deploy or config push that carries it is in the change history "
                                           "(false: pushed by hand, past the pipeline)")

    @field_validator("onset", mode="before")
    @classmethod
    def _onset(cls, value: object) -> float | str:
        if isinstance(value, str) and re.fullmatch(r"\s*\d{1,2}:\d{2}\s*", value):
            units.parse_clock(value)
            return value.strip()
        return float(value) if isinstance(value, (int, float)) else units.parse_duration(value)

    @field_validator("ramp", "duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float | None:
        if value is None or isinstance(value, (int, float)):
            return value
        return units.parse_duration(value)

    @model_validator(mode="after")
    def _logged(self) -> "Fault":
        if not self.logged and self.change == "none":
            raise ValueError("logged: only a fault carried by a deploy or config push can be left out of the change "
                             "history; set via: deploy or via: config, or drop logged")
        return self

    # ---- facts the ground truth reads ------------------------------------------------------------------------------
    @property
    def error_kind(self) -> str:
        """What the requests this fault fails print (an `ERROR_KINDS` entry), a fact of the failing code."""
        return "config" if self.change == "config" else "exception"

    @property
    def refusal(self) -> str:
        """How the call attempts this fault refuses fail (a `REFUSALS` entry)."""
        return "refused"

    @property
    def change(self) -> Via:
        """How the fault reaches the system: with a new deploy, a config push, or neither."""
        return self.via or self.default_via

    @property
    def mitigations(self) -> tuple[str, ...]:
        """Mitigations that truly neutralise the fault: undoing its change, then the class's own fixes."""
        undo = {"deploy": ("rollback_deploy",), "config": ("rollback_config",), "none": ()}[self.change]
        own = tuple(f for f in self.fixes if f not in undo)
        return undo + own if (undo + own) else ("page_human",)

    @property
    def beyond_runbook(self) -> bool:
        """Nothing in the runbook fixes it: paging a human is the right act."""
        return self.mitigations == ("page_human",)

    @property
    def change_target(self) -> str:
        """The component whose deploy or config carries the fault."""
        return self.target

    def roots(self, scenario: Scenario) -> list[tuple[str, str]]:
        """Root causes as (kind of place, name): ("component", "cartservice"), ("node", "node-a1")..."""
        return [("component", self.target)]

    def onset_seconds(self, scenario: Scenario) -> float:
        """Seconds after the episode start; a time of day means its next occurrence at or after the start."""
        if isinstance(self.onset, (int, float)):
            return float(self.onset)
        of_day = units.parse_clock(self.onset)
        start = scenario.traffic.start
        return (of_day - start % 86400.0) % 86400.0

    # ---- behaviour -------------------------------------------------------------------------------------------------
    def check(self, scenario: Scenario) -> None:
        """Raise FaultError when the fault cannot act on this scenario."""
        comps = scenario.components
        if self.target not in comps:
            raise FaultError(f"{self.kind}: target '{self.target}' is not a component; known: {', '.join(comps)}")
        kind = comps[self.target].kind
        if kind not in self.component_kinds:
            raise FaultError(f"{self.kind}: '{self.target}' is a {kind}; this fault strikes a "
                             f"{' or '.join(self.component_kinds)}")

    def effects(self, engine: "Engine") -> list[Effect]:
        """The knobs this fault moves and their values at full strength."""
        raise NotImplementedError

    def level(self, t: float, onset: float) -> float:
        """Strength at `t` seconds after the start, 0..1, from onset, ramp and duration (before any mitigation)."""
        return float(self.levels(t, np.array([float(onset)]))[0])

    def levels(self, t: float, onset: np.ndarray) -> np.ndarray:
        """Strength at `t` for many worlds at once, [W] for onsets [W]: 0 before the onset and after the duration,
        growing over the ramp (faults that grow with uptime leave the ramp to the injector)."""
        since = t - onset
        live = since >= 0
        if self.duration is not None:
            live &= since < self.duration
        if self.restart_resets or self.ramp <= 0:
            grown = np.ones_like(since)
        else:
            grown = np.clip(since / self.ramp, 1e-3, 1.0)
        return np.where(live, self.severity * grown, 0.0)

    def describe(self) -> dict:
        """The catalogue's view of this fault: type, what it strikes, its fixes, its parameters and their values."""
        fields = type(self).model_fields
        return {"class": type(self).__name__, "kind": self.kind, "mechanism": self.mechanism,
                "strikes": self.strikes, "component_kinds": list(self.component_kinds), "via": self.change,
                "fixes": list(self.mitigations), "masks": list(self.masks), "beyond_runbook": self.beyond_runbook,
                "parameters": {k: {"value": v, "description": fields[k].description or ""}
                               for k, v in self.model_dump().items()}}


def one_line(exc: Exception) -> str:
    """A pydantic validation error (or any other) as one line: `field: problem; field: problem`."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"]
                         else e["msg"].removeprefix("Value error, ") for e in errors())   # a model's own check
    return str(exc)


def next_version(name: str, salt: int) -> str:
    """A plausible next version name: `v0.10.1` -> `v0.10.2`, `cfg-2026-11-20` -> `cfg-2026-11-20.1`."""
    match = re.fullmatch(r"(.*?)(\d+)", name)
    if match and not re.search(r"\d{4}-\d{2}-\d{2}$", name):
        return f"{match.group(1)}{int(match.group(2)) + 1 + salt}"
    return f"{name}.{1 + salt}"
