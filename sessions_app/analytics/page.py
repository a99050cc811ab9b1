"""Everything the analytics page shows, as plain data: the admin renders it as HTML, JSON and CSV.

One read of the days (``daily.read_days``: per day, model and segment, with the causes) feeds the
per-model table, the causes, the trend and the split at the latest marker; the abandoned-agent
tally is read once per (day, model), and the comparison windows when they are asked for. So
the page costs a dozen small queries whatever the number of sessions.

What the page says first is the truth of now: with a trend marker, the rates since it beside
those before it ("since lazy sessions on: 0.0% (before: 36.2%)"), per model too; all-time comes
second. A figure that was not measured is None, never a number: before the abandoned-agent
tally's first day, abandoned rates are None ("not tracked").
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Sum
from django.utils import timezone

from agents_app.models import AbandonedAgentTally
from sessions_app.aggregates import fold_period
from sessions_app.analytics.abandoned import tally_covers, tally_first_day
from sessions_app.analytics.breakdown import CauseBreakdown, breakdown_of
from sessions_app.analytics.comparison import RateComparison, rate_comparison
from sessions_app.analytics.daily import DayRead, RollupStatus, read_days, rollup_status
from sessions_app.analytics.rates import EmptySessionReport, report_of
from sessions_app.analytics.trend import (
    check_bucket,
    default_bucket,
    latest_marker,
    partial_bucket,
    trend_markers,
)
from sessions_app.counts import TOTAL_KEY, RateRow, is_small_sample, model_key
from sessions_app.models import TrendMarker
from sessions_app.scope import Scope, midnight

# The chart's model lines: the busiest models and the worst by rate, the rest summed as "other".
TREND_MODELS = 5
OTHER_MODELS = "other models"


@dataclass(frozen=True)
class Line:
    """A line of the trend: one model (or the others summed), a ``RateRow`` per bucket."""

    name: str
    buckets: dict[str, RateRow]
    other: bool = False  # the models not drawn alone, summed
    worst: bool = False  # the model with the highest empty rate, drawn whatever its volume


@dataclass(frozen=True)
class Trend:
    """The trend per ``bucket``: a row per bucket (abandoned None where the tally did not exist),
    the bucket still filling (``partial``), and the chart's lines."""

    bucket: str
    rows: list[RateRow]
    partial: str | None
    lines: list[Line]


@dataclass(frozen=True)
class Split:
    """The page's sessions before and since the latest marker: in all and per model key."""

    marker: TrendMarker
    before: RateRow
    since: RateRow
    models: dict[str, tuple[RateRow, RateRow]]


@dataclass(frozen=True)
class AnalyticsPage:
    scope: Scope
    report: EmptySessionReport  # per model: the command's report
    split: Split | None  # None: no marker yet
    # Per model, the sessions since the tally's first day beside the agents it counted; None for
    # one profile: the tally has no profile, and every profile's agents beside one profile's
    # sessions would mislead.
    abandoned: EmptySessionReport | None
    tally_since: dt.date | None  # the tally's first day (None: empty)
    breakdown: CauseBreakdown  # per model, empty sessions per cause
    trend: Trend
    markers: list[TrendMarker]
    now: dt.datetime
    rollup: RollupStatus | None  # how far the daily rollup the page read goes (None: all live)
    using: str = DEFAULT_DB_ALIAS

    @cached_property
    def comparison(self) -> RateComparison:
        """Now versus before (``comparison.rate_comparison``) for the page's model, source and
        profile: read when first asked for (the HTML page shows it only without a marker; the
        JSON and CSV always carry it), so the page's own read need not split two more days."""
        return rate_comparison(scope=self.scope, now=self.now, using=self.using, rollup=self.rollup)


