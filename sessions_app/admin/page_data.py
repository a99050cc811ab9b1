"""Everything the analytics page shows, as plain data: the HTML page renders it, and
``?format=json``/``?format=csv`` export it (``exports``), so the downloads carry what the page shows.

One grouped query per (bucket, model) feeds the trend and, summed, the per-model table
(``report_from_trend``: the same numbers as ``empty_session_rates``); the abandoned-agent tally,
the causes, the comparison and the markers are a few small queries more.
"""

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from sessions_app import reporting
from sessions_app.admin.trend import partial_bucket, trend_lines
from sessions_app.analytics import (
    AbandonedAgentReport,
    CauseBreakdown,
    EmptySessionReport,
    RateComparison,
    RollupStatus,
    abandoned_agent_counts,
    breakdown_of,
    bucket_totals,
    default_bucket,
    empty_rate_trend,
    model_buckets,
    rate_comparison,
    report_from_trend,
    rollup_status,
    trend_markers,
    wilson_interval,
    with_abandoned,
)

BUCKETS = {"day": dt.timedelta(days=1), "week": dt.timedelta(weeks=1)}


@dataclass(frozen=True)
class TrendRow:
    """One bucket of the trend: its sessions, empty sessions and abandoned agents, per line too."""

    key: str
    sessions: int
    empty: int
    abandoned: int
    partial: bool
    lines: dict[str, tuple[int, int]]  # {line name: (sessions, empty)}, the chart's model lines

    @property
    def rate(self) -> float:
        return self.empty / self.sessions if self.sessions else 0.0

    @property
    def agents(self) -> int:
        return self.sessions + self.abandoned

    @property
    def abandoned_rate(self) -> float:
        return self.abandoned / self.agents if self.agents else 0.0

    def as_dict(self) -> dict:
        low, high = wilson_interval(self.empty, self.sessions)
        abandoned_low, abandoned_high = wilson_interval(self.abandoned, self.agents)
        return {
            "key": self.key,
            "sessions": self.sessions,
            "empty": self.empty,
            "rate": self.rate,
            "rate_low": low,
            "rate_high": high,
            "abandoned": self.abandoned,
            "agents": self.agents,
            "abandoned_rate": self.abandoned_rate,
            "abandoned_rate_low": abandoned_low,
            "abandoned_rate_high": abandoned_high,
            "partial": self.partial,
            "models": {
                name: {"sessions": s, "empty": e, "rate": e / s if s else 0.0} for name, (s, e) in self.lines.items()
            },
        }


@dataclass(frozen=True)
class PageData:
    report: EmptySessionReport  # per model, the command's report
    # Per model, sessions joined with the abandoned-agent tally; None for one profile: the tally
    # has no profile, and every profile's agents beside one profile's sessions would mislead.
    abandoned: AbandonedAgentReport | None
    breakdown: CauseBreakdown  # per model, empty sessions per cause
    bucket: str
    trend: list[TrendRow]
    lines: list[tuple[str, str, dict]]  # the chart's model lines (``trend.trend_lines``)
    partial: str | None  # the bucket still filling, if the trend shows it
    comparison: RateComparison
    markers: list
    now: dt.datetime
    rollup: RollupStatus | None  # how far the daily rollup the trend read goes (None: all live)


def page_data(*, since=None, until=None, source=None, profile=None, bucket=None, now=None) -> PageData:
    """The page's numbers for its filters; ``bucket`` None picks ``default_bucket`` (weeks over
    long ranges). ``ValidationError`` for bad filters, as ``empty_session_rates``."""
    now = now or timezone.now()
    bucket = bucket or default_bucket(since=since, until=until, source=source, now=now)
    rollup = rollup_status()  # read once: the trend uses it and the page says how far it goes
    points = empty_rate_trend(bucket, since=since, until=until, source=source, profile=profile, rollup=rollup)
    report = report_from_trend(points, since=since, until=until, source=source, profile=profile)
    filters = report.filters
    tally_filters = {name: value for name, value in filters.items() if name != "profile"}
    abandoned_by_bucket = {}
    if profile is None:
        counts = abandoned_agent_counts(bucket, **tally_filters)
        abandoned_by_bucket = {key: sum(reasons.values()) for key, reasons in counts.items()}
    sessions_per_bucket = bucket_totals(points)
    busiest = [row.key for row in reporting.sort_rows(report.rows, "sessions")]
    lines = trend_lines(model_buckets(points), busiest)
    partial = partial_bucket(bucket, BUCKETS[bucket], until=filters["until"], now=now)
    trend = []
    # A bucket with abandoned agents but no session still gets its row.
    for key in sorted(sessions_per_bucket | abandoned_by_bucket):
        sessions, empty = sessions_per_bucket.get(key, (0, 0))
        per_line = {name: buckets.get(key, (0, 0)) for name, _, buckets in lines}
        trend.append(TrendRow(key, sessions, empty, abandoned_by_bucket.get(key, 0), key == partial, per_line))
    return PageData(
        report=report,
        abandoned=None if profile else with_abandoned(report, abandoned_agent_counts("model", **tally_filters)),
        breakdown=breakdown_of(report, now=now),  # the report summed from the trend: not read twice
        bucket=bucket,
        trend=trend,
        lines=lines,
        partial=partial if trend and trend[-1].key == partial else None,
        comparison=rate_comparison(source=filters["source"], now=now),
        markers=trend_markers(since=filters["since"], until=filters["until"]),
        now=now,
        rollup=rollup,
    )
