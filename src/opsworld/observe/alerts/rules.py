"""Prometheus alerting-rule files: the schema, Prometheus' duration syntax, and loading with one-line errors.

The files are standard Prometheus rule files (`promtool check rules` accepts the built-in ones). Every `expr` is
parsed by the PromQL engine and every label and annotation template compiled when the file loads, so a broken rule
is reported once, as `rules/x.yaml: groups[0].rules[2].expr: parse error at char 5: ...; fix the PromQL expression`,
and never surprises the evaluator mid-episode.
"""

from __future__ import annotations

import difflib
import os
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Mapping

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
                      model_validator)

from opsworld.observe.alerts.templating import TemplateError, Template, compile_template
from opsworld.observe.promql import PromQLError, parse

RULES_PACKAGE = "opsworld.observe.alerts"
RULES_DIR = "rules"

_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
_UNITS = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_DURATION_FIX = "write a duration such as 30s, 5m or 1h30m (units ms s m h d w y, largest first)"


class RuleError(ValueError):
    """A rule file that cannot be loaded: `source: path: problem; fix`, always one line."""

    def __init__(self, source: str, path: str, problem: str, fix: str = "") -> None:
        source, path, problem, fix = (_one_line(part) for part in (source, path, problem, fix))
        self.source, self.path, self.problem, self.fix = source, path, problem, fix
        where = f"{source}: {path}: " if path else f"{source}: "
        super().__init__(where + problem + (f"; {fix}" if fix else ""))


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) if "\n" in str(text) or "\r" in str(text) else str(text)


def parse_duration(value: object) -> float:
    """A Prometheus duration (`30s`, `5m`, `1h30m`, `250ms`, `0`) -> seconds.

    As in Prometheus the units go from largest to smallest and each appears once; a bare number other than 0 is
    refused (Prometheus' YAML does the same), so `for: 5` cannot silently mean 5 seconds or 5 minutes.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; {_DURATION_FIX}")
    if isinstance(value, (int, float)):
        if value == 0:
            return 0.0
        raise ValueError(f"{value!r} has no unit; {_DURATION_FIX}")
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration; {_DURATION_FIX}")
    text = value.strip()
    if text == "0":
        return 0.0
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"{value!r} is not a duration; {_DURATION_FIX}")
    return sum(float(n) * unit for n, unit in zip(match.groups(), _UNITS) if n is not None)


def format_duration(seconds: float) -> str:
    """Seconds as Prometheus writes a duration (`1h30m`, `30s`, `0s`)."""
    ms = int(round(seconds * 1000))
    if ms == 0:
        return "0s"
    out = ""
    for unit, size in (("y", 365 * 86400000), ("w", 7 * 86400000), ("d", 86400000), ("h", 3600000),
                       ("m", 60000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _compile(name: str, text: str) -> Template:
    """A label or annotation template compiled; an error names the key (`@key: ...`, moved into the path)."""
    try:
        return compile_template(text)
    except TemplateError as exc:
        message = str(exc)
        raise ValueError(f"@{name}: {message}" + ("" if "; " in message else "; fix the template")) from None


def _check_label_names(names: Mapping[str, Any], what: str) -> None:
    for name in names:
        if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise ValueError(f"invalid {what} name {name!r}; use letters, digits and '_' "
                             "(not starting with a digit or '__')")


class AlertingRule(BaseModel):
    """One `- alert:` entry of a rule group."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    alert: str = Field(min_length=1)
    expr: str = Field(min_length=1)
    for_: Duration = Field(0.0, alias="for")
    keep_firing_for: Duration | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _not_recording(cls, data: Any) -> Any:
        if isinstance(data, dict) and "record" in data and "alert" not in data:
            raise ValueError("is a recording rule; this evaluator runs alerting rules: write `alert: Name` "
                             "instead of `record:`")
        return data

    @field_validator("alert")
    @classmethod
    def _alert_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", value):
            raise ValueError(f"{value!r} is not a valid alert name; use letters, digits, '_' and ':' "
                             "such as HighErrorRate")
        return value

    @field_validator("expr")
    @classmethod
    def _expr_parses(cls, value: str) -> str:
        try:
            parse(value)
        except PromQLError as exc:
            raise ValueError(f"{_one_line(str(exc))}; fix the PromQL expression") from None
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        _check_label_names(value, "label")
        for name, text in value.items():
            template = _compile(name, text)
            if "value" in template.uses:
                # an alert is identified by its labels; a label that follows the value would make a new alert
                # at every evaluation
                raise ValueError(f"@{name}: labels cannot use $value (the alert's identity would change with "
                                 "every evaluation); move it to an annotation")
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        _check_label_names(value, "annotation")
        for name, text in value.items():
            _compile(name, text)
        return value

    def label_templates(self) -> dict[str, Template]:
        """The rule's labels compiled (they may read `$labels`)."""
        return {k: compile_template(v) for k, v in self.labels.items()}

    def annotation_templates(self) -> dict[str, Template]:
        """The rule's annotations compiled."""
        return {k: compile_template(v) for k, v in self.annotations.items()}


