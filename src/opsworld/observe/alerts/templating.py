"""Alert templates: the subset of Go's text/template that Prometheus rule files use in labels and annotations.

Supported inside `{{ }}`: `$labels.name`, `$value`, `$externalLabels.name`, `$externalURL`, `.Labels.name`,
`.Value`, string and number literals, parentheses, pipes `|`, the `{{-`/`-}}` trim markers, `{{/* comments */}}`,
and Prometheus' functions humanize, humanize1024, humanizeDuration, humanizePercentage, humanizeTimestamp, printf,
index, toUpper, toLower, title, reReplaceAll. Control flow (if/range/with/define) and `query` are refused when the
rule file loads, so that rendering never fails later. A missing label renders as "" (Prometheus' missingkey=zero).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from opsworld.observe.alerts.wire import go_float, go_quote, go_special


class TemplateError(ValueError):
    """A template outside the supported subset or with a syntax error."""


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:\\.|[^"\\])*")
  | (?P<raw>`[^`]*`)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<var>\$[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*|\$)
  | (?P<field>(?:\.[A-Za-z_]\w*)+|\.)
  | (?P<ident>[A-Za-z_]\w*)
  | (?P<pipe>\|)
  | (?P<open>\()
  | (?P<close>\))
""", re.VERBOSE)
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
_NO_VALUE = object()


@dataclass
class _Context:
    labels: dict[str, str]
    value: float
    external_labels: dict[str, str]
    external_url: str


# ---- Prometheus' template functions -------------------------------------------------------------------------------
def _to_float(arg: Any) -> float:
    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
        return float(arg)
    if isinstance(arg, str):
        try:
            return float(arg)
        except ValueError:
            raise TemplateError(f"cannot convert {arg!r} to a number") from None
    raise TemplateError(f"cannot convert {arg!r} to a number")


def _g4(value: float) -> str:
    """Go's `%.4g`."""
    special = go_special(value)
    return special if special is not None else f"{value:.4g}"


def _humanize_scaled(value: float, base: float, big: list[str], small: list[str]) -> str:
    if value == 0 or not math.isfinite(value):
        return _g4(value)
    prefix = ""
    if abs(value) >= 1:
        for p in big:
            if abs(value) < base:
                break
            prefix, value = p, value / base
        return f"{_g4(value)}{prefix}"
    for p in small:
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return f"{_g4(value)}{prefix}"


def humanize(arg: Any) -> str:
    """`1234.5` -> `1.234k`, `0.0012` -> `1.2m`: SI prefixes, 4 significant digits."""
    return _humanize_scaled(_to_float(arg), 1000.0, list("kMGTPEZY"), list("munpfazy"))


def humanize1024(arg: Any) -> str:
    """`1048576` -> `1Mi`: binary prefixes."""
    value = _to_float(arg)
    if abs(value) <= 1 or not math.isfinite(value):
        return _g4(value)
    prefix = ""
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"]:
        if abs(value) < 1024:
            break
        prefix, value = p, value / 1024
    return f"{_g4(value)}{prefix}"


