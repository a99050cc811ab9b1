"""Empty sessions per model, source, profile or period, crossed with why they are empty.

``empty_cause_breakdown`` is ``empty_session_rates`` with each row's empty sessions split by
cause (``analytics.causes``): the same groups, keys and numbers, the causes adding up to
``empty`` in every row.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections

from sessions_app.analytics.causes import CAUSES, cause_counts
from sessions_app.analytics.filters import KEY_GROUPINGS, check_grouping, model_name
from sessions_app.analytics.rates import EmptySessionReport, RateRow, empty_session_rates, group_expression, group_key
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
    profile, day, week or month); filters and ``ValidationError`` as ``empty_session_rates``,
    ``now``/``grace`` as its ``by="cause"``. Two aggregate queries: the report itself (from the
    covering indexes), and the causes over the empty sessions only, whose rows they need."""
    check_grouping(by, KEY_GROUPINGS)
    report = empty_session_rates(by, since=since, until=until, model=model, source=source, profile=profile, using=using)
    return breakdown_of(report, now=now, grace=grace, using=using)


def breakdown_of(
    report: EmptySessionReport,
    *,
    now: dt.datetime | None = None,
    grace: dt.timedelta | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> CauseBreakdown:
    """``report`` (an ``empty_session_rates`` report, or one summed from the trend) with each row's
    empty sessions split by cause: one query over the empty sessions of the report's filters."""
    by = report.by
    sessions = Session.objects.using(using).order_by().matching(**report.filters).empty()
    if by == "model":
        counts = sessions.values("model").annotate(**cause_counts(stale_before(now, grace)))
        counts = counts.annotate(group=model_name())
    else:
        groups = sessions.annotate(group=group_expression(by, connections[using])).values("group")
        counts = groups.annotate(**cause_counts(stale_before(now, grace)))
    per_key: dict[str, dict[str, int]] = {row.key: dict.fromkeys(CAUSES, 0) for row in report.rows}
    for row in counts:
        causes = per_key[group_key(by, row["group"])]
        for cause in CAUSES:
            causes[cause] += row[cause]
    total = {cause: sum(causes[cause] for causes in per_key.values()) for cause in CAUSES}
    return CauseBreakdown(report=report, causes=per_key, total=total)


def empty_cause_counts(by: str = "model", **filters) -> dict[str, dict[str, int]]:
    """``{key: {cause: empty sessions}}`` per ``by`` group (``empty_cause_breakdown``'s arguments)."""
    return empty_cause_breakdown(by, **filters).causes
