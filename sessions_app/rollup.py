"""The daily rollup: sessions and empty sessions per (UTC day, model, source, profile), for the
days before a watermark, so the per-day trend need not read every session (``analytics.daily``
reads it together with a live query for the later days).

Not kept by triggers: one row per (day, model, source) written by every flush serialized the
writers (2.9-4.2x slower with 4 of them, issue 13). Instead:
- ``build_rollup`` (``manage.py build_rollup``, from cron) recomputes the days before its target
  watermark (by default the UTC day an hour ago: today stays live) from the sessions table, one
  grouped query per chunk of days, rewrites the days that changed in the chunk's transaction and
  moves the watermark as the chunks pass it. So every committed state is whole: each day before
  the watermark is in the rollup exactly as its sessions were when its chunk was read.
- ``rebuild_days`` recomputes the days a writer of ours touched (import, prune, the admin's
  delete action, ``verify_sessions --repair``), at the end of its run.
Any other change to an old day (raw SQL, another app, a session whose first message commits after
its day was built) is picked up by the next ``build_rollup``, which rechecks every day.

Writers of the rollup lock the state row first: a build and a rebuild never interleave, and a
rebuild that waited for a chunk sees the watermark that chunk moved.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Min
from django.utils import timezone

from agents_app.db import exact_text, run_with_retry
from sessions_app.aggregates import period_expression, session_counts, utc_day
from sessions_app.models import Session, SessionDay, SessionRollupState

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
    result.watermark, result.built_at = state.watermark, state.built_at
    return result


def rebuild_days(
    days: Iterable[dt.date], *, using: str = DEFAULT_DB_ALIAS, chunk_days: int = DEFAULT_CHUNK_DAYS
) -> int:
    """Recompute the given UTC days that are before the watermark (the later ones are read live
    anyway), from the sessions as they are now; returns how many days changed. No query for no
    days. Called by the writers of ours that change old days, once at the end of their run."""
    days = sorted(set(days))
    changed = 0
    while days:
        first = days[0]
        window = [day for day in days if day < first + dt.timedelta(days=chunk_days)]
        days = days[len(window) :]
        end = window[-1] + dt.timedelta(days=1)
        changed += run_with_retry(lambda f=first, e=end: _refresh(f, e, using)[1], using=using)
    return changed


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
    build time) moves the watermark to ``end`` when the chunk reaches it.
    """
    with transaction.atomic(using=using):
        state = _state(using, lock=True, create=advance_to is not None)
        if advance_to is None:
            if state is None or state.watermark is None:
                return 0, 0
            end = min(end, state.watermark)
            if start >= end:
                return 0, 0
        computed = _computed(start, end, using)
        stored = defaultdict(dict)
        rows = SessionDay.objects.using(using).filter(day__gte=start, day__lt=end)
        for day, *key, sessions, empty in rows.values_list("day", "model_id", "source", "profile", "sessions", "empty"):
            stored[day][tuple(key)] = (sessions, empty)
        changed = sorted(day for day in computed.keys() | stored.keys() if computed.get(day) != stored.get(day))
        if changed:
            SessionDay.objects.using(using).filter(day__in=changed).delete()
            SessionDay.objects.using(using).bulk_create(
                SessionDay(day=day, model_id=model_id, source=source, profile=profile, sessions=n, empty=e)
                for day in changed
                for (model_id, source, profile), (n, e) in computed.get(day, {}).items()
            )
        if advance_to is not None and (state.watermark is None or start <= state.watermark < end):
            state.watermark, state.built_at = end, advance_to
            state.save(using=using)
        return (end - start).days, len(changed)


def _computed(start: dt.date, end: dt.date, using: str) -> dict[dt.date, dict[tuple, tuple[int, int]]]:
    """``{day: {(model_id, source, profile): (sessions, empty)}}`` for ``[start, end)``, in one
    grouped query over the sessions started then (the ``started_at`` index bounds it; emptiness is
    the flag). Sources are grouped exactly ("CLI" apart from "cli" on MariaDB too)."""
    connection = connections[using]
    sessions = Session.objects.using(using).order_by().started_between(_midnight(start), _midnight(end))
    groups = sessions.annotate(day=period_expression("day", connection), source_key=exact_text("source", connection))
    groups = groups.values("day", "model_id", "source_key", "profile").annotate(**session_counts())
    days = defaultdict(dict)
    for day, model_id, source, profile, total, empty in groups.values_list(
        "day", "model_id", "source_key", "profile", "sessions", "empty"
    ):
        days[utc_day(day)][model_id, source, profile] = (total, empty)
    return days


def reset_rollup(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Empty the rollup and forget its watermark, in one transaction: readers go live until a build."""
    with transaction.atomic(using=using):
        state = _state(using, lock=True)
        SessionDay.objects.using(using).all().delete()
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
            state.watermark, state.built_at = target, now
            state.save(using=using)
        return state


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