class RuleGroup(BaseModel):
    """A named group of rules evaluated together every `interval`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    interval: Duration = 30.0
    rules: list[AlertingRule] = Field(default_factory=list)

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("interval must be above 0; write e.g. 30s or 1m")
        return value


class RuleFile(BaseModel):
    """A whole rule file: `groups:` of alerting rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: list[RuleGroup]
    _source: str = PrivateAttr(default="<rules>")

    @model_validator(mode="after")
    def _unique_groups(self) -> "RuleFile":
        seen: set[str] = set()
        for group in self.groups:
            if group.name in seen:
                raise ValueError(f"group name {group.name!r} is repeated in the same file; give each group its "
                                 "own name")
            seen.add(group.name)
        return self

    @property
    def source(self) -> str:
        """Where the rules came from (a file path, `rules/<template>.yaml` or `<rules>`)."""
        return self._source

    def with_source(self, source: str) -> "RuleFile":
        """This rule file labelled with where it came from (shown as `file` in `/api/v1/rules`)."""
        copy = self.model_copy()
        copy._source = source
        return copy

    @property
    def alert_names(self) -> list[str]:
        """Every rule's alert name, in file order."""
        return [rule.alert for group in self.groups for rule in group.rules]


# ---- loading ------------------------------------------------------------------------------------------------------
def templates() -> list[str]:
    """Templates with a built-in rule set."""
    folder = resources.files(RULES_PACKAGE) / RULES_DIR
    return sorted(p.name[:-len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def rules_path(template: str) -> Path:
    """The built-in rule file of a template."""
    return Path(str(resources.files(RULES_PACKAGE) / RULES_DIR / f"{template}.yaml"))


def rules_for(template: str) -> RuleFile:
    """The built-in alerting rules of a scenario template (e.g. `online-shop`)."""
    known = templates()
    if template not in known:
        close = difflib.get_close_matches(template, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise RuleError(f"rules/{template}.yaml", "", "no built-in rule set for this template",
                        f"{hint}use one of: {', '.join(known)}")
    return _load_text(rules_path(template).read_text(encoding="utf-8"), f"rules/{template}.yaml")


def load_rules(source: str | Path | Mapping[str, Any]) -> RuleFile:
    """A rule file from a path, YAML text or an already-read mapping; raises RuleError (one line) when bad."""
    if isinstance(source, Mapping):
        return _validate(dict(source), "<rules>")
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and _is_file(source)):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleError(str(source), "", f"cannot be read ({exc.__class__.__name__})",
                            "give a readable UTF-8 YAML file") from None
        return _load_text(text, str(source))
    if isinstance(source, str) and ("\n" in source or ":" in source):
        return _load_text(source, "<rules>")
    raise RuleError(str(source), "", "no such file", "give the path of a rule file, YAML text or a mapping")


def _is_file(text: str) -> bool:
    try:
        return os.path.isfile(text)
    except (OSError, ValueError):
        return False


def _load_text(text: str, label: str) -> RuleFile:
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise RuleError(label, where, f"not valid YAML ({exc.problem or exc.context or 'syntax error'})",
                        "fix the syntax there") from None
    except yaml.YAMLError as exc:
        raise RuleError(label, "", f"not valid YAML ({exc.__class__.__name__})", "fix the syntax") from None
    if not isinstance(raw, dict):
        raise RuleError(label, "", "is not a mapping", "start the file with `groups:`")
    return _validate(raw, label)


def _validate(raw: dict[str, Any], label: str) -> RuleFile:
    try:
        return RuleFile.model_validate(raw).with_source(label)
    except ValidationError as exc:
        raise _explain(label, exc) from None


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith("function-"):  # pydantic names a validator wrapper; the user never wrote it
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _explain(label: str, exc: ValidationError) -> RuleError:
    errors = exc.errors(include_url=False)
    # a misspelt field shows up twice, as unknown and as missing: the unknown one names the fix
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc, kind, msg, got = tuple(err["loc"]), err["type"], str(err["msg"]), err.get("input")
    path = _path(loc)
    if kind == "value_error":
        text = msg.removeprefix("Value error, ")
        if text.startswith("@"):   # a problem in one key of a mapping (a label or an annotation)
            key, _, text = text[1:].partition(": ")
            path = f"{path}.{key}"
        problem, sep, fix = text.rpartition("; ")
        return RuleError(label, path, problem if sep else text, fix if sep else "see the Prometheus rule docs")
    if kind == "missing":
        name = loc[-1]
        example = {"alert": "alert: HighErrorRate", "expr": "expr: <PromQL>", "name": "name: my-group",
                   "groups": "groups: [...]", "rules": "rules: [...]"}.get(str(name), f"{name}: ...")
        return RuleError(label, path, "required field is missing", f"add `{example}`")
    if kind == "extra_forbidden":
        owner = {"groups": RuleGroup, "rules": AlertingRule}.get(next(
            (p for p in reversed(loc[:-1]) if isinstance(p, str)), ""), RuleFile)
        known = sorted(f.alias or n for n, f in owner.model_fields.items())
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return RuleError(label, path, f"unknown field {loc[-1]!r}", f"{hint}use one of: {', '.join(known)}")
    if kind in ("string_type", "string_too_short"):
        return RuleError(label, path, f"expected non-empty text, got {got!r}"[:120],
                         "write a string here (quote it if unsure)")
    if kind in ("list_type",):
        return RuleError(label, path, f"expected a list, got {type(got).__name__}", "write one `- item` per entry")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return RuleError(label, path, f"expected a mapping, got {type(got).__name__}",
                         "write `key: value` lines indented under it")
    return RuleError(label, path, f"{msg} (got {got!r})"[:200], "see the Prometheus rule docs")
