"""Deleting empty sessions (one engine for ``prune_empty_sessions`` and the admin action), and the
abandoned-agent tally's retention.

Safety rules (ARCHITECTURE.md, "Prune races"): a session is deleted only when it has no message
row and is not the parent of another session; the command also requires it to have started
before the grace period and (unless ``include_open``) to have ended. The message and child
checks are part of the DELETE statement itself, so a writer that adds a first message to a
candidate while the deletion runs always wins; a writer that arrives after its session was
deleted simply creates it again with its messages.

With an ``archive`` (a text file), every deleted session is written to it as one JSON Lines
object (``archive_record``) and the file is flushed and fsynced inside the batch's transaction,
after the DELETE and before its COMMIT: a crash can leave archived rows that were not deleted
(a rerun archives them again: duplicates, by id, are possible), never a deleted row that is not
in the archive.

The rollup and the ledger are kept in the batch's transaction too: the past days of the deleted
sessions are marked (``rollup.mark_days``) and the sessions added to the deleted-sessions ledger,
so a kill at any point leaves both right; the marks are folded at the end of the run (or by the
next run, read or build after a crash).
"""

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Count, Q
from django.utils import timezone

from agents_app.db import run_with_retry
from agents_app.registry import counts_by_model_name
from sessions_app.archive import ARCHIVE_FIELDS, write_archive
from sessions_app.ledger import record_deleted_sessions
from sessions_app.models import Session
from sessions_app.rollup import fold_marks, mark_days, old_day
from sessions_app.scope import exact_name

DEFAULT_GRACE = dt.timedelta(hours=24)
# What the ledger and the rollup's marks need of a deleted session.
_LEDGER_FIELDS = ("model_id", "source", "profile", "message_count", "started_at")
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


@dataclass(frozen=True)
class EmptyDeletion:
    """What the admin action did with the sessions an operator selected."""

    deleted: int  # empty sessions deleted
    kept_with_messages: int  # selected sessions kept because they have message rows
    kept_with_children: int  # empty sessions kept because compression children continue them


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
    archive=None,
) -> PruneResult:
    """Delete empty sessions that started more than ``older_than`` ago, ``batch_size`` per transaction.

    ``model`` and ``source`` are exact names. ``dry_run`` counts what would go and writes nothing
    (nor to the archive). ``progress`` is called with the running result after each batch.
    ``archive``: a text file that receives each deleted session (``archive_record``), fsynced
    before its batch commits.
    """
    if not isinstance(older_than, dt.timedelta) or older_than <= dt.timedelta(0):
        raise ValidationError(
            {"older_than": "the grace period must be a positive duration: sessions being written now are never pruned."}
        )
    _check_batch_size(batch_size)
    scope = Session.objects.using(using).matching(model=exact_name(model, "model"), source=exact_name(source, "source"))
    try:
        cutoff = (now or timezone.now()) - older_than
    except OverflowError:
        raise ValidationError(
            {"older_than": f"{older_than.days} days reaches back before the year 1: no session is that old."}
        ) from None
    result = PruneResult(cutoff=cutoff, dry_run=dry_run)
    empty = scope.empty()
    old = empty.started_before(cutoff)
    result.kept["too_recent"] = empty.count() - old.count()
    if not include_open:
        result.kept["open"] = old.open().count()
        old = old.ended()
    result.kept["has_children"] = old.with_children().count()

    if dry_run:
        per_model = scope.prunable(cutoff, include_open=include_open).values("model__name").annotate(n=Count("pk"))
        result.deleted = {row["model__name"]: row["n"] for row in per_model.order_by()}
        return result

    # The scan walks old (and closed) empty sessions in key order and asks EXISTS for children per
    # row in the select list, so each page costs the same. With NOT EXISTS in the WHERE instead,
    # PostgreSQL planned a merge anti-join that re-read an index from its start for every page.
    scan = scope.empty().started_before(cutoff)
    scan = (scan if include_open else scan.ended()).with_has_children()
    scan = scan.order_by("pk").values_list("pk", "model_id", "has_children")

    def candidates():
        last_pk = None
        while rows := list((scan if last_pk is None else scan.filter(pk__gt=last_pk))[:batch_size]):
            last_pk = rows[-1][0]  # in the database's order, which may differ from Python's
            yield from ((pk, model_id) for pk, model_id, children in rows if not children)

    condition = Session.objects.prunable_condition(cutoff, include_open=include_open)
    deleted = Counter()

    def on_batch(deleted_models: list, locked: int, candidates: int) -> None:
        deleted.update(deleted_models)
        result.kept["locked"] += candidates - locked
        result.kept["changed"] += locked - len(deleted_models)
        result.batches += 1
        if progress:
            result.deleted = counts_by_model_name(deleted, using=using)
            progress(result)

    _delete_in_batches(candidates(), condition, batch_size=batch_size, using=using, on_batch=on_batch, archive=archive)
    result.deleted = counts_by_model_name(deleted, using=using)
    return result


