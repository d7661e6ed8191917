"""The formats Prometheus and Alertmanager speak on the wire: Go's float printing, RFC 3339 times, label fingerprints.

Kept byte-for-byte close to the real servers so that what an agent reads from `/api/v1/alerts` or a notification looks
like what it would read in production (`"value": "1.5e+01"`, `"activeAt": "2026-11-25T08:00:30Z"`, 16-hex-digit
fingerprints).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from decimal import Decimal

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF
_SEP = 0xFF
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what Prometheus shows for "never"


def _digits(value: float) -> tuple[str, int]:
    """The shortest decimal digits that round-trip `value` (abs) and the exponent of the first digit."""
    _, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    text = "".join(map(str, digits)) or "0"
    return text, len(digits) + int(exponent) - 1


def _go_exp(digits: str, exp: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def go_special(value: float) -> str | None:
    """How Go prints NaN and the infinities, or None for a finite value."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def go_float(value: float) -> str:
    """A float64 as Go's `fmt.Sprint` writes it (`%v`): shortest digits, exponent form below 1e-4 or from 1e6.

    This is how `{{ $value }}` renders in an alert template.
    """
    special = go_special(value)
    if special is not None:
        return special
    if value == 0:
        return "0"
    digits, exp = _digits(value)
    sign = "-" if value < 0 else ""
    if exp < -4 or exp >= 6:  # strconv's %g with shortest precision decides at precision 6
        return sign + _go_exp(digits, exp)
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    if exp + 1 >= len(digits):
        return sign + digits + "0" * (exp + 1 - len(digits))
    return f"{sign}{digits[:exp + 1]}.{digits[exp + 1:]}"


def go_exp_float(value: float) -> str:
    """A float64 as `strconv.FormatFloat(v, 'e', -1, 64)`: the `value` field of `/api/v1/alerts`."""
    special = go_special(value)
    if special is not None:
        return special
    if value == 0:
        return "0e+00"
    digits, exp = _digits(value)
    return ("-" if value < 0 else "") + _go_exp(digits, exp)


def rfc3339(at: float | None) -> str:
    """Unix seconds as Go's RFC 3339 with nanoseconds, trailing zeros dropped (`2026-11-25T08:00:30.5Z`)."""
    if at is None or not math.isfinite(at):
        return ZERO_TIME
    whole = math.floor(at)
    nanos = int(round((at - whole) * 1e9))
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    text = datetime.fromtimestamp(whole, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def fingerprint(labels: dict[str, str]) -> str:
    """Prometheus' label-set fingerprint (FNV-1a 64 over sorted name/value pairs), as 16 hex digits.

    Alertmanager identifies an alert by this, so acknowledgements and notifications can refer to it.
    """
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode("utf-8"):
                h = ((h ^ byte) * _FNV_PRIME) & _MASK
            h = ((h ^ _SEP) * _FNV_PRIME) & _MASK
    return f"{h:016x}"


def label_set_string(labels: dict[str, str]) -> str:
    """`{a="1", b="2"}` as Prometheus prints a label set (sorted, Go-quoted values)."""
    return "{" + ", ".join(f"{k}={go_quote(labels[k])}" for k in sorted(labels)) + "}"


def go_quote(text: str) -> str:
    """A string as Go's `%q` writes it, for the common characters."""
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'
