"""The Prometheus rendering of ``analytics.metrics_snapshot``: label caps, then a custom collector
on a registry of its own, so a scrape reads the database once and nothing is registered in
prometheus_client's global registry (whose process metrics would be this web worker's).

Stored-row figures are gauges (``hermes_sessions``, ``hermes_empty_sessions``, ``hermes_messages``,
the last 24 hours' ``hermes_recent_sessions``/``hermes_recent_empty_sessions``): they go down when
rows go. A family typed counter never decreases, by construction: ``hermes_sessions_stored_total``
is the sessions stored plus those our writers deleted (a ledger written in the deleting
transaction, read in the same snapshot), ``hermes_sessions_deleted_total`` that ledger alone,
``hermes_abandoned_agents_total`` the tally plus its retired rows.

Every label (model, source, profile, end reason) is capped: the first ``HERMES_METRICS_MAX_*``
values of each, in the order scrapes first saw them (the busiest first within one scrape), keep
their name; later ones are summed as ``other``. The choice is stored (``MetricLabel``) and never
revised, so no series ever moves between labels: a model that grows busy later stays ``other``
rather than take a name and leave ``other`` smaller.
"""

from collections import Counter, defaultdict
from collections.abc import Iterator

from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agents_app.conf import hermes_settings
from agents_app.db import run_with_retry
from sessions_app.analytics import NO_MODEL_KEY, MetricsSnapshot, metrics_snapshot
from sessions_app.models import MetricLabel, SessionRollupState

OTHER = "other"
DIMENSIONS = ("model", "source", "profile", "end_reason")
SESSION_LABELS = ["model", "source", "profile"]
ABANDONED_LABELS = ["model", "source", "end_reason"]


def label_caps() -> dict[str, int]:
    """How many values of each label keep their name (the ``HERMES_METRICS_MAX_*`` settings)."""
    return {
        "model": hermes_settings.HERMES_METRICS_MAX_MODELS,
        "source": hermes_settings.HERMES_METRICS_MAX_SOURCES,
        "profile": hermes_settings.HERMES_METRICS_MAX_PROFILES,
        "end_reason": hermes_settings.HERMES_METRICS_MAX_END_REASONS,
    }


def labels_for(snapshot: MetricsSnapshot, *, using: str = DEFAULT_DB_ALIAS) -> dict[str, dict[str, str]]:
    """``{dimension: {value: label}}`` for every value of the snapshot: its stored choice, or, for a
    value never scraped before, a new one (named while its label has room, the busiest first),
    stored before it is ever exposed. ``NO_MODEL_KEY`` is not a model: always its own label."""
    volume = {dimension: Counter() for dimension in DIMENSIONS}
    for group in snapshot.sessions:
        agents = group.sessions + group.deleted
        volume["model"][group.model] += agents
        volume["source"][group.source] += agents
        volume["profile"][group.profile] += agents
    for group in snapshot.abandoned:
        volume["model"][group.model] += group.agents
        volume["source"][group.source] += group.agents
        volume["end_reason"][group.end_reason] += group.agents
    volume["model"].pop(NO_MODEL_KEY, None)
    stored = _stored(using)
    if any(value not in stored[dimension] for dimension in DIMENSIONS for value in volume[dimension]):
        stored = run_with_retry(lambda: _register(volume, using), using=using)
    labels = {dimension: {value: value if named else OTHER for value, named in stored[dimension].items()}
              for dimension in DIMENSIONS}  # fmt: skip
    labels["model"][NO_MODEL_KEY] = NO_MODEL_KEY
    return labels


def _stored(using: str) -> dict[str, dict[str, bool]]:
    stored = defaultdict(dict)
    for dimension, value, named in MetricLabel.objects.using(using).values_list("dimension", "value", "named"):
        stored[dimension][value] = named
    return stored


def _register(volume: dict[str, Counter], using: str) -> dict[str, dict[str, bool]]:
    """Store a choice for every value not stored yet, under the rollup state row's lock (so two
    scrapes never both give the last named place away); returns every stored choice."""
    caps = label_caps()
    with transaction.atomic(using=using):
        SessionRollupState.objects.using(using).select_for_update().get_or_create(pk=1)
        stored = _stored(using)
        new = []
        for dimension in DIMENSIONS:
            room = caps[dimension] - sum(stored[dimension].values())
            fresh = sorted(
                (v for v in volume[dimension] if v not in stored[dimension]), key=lambda v: (-volume[dimension][v], v)
            )
            for value in fresh:
                named = room > 0 and value != OTHER  # a value literally named "other" is the bucket
                room -= named
                stored[dimension][value] = named
                new.append(MetricLabel(dimension=dimension, value=value, named=named))
        try:
            with transaction.atomic(using=using):
                MetricLabel.objects.using(using).bulk_create(new)
        except IntegrityError:  # stored meanwhile without the lock (another app): theirs stands
            return _stored(using)
        return stored


