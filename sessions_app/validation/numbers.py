"""Numbers and moments: timestamps, counts, and the usage increments of the session counters."""

import datetime as dt
import math
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.utils import timezone

from sessions_app.models import Session
from sessions_app.validation.text import shown

USAGE_FIELDS = frozenset(
    {"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "api_call_count"}
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# How far ahead of this machine's clock a timestamp may be (clock skew between hosts).
MAX_CLOCK_SKEW = dt.timedelta(days=1)

MAX_TOKEN_COUNT = 2**31 - 1

# Largest single usage increment of a 64-bit token counter.
MAX_COUNTER_INCREMENT = 2**62

# The largest value each session counter may hold, the same on every backend: the smallest range
# any of them gives the column (PositiveIntegerField: 32-bit signed on PostgreSQL, unsigned on
# MariaDB, 64-bit on SQLite; BigIntegerField: 64-bit signed everywhere). An increment that would
# pass it is refused (``_sql.add_to_counters``) rather than left to each backend's own error
# (a DataError, an IntegrityError, or SQLite silently turning the column into a float).
# In this order: the counters a flush counts itself, then the caller's usage increments.
COUNTER_LIMITS = {
    name: MAX_TOKEN_COUNT if Session._meta.get_field(name).get_internal_type() == "PositiveIntegerField" else 2**63 - 1
    for name in ("message_count", "tool_call_count", *sorted(USAGE_FIELDS))
}


def check_timestamp(value, name: str = "timestamp", *, now: dt.datetime | None = None) -> dt.datetime:
    """An aware datetime or Unix seconds, between 1970 and a day ahead of now."""
    if isinstance(value, dt.datetime):
        if timezone.is_naive(value):
            raise ValidationError(
                {name: "is a naive datetime; give an aware one (UTC) or Unix seconds."}, code="invalid"
            )
        try:
            when = value.astimezone(dt.UTC)  # stored as UTC anyway; hand back what will be read back
        except (OverflowError, ValueError):  # e.g. datetime.max at UTC-5 is past year 9999 in UTC
            raise ValidationError(
                {name: f"{value.isoformat()} is out of the range of dates."}, code="invalid"
            ) from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise ValidationError({name: f"{shown(value)} is not a Unix time at or after 1970."}, code="invalid")
        try:
            when = dt.datetime.fromtimestamp(value, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise ValidationError({name: f"{shown(value)} is too far in the future."}, code="invalid") from None
    else:
        raise ValidationError(
            {name: f"must be a datetime or Unix seconds, got {type(value).__name__}."}, code="invalid"
        )
    if when < _EPOCH:
        raise ValidationError({name: f"{when.isoformat()} is before 1970."}, code="invalid")
    now = now or timezone.now()
    if when > now + MAX_CLOCK_SKEW:
        raise ValidationError({name: f"{when.isoformat()} is more than a day in the future."}, code="invalid")
    return when


def check_count(value, name: str, *, maximum: int = MAX_TOKEN_COUNT) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise ValidationError(
            {name: f"must be a whole number from 0 to {maximum}, got {shown(value)}."}, code="invalid"
        )
    return value


def check_usage(usage: Mapping | None) -> dict[str, int]:
    """Counter increments by name, each a whole number in its counter's increment range; zeros left out."""
    if not usage:
        return {}
    if not isinstance(usage, Mapping):
        raise ValidationError({"usage": "must be a dict of counter increments."}, code="invalid")
    unknown = usage.keys() - USAGE_FIELDS
    if unknown:
        names, allowed = ", ".join(sorted(map(shown, unknown))), ", ".join(sorted(USAGE_FIELDS))
        raise ValidationError({"usage": f"unknown counter(s) {names}; allowed: {allowed}."}, code="invalid")
    checked = {
        # api_call_count is a 32-bit column; the token counters are 64-bit.
        name: check_count(
            value, f"usage.{name}", maximum=MAX_TOKEN_COUNT if name == "api_call_count" else MAX_COUNTER_INCREMENT
        )
        for name, value in usage.items()
    }
    return {name: value for name, value in checked.items() if value}


def counter_key(name: str) -> str:
    """The error key of a session counter: ``usage.<name>`` for the caller's usage counters."""
    return f"usage.{name}" if name in USAGE_FIELDS else name


def counter_overflow(stored: Mapping[str, int], increments: Mapping[str, int]) -> ValidationError:
    """The error for increments that would take stored counters past ``COUNTER_LIMITS``."""
    errors = {
        counter_key(name): (
            f"adding {increment} to the stored {stored[name]} would pass the counter's limit {COUNTER_LIMITS[name]}."
        )
        for name, increment in increments.items()
        if increment and stored.get(name, 0) + increment > COUNTER_LIMITS[name]
    }
    return ValidationError(errors or {"usage": "would pass a counter's limit."}, code="overflow")