def analytics_page(
    scope: Scope, *, bucket: str | None = None, now: dt.datetime | None = None, using: str = DEFAULT_DB_ALIAS
) -> AnalyticsPage:
    """The page's numbers for ``scope``; ``bucket`` None picks ``default_bucket`` (weeks over long
    ranges). ``ValidationError`` for an unknown bucket."""
    if bucket is not None:
        check_bucket(bucket)
    now = now or timezone.now()
    status = rollup_status(using=using)
    marker = latest_marker(now, using=using)
    tally_since = tally_first_day(using=using)
    cuts = [marker.at] if marker is not None else []
    if tally_since is not None:
        cuts.append(midnight(tally_since))
    read = read_days(scope, dims=("model",), cuts=cuts, causes=True, now=now, using=using, status=status)
    first_day = min((row.day for row in read.rows), default=None)
    bucket = bucket or default_bucket(since=scope.since, until=scope.until, now=now, first_day=first_day)
    with_tally = scope.profile is None
    tally = _tally_days(scope, using) if with_tally else {}
    report = report_of("model", scope, read.rows)
    return AnalyticsPage(
        scope=scope,
        report=report,
        split=_split(read, marker, tally, tally_since, with_tally) if marker is not None else None,
        abandoned=_abandoned(read, report, tally, tally_since) if with_tally else None,
        tally_since=tally_since,
        breakdown=breakdown_of("model", scope, read.rows),
        trend=_trend(read, bucket, report, tally, tally_since, with_tally, now),
        markers=trend_markers(since=scope.since, until=scope.until, using=using),
        now=now,
        rollup=status,
        using=using,
    )


def _tally_days(scope: Scope, using: str) -> dict[tuple[dt.date, str], dict[str, int]]:
    """The abandoned-agent tally of the scope's model and source per (day, model key): ``{reason:
    agents}``; one query (the tally is small: a row per day, model, source and end reason)."""
    tallies = AbandonedAgentTally.objects.using(using).order_by()
    if scope.since is not None:
        tallies = tallies.filter(day__gte=scope.since.date())
    if scope.until is not None:
        tallies = tallies.filter(day__lte=scope.until.date())
    if scope.model is not None:
        tallies = tallies.filter(model__name=scope.model)
    if scope.source is not None:
        tallies = tallies.filter(source=scope.source)  # a KeyField: exact on every backend
    days = defaultdict(dict)
    rows = tallies.values("day", "model__name", "end_reason").annotate(n=Sum("count"))
    for day, name, reason, agents in rows.values_list("day", "model__name", "end_reason", "n"):
        day = day if isinstance(day, dt.date) else dt.date.fromisoformat(day)
        key = model_key(name)  # as the session rows key it: the rows line up
        days[day, key][reason] = days[day, key].get(reason, 0) + int(agents)
    return dict(days)


def _tally_in(tally, since: dt.datetime | None, until: dt.datetime | None, model: str | None = None) -> RateRow:
    """The tally's agents in ``[since, until)`` (a tally day counts when its midnight is in it, as
    in every report), of one model or all: a ``RateRow`` with only ``abandoned`` and reasons."""
    reasons: dict[str, int] = {}
    first = None if since is None else since.date() + dt.timedelta(days=since != midnight(since.date()))
    last = None if until is None else until.date() + dt.timedelta(days=until != midnight(until.date()))
    for (day, name), counts in tally.items():
        # Its midnight in [since, until): from the first midnight at or after since, to before until.
        if (first is None or day >= first) and (last is None or day < last) and (model is None or name == model):
            for reason, agents in counts.items():
                reasons[reason] = reasons.get(reason, 0) + agents
    return RateRow(TOTAL_KEY, abandoned=sum(reasons.values()), reasons=reasons)


def _sum(read: DayRead, since, until, model: str | None = None, key: str = TOTAL_KEY) -> RateRow:
    """The sessions of the read in ``[since, until)`` (cuts of the read), of one model or all."""
    totals = read.segment_totals
    sessions = empty = 0
    for segment in read.segments(since, until):
        pair = totals.get((model, segment))
        if pair:
            sessions += pair[0]
            empty += pair[1]
    return RateRow(key, sessions, empty)


def _with_abandoned(row: RateRow, tally, since, until, tally_since, with_tally, model=None) -> RateRow:
    """``row`` with the abandoned agents of ``[since, until)`` where the tally measured them."""
    if not with_tally or not tally_covers(since, tally_since):
        return RateRow(row.key, row.sessions, row.empty, None)
    agents = _tally_in(tally, since, until, model)
    return RateRow(row.key, row.sessions, row.empty, agents.abandoned, agents.reasons)


