"""Empty sessions per model, source, profile or period, crossed with why they are empty, in one query.

``empty_cause_breakdown`` is ``empty_session_rates`` with each row's empty sessions split by
cause (``analytics.causes``): the same groups, keys and numbers, the causes adding up to
``empty`` in every row.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Count, Min

from sessions_app.analytics.causes import CAUSES, cause_counts
from sessions_app.analytics.filters import KEY_GROUPINGS, check_grouping, report_filters
from sessions_app.analytics.rates import EmptySessionReport, RateRow, build_report, group_expression, group_key
from sessions_app.models import Session
from sessions_app.querysets import stale_before


@dataclass(frozen=True)
class CauseBreakdown:
    """A rates report and, per row key and for the total, ``{cause: empty sessions}`` (every cause)."""

    report: EmptySessionReport
    causes: dict[str, dict[str, int]]
    total: dict[str, int]

    @property
    def by(self) -> str:
        return self.report.by

    @property
    def rows(self) -> list[RateRow]:
        return self.report.rows

    def as_dict(self) -> dict:
        """The report's JSON shape, with a ``causes`` object (``{cause: count}``) on each row and the total."""
        data = self.report.as_dict()
        data["total"]["causes"] = self.total
        for row in data["rows"]:
            row["causes"] = self.causes[row["key"]]
        return data


def empty_cause_breakdown(
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
) -> CauseBreakdown:
    """Sessions, empty sessions and empty sessions per cause for each ``by`` group (model, source,
    profile, day, week or month), in one aggregate query; filters and ``ValidationError`` as
    ``empty_session_rates``, ``now``/``grace`` as its ``by="cause"``."""
    check_grouping(by, KEY_GROUPINGS)
    filters = report_filters(since=since, until=until, model=model, source=source, profile=profile)
    sessions = Session.objects.using(using).order_by().matching(**filters)
    if by == "model":
        groups = sessions.values("model").annotate(group=Min("model__name"))
    else:
        groups = sessions.annotate(group=group_expression(by, connections[using])).values("group")
    counts = groups.annotate(sessions=Count("pk"), **cause_counts(stale_before(now, grace)))
    totals: dict[str, int] = defaultdict(int)
    per_key: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(CAUSES, 0))
    for row in counts:
        key = group_key(by, row["group"])
        totals[key] += row["sessions"]
        for cause in CAUSES:
            per_key[key][cause] += row[cause]
    report = build_report(by, filters, {key: (totals[key], sum(per_key[key].values())) for key in totals})
    total = {cause: sum(causes[cause] for causes in per_key.values()) for cause in CAUSES}
    return CauseBreakdown(report=report, causes=dict(per_key), total=total)


def empty_cause_counts(by: str = "model", **filters) -> dict[str, dict[str, int]]:
    """``{key: {cause: empty sessions}}`` per ``by`` group (``empty_cause_breakdown``'s arguments)."""
    return empty_cause_breakdown(by, **filters).causes
