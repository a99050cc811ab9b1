"""Now versus before: the recent empty-session and abandoned-agent rates beside earlier ones.

The all-time rate mixes the weeks before a fix with the weeks after it. ``rate_comparison`` puts
the last ``RECENT`` (7 days up to now) beside a period of the same length before it, or, when a
``TrendMarker`` (a deployment, a model switch) is older than that, the same length before the
latest marker, so "before" is the state the marker ended. A marker inside the last 7 days starts
"now" instead (the days since it are not mixed with the days before it).

Each window is a ``RateRow`` (keys ``now`` and ``before``); its abandoned figures are None where
the abandoned-agent tally did not exist yet (``abandoned.tally_covers``).
"""

import datetime as dt
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from sessions_app.analytics.abandoned import abandoned_agent_counts, tally_covers, tally_first_day
from sessions_app.analytics.daily import READ_STATUS, read_days
from sessions_app.analytics.trend import latest_marker
from sessions_app.counts import RateRow
from sessions_app.models import TrendMarker
from sessions_app.scope import Scope

RECENT = dt.timedelta(days=7)
WINDOWS = ("before", "now")


@dataclass(frozen=True)
class RateComparison:
    """The recent window, the one it is compared with, their ranges, and the marker that set the
    boundary (or None)."""

    now: RateRow
    before: RateRow
    ranges: dict[str, tuple[dt.datetime, dt.datetime]]  # window -> (since, until)
    marker: TrendMarker | None

    @property
    def change(self) -> float | None:
        """Empty rate now minus before, as a fraction (negative: fewer empty sessions now); None
        unless both windows have sessions."""
        if not (self.now.sessions and self.before.sessions):
            return None
        return self.now.rate - self.before.rate

    @property
    def abandoned_change(self) -> float | None:
        """Abandoned rate now minus before; None unless both were measured and saw agents."""
        if not (self.now.agents and self.before.agents):
            return None
        return self.now.abandoned_rate - self.before.abandoned_rate

    def as_dict(self) -> dict:
        marker = None
        if self.marker is not None:
            marker = {"at": self.marker.at.isoformat(), "label": self.marker.label, "note": self.marker.note}
        windows = {}
        for name in WINDOWS:
            window = getattr(self, name).as_dict(abandoned=True, nullable=True)
            del window["key"]
            since, until = self.ranges[name]
            windows[name] = {"since": since.isoformat(), "until": until.isoformat(), **window}
        return {**windows, "marker": marker, "change": self.change, "abandoned_change": self.abandoned_change}


def comparison_ranges(now: dt.datetime, marker: TrendMarker | None) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """The two windows (see the module docstring)."""
    recent_start = now - RECENT
    if marker is None:
        before_until = recent_start
    elif marker.at > recent_start:
        recent_start = before_until = marker.at
    else:
        before_until = marker.at
    return {"before": (before_until - RECENT, before_until), "now": (recent_start, now)}


def rate_comparison(
    *,
    source: str | None = None,
    now: dt.datetime | None = None,
    using: str = DEFAULT_DB_ALIAS,
    scope: Scope | None = None,
    rollup=READ_STATUS,
) -> RateComparison:
    """The last 7 days beside the 7 days before them, or before the latest marker (see the module
    docstring). ``source`` (or the model, source and profile of ``scope``; its dates do not apply)
    filters both windows, exactly. One read of the days and one of the tally."""
    now = now or timezone.now()
    scope = (scope or Scope(source=source)).but(since=None, until=None)
    marker = latest_marker(now, using=using)
    ranges = comparison_ranges(now, marker)
    first_day = tally_first_day(using=using)
    windows = {name: window(scope, since, until, first_day, using=using, rollup=rollup, key=name)
               for name, (since, until) in ranges.items()}  # fmt: skip
    return RateComparison(now=windows["now"], before=windows["before"], ranges=ranges, marker=marker)


def window(scope: Scope, since, until, first_day, *, using: str, rollup=READ_STATUS, key: str = "") -> RateRow:
    """The sessions of ``scope`` in ``[since, until)`` and, where the tally covers them and the
    scope has no profile, the agents that ended without a message then."""
    part = scope.within(since, until) if since < until else None
    if part is None:  # a marker at this very instant: nothing yet
        return RateRow(key, 0, 0, 0 if tally_covers(since, first_day) and scope.profile is None else None)
    rows = read_days(part, dims=(), using=using, status=rollup, days=False).rows
    abandoned = None
    if scope.profile is None and tally_covers(since, first_day):
        counts = abandoned_agent_counts(
            "source", since=since, until=until, model=scope.model, source=scope.source, using=using
        )
        abandoned = sum(sum(reasons.values()) for reasons in counts.values())
    return RateRow(key, sum(row.sessions for row in rows), sum(row.empty for row in rows), abandoned)