def _split(read: DayRead, marker: TrendMarker, tally, tally_since, with_tally) -> Split:
    """Before and since the marker, within the scope: in all and per model."""
    scope = read.scope
    before_range, since_range = (scope.since, marker.at), (marker.at, scope.until)

    def part(key, window, model=None):
        row = _sum(read, *window, model=model, key=key)
        return _with_abandoned(row, tally, *window, tally_since, with_tally, model)

    models = {m: (part("before", before_range, m), part("since", since_range, m)) for m in {r.model for r in read.rows}}
    return Split(marker=marker, before=part("before", before_range), since=part("since", since_range), models=models)


def _abandoned(read: DayRead, report: EmptySessionReport, tally, tally_since) -> EmptySessionReport:
    """Per model: the sessions since the tally's first day (all of them when it is empty) beside
    the agents it counted, so both sides of each rate cover the same days."""
    since = midnight(tally_since) if tally_since is not None else None
    if since is not None and read.scope.since is not None:
        since = max(since, read.scope.since)
    rows = {}
    for (_, name), _reasons in tally.items():
        rows.setdefault(name, None)
    for row in report.rows:
        rows.setdefault(row.key, None)
    joined = []
    for name in sorted(rows):
        sessions = _sum(read, since, None, model=name, key=name)
        agents = _tally_in(tally, since, None, name)
        joined.append(RateRow(name, sessions.sessions, sessions.empty, agents.abandoned, agents.reasons))
    total_sessions = _sum(read, since, None)
    agents = _tally_in(tally, since, None)
    total = RateRow(TOTAL_KEY, total_sessions.sessions, total_sessions.empty, agents.abandoned, agents.reasons)
    filters = read.scope.but(since=since).as_dict() if since is not None else read.scope.as_dict()
    return EmptySessionReport(by="model", filters=filters, rows=joined, total=total, abandoned=True)


def _trend(read: DayRead, bucket: str, report, tally, tally_since, with_tally, now) -> Trend:
    """Per bucket: sessions, empty sessions and (where measured) abandoned agents; the lines."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_model: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for row in read.rows:
        key = fold_period(row.day.isoformat(), bucket)
        totals[key][0] += row.sessions
        totals[key][1] += row.empty
        per_model[row.model][key][0] += row.sessions
        per_model[row.model][key][1] += row.empty
    abandoned: dict[str, dict[str, int]] = defaultdict(dict)
    for (day, _), reasons in tally.items():
        key = fold_period(day.isoformat(), bucket)
        for reason, agents in reasons.items():
            abandoned[key][reason] = abandoned[key].get(reason, 0) + agents
    rows = []
    for key in sorted(totals.keys() | abandoned.keys()):  # a bucket with agents but no session still gets its row
        measured = with_tally and tally_covers(midnight(dt.date.fromisoformat(key)), tally_since)
        reasons = abandoned.get(key, {})
        count = sum(reasons.values()) if measured else None
        rows.append(RateRow(key, *totals.get(key, (0, 0)), count, reasons if measured else {}))
    partial = partial_bucket(bucket, until=read.scope.until, now=now)
    return Trend(
        bucket=bucket,
        rows=rows,
        partial=partial if rows and rows[-1].key == partial else None,
        lines=_lines(report, per_model),
    )


def _lines(report: EmptySessionReport, per_model) -> list[Line]:
    """The busiest models and the one with the highest empty rate (among those with enough
    sessions for the rate to mean something, else among all), at most ``TREND_MODELS`` lines of
    single models; the rest summed as "other models"."""
    by_volume = sorted(report.rows, key=lambda row: (-row.sessions, -row.rate, row.key))
    sized = [row for row in report.rows if not is_small_sample(row.sessions)] or report.rows
    worst = max(sized, key=lambda row: (row.rate, row.sessions), default=None)
    drawn = [row.key for row in by_volume[:TREND_MODELS]]
    if worst is not None and worst.empty and worst.key not in drawn:
        drawn = [*drawn[: TREND_MODELS - 1], worst.key]
    lines = [
        Line(
            name,
            {b: RateRow(b, *pair) for b, pair in per_model.get(name, {}).items()},
            worst=worst is not None and name == worst.key,
        )
        for name in drawn
    ]
    other: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, buckets in per_model.items():
        if name not in drawn:
            for key, (sessions, empty) in buckets.items():
                other[key][0] += sessions
                other[key][1] += empty
    if other:
        lines.append(Line(OTHER_MODELS, {b: RateRow(b, *pair) for b, pair in other.items()}, other=True))
    return lines
