"""What the sessions of each UTC day add up to, for any scope: the one place reports read sessions.

Whole days before the rollup's watermark (``SessionRollupState``) that no writer has marked since
(``RollupMark``) come from the daily rollup (``SessionDay``); everything else is counted live from
the sessions table, through the ``started_at`` index: the days from the watermark on, the marked
days, the partial days at the ends of a range that does not start or stop at midnight, the days a
cut splits (a marker inside a day), and, for the causes, the days from now minus the grace period
on (an open empty session is ``open`` within the grace period and ``never_ended`` after it, so
those days change as time passes). So the cost follows the number of days, not of sessions, and
the numbers are the rows' at every commit. At most four small queries, whatever the range: the
rollup's state, its marks, its rows, and the live count.

``cuts`` split a read into segments (``[cut_i, cut_i+1)``): before and since a marker, the windows
of a comparison, the last 24 hours. Each row says which segment its sessions started in.
"""

import bisect
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Case, Count, F, IntegerField, Max, Q, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from sessions_app.aggregates import cause_counts, model_name, period_expression, session_counts, utc_day
from sessions_app.counts import model_key
from sessions_app.models import RollupMark, Session, SessionDay, SessionRollupState
from sessions_app.querysets import CAUSES, EARLIEST_MOMENT, stale_before
from sessions_app.scope import Scope, midnight

DIMENSIONS = ("model", "source", "profile")
# ``status=`` default: read the rollup's state here (a caller that shows it reads it once and passes it).
READ_STATUS = object()


@dataclass(frozen=True)
class RollupStatus:
    """How far the rollup goes: every UTC day before ``watermark`` is in it, built at ``built_at``."""

    watermark: dt.date
    built_at: dt.datetime

    @property
    def last_day(self) -> dt.date:
        """The last UTC day in the rollup."""
        return self.watermark - dt.timedelta(days=1)


def rollup_status(*, using: str = DEFAULT_DB_ALIAS) -> RollupStatus | None:
    """The rollup's watermark and build time; None when it was never built (everything is live)."""
    row = SessionRollupState.objects.using(using).filter(pk=1).values_list("watermark", "built_at").first()
    if row is None or row[0] is None or not EARLIEST_MOMENT.date() <= row[0] <= timezone.now().date():
        return None  # not built, or a watermark no build leaves (another writer, a clock that was wrong): live
    return RollupStatus(*row)


@dataclass(frozen=True)
class DayCount:
    """The sessions of one UTC day and segment, in one group of the dimensions read (a dimension
    not read is None). ``model`` is the report key (``NO_MODEL_KEY`` for no model and for "");
    ``model_id`` the ``LanguageModel`` id (None for no model). Causes, messages and the newest
    start are 0/None unless asked for."""

    day: dt.date
    segment: int
    model: str | None
    model_id: int | None
    source: str | None
    profile: str | None
    sessions: int
    empty: int
    lost_transcript: int = 0
    never_ended: int = 0
    open: int = 0
    ghost: int = 0
    messages: int = 0
    newest: dt.datetime | None = None

    @property
    def causes(self) -> dict[str, int]:
        return {cause: getattr(self, cause) for cause in CAUSES}


@dataclass(frozen=True)
class DayRead:
    """A read: its rows, the cuts that split it (those inside the scope, in order: a row's
    ``segment`` counts the cuts at or before its sessions' start), the rollup state it used, and
    the first day it counted live (None: all)."""

    rows: list[DayCount]
    cuts: list[dt.datetime]
    status: RollupStatus | None
    live_from: dt.date | None
    scope: Scope

    @cached_property
    def segment_totals(self) -> dict[tuple, list[int]]:
        """``{(model key, or None for every model, segment): [sessions, empty]}``, summed once."""
        totals: dict[tuple, list[int]] = {}
        for row in self.rows:
            for model in (row.model, None):
                pair = totals.setdefault((model, row.segment), [0, 0])
                pair[0] += row.sessions
                pair[1] += row.empty
        return totals

    def segments(self, since: dt.datetime | None, until: dt.datetime | None) -> range:
        """The segments of ``[since, until)``: each end None (open), a cut of this read, or outside
        the scope (before it, or after it). ``ValueError`` for another instant inside the scope."""
        return range(self._position(since, 0), self._position(until, len(self.cuts) + 1))

    def _position(self, at: dt.datetime | None, open_end: int) -> int:
        if at is None:
            return open_end
        if self.scope.since is not None and at <= self.scope.since:
            return 0
        if self.scope.until is not None and at >= self.scope.until:
            return len(self.cuts) + 1
        if at in self.cuts:
            return self.cuts.index(at) + 1
        raise ValueError(f"{at.isoformat()} is not a cut of this read.")


