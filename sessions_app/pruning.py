"""Pruning empty sessions: the clean-up half of the empty-session report.

Safety rules (ARCHITECTURE.md, "Prune races"): a session is deleted only when it has no message
row, started before the grace period, is not the parent of another session and (unless
``include_open``) has ended. The message and child checks are part of the DELETE statement
itself, so a writer that adds a first message to a candidate while the prune runs always wins;
a writer that arrives after its session was pruned simply creates it again with its messages.
"""

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Count, Q
from django.utils import timezone

from agents_app.models import LanguageModel
from hermes_site.db import filter_exact, run_with_retry
from sessions_app.analytics import exact_name
from sessions_app.models import Session
from sessions_app.querysets import has_children, has_messages

DEFAULT_GRACE = dt.timedelta(hours=24)
DEFAULT_BATCH_SIZE = 1000
MAX_BATCH_SIZE = 10_000

# Why an empty session that matched the model/source filters was kept (machine key -> label).
KEPT_REASONS = {
    "too_recent": "younger than the grace period",
    "open": "still open (not ended; --include-open prunes them)",
    "has_children": "parent of another session",
    "changed": "got a message or a child while the prune ran",
    "locked": "being written by another transaction",
}


@dataclass
class PruneResult:
    """What a prune deleted (or, in a dry run, would delete) per model, and what it kept and why."""

    cutoff: dt.datetime
    dry_run: bool
    deleted: dict[str | None, int] = field(default_factory=dict)  # model name (None: no model) -> sessions
    kept: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KEPT_REASONS, 0))
    batches: int = 0

    @property
    def total_deleted(self) -> int:
        return sum(self.deleted.values())

    @property
    def total_kept(self) -> int:
        return sum(self.kept.values())


