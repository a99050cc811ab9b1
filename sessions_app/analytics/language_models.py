"""Sessions and empty sessions per ``LanguageModel``, all-time and split at the latest trend
marker, for the model list of the admin.

The counts are read once (``daily.read_days``: the rollup and a live count of the recent days)
and put on the model rows as constants, so the list can sort by them in SQL whatever the number
of models.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Case, Count, F, FloatField, IntegerField, OuterRef, Subquery, Value, When
from django.db.models.functions import Cast, Coalesce, NullIf
from django.utils import timezone

from agents_app.models import LanguageModel
from sessions_app.analytics.daily import read_days
from sessions_app.analytics.trend import latest_marker
from sessions_app.counts import RateRow, model_of_key
from sessions_app.models import Session, TrendMarker
from sessions_app.scope import Scope


@dataclass(frozen=True)
class ModelCounts:
    """One model's sessions all-time, and before and since the latest marker (None without one)."""

    total: RateRow
    before: RateRow | None = None
    since: RateRow | None = None


@dataclass(frozen=True)
class ModelSplit:
    """The per-model counts of the model list and the marker that splits them (None: no marker)."""

    counts: dict[int, ModelCounts]
    marker: TrendMarker | None


def model_split(
    *, scope: Scope | None = None, now: dt.datetime | None = None, using: str = DEFAULT_DB_ALIAS
) -> ModelSplit:
    """Per ``LanguageModel`` id: sessions and empty sessions all-time and before/since the latest
    marker, in one read of the days."""
    now = now or timezone.now()
    marker = latest_marker(now, using=using)
    cuts = [marker.at] if marker is not None else []
    rows = read_days(scope or Scope(), dims=("model",), cuts=cuts, using=using, days=False).rows
    parts: dict[int, list[list[int]]] = {}
    for row in rows:
        if row.model_id is None:
            continue
        part = parts.setdefault(row.model_id, [[0, 0], [0, 0]])[min(row.segment, 1)]
        part[0] += row.sessions
        part[1] += row.empty
    counts = {}
    for model_id, (before, since) in parts.items():
        total = RateRow("all", before[0] + since[0], before[1] + since[1])
        if marker is None:
            counts[model_id] = ModelCounts(total)
        else:
            counts[model_id] = ModelCounts(total, RateRow("before", *before), RateRow("since", *since))
    return ModelSplit(counts=counts, marker=marker)


def session_counts_by_model(
    using: str = DEFAULT_DB_ALIAS, *, since=None, until=None, source=None, profile=None
) -> dict[int, tuple[int, int]]:
    """``{model id: (sessions, empty sessions)}`` for every model with sessions, for the filters of
    the reports (``ValidationError`` as ``Scope``)."""
    scope = Scope(since=since, until=until, source=source, profile=profile)
    counts: dict[int, list[int]] = {}
    for row in read_days(scope, dims=("model",), using=using, days=False).rows:
        if row.model_id is not None:
            pair = counts.setdefault(row.model_id, [0, 0])
            pair[0] += row.sessions
            pair[1] += row.empty
    return {model_id: tuple(pair) for model_id, pair in counts.items()}


def with_session_counts(
    queryset, counts: dict[int, dict[str, int]] | None = None, *, scope: Scope | None = None, split_at=None
):
    """Annotate each ``LanguageModel`` with ``session_count`` and ``empty_count`` (and any other
    column ``counts`` names, e.g. ``before_sessions``); alias ``empty_rate`` (0..1).

    With ``counts`` (``{id: {column: value}}``, computed once), the annotations are constants per
    model row (a CASE on its id), so the list can be sorted by them in SQL while the sessions are
    read only once. Without, correlated counts per model row (each a range of the (model,
    started_at, has_messages) index): the choice for very many models, where the CASE would grow
    too long; ``split_at`` (a marker's time) adds the counts before and since it there too.
    """
    if counts is not None:
        columns = sorted({name for values in counts.values() for name in values} | {"session_count", "empty_count"})

        def column(name):
            whens = [When(pk=model_id, then=Value(values.get(name, 0))) for model_id, values in counts.items()]
            return Case(*whens, default=Value(0), output_field=IntegerField()) if whens else Value(0)

        queryset = queryset.annotate(**{name: column(name) for name in columns})
    else:
        sessions = (scope or Scope()).sessions(Session.objects.filter(model=OuterRef("pk")).order_by()).values("model")

        def subquery_count(queryset):
            return Coalesce(Subquery(queryset.annotate(n=Count("pk")).values("n"), output_field=IntegerField()), 0)

        queryset = queryset.annotate(
            session_count=subquery_count(sessions), empty_count=subquery_count(sessions.empty())
        )
        if split_at is not None:
            before, since = sessions.filter(started_at__lt=split_at), sessions.filter(started_at__gte=split_at)
            queryset = queryset.annotate(
                before_sessions=subquery_count(before),
                before_empty=subquery_count(before.empty()),
                since_sessions=subquery_count(since),
                since_empty=subquery_count(since.empty()),
            )
    return queryset.alias(
        empty_rate=Coalesce(
            Cast(F("empty_count"), FloatField()) / NullIf(Cast(F("session_count"), FloatField()), Value(0.0)),
            Value(0.0),
        )
    )


def model_ids_by_name(names, using: str = DEFAULT_DB_ALIAS) -> dict[str, int]:
    """``{report key: id}`` of the ``LanguageModel`` rows among ``names`` (report keys: a model named
    ``other`` is the key ``"other"``, see ``model_key``); others, ``NO_MODEL_KEY`` among them, are absent."""
    keys = {model_of_key(key): key for key in names}
    keys.pop(None, None)
    rows = LanguageModel.objects.using(using).filter(name__in=list(keys)).values_list("name", "pk")
    return {keys[name]: pk for name, pk in rows}
