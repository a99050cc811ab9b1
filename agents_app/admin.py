from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Case, Count, Exists, F, FloatField, IntegerField, OuterRef, Subquery, Value, When
from django.db.models.functions import Cast, Coalesce, NullIf
from django.urls import reverse
from django.utils.html import format_html

from agents_app.models import AbandonedAgentTally, LanguageModel
from sessions_app.analytics import session_and_empty_counts
from sessions_app.models import Message, Session

# Above this many models with sessions, the list falls back to correlated counts per model row
# rather than a CASE with one branch per model.
MAX_CASE_MODELS = 2000


def session_counts_by_model(using: str = "default") -> dict[int, tuple[int, int]]:
    """``{model id: (sessions, empty sessions)}`` for every model with sessions, in one grouped
    statement over the sessions (``session_and_empty_counts``: on PostgreSQL an anti-join for the
    empty ones rather than one message-index probe per session). "Empty" is decided by the
    message rows, as ``Session.objects.empty()`` does."""
    counts: dict[int, list[int]] = {}
    groups = Session.objects.using(using).order_by().values("model").filter(model__isnull=False)
    for model_id, sessions, empty in session_and_empty_counts(groups, "model"):
        pair = counts.setdefault(model_id, [0, 0])
        pair[0] += sessions
        pair[1] += empty
    return {model_id: (sessions, empty) for model_id, (sessions, empty) in counts.items()}


def with_session_counts(queryset, counts: dict[int, tuple[int, int]] | None = None):
    """Annotate each model with ``session_count`` and ``empty_count``; alias ``empty_rate`` (0..1).

    With ``counts`` (``session_counts_by_model()``, computed once), the annotations are constants
    per model row (a CASE on its id), so the list can be sorted by them in SQL while the sessions
    are read only once, whatever the number of models. Without (the list uses that past
    ``MAX_CASE_MODELS`` models), two correlated counts per model row (each a range of the
    (model, started_at, id) index).
    """
    if counts is not None:

        def count(position):
            whens = [When(pk=model_id, then=Value(pair[position])) for model_id, pair in counts.items()]
            return Case(*whens, default=Value(0), output_field=IntegerField()) if whens else Value(0)

        queryset = queryset.annotate(session_count=count(0), empty_count=count(1))
    else:
        sessions = Session.objects.filter(model=OuterRef("pk")).order_by().values("model")

        def subquery_count(queryset):
            return Coalesce(Subquery(queryset.annotate(n=Count("pk")).values("n"), output_field=IntegerField()), 0)

        queryset = queryset.annotate(
            session_count=subquery_count(sessions),
            empty_count=subquery_count(sessions.filter(~Exists(Message.objects.filter(session_id=OuterRef("pk"))))),
        )
    return queryset.alias(
        empty_rate=Coalesce(
            Cast(F("empty_count"), FloatField()) / NullIf(Cast(F("session_count"), FloatField()), Value(0.0)),
            Value(0.0),
        )
    )


@admin.register(LanguageModel)
class LanguageModelAdmin(admin.ModelAdmin):
    # Column names differ from the model's "sessions" relation: the changelist would sort by that.
    list_display = ["name", "provider", "session_total", "empty_total", "empty_rate_percent"]
    list_filter = ["provider"]
    search_fields = ["name"]
    readonly_fields = ["created_at"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would repeat the per-model subqueries

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        match = getattr(request, "resolver_match", None)
        if match is None or match.url_name != "agents_app_languagemodel_changelist":
            return queryset  # the counts are only shown (and sortable) on the list
        # The list asks for its queryset more than once per request (the provider filter's choices
        # too): count the sessions once.
        if not hasattr(request, "_session_counts_by_model"):
            few = LanguageModel.objects.using(queryset.db).count() <= MAX_CASE_MODELS
            request._session_counts_by_model = session_counts_by_model(queryset.db) if few else None
        return with_session_counts(queryset, request._session_counts_by_model)

    def _sessions_url(self, model, **params):
        query = urlencode({"model__id__exact": model.pk, **params})
        return f"{reverse('admin:sessions_app_session_changelist')}?{query}"

    @admin.display(description="sessions", ordering="session_count")
    def session_total(self, model):
        return format_html('<a href="{}">{}</a>', self._sessions_url(model), model.session_count)

    @admin.display(description="empty sessions", ordering="empty_count")
    def empty_total(self, model):
        return format_html('<a href="{}">{}</a>', self._sessions_url(model, empty="yes"), model.empty_count)

    @admin.display(description="empty rate", ordering="empty_rate")
    def empty_rate_percent(self, model):
        rate = model.empty_count / model.session_count if model.session_count else 0.0
        return f"{rate * 100:.1f}%"


@admin.register(AbandonedAgentTally)
class AbandonedAgentTallyAdmin(admin.ModelAdmin):
    """The abandoned-agent tally, read-only: agents write it, ``prune_empty_sessions`` trims it."""

    list_display = ["day", "model", "source", "end_reason", "count"]
    list_filter = [("day", admin.DateFieldListFilter), "end_reason", "source", "model"]
    list_select_related = ["model"]
    search_fields = ["=model__name", "=source"]
    search_help_text = "Exact model name or source."
    date_hierarchy = "day"
    ordering = ["-day", "model__name", "source", "end_reason"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def lookup_allowed(self, lookup, value, request=None):
        # The analytics page links here with ?model__name=<name>: a model's name is its key there.
        return lookup == "model__name" or super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
