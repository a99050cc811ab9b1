"""Empty sessions per model, source, profile or period, crossed with why they are empty.

``empty_cause_breakdown`` is ``empty_session_rates`` with each row's empty sessions split by
cause (``analytics.causes``): the same groups, keys and numbers, the causes adding up to
``empty`` in every row, from one read of the days (``daily.read_days`` with the causes).
"""

import datetime as dt
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS

from sessions_app.analytics.daily import read_days
from sessions_app.analytics.filters import KEY_GROUPINGS, check_grouping
from sessions_app.analytics.rates import EmptySessionReport, report_of, row_key
from sessions_app.counts import RateRow
from sessions_app.querysets import CAUSES
from sessions_app.scope import Scope


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
    ``now``/``grace`` as its ``by="cause"``."""
    check_grouping(by, KEY_GROUPINGS)
    scope = Scope(since=since, until=until, model=model, source=source, profile=profile)
    dims = (by,) if by in ("model", "source", "profile") else ()
    rows = read_days(scope, dims=dims, causes=True, now=now, grace=grace, using=using, days=not dims).rows
    return breakdown_of(by, scope, rows)


def breakdown_of(by: str, scope: Scope, rows) -> CauseBreakdown:
    """The breakdown ``by`` a grouping of ``DayCount`` rows read with their causes."""
    report = report_of(by, scope, rows)
    per_key = {row.key: dict.fromkeys(CAUSES, 0) for row in report.rows}
    for row in rows:
        causes = per_key[row_key(row, by)]
        for cause in CAUSES:
            causes[cause] += getattr(row, cause)
    total = {cause: sum(causes[cause] for causes in per_key.values()) for cause in CAUSES}
    return CauseBreakdown(report=report, causes=per_key, total=total)


def empty_cause_counts(by: str = "model", **filters) -> dict[str, dict[str, int]]:
    """``{key: {cause: empty sessions}}`` per ``by`` group (``empty_cause_breakdown``'s arguments)."""
    return empty_cause_breakdown(by, **filters).causes
