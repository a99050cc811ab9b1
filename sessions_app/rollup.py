"""The daily rollup: what the sessions of each (UTC day, model, source, profile) add up to
(sessions, empty sessions and why, stored message counters, the newest start), for the days
before a watermark, so no report reads every session (``analytics.daily`` reads it together with a
live count of the later days and of the marked ones).

Not kept by triggers: one row per (day, model, source) written by every flush serialized the
writers (2.9-4.2x slower with 4 of them, issue 13). Instead:
- ``build_rollup`` (``manage.py build_rollup``, from cron) recomputes the days before its target
  watermark (by default the UTC day an hour ago: today stays live) from the sessions table, one
  grouped query per chunk of days, rewrites the days that changed in the chunk's transaction and
  moves the watermark as the chunks pass it. So every committed state is whole: each day before
  the watermark is in the rollup exactly as its sessions were when its chunk was read.
- A writer of ours that changes a past day (the save path appending to a session started before
  today, end and usage of such a session, close_stale_sessions, prune and the admin's deletions,
  import, ``verify_sessions --repair``) marks the day (``mark_days``) in the transaction of its
  change. Readers count a marked day live, so the numbers stay the rows' at every commit, a
  crash (kill -9) included. ``fold_marks`` (the end of a writer's run; every build) recomputes
  the marked days and deletes the marks it read before recomputing: a mark committed later stays.
- The save path never touches the rollup for a session started today (the common case).
Any other change to an old day (raw SQL, another app) is picked up by the next ``build_rollup``,
which rechecks every day, and found by ``verify_sessions``.

Writers of the rollup lock the state row first: a build, a fold and a rebuild never interleave,
and a fold that waited for a chunk sees the watermark that chunk moved.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import F, IntegerField, Max, Min, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents_app.db import run_with_retry
from sessions_app.aggregates import cause_counts, period_expression, session_counts, utc_day
from sessions_app.models import RollupMark, Session, SessionDay, SessionRollupState
from sessions_app.querysets import EARLIEST_MOMENT
from sessions_app.scope import midnight

# The measures of a rollup row, in the order ``_computed`` and ``_stored`` give them.
MEASURES = ("sessions", "empty", "lost_transcript", "ghost", "unended", "messages", "newest")

DEFAULT_CHUNK_DAYS = 7
# The default watermark is the UTC day this long ago: a session is stored at its first message
# with the start time of its agent, so yesterday's last sessions may still arrive after midnight.
SETTLE = dt.timedelta(hours=1)


@dataclass
class RollupResult:
    """What a build did: the watermark it left, the days it recomputed and how many had changed."""

    watermark: dt.date | None = None
    built_at: dt.datetime | None = None
    days_checked: int = 0
    days_changed: int = 0
    chunks: int = 0


def build_rollup(
    *,
    until: dt.date | None = None,
    since: dt.date | None = None,
    full: bool = False,
    chunk_days: int = DEFAULT_CHUNK_DAYS,
    using: str = DEFAULT_DB_ALIAS,
    now: dt.datetime | None = None,
    progress: Callable[[RollupResult], None] | None = None,
) -> RollupResult:
    """Bring the rollup up to the watermark ``until`` (default: the UTC day of ``now`` minus
    ``SETTLE``; never after today), one transaction per ``chunk_days`` days.

    Rechecks every day from the first session (or rollup row) on, rewriting those that changed;
    ``since`` rechecks only the days from ``since`` (and from the old watermark, if earlier).
    ``full`` first empties the rollup (readers go live meanwhile) and builds it again.
    ``ValidationError`` for a watermark after today or a bad chunk size.
    """
    now = (now or timezone.now()).astimezone(dt.UTC)
    target = until if until is not None else (now - SETTLE).date()
    for name, value in (("until", until), ("since", since)):
        if value is not None and (not isinstance(value, dt.date) or isinstance(value, dt.datetime)):
            raise ValidationError({name: f"must be a date, got {type(value).__name__}."}, code="invalid")
        if value is not None and value < EARLIEST_MOMENT.date():  # the readers count back from the watermark
            raise ValidationError({name: f"{value} is before {EARLIEST_MOMENT.date()}, where the reports start."})
    if target > now.date():
        raise ValidationError({"until": f"{target} is after today ({now.date()} UTC): today is read live."})
    if isinstance(chunk_days, bool) or not isinstance(chunk_days, int) or not 1 <= chunk_days <= 366:
        raise ValidationError({"chunk_days": "must be a whole number of days from 1 to 366."})
    if full:
        run_with_retry(lambda: reset_rollup(using=using), using=using)
    state = _state(using, create=False)
    watermark = state.watermark if state else None
    start = _first_day(using)
    if since is not None and start is not None:
        start = max(start, min(since, watermark) if watermark else start)
    result = RollupResult()
    day = start
    while day is not None and day < target:
        end = min(day + dt.timedelta(days=chunk_days), target)
        checked, changed = run_with_retry(lambda d=day, e=end: _refresh(d, e, using, advance_to=now), using=using)
        result.days_checked += checked
        result.days_changed += changed
        result.chunks += 1
        if progress:
            progress(result)
        day = end
    nothing_before = start is None or start >= target  # no session, no row before the target
    state = run_with_retry(lambda: _finish(target, now, using, nothing_before=nothing_before), using=using)
    result.days_changed += fold_marks(using=using, chunk_days=chunk_days)  # days before --since, marked since
    result.watermark, result.built_at = state.watermark, state.built_at
    return result


def rebuild_days(
    days: Iterable[dt.date], *, using: str = DEFAULT_DB_ALIAS, chunk_days: int = DEFAULT_CHUNK_DAYS
) -> int:
    """Recompute the given UTC days that are before the watermark (the later ones are read live
    anyway), from the sessions as they are now; returns how many days changed. No query for no
    days. For a writer that rewrites days inside its own transaction (``load_demo``); the others
    mark their days and fold them."""
    days = sorted(set(days))
    changed = 0
    while days:
        first = days[0]
        window = [day for day in days if day < first + dt.timedelta(days=chunk_days)]
        days = days[len(window) :]
        end = window[-1] + dt.timedelta(days=1)
        changed += run_with_retry(lambda f=first, e=end: _refresh(f, e, using)[1], using=using)
    return changed


def mark_days(days: Iterable[dt.date], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Mark these UTC days as changed: call it inside the transaction that changes them, so the
    change and its mark commit (or vanish) together. One INSERT; none for no days."""
    days = sorted(set(days))
    if days:
        RollupMark.objects.using(using).bulk_create([RollupMark(day=day) for day in days])


