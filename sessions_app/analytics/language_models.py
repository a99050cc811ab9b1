"""Sessions and empty sessions per ``LanguageModel``, for the model list of the admin.

The counts are read once from the sessions (``session_counts_by_model``) and put on the model
rows as constants, so the list can sort by them in SQL whatever the number of models.
"""

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Case, Count, F, FloatField, IntegerField, OuterRef, Subquery, Value, When
from django.db.models.functions import Cast, Coalesce, NullIf

from agents_app.models import LanguageModel
from sessions_app.analytics.filters import report_filters
from sessions_app.analytics.rates import model_of_key, session_and_empty_counts
from sessions_app.models import Session


def session_counts_by_model(
    using: str = DEFAULT_DB_ALIAS, *, since=None, until=None, source=None, profile=None
) -> dict[int, tuple[int, int]]:
    """``{model id: (sessions, empty sessions)}`` for every model with sessions, in one grouped
    statement over the sessions (``session_and_empty_counts``: on PostgreSQL an anti-join for the
    empty ones rather than one message-index probe per session). "Empty" is decided by the
    message rows, as ``Session.objects.empty()`` does; the filters are the reports' own."""
    filters = report_filters(since=since, until=until, source=source, profile=profile)
    sessions = Session.objects.using(using).order_by().matching(**filters)
    counts: dict[int, list[int]] = {}
    groups = sessions.values("model").filter(model__isnull=False)
    for model_id, sessions_count, empty in session_and_empty_counts(groups, "model"):
        pair = counts.setdefault(model_id, [0, 0])
        pair[0] += sessions_count
        pair[1] += empty
    return {model_id: (sessions_count, empty) for model_id, (sessions_count, empty) in counts.items()}


def with_session_counts(
    queryset, counts: dict[int, tuple[int, int]] | None = None, *, since=None, until=None, source=None, profile=None
):
    """Annotate each ``LanguageModel`` with ``session_count`` and ``empty_count``; alias
    ``empty_rate`` (0..1).

    With ``counts`` (``session_counts_by_model()``, computed once, for the same filters), the
    annotations are constants per model row (a CASE on its id), so the list can be sorted by them
    in SQL while the sessions are read only once, whatever the number of models. Without, two
    correlated counts per model row (each a range of the (model, started_at, id) index): the
    choice for very many models, where the CASE would grow too long.
    """
    if counts is not None:

        def count(position):
            whens = [When(pk=model_id, then=Value(pair[position])) for model_id, pair in counts.items()]
            return Case(*whens, default=Value(0), output_field=IntegerField()) if whens else Value(0)

        queryset = queryset.annotate(session_count=count(0), empty_count=count(1))
    else:
        filters = report_filters(since=since, until=until, source=source, profile=profile)
        sessions = Session.objects.filter(model=OuterRef("pk")).order_by().matching(**filters).values("model")

        def subquery_count(queryset):
            return Coalesce(Subquery(queryset.annotate(n=Count("pk")).values("n"), output_field=IntegerField()), 0)

        queryset = queryset.annotate(
            session_count=subquery_count(sessions),
            empty_count=subquery_count(sessions.empty()),
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
