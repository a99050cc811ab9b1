"""The Prometheus rendering of ``analytics.metrics_snapshot``: a custom collector on a registry of
its own, so a scrape reads the database once and nothing is registered in prometheus_client's
global registry (whose process metrics would be this web worker's, not the service's).
"""

from collections.abc import Iterator

from django.db import DEFAULT_DB_ALIAS
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sessions_app.analytics import metrics_snapshot

# CounterMetricFamily appends "_total" to these names in the exposition (ARCHITECTURE.md names
# the exposed series: hermes_sessions_total, hermes_empty_sessions_total, ...).
SESSIONS = "hermes_sessions"
EMPTY_SESSIONS = "hermes_empty_sessions"
MESSAGES = "hermes_messages"
ABANDONED_AGENTS = "hermes_abandoned_agents"
NEWEST_SESSION_AGE = "hermes_newest_session_age_seconds"


class SessionMetricsCollector(Collector):
    """Reads one ``metrics_snapshot`` per ``collect()`` and yields it as metric families."""

    def __init__(self, *, max_models: int, using: str = DEFAULT_DB_ALIAS):
        self.max_models = max_models
        self.using = using

    def describe(self) -> list[Metric]:
        # Registering calls describe(); without it the registry would not query, but an explicit
        # empty answer makes sure registering never reads the database.
        return []

    def collect(self) -> Iterator[Metric]:
        snapshot = metrics_snapshot(max_models=self.max_models, using=self.using)
        labels = ["model", "source"]
        sessions = CounterMetricFamily(SESSIONS, "Sessions stored (rows in the session table).", labels=labels)
        empty = CounterMetricFamily(EMPTY_SESSIONS, "Stored sessions without any message row.", labels=labels)
        messages = CounterMetricFamily(
            MESSAGES, "Messages of the stored sessions (sum of their message_count counters).", labels=labels
        )
        for group in snapshot.sessions:
            values = [group.model, group.source]
            sessions.add_metric(values, group.sessions)
            empty.add_metric(values, group.empty)
            messages.add_metric(values, group.messages)
        abandoned = CounterMetricFamily(
            ABANDONED_AGENTS,
            "Agents that ended without saving a message (so without a session), by end reason.",
            labels=["model", "source", "end_reason"],
        )
        for group in snapshot.abandoned:
            abandoned.add_metric([group.model, group.source, group.end_reason], group.agents)
        age = GaugeMetricFamily(
            NEWEST_SESSION_AGE,
            "Seconds since the newest stored session of the source started (a stalled writer grows it).",
            labels=["source"],
        )
        for source, started_at in snapshot.newest_session.items():
            age.add_metric([source], (snapshot.read_at - started_at).total_seconds())
        yield from (sessions, empty, messages, abandoned, age)


def render_metrics(*, max_models: int, using: str = DEFAULT_DB_ALIAS) -> bytes:
    """The Prometheus text exposition of the session metrics (``CONTENT_TYPE_LATEST``), read now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SessionMetricsCollector(max_models=max_models, using=using))
    return generate_latest(registry)
