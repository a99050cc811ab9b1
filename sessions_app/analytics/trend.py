"""The empty-session trend: sessions and empty sessions per (UTC day or week, model).

The analytics page reads the sessions once: this trend feeds its chart, and its sums per model
are its per-model table (``report_from_trend``), the same numbers as ``empty_session_rates``.
It sums the days of ``daily_counts``: the daily rollup before its watermark, live after it.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from sessions_app.analytics.daily import READ_STATUS, daily_counts
from sessions_app.analytics.filters import report_filters
from sessions_app.analytics.rates import EmptySessionReport, build_report, fold_period
from sessions_app.models import Session, TrendMarker

TREND_BUCKETS = ("day", "week")
# A trend spanning more days than this is drawn per week by default: daily points get too noisy.
WEEKLY_AFTER_DAYS = 60


@dataclass(frozen=True, order=True)
class TrendPoint:
    bucket: str  # ISO date of the bucket's first day (UTC), as in empty_session_rates
    model: str  # model name, or NO_MODEL_KEY
    sessions: int
    empty: int


def empty_rate_trend(
    bucket: str,
    *,
    since=None,
    until=None,
    source=None,
    profile=None,
    using: str = DEFAULT_DB_ALIAS,
    rollup=READ_STATUS,
) -> list[TrendPoint]:
    """Sessions and empty sessions per (UTC day or week, model), summed from ``daily_counts``
    (a constant number of queries: the rollup's days and a live query for the others).

    Same conventions as ``empty_session_rates`` (emptiness as ``Session.objects.empty()`` decides
    it, ``since`` inclusive, ``until`` exclusive, exact ``source`` and ``profile``), so summing a bucket over its
    models gives that report's ``--by day``/``week`` row. ``ValidationError`` as that report's.
    ``rollup``: the ``rollup_status()`` a caller read already (it then is not read again).
    """
    if bucket not in TREND_BUCKETS:
        raise ValidationError(
            {"bucket": f"unknown trend bucket {bucket!r}; choose one of {', '.join(TREND_BUCKETS)}."},
            code="invalid_choice",
        )
    counts = defaultdict(lambda: [0, 0])
    for row in daily_counts(since=since, until=until, source=source, profile=profile, using=using, rollup=rollup):
        point = counts[fold_period(row.day.isoformat(), bucket), row.model]  # a week: its Monday
        point[0] += row.sessions
        point[1] += row.empty
    return sorted(TrendPoint(key, model, total, empty) for (key, model), (total, empty) in counts.items())


def report_from_trend(
    points: list[TrendPoint], *, since=None, until=None, source=None, profile=None
) -> EmptySessionReport:
    """The per-model ``empty_session_rates`` report for the same filters, summed from the trend's
    points (every session is in exactly one bucket, so the sums are that report's numbers)."""
    filters = report_filters(since=since, until=until, source=source, profile=profile)
    counts = defaultdict(lambda: [0, 0])
    for point in points:
        counts[point.model][0] += point.sessions
        counts[point.model][1] += point.empty
    return build_report("model", filters, {key: tuple(pair) for key, pair in counts.items()})


def bucket_totals(points: list[TrendPoint]) -> dict[str, tuple[int, int]]:
    """``{bucket: (sessions, empty)}`` over every model, the buckets in order."""
    totals = defaultdict(lambda: [0, 0])
    for point in points:
        totals[point.bucket][0] += point.sessions
        totals[point.bucket][1] += point.empty
    return {bucket: tuple(totals[bucket]) for bucket in sorted(totals)}


def model_buckets(points: list[TrendPoint]) -> dict[str, dict[str, tuple[int, int]]]:
    """``{model: {bucket: (sessions, empty)}}``: each model's line of the trend."""
    per_model = defaultdict(dict)
    for point in points:
        per_model[point.model][point.bucket] = (point.sessions, point.empty)
    return dict(per_model)


def default_bucket(*, since=None, until=None, source=None, now=None, using: str = DEFAULT_DB_ALIAS) -> str:
    """``week`` when the range (``since`` or the first session, to ``until`` or now) spans more than
    ``WEEKLY_AFTER_DAYS`` days, else ``day``; one indexed query for the first session."""
    filters = report_filters(since=since, until=until, source=source)
    start = filters["since"]
    if start is None:
        sessions = Session.objects.using(using).order_by("started_at").matching(**filters)
        start = sessions.values_list("started_at", flat=True).first()  # the start time alone, from the index
    end = filters["until"] or now or timezone.now()
    if start is None:
        return "day"
    return "week" if end - start > dt.timedelta(days=WEEKLY_AFTER_DAYS) else "day"


def trend_markers(*, since=None, until=None, using: str = DEFAULT_DB_ALIAS) -> list[TrendMarker]:
    """The markers in ``[since, until)`` (both optional), oldest first."""
    filters = report_filters(since=since, until=until)
    markers = TrendMarker.objects.using(using).drawable().order_by("at", "id")
    if filters["since"] is not None:
        markers = markers.filter(at__gte=filters["since"])
    if filters["until"] is not None:
        markers = markers.filter(at__lt=filters["until"])
    return list(markers)
