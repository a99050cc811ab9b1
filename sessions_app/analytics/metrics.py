"""What ``GET /metrics`` exposes, read in two grouped queries: plain data, no Prometheus here.

- sessions per (model, source): how many, how many empty (``session_counts()``, the reports' one
  definition), the sum of their stored ``message_count`` counters, and the newest ``started_at``;
- abandoned agents per (model, source, end reason), summed over the days of the tally.

The newest session per source is the maximum over its (model, source) groups, so it costs no
query of its own. Model keys are those of the reports: ``NO_MODEL_KEY`` for a session without a
model or with a model recorded as ``''``. To bound the number of series, only the ``max_models``
models with the most agents (sessions + abandoned agents, so a model whose agents all fail before
speaking is not hidden) keep their name; the others are summed under ``OTHER_MODELS_KEY``.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS
from django.db.models import F, IntegerField, Max, Min, Sum, Value
from django.db.models.functions import Coalesce

from agents_app.models import AbandonedAgentTally
from sessions_app.analytics.filters import model_name, session_counts
from sessions_app.analytics.rates import NO_MODEL_KEY, model_key
from sessions_app.models import Session

OTHER_MODELS_KEY = "other"


@dataclass(frozen=True)
class SessionGroup:
    """Sessions of one (model, source): ``messages`` is the sum of their stored counters."""

    model: str
    source: str
    sessions: int
    empty: int
    messages: int


@dataclass(frozen=True)
class AbandonedGroup:
    """Agents of one (model, source, end reason) that ended without saving a message."""

    model: str
    source: str
    end_reason: str
    agents: int


@dataclass(frozen=True)
class MetricsSnapshot:
    """Everything one scrape exposes, as read at ``read_at``; groups ordered by their labels."""

    sessions: list[SessionGroup]
    abandoned: list[AbandonedGroup]
    newest_session: dict[str, dt.datetime]  # source -> started_at of its newest session
    read_at: dt.datetime


def metrics_snapshot(*, max_models: int, using: str = DEFAULT_DB_ALIAS) -> MetricsSnapshot:
    """Sessions, empty sessions, messages and abandoned agents per model and source, and the
    newest session per source: two grouped queries, whatever the number of sessions. At most
    ``max_models`` model names appear (besides ``NO_MODEL_KEY`` and ``OTHER_MODELS_KEY``)."""
    if max_models < 1:
        raise ValueError(f"max_models must be at least 1, got {max_models!r}.")
    read_at = dt.datetime.now(dt.UTC)
    session_rows = list(_session_rows(using))
    abandoned_rows = list(_abandoned_rows(using))

    agents_per_model: dict[str, int] = {}
    for name, _source, sessions, *_ in session_rows:
        agents_per_model[name] = agents_per_model.get(name, 0) + sessions
    for name, _source, _reason, agents in abandoned_rows:
        agents_per_model[name] = agents_per_model.get(name, 0) + agents
    label = _model_labels(agents_per_model, max_models)

    sessions: dict[tuple[str, str], list[int]] = {}
    newest: dict[str, dt.datetime] = {}
    for name, source, count, empty, messages, started_at in session_rows:
        totals = sessions.setdefault((label[name], source), [0, 0, 0])
        totals[0] += count
        totals[1] += empty
        totals[2] += messages
        if started_at is not None and (source not in newest or started_at > newest[source]):
            newest[source] = started_at
    abandoned: dict[tuple[str, str, str], int] = {}
    for name, source, reason, agents in abandoned_rows:
        key = (label[name], source, reason)
        abandoned[key] = abandoned.get(key, 0) + agents
    return MetricsSnapshot(
        sessions=[SessionGroup(*key, *sessions[key]) for key in sorted(sessions)],
        abandoned=[AbandonedGroup(*key, abandoned[key]) for key in sorted(abandoned)],
        newest_session=dict(sorted(newest.items())),
        read_at=read_at,
    )


def _model_labels(agents_per_model: dict[str, int], max_models: int) -> dict[str, str]:
    """Each model key -> its label: itself for the ``max_models`` models with the most agents
    (ties by name, so the choice is stable between scrapes), ``OTHER_MODELS_KEY`` for the rest.
    ``NO_MODEL_KEY`` is not a model and always keeps its label."""
    ranked = sorted((key for key in agents_per_model if key != NO_MODEL_KEY), key=lambda k: (-agents_per_model[k], k))
    kept = set(ranked[:max_models]) | {NO_MODEL_KEY}
    return {key: key if key in kept else OTHER_MODELS_KEY for key in agents_per_model}


def _model_key(name: str | None) -> str:
    return model_key(name)  # no model or '': NO_MODEL_KEY; a model named "other": '"other"'


def _session_rows(using: str):
    """``(model key, source, sessions, empty, messages, newest started_at)`` per (model, source),
    in one statement (a group may come in more than one row on some backends: the caller adds them up)."""
    # Grouped by model id and exact source ("CLI" apart from "cli") everywhere; each group's model
    # name is looked up after grouping (``model_name()``, annotated after the counts below).
    groups = Session.objects.using(using).order_by().values("model", group_source=F("source"))
    columns = ("model_name", "group_source", "sessions", "empty", "messages", "newest")
    # The stored message_count is the app's counter, kept in the save path's transaction: the
    # sum of counters is one column read per session, where counting message rows would read
    # the whole message index.
    messages = Coalesce(Sum("message_count"), Value(0), output_field=IntegerField())
    rows = (
        groups.annotate(
            **session_counts(),
            messages=messages,
            newest=Max("started_at"),
        )
        .annotate(model_name=model_name())
        .values_list(*columns)
    )
    for name, source, sessions, empty, message_sum, newest in rows:
        yield _model_key(name), source, int(sessions), int(empty), int(message_sum), newest


def _abandoned_rows(using: str):
    """``(model key, source, end reason, agents)`` from the abandoned-agent tally, all days summed."""
    rows = (
        AbandonedAgentTally.objects.using(using)
        .order_by()
        .values(
            "model",
            group_source=F("source"),
            group_reason=F("end_reason"),
        )
        .annotate(model_name=Min("model__name"), agents=Sum("count"))
        .values_list("model_name", "group_source", "group_reason", "agents")
    )
    for name, source, reason, agents in rows:
        yield _model_key(name), source, reason, int(agents)