def read_days(
    scope: Scope,
    *,
    dims: Sequence[str] = ("model",),
    cuts: Sequence[dt.datetime] = (),
    causes: bool = False,
    activity: bool = False,
    now: dt.datetime | None = None,
    grace: dt.timedelta | None = None,
    using: str = DEFAULT_DB_ALIAS,
    status=READ_STATUS,
    days: bool = True,
) -> DayRead:
    """The sessions of ``scope`` per (UTC day, segment, ``dims``), from the rollup and live.

    ``dims``: a subset of ``DIMENSIONS``. ``cuts``: aware datetimes splitting the read into
    segments. ``causes``: count the empty sessions per cause, the grace period counted back from
    ``now`` (default: ``HERMES_OPEN_GRACE``). ``activity``: the summed ``message_count`` and the
    newest start. ``status``: the ``rollup_status()`` a caller read already (None: all live).
    ``days=False``: no per-day rows (``day`` is None), far fewer groups when days do not matter.
    """
    now = now or dt.datetime.now(dt.UTC)
    status = rollup_status(using=using) if status is READ_STATUS else status
    stale = stale_before(now, grace) if causes else None
    cuts = sorted({cut for cut in cuts if _inside(cut, scope)})
    first, end = _rollup_range(scope, status)
    excluded = set()
    if end is not None:
        marks = RollupMark.objects.using(using).filter(day__lt=end)
        if first is not None:
            marks = marks.filter(day__gte=first)
        excluded = {day for day in marks.values_list("day", flat=True).distinct() if first is None or day >= first}
    ranges, excluded = _live_ranges(scope, first, end, excluded)
    rows = []
    if end is not None:
        split = _split_plan(first, end, excluded, cuts)
        placed = {day: segment for day, (_, _, segment) in split.items()}
        rows += _rollup_rows(scope, first, end, excluded, dims, cuts, causes, activity, using, days, placed)
        rows += _split_rows(scope, split, dims, cuts, activity, using, days)
        if stale is not None:
            rows += _grace_rows(scope, first, end, excluded, dims, cuts, stale, using, days)
    if ranges:
        rows += _live_rows(scope, ranges, dims, cuts, stale, activity, using, days)
    return DayRead(rows=rows, cuts=cuts, status=status, live_from=end, scope=scope)


def _inside(cut: dt.datetime, scope: Scope) -> bool:
    return (scope.since is None or cut > scope.since) and (scope.until is None or cut < scope.until)


def _rollup_range(scope: Scope, status) -> tuple[dt.date | None, dt.date | None]:
    """``(first, end)``: the whole UTC days of the scope the rollup may give are ``[first, end)``
    (``first`` None: from the first day there is); ``end`` None: none."""
    if status is None:
        return None, None
    first = None
    if scope.since is not None:
        first = scope.since.date()
        if scope.since != midnight(first):
            if first == dt.date.max:
                return None, None
            first += dt.timedelta(days=1)
    end = status.watermark
    if scope.until is not None:
        end = min(end, scope.until.date())
    if first is not None and first >= end:
        return None, None
    return first, end


# Live ranges read in one statement, at most: each is its own index range (a UNION ALL branch).
MAX_LIVE_RANGES = 24


