"""Empty-session rates: sessions and empty sessions per model, source, profile or period, in one query.

The conventions (UTC buckets keyed by their first day, ``NO_MODEL_KEY``, rows by key) are those
of the package docstring (``sessions_app.analytics``).
"""

import datetime as dt
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import CharField, DateTimeField, F, Func
from django.db.models.functions import Trunc

from sessions_app.analytics.causes import cause_totals
from sessions_app.analytics.filters import check_grouping, model_name, report_filters, session_counts
from sessions_app.analytics.intervals import wilson_interval
from sessions_app.models import Session

NO_MODEL_KEY = "(none)"
TOTAL_KEY = "TOTAL"
# Labels the reports give rows and buckets that are not one model: no model, the total row, the
# models summed past a cap (the page's and the trend's "other models", /metrics' "other"). A model
# literally named one of them is keyed in double quotes (``model_key``), never merged with them.
RESERVED_KEYS = frozenset({NO_MODEL_KEY, TOTAL_KEY, "other", "other models"})
# The JSON ``filters`` object, in this order (None: not filtered).
FILTER_NAMES = ("since", "until", "model", "source", "profile")
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

    @property
    def rate_low(self) -> float:
        """Lower bound of the rate's 95% Wilson interval (0.0 without sessions)."""
        return wilson_interval(self.empty, self.sessions)[0]

    @property
    def rate_high(self) -> float:
        """Upper bound of the rate's 95% Wilson interval (1.0 without sessions: nothing is known)."""
        return wilson_interval(self.empty, self.sessions)[1]

    def __getitem__(self, name: str):
        if name not in ("key", "sessions", "empty", "rate", "rate_low", "rate_high"):
            raise KeyError(name)
        return getattr(self, name)

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "sessions": self.sessions,
            "empty": self.empty,
            "rate": self.rate,
            "rate_low": self.rate_low,
            "rate_high": self.rate_high,
        }


@dataclass(frozen=True)
class EmptySessionReport:
    """A report: the grouping, the filters applied (normalised), the rows by key, and their total."""

    by: str
    filters: dict
    rows: list[RateRow]
    total: RateRow

    def as_dict(self) -> dict:
        """The JSON shape of ARCHITECTURE.md (``rate`` a full-precision fraction)."""
        filters = {name: self.filters.get(name) for name in FILTER_NAMES}
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
    profile: str | None = None,
    using: str = DEFAULT_DB_ALIAS,
    now: dt.datetime | None = None,
    grace: dt.timedelta | None = None,
) -> EmptySessionReport:
    """Sessions and empty sessions per ``by`` group, plus their total, in one aggregate query.

    ``model``, ``source`` and ``profile`` filter by exact (case- and space-sensitive) match on
    every backend; without ``profile`` every profile is counted (``by="profile"`` splits them).
    ``by="cause"``: a row per cause (``analytics.causes``, every cause even at 0), its ``empty``
    the empty sessions of that cause and its ``sessions`` all the sessions in scope, so its rate
    is that cause's share of them; the total is the usual one. ``now`` and ``grace`` (default:
    the current time and ``HERMES_OPEN_GRACE``) only matter there.
    Raises ``ValidationError`` for an unknown grouping, a bad bound or ``since >= until``.
    """
    check_grouping(by)
    filters = report_filters(since=since, until=until, model=model, source=source, profile=profile)
    connection = connections[using]
    sessions = Session.objects.using(using).order_by().matching(**filters)

    if by == "cause":
        total, causes = cause_totals(sessions, now=now, grace=grace)
        rows = [RateRow(cause, total, causes[cause]) for cause in sorted(causes)]
        return EmptySessionReport(by, filters, rows, RateRow(TOTAL_KEY, total, sum(causes.values())))
    if by == "model":
        # Grouped by model_id along the (model, started_at, has_messages) index, no sort needed;
        # each group's name is looked up after grouping.
        rows = sessions.values("model").annotate(**session_counts()).annotate(group=model_name())
        rows, period = rows.values_list("group", "sessions", "empty"), by
    else:
        # A session's week and month are its day's: group by the day (cheap per row, a few
        # hundred groups) and fold the days into weeks or months here; the sums are exact.
        period = "day" if by in ("week", "month") else by
        groups = sessions.annotate(group=group_expression(period, connection)).values("group")
        rows = session_and_empty_counts(groups, "group")
    counts = {}
    for group, sessions_count, empty in rows:
        key = fold_period(group_key(period, group), by)
        before = counts.get(key, (0, 0))
        counts[key] = (before[0] + sessions_count, before[1] + empty)
    return build_report(by, filters, counts)


