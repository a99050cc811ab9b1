"""The empty-session trend: sessions and empty sessions per (UTC day or week, model), and what
goes with it on the analytics page: the default bucket, the bucket still filling, the markers.

It sums the days of ``daily.read_days``: the daily rollup before its watermark, live after it.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Min
from django.utils import timezone

from sessions_app.aggregates import fold_period
from sessions_app.analytics.daily import READ_STATUS, read_days
from sessions_app.analytics.rates import EmptySessionReport, build_report
from sessions_app.models import Session, SessionDay, TrendMarker
from sessions_app.scope import Scope, midnight

TREND_BUCKETS = ("day", "week")
BUCKET_SPANS = {"day": dt.timedelta(days=1), "week": dt.timedelta(weeks=1)}
# A trend spanning more days than this is drawn per week by default: daily points get too noisy.
WEEKLY_AFTER_DAYS = 60


@dataclass(frozen=True, order=True)
class TrendPoint:
    bucket: str  # ISO date of the bucket's first day (UTC), as in empty_session_rates
    model: str  # model name, or NO_MODEL_KEY
    sessions: int
    empty: int


def check_bucket(bucket) -> None:
    if bucket not in TREND_BUCKETS:
        raise ValidationError(
            {"bucket": f"unknown trend bucket {bucket!r}; choose one of {', '.join(TREND_BUCKETS)}."},
            code="invalid_choice",
        )


def empty_rate_trend(
    bucket: str,
    *,
    since=None,
    until=None,
    source=None,
    profile=None,
    model=None,
    using: str = DEFAULT_DB_ALIAS,
    rollup=READ_STATUS,
) -> list[TrendPoint]:
    """Sessions and empty sessions per (UTC day or week, model), summed from ``daily.read_days``.

    Same conventions as ``empty_session_rates``, so summing a bucket over its models gives that
    report's ``--by day``/``week`` row. ``ValidationError`` as that report's. ``rollup``: the
    ``rollup_status()`` a caller read already (None: count everything live).
    """
    check_bucket(bucket)
    scope = Scope(since=since, until=until, model=model, source=source, profile=profile)
    return trend_points(bucket, read_days(scope, dims=("model",), using=using, status=rollup).rows)


def trend_points(bucket: str, rows) -> list[TrendPoint]:
    """``DayCount`` rows (read with the model dimension) summed per (bucket, model)."""
    counts = defaultdict(lambda: [0, 0])
    for row in rows:
        point = counts[fold_period(row.day.isoformat(), bucket), row.model]  # a week: its Monday
        point[0] += row.sessions
        point[1] += row.empty
    return sorted(TrendPoint(key, model, total, empty) for (key, model), (total, empty) in counts.items())


def report_from_trend(
    points: list[TrendPoint], *, since=None, until=None, source=None, profile=None, model=None
) -> EmptySessionReport:
    """The per-model ``empty_session_rates`` report for the same filters, summed from the trend's
    points (every session is in exactly one bucket, so the sums are that report's numbers)."""
    scope = Scope(since=since, until=until, model=model, source=source, profile=profile)
    counts = defaultdict(lambda: [0, 0])
    for point in points:
        counts[point.model][0] += point.sessions
        counts[point.model][1] += point.empty
    return build_report("model", scope.as_dict(), {key: tuple(pair) for key, pair in counts.items()})


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


def default_bucket(
    *, since=None, until=None, source=None, now=None, using: str = DEFAULT_DB_ALIAS, first_day=None
) -> str:
    """``week`` when the range (``since`` or the first session, to ``until`` or now) spans more than
    ``WEEKLY_AFTER_DAYS`` days, else ``day``. ``first_day``: the first UTC day with sessions, if
    the caller knows it (else one indexed query of the rollup, or of the sessions without one)."""
    scope = Scope(since=since, until=until, source=source)
    start = scope.since
    if start is None:
        if first_day is None:
            first_day = first_session_day(using=using)
        start = None if first_day is None else midnight(first_day)
    end = scope.until or now or timezone.now()
    if start is None:
        return "day"
    return "week" if end - start > dt.timedelta(days=WEEKLY_AFTER_DAYS) else "day"


def first_session_day(*, using: str = DEFAULT_DB_ALIAS) -> dt.date | None:
    """The UTC day of the first session: the rollup's first day, else the sessions' (both one index probe)."""
    from_rollup = SessionDay.objects.using(using).aggregate(first=Min("day"))["first"]
    if from_rollup is not None:
        return from_rollup
    started = Session.objects.using(using).order_by("started_at").values_list("started_at", flat=True).first()
    return None if started is None else started.astimezone(dt.UTC).date()


def partial_bucket(bucket: str, *, until: dt.datetime | None, now: dt.datetime) -> str | None:
    """The label of the bucket that is not complete yet at ``now`` (or cut by ``until``), or None
    when the report ends exactly on a bucket boundary."""
    end = min(until, now) if until is not None else now
    day = (end - dt.timedelta(microseconds=1)).date()
    if bucket == "week":
        day -= dt.timedelta(days=day.weekday())
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return day.isoformat() if start + BUCKET_SPANS[bucket] > end else None


def period_bounds(moment: dt.datetime, by: str) -> tuple[dt.datetime, dt.datetime | None]:
    """The UTC day, ISO week or month containing ``moment``: ``(start, end)`` (end None past 9999)."""
    day = moment.astimezone(dt.UTC).date()
    if by == "week":
        day -= dt.timedelta(days=day.weekday())
    elif by == "month":
        day = day.replace(day=1)
    start = midnight(day)
    try:
        if by == "month":
            end = midnight(dt.date(day.year + day.month // 12, day.month % 12 + 1, 1))
        else:
            end = start + (dt.timedelta(weeks=1) if by == "week" else dt.timedelta(days=1))
    except (OverflowError, ValueError):
        end = None
    return start, end


def partial_periods(by: str, scope: Scope, now: dt.datetime) -> set[str]:
    """The keys of the periods (``day``, ``week``, ``month``) a report ``by`` them cannot show whole:
    the first one when ``scope.since`` falls inside it, the last one when ``scope.until`` (or
    ``now``, for a period still filling) does. Other groupings: none."""
    if by not in ("day", "week", "month"):
        return set()
    partial = set()
    if scope.since is not None:
        start, _ = period_bounds(scope.since, by)
        if start != scope.since:
            partial.add(fold_period(start.date().isoformat(), by))
    end = min(scope.until, now) if scope.until is not None else now
    if scope.since is None or end > scope.since:
        start, stop = period_bounds(end - dt.timedelta(microseconds=1), by)
        if stop is None or stop > end:
            partial.add(fold_period(start.date().isoformat(), by))
    return partial


def trend_markers(*, since=None, until=None, using: str = DEFAULT_DB_ALIAS) -> list[TrendMarker]:
    """The markers in ``[since, until)`` (both optional), oldest first."""
    scope = Scope(since=since, until=until)
    markers = TrendMarker.objects.using(using).drawable().order_by("at", "id")
    if scope.since is not None:
        markers = markers.filter(at__gte=scope.since)
    if scope.until is not None:
        markers = markers.filter(at__lt=scope.until)
    return list(markers)


def latest_marker(now: dt.datetime, *, using: str = DEFAULT_DB_ALIAS) -> TrendMarker | None:
    """The latest marker at or before ``now`` (a planned one, in the future, splits nothing yet);
    only a drawable one (``TrendMarkerQuerySet.drawable``)."""
    return TrendMarker.objects.using(using).drawable().filter(at__lte=now).order_by("-at", "-id").first()
