"""Quantities written out with their units in scenario files: `2s`, `6h`, `512Mi`, `500m`, `200/s`, `99.9%`.

Each parser takes the written value and returns a float in the base unit (seconds, bytes, cores, per second,
fraction). A bare number is refused where a unit is needed, so `timeout: 2` cannot silently mean 2 ms or 2 hours.
"""

from __future__ import annotations

import math
import re
import reprlib
from datetime import date, datetime, time, timezone

_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|min|s|m|h|d)")
_BYTE_UNITS = {
    "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40,
}
_BYTES = re.compile(r"(\d+(?:\.\d+)?)\s*(?:(Ki|Mi|Gi|Ti|k|M|G|T)B?|B)")
_RATE_UNITS = {"s": 1.0, "sec": 1.0, "min": 1 / 60.0, "m": 1 / 60.0, "h": 1 / 3600.0, "d": 1 / 86400.0}
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(s|sec|min|m|h|d)")


_REPR = reprlib.Repr()  # bounded: a value built from YAML aliases can be huge when written out in full
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset, _REPR.maxdict = 3, 6, 6, 6, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 50, 50, 50


class UnitError(ValueError):
    """A quantity that does not parse; the message says what was expected."""


def show(value: object, limit: int = 60) -> str:
    """`repr(value)` on one line and at most about `limit` characters, for error messages.

    Never raises: an int too long for `repr` (Python refuses to print ints above 4300 digits) is described instead.
    """
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a message must come out whatever the value is
        if isinstance(value, int):
            return f"<a number with about {int(value.bit_length() * 0.30103) + 1} digits>"
        return f"<a {type(value).__name__}>"
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: int | float, what: str, example: str) -> float:
    """A YAML number as a float; refuses ints too large for a float and inf/nan."""
    try:
        result = float(value)
    except OverflowError:
        raise UnitError(f"{show(value)} is too large; write {what} such as {example}") from None
    if not math.isfinite(result):
        raise UnitError(f"{show(value)} is not a finite number; write {what} such as {example}")
    return result


def _finite(result: float, value: object, what: str, example: str) -> float:
    if not math.isfinite(result):
        raise UnitError(f"{show(value)} is too large; write {what} such as {example}")
    return result


def parse_duration(value: object) -> float:
    """`150ms`, `2s`, `1h30m`, `6h` -> seconds. Bare numbers are refused: the unit must be written."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise UnitError(f"{show(value)} has no unit; write a duration such as 2s, 150ms or 6h")
    text = value.strip().replace(" ", "")
    if text.startswith("-"):
        raise UnitError(f"{show(value)} is negative; write a duration of 0 or more such as 2s or 150ms")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise UnitError(f"{show(value)} is not a duration; write e.g. 2s, 150ms, 1h30m (units: us ms s m h d)")
    return _finite(total, value, "a duration", "2s or 6h")


def parse_bytes(value: object) -> float:
    """`512Mi`, `2Gi`, `1G`, `100B` -> bytes (Kubernetes quantity style). A bare `512` is refused: 512 what?"""
    if isinstance(value, bool) or not isinstance(value, str):
        raise UnitError(f"{show(value)} has no unit; write a size such as 512Mi or 2Gi")
    text = value.strip()
    if text.startswith("-"):
        raise UnitError(f"{show(value)} is negative; write a size of 0 or more such as 512Mi or 2Gi")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        raise UnitError(f"{show(value)} has no unit; write a size such as 512Mi, 2Gi or {text}B for bytes")
    match = _BYTES.fullmatch(text)
    if not match:
        raise UnitError(f"{show(value)} is not a size; write e.g. 512Mi, 2Gi or 100G (units: B k M G T Ki Mi Gi Ti)")
    return _finite(float(match.group(1)) * _BYTE_UNITS[match.group(2) or ""], value, "a size", "512Mi or 2Gi")


def parse_cpu(value: object) -> float:
    """`500m` or `2` -> cores (a bare number means cores, as in Kubernetes)."""
    if isinstance(value, bool):
        raise UnitError(f"{show(value)} is not a CPU amount; write e.g. 500m or 2")
    if isinstance(value, (int, float)):
        return _number(value, "a CPU amount", "500m or 2")
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+m", text):
            return _finite(float(text[:-1]) / 1000.0, value, "a CPU amount", "500m or 2")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return _finite(float(text), value, "a CPU amount", "500m or 2")
        if text.startswith("-"):
            raise UnitError(f"{show(value)} is negative; write a CPU amount above 0 such as 500m or 2")
    raise UnitError(f"{show(value)} is not a CPU amount; write millicores like 500m or cores like 2")


def parse_rate(value: object) -> float:
    """`200/s`, `3/min`, `2/h` -> events per second."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise UnitError(f"{show(value)} has no unit; write a rate such as 200/s or 3/min")
    if value.strip().startswith("-"):
        raise UnitError(f"{show(value)} is negative; write a rate of 0 or more such as 200/s or 3/min")
    match = _RATE.fullmatch(value.strip())
    if not match:
        raise UnitError(f"{show(value)} is not a rate; write e.g. 200/s, 3/min or 2/h (per s, min, h or d)")
    return _finite(float(match.group(1)) * _RATE_UNITS[match.group(2)], value, "a rate", "200/s")


def parse_fraction(value: object) -> float:
    """`99.9%` or `0.999` (also written as text) -> 0.999; anything outside 0..1 is refused."""
    if isinstance(value, bool):
        raise UnitError(f"{show(value)} is not a fraction; write e.g. 99.9% or 0.999")
    if isinstance(value, (int, float)):
        result = float(value) if isinstance(value, float) or abs(value) < 2**53 else math.inf
    elif isinstance(value, str) and (match := re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(%?)\s*", value)):
        result = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
    else:
        raise UnitError(f"{show(value)} is not a fraction; write e.g. 99.9% or 0.999")
    if not 0.0 <= result <= 1.0:
        raise UnitError(f"{show(value)} is outside 0..1; write a fraction such as 0.95 or 95%")
    return result


def parse_time(value: object) -> float:
    """An ISO-8601 instant (`2026-11-25T02:00:00Z`) -> Unix seconds; naive times are UTC, a bare date is midnight."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):  # YAML reads an unquoted 2026-11-25 as a date: midnight UTC
        moment = datetime.combine(value, time(0, 0))
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UnitError(f"{show(value)} is not a time; write ISO 8601 such as 2026-11-25T02:00:00Z") from None
    else:
        raise UnitError(f"{show(value)} is not a time; write ISO 8601 such as 2026-11-25T02:00:00Z")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def parse_clock(value: object) -> float:
    """A wall-clock time of day `14:00` -> seconds after midnight."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
        if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
            return int(match.group(1)) * 3600.0 + int(match.group(2)) * 60.0
    raise UnitError(f"{show(value)} is not a time of day; write HH:MM such as 14:00")
