from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Count, F, FloatField, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Cast, Coalesce, NullIf
from django.urls import reverse
from django.utils.html import format_html

from agents_app.models import AbandonedAgentTally, LanguageModel
from sessions_app.models import Session
from sessions_app.querysets import has_messages


def with_session_counts(queryset):
    """Annotate each model with ``session_count`` and ``empty_count``; alias ``empty_rate`` (0..1).

    One query whatever the number of models: two correlated counts per model row, each a range
    of the (model, started_at, id) index; "empty" is decided by the message rows (EXISTS), as
    ``Session.objects.empty()`` does. Subqueries rather than a JOIN + GROUP BY, so the
    changelist's COUNT and its filter choices stay plain queries on the small model table
    (Django leaves unused annotations out of them). ``empty_rate`` is an alias, computed by the
    database only when the list is sorted by it (its expression repeats both counts).
    """
    sessions = Session.objects.filter(model=OuterRef("pk")).order_by().values("model")

    def count(queryset):
        return Coalesce(Subquery(queryset.annotate(n=Count("pk")).values("n"), output_field=IntegerField()), 0)

    no_message = ~has_messages()
    return queryset.annotate(
        session_count=count(sessions),
        empty_count=count(sessions.filter(no_message)),
    ).alias(
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
        return with_session_counts(super().get_queryset(request))

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