def _live_ranges(scope: Scope, first, end, excluded) -> tuple[list[tuple], set]:
    """The ``[since, until)`` ranges of the scope counted live, and the rollup days left out for
    them: all of the scope without a rollup range, else what lies before and after that range,
    and its excluded (marked or split) days, merged where they touch. Past ``MAX_LIVE_RANGES``,
    the closest ranges are joined, the rollup days between them read live instead."""
    if end is None:
        return [(scope.since, scope.until)], excluded
    ranges = []
    if first is not None and scope.since is not None and scope.since < midnight(first):
        ranges.append((scope.since, midnight(first)))
    for day in sorted(excluded):
        ranges.append((midnight(day), midnight(day + dt.timedelta(days=1))))
    if scope.until is None or midnight(end) < scope.until:
        ranges.append((midnight(end), scope.until))
    merged = []
    for since, until in ranges:
        if merged and merged[-1][1] == since:
            merged[-1] = (merged[-1][0], until)
        else:
            merged.append((since, until))
    excluded = set(excluded)
    while len(merged) > MAX_LIVE_RANGES:
        gap = min(range(len(merged) - 1), key=lambda i: merged[i + 1][0] - merged[i][1])
        lower, upper = merged[gap][1], merged[gap + 1][0]
        day = lower.date()
        while midnight(day) < upper:  # the days between the two ranges leave the rollup read
            excluded.add(day)
            day += dt.timedelta(days=1)
        merged[gap : gap + 2] = [(merged[gap][0], merged[gap + 1][1])]
    return merged, excluded


def _rollup_rows(scope, first, end, excluded, dims, cuts, causes, activity, using, days, placed) -> list[DayCount]:
    """The rollup's rows of ``[first, end)`` less the ``excluded`` days: a day in the segment of
    its midnight, or, for a split day, the segment ``placed`` gives it (``_split_plan``)."""
    rows = SessionDay.objects.using(using).order_by().filter(day__lt=end)
    if first is not None:
        rows = rows.filter(day__gte=first)
    if excluded:
        rows = rows.exclude(day__in=sorted(excluded))
    # SessionDay's text keys are binary-collated on MySQL/MariaDB: these filters are exact there too.
    for name in ("source", "profile"):
        if getattr(scope, name) is not None:
            rows = rows.filter(**{name: getattr(scope, name)})
    if scope.model is not None:
        rows = rows.filter(model__name=scope.model)
    columns = [*(["day"] if days else []), *dims]
    if not days and cuts:
        # The segment of a whole day: the cuts at or before its midnight (a cut inside a day makes
        # that day live, so here every cut falls at a midnight or between rollup days).
        starts = [cut.date() if cut == midnight(cut.date()) else cut.date() + dt.timedelta(days=1) for cut in cuts]
        whens = [When(day=day, then=Value(segment)) for day, segment in sorted(placed.items())]
        whens += [When(day__gte=start, then=Value(index + 1)) for index, start in reversed(list(enumerate(starts)))]
        rows = rows.annotate(segment=Case(*whens, default=Value(0), output_field=IntegerField()))
        columns.append("segment")
    if not columns:  # one total: group by a constant (Django leaves it out of GROUP BY)
        rows = rows.annotate(whole=Value(1, output_field=IntegerField()))
        columns.append("whole")
    measures = {"n": Sum("sessions"), "e": Sum("empty")}
    if causes:
        measures.update(lost=Sum("lost_transcript"), ghost=Sum("ghost"), unended=Sum("unended"))
    if activity:
        measures.update(messages=Sum("messages"), newest=Max("newest"))
    grouped = rows.values(*columns).annotate(**measures)
    if "model" in dims:
        grouped = grouped.annotate(name=model_name())
    counts = []
    segments = {}  # day -> its segment, computed once per day
    for row in grouped:
        if row["n"] is None:  # the one total of no row at all
            continue
        day = row.get("day")
        if days and day not in segments:
            segments[day] = placed.get(day, bisect.bisect_right(cuts, midnight(day)))
        counts.append(
            DayCount(
                day=day,
                segment=segments[day] if days else row.get("segment", 0),
                model=model_key(row["name"]) if "model" in dims else None,
                model_id=row.get("model"),
                source=row.get("source"),
                profile=row.get("profile"),
                sessions=int(row["n"]),
                empty=int(row["e"]),
                lost_transcript=int(row.get("lost") or 0),
                never_ended=int(row.get("unended") or 0),  # whole days before the grace period
                ghost=int(row.get("ghost") or 0),
                messages=int(row.get("messages") or 0),
                newest=row.get("newest"),
            )
        )
    return counts


