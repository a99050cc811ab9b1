"""Services of the agent side: the abandoned-agent tally (counting and pruning)."""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from agents_app.models import AbandonedAgentTally
from agents_app.registry import language_model_id, run_with_model_ids
from hermes_site.db import filter_exact
from sessions_app import validation
from sessions_app.analytics import exact_name


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
            model_id = language_model_id(model, using=using)  # cached after the first commit
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
    return settings.HERMES_TRACK_ABANDONED_AGENTS


@dataclass(frozen=True)
class TallyPruneResult:
    """Tally rows (and the agents they counted) from days before ``before``: deleted, or in a dry
    run, to be deleted. ``before`` is None when retention is off (nothing is pruned)."""

    before: dt.date | None
    rows: int
    agents: int
    dry_run: bool


def prune_abandoned_tally(
    *,
    keep_days: int | None = None,
    model: str | None = None,
    source: str | None = None,
    dry_run: bool = False,
    today: dt.date | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> TallyPruneResult:
    """Delete abandoned-agent tally rows older than ``keep_days`` days (default: the setting
    ``HERMES_ABANDONED_TALLY_RETENTION_DAYS``; 0 keeps everything), in one statement.

    Today's row and the ``keep_days`` days before it are kept. ``model``/``source`` limit the prune
    to exact names, as ``prune_empty_sessions`` does.
    """
    model = exact_name(model, "model")
    source = exact_name(source, "source")
    if keep_days is None:
        keep_days = settings.HERMES_ABANDONED_TALLY_RETENTION_DAYS
    if isinstance(keep_days, bool) or not isinstance(keep_days, int) or keep_days < 0:
        raise ValidationError({"keep_days": "must be a whole number of days, 0 or more (0 keeps the whole tally)."})
    if not keep_days:
        return TallyPruneResult(before=None, rows=0, agents=0, dry_run=dry_run)
    today = today or timezone.now().astimezone(dt.UTC).date()
    try:
        before = today - dt.timedelta(days=keep_days)
    except OverflowError:
        return TallyPruneResult(before=None, rows=0, agents=0, dry_run=dry_run)
    old = AbandonedAgentTally.objects.using(using).filter(day__lt=before)
    if model is not None:
        old = old.filter(model__name=model)
    if source is not None:
        old = filter_exact(old, "source", source)
    with transaction.atomic(using=using):
        totals = old.order_by().aggregate(rows=Count("pk"), agents=Sum("count"))
        if not dry_run and totals["rows"]:
            old.delete()
    return TallyPruneResult(before=before, rows=totals["rows"], agents=int(totals["agents"] or 0), dry_run=dry_run)
