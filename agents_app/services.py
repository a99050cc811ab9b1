"""Services of the agent side: the abandoned-agent tally (counting and pruning)."""

import datetime as dt

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from agents_app.conf import hermes_settings
from agents_app.models import AbandonedAgentTally
from agents_app.registry import language_model_id, run_with_model_ids
from sessions_app import validation


def record_abandoned_agent(
    model: str, source: str, reason: str, *, day: dt.date | None = None, using: str = DEFAULT_DB_ALIAS
) -> None:
    """Count one agent that ended without saving a message: a single atomic upsert (no
    read-modify-write), so concurrent processes never lose an increment."""
    model = validation.check_identifier(model, "model", max_length=255)
    source = validation.check_identifier(source, "source", max_length=64)
    reason = validation.check_identifier(reason, "reason", max_length=64)
    day = day or timezone.now().astimezone(dt.UTC).date()

    def write() -> None:
        with transaction.atomic(using=using):
            model_id = language_model_id(model, using=using)
            _increment(using, day, model_id, source, reason)

    run_with_model_ids(write, using=using)


def _increment(using: str, day: dt.date, model_id: int, source: str, reason: str) -> None:
    connection = connections[using]
    meta = AbandonedAgentTally._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    columns = ", ".join(
        quote(meta.get_field(name).column) for name in ("day", "model", "source", "end_reason", "count")
    )
    count = quote(meta.get_field("count").column)
    if connection.vendor == "mysql":
        conflict = f"ON DUPLICATE KEY UPDATE {count} = {count} + 1"
    else:  # PostgreSQL and SQLite (3.24+) share the ON CONFLICT syntax
        key = ", ".join(quote(meta.get_field(name).column) for name in ("day", "model", "source", "end_reason"))
        conflict = f"ON CONFLICT ({key}) DO UPDATE SET {count} = {table}.{count} + 1"
    sql = f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, 1) {conflict}"  # noqa: S608 (names quoted)
    with connection.cursor() as cursor:
        cursor.execute(sql, [connection.ops.adapt_datefield_value(day), model_id, source, reason])


def abandoned_tracking_enabled() -> bool:
    return hermes_settings.HERMES_TRACK_ABANDONED_AGENTS
