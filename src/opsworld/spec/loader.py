"""Loading scenarios: a template name, a YAML file or a dict becomes a checked `Scenario`, or one `ScenarioError`.

Every mistake is reported as one line naming the file, the field path and the fix, e.g.
`shop.yaml: components.cart.dependencies[0].timeout: '2' has no unit; write a duration such as 2s`.
"""

from __future__ import annotations

import copy
import difflib
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from opsworld.spec.schema import Cache, Datastore, Queue, Scenario

TEMPLATE_DIR = "templates"


class ScenarioError(ValueError):
    """A scenario that cannot be loaded: `source: path: problem; fix`."""

    def __init__(self, source: str, path: str, problem: str, fix: str = "") -> None:
        self.source, self.path, self.problem, self.fix = source, path, problem, fix
        where = f"{source}: {path}: " if path else f"{source}: "
        super().__init__(where + problem + (f"; {fix}" if fix else ""))


def templates() -> list[str]:
    """Names of the built-in scenario templates."""
    folder = resources.files("opsworld.spec") / TEMPLATE_DIR
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def template_path(name: str) -> Path:
    """The file of a built-in template."""
    return Path(str(resources.files("opsworld.spec") / TEMPLATE_DIR / f"{name}.yaml"))


def load_scenario(source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Load a template name, a YAML path or a mapping; `overrides` are deep-merged over it before checking."""
    label, raw = _read(source)
    if overrides:
        raw = _merge(raw, overrides)
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise _explain(label, raw, exc) from None
    check_references(scenario, label)
    return scenario


def _read(source: str | Path | Mapping[str, Any]) -> tuple[str, Any]:
    if isinstance(source, Mapping):
        return "<scenario>", copy.deepcopy(dict(source))
    path = Path(source)
    if not path.exists() and str(source) in templates():
        path = template_path(str(source))
    elif not path.exists():
        known = ", ".join(templates())
        raise ScenarioError(str(source), "", "no such file or template", f"give a YAML file or one of: {known}")
    label = path.name if path.parent == template_path("x").parent else str(source)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(label, line, f"not valid YAML ({getattr(exc, 'problem', exc)})", "fix the syntax there") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(label, "", f"cannot be read ({exc.__class__.__name__})", "give a readable UTF-8 YAML file") from None
    if not isinstance(raw, dict):
        raise ScenarioError(label, "", "is not a mapping of fields", "start the file with `name: my-system`")
    return label, raw


def _merge(base: Any, over: Mapping[str, Any]) -> Any:
    if not isinstance(base, dict):
        return copy.deepcopy(dict(over))
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out.get(key), value) if isinstance(value, Mapping) else copy.deepcopy(value)
    return out


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("service", "cache", "datastore", "queue") and out.startswith("components."):
            continue  # pydantic names the union member it tried; the user wrote only the component name
        else:
            out += f".{part}" if out else str(part)
    return out


def _model_at(raw: Any, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the field at `loc`, following the raw data through the union on `kind`."""
    from opsworld.spec import schema

    model: Any = Scenario
    node = raw
    for part in loc[:-1]:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
        if isinstance(part, int) or part in ("service", "cache", "datastore", "queue"):
            continue
        if model is Scenario and part == "components":
            model = "component"
            continue
        if model == "component":
            kind = node.get("kind", "service") if isinstance(node, dict) else "service"
            model = {"service": schema.Service, "cache": Cache, "datastore": Datastore, "queue": Queue}.get(kind)
            if model is None:
                return None
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model if isinstance(model, type) else None


def _inner_model(annotation: Any) -> Any:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _explain(label: str, raw: Any, exc: ValidationError) -> ScenarioError:
    err = exc.errors(include_url=False)[0]
    loc, kind, msg = tuple(err["loc"]), err["type"], err["msg"]
    path = _path(loc)
    got = err.get("input")
    if kind == "extra_forbidden":
        model = _model_at(raw, loc)
        known = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return ScenarioError(label, path, f"unknown field '{loc[-1]}'", f"{hint}remove it or use one of: {', '.join(known)}")
    if kind == "missing":
        return ScenarioError(label, path, "required field is missing", f"add `{loc[-1]}:` here")
    if kind == "union_tag_invalid":
        return ScenarioError(label, path + ".kind", f"unknown kind {got.get('kind') if isinstance(got, dict) else got!r}",
                             "kind must be one of: service, cache, datastore, queue")
    if kind == "value_error":
        text = msg.removeprefix("Value error, ")
        problem, _, fix = text.partition("; ")
        return ScenarioError(label, path, problem, fix)
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(err.get("ctx", {}).values()), "")
        word = {"greater_than": "above", "greater_than_equal": "at least", "less_than": "below",
                "less_than_equal": "at most"}[kind]
        return ScenarioError(label, path, f"{got!r} is out of range", f"use a value {word} {bound}")
    if kind in ("too_short", "too_long"):
        return ScenarioError(label, path, msg.lower(), "add entries here" if kind == "too_short" else "remove entries")
    if kind == "string_pattern_mismatch":
        return ScenarioError(label, path, f"{got!r} is not a valid name",
                             "use lower-case letters, digits, '-', '.' or '_' (at most 63 characters)")
    return ScenarioError(label, path, f"{msg.lower()} (got {got!r})", "see the scenario reference in README.md")