def humanize_duration(arg: Any) -> str:
    """Seconds as `1d 2h 3m 4s`, `3m 20s`, `2.5s` or `150ms`."""
    value = _to_float(arg)
    if not math.isfinite(value):
        return _g4(value)
    if value == 0:
        return "0s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        value = abs(value)
        whole = int(value)
        seconds, minutes, hours, days = whole % 60, (whole // 60) % 60, (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(value)}s"
    prefix = ""
    for p in "munpfazy":
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return f"{_g4(value)}{prefix}s"


def humanize_percentage(arg: Any) -> str:
    """`0.1234` -> `12.34%`."""
    return f"{_g4(_to_float(arg) * 100)}%"


def humanize_timestamp(arg: Any) -> str:
    """Unix seconds as Go's `time.Time.String()` in UTC: `2026-11-25 08:00:00 +0000 UTC`."""
    value = _to_float(arg)
    if not math.isfinite(value):
        return _g4(value)
    whole = math.floor(value)
    text = datetime.fromtimestamp(whole, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    nanos = int(round((value - whole) * 1e9))
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + " +0000 UTC"


def _show(arg: Any) -> str:
    """A value as text/template prints it."""
    if arg is _NO_VALUE:
        return ""
    if isinstance(arg, bool):
        return "true" if arg else "false"
    if isinstance(arg, float):
        return go_float(arg)
    if isinstance(arg, dict):
        return "map[" + " ".join(f"{k}:{arg[k]}" for k in sorted(arg)) + "]"
    return str(arg)


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def printf(fmt: Any, *args: Any) -> str:
    """Go's `fmt.Sprintf` for the verbs alert templates use: %v %s %d %f %e %g %x %q %t and %%."""
    if not isinstance(fmt, str):
        raise TemplateError("printf needs a format string first")
    out, queue = [], list(args)

    def one(match: re.Match[str]) -> str:
        flags, width, prec, verb = match.group(1), match.group(2) or "", match.group(3), match.group(4)
        if verb == "%":
            return "%"
        if not queue:
            return f"%!{verb}(MISSING)"
        arg = queue.pop(0)
        spec = f"%{flags}{width}{'.' + prec if prec is not None else ''}"
        if verb in "fFeEgG":
            value = _to_float(arg)
            special = go_special(value)
            return (f"%{flags}{width}s" % special) if special is not None else (spec + verb) % value
        if verb in "dxX":
            value = _to_float(arg)
            if not math.isfinite(value):
                return f"%!{verb}({_show(arg)})"
            return (spec + verb) % int(value)
        if verb == "q":
            return (f"%{flags}{width}s") % go_quote(_show(arg))
        if verb == "t":
            return (f"%{flags}{width}s") % _show(bool(arg))
        return (f"%{flags}{width}{'.' + prec if prec is not None else ''}s") % _show(arg)

    out.append(_VERB.sub(one, fmt))
    if queue:
        out.append("%!(EXTRA " + ", ".join(_show(a) for a in queue) + ")")
    return "".join(out)


def _index(container: Any, *keys: Any) -> Any:
    for key in keys:
        if not isinstance(container, dict):
            raise TemplateError("index needs a map such as $labels")
        container = container.get(key, "")
    return container


def _re_replace_all(pattern: Any, replacement: Any, text: Any) -> str:
    repl = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: f"\\g<{m.group(1) or m.group(2)}>", str(replacement))
    return re.sub(str(pattern), repl, str(text))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "humanize": humanize, "humanize1024": humanize1024, "humanizeDuration": humanize_duration,
    "humanizePercentage": humanize_percentage, "humanizeTimestamp": humanize_timestamp, "printf": printf,
    "index": _index, "toUpper": lambda s: _show(s).upper(), "toLower": lambda s: _show(s).lower(),
    "title": lambda s: _show(s).title(), "reReplaceAll": _re_replace_all,
}
_ARITY = {"humanize": 1, "humanize1024": 1, "humanizeDuration": 1, "humanizePercentage": 1,
          "humanizeTimestamp": 1, "toUpper": 1, "toLower": 1, "title": 1, "reReplaceAll": 3}


# ---- parsing ------------------------------------------------------------------------------------------------------
Node = Callable[[_Context, Any], Any]   # (context, piped value or _NO_VALUE) -> value


