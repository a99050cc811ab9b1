"""Abandoned-agent analytics: which model's agents end before saving a single message.

Before lazy session creation, such an agent left an empty session, so the empty-session rate
doubled as a health signal. Now it leaves only a count in ``AbandonedAgentTally`` (per UTC day,
model, source and end reason). This module puts the two side by side, per model, source or
period, so the signal reads the same before and after the fix:

- ``abandoned``: agents counted in the tally (ended without a message, after the fix);
- ``sessions`` and ``empty``: sessions started, and those without a message row (legacy waste,
  the same numbers as ``empty_session_rates``);
- ``rate`` = empty / sessions, as everywhere; ``abandoned_rate`` = abandoned / (abandoned +
  sessions): the share of agents that never spoke and left no session;
- ``silent_rate`` = (empty + abandoned) / (sessions + abandoned): agents that never spoke, whether
  they left an empty session (before the fix) or only a tally count (after it).

Conventions are those of ``empty_session_rates`` (UTC buckets keyed by their first day, exact
``model``/``source`` match, ``since`` inclusive and ``until`` exclusive). The tally has day
resolution: a tally day is counted when its start (midnight UTC) lies in ``[since, until)``; a
tally day is the day the agent *ended*, a session's day the day it *started*. Agents dropped
without ``end()`` are not counted (see ``Agent.end``).

The tally has no profile column (an abandoned agent leaves no session to carry one), so these
reports refuse ``profile=`` and ``by="profile"`` with a ``ValidationError`` rather than put one
profile's sessions beside every profile's abandoned agents; they count every profile.

The tally's first day (``tally_first_day``) bounds what it can say: a period that starts before
it was not measured, and its abandoned figures are None ("not tracked"), never a number.
"""

import datetime as dt
from collections import defaultdict

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS
from django.db.models import F, Min, Sum

from agents_app.models import AbandonedAgentTally
from sessions_app.aggregates import fold_period
from sessions_app.analytics.filters import KEY_GROUPINGS, check_grouping
from sessions_app.analytics.rates import EmptySessionReport, empty_session_rates
from sessions_app.counts import TOTAL_KEY, RateRow, model_key
from sessions_app.scope import Scope, midnight


def tally_first_day(*, using: str = DEFAULT_DB_ALIAS) -> dt.date | None:
    """The first day the abandoned-agent tally has (its unique key starts with the day: one index
    probe); None when it is empty."""
    return AbandonedAgentTally.objects.using(using).aggregate(first=Min("day"))["first"]


def tally_covers(since: dt.datetime | None, first_day: dt.date | None) -> bool:
    """Whether the tally measured a period starting at ``since`` (None: from the very first
    session): the tally existed on its first counted day. An empty tally measured nothing either
    way: its zeros are taken at their word."""
    if first_day is None:
        return True
    return since is not None and since >= midnight(first_day)