def fold_marks(*, using: str = DEFAULT_DB_ALIAS, chunk_days: int = DEFAULT_CHUNK_DAYS) -> int:
    """Recompute every marked day before the watermark and delete the marks read before it was
    recomputed (a mark committed meanwhile stays, for the next fold); marks of later days, read
    live anyway, are deleted. Returns how many days changed; one query when nothing is marked."""
    marked = sorted(set(RollupMark.objects.using(using).values_list("day", flat=True)))
    changed = rebuild_days(marked, using=using, chunk_days=chunk_days)
    run_with_retry(lambda: _drop_live_marks(using), using=using)
    return changed


def check_days(*, using: str = DEFAULT_DB_ALIAS, chunk_days: int = DEFAULT_CHUNK_DAYS) -> tuple[int, list[dt.date]]:
    """Compare every unmarked day before the watermark with its sessions, ``chunk_days`` at a time
    (one grouped query per chunk, as a build reads them); returns ``(days checked, days that
    differ)``. Read-only; marked days are read live, so they are not drift."""
    state = _state(using, create=False)
    first = _first_day(using)
    if state is None or state.watermark is None or first is None:
        return 0, []
    checked, off = 0, []
    day = first
    while day < state.watermark:
        end = min(day + dt.timedelta(days=chunk_days), state.watermark)
        marked = set(RollupMark.objects.using(using).filter(day__gte=day, day__lt=end).values_list("day", flat=True))
        computed, stored = _computed(day, end, using), _stored(day, end, using)
        days = computed.keys() | stored.keys()
        off += sorted(d for d in days if d not in marked and computed.get(d) != stored.get(d))
        checked += (end - day).days
        day = end
    return checked, off


def old_day(started_at: dt.datetime, now: dt.datetime | None = None) -> dt.date | None:
    """The UTC day of a session started before today (UTC), which a build may have rolled up;
    None for a session started today, whose day no build has reached (the watermark is at most
    today)."""
    day = started_at.astimezone(dt.UTC).date()
    return day if day < (now or timezone.now()).astimezone(dt.UTC).date() else None


def session_days(started: Iterable[dt.datetime]) -> set[dt.date]:
    """The UTC days of these session start times: what a writer passes to ``rebuild_days``."""
    return {moment.astimezone(dt.UTC).date() for moment in started}


def _state(using: str, *, lock: bool = False, create: bool = True) -> SessionRollupState | None:
    """The state row (created unless ``create`` is false), locked until the transaction ends if ``lock``."""
    states = SessionRollupState.objects.using(using)
    if lock:
        states = states.select_for_update()
    return states.get_or_create(pk=1)[0] if create else states.filter(pk=1).first()


def _first_day(using: str) -> dt.date | None:
    """The first day that has a session or a rollup row (both read from an index's first entry)."""
    started = Session.objects.using(using).aggregate(first=Min("started_at"))["first"]
    rolled = SessionDay.objects.using(using).aggregate(first=Min("day"))["first"]
    days = [day for day in (started and started.astimezone(dt.UTC).date(), rolled) if day is not None]
    return min(days, default=None)