def delete_empty_sessions(queryset) -> EmptyDeletion:
    """Delete the sessions of ``queryset`` that have no message row and no child session (the
    admin action: no age or open/ended rule, the operator chose them), with the prune's engine."""
    using = queryset.db
    queryset = queryset.order_by()
    selected = queryset.count()
    with_children = queryset.empty().with_children().count()
    condition = Session.objects.prunable_condition(include_open=True)
    candidates = queryset.filter(condition).order_by("pk").values_list("pk", "model_id")
    deleted = 0

    def on_batch(deleted_models: list, locked: int, candidates: int) -> None:
        nonlocal deleted
        deleted += len(deleted_models)

    candidates = candidates.iterator()
    _delete_in_batches(candidates, condition, batch_size=500, using=using, on_batch=on_batch)
    return EmptyDeletion(
        deleted, kept_with_messages=selected - deleted - with_children, kept_with_children=with_children
    )


def _delete_in_batches(
    candidates: Iterable[tuple], condition: Q, *, batch_size: int, using: str, on_batch, archive=None
) -> None:
    """Delete ``(pk, model_id)`` candidates that still meet ``condition``, a transaction per
    batch; ``on_batch(deleted model ids, locked, candidates)`` after each. Then (also after an
    error) fold the rollup's marks: the days of the deleted sessions, marked batch by batch."""
    candidates = iter(candidates)
    try:
        while batch := dict(itertools.islice(candidates, batch_size)):
            deleted_ids, locked_ids = run_with_retry(
                lambda b=batch: _delete_batch(condition, b, using=using, archive=archive), using=using
            )
            on_batch([batch[pk] for pk in deleted_ids], len(locked_ids), len(batch))
    finally:
        fold_marks(using=using)


def _delete_batch(condition: Q, batch: dict, *, using: str, archive=None) -> tuple[set, set]:
    """Delete the still-eligible sessions of one batch in one transaction; returns (deleted, locked) pks.

    1. Lock the batch's rows with ``FOR UPDATE SKIP LOCKED``. A row another transaction holds is
       being written (``append_messages`` locks the session row before adding messages;
       ``compress_session`` updates the parent before creating its child), so it is about to stop
       being empty: skip it. A writer that comes after our lock waits for our commit and then, if
       we deleted its session, creates it again with its messages. SQLite has no row locks; its
       IMMEDIATE transactions serialize writers instead. Rows are locked in key order, so two
       deletions never deadlock.
    2. Delete with the whole condition, the NOT EXISTS on messages and on children included, in
       that one DELETE statement (``_delete_where``). At READ COMMITTED (Django's default on every
       backend here) it sees everything committed before it started.
    3. With an ``archive``, the rows still eligible were read whole (under the lock) before the
       DELETE, which is limited to them; the ones it did delete are written, flushed and fsynced
       before the transaction commits.
    4. The deleted sessions go into the ledger and their past days are marked, before the COMMIT.
    """
    features = connections[using].features
    sessions = Session.objects.using(using)
    with transaction.atomic(using=using):
        lock = sessions.filter(pk__in=list(batch)).order_by("pk")
        lock = lock.select_for_update(skip_locked=features.has_select_for_update_skip_locked)
        locked = set(lock.values_list("pk", flat=True))
        if not locked:
            return set(), locked
        eligible = sessions.filter(condition, pk__in=list(locked)).order_by("pk")
        if archive is not None:
            rows = {row["id"]: row for row in eligible.values(*ARCHIVE_FIELDS)}
            targets = set(rows)
        else:
            rows = {row["id"]: row for row in eligible.values("id", *_LEDGER_FIELDS)}
            targets = locked
        count = _delete_where(sessions.filter(condition, pk__in=list(targets))) if targets else 0
        deleted = targets
        if count != len(targets):
            # Some got a message or a child in the meantime: ask which remain (we still hold their locks).
            deleted = targets - set(sessions.filter(pk__in=list(targets)).values_list("pk", flat=True))
        if archive is not None and deleted:
            write_archive(archive, [rows[pk] for pk in rows if pk in deleted])
        gone = [rows[pk] for pk in rows if pk in deleted]
        record_deleted_sessions(([row[name] for name in _LEDGER_FIELDS[:4]] for row in gone), using=using)
        mark_days({day for row in gone if (day := old_day(row["started_at"])) is not None}, using=using)
        return deleted, locked


def _delete_where(queryset) -> int:
    """Run ``DELETE FROM <table> WHERE <the queryset's WHERE clause>`` as one statement; returns the row count.

    Not ``queryset.delete()``: because messages CASCADE and children SET_NULL, Django's Collector
    first SELECTs the matching rows and then deletes them by key, which drops the condition from
    the DELETE and reopens the race. Not ``_raw_delete()`` either: with a subquery on the same
    table (the children check) Django wraps it on MySQL/MariaDB as ``WHERE id IN (SELECT ...)``,
    which MariaDB runs as a locking full scan. Skipping the Collector is safe because only rows
    without messages or children match; no delete signals are sent (nothing here listens).
    """
    connection = connections[queryset.db]
    query = queryset.query
    where, params = query.get_compiler(queryset.db).compile(query.where)
    table = connection.ops.quote_name(query.get_meta().db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE {where}", params)  # noqa: S608 - compiled by the ORM
        return cursor.rowcount


def _check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValidationError({"batch_size": f"must be a whole number from 1 to {MAX_BATCH_SIZE}."})
