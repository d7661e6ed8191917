"""LogQL, the subset a log search takes: stream matchers and line filters."""

from __future__ import annotations

import re
from dataclasses import dataclass



class LogQueryError(ValueError):
    """A LogQL query that cannot be parsed; the message names the bad part."""



@dataclass(frozen=True)
class Matcher:
    label: str
    op: str              # = != =~ !~
    value: str
    regex: re.Pattern | None = None

    def matches(self, value: str) -> bool:
        if self.op in ("=", "!="):
            hit = value.upper() == self.value.upper() if self.label == "level" else value == self.value
            return hit if self.op == "=" else not hit
        hit = self.regex.fullmatch(value) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class LineFilter:
    op: str              # |= != |~ !~
    value: str
    regex: re.Pattern | None = None

    def matches(self, text: str) -> bool:
        if self.op == "|=":
            return self.value in text
        if self.op == "!=":
            return self.value not in text
        hit = self.regex.search(text) is not None
        return hit if self.op == "|~" else not hit


@dataclass(frozen=True)
class LogQuery:
    matchers: tuple[Matcher, ...]
    filters: tuple[LineFilter, ...]


_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_logql(text: str) -> LogQuery:
    """Parse `{label op "value", ...} |= "text" != "text" |~ "re" !~ "re"`; raise LogQueryError naming the bad part."""
    pos = 0

    def fail(what: str) -> LogQueryError:
        found = text[pos:pos + 12]
        return LogQueryError(f"parse error at position {pos + 1}: {what}, found "
                             f"{repr(found) if found else 'end of query'}")

    def skip() -> None:
        nonlocal pos
        while pos < len(text) and text[pos].isspace():
            pos += 1

    def string() -> str:
        nonlocal pos
        skip()
        if pos >= len(text) or text[pos] not in "\"`":
            raise fail("expected a quoted string")
        quote, start = text[pos], pos
        pos += 1
        out = []
        while pos < len(text) and text[pos] != quote:
            if quote == '"' and text[pos] == "\\" and pos + 1 < len(text):
                nxt = text[pos + 1]
                out.append({"n": "\n", "t": "\t", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
                pos += 2
                continue
            out.append(text[pos])
            pos += 1
        if pos >= len(text):
            pos = start
            raise fail("unterminated string")
        pos += 1
        return "".join(out)

    def compile_re(pattern: str, flags: int = 0) -> re.Pattern:
        try:
            return re.compile(pattern, flags)
        except re.error as exc:
            raise LogQueryError(f"invalid regular expression {pattern!r}: {exc}") from None

    skip()
    matchers: list[Matcher] = []
    # Loki wants a selector; line filters alone (selecting every stream) are accepted as a convenience
    if not text.startswith(("|=", "!=", "|~", "!~"), pos):
        if pos >= len(text) or text[pos] != "{":
            raise fail("expected a stream selector starting with '{' (or a line filter)")
        pos += 1
        skip()
        closed = pos < len(text) and text[pos] == "}"
        pos += closed
        while not closed:
            skip()
            m = _LABEL.match(text, pos)
            if not m:
                raise fail("expected a label name")
            label = m.group(0)
            pos = m.end()
            skip()
            op = next((o for o in ("=~", "!~", "!=", "=") if text.startswith(o, pos)), None)
            if op is None:
                raise fail(f"expected '=', '!=', '=~' or '!~' after label '{label}'")
            pos += len(op)
            value = string()
            regex = compile_re(value, re.IGNORECASE if label == "level" else 0) if op in ("=~", "!~") else None
            matchers.append(Matcher(label, op, value, regex))
            skip()
            if pos < len(text) and text[pos] in ",}":
                closed = text[pos] == "}"
                pos += 1
                continue
            raise fail("expected ',' or '}' in the stream selector")
    filters = []
    while True:
        skip()
        if pos >= len(text):
            break
        op = next((o for o in ("|=", "!=", "|~", "!~") if text.startswith(o, pos)), None)
        if op is None:
            raise fail("expected a line filter ('|=', '!=', '|~' or '!~'); other pipeline stages are not supported")
        pos += len(op)
        value = string()
        filters.append(LineFilter(op, value, compile_re(value) if op in ("|~", "!~") else None))
    return LogQuery(tuple(matchers), tuple(filters))