def _refresh(start: dt.date, end: dt.date, using: str, *, advance_to: dt.datetime | None = None) -> tuple[int, int]:
    """Recompute the days ``[start, end)`` in one transaction: ``(days checked, days changed)``.

    A rebuild (``advance_to`` None) stops at the watermark. A build chunk (``advance_to``, its
    build time) moves the watermark to ``end`` when the chunk reaches it. The marks of these days
    are read before the sessions and deleted by id after: a writer whose mark commits later was
    not seen, and its mark stays.
    """
    with transaction.atomic(using=using):
        state = _state(using, lock=True, create=advance_to is not None)
        if advance_to is None:
            if state is None or state.watermark is None:
                return 0, 0
            end = min(end, state.watermark)
            if start >= end:
                return 0, 0
        marks = list(RollupMark.objects.using(using).filter(day__gte=start, day__lt=end).values_list("pk", flat=True))
        computed = _computed(start, end, using)
        stored = _stored(start, end, using)
        changed = sorted(day for day in computed.keys() | stored.keys() if computed.get(day) != stored.get(day))
        if changed:
            SessionDay.objects.using(using).filter(day__in=changed).delete()
            SessionDay.objects.using(using).bulk_create(
                SessionDay(
                    day=day,
                    model_id=model_id,
                    source=source,
                    profile=profile,
                    **dict(zip(MEASURES, values, strict=True)),
                )
                for day in changed
                for (model_id, source, profile), values in computed.get(day, {}).items()
            )
        if marks:
            RollupMark.objects.using(using).filter(pk__in=marks).delete()
        if advance_to is not None and (state.watermark is None or start <= state.watermark < end):
            state.watermark, state.built_at = end, advance_to
            state.save(using=using)
        return (end - start).days, len(changed)


def _computed(start: dt.date, end: dt.date, using: str) -> dict[dt.date, dict[tuple, tuple]]:
    """``{day: {(model_id, source, profile): MEASURES}}`` for ``[start, end)``, in one grouped
    query over the sessions started then (the ``started_at`` index bounds it; emptiness is the
    flag, the causes the reports' conditions). Sources are grouped exactly ("CLI" apart from
    "cli" on MariaDB too: a ``KeyField``)."""
    connection = connections[using]
    sessions = Session.objects.using(using).order_by().started_between(midnight(start), midnight(end))
    groups = sessions.annotate(day=period_expression("day", connection), source_key=F("source"))
    groups = groups.values("day", "model_id", "source_key", "profile").annotate(
        **session_counts(),
        **cause_counts(None),
        messages=Coalesce(Sum("message_count"), Value(0), output_field=IntegerField()),
        newest=Max("started_at"),
    )
    days = defaultdict(dict)
    for day, model_id, source, profile, *values in groups.values_list(
        "day", "model_id", "source_key", "profile", *MEASURES
    ):
        days[utc_day(day)][model_id, source, profile] = _normal(values)
    return days


def _stored(start: dt.date, end: dt.date, using: str) -> dict[dt.date, dict[tuple, tuple]]:
    """The rollup's rows for ``[start, end)``, in ``_computed``'s shape."""
    stored = defaultdict(dict)
    rows = SessionDay.objects.using(using).filter(day__gte=start, day__lt=end)
    for day, model_id, source, profile, *values in rows.values_list("day", "model_id", "source", "profile", *MEASURES):
        stored[day][model_id, source, profile] = _normal(values)
    return stored


def _normal(values) -> tuple:
    """Measures as comparable Python values (counts as int, the newest start in UTC)."""
    *counts, newest = values
    return (*(int(value) for value in counts), newest.astimezone(dt.UTC) if newest is not None else None)


def _drop_live_marks(using: str) -> None:
    """Delete the committed marks of days from the watermark on (read live whatever their marks
    say), by id: a range DELETE would wait on MariaDB for a writer whose mark is not committed yet."""
    with transaction.atomic(using=using):
        state = _state(using, lock=True, create=False)
        marks = RollupMark.objects.using(using)
        if state is not None and state.watermark is not None:
            marks = marks.filter(day__gte=state.watermark)
        seen = list(marks.values_list("pk", flat=True))
        if seen:
            RollupMark.objects.using(using).filter(pk__in=seen).delete()


def reset_rollup(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Empty the rollup and forget its watermark, in one transaction: readers go live until a build."""
    with transaction.atomic(using=using):
        state = _state(using, lock=True)
        SessionDay.objects.using(using).all().delete()
        RollupMark.objects.using(using).all().delete()
        state.watermark = state.built_at = None
        state.save(using=using)


def _finish(target: dt.date, now: dt.datetime, using: str, *, nothing_before: bool) -> SessionRollupState:
    """Set the watermark to ``target`` and the build time, dropping the rows from ``target`` on (a
    build to an earlier watermark than the last). The chunks have moved the watermark to ``target``
    already unless there was nothing to cover; if it is still short (a ``--full`` reset ran
    meanwhile), it stays: the rollup claims no day it does not hold."""
    with transaction.atomic(using=using):
        state = _state(using, lock=True)
        if nothing_before or (state.watermark is not None and state.watermark >= target):
            SessionDay.objects.using(using).filter(day__gte=target).delete()
            RollupMark.objects.using(using).filter(day__gte=target).delete()
            state.watermark, state.built_at = target, now
            state.save(using=using)
        return state
