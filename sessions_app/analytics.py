"""Empty-session analytics: how many sessions never got a message, per model, source or period.

Read-only selectors that return plain data (dataclasses), shared by the ``empty_sessions``
command and the admin page. Each report is one aggregate query, whatever the number of sessions.

Conventions (documented in the README):
- "Empty" means no message row (an EXISTS on the indexed messages), never the stored counter.
- ``since`` is inclusive and ``until`` exclusive, both on ``Session.started_at``. A ``date`` means
  midnight UTC of that day; a ``datetime`` must be aware (a naive one is refused: it would be read
  in whatever time zone the server happens to use).
- Time buckets are UTC and keyed by the ISO date of their first day: ``day`` and ``week``
  ``"2026-01-05"`` (weeks start on Monday, as ISO weeks do), ``month`` ``"2026-01"``.
- Sessions without a model are grouped under the key ``NO_MODEL_KEY`` (``"(none)"``).
- Rows are ordered by key, by code point (date keys therefore chronologically), the same on
  every backend; callers re-sort for display.
"""

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import CharField, Count, DateTimeField, Exists, Func, Min, OuterRef, Value
from django.db.models.functions import Trunc

from hermes_site.db import exact_text, filter_exact
from sessions_app.models import Message, Session

GROUPINGS = ("model", "source", "day", "week", "month")
NO_MODEL_KEY = "(none)"
TOTAL_KEY = "TOTAL"
_UNION_VENDORS = {"postgresql"}
_PERIOD_KEY_FORMATS = {"day": "%Y-%m-%d", "week": "%Y-%m-%d", "month": "%Y-%m"}


class SQLitePeriodKey(Func):
    """The UTC day, week or month of a datetime column on SQLite, as its report key, in plain SQL.

    Django stores an aware datetime on SQLite as naive UTC text ("2026-01-04 23:59:59.999999"), so
    the day is its first 10 characters and the month its first 7. ``Trunc`` would call a Python
    function for every row instead (about 4x the time of the whole query at a million sessions).
    The week's Monday is computed from the day alone: ``date()`` rounds fractional seconds to
    milliseconds, which would move the last instant of a Sunday into the next week.
    """

    output_field = CharField()
    templates = {
        "day": "substr(%(expressions)s, 1, 10)",
        "week": "date(substr(%(expressions)s, 1, 10), '-6 days', 'weekday 1')",
        "month": "substr(%(expressions)s, 1, 7)",
    }

    def __init__(self, expression, by: str):
        super().__init__(expression, template=self.templates[by])


@dataclass(frozen=True)
class RateRow:
    """One group of a report: its key, how many sessions it has, and how many of them are empty."""

    key: str
    sessions: int
    empty: int

    @property
    def rate(self) -> float:
        """Empty sessions as a fraction of all sessions in the group; 0.0 for a group without sessions."""
        return self.empty / self.sessions if self.sessions else 0.0

    def __getitem__(self, name: str):
        if name not in ("key", "sessions", "empty", "rate"):
            raise KeyError(name)
        return getattr(self, name)

    def as_dict(self) -> dict:
        return {"key": self.key, "sessions": self.sessions, "empty": self.empty, "rate": self.rate}


