"""What a report, a page or a command is about: a frozen ``Scope`` (since, until, model, source,
profile), checked once where the input arrives and passed down as it is.

The edges build it: a form or a query string (``Scope.from_text``), a command's options (the same),
a function's keyword arguments (``Scope(...)``). Everything below takes the ``Scope`` and never
checks it again. Readers (``analytics``) and writers (prune, stale, retention) share this module,
so neither needs the other to know what a filter means.

Conventions (the README's): ``since`` is inclusive and ``until`` exclusive, both on
``Session.started_at``; a ``date`` means midnight UTC; a ``datetime`` must be aware (a naive one is
refused: it would be read in whatever time zone the server happens to use). ``model``, ``source``
and ``profile`` match exactly (byte for byte, MariaDB included); None leaves a filter out.
"""

import datetime as dt
from dataclasses import dataclass, fields, replace

from django.core.exceptions import ValidationError

from sessions_app.querysets import EARLIEST_MOMENT

# The filters of a report, in the order of the JSON ``filters`` object.
FILTER_NAMES = ("since", "until", "model", "source", "profile")
DATE_FORMATS = "YYYY-MM-DD or an ISO 8601 datetime such as 2026-01-05T10:00:00Z"


def parse_date_bound(text: str) -> dt.date | dt.datetime:
    """``YYYY-MM-DD`` as a date, or an ISO 8601 datetime (UTC when it has no offset) as an aware
    datetime; ``ValueError`` saying what is accepted otherwise, or why a moment the reports cannot
    hold is refused (``utc_bound``: before 1000-01-01, out of range in UTC)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty date; expected {DATE_FORMATS}.")
    text = text.strip()
    try:
        value = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid date {text!r}; expected {DATE_FORMATS}.") from None
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        utc_bound(value)
    except ValidationError as exc:
        raise ValueError(" ".join(exc.messages)) from None
    return value


def utc_bound(value, name: str = "bound") -> dt.datetime | None:
    """An aware UTC datetime from a date (midnight UTC) or an aware datetime; None stays None.

    ``ValidationError`` (keyed by ``name``) for a naive datetime, another type, or a moment that
    falls outside the datetimes Python has once converted to UTC or before ``EARLIEST_MOMENT``
    (1000-01-01, MariaDB's first DATETIME; the week before year 1 does not exist)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(
                {name: f"{value.isoformat()} is a naive datetime; give an aware one (e.g. UTC) or a date."},
                code="invalid",
            )
        try:
            moment = value.astimezone(dt.UTC)
        except OverflowError:  # 9999-12-31T23:00-05:00 is past the last datetime there is
            raise ValidationError({name: f"{value.isoformat()} is out of range in UTC."}, code="invalid") from None
    elif isinstance(value, dt.date):
        moment = midnight(value)
    else:
        raise ValidationError({name: f"must be a date or a datetime, got {type(value).__name__}."}, code="invalid")
    if moment < EARLIEST_MOMENT:
        raise ValidationError(
            {name: f"{value.isoformat()} is before {EARLIEST_MOMENT:%Y-%m-%d} (UTC), where the reports start."},
            code="invalid",
        )
    return moment


def exact_name(value, name: str) -> str | None:
    """A model, source or profile name to match exactly, checked: None (no filter) or non-empty text;
    ``ValidationError`` keyed by ``name`` otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError({name: f"must be a string, got {type(value).__name__}."}, code="invalid")
    if not value:
        raise ValidationError({name: "must not be empty; leave it out to include every value."}, code="required")
    return value


def midnight(day: dt.date) -> dt.datetime:
    """The first instant of a UTC day."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Scope:
    """The sessions a report is about. Built checked (``ValidationError`` keyed by the filter's
    name), immutable, and shared as it is by every query below the edge that built it."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    model: str | None = None
    source: str | None = None
    profile: str | None = None

    def __post_init__(self):
        since, until = utc_bound(self.since, "since"), utc_bound(self.until, "until")
        if since is not None and until is not None and since >= until:
            raise ValidationError(
                {"until": f"until ({until.isoformat()}) must be after since ({since.isoformat()})."}, code="invalid"
            )
        object.__setattr__(self, "since", since)
        object.__setattr__(self, "until", until)
        for name in ("model", "source", "profile"):
            object.__setattr__(self, name, exact_name(getattr(self, name), name))

    @classmethod
    def from_text(cls, **values) -> "Scope":
        """A scope from text input (a query string, a form, a command's options): ``since``/``until``
        parsed by ``parse_date_bound``, empty values left out; ``ValidationError`` keyed by name."""
        for name in ("since", "until"):
            text = values.get(name)
            if text in (None, ""):
                values[name] = None
                continue
            try:
                values[name] = parse_date_bound(text)
            except ValueError as exc:
                raise ValidationError({name: str(exc)}, code="invalid") from None
        return cls(**{name: value if value != "" else None for name, value in values.items()})

    def sessions(self, queryset):
        """``queryset`` (of sessions) narrowed to this scope."""
        return queryset.matching(**self.as_dict())

    def as_dict(self) -> dict:
        """The filters as Python values, in ``FILTER_NAMES`` order (None: not filtered)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def as_json(self) -> dict:
        """The JSON ``filters`` object: bounds as ISO 8601 text."""
        values = self.as_dict()
        for name in ("since", "until"):
            if values[name] is not None:
                values[name] = values[name].isoformat()
        return values

    def but(self, **changes) -> "Scope":
        """This scope with some filters changed (checked like any other)."""
        return replace(self, **changes)

    def within(self, since: dt.datetime | None, until: dt.datetime | None) -> "Scope | None":
        """This scope narrowed to ``[since, until)`` too, or None when the two ranges do not meet."""
        lower = max((b for b in (self.since, since) if b is not None), default=None)
        upper = min((b for b in (self.until, until) if b is not None), default=None)
        if lower is not None and upper is not None and lower >= upper:
            return None
        return replace(self, since=lower, until=upper)

    @property
    def is_everything(self) -> bool:
        return not any(self.as_dict().values())

    def describe(self) -> str:
        """The filters in words, for messages ("since 2026-01-05T00:00:00+00:00, model 'x'")."""
        parts = [
            f"{name} {value.isoformat()}" for name, value in (("since", self.since), ("until", self.until)) if value
        ]
        parts += [f"{name} {getattr(self, name)!r}" for name in ("model", "source", "profile") if getattr(self, name)]
        return ", ".join(parts)