def abandoned_agent_rates(
    by: str = "model",
    *,
    since: dt.date | dt.datetime | None = None,
    until: dt.date | dt.datetime | None = None,
    model: str | None = None,
    source: str | None = None,
    profile: str | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> EmptySessionReport:
    """Sessions, empty sessions and abandoned agents per ``by`` group (``model``, ``source``,
    ``day``, ``week``, ``month``), plus their total: two aggregate queries (sessions, tally).

    Arguments and errors (``ValidationError``) are those of ``empty_session_rates``, except that
    ``profile`` and ``by="profile"`` are refused: the tally has no profile.
    """
    _refuse_profile(by, profile)
    sessions_report = empty_session_rates(by, since=since, until=until, model=model, source=source, using=using)
    counts = abandoned_agent_counts(by, **sessions_report.filters, using=using)
    return with_abandoned(sessions_report, counts, first_day=tally_first_day(using=using))


def with_abandoned(
    report: EmptySessionReport, counts: dict[str, dict[str, int]], *, first_day: dt.date | None = None
) -> EmptySessionReport:
    """Join an empty-session report and ``abandoned_agent_counts`` of the same grouping and filters:
    the same report, each row (and the total) with its abandoned agents and their end reasons. A
    period (day, week, month) that starts before the tally's ``first_day`` was not measured: its
    abandoned figures are None."""
    by_key = {row.key: row for row in report.rows}
    rows = []
    for key in sorted(by_key.keys() | counts.keys()):
        reasons = counts.get(key, {})
        row = by_key.get(key, RateRow(key))
        if report.by in ("day", "week", "month") and not tally_covers(_period_start(key), first_day):
            rows.append(RateRow(key, row.sessions, row.empty, None))
            continue
        rows.append(RateRow(key, row.sessions, row.empty, sum(reasons.values()), reasons))
    all_reasons: dict[str, int] = defaultdict(int)
    for reasons in counts.values():
        for reason, count in reasons.items():
            all_reasons[reason] += count
    total = RateRow(TOTAL_KEY, report.total.sessions, report.total.empty, sum(all_reasons.values()), dict(all_reasons))
    return EmptySessionReport(by=report.by, filters=report.filters, rows=rows, total=total, abandoned=True)


def abandoned_agent_counts(
    by: str = "model",
    *,
    since: dt.date | dt.datetime | None = None,
    until: dt.date | dt.datetime | None = None,
    model: str | None = None,
    source: str | None = None,
    profile: str | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> dict[str, dict[str, int]]:
    """Abandoned agents per group key and end reason, ``{key: {reason: agents}}``, in one grouped
    query over the tally (keys as in ``empty_session_rates``; groups without agents are absent).
    Arguments are checked as ``empty_session_rates`` checks them (``ValidationError``); a
    ``profile`` other than None and ``by="profile"`` are refused (``_refuse_profile``)."""
    _refuse_profile(by, profile)
    check_grouping(by, KEY_GROUPINGS)
    scope = Scope(since=since, until=until, model=model, source=source)
    since, until, model, source = scope.since, scope.until, scope.model, scope.source
    tallies = AbandonedAgentTally.objects.using(using).order_by()
    if since is not None:
        first = _first_day_from(since)
        tallies = tallies.filter(day__gte=first) if first else tallies.none()
    if until is not None:
        first = _first_day_from(until)
        tallies = tallies.filter(day__lt=first) if first else tallies
    if model is not None:
        tallies = tallies.filter(model__name=model)
    if source is not None:
        tallies = tallies.filter(source=source)
    if by == "model":
        group = F("model__name")
    elif by == "source":
        group = F("source")
    else:
        group = F("day")  # a few rows per day: bucketed into weeks and months below
    rows = (
        tallies.annotate(group=group)
        .values("group", "end_reason")
        .annotate(agents=Sum("count"))
        .values_list("group", "end_reason", "agents")
    )
    result: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for group_value, reason, agents in rows:
        result[_key(by, group_value)][reason] += int(agents)
    return {key: dict(reasons) for key, reasons in result.items()}


def _refuse_profile(by: str, profile) -> None:
    """``ValidationError`` for ``by="profile"`` or a ``profile`` filter: the abandoned-agent tally
    has no profile, so it can neither split nor narrow its counts by one."""
    if by == "profile":
        raise ValidationError(
            {"by": "the abandoned-agent tally has no profile; group it by model, source, day, week or month."},
            code="invalid_choice",
        )
    if profile is not None:
        raise ValidationError(
            {"profile": "the abandoned-agent tally has no profile; leave the profile out to count every profile."},
            code="invalid",
        )


def _period_start(key: str) -> dt.datetime:
    """The first instant of a period key (``2026-01-05`` or a month, ``2026-01``)."""
    return midnight(dt.date.fromisoformat(key if len(key) == 10 else f"{key}-01"))


def _first_day_from(bound: dt.datetime) -> dt.date | None:
    """The first UTC day whose midnight is at or after ``bound`` (an aware UTC datetime); None
    when that day would be past the last date there is."""
    day = bound.date()
    if bound.time() == dt.time(0):
        return day
    return None if day == dt.date.max else day + dt.timedelta(days=1)


def _key(by: str, value) -> str:
    if by == "model":
        return model_key(value)  # as the session reports key it: the rows line up
    if by == "source":
        return value
    # A tally day (some backends hand dates back as text in grouped queries), folded as the reports fold days.
    return fold_period(value if isinstance(value, str) else value.isoformat(), by)
