"""The ledgers that keep ``/metrics``' counters from going down when rows go: sessions our writers
delete (prune, the admin), and abandoned-agent tally rows retention or the admin delete.

Each is written in the transaction that deletes the rows it accounts for, so a counter built as
"rows still stored + rows retired" never decreases whatever commits between two scrapes.
"""

from collections import Counter
from collections.abc import Iterable

from django.db import DEFAULT_DB_ALIAS
from django.db.models import F

from agents_app.models import LanguageModel, RetiredAbandonedAgents
from sessions_app.models import DeletedSessions, Session
from sessions_app.rollup import mark_days, old_day


def record_deleted_sessions(rows: Iterable[tuple], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Add sessions about to be (or just) deleted to the ledger: ``rows`` of ``(model id,
    source, profile, message_count)``. Call it in the deleting transaction. A few queries per
    (model, source, profile) group; none for no rows."""
    sessions, messages = Counter(), Counter()
    for model_id, source, profile, message_count in rows:
        sessions[model_id, source, profile] += 1
        messages[model_id, source, profile] += message_count or 0
    if not sessions:
        return
    ids = {model_id for model_id, _, _ in sessions if model_id is not None}
    names = dict(LanguageModel.objects.using(using).filter(pk__in=ids).values_list("pk", "name"))
    merged_sessions, merged_messages = Counter(), Counter()
    for (model_id, source, profile), count in sessions.items():
        key = (names.get(model_id) or "", source, profile)  # no model and a model named "" are one
        merged_sessions[key] += count
        merged_messages[key] += messages[model_id, source, profile]
    for (model, source, profile), count in merged_sessions.items():
        ledger = DeletedSessions.objects.using(using)
        row, _ = ledger.get_or_create(model=model, source=source, profile=profile)
        ledger.filter(pk=row.pk).update(
            sessions=F("sessions") + count, messages=F("messages") + merged_messages[model, source, profile]
        )


def forget_sessions(queryset) -> None:
    """Record the sessions of ``queryset`` in the ledger and mark their past days, before a
    deletion of them in the same transaction (the admin's own delete views)."""
    using = queryset.db
    rows = list(queryset.order_by().values_list("model_id", "source", "profile", "message_count", "started_at"))
    record_deleted_sessions((row[:4] for row in rows), using=using)
    mark_days({day for *_, started in rows if (day := old_day(started)) is not None}, using=using)


def mark_sessions_of(messages) -> None:
    """Mark the past days of the sessions these messages belong to, before deleting the messages
    in the same transaction (a session left without messages becomes empty)."""
    using = messages.db
    session_ids = set(messages.order_by().values_list("session_id", flat=True))
    started = Session.objects.using(using).filter(pk__in=session_ids).values_list("started_at", flat=True)
    mark_days({day for moment in started if (day := old_day(moment)) is not None}, using=using)


def retire_abandoned_agents(rows: Iterable[tuple], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Add tally rows about to be deleted to the retired ledger: ``rows`` of ``(model name,
    source, end reason, count)``. Call it in the deleting transaction."""
    totals = Counter()
    for model, source, reason, count in rows:
        totals[model, source, reason] += count
    for (model, source, reason), count in totals.items():
        ledger = RetiredAbandonedAgents.objects.using(using)
        row, _ = ledger.get_or_create(model=model, source=source, end_reason=reason)
        ledger.filter(pk=row.pk).update(count=F("count") + count)
