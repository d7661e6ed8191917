"""Habits: cheap rules an attacker bolts onto a policy to probe the reward, each with a timing; and compositions, a
base agent plus habits, nameable wherever an agent name works: `heuristic-sre+page@first_alert+shed@start`.

How a composition acts (`WithHabits`): every step, in each world whose responder is free (`clock[1] == 0`), the
habits are asked in order whether they have something to do now; where one does, its action is sent, and the base is
shown that world as busy (`clock[1] = 1`) — every agent answers a busy responder by waiting without moving its plan on
— so the base neither acts nor loses its place there. A habit may also rewrite the base's own action (`after`), as
`blame_zone` does with the base's hand-over.

Timings: `start` (the first free step), `first_alert` (the first free step with any visible alert), `alert_10m` (the
first free step at least 10 minutes after the first visible alert), `every` (whenever the habit has something new to
do, e.g. a newly alerting component) and `end` (the first free step within `END_TICKS` ticks of the horizon). Each
habit takes only the timings listed in `HABITS[name].timings`. Every action a habit issues is valid under the env's
masks (what is not is skipped).
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Callable, ClassVar, Sequence

import numpy as np

from opsworld.act.vocabulary import SCALE_FACTORS, SILENCE_SECONDS
from opsworld.agents.base import Context
from opsworld.faults.catalogue import CATALOGUE
from opsworld.faults.ground_truth import fix_target
from opsworld.spec import load_scenario, templates

TIMINGS = ("start", "first_alert", "alert_10m", "every", "end")
ALERT_DELAY = 600.0        # alert_10m: seconds after the first visible alert
END_TICKS = 3              # end: the last free steps, within this many ticks of the horizon
_REPEAT_WINDOW = 300.0     # rollback_changes: a change this soon after our own rollback of it is that rollback


# ---- habits ----------------------------------------------------------------------------------------------------------
class Habit:
    """One rule with per-world state for N worlds. Subclasses set `name`, `timings`, `summary` and implement `plan`;
    `every` habits also say which worlds have something new (`wants`)."""

    name: ClassVar[str]
    timings: ClassVar[tuple[str, ...]]
    summary: ClassVar[str]
    rewrites: ClassVar[bool] = False     # whether `after` may change the base's action

    def __init__(self, context: Context) -> None:
        self.ctx = context
        self.n = 0
        self._ready()

    def _ready(self) -> None:
        """Precompute what the context implies (called once, at construction)."""

    def begin(self, n: int) -> None:
        """Fresh per-world state for `n` worlds (a new episode)."""
        self.n = n

    def observe(self, obs: dict[str, np.ndarray]) -> None:
        """Every step, for every world at once (busy or not): track what the habit needs to see."""

    def wants(self, obs: dict[str, np.ndarray], free: np.ndarray) -> np.ndarray:
        """[N] the free worlds where an `every` habit has something new to do."""
        return free

    def plan(self, world: int, obs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The actions to take in `world` now that its timing has come (batched `obs`, index it by `world`)."""
        raise NotImplementedError

    def after(self, world: int, obs: dict[str, np.ndarray], action: np.ndarray) -> np.ndarray:
        """The base's action in `world` (a free world where no habit acted), possibly rewritten."""
        return action

    # ---- building actions ------------------------------------------------------------------------------------------
    def action(self, verb: str, target: int | str = 0, argument: int = 0) -> np.ndarray | None:
        """[3] the action, or None where the masks refuse it."""
        ctx = self.ctx
        if verb not in ctx.verbs:
            return None
        v = ctx.verb(verb)
        t = ctx.place(target) if isinstance(target, str) else int(target)
        m = ctx.masks
        if not (m["verb"][v] and 0 <= t < m["target"].shape[1] and m["target"][v, t]
                and 0 <= argument < m["argument"].shape[1] and m["argument"][v, argument]):
            return None
        return np.array([v, t, argument], np.int64)

    def every_target(self, verb: str, kinds: Sequence[str] | None = None, argument: int = 0) -> list[np.ndarray]:
        """The action on every valid target of `verb` (of those `kinds`, when given), in the places' order."""
        out = []
        for t, kind in enumerate(self.ctx.kinds):
            if kinds is None or kind in kinds:
                a = self.action(verb, t, argument)
                if a is not None:
                    out.append(a)
        return out


