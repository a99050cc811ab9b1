"""The aggregate expressions that the reports and the daily rollup share, so that both count a
session the same way: its UTC day (or week, month), "empty" from the ``has_messages`` flag, each
empty session's cause, and the distinct values of a key column.

Plain expressions and small conversions only; the queries themselves live with their readers
(``analytics``) and their writer (``rollup``).
"""

import datetime as dt

from django.db.models import CharField, Count, DateTimeField, Func, OuterRef, Q, Subquery
from django.db.models.functions import Trunc

from agents_app.models import LanguageModel
from sessions_app.querysets import CAUSES, cause_condition, usage_condition

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


def period_expression(by: str, connection, field: str = "started_at"):
    """The UTC ``day``, ``week`` or ``month`` of a datetime column, as a grouping expression; turn
    its values into keys with ``period_key``."""
    if connection.vendor == "sqlite":
        return SQLitePeriodKey(field, by)
    # PostgreSQL's and MySQL/MariaDB's date_trunc()/DATE_FORMAT() are native and fast.
    return Trunc(field, by, output_field=DateTimeField(), tzinfo=dt.UTC)


def period_key(by: str, value) -> str:
    """The report key of a ``period_expression`` value (SQLite gives the key itself)."""
    if isinstance(value, str):
        return value
    return value.astimezone(dt.UTC).strftime(_PERIOD_KEY_FORMATS[by])


def utc_day(value) -> dt.date:
    """The UTC day of a ``period_expression("day", ...)`` value: SQLite's ISO text or a datetime."""
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date() if value.tzinfo else value.date()
    return value


def fold_period(key: str, by: str) -> str:
    """A day's key (``2026-01-07``) as the key of its ISO week (its Monday) or month; others unchanged."""
    if by == "week":
        day = dt.date.fromisoformat(key)
        return (day - dt.timedelta(days=day.weekday())).isoformat()
    if by == "month":
        return key[:7]
    return key


def empty_condition() -> Q:
    """The condition "this session has no message row" for aggregates (``Count(filter=...)``): the
    ``has_messages`` flag, kept exact by the database's triggers, as ``Session.objects.empty()``."""
    return Q(has_messages=False)


def session_counts() -> dict[str, Count]:
    """The aggregates ``sessions`` and ``empty`` in a form a covering index answers: ``COUNT(*)``
    rather than ``COUNT(id)`` (SQLite's indexes hold the rowid, not the text key)."""
    return {"sessions": Count("*"), "empty": Count("has_messages", filter=empty_condition())}


def cause_counts(stale) -> dict[str, Count]:
    """``{cause: Count(...)}``: one conditional count per cause (``CAUSES``). ``stale``: now minus the
    grace period; None counts ``never_ended`` and ``open`` together as ``never_ended`` (what a
    whole day before the grace period has)."""
    empty = empty_condition()
    # The row's own columns come first in each filter, so a database that evaluates the
    # conditions in order probes the message index only for the rows that can match.
    if stale is None:
        return {
            "lost_transcript": Count("pk", filter=usage_condition() & empty),
            "ghost": Count("pk", filter=~usage_condition() & Q(ended_at__isnull=False) & empty),
            "unended": Count("pk", filter=~usage_condition() & Q(ended_at__isnull=True) & empty),
        }
    return {cause: Count("pk", filter=cause_condition(cause, stale_before=stale) & empty) for cause in CAUSES}


def model_name() -> Subquery:
    """The model's name in a query grouped by ``model`` (the id), annotated after the counts so it
    is looked up once per group: joining the names before grouping made the per-model report half
    again as slow as the same counts grouped first."""
    return Subquery(LanguageModel.objects.filter(pk=OuterRef("model")).order_by().values("name")[:1])


def exact_values(queryset, field_name: str) -> list[str]:
    """Every distinct value of a key column (a ``KeyField``: source, profile, end reason), sorted,
    byte for byte on every backend ("CLI" and "cli" are two); NULL is left out."""
    choices = queryset.order_by().values_list(field_name, flat=True).distinct()
    return sorted(choice for choice in choices if choice is not None)
