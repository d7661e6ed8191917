"""Loading scenarios: a template name, a YAML file or a dict becomes a checked `Scenario`, or one `ScenarioError`.

Every mistake is reported as one line naming the file, the field path and the fix, e.g.
`shop.yaml: components.cart.dependencies[0].timeout: '2' has no unit; write a duration such as 2s`.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from opsworld.spec import schema
from opsworld.spec.schema import Cache, Datastore, Queue, Scenario
from opsworld.spec.units import show

TEMPLATE_DIR = "templates"
_KINDS = {"service": schema.Service, "cache": Cache, "datastore": Datastore, "queue": Queue}
_README = "see the scenario reference in README.md"


class ScenarioError(ValueError):
    """A scenario that cannot be loaded: `source: path: problem; fix`."""

    def __init__(self, source: str, path: str, problem: str, fix: str = "") -> None:
        source, path, problem, fix = (_one_line("" if part is None else str(part)) for part in (source, path, problem, fix))
        self.source, self.path, self.problem, self.fix = source, path, problem, fix
        where = f"{source}: {path}: " if path else f"{source}: "
        super().__init__(where + problem + (f"; {fix}" if fix else ""))


def _one_line(text: str) -> str:
    """`text` with any line break written as an escape, so that a message is always one line."""
    return "".join(ch.encode("unicode_escape").decode("ascii") if ch.splitlines() != [ch] else ch for ch in text)


def templates() -> list[str]:
    """Names of the built-in scenario templates."""
    folder = resources.files("opsworld.spec") / TEMPLATE_DIR
    try:
        return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))
    except OSError:
        return []


def template_path(name: str) -> Path:
    """The file of a built-in template."""
    return Path(str(resources.files("opsworld.spec") / TEMPLATE_DIR / f"{name}.yaml"))


def load_scenario(source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Load a template name, a YAML path or a mapping; `overrides` are deep-merged over it before checking."""
    label, raw = _read(source)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ScenarioError(label, "", f"overrides must be a mapping of fields, not {show(overrides)}",
                            "pass a dict such as {'traffic': {'base_rate': '50/s'}}")
    if overrides:
        try:
            raw = _merge(raw, overrides)
        except RecursionError:
            raise ScenarioError(label, "", "overrides are nested too deeply", "flatten them") from None
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise _explain(label, raw, exc) from None
    except RecursionError:
        raise ScenarioError(label, "", "is nested too deeply", "flatten the nested lists and mappings") from None
    check_references(scenario, label)
    return scenario


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that `14:00` stays the text it looks like.

    YAML 1.1 reads unquoted `14:00` as the base-60 integer 840, which would turn a clock time such as
    `diurnal.peak: 14:00` into nonsense. Integers too long for Python are refused with the line they are on.
    """


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    if ":" in node.value:
        return loader.construct_scalar(node)
    try:
        return yaml.SafeLoader.construct_yaml_int(loader, node)
    except ValueError:
        raise yaml.constructor.ConstructorError(None, None, "number too long to read", node.start_mark) from None


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    if ":" in node.value:
        return loader.construct_scalar(node)
    return yaml.SafeLoader.construct_yaml_float(loader, node)


_YamlLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_YamlLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long for the file system, or one with a NUL in it
        return False


def _read(source: str | Path | Mapping[str, Any]) -> tuple[str, Any]:
    if isinstance(source, Mapping):
        try:
            return "<scenario>", copy.deepcopy(dict(source))
        except RecursionError:
            raise ScenarioError("<scenario>", "", "is nested too deeply", "flatten the nested lists and mappings") from None
    if not isinstance(source, (str, os.PathLike)):
        raise ScenarioError("<scenario>", "", f"{show(source)} is not a scenario",
                            "give a template name, the path of a YAML file or a dict of fields")
    path = Path(source)
    if not _exists(path) and str(source) in templates():
        path = template_path(str(source))
    elif not _exists(path):
        known = ", ".join(templates())
        fix = f"give the path of a YAML file or one of: {known}" if known else "give the path of a YAML file"
        raise ScenarioError(str(source), "", "no such file or template", fix)
    label = path.name if path.parent == template_path("x").parent else str(source)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ScenarioError(label, line, f"not valid YAML ({problem})", "fix the syntax there") from None
    except yaml.YAMLError as exc:
        # e.g. a reader error: a control character in the text; its own message spans lines
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        where = f"character {exc.position}" if isinstance(getattr(exc, "position", None), int) else ""
        raise ScenarioError(label, where, f"not valid YAML ({reason})", "remove or quote that character") from None
    except RecursionError:
        raise ScenarioError(label, "", "is nested too deeply to read", "flatten the nested lists and mappings") from None
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


def _user_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """`loc` as the user wrote it: without the union member pydantic tried for a component, nor `[key]`."""
    out = []
    for i, part in enumerate(loc):
        if i == 2 and loc[0] == "components" and part in _KINDS:
            continue  # pydantic names the kind it tried; the user wrote only the component name
        if part == "[key]":
            continue  # the error is in the key itself, which the path already ends with
        out.append(part)
    return tuple(out)


def _key(part: Any) -> str:
    text = str(part)
    # a key with a dot would read as two levels: such keys are shown in brackets, `['api.v1']`
    if isinstance(part, str) and re.fullmatch(r"[\w\-/ ]{1,80}", part) and part == part.strip():
        return text
    if isinstance(part, (int, float)) and not isinstance(part, bool):
        return show(part)
    return f"[{show(part)}]"


def _path(loc: tuple[Any, ...], raw: Any = None) -> str:
    """The dotted field path of `loc`, e.g. `components.web.dependencies[0].timeout`.

    An int is a list index where the data at that point is a list, and a mapping key otherwise.
    """
    out = ""
    node = raw
    for part in _user_loc(loc):
        if isinstance(part, int) and not isinstance(part, bool) and (raw is None or isinstance(node, list)):
            out += f"[{part}]"
        else:
            text = _key(part)
            out += text if not out or text.startswith("[") else f".{text}"
        node = _child(node, part)
    return out


def _child(node: Any, part: Any) -> Any:
    try:
        if isinstance(node, dict):
            return node.get(part)
        if isinstance(node, list) and isinstance(part, int):
            return node[part]
    except (IndexError, TypeError):
        pass
    return None


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the field at `loc` (a pydantic error location, union member included)."""
    parts = loc[:-1]
    model: Any = Scenario
    i = 0
    while i < len(parts):
        part = parts[i]
        if model is Scenario and i == 0 and part == "components":
            if len(parts) < 3:
                return None
            model = _KINDS.get(parts[2])  # parts[1] is the component's name, parts[2] the kind pydantic tried
            i += 3
            continue
        if not isinstance(part, str):
            i += 1  # a list index
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return None
        model = _inner_model(field.annotation)
        i += 1
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
    loc, kind, msg = tuple(err["loc"]), err["type"], _one_line(str(err["msg"]))
    path = _path(loc, raw)
    got = err.get("input")
    if kind == "extra_forbidden":
        model = _model_at(loc)
        known = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1) if isinstance(loc[-1], str) else []
        hint = f"did you mean '{close[0]}'? " if close else ""
        owner = [k for k, m in _KINDS.items() if model in _KINDS.values() and loc[-1] in m.model_fields]
        if owner:  # a field of another kind of component, e.g. `consumer` on a service
            hint = f"'{loc[-1]}' is for kind {owner[0]}: add `kind: {owner[0]}` or "
        fix = f"{hint}remove it or use one of: {', '.join(known)}" if known else "remove it"
        name = loc[-1] if isinstance(loc[-1], str) and _key(loc[-1]) == loc[-1] else show(loc[-1])
        return ScenarioError(label, path, f"unknown field '{name}'" if name == loc[-1] else f"unknown field {name}", fix)
    if kind == "missing":
        return ScenarioError(label, path, "required field is missing", f"add `{_user_loc(loc)[-1]}:` here")
    if kind == "union_tag_invalid":
        written = got.get("kind") if isinstance(got, dict) else got
        return ScenarioError(label, f"{path}.kind", f"unknown kind {show(written)}",
                             "kind must be one of: service, cache, datastore, queue")
    if kind == "value_error":
        text = msg.removeprefix("Value error, ")
        problem, sep, fix = text.rpartition("; ")
        if not sep:
            problem, fix = text, _README
        return ScenarioError(label, path, problem, fix)
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(err.get("ctx", {}).values()), "")
        word = {"greater_than": "above", "greater_than_equal": "at least", "less_than": "below",
                "less_than_equal": "at most"}[kind]
        return ScenarioError(label, path, f"{show(got)} is out of range", f"use a value {word} {bound}")
    if kind in ("too_short", "too_long"):
        return ScenarioError(label, path, msg.lower(), "add entries here" if kind == "too_short" else "remove entries")
    if kind in ("string_too_short", "string_too_long"):
        bound = next(iter(err.get("ctx", {}).values()), "")
        if kind == "string_too_short":
            return ScenarioError(label, path, f"{show(got)} is too short", f"use at least {bound} character(s)")
        return ScenarioError(label, path, f"{show(got)} is too long", f"use at most {bound} characters")
    if kind == "string_pattern_mismatch":
        return ScenarioError(label, path, f"{show(got)} is not a valid name",
                             "use lower-case letters, digits, '-', '.' or '_' (at most 63 characters)")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return ScenarioError(label, path, f"expected a mapping of fields, got {show(got)}",
                             "write `field: value` lines indented under it")
    if kind == "list_type":
        return ScenarioError(label, path, f"expected a list, got {show(got)}", "write one `- item` line per entry")
    if kind == "string_type" and loc[-1] == "[key]":
        return ScenarioError(label, path, f"name {show(got)} is not text", "use a name such as web or db")
    if kind == "string_type":
        return ScenarioError(label, path, f"expected text, got {show(got)}", "write a string here (quote it if unsure)")
    if kind in ("int_type", "int_parsing", "int_from_float", "int_parsing_size"):
        return ScenarioError(label, path, f"expected a whole number, got {show(got)}", "write a whole number such as 3")
    if kind in ("float_type", "float_parsing", "finite_number"):
        return ScenarioError(label, path, f"expected a number, got {show(got)}", "write a number such as 0.5 or 2")
    if kind in ("bool_type", "bool_parsing"):
        return ScenarioError(label, path, f"expected true or false, got {show(got)}", "write true or false")
    if kind == "literal_error":
        allowed = msg.removeprefix("Input should be ")
        return ScenarioError(label, path, f"{show(got)} is not allowed here", f"use {allowed}")
    if kind == "invalid_key":
        where = _path(loc[:-1], raw)
        key = _key(got)
        where = key if not where else where + (key if key.startswith("[") else f".{key}")
        return ScenarioError(label, where, f"field name {show(got)} is not text",
                             "write field names as text such as `replicas:`, or remove it")
    return ScenarioError(label, path, f"{msg[:1].lower()}{msg[1:]} (got {show(got)})", _README)


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
            for i, store in enumerate(comp.feeds or []):
                need(store, f"{base}.feeds[{i}]", "store", ("datastore", "cache"))
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
        for j, dep in enumerate(ep.calls or []):
            need(dep.target, f"traffic.endpoints[{i}].calls[{j}].target", "dependency")
            if dep.target == ep.service:
                raise ScenarioError(label, f"traffic.endpoints[{i}].calls[{j}].target",
                                    f"'{ep.service}' calls itself", "remove the self-call")
    for i, cert in enumerate(scenario.certificates):
        need(cert.component, f"certificates[{i}].component", "component")
    cycle = find_call_cycle(scenario)
    if cycle:
        first, second = cycle[0], cycle[1]
        comp = comps[first]
        idx = next((i for i, d in enumerate(comp.dependencies) if d.target == second), None)
        by_endpoint = [(i, j) for i, ep in enumerate(scenario.traffic.endpoints) if ep.service == first
                       for j, d in enumerate(ep.calls or []) if d.target == second]
        if idx is not None:
            where = f"components.{first}.dependencies[{idx}].target"
        elif by_endpoint:
            where = f"traffic.endpoints[{by_endpoint[0][0]}].calls[{by_endpoint[0][1]}].target"
        elif isinstance(comp, Cache) and comp.fronts == second:
            where = f"components.{first}.fronts"
        else:  # a queue and its consumer
            where = f"components.{first}.consumer"
        shown = cycle if len(cycle) <= 10 else [*cycle[:5], "...", *cycle[-3:]]
        length = f" ({len(cycle) - 1} calls)" if len(cycle) > 10 else ""
        raise ScenarioError(label, where, f"call cycle {' -> '.join(shown)}{length}",
                            "remove one of these calls (requests would loop forever)")


