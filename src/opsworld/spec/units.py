"""Quantities written out with their units in scenario files: `2s`, `6h`, `512Mi`, `500m`, `200/s`, `99.9%`.

Each parser takes the written value and returns a float in the base unit (seconds, bytes, cores, per second,
fraction). A bare number is refused where a unit is needed, so `timeout: 2` cannot silently mean 2 ms or 2 hours.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|min|s|m|h|d)")
_BYTE_UNITS = {
    "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40,
}
_BYTES = re.compile(r"(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|k|M|G|T)?B?")
_RATE_UNITS = {"s": 1.0, "sec": 1.0, "min": 1 / 60.0, "m": 1 / 60.0, "h": 1 / 3600.0, "d": 1 / 86400.0}
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(s|sec|min|m|h|d)")


class UnitError(ValueError):
    """A quantity that does not parse; the message says what was expected."""


def parse_duration(value: object) -> float:
    """`150ms`, `2s`, `1h30m`, `6h` -> seconds. Bare numbers are refused: the unit must be written."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise UnitError(f"{value!r} has no unit; write a duration such as 2s, 150ms or 6h")
    text = value.strip().replace(" ", "")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise UnitError(f"{value!r} is not a duration; write e.g. 2s, 150ms, 1h30m (units: us ms s m h d)")
    return total


def parse_bytes(value: object) -> float:
    """`512Mi`, `2Gi`, `1G` -> bytes (Kubernetes quantity style)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise UnitError(f"{value!r} has no unit; write a size such as 512Mi or 2Gi")
    match = _BYTES.fullmatch(value.strip())
    if not match:
        raise UnitError(f"{value!r} is not a size; write e.g. 512Mi, 2Gi or 100G")
    return float(match.group(1)) * _BYTE_UNITS[match.group(2) or ""]


def parse_cpu(value: object) -> float:
    """`500m` or `2` -> cores (a bare number means cores, as in Kubernetes)."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a CPU amount; write e.g. 500m or 2")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+m", text):
            return float(text[:-1]) / 1000.0
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
    raise UnitError(f"{value!r} is not a CPU amount; write millicores like 500m or cores like 2")


def parse_rate(value: object) -> float:
    """`200/s`, `3/min`, `2/h` -> events per second."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise UnitError(f"{value!r} has no unit; write a rate such as 200/s or 3/min")
    match = _RATE.fullmatch(value.strip())
    if not match:
        raise UnitError(f"{value!r} is not a rate; write e.g. 200/s, 3/min or 2/h")
    return float(match.group(1)) * _RATE_UNITS[match.group(2)]


def parse_fraction(value: object) -> float:
    """`99.9%` or `0.999` -> 0.999."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a fraction; write e.g. 99.9% or 0.999")
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*%\s*", value):
        result = float(value.strip().rstrip("%")) / 100.0
    else:
        raise UnitError(f"{value!r} is not a fraction; write e.g. 99.9% or 0.999")
    if not 0.0 <= result <= 1.0:
        raise UnitError(f"{value!r} is outside 0..1; write a fraction such as 0.95 or 95%")
    return result


def parse_time(value: object) -> float:
    """An ISO-8601 instant (`2026-11-25T02:00:00Z`) -> Unix seconds; naive times are UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise UnitError(f"{value!r} is not a time; write ISO 8601 such as 2026-11-25T02:00:00Z") from exc
    else:
        raise UnitError(f"{value!r} is not a time; write ISO 8601 such as 2026-11-25T02:00:00Z")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def parse_clock(value: object) -> float:
    """A wall-clock time of day `14:00` -> seconds after midnight."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
        if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
            return int(match.group(1)) * 3600.0 + int(match.group(2)) * 60.0
    raise UnitError(f"{value!r} is not a time of day; write HH:MM such as 14:00")