def _split_plan(first, end, excluded, cuts) -> dict[dt.date, tuple]:
    """``{day: (live since, live until, segment of the rollup's row)}`` for each rollup day that a
    cut splits (a marker inside it, the "last 24 hours"). The rollup gives the whole day under one
    segment, and the smaller side of the day is counted live and moved out of it: the part from
    the day's first cut on (the rollup's row stays in the segment of its midnight), or the part
    before its last cut (the row goes to the segment after that cut)."""
    plan = {}
    for day in sorted({cut.date() for cut in cuts if cut != midnight(cut.date())}):
        if (first is not None and day < first) or day >= end or day in excluded:
            continue
        inside = [cut for cut in cuts if cut.date() == day]
        start, stop = midnight(day), midnight(day + dt.timedelta(days=1))
        if stop - inside[0] <= inside[-1] - start:
            plan[day] = (inside[0], stop, bisect.bisect_right(cuts, start))
        else:
            plan[day] = (start, inside[-1], bisect.bisect_right(cuts, inside[-1]))
    return plan


def _split_rows(scope, plan, dims, cuts, activity, using, days) -> list[DayCount]:
    """The live side of each split day (``_split_plan``), per segment, moved out of the segment
    the rollup's row of that day is in (a row for it, and one taking it away). The live side is
    counted without causes: a day's causes stay with its rollup row (no caller splits causes by
    segment)."""
    if not plan:
        return []
    ranges = [(since, until) for since, until, _ in plan.values()]
    moved = _live_rows(scope, ranges, dims, cuts, None, activity, using, True)
    rows = []
    for row in moved:
        placed = plan[row.day][2]
        day = row.day if days else None
        rows.append(replace(row, day=day))
        rows.append(
            replace(
                row,
                day=day,
                segment=placed,
                sessions=-row.sessions,
                empty=-row.empty,
                messages=-row.messages,
                newest=None,
            )
        )
    return rows


def _grace_rows(scope, first, end, excluded, dims, cuts, stale, using, days) -> list[DayCount]:
    """The rollup counts an open empty session without usage as ``never_ended`` (all of them are,
    on a whole day before the grace period). On the rollup's days the grace period reaches into,
    those started within it are ``open``: counted live (only the open empty ones, a few) and moved
    from one cause to the other."""
    lower = max(stale, midnight(first)) if first is not None else stale
    if scope.since is not None:
        lower = max(lower, scope.since)
    if lower >= midnight(end):
        return []
    ranges, day = [], lower
    for marked in sorted(
        d for d in excluded if midnight(d) >= lower.replace(hour=0, minute=0, second=0, microsecond=0)
    ):
        if midnight(marked) > day:
            ranges.append((day, midnight(marked)))
        day = max(day, midnight(marked + dt.timedelta(days=1)))
    if day < midnight(end):
        ranges.append((day, midnight(end)))
    if not ranges:
        return []
    connection = connections[using]
    sessions = scope.sessions(Session.objects.using(using).order_by()).open().without_usage().filter(has_messages=False)
    groups = {"day": period_expression("day", connection)}
    if "source" in dims:
        groups["source_key"] = F("source")
    if cuts:
        whens = [When(started_at__gte=cut, then=Value(index + 1)) for index, cut in reversed(list(enumerate(cuts)))]
        groups["segment"] = Case(*whens, default=Value(0), output_field=IntegerField())
    columns = [*groups, *(dim for dim in dims if dim in ("model", "profile"))]
    branches = []
    for since, until in ranges:
        branch = sessions.started_between(since, until).annotate(**groups).values(*columns).annotate(n=Count("*"))
        if "model" in dims:
            branch = branch.annotate(name=model_name())
        branches.append(branch)
    grouped = branches[0].union(*branches[1:], all=True) if len(branches) > 1 else branches[0]
    return [
        DayCount(
            day=utc_day(row["day"]) if days else None,
            segment=row.get("segment", 0),
            model=model_key(row["name"]) if "model" in dims else None,
            model_id=row.get("model"),
            source=row.get("source_key"),
            profile=row.get("profile"),
            sessions=0,
            empty=0,
            never_ended=-int(row["n"]),
            open=int(row["n"]),
        )
        for row in grouped
    ]


