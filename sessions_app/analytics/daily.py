"""Sessions and empty sessions per (UTC day, model): the daily rollup for the days before its
watermark, the sessions table (the flag, through the ``started_at`` index) for the rest, merged.

The rollup (``SessionDay``) is built by ``sessions_app.rollup`` for whole UTC days before the
watermark of ``SessionRollupState``; every day from the watermark on, and the partial days at
the ends of a range that does not start or stop at midnight, are counted live. Right after a
build the two agree exactly, day by day; see docs/rollup.md for what keeps them so.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Sum
from django.utils import timezone

from sessions_app.analytics.filters import exact_name, model_name, report_filters, session_counts
from sessions_app.analytics.rates import group_expression, model_key
from sessions_app.models import Session, SessionDay, SessionRollupState
from sessions_app.querysets import EARLIEST_MOMENT


@dataclass(frozen=True, order=True)
class DailyCount:
    day: dt.date  # UTC day the sessions started
    model: str  # model name, or NO_MODEL_KEY
    sessions: int
    empty: int


@dataclass(frozen=True)
class RollupStatus:
    """How far the rollup goes: every UTC day before ``watermark`` is in it, built at ``built_at``."""

    watermark: dt.date
    built_at: dt.datetime

    @property
    def last_day(self) -> dt.date:
        """The last UTC day in the rollup."""
        return self.watermark - dt.timedelta(days=1)


def rollup_status(*, using: str = DEFAULT_DB_ALIAS) -> RollupStatus | None:
    """The rollup's watermark and build time; None when it was never built (everything is live)."""
    row = SessionRollupState.objects.using(using).filter(pk=1).values_list("watermark", "built_at").first()
    if row is None or row[0] is None or not EARLIEST_MOMENT.date() <= row[0] <= timezone.now().date():
        return None  # not built, or a watermark no build leaves (another writer, a clock that was wrong): live
    return RollupStatus(*row)


# ``rollup=`` default: read the status here (a caller that shows it reads it once and passes it).
READ_STATUS = object()


def daily_counts(
    *,
    since=None,
    until=None,
    model=None,
    source=None,
    profile=None,
    using: str = DEFAULT_DB_ALIAS,
    rollup=READ_STATUS,
) -> list[DailyCount]:
    """Sessions and empty sessions per (UTC day, model name) for the filters of
    ``empty_session_rates`` (plus an exact ``profile``), in day and model order.

    Whole days before the watermark come from the rollup (one query), the rest from the sessions
    (one grouped query per side of the rollup's range; none when it covers everything): a
    constant number of queries whatever the range. ``rollup``: the ``rollup_status()`` the caller
    read already (None: count everything live). ``ValidationError`` as ``report_filters``.
    """
    filters = report_filters(since=since, until=until, model=model, source=source)
    filters["profile"] = exact_name(profile, "profile")
    counts = defaultdict(lambda: [0, 0])
    status = rollup_status(using=using) if rollup is READ_STATUS else rollup
    first, end = _rollup_days(filters["since"], filters["until"], status)
    if end is not None and first is not None and first >= end:
        first = end = None  # no whole day of the range is in the rollup
    if end is None:
        _add_live(counts, filters, filters["since"], filters["until"], using)
    else:
        _add_rollup(counts, filters, first, end, using)
        if filters["since"] is not None and _midnight(first) > filters["since"]:
            _add_live(counts, filters, filters["since"], _midnight(first), using)
        if filters["until"] is None or _midnight(end) < filters["until"]:
            _add_live(counts, filters, _midnight(end), filters["until"], using)
    return [DailyCount(day, name, *pair) for (day, name), pair in sorted(counts.items())]


def _rollup_days(since, until, status) -> tuple[dt.date | None, dt.date | None]:
    """``(first, end)``: the whole UTC days in ``[since, until)`` before the watermark are
    ``[first, end)`` (``first`` None: from the first day there is); ``end`` None: no rollup."""
    if status is None:
        return None, None
    first = None
    if since is not None:
        first = since.date()
        if since != _midnight(first):
            if first == dt.date.max:
                return None, None
            first += dt.timedelta(days=1)
    end = status.watermark if until is None else min(status.watermark, until.date())
    return first, end


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _add_rollup(counts, filters: dict, first: dt.date | None, end: dt.date, using: str) -> None:
    rows = SessionDay.objects.using(using).order_by().filter(day__lt=end)
    if first is not None:
        rows = rows.filter(day__gte=first)
    # SessionDay's text keys are binary-collated on MySQL/MariaDB: these filters are exact there too.
    for name in ("source", "profile"):
        if filters[name] is not None:
            rows = rows.filter(**{name: filters[name]})
    if filters["model"] is not None:
        rows = rows.filter(model__name=filters["model"])
    rows = rows.values("day", "model__name").annotate(n=Sum("sessions"), e=Sum("empty"))
    for day, name, sessions, empty in rows.values_list("day", "model__name", "n", "e"):
        pair = counts[day, model_key(name)]
        pair[0] += sessions
        pair[1] += empty


def _add_live(counts, filters: dict, since, until, using: str) -> None:
    sessions = Session.objects.using(using).order_by()
    sessions = sessions.matching(since=since, until=until, model=filters["model"], source=filters["source"])
    if filters["profile"] is not None:
        sessions = sessions.filter(profile=filters["profile"])  # a binary-collated key everywhere
    groups = sessions.annotate(day=group_expression("day", connections[using])).values("day", "model")
    rows = groups.annotate(**session_counts()).annotate(name=model_name())
    for day, name, total, empty in rows.values_list("day", "name", "sessions", "empty"):
        pair = counts[utc_day(day), model_key(name)]
        pair[0] += total
        pair[1] += empty


def utc_day(value) -> dt.date:
    """The UTC day of a ``group_expression("day", ...)`` value: SQLite's ISO text or a datetime."""
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date() if value.tzinfo else value.date()
    return value
