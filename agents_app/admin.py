"""Admin for language models (with their session counts) and the abandoned-agent tally.

The counts are queries of ``sessions_app.analytics``; these classes only choose and render them.
"""

from django.contrib import admin
from django.utils.html import format_html

from agents_app.models import AbandonedAgentTally, LanguageModel
from sessions_app.admin.colours import model_colour_class
from sessions_app.admin.links import session_changelist_url
from sessions_app.admin_site import HardenedAdminMixin
from sessions_app.analytics import is_small_sample, session_counts_by_model, wilson_interval, with_session_counts
from sessions_app.reporting import format_interval

# Above this many models with sessions, the list falls back to correlated counts per model row
# rather than a CASE with one branch per model.
MAX_CASE_MODELS = 2000


@admin.register(LanguageModel)
class LanguageModelAdmin(HardenedAdminMixin, admin.ModelAdmin):
    # Column names differ from the model's "sessions" relation: the changelist would sort by that.
    list_display = [
        "model_name",
        "provider",
        "session_total",
        "empty_total",
        "empty_rate_percent",
        "empty_rate_interval",
    ]
    list_filter = ["provider"]
    search_fields = ["name"]
    readonly_fields = ["created_at"]
    ordering = ["name"]
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
        return session_changelist_url(model__id__exact=model.pk, **params)

    class Media:
        css = {"all": ["sessions_app/empty_rates.css"]}  # the model colours

    @admin.display(description="name", ordering="name")
    def model_name(self, model):
        """The name with its colour on the analytics page's trend (the same on every page)."""
        return format_html(
            '<span class="model-swatch {}" aria-hidden="true"></span>{}', model_colour_class(model.name), model.name
        )

    @admin.display(description="sessions", ordering="session_count")
    def session_total(self, model):
        return format_html('<a href="{}">{}</a>', self._sessions_url(model), model.session_count)

    @admin.display(description="empty sessions", ordering="empty_count")
    def empty_total(self, model):
        return format_html('<a href="{}">{}</a>', self._sessions_url(model, empty="yes"), model.empty_count)

    @admin.display(description="empty rate", ordering="empty_rate")
    def empty_rate_percent(self, model):
        rate = model.empty_count / model.session_count if model.session_count else 0.0
        if model.session_count and is_small_sample(model.session_count):
            return format_html(
                '<span class="small-sample" title="too few sessions to mean much">{}</span>', f"{rate * 100:.1f}%"
            )
        return f"{rate * 100:.1f}%"

    @admin.display(description="95% interval")
    def empty_rate_interval(self, model):
        if not model.session_count:
            return "-"
        return format_interval(*wilson_interval(model.empty_count, model.session_count))


@admin.register(AbandonedAgentTally)
class AbandonedAgentTallyAdmin(HardenedAdminMixin, admin.ModelAdmin):
    """The abandoned-agent tally, a record: agents write it, ``prune_empty_sessions`` trims it."""

    list_display = ["day", "model", "source", "end_reason", "count"]
    list_filter = [("day", admin.DateFieldListFilter), "end_reason", "source", "model"]
    list_select_related = ["model"]
    search_fields = ["=model__name", "=source"]
    search_help_text = "Exact model name or source."
    date_hierarchy = "day"
    ordering = ["-day", "model__name", "source", "end_reason"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    # A record of what agents did: rows are viewed, and deleted one at a time with the permission
    # (prune_empty_sessions trims old days); no bulk delete action, no add, no edit.
    actions = None

    def lookup_allowed(self, lookup, value, request=None):
        # The analytics page links here with ?model__name=<name>: a model's name is its key there.
        return lookup == "model__name" or super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