class SessionMetricsCollector(Collector):
    """Reads one ``metrics_snapshot`` per ``collect()`` and yields it as metric families."""

    def __init__(self, *, using: str = DEFAULT_DB_ALIAS):
        self.using = using

    def describe(self) -> list[Metric]:
        # Registering calls describe(); an explicit empty answer makes sure registering never reads the database.
        return []

    def collect(self) -> Iterator[Metric]:
        snapshot = metrics_snapshot(using=self.using)
        labels = labels_for(snapshot, using=self.using)
        yield from session_families(snapshot, labels)
        yield from abandoned_families(snapshot, labels)


def session_families(snapshot: MetricsSnapshot, labels) -> list[Metric]:
    totals = defaultdict(lambda: [0] * 6)
    for group in snapshot.sessions:
        key = (labels["model"][group.model], labels["source"][group.source], labels["profile"][group.profile])
        values = (group.sessions, group.empty, group.messages, group.recent, group.recent_empty, group.deleted)
        totals[key] = [a + b for a, b in zip(totals[key], values, strict=True)]
    families = [
        GaugeMetricFamily("hermes_sessions", "Sessions stored now (rows of the session table).", labels=SESSION_LABELS),
        GaugeMetricFamily("hermes_empty_sessions", "Stored sessions without any message row.", labels=SESSION_LABELS),
        GaugeMetricFamily(
            "hermes_messages",
            "Active messages of the stored sessions (sum of their message_count counters).",
            labels=SESSION_LABELS,
        ),
        GaugeMetricFamily(
            "hermes_recent_sessions", "Stored sessions started in the last 24 hours.", labels=SESSION_LABELS
        ),
        GaugeMetricFamily(
            "hermes_recent_empty_sessions",
            "Stored sessions started in the last 24 hours without any message row.",
            labels=SESSION_LABELS,
        ),
    ]
    stored = CounterMetricFamily(
        "hermes_sessions_stored",
        "Sessions ever stored: those stored now plus those pruned or deleted in the admin (never decreases).",
        labels=SESSION_LABELS,
    )
    deleted = CounterMetricFamily(
        "hermes_sessions_deleted", "Sessions pruned or deleted in the admin (never decreases).", labels=SESSION_LABELS
    )
    for key in sorted(totals):
        values = totals[key]
        for family, value in zip(families, values[:5], strict=True):
            family.add_metric(list(key), value)
        stored.add_metric(list(key), values[0] + values[5])
        deleted.add_metric(list(key), values[5])
    newest = {}
    for source, started_at in snapshot.newest_session.items():
        label = labels["source"][source]
        newest[label] = max(newest.get(label, started_at), started_at)
    age = GaugeMetricFamily(
        "hermes_newest_session_age_seconds",
        "Seconds since the newest stored session of the source started (a stalled writer grows it).",
        labels=["source"],
    )
    for label in sorted(newest):
        age.add_metric([label], (snapshot.read_at - newest[label]).total_seconds())
    return [*families, stored, deleted, age]


def abandoned_families(snapshot: MetricsSnapshot, labels) -> list[Metric]:
    totals = Counter()
    for group in snapshot.abandoned:
        totals[
            labels["model"][group.model], labels["source"][group.source], labels["end_reason"][group.end_reason]
        ] += group.agents
    family = CounterMetricFamily(
        "hermes_abandoned_agents",
        "Agents that ended without saving a message (so without a session), by end reason (never decreases).",
        labels=ABANDONED_LABELS,
    )
    for key in sorted(totals):
        family.add_metric(list(key), totals[key])
    return [family]


def render_metrics(*, using: str = DEFAULT_DB_ALIAS) -> bytes:
    """The Prometheus text exposition of the session metrics (format 0.0.4), read now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SessionMetricsCollector(using=using))
    return generate_latest(registry)
