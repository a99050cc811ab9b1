"""Empty-session rates: sessions and empty sessions per model, source, profile, period or cause.

Every grouping reads ``daily.read_days``: whole days from the rollup, the rest live, so a report
costs a few small queries whatever the number of sessions. The conventions (UTC buckets keyed by
their first day, ``NO_MODEL_KEY``, rows by key) are those of the package docstring.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS

from sessions_app.aggregates import fold_period
from sessions_app.analytics.daily import DayCount, read_days
from sessions_app.analytics.filters import GROUPINGS, check_grouping
from sessions_app.counts import NO_MODEL_KEY, TOTAL_KEY, RateRow
from sessions_app.querysets import CAUSES
from sessions_app.scope import FILTER_NAMES, Scope

__all__ = ["FILTER_NAMES", "GROUPINGS", "NO_MODEL_KEY", "TOTAL_KEY", "EmptySessionReport", "RateRow"]


@dataclass(frozen=True)
class EmptySessionReport:
    """A report: the grouping, the filters applied (normalised), the rows by key, and their total.
    ``abandoned``: the rows carry the abandoned-agent tally's figures (``abandoned_agent_rates``)."""

    by: str
    filters: dict
    rows: list[RateRow]
    total: RateRow
    abandoned: bool = field(default=False, kw_only=True)

    @property
    def scope(self) -> Scope:
        return Scope(**{name: self.filters.get(name) for name in FILTER_NAMES})

    def as_dict(self) -> dict:
        """The JSON shape of ARCHITECTURE.md (``rate`` a full-precision fraction)."""
        filters = {name: self.filters.get(name) for name in FILTER_NAMES}
        for name in ("since", "until"):
            if filters[name] is not None:
                filters[name] = filters[name].isoformat()
        total = self.total.as_dict(abandoned=self.abandoned)
        del total["key"]
        rows = [row.as_dict(abandoned=self.abandoned) for row in self.rows]
        return {"by": self.by, "filters": filters, "total": total, "rows": rows}

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
    """Sessions and empty sessions per ``by`` group, plus their total.

    ``model``, ``source`` and ``profile`` filter by exact (case- and space-sensitive) match on
    every backend; without ``profile`` every profile is counted (``by="profile"`` splits them).
    ``by="cause"``: a row per cause (``analytics.causes``, every cause even at 0), its ``empty``
    the empty sessions of that cause and its ``sessions`` all the sessions in scope, so its rate
    is that cause's share of them; the total is the usual one. ``now`` and ``grace`` (default:
    the current time and ``HERMES_OPEN_GRACE``) only matter there.
    Raises ``ValidationError`` for an unknown grouping, a bad bound or ``since >= until``.
    A few small queries (``daily.read_days``), whatever the number of sessions.
    """
    check_grouping(by)
    scope = Scope(since=since, until=until, model=model, source=source, profile=profile)
    return scope_rates(scope, by, using=using, now=now, grace=grace)


def scope_rates(
    scope: Scope, by: str, *, using: str = DEFAULT_DB_ALIAS, now: dt.datetime | None = None, grace=None
) -> EmptySessionReport:
    """``empty_session_rates`` for a checked ``Scope`` (the grouping checked by the caller)."""
    if by == "cause":
        rows = read_days(scope, dims=(), causes=True, now=now, grace=grace, using=using, days=False).rows
        sessions = sum(row.sessions for row in rows)
        causes = {cause: sum(getattr(row, cause) for row in rows) for cause in CAUSES}
        report_rows = [RateRow(cause, sessions, causes[cause]) for cause in sorted(causes)]
        total = RateRow(TOTAL_KEY, sessions, sum(causes.values()))
        return EmptySessionReport(by, scope.as_dict(), report_rows, total)
    dims = (by,) if by in ("model", "source", "profile") else ()
    return report_of(by, scope, read_days(scope, dims=dims, using=using, days=not dims).rows)


def row_key(row: DayCount, by: str) -> str:
    """The report key of a ``DayCount`` for grouping ``by`` (its model, source, profile or period)."""
    if by in ("model", "source", "profile"):
        return getattr(row, by)
    return fold_period(row.day.isoformat(), by)


def report_of(by: str, scope: Scope, rows) -> EmptySessionReport:
    """The report ``by`` a grouping of ``DayCount`` rows read for ``scope``: rows in key order, total."""
    counts = defaultdict(lambda: [0, 0])
    for row in rows:
        pair = counts[row_key(row, by)]
        pair[0] += row.sessions
        pair[1] += row.empty
    return build_report(by, scope.as_dict(), {key: tuple(pair) for key, pair in counts.items()})


def build_report(by: str, filters: dict, counts: dict) -> EmptySessionReport:
    """A report from ``{key: (sessions, empty)}`` and normalised ``filters``: rows in key order and
    their total, as ``empty_session_rates`` returns them."""
    rows = [RateRow(key, *counts[key]) for key in sorted(counts)]
    total = RateRow(TOTAL_KEY, sum(row.sessions for row in rows), sum(row.empty for row in rows))
    return EmptySessionReport(by=by, filters=filters, rows=rows, total=total)