def _tokens(body: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(body):
        match = _TOKEN.match(body, pos)
        if match is None:
            raise TemplateError(f"unexpected {body[pos]!r} in {{{{{body}}}}}")
        kind = match.lastgroup or ""
        if kind != "space":
            out.append((kind, match.group()))
        pos = match.end()
    return out


def _lookup(root: Any, path: list[str]) -> Any:
    for name in path:
        if isinstance(root, dict):
            root = root.get(name, "")
        else:
            raise TemplateError(f"can't read field {name!r} of {_show(root)!r}")
    return root


def _variable(text: str, where: str, uses: set[str]) -> Node:
    parts = text.split(".")
    head, path = parts[0], parts[1:]
    if head == "$" and path:                       # `$.Labels.x` reads the data root like `.Labels.x`
        return _field("." + ".".join(path), where, uses)
    names = {"$labels": "labels", "$value": "value", "$externalLabels": "external_labels",
             "$externalURL": "external_url", "$": "root"}
    if head not in names:
        raise TemplateError(f"undefined variable {head} in {where}; use $labels, $value or $externalLabels")
    key = names[head]
    uses.add(key)
    if key == "value" and path:
        raise TemplateError(f"$value has no fields in {where}")

    def read(ctx: _Context, piped: Any) -> Any:
        if key == "root":
            return {"Labels": ctx.labels, "Value": ctx.value, "ExternalLabels": ctx.external_labels,
                    "ExternalURL": ctx.external_url}
        return _lookup(getattr(ctx, key), path)

    return read


def _field(text: str, where: str, uses: set[str]) -> Node:
    parts = [p for p in text.split(".") if p]
    if not parts:
        return _variable("$", where, uses)
    mapping = {"Labels": "$labels", "Value": "$value", "ExternalLabels": "$externalLabels",
               "ExternalURL": "$externalURL"}
    if parts[0] not in mapping:
        raise TemplateError(f"unknown field .{parts[0]} in {where}; use .Labels, .Value or .ExternalLabels")
    return _variable(".".join([mapping[parts[0]], *parts[1:]]), where, uses)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], where: str, uses: set[str]) -> None:
        self.tokens, self.pos, self.where, self.uses = tokens, 0, where, uses

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def pipeline(self) -> Node:
        commands = [self.command(piped=False)]
        while (tok := self.peek()) is not None and tok[0] == "pipe":
            self.pos += 1
            commands.append(self.command(piped=True))

        def run(ctx: _Context, piped: Any) -> Any:
            value = commands[0](ctx, _NO_VALUE)
            for cmd in commands[1:]:
                value = cmd(ctx, value)
            return value

        return run

    def command(self, piped: bool) -> Node:
        tok = self.peek()
        if tok is None or tok[0] in ("pipe", "close"):
            raise TemplateError(f"missing value in {self.where}")
        if tok[0] == "ident":
            name = tok[1]
            if name in _KEYWORDS:
                raise TemplateError(f"'{name}' is not supported in alert templates here ({self.where}); "
                                    "use $labels, $value and functions such as humanize or printf")
            if name in ("true", "false", "nil"):
                self.pos += 1
                const = {"true": True, "false": False, "nil": ""}[name]
                return lambda ctx, piped: const
            if name not in FUNCTIONS:
                raise TemplateError(f"unknown function '{name}' in {self.where}; "
                                    f"use one of: {', '.join(sorted(FUNCTIONS))}")
            self.pos += 1
            args = []
            while (nxt := self.peek()) is not None and nxt[0] not in ("pipe", "close"):
                args.append(self.operand())
            fn = FUNCTIONS[name]

            def call(ctx: _Context, value: Any) -> Any:
                return fn(*[a(ctx, _NO_VALUE) for a in args], *([] if value is _NO_VALUE else [value]))

            # arity is checked when the template loads, the piped value counting as the last argument
            self._check_arity(name, len(args) + piped)
            return call
        if piped:
            raise TemplateError(f"can't pipe into {tok[1]!r}, which is not a function, in {self.where}")
        node = self.operand()
        nxt = self.peek()
        if nxt is not None and nxt[0] not in ("pipe", "close"):
            raise TemplateError(f"unexpected {nxt[1]!r} after a value in {self.where}")
        return node

    def _check_arity(self, name: str, given: int) -> None:
        want = _ARITY.get(name)
        if want is not None and given != want:
            raise TemplateError(f"{name} takes {want} argument(s), got {given} in {self.where}")
        if want is None and given == 0:
            raise TemplateError(f"{name} needs arguments in {self.where}")

    def operand(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise TemplateError(f"missing value in {self.where}")
        kind, text = tok
        self.pos += 1
        if kind == "string":
            const: Any = bytes(text[1:-1], "utf-8").decode("unicode_escape")
            return lambda ctx, piped: const
        if kind == "raw":
            raw = text[1:-1]
            return lambda ctx, piped: raw
        if kind == "number":
            number = float(text) if any(c in text for c in ".eE") else int(text)
            return lambda ctx, piped: number
        if kind == "var":
            return _variable(text, self.where, self.uses)
        if kind == "field":
            return _field(text, self.where, self.uses)
        if kind == "open":
            inner = self.pipeline()
            close = self.peek()
            if close is None or close[0] != "close":
                raise TemplateError(f"unclosed '(' in {self.where}")
            self.pos += 1
            return inner
        if kind == "ident":
            raise TemplateError(f"function '{text}' must come first in a command or in parentheses ({self.where})")
        raise TemplateError(f"unexpected {text!r} in {self.where}")


@dataclass
class Template:
    """A compiled alert template; `uses` names what it reads ("labels", "value", ...)."""

    source: str
    parts: list[str | Node]
    uses: set[str]

    def render(self, labels: dict[str, str], value: float = math.nan,
               external_labels: dict[str, str] | None = None, external_url: str = "") -> str:
        """The text with every action filled in from the sample's labels and value."""
        ctx = _Context(labels, value, external_labels or {}, external_url)
        return "".join(p if isinstance(p, str) else _show(p(ctx, _NO_VALUE)) for p in self.parts)


def compile_template(text: str) -> Template:
    """Parse `text` once; raises TemplateError for syntax outside the supported subset."""
    parts: list[str | Node] = []
    uses: set[str] = set()
    pos = 0
    for match in _ACTION.finditer(text):
        literal = text[pos:match.start()]
        if match.group(1):
            literal = literal.rstrip()
        if parts and isinstance(parts[-1], str) and parts[-1] == "\0trim":
            parts.pop()
            literal = literal.lstrip()
        if literal:
            parts.append(literal)
        body = match.group(2).strip()
        where = "{{" + match.group(2).strip() + "}}"
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise TemplateError(f"unclosed comment in {where}")
        else:
            parser = _Parser(_tokens(body), where, uses)
            if not parser.tokens:
                raise TemplateError(f"empty action {where}")
            node = parser.pipeline()
            if parser.pos != len(parser.tokens):
                raise TemplateError(f"unexpected {parser.tokens[parser.pos][1]!r} in {where}")
            parts.append(node)
        if match.group(3):
            parts.append("\0trim")  # trims the whitespace that starts the next literal
        pos = match.end()
    rest = text[pos:]
    if parts and isinstance(parts[-1], str) and parts[-1] == "\0trim":
        parts.pop()
        rest = rest.lstrip()
    if "{{" in rest:
        raise TemplateError(f"unclosed action in {rest[rest.index('{{'):][:40]!r}")
    if rest:
        parts.append(rest)
    return Template(text, parts, uses)