@dataclass(frozen=True)
class EmptySessionReport:
    """A report: the grouping, the filters applied (normalised), the rows by key, and their total."""

    by: str
    filters: dict
    rows: list[RateRow]
    total: RateRow

    def as_dict(self) -> dict:
        """The JSON shape of ARCHITECTURE.md (``rate`` a full-precision fraction)."""
        filters = {name: self.filters.get(name) for name in ("since", "until", "model", "source")}
        for name in ("since", "until"):
            if filters[name] is not None:
                filters[name] = filters[name].isoformat()
        total = self.total.as_dict()
        del total["key"]
        return {"by": self.by, "filters": filters, "total": total, "rows": [row.as_dict() for row in self.rows]}

    def __getitem__(self, name: str):
        return self.as_dict()[name]

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def empty_session_rates(
    by: str = "model",
    *,
    since: dt.date | dt.datetime | None = None,
    until: dt.date | dt.datetime | None = None,
    model: str | None = None,
    source: str | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> EmptySessionReport:
    """Sessions and empty sessions per ``by`` group, plus their total, in one aggregate query.

    ``model`` and ``source`` filter by exact (case- and space-sensitive) match on every backend.
    Raises ``ValidationError`` for an unknown grouping, a bad bound or ``since >= until``.
    """
    check_grouping(by)
    filters = report_filters(since=since, until=until, model=model, source=source)
    since, until, model, source = filters["since"], filters["until"], filters["model"], filters["source"]

    connection = connections[using]
    sessions = Session.objects.using(using).order_by()
    if since is not None:
        sessions = sessions.filter(started_at__gte=since)
    if until is not None:
        sessions = sessions.filter(started_at__lt=until)
    if model is not None:
        sessions = sessions.filter(model__name=model)  # a binary-collated KeyField on MySQL/MariaDB
    if source is not None:
        # The plain comparison can use the (source, started_at) index; on MySQL/MariaDB it is
        # case-insensitive, so the binary-collated comparison then keeps only the exact matches.
        sessions = filter_exact(sessions, "source", source)

    if by == "model":
        # Grouping by model_id follows the (model, started_at, id) index order, so no sort is
        # needed; a model id has one name, which Min() carries along.
        groups = sessions.values("model").annotate(group=Min("model__name"))
    else:
        groups = sessions.annotate(group=group_expression(by, connection)).values("group")
    counts = {}
    for group, sessions_count, empty in session_and_empty_counts(groups, "group"):
        key = group_key(by, group)
        before = counts.get(key, (0, 0))
        counts[key] = (before[0] + sessions_count, before[1] + empty)
    return build_report(by, filters, counts)


def check_grouping(by) -> None:
    """``ValidationError`` unless ``by`` is one of ``GROUPINGS``."""
    if by not in GROUPINGS:
        raise ValidationError(
            {"by": f"unknown grouping {by!r}; choose one of {', '.join(GROUPINGS)}."}, code="invalid_choice"
        )


def report_filters(*, since=None, until=None, model=None, source=None) -> dict:
    """The filters of ``empty_session_rates``, checked and normalised as it does (bounds in UTC);
    ``ValidationError`` for a bad bound, ``since >= until`` or an empty or non-text name."""
    since = utc_bound(since, "since")
    until = utc_bound(until, "until")
    if since is not None and until is not None and since >= until:
        raise ValidationError(
            {"until": f"until ({until.isoformat()}) must be after since ({since.isoformat()})."}, code="invalid"
        )
    return {
        "since": since,
        "until": until,
        "model": exact_name(model, "model"),
        "source": exact_name(source, "source"),
    }


def build_report(by: str, filters: dict, counts: dict) -> EmptySessionReport:
    """A report from ``{key: (sessions, empty)}`` and normalised ``filters`` (``report_filters``):
    rows in key order and their total, as ``empty_session_rates`` returns them."""
    rows = [RateRow(key, *counts[key]) for key in sorted(counts)]
    total = RateRow(TOTAL_KEY, sum(row.sessions for row in rows), sum(row.empty for row in rows))
    return EmptySessionReport(by=by, filters=filters, rows=rows, total=total)


def session_and_empty_counts(groups, *columns: str):
    """Rows ``(*columns, sessions, empty)`` of a grouped session queryset (``.values(...)``), in one
    statement. On PostgreSQL a group may come in two rows (add them up): the totals UNION ALL the
    empty sessions counted apart, which PostgreSQL runs as an anti-join (parallel, merge or hash)
    instead of a subplan per session."""
    no_message = ~Exists(Message.objects.filter(session_id=OuterRef("pk")))
    if connections[groups.db].vendor in _UNION_VENDORS:
        totals = groups.annotate(sessions=Count("pk"), empty=Value(0))
        empties = groups.filter(no_message).annotate(sessions=Value(0), empty=Count("pk"))
        return totals.values_list(*columns, "sessions", "empty").union(
            empties.values_list(*columns, "sessions", "empty"), all=True
        )
    groups = groups.annotate(sessions=Count("pk"), empty=Count("pk", filter=no_message))
    return groups.values_list(*columns, "sessions", "empty")


def group_expression(by: str, connection, field: str = "started_at"):
    """The SQL expression a report groups sessions by, for ``by`` other than ``model``; turn
    the values it gives into report keys with ``group_key``."""
    if by == "source":
        # Group "CLI" apart from "cli" on MySQL/MariaDB too, as SQLite and PostgreSQL do.
        return exact_text("source", connection)
    if connection.vendor == "sqlite":
        return SQLitePeriodKey(field, by)
    # PostgreSQL's and MySQL/MariaDB's date_trunc()/DATE_FORMAT() are native and fast.
    return Trunc(field, by, output_field=DateTimeField(), tzinfo=dt.UTC)


def group_key(by: str, group) -> str:
    """The report key of a value of ``group_expression`` (or of a model name for ``model``)."""
    if by == "model":
        return NO_MODEL_KEY if group is None else group
    if by == "source" or isinstance(group, str):  # SQLitePeriodKey gives the key itself
        return group
    return group.astimezone(dt.UTC).strftime(_PERIOD_KEY_FORMATS[by])


def utc_bound(value, name: str = "bound") -> dt.datetime | None:
    """An aware UTC datetime from a date (midnight UTC) or an aware datetime; None stays None.

    ``ValidationError`` (keyed by ``name``) for a naive datetime, another type, or a moment that
    falls outside the datetimes Python has once converted to UTC."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(
                {name: f"{value.isoformat()} is a naive datetime; give an aware one (e.g. UTC) or a date."},
                code="invalid",
            )
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:  # 9999-12-31T23:00-05:00 is past the last datetime there is
            raise ValidationError({name: f"{value.isoformat()} is out of range in UTC."}, code="invalid") from None
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    raise ValidationError({name: f"must be a date or a datetime, got {type(value).__name__}."}, code="invalid")


def exact_name(value, name: str) -> str | None:
    """A model or source name to match exactly, checked: None (no filter) or non-empty text;
    ``ValidationError`` keyed by ``name`` otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError({name: f"must be a string, got {type(value).__name__}."}, code="invalid")
    if not value:
        raise ValidationError({name: "must not be empty; leave it out to include every value."}, code="required")
    return value
