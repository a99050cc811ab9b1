"""Retention of the abandoned-agent tally: ``prune_empty_sessions`` drops its old days too, adding
what they counted to the retired ledger in the same transaction (``/metrics``' counter of
abandoned agents never goes down)."""

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from agents_app.conf import hermes_settings
from agents_app.models import AbandonedAgentTally
from sessions_app.ledger import retire_abandoned_agents
from sessions_app.scope import exact_name


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
        keep_days = hermes_settings.HERMES_ABANDONED_TALLY_RETENTION_DAYS
    if isinstance(keep_days, bool) or not isinstance(keep_days, int) or keep_days < 0:
        raise ValidationError({"keep_days": "must be a whole number of days, 0 or more (0 keeps the whole tally)."})
    today = today or timezone.now().astimezone(dt.UTC).date()
    try:
        before = today - dt.timedelta(days=keep_days) if keep_days else None
    except OverflowError:
        before = None
    if before is None:
        return TallyPruneResult(before=None, rows=0, agents=0, dry_run=dry_run)
    old = AbandonedAgentTally.objects.using(using).filter(day__lt=before)
    if model is not None:
        old = old.filter(model__name=model)
    if source is not None:
        old = old.filter(source=source)  # a KeyField: exact on every backend
    with transaction.atomic(using=using):
        totals = old.order_by().aggregate(rows=Count("pk"), agents=Sum("count"))
        if not dry_run and totals["rows"]:
            retire_abandoned_agents(retired_counts(old), using=using)
            old.delete()
    return TallyPruneResult(before=before, rows=totals["rows"], agents=int(totals["agents"] or 0), dry_run=dry_run)


def retired_counts(tallies):
    """``(model name, source, end reason, agents)`` of tally rows, grouped exactly: what deleting
    them retires into the ledger (source and end reason are ``KeyField``s: exact on every backend)."""
    groups = tallies.order_by().values("model__name", "source", "end_reason")
    rows = groups.annotate(agents=Sum("count")).values_list("model__name", "source", "end_reason", "agents")
    return [(name, source, reason, int(agents)) for name, source, reason, agents in rows]