def fold_period(key: str, by: str) -> str:
    """A day's key (``2026-01-07``) as the key of its ISO week (its Monday) or month; others unchanged."""
    if by == "week":
        day = dt.date.fromisoformat(key)
        return (day - dt.timedelta(days=day.weekday())).isoformat()
    if by == "month":
        return key[:7]
    return key


def build_report(by: str, filters: dict, counts: dict) -> EmptySessionReport:
    """A report from ``{key: (sessions, empty)}`` and normalised ``filters`` (``report_filters``):
    rows in key order and their total, as ``empty_session_rates`` returns them."""
    rows = [RateRow(key, *counts[key]) for key in sorted(counts)]
    total = RateRow(TOTAL_KEY, sum(row.sessions for row in rows), sum(row.empty for row in rows))
    return EmptySessionReport(by=by, filters=filters, rows=rows, total=total)


def session_and_empty_counts(groups, *columns: str):
    """Rows ``(*columns, sessions, empty)`` of a grouped session queryset (``.values(...)``), in one
    statement: both counts come from the session rows (the flag), so a covering index of the
    grouping columns, ``started_at`` and ``has_messages`` answers it without reading the table."""
    groups = groups.annotate(**session_counts())
    return groups.values_list(*columns, "sessions", "empty")


def group_expression(by: str, connection, field: str = "started_at"):
    """The SQL expression a report groups sessions by, for ``by`` other than ``model``; turn
    the values it gives into report keys with ``group_key``."""
    if by in ("source", "profile"):
        return F(by)  # KeyFields: binary-collated on MySQL/MariaDB ("CLI" apart from "cli")
    if connection.vendor == "sqlite":
        return SQLitePeriodKey(field, by)
    # PostgreSQL's and MySQL/MariaDB's date_trunc()/DATE_FORMAT() are native and fast.
    return Trunc(field, by, output_field=DateTimeField(), tzinfo=dt.UTC)


def model_key(name: str | None) -> str:
    """The report key of a model name, one key per model and none shared with a bucket:
    ``NO_MODEL_KEY`` for no model and for "" (hermes-agent writes both: one row); the name itself;
    but a name that is a reserved label (``RESERVED_KEYS``) or starts with a double quote, in
    double quotes, so a model named ``other`` is the row ``"other"``. ``model_of_key`` inverts it."""
    if not name:
        return NO_MODEL_KEY
    if name in RESERVED_KEYS or name.startswith('"'):
        return f'"{name}"'
    return name


def model_of_key(key: str) -> str | None:
    """The model name of a report key (``model_key``'s inverse); None for ``NO_MODEL_KEY``."""
    if key == NO_MODEL_KEY:
        return None
    if len(key) >= 2 and key.startswith('"') and key.endswith('"'):
        return key[1:-1]
    return key


def group_key(by: str, group) -> str:
    """The report key of a value of ``group_expression`` (or of a model name for ``model``)."""
    if by == "model":
        return model_key(group)
    if by in ("source", "profile") or isinstance(group, str):  # SQLitePeriodKey gives the key itself
        return group
    return group.astimezone(dt.UTC).strftime(_PERIOD_KEY_FORMATS[by])
