"""Ending sessions that will never end by themselves (``manage.py close_stale_sessions``).

A session is stale when it is open (no ``ended_at``) and its last activity — its newest message
timestamp, or its start when it has no message — is older than the idle time. It is ended with
``end_reason = "stale"`` and ``ended_at`` = that last activity (not the time of the sweep: the
session's length then says how long the agent really worked, and the sweep's own schedule does
not leak into the data). Prune keeps open sessions; once ended, an empty stale session
becomes prunable like any other.

A session that gets a message while the sweep runs is never touched: each batch locks its rows
(``FOR UPDATE SKIP LOCKED`` where the database has it: the save path locks the session row before
it adds messages, so a row being written is skipped), and the UPDATE statement itself re-checks
"still open, started before the cutoff, no message at or after the cutoff". Ending an empty
session changes its cause (``never_ended`` becomes ``ghost``), so each batch marks the past days
it changed for the daily rollup in its own transaction; the marks are folded at the end.
"""

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from agents_app.db import run_with_retry
from agents_app.registry import counts_by_model_name
from sessions_app.models import Message, Session
from sessions_app.rollup import fold_marks, mark_days, old_day
from sessions_app.scope import exact_name

STALE_REASON = "stale"
DEFAULT_BATCH_SIZE = 1000
MAX_BATCH_SIZE = 10_000


@dataclass
class StaleResult:
    """Sessions ended (or, in a dry run, to be ended) per model name (None: no model), and those skipped."""

    cutoff: dt.datetime
    dry_run: bool
    closed: dict[str | None, int] = field(default_factory=dict)
    skipped: int = 0  # got a message or were being written while the sweep ran
    batches: int = 0

    @property
    def total_closed(self) -> int:
        return sum(self.closed.values())


def stale_condition(cutoff: dt.datetime) -> Q:
    """Open, started before ``cutoff``, and no message at or after it: last activity before ``cutoff``."""
    recent = Message.objects.filter(session_id=OuterRef("pk"), timestamp__gte=cutoff)
    return Q(ended_at__isnull=True, started_at__lt=cutoff) & ~Exists(recent)


def last_activity():
    """The newest of the session's start and its messages' timestamps, as an expression."""
    newest = Message.objects.filter(session_id=OuterRef("pk")).order_by("-timestamp").values("timestamp")[:1]
    return Greatest(F("started_at"), Coalesce(Subquery(newest), F("started_at")))


def close_stale_sessions(
    *,
    idle: dt.timedelta,
    model: str | None = None,
    source: str | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    using: str = DEFAULT_DB_ALIAS,
    now: dt.datetime | None = None,
    progress: Callable[[StaleResult], None] | None = None,
) -> StaleResult:
    """End the open sessions idle longer than ``idle``, ``batch_size`` per transaction, in key order.

    ``model``/``source`` are exact names. ``dry_run`` counts per model and writes nothing.
    ``progress`` is called with the running result after each batch.
    """
    if not isinstance(idle, dt.timedelta) or idle <= dt.timedelta(0):
        raise ValidationError({"idle": "must be a positive duration: a session being written now is never stale."})
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValidationError({"batch_size": f"must be a whole number from 1 to {MAX_BATCH_SIZE}."})
    try:
        cutoff = (now or timezone.now()) - idle
    except OverflowError:
        raise ValidationError({"idle": "reaches back before the year 1: no session is that old."}) from None
    scope = Session.objects.using(using).matching(model=exact_name(model, "model"), source=exact_name(source, "source"))
    condition = stale_condition(cutoff)
    result = StaleResult(cutoff=cutoff, dry_run=dry_run)
    if dry_run:
        per_model = scope.filter(condition).order_by().values("model").annotate(n=Count("pk"))
        result.closed = counts_by_model_name(Counter({row["model"]: row["n"] for row in per_model}), using=using)
        return result

    closed = Counter()
    candidates = scope.filter(condition).order_by("pk").values_list("pk", "model_id", "started_at")
    last_pk = None
    try:
        while True:
            page = candidates if last_pk is None else candidates.filter(pk__gt=last_pk)
            batch = {pk: (model_id, started) for pk, model_id, started in itertools.islice(page.iterator(), batch_size)}
            if not batch:
                break
            last_pk = list(batch)[-1]  # in the database's order, which may differ from Python's
            ended = run_with_retry(lambda b=batch: _close_batch(b, cutoff, using=using), using=using)
            closed.update(batch[pk][0] for pk in ended)
            result.skipped += len(batch) - len(ended)
            result.batches += 1
            if progress:
                result.closed = counts_by_model_name(closed, using=using)
                progress(result)
    finally:
        fold_marks(using=using)
    result.closed = counts_by_model_name(closed, using=using)
    return result


def _close_batch(batch: dict, cutoff: dt.datetime, *, using: str) -> set:
    """End the still-stale sessions of one batch (``{pk: (model id, started_at)}``) in one
    transaction, marking their past days; returns the pks ended."""
    features = connections[using].features
    sessions = Session.objects.using(using)
    with transaction.atomic(using=using):
        lock = sessions.filter(pk__in=list(batch)).order_by("pk")
        locked = list(
            lock.select_for_update(skip_locked=features.has_select_for_update_skip_locked).values_list("pk", flat=True)
        )
        if not locked:
            return set()
        # The condition again, in the UPDATE itself: a message committed since the scan (by a
        # writer that did not lock the row, e.g. a raw importer) keeps its session open.
        stale = sessions.filter(stale_condition(cutoff), pk__in=locked)
        eligible = set(stale.values_list("pk", flat=True))
        if not eligible:
            return set()
        count = stale.filter(pk__in=list(eligible)).update(ended_at=last_activity(), end_reason=STALE_REASON)
        if count != len(eligible):
            # A row changed between the SELECT and the UPDATE (only possible without row locks):
            # the rows still open are the ones the UPDATE left alone.
            eligible -= set(sessions.filter(pk__in=list(eligible), ended_at__isnull=True).values_list("pk", flat=True))
        mark_days({day for pk in eligible if (day := old_day(batch[pk][1])) is not None}, using=using)
        return eligible
