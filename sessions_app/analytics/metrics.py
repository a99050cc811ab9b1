"""What ``GET /metrics`` exposes, as plain data (no Prometheus here, no label caps: the renderer,
``sessions_app.metrics``, caps the labels).

One consistent snapshot (``agents_app.db.consistent_reads``) of:
- sessions per (model, source, profile): stored, empty, the sum of their stored ``message_count``
  counters, and those started in the last ``RECENT`` (``daily.read_days``: the rollup's days and
  a live count of the recent ones, so the cost follows days, not sessions);
- the deleted-sessions ledger, per the same keys (sessions our writers deleted);
- abandoned agents per (model, source, end reason): the tally's days plus the retired ledger.
Read in one snapshot, "stored + deleted" and "tally + retired" never count a row twice or not at
all, whatever commits meanwhile: the counters built on them never go down.

Model keys are those of the reports (``counts.model_key``): ``NO_MODEL_KEY`` for a session without
a model or with a model recorded as ``''``, and a model literally named like a bucket (``other``)
in double quotes.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS
from django.db.models import F, Sum

from agents_app.db import consistent_reads
from agents_app.models import AbandonedAgentTally, RetiredAbandonedAgents
from sessions_app.analytics.daily import read_days
from sessions_app.counts import model_key
from sessions_app.models import DeletedSessions
from sessions_app.scope import Scope

RECENT = dt.timedelta(hours=24)


@dataclass(frozen=True)
class SessionGroup:
    """Sessions of one (model, source, profile): stored now, deleted by our writers, and the
    stored ones started in the last ``RECENT``; ``messages`` sums their stored counters."""

    model: str
    source: str
    profile: str
    sessions: int
    empty: int
    messages: int
    recent: int
    recent_empty: int
    deleted: int


@dataclass(frozen=True)
class AbandonedGroup:
    """Agents of one (model, source, end reason) that ended without saving a message: those the
    tally still holds plus those retired from it."""

    model: str
    source: str
    end_reason: str
    agents: int


@dataclass(frozen=True)
class MetricsSnapshot:
    """Everything one scrape exposes, as read at ``read_at``; groups ordered by their keys."""

    sessions: list[SessionGroup]
    abandoned: list[AbandonedGroup]
    newest_session: dict[str, dt.datetime]  # source -> started_at of its newest session
    read_at: dt.datetime


def metrics_snapshot(*, using: str = DEFAULT_DB_ALIAS, now: dt.datetime | None = None) -> MetricsSnapshot:
    """Sessions (stored, empty, messages, recent, deleted) per model, source and profile, abandoned
    agents per model, source and end reason, and the newest session per source, read in one
    snapshot; a handful of small queries whatever the number of sessions."""
    read_at = now or dt.datetime.now(dt.UTC)
    recent_since = read_at - RECENT
    groups: dict[tuple, list[int]] = defaultdict(lambda: [0] * 6)
    newest: dict[str, dt.datetime] = {}
    abandoned: dict[tuple, int] = defaultdict(int)
    with consistent_reads(using):
        days = read_days(
            Scope(),
            dims=("model", "source", "profile"),
            cuts=[recent_since],
            activity=True,
            now=read_at,
            using=using,
            days=False,
        )
        for row in days.rows:
            counts = groups[row.model, row.source, row.profile]
            counts[0] += row.sessions
            counts[1] += row.empty
            counts[2] += row.messages
            if row.segment:  # started in the last RECENT
                counts[3] += row.sessions
                counts[4] += row.empty
            if row.newest is not None and (row.source not in newest or row.newest > newest[row.source]):
                newest[row.source] = row.newest
        ledger = DeletedSessions.objects.using(using).values_list("model", "source", "profile", "sessions")
        for model, source, profile, deleted in ledger:
            groups[model_key(model), source, profile][5] += deleted
        for model, source, reason, agents in _tally(using):
            abandoned[model_key(model), source, reason] += agents
        retired = RetiredAbandonedAgents.objects.using(using).values_list("model", "source", "end_reason", "count")
        for model, source, reason, agents in retired:
            abandoned[model_key(model), source, reason] += agents
    return MetricsSnapshot(
        sessions=[SessionGroup(*key, *groups[key]) for key in sorted(groups)],
        abandoned=[AbandonedGroup(*key, abandoned[key]) for key in sorted(abandoned)],
        newest_session=dict(sorted(newest.items())),
        read_at=read_at,
    )


def _tally(using: str):
    """``(model name, source, end reason, agents)`` from the abandoned-agent tally, all days summed,
    grouped exactly (source and end reason are ``KeyField``s)."""
    rows = (
        AbandonedAgentTally.objects.using(using)
        .order_by()
        .values(
            "model__name",
            group_source=F("source"),
            group_reason=F("end_reason"),
        )
        .annotate(agents=Sum("count"))
        .values_list("model__name", "group_source", "group_reason", "agents")
    )
    return [(name, source, reason, int(agents)) for name, source, reason, agents in rows]