def _live_rows(scope, ranges, dims, cuts, stale, activity, using, days) -> list[DayCount]:
    """The live ranges counted in one statement: a UNION ALL of one grouped branch per range, so
    each is an index range of its own (an OR of ranges made SQLite scan a whole index)."""
    connection = connections[using]
    sessions = scope.sessions(Session.objects.using(using).order_by())
    groups = {}
    if days:
        groups["day"] = period_expression("day", connection)
    if "source" in dims:
        groups["source_key"] = F("source")  # a KeyField: "CLI" apart from "cli" on MariaDB too
    if cuts:
        whens = [When(started_at__gte=cut, then=Value(index + 1)) for index, cut in reversed(list(enumerate(cuts)))]
        groups["segment"] = Case(*whens, default=Value(0), output_field=IntegerField())
    if not groups and not dims:  # one total: group by a constant (Django leaves it out of GROUP BY)
        groups["whole"] = Value(1, output_field=IntegerField())
    columns = [*groups, *(dim for dim in dims if dim in ("model", "profile"))]
    measures = dict(session_counts())
    if stale is not None:
        measures.update(cause_counts(stale))
    if activity:
        measures.update(
            messages=Coalesce(Sum("message_count"), Value(0), output_field=IntegerField()), newest=Max("started_at")
        )
    branches = []
    for since, until in ranges:
        branch = (
            sessions.started_between(since, until).annotate(**groups)
            if groups
            else sessions.started_between(since, until)
        )
        branch = branch.values(*columns) if columns else branch.values()
        branch = branch.annotate(**measures)
        if "model" in dims:
            branch = branch.annotate(name=model_name())
        branches.append(branch)
    grouped = branches[0].union(*branches[1:], all=True) if len(branches) > 1 else branches[0]
    counts = []
    for row in grouped:
        counts.append(
            DayCount(
                day=utc_day(row["day"]) if days else None,
                segment=row.get("segment", 0),
                model=model_key(row["name"]) if "model" in dims else None,
                model_id=row.get("model"),
                source=row.get("source_key"),
                profile=row.get("profile"),
                sessions=int(row["sessions"]),
                empty=int(row["empty"]),
                **{cause: int(row.get(cause) or 0) for cause in CAUSES},
                messages=int(row.get("messages") or 0),
                newest=row.get("newest"),
            )
        )
    return counts


def scope_choices(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, list[str]]:
    """The models, sources and profiles that have sessions, sorted (exactly, as stored): the
    rollup's distinct keys and the live days' (from the watermark on, and marked days), in two
    queries whatever the number of sessions."""
    status = rollup_status(using=using)
    values = {"model": set(), "source": set(), "profile": set()}
    live = Session.objects.using(using).order_by()
    if status is not None:
        rolled = SessionDay.objects.using(using).order_by().filter(day__lt=status.watermark)
        for name, source, profile in rolled.values_list("model__name", "source", "profile").distinct():
            values["model"].add(model_key(name))
            values["source"].add(source)
            values["profile"].add(profile)
        marked = RollupMark.objects.using(using).filter(day__lt=status.watermark).values_list("day", flat=True)
        within = Q(started_at__gte=midnight(status.watermark))
        for day in set(marked):
            within |= Q(started_at__gte=midnight(day), started_at__lt=midnight(day + dt.timedelta(days=1)))
        live = live.filter(within)
    for name, source, profile in live.values_list("model__name", "source", "profile").distinct():
        values["model"].add(model_key(name))
        values["source"].add(source)
        values["profile"].add(profile)
    return {name: sorted(found) for name, found in values.items()}


@dataclass(frozen=True, order=True)
class DailyCount:
    day: dt.date  # UTC day the sessions started
    model: str  # model name, or NO_MODEL_KEY
    sessions: int
    empty: int


def daily_counts(
    *, since=None, until=None, model=None, source=None, profile=None, using: str = DEFAULT_DB_ALIAS, rollup=READ_STATUS
) -> list[DailyCount]:
    """Sessions and empty sessions per (UTC day, model name), in day and model order (``read_days``
    for one dimension; ``rollup=None`` counts everything live). ``ValidationError`` as ``Scope``."""
    scope = Scope(since=since, until=until, model=model, source=source, profile=profile)
    counts = {}
    for row in read_days(scope, dims=("model",), using=using, status=rollup).rows:
        pair = counts.setdefault((row.day, row.model), [0, 0])
        pair[0] += row.sessions
        pair[1] += row.empty
    return [DailyCount(day, name, *pair) for (day, name), pair in sorted(counts.items())]