def prune_empty_sessions(
    *,
    older_than: dt.timedelta = DEFAULT_GRACE,
    model: str | None = None,
    source: str | None = None,
    include_open: bool = False,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    using: str = DEFAULT_DB_ALIAS,
    now: dt.datetime | None = None,
    progress: Callable[[PruneResult], None] | None = None,
) -> PruneResult:
    """Delete empty sessions that started more than ``older_than`` ago, ``batch_size`` per transaction.

    ``model`` and ``source`` are exact names. ``dry_run`` counts what would go and writes nothing.
    ``progress`` is called with the running result after each batch.
    """
    if not isinstance(older_than, dt.timedelta) or older_than <= dt.timedelta(0):
        raise ValidationError(
            {"older_than": "the grace period must be a positive duration: sessions being written now are never pruned."}
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValidationError({"batch_size": f"must be a whole number from 1 to {MAX_BATCH_SIZE}."})
    model = exact_name(model, "model")
    source = exact_name(source, "source")
    try:
        cutoff = (now or timezone.now()) - older_than
    except OverflowError:
        raise ValidationError(
            {"older_than": f"{older_than.days} days reaches back before the year 1: no session is that old."}
        ) from None
    result = PruneResult(cutoff=cutoff, dry_run=dry_run)

    scope = Session.objects.using(using).all()
    if model is not None:
        scope = scope.filter(model__name=model)
    if source is not None:
        # Exact on MySQL/MariaDB too, whose default collation would also match "CLI" and "cli ".
        scope = filter_exact(scope, "source", source)
    eligible = _eligibility(cutoff=result.cutoff, include_open=include_open, using=using)
    candidates = scope.filter(eligible)

    old = Q(started_at__lt=result.cutoff)
    kept = {"too_recent": Count("pk", filter=~old)}
    if not include_open:
        kept["open"] = Count("pk", filter=old & Q(ended_at__isnull=True))
    closed = Q() if include_open else Q(ended_at__isnull=False)
    # The Exists goes into the filter itself: referring to it through an annotation made Django
    # drop it from the aggregate's subquery (SQLite then read "has_children" as a string).
    kept["has_children"] = Count("pk", filter=old & closed & Q(has_children()))
    result.kept.update(scope.empty().aggregate(**kept))

    if dry_run:
        per_model = candidates.order_by().values("model__name").annotate(sessions=Count("pk"))
        result.deleted = {row["model__name"]: row["sessions"] for row in per_model}
        return result

    # The scan walks old (and closed) sessions in primary key order and asks EXISTS per row in the
    # select list, so each page costs the same. With NOT EXISTS in the WHERE instead, PostgreSQL
    # planned a merge anti-join that re-read the message index from its start for every page:
    # quadratic (400k sessions: 12s instead of 7s, and growing faster than the table).
    scan = (
        scope.filter(old, closed)
        .annotate(has_messages=has_messages())
        .annotate(has_children=has_children())
        .order_by("pk")
        .values_list("pk", "model_id", "has_messages", "has_children")
    )
    deleted_by_model_id: Counter = Counter()
    pending: dict = {}  # candidate pk -> model id, in scan order
    last_pk = None
    while True:
        rows = list((scan if last_pk is None else scan.filter(pk__gt=last_pk))[:batch_size])
        if rows:
            last_pk = rows[-1][0]  # in the database's order, which may differ from Python's
            pending.update((pk, model_id) for pk, model_id, messages, children in rows if not messages and not children)
        while len(pending) >= batch_size or (pending and not rows):
            batch = dict(itertools.islice(pending.items(), batch_size))
            for pk in batch:
                del pending[pk]
            deleted_ids, locked_ids = run_with_retry(
                lambda b=batch: _delete_batch(eligible, b, using=using), using=using
            )
            deleted_by_model_id.update(batch[pk] for pk in deleted_ids)
            result.kept["locked"] += len(batch) - len(locked_ids)
            result.kept["changed"] += len(locked_ids) - len(deleted_ids)
            result.batches += 1
            if progress:
                result.deleted = _by_model_name(deleted_by_model_id, using=using)
                progress(result)
        if not rows:
            break
    result.deleted = _by_model_name(deleted_by_model_id, using=using)
    return result


def _eligibility(*, cutoff: dt.datetime, include_open: bool, using: str) -> Q:
    """The condition a session must meet, at the moment of the DELETE, to be pruned."""
    condition = Q(started_at__lt=cutoff) & ~has_messages() & ~has_children()
    return condition if include_open else condition & Q(ended_at__isnull=False)


def _delete_batch(eligible: Q, batch: dict, *, using: str) -> tuple[set, set]:
    """Delete the still-eligible sessions of one batch in one transaction; returns (deleted, locked) pks.

    1. Lock the batch's rows with ``FOR UPDATE SKIP LOCKED``. A row another transaction holds
       is being written (``append_messages`` locks the session row before adding messages;
       ``compress_session`` updates the parent before creating its child), so it is about to
       stop being empty: skip it. A writer that comes after our lock waits for our commit and
       then, if we deleted its session, creates it again with its messages. SQLite has no row
       locks; its IMMEDIATE transactions serialize writers instead.
    2. Delete with the whole eligibility condition, the NOT EXISTS on messages and on children
       included, in that one DELETE statement (see ``_delete_where``). At READ COMMITTED
       (Django's default on every backend here) the statement sees everything committed before
       it started, so a message committed since our candidate SELECT keeps its session.
    """
    features = connections[using].features
    with transaction.atomic(using=using):
        lock = Session.objects.using(using).filter(pk__in=list(batch)).order_by("pk")
        lock = lock.select_for_update(skip_locked=features.has_select_for_update_skip_locked)
        locked = set(lock.values_list("pk", flat=True))
        if not locked:
            return set(), locked
        count = _delete_where(Session.objects.using(using).filter(eligible, pk__in=list(locked)), using=using)
        if count == len(locked):
            return locked, locked
        # Some got a message or a child in the meantime: ask which rows remain (we still hold their locks).
        remaining = set(Session.objects.using(using).filter(pk__in=list(locked)).values_list("pk", flat=True))
        return locked - remaining, locked


def _delete_where(queryset, *, using: str) -> int:
    """Run ``DELETE FROM <table> WHERE <the queryset's WHERE clause>`` as one statement; returns the row count.

    Not ``queryset.delete()``: because messages CASCADE and children SET_NULL, Django's
    Collector first SELECTs the matching rows and then deletes them by primary key, which drops
    the condition from the DELETE and reopens the race. Not ``_raw_delete()`` either: when the
    WHERE has a subquery on the same table (the children check), Django wraps it on
    MySQL/MariaDB as ``WHERE id IN (SELECT ... FROM session V0 ...)``, which MariaDB runs as a
    locking full scan of the session table for every batch. MariaDB (10.3+), PostgreSQL and
    SQLite all accept the plain self-referencing form built here. Skipping the Collector is
    safe because only rows without messages or children match; no delete signals are sent
    (nothing in this project listens to them).
    """
    connection = connections[using]
    query = queryset.query
    where, params = query.get_compiler(using).compile(query.where)
    table = connection.ops.quote_name(query.get_meta().db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE {where}", params)  # noqa: S608 - compiled by the ORM
        return cursor.rowcount


def _by_model_name(counts: Counter, *, using: str) -> dict[str | None, int]:
    models = LanguageModel.objects.using(using).filter(pk__in=[pk for pk in counts if pk])
    names = dict(models.values_list("pk", "name"))
    return {names.get(model_id) if model_id else None: n for model_id, n in counts.items()}