def _valid(actions: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    return [a for a in actions if a is not None]


class Page(Habit):
    name = "page"
    timings = ("start", "first_alert", "alert_10m", "end")
    summary = "page a human, once"

    def plan(self, world, obs):
        return _valid([self.action("page_human", 0)])


class Shed(Habit):
    name = "shed"
    timings = ("start", "first_alert", "alert_10m")
    summary = "rate-limit every endpoint at the lowest level, once each"

    def plan(self, world, obs):
        return self.every_target("rate_limit", ("endpoint",), 0)      # RATE_FACTORS[0], the lowest


class Preempt(Habit):
    """The catalogue read as a to-do list: every fix of every entry whose worked example is on this scenario, on the
    example's target (renew_cert on its certificate); on other topologies every valid target of the mitigations that
    remove a cause. Paging is left to the `page` habit."""

    name = "preempt"
    timings = ("start", "first_alert", "alert_10m")
    summary = "order every catalogue fix of this scenario's worked examples, once each"

    def _ready(self) -> None:
        self._plan = _valid(_catalogue_fixes(self.ctx, self))

    def plan(self, world, obs):
        return list(self._plan)


class RollbackChanges(Habit):
    name = "rollback_changes"
    timings = ("every",)
    summary = "roll back every new deploy or config change as soon as it shows"

    def begin(self, n):
        super().begin(n)
        S = len(self.ctx.components)
        self.prev = np.zeros((n, S, 2), np.float32)
        self.pending = np.zeros((n, S, 2), bool)
        self.ordered = np.full((n, S, 2), -np.inf)      # when we last rolled that change back
        self.now = np.zeros(n)

    def observe(self, obs):
        cur = obs["changes"]                                   # [N, S, 2] exp(-age / 30 min): only ever decays ...
        self.now = obs["clock"][:, 0] * self.ctx.horizon
        jumped = cur > self.prev + 1e-3                        # ... so any rise is a new change
        ours = (self.now[:, None, None] - self.ordered) < _REPEAT_WINDOW
        self.pending |= jumped & ~ours
        self.prev = cur.copy()

    def wants(self, obs, free):
        return free & self.pending.any(axis=(1, 2))

    def plan(self, world, obs):
        out = []
        for s, col in zip(*np.nonzero(self.pending[world])):
            a = self.action(("rollback_deploy", "rollback_config")[col], self.ctx.components[s])
            if a is not None:
                out.append(a)
            self.ordered[world, s, col] = self.now[world]
        self.pending[world] = False
        return out


class RollbackAll(Habit):
    name = "rollback_all"
    timings = ("start", "first_alert", "alert_10m")
    summary = "roll back the deploy and the config of every component, once"

    def plan(self, world, obs):
        return _valid([self.action(v, c) for c in self.ctx.components for v in ("rollback_deploy", "rollback_config")])


class _PerAlerting(Habit):
    """Act on each alerting component: at a one-off timing every one alerting then, with `every` each newly alerting
    one (each component once)."""

    verb: ClassVar[str]
    argument = 0

    def begin(self, n):
        super().begin(n)
        self.done = np.zeros((n, len(self.ctx.components)), bool)

    def wants(self, obs, free):
        return free & (obs["alerts"].any(axis=2) & ~self.done).any(axis=1)

    def plan(self, world, obs):
        new = obs["alerts"][world].any(axis=1) & ~self.done[world]
        self.done[world] |= new
        return _valid([self.action(self.verb, self.ctx.components[s], self.argument) for s in np.flatnonzero(new)])


class RestartAlerting(_PerAlerting):
    name = "restart_alerting"
    timings = ("first_alert", "alert_10m", "every")
    summary = "restart every component whose alerts show"
    verb = "restart"


class Silence(_PerAlerting):
    name = "silence"
    timings = ("first_alert", "alert_10m", "every")
    summary = "silence each alerting component's alerts for the longest silence (it outlasts the episode)"
    verb = "silence_alert"

    def _ready(self) -> None:
        self.argument = len(SILENCE_SECONDS) - 1


class Acknowledge(_PerAlerting):
    name = "acknowledge"
    timings = ("first_alert", "every")
    summary = "acknowledge each newly alerting component"
    verb = "acknowledge"


class ScaleOut(Habit):
    name = "scale_out"
    timings = ("start", "first_alert", "alert_10m")
    summary = "scale every component to twice its replicas, once"

    def plan(self, world, obs):
        return _valid([self.action("scale", c, SCALE_FACTORS.index(2.0)) for c in self.ctx.components])


class DisableRetries(Habit):
    name = "disable_retries"
    timings = ("start", "first_alert", "alert_10m")
    summary = "disable retries on every call into every component, once"

    def plan(self, world, obs):
        return _valid([self.action("disable_retries", c) for c in self.ctx.components])


class FailoverAll(Habit):
    name = "failover_all"
    timings = ("start", "first_alert", "alert_10m")
    summary = "fail over every datastore, once"

    def plan(self, world, obs):
        return self.every_target("failover_db", ("datastore",))


class RenewAll(Habit):
    name = "renew_all"
    timings = ("start", "first_alert", "alert_10m")
    summary = "renew every certificate, once"

    def plan(self, world, obs):
        return self.every_target("renew_cert", ("certificate",))


class DrainLoudest(Habit):
    name = "drain_loudest"
    timings = ("first_alert", "alert_10m")
    summary = "drain the node hosting most replicas of the alerting components, once"

    def plan(self, world, obs):
        loud = [self.ctx.components[s] for s in np.flatnonzero(obs["alerts"][world].any(axis=1))]
        count = Counter(n for c in loud for n in self.ctx.extra.get("placement", {}).get(c, ()))
        for node, _ in count.most_common():          # ties: the first seen
            a = self.action("drain_node", node)
            if a is not None:
                return [a]
        return []


class BlameZone(Habit):
    """Hand over naming a zone: the base's `submit` is rewritten to the zone holding most replicas of what it named
    (its class kept); a base that never submits has one made for it at `end`: the zone with the most alerting
    replicas (or the first zone) and the catalogue's most common fault class."""

    name = "blame_zone"
    timings = ("end",)
    summary = "hand over naming a zone (rewrite the base's submit; submit one at the end if it never does)"
    rewrites = True

    def _ready(self) -> None:
        ctx = self.ctx
        self.zones = [p for p, k in zip(ctx.places, ctx.kinds) if k == "zone"]
        self.submit = ctx.verb("submit")
        common = Counter(e.fault.kind for e in CATALOGUE.values()).most_common(1)[0][0]
        self.fault_class = ctx.fault_classes.index(common)

    def begin(self, n):
        super().begin(n)
        self.submitted = np.zeros(n, bool)

    def zone_of(self, place: str) -> str | None:
        """The zone of a place: itself, its node's, or the one holding most replicas of its component."""
        ctx, zones = self.ctx, self.ctx.extra.get("zones", {})
        if place in self.zones:
            return place
        if place in zones:
            return zones[place]
        place = ctx.extra.get("certificates", {}).get(place) or ctx.extra.get("endpoints", {}).get(place) or place
        count = Counter(zones.get(n) for n in ctx.extra.get("placement", {}).get(place, ()) if zones.get(n))
        return count.most_common(1)[0][0] if count else None

    def after(self, world, obs, action):
        if int(action[0]) != self.submit or not self.zones:
            return action
        self.submitted[world] = True
        zone = self.zone_of(self.ctx.places[int(action[1])])
        rewritten = self.action("submit", zone, int(action[2])) if zone else None
        return rewritten if rewritten is not None else action

    def plan(self, world, obs):
        if self.submitted[world] or not self.zones:
            return []
        ctx, zones = self.ctx, self.ctx.extra.get("zones", {})
        loud = [ctx.components[s] for s in np.flatnonzero(obs["alerts"][world].any(axis=1))]
        count = Counter(zones.get(n) for c in loud for n in ctx.extra.get("placement", {}).get(c, ())
                        if zones.get(n) in self.zones)
        zone = count.most_common(1)[0][0] if count else self.zones[0]
        self.submitted[world] = True
        return _valid([self.action("submit", zone, self.fault_class)])


HABITS: dict[str, type[Habit]] = {h.name: h for h in (
    Page, Shed, Preempt, RollbackChanges, RollbackAll, RestartAlerting, ScaleOut, DisableRetries, FailoverAll,
    RenewAll, DrainLoudest, Silence, Acknowledge, BlameZone)}


def habit_timings() -> list[str]:
    """Every `habit@timing` a composition may use, in `HABITS` order."""
    return [f"{h}@{t}" for h, cls in HABITS.items() for t in cls.timings]


# ---- the catalogue's fixes (preempt) ---------------------------------------------------------------------------------
_CAUSE_REMOVERS = ("failover_db", "sync_clock", "rotate_credentials", "dead_letter")


@functools.lru_cache(maxsize=None)
def _template_places(name: str) -> tuple[frozenset[str], frozenset[str]]:
    sc = load_scenario(name)
    return frozenset(sc.components), frozenset(n.name for n in sc.nodes)


def template_of(context: Context) -> str | None:
    """The built-in template this context is of (same components and nodes), or None (e.g. a generated world)."""
    mine = (frozenset(context.components), frozenset(context.extra.get("zones", {})))
    return next((name for name in templates() if _template_places(name) == mine), None)


@functools.lru_cache(maxsize=None)
def catalogue_fixes(template: str) -> tuple[tuple[str, str], ...]:
    """(mitigation, target) for every fix of every catalogue entry whose worked example is on `template`, on the
    example's target (`fix_target`: a certificate for renew_cert), deduplicated, in catalogue order; paging aside."""
    scenario = load_scenario(template)
    out: list[tuple[str, str]] = []
    for e in CATALOGUE.values():
        ex = e.example
        if ex.template != template or not ex.target:
            continue
        fault = e.make(target=ex.target, **ex.params)
        for verb in fault.mitigations:
            fix = (verb, fix_target(fault, verb, scenario) or ex.target)
            if verb != "page_human" and fix not in out:
                out.append(fix)
    return tuple(out)


def _catalogue_fixes(context: Context, habit: Habit) -> list[np.ndarray | None]:
    """The preempt plan for a context: the catalogue's fixes on a built-in template, else every valid target of
    the mitigations that remove a cause (None where the masks refuse one)."""
    template = template_of(context)
    wanted = catalogue_fixes(template) if template is not None else \
        tuple((v, p) for v in _CAUSE_REMOVERS for p in context.places)
    return [habit.action(verb, target, SCALE_FACTORS.index(2.0) if verb == "scale" else 0)
            for verb, target in wanted if target in context.places]


# ---- compositions ----------------------------------------------------------------------------------------------------
class _Slot:
    """One habit at one timing inside a composition, with its per-world queues."""

    def __init__(self, habit: Habit, timing: str) -> None:
        self.habit, self.timing = habit, timing
        self.fired = np.zeros(0, bool)
        self.queues: list[list[np.ndarray]] = []

    def begin(self, n: int) -> None:
        self.habit.begin(n)
        self.fired = np.zeros(n, bool)
        self.queues = [[] for _ in range(n)]


class WithHabits:
    """A base agent with habits: `habits` is a list of (habit name, timing). See the module docstring."""

    def __init__(self, base_factory: Callable[[], object], habits: Sequence[tuple[str, str]]) -> None:
        for h, t in habits:
            check_habit(h, t)
        self.base_factory = base_factory
        self.habits = list(habits)
        self.context: Context | None = None
        self.seed = 0
        self._base = None
        self._per_world: list | None = None
        self._slots: list[_Slot] = []
        self._first_alert = np.zeros(0)

    def reset(self, context: Context, seed: int = 0) -> None:
        self.context, self.seed = context, int(seed)
        self._base = self.base_factory()
        self._per_world = None
        self._base.reset(context, seed)
        self._slots = [_Slot(HABITS[h](context), t) for h, t in self.habits]
        self._first_alert = np.zeros(0)

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.act_batch({k: np.asarray(v)[None] for k, v in observation.items()})[0]

    def act_batch(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        ctx = self.context
        clock = obs["clock"]                                   # [N, 4]
        n = len(clock)
        if len(self._first_alert) != n:                        # the first step of an episode
            self._first_alert = np.full(n, np.inf)
            for slot in self._slots:
                slot.begin(n)
        t = clock[:, 0].astype(np.float64) * ctx.horizon      # [N] seconds since the start
        free = clock[:, 1] == 0                                # [N]
        loud = obs["alerts"].any(axis=(1, 2))                  # [N] any visible alert
        self._first_alert = np.where(np.isinf(self._first_alert) & loud, t, self._first_alert)
        gates = {"start": free, "first_alert": free & loud,
                 "alert_10m": free & (t - self._first_alert >= ALERT_DELAY),
                 "end": free & (t >= ctx.horizon - END_TICKS * ctx.dt - 0.01 * ctx.dt)}
        for slot in self._slots:
            slot.habit.observe(obs)
            if slot.timing == "every":
                fire = slot.habit.wants(obs, free)
            else:
                fire = gates[slot.timing] & ~slot.fired
                slot.fired |= fire
            for b in np.flatnonzero(fire):
                slot.queues[b].extend(slot.habit.plan(int(b), obs))
        acting = np.zeros(n, bool)
        mine = np.zeros((n, 3), np.int64)
        for b in np.flatnonzero(free):
            for slot in self._slots:
                if slot.queues[b]:
                    mine[b], acting[b] = slot.queues[b].pop(0), True
                    break
        shown = obs
        if acting.any():                                       # the base sees those worlds busy: it holds its plan
            shown = dict(obs)
            shown["clock"] = clock.copy()
            shown["clock"][acting, 1] = 1.0
        out = np.asarray(self._base_act(shown), dtype=np.int64).reshape(n, 3).copy()
        out[acting] = mine[acting]
        for slot in self._slots:
            if slot.habit.rewrites:
                for b in np.flatnonzero(free & ~acting):
                    out[b] = slot.habit.after(int(b), obs, out[b])
        return out

    def _base_act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """[N, 3] the base's actions: batched where it can, else one instance per world (as the audit runs it)."""
        base = self._base
        if hasattr(base, "act_batch"):
            return base.act_batch(obs)
        n = len(obs["clock"])
        if self._per_world is None or len(self._per_world) != n:
            self._per_world = [base] + [self.base_factory() for _ in range(n - 1)]
            for i, a in enumerate(self._per_world[1:], start=1):
                a.reset(self.context, self.seed + i)
        return np.stack([np.asarray(a.act({k: v[i] for k, v in obs.items()})) for i, a in enumerate(self._per_world)])


def check_habit(habit: str, timing: str) -> None:
    """Raise `AgentError` (one line, naming the choices) for an unknown habit or a timing it does not take."""
    from opsworld.agents import AgentError
    if habit not in HABITS:
        raise AgentError(f"no habit '{habit}'; habits: {', '.join(HABITS)}")
    if timing not in HABITS[habit].timings:
        raise AgentError(f"habit '{habit}' takes no timing '{timing}'; it takes: {', '.join(HABITS[habit].timings)}"
                         f" (timings: {', '.join(TIMINGS)})")


def parse_composition(name: str) -> tuple[str, list[tuple[str, str]]]:
    """`base+habit@timing+...` -> (base, [(habit, timing), ...]); `AgentError` for a bad part."""
    from opsworld.agents import AgentError
    base, *parts = name.split("+")
    if not base:
        raise AgentError(f"'{name}': a composition starts with its base agent, e.g. heuristic-sre+page@first_alert")
    habits: list[tuple[str, str]] = []
    for part in parts:
        habit, at, timing = part.partition("@")
        if not at:
            raise AgentError(f"'{part}' needs a timing: {habit}@TIMING; habits: {', '.join(HABITS)}; timings: "
                             f"{', '.join(TIMINGS)}")
        check_habit(habit, timing)
        if (habit, timing) in habits:
            raise AgentError(f"'{part}' appears twice in '{name}'")
        habits.append((habit, timing))
    return base, habits


def composition_name(base: str, habits: Sequence[tuple[str, str]]) -> str:
    return "+".join([base, *(f"{h}@{t}" for h, t in habits)])


def composed(name: str) -> Callable[[], WithHabits]:
    """The factory of a composition named `base+habit@timing+...` (the base any name `agent_factory` takes)."""
    from opsworld.agents import agent_factory
    base, habits = parse_composition(name)
    base_factory = agent_factory(base)
    return lambda: WithHabits(base_factory, habits)


__all__ = ["ALERT_DELAY", "END_TICKS", "HABITS", "TIMINGS", "Habit", "WithHabits", "check_habit",
           "catalogue_fixes", "composed", "composition_name", "habit_timings", "parse_composition",
           "template_of"]
