"""Now versus before: the recent empty-session and abandoned-agent rates beside earlier ones.

The all-time rate mixes the weeks before a fix with the weeks after it. ``rate_comparison`` puts
the last ``RECENT`` (7 days up to now) beside a period of the same length before it, or, when a
``TrendMarker`` (a deployment, a model switch) is older than that, the same length before the
latest marker, so "before" is the state the marker ended. A marker inside the last 7 days starts
"now" instead (the days since it are not mixed with the days before it).
"""

import datetime as dt
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from sessions_app.analytics.abandoned import abandoned_agent_counts
from sessions_app.analytics.intervals import wilson_interval
from sessions_app.analytics.rates import empty_session_rates
from sessions_app.models import TrendMarker

RECENT = dt.timedelta(days=7)


@dataclass(frozen=True)
class Window:
    """A period's sessions, empty sessions and abandoned agents (``since`` inclusive, ``until`` exclusive)."""

    since: dt.datetime
    until: dt.datetime
    sessions: int
    empty: int
    abandoned: int

    @property
    def rate(self) -> float:
        return self.empty / self.sessions if self.sessions else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.empty, self.sessions)

    @property
    def agents(self) -> int:
        return self.sessions + self.abandoned

    @property
    def abandoned_rate(self) -> float:
        return self.abandoned / self.agents if self.agents else 0.0

    @property
    def abandoned_interval(self) -> tuple[float, float]:
        return wilson_interval(self.abandoned, self.agents)

    def as_dict(self) -> dict:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "sessions": self.sessions,
            "empty": self.empty,
            "rate": self.rate,
            "rate_low": self.interval[0],
            "rate_high": self.interval[1],
            "abandoned": self.abandoned,
            "agents": self.agents,
            "abandoned_rate": self.abandoned_rate,
            "abandoned_rate_low": self.abandoned_interval[0],
            "abandoned_rate_high": self.abandoned_interval[1],
        }


@dataclass(frozen=True)
class RateComparison:
    """The recent window, the one it is compared with, and the marker that set the boundary (or None)."""

    now: Window
    before: Window
    marker: TrendMarker | None

    @property
    def change(self) -> float:
        """Empty rate now minus before, as a fraction (negative: fewer empty sessions now)."""
        return self.now.rate - self.before.rate

    @property
    def abandoned_change(self) -> float:
        return self.now.abandoned_rate - self.before.abandoned_rate

    def as_dict(self) -> dict:
        marker = None
        if self.marker is not None:
            marker = {"at": self.marker.at.isoformat(), "label": self.marker.label, "note": self.marker.note}
        return {
            "now": self.now.as_dict(),
            "before": self.before.as_dict(),
            "marker": marker,
            "change": self.change,
            "abandoned_change": self.abandoned_change,
        }


def rate_comparison(
    *, source: str | None = None, now: dt.datetime | None = None, using: str = DEFAULT_DB_ALIAS
) -> RateComparison:
    """The last 7 days beside the 7 days before them, or before the latest marker (see the module
    docstring); four aggregate queries. ``source`` filters both windows (exact match)."""
    now = now or timezone.now()
    recent_start = now - RECENT
    marker = TrendMarker.objects.using(using).drawable().filter(at__lte=now).order_by("-at", "-id").first()
    if marker is None:
        before_until = recent_start
    elif marker.at > recent_start:
        recent_start = before_until = marker.at
    else:
        before_until = marker.at
    before = _window(before_until - RECENT, before_until, source, using)
    return RateComparison(now=_window(recent_start, now, source, using), before=before, marker=marker)


def _window(since: dt.datetime, until: dt.datetime, source: str | None, using: str) -> Window:
    if since >= until:  # a marker at this very instant: nothing yet
        return Window(since, until, 0, 0, 0)
    total = empty_session_rates("source", since=since, until=until, source=source, using=using).total
    counts = abandoned_agent_counts("source", since=since, until=until, source=source, using=using)
    abandoned = sum(sum(reasons.values()) for reasons in counts.values())
    return Window(since, until, total.sessions, total.empty, abandoned)