def check_references(scenario: Scenario, label: str = "<scenario>") -> None:
    """Check what the schema alone cannot: names that must exist, kinds that must match, no synchronous cycles."""
    comps = scenario.components
    node_names = [n.name for n in scenario.nodes]
    pools = {n.pool for n in scenario.nodes}

    def need(name: str, path: str, what: str, kinds: tuple[str, ...] | None = None) -> None:
        if name not in comps:
            close = difflib.get_close_matches(name, list(comps), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ScenarioError(label, path, f"{what} '{name}' does not exist", f"{hint}define it under components or fix the name")
        if kinds and comps[name].kind not in kinds:
            raise ScenarioError(label, path, f"'{name}' is a {comps[name].kind}", f"point it at a {' or '.join(kinds)}")

    if len(set(node_names)) != len(node_names):
        dup = next(n for n in node_names if node_names.count(n) > 1)
        raise ScenarioError(label, "nodes", f"node '{dup}' is defined twice", "give each node a unique name")
    if scenario.tick <= 0 or scenario.tick > scenario.duration:
        raise ScenarioError(label, "tick", f"tick {scenario.tick:g}s does not fit the duration",
                            "use a tick above 0 and at most the duration, e.g. 10s")
    for name, comp in comps.items():
        base = f"components.{name}"
        for i, dep in enumerate(comp.dependencies):
            need(dep.target, f"{base}.dependencies[{i}].target", "dependency")
            if dep.target == name:
                raise ScenarioError(label, f"{base}.dependencies[{i}].target", f"'{name}' calls itself",
                                    "remove the self-call")
        if isinstance(comp, Cache):
            need(comp.fronts, f"{base}.fronts", "datastore", ("datastore", "service"))
        if isinstance(comp, Queue):
            need(comp.consumer, f"{base}.consumer", "consumer", ("service",))
        for i, node in enumerate(comp.nodes or []):
            if node not in node_names:
                raise ScenarioError(label, f"{base}.nodes[{i}]", f"node '{node}' does not exist",
                                    f"use one of: {', '.join(node_names)}")
        if comp.nodes is None and comp.node_pool not in pools:
            raise ScenarioError(label, f"{base}.node_pool", f"no node is in pool '{comp.node_pool}'",
                                f"use one of: {', '.join(sorted(pools))}, or list nodes")
        if comp.autoscaler and comp.autoscaler.min > comp.autoscaler.max:
            raise ScenarioError(label, f"{base}.autoscaler.min", "min is above max", "make min at most max")
    for i, ep in enumerate(scenario.traffic.endpoints):
        need(ep.service, f"traffic.endpoints[{i}].service", "entry service")
    for i, cert in enumerate(scenario.certificates):
        need(cert.component, f"certificates[{i}].component", "component")
    cycle = find_call_cycle(scenario)
    if cycle:
        first = cycle[0]
        idx = next(i for i, d in enumerate(comps[first].dependencies) if d.target == cycle[1])
        raise ScenarioError(label, f"components.{first}.dependencies[{idx}].target",
                            f"call cycle {' -> '.join(cycle)}", "remove one of these calls (requests would loop forever)")


def call_edges(scenario: Scenario) -> list[tuple[str, str]]:
    """Every (caller, callee) edge the engine follows: dependencies, cache misses and queue consumers."""
    edges = []
    for name, comp in scenario.components.items():
        edges += [(name, d.target) for d in comp.dependencies]
        if isinstance(comp, Cache):
            edges.append((name, comp.fronts))
        if isinstance(comp, Queue):
            edges.append((name, comp.consumer))
    return edges


def find_call_cycle(scenario: Scenario) -> list[str]:
    """A cycle in the call graph as [a, b, ..., a], or [] when there is none."""
    graph: dict[str, list[str]] = {name: [] for name in scenario.components}
    for src, dst in call_edges(scenario):
        graph[src].append(dst)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for name in graph:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return []
