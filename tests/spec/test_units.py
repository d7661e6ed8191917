"""The unit parsers: written quantities become base units; anything else is refused with what to write."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsworld.spec import units
from opsworld.spec.units import (
    UnitError,
    parse_bytes,
    parse_clock,
    parse_cpu,
    parse_duration,
    parse_fraction,
    parse_rate,
    parse_time,
)

PARSERS = [parse_duration, parse_bytes, parse_cpu, parse_rate, parse_fraction, parse_time, parse_clock]


def refused(parser, value) -> str:
    with pytest.raises(UnitError) as info:
        parser(value)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    problem, sep, fix = message.rpartition("; ")
    assert sep and problem and fix, f"message is not 'problem; fix': {message!r}"
    return message


# --- durations -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("150ms", 0.15), ("2s", 2.0), ("6h", 21600.0), ("1h30m", 5400.0), ("90min", 5400.0), ("250us", 250e-6),
        ("1d", 86400.0), ("0s", 0.0), ("1.5s", 1.5), (" 2s ", 2.0), ("1h 30m", 5400.0), ("2m", 120.0),
        ("1d2h3m4s5ms", 86400 + 7200 + 180 + 4 + 0.005),
    ],
)
def test_duration_valid(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [2, 2.5, 0, True, None, [1], {"s": 1}])
def test_duration_bare_number_or_other_type_needs_a_unit(value):
    message = refused(parse_duration, value)
    assert "2s" in message  # says what to write


@pytest.mark.parametrize("text", ["2", "", "  ", "abc", "2 seconds", "2x", "s", "2s3", "1.5.5s", "2MB", "5mins", "1e3s"])
def test_duration_garbage(text):
    message = refused(parse_duration, text)
    assert "write" in message and "2s" in message


@pytest.mark.parametrize("text", ["-2s", "-150ms", " -1h"])
def test_duration_negative(text):
    message = refused(parse_duration, text)
    assert "negative" in message and "2s" in message


def test_duration_too_large_is_refused_not_infinite():
    message = refused(parse_duration, "9" * 400 + "s")
    assert "too large" in message


# --- sizes -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512Mi", 536870912.0), ("2Gi", 2 * 2.0**30), ("1G", 1e9), ("100k", 1e5), ("1Ki", 1024.0), ("1Ti", 2.0**40),
        ("1T", 1e12), ("64M", 64e6), ("512MiB", 536870912.0), ("512 Mi", 536870912.0), ("100B", 100.0),
        ("0.5Gi", 2.0**29), ("0Mi", 0.0),
    ],
)
def test_bytes_valid(text, size):
    assert parse_bytes(text) == pytest.approx(size)


@pytest.mark.parametrize("value", [512, 1.5, True, None, ["1Gi"]])
def test_bytes_bare_number_or_other_type_needs_a_unit(value):
    assert "512Mi" in refused(parse_bytes, value)


def test_bytes_bare_number_text_needs_a_unit():
    message = refused(parse_bytes, "512")
    assert "no unit" in message and "512Mi" in message and "512B" in message


@pytest.mark.parametrize("text", ["", "lots", "512mi", "1.2.3Gi", "1GiGi", "Mi", "5 ms", "2Pi", "1Kib"])
def test_bytes_garbage(text):
    message = refused(parse_bytes, text)
    assert "512Mi" in message


def test_bytes_negative():
    assert "negative" in refused(parse_bytes, "-1Gi")


# --- CPU -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cores"),
    [("500m", 0.5), ("250m", 0.25), ("2", 2.0), ("1.5", 1.5), (2, 2.0), (0.5, 0.5), (" 100m ", 0.1)],
)
def test_cpu_valid(value, cores):
    assert parse_cpu(value) == pytest.approx(cores)


@pytest.mark.parametrize("value", ["lots", "", "500mc", "1.5m", "2 cores", True, None, [1], "m"])
def test_cpu_invalid(value):
    message = refused(parse_cpu, value)
    assert "500m" in message


def test_cpu_negative_text():
    assert "negative" in refused(parse_cpu, "-500m")


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 10**400])
def test_cpu_not_finite(value):
    assert "500m" in refused(parse_cpu, value)


# --- rates -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("200/s", 200.0), ("3/min", 0.05), ("3/m", 0.05), ("2/h", 2 / 3600), ("1/d", 1 / 86400), ("10/sec", 10.0),
        ("0/s", 0.0), ("1.5/s", 1.5), ("100 / s", 100.0),
    ],
)
def test_rate_valid(text, per_second):
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("value", [200, 0.5, True, None, {"per": "s"}])
def test_rate_bare_number_needs_a_unit(value):
    assert "200/s" in refused(parse_rate, value)


@pytest.mark.parametrize("text", ["200", "", "fast", "200/ms", "200/y", "200 per s", "/s", "200s"])
def test_rate_garbage(text):
    assert "200/s" in refused(parse_rate, text)


def test_rate_negative():
    assert "negative" in refused(parse_rate, "-5/s")


# --- fractions -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fraction"),
    [("99.9%", 0.999), ("50%", 0.5), ("0%", 0.0), ("100%", 1.0), (0.999, 0.999), (1, 1.0), (0, 0.0),
     (" 95 % ", 0.95), ("0.25", 0.25)],
)
def test_fraction_valid(value, fraction):
    assert parse_fraction(value) == pytest.approx(fraction)


@pytest.mark.parametrize("value", [1.5, -0.1, "150%", "-5%", 2, float("nan"), float("inf"), 10**400])
def test_fraction_out_of_range(value):
    message = refused(parse_fraction, value)
    assert "0..1" in message and "95%" in message


@pytest.mark.parametrize("value", ["most", "", "%", "99.9 percent", True, None, [0.5]])
def test_fraction_garbage(value):
    assert "99.9%" in refused(parse_fraction, value)


# --- instants and clock times ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unix"),
    [
        ("2026-11-25T02:00:00Z", datetime(2026, 11, 25, 2, tzinfo=timezone.utc).timestamp()),
        ("2026-11-25T02:00:00+00:00", datetime(2026, 11, 25, 2, tzinfo=timezone.utc).timestamp()),
        ("2026-11-25T03:00:00+01:00", datetime(2026, 11, 25, 2, tzinfo=timezone.utc).timestamp()),
        ("2026-11-25T02:00:00", datetime(2026, 11, 25, 2, tzinfo=timezone.utc).timestamp()),  # naive is UTC
        ("1970-01-01T00:00:00Z", 0.0),
        ("2026-01-01", datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()),
        (datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()),
        (datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()),
        (date(2026, 1, 1), datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()),  # YAML reads 2026-01-01 as a date
    ],
)
def test_time_valid(value, unix):
    assert parse_time(value) == pytest.approx(unix)


@pytest.mark.parametrize("value", ["tomorrow", "", "2026-13-01T00:00:00Z", "25/11/2026", 1700000000, None, True])
def test_time_invalid(value):
    assert "2026-11-25T02:00:00Z" in refused(parse_time, value)


@pytest.mark.parametrize(("text", "seconds"), [("14:00", 50400.0), ("00:00", 0.0), ("9:30", 34200.0), ("23:59", 86340.0)])
def test_clock_valid(text, seconds):
    assert parse_clock(text) == seconds


@pytest.mark.parametrize("value", ["24:00", "12:60", "noon", "14", "14:0", "", 840, None, "14:00:00"])
def test_clock_invalid(value):
    assert "14:00" in refused(parse_clock, value)


# --- every parser, on anything ---------------------------------------------------------------------------------

ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.dates() | st.datetimes(
        timezones=st.none() | st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439))
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
UNIT_TEXT = st.from_regex(r"\A-?[0-9]{1,4}(\.[0-9]{1,3})?\s?(us|ms|s|m|min|h|d|Mi|Gi|k|M|B|%|/s|/min|/h)?\Z")


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@settings(max_examples=150, deadline=None)
@given(value=ANYTHING | UNIT_TEXT | st.integers(min_value=10**300, max_value=10**5000))
def test_parsers_return_a_finite_float_or_raise_unit_error(parser, value):
    try:
        result = parser(value)
    except UnitError as exc:
        message = str(exc)
        assert len(message.splitlines()) == 1 and "; " in message and len(message) < 300, message
    else:
        assert isinstance(result, float) and math.isfinite(result)


@given(st.integers(0, 10**6), st.sampled_from(sorted(units._DURATION_UNITS)))
def test_duration_scales_by_its_unit(number, unit):
    assert parse_duration(f"{number}{unit}") == pytest.approx(number * units._DURATION_UNITS[unit])


def test_show_is_short_and_safe():
    assert units.show(10**5000).startswith("<a number")
    assert len(units.show("x" * 10_000)) <= 60
    assert "\n" not in units.show("a\nb")
    nested: list = []
    nested.append(nested)
    assert units.show(nested)