def call_edges(scenario: Scenario) -> list[tuple[str, str]]:
    """Every (caller, callee) edge the engine follows: endpoint calls, dependencies, cache misses, queue consumers."""
    edges = []
    for ep in scenario.traffic.endpoints:
        edges += [(ep.service, d.target) for d in ep.calls or []]
    for name, comp in scenario.components.items():
        edges += [(name, d.target) for d in comp.dependencies]
        if isinstance(comp, Cache):
            edges.append((name, comp.fronts))
        if isinstance(comp, Queue):
            edges.append((name, comp.consumer))
    return edges


def service_map(scenario: Scenario) -> list[tuple[str, str]]:
    """The documented (caller, callee) edges: the service map agents are shown. Dependencies marked
    `documented: false` are real (the engine and the ground truth follow them) but missing here."""
    hidden = {(name, d.target) for name, comp in scenario.components.items() for d in comp.dependencies
              if not d.documented}
    hidden |= {(ep.service, d.target) for ep in scenario.traffic.endpoints for d in ep.calls or []
               if not d.documented}
    return sorted({edge for edge in call_edges(scenario) if edge not in hidden})


def find_call_cycle(scenario: Scenario) -> list[str]:
    """A cycle in the call graph as [a, b, ..., a], or [] when there is none."""
    graph: dict[str, list[str]] = {name: [] for name in scenario.components}
    for src, dst in call_edges(scenario):
        graph[src].append(dst)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph:
        if root in state:
            continue
        # depth-first search with an explicit stack, so that a long chain of calls cannot overflow Python's stack
        path: list[str] = [root]
        todo: list[list[str]] = [list(reversed(graph[root]))]
        state[root] = 1
        while path:
            if not todo[-1]:
                state[path.pop()] = 2
                todo.pop()
                continue
            nxt = todo[-1].pop()
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(list(reversed(graph.get(nxt, []))))
    return []
