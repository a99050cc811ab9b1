"""Admin for language models (with their session counts) and the abandoned-agent tally.

The counts are queries of ``sessions_app.analytics``; these classes only choose and render them.
"""

from django.contrib import admin
from django.db import transaction
from django.utils.html import format_html
from django.utils.text import Truncator

from agents_app.models import AbandonedAgentTally, LanguageModel
from sessions_app.admin.charts import model_colour_class
from sessions_app.admin.listing import session_changelist_url
from sessions_app.admin_site import HardenedAdminMixin
from sessions_app.analytics import is_small_sample, model_split, wilson_interval, with_session_counts
from sessions_app.ledger import retire_abandoned_agents
from sessions_app.reporting import format_interval
from sessions_app.retention import retired_counts

# Above this many models with sessions, the list falls back to correlated counts per model row
# rather than a CASE with one branch per model.
MAX_CASE_MODELS = 2000
# Longer model names are cut in the tally list (the full name is in the tooltip).
TALLY_MODEL_CHARS = 32
LIST_MODEL_CHARS = 40


@admin.register(LanguageModel)
class LanguageModelAdmin(HardenedAdminMixin, admin.ModelAdmin):
    # Column names differ from the model's "sessions" relation: the changelist would sort by that.
    list_display = [
        "model_name",
        "session_total",
        "empty_total",
        "empty_rate_percent",
        "before_marker",
        "since_marker",
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
        # too): read the sessions once.
        if not hasattr(request, "_model_split"):
            request._model_split = model_split(using=queryset.db)
        split = request._model_split
        if len(split.counts) > MAX_CASE_MODELS:
            return with_session_counts(queryset, split_at=split.marker.at if split.marker else None)
        return with_session_counts(queryset, split_columns(split))

    def get_list_display(self, request):
        # Before/since columns only when there is a marker to split at.
        if model_split_marker(request) is None:
            return [name for name in self.list_display if name not in ("before_marker", "since_marker")]
        return self.list_display

    def changelist_view(self, request, extra_context=None):
        request._model_split = model_split()
        marker = request._model_split.marker
        extra_context = {**(extra_context or {}), "split_marker": marker}
        if marker is not None:
            extra_context["subtitle"] = (
                f"Empty rates all time, and before/since “{marker.label}” ({marker.at:%Y-%m-%d %H:%M} UTC)"
            )
        return super().changelist_view(request, extra_context)

    def _sessions_url(self, model, **params):
        return session_changelist_url(model__id__exact=model.pk, **params)

    class Media:
        css = {"all": ["sessions_app/empty_rates.css", "sessions_app/session_admin.css"]}  # colours, compact list

    @admin.display(description="name", ordering="name")
    def model_name(self, model):
        """The name with its colour on the analytics page's trend (the same on every page); a long
        name is cut, the whole of it in the tooltip."""
        return format_html(
            '<span class="model-swatch {}" aria-hidden="true"></span><span title="{}">{}</span>',
            model_colour_class(model.name),
            model.name,
            Truncator(model.name).chars(LIST_MODEL_CHARS),
        )

    @admin.display(description="sessions", ordering="session_count")
    def session_total(self, model):
        return format_html('<a href="{}">{}</a>', self._sessions_url(model), f"{model.session_count:,}")

    @admin.display(description="empty sessions", ordering="empty_count")
    def empty_total(self, model):
        return format_html('<a href="{}">{}</a>', self._sessions_url(model, empty="yes"), f"{model.empty_count:,}")

    @admin.display(description="empty rate, all time (95% interval)", ordering="empty_rate")
    def empty_rate_percent(self, model):
        if not model.session_count:
            return "-"
        rate = model.empty_count / model.session_count
        interval = format_interval(*wilson_interval(model.empty_count, model.session_count))
        return format_html(
            '<span class="{}" title="{}">{}<span class="rate-interval">{}</span></span>',
            "small-sample" if is_small_sample(model.session_count) else "",
            "too few sessions to mean much" if is_small_sample(model.session_count) else "",
            f"{rate * 100:.1f}%",
            interval,
        )

    @admin.display(description="before the latest marker")
    def before_marker(self, model):
        return self._window(model, "before")

    @admin.display(description="since the latest marker")
    def since_marker(self, model):
        return self._window(model, "since")

    def _window(self, model, side: str):
        """The model's empty rate on one side of the latest trend marker, with its sessions;
        "-" without sessions on that side."""
        sessions, empty = getattr(model, f"{side}_sessions", 0), getattr(model, f"{side}_empty", 0)
        if not sessions:
            return "-"
        return format_html(
            '<span class="{}" title="{} of {} sessions empty">{}<span class="help"> of {}</span></span>',
            "small-sample" if is_small_sample(sessions) else "window-rate",
            f"{empty:,}",
            f"{sessions:,}",
            f"{empty / sessions * 100:.1f}%",
            f"{sessions:,}",
        )


def model_split_marker(request):
    split = getattr(request, "_model_split", None)
    return None if split is None else split.marker


def split_columns(split) -> dict[int, dict[str, int]]:
    """``{model id: {column: value}}``: all-time, before and since counts of ``model_split``."""
    columns = {}
    for model_id, counts in split.counts.items():
        values = {"session_count": counts.total.sessions, "empty_count": counts.total.empty}
        for side in ("before", "since"):
            row = getattr(counts, side)
            values[f"{side}_sessions"] = row.sessions if row else 0
            values[f"{side}_empty"] = row.empty if row else 0
        columns[model_id] = values
    return columns


@admin.register(AbandonedAgentTally)
class AbandonedAgentTallyAdmin(HardenedAdminMixin, admin.ModelAdmin):
    """The abandoned-agent tally, a record: agents write it, ``prune_empty_sessions`` trims it."""

    # The count right after the day, long model names cut: the list fits 1366 px with the filters open.
    list_display = ["day", "count", "model_name", "source", "end_reason"]
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

    class Media:
        css = {"all": ["sessions_app/session_admin.css"]}

    @admin.display(description="model", ordering="model__name")
    def model_name(self, tally):
        name = tally.model.name
        return format_html('<span title="{}">{}</span>', name, Truncator(name).chars(TALLY_MODEL_CHARS))

    def lookup_allowed(self, lookup, value, request=None):
        # The analytics page links here with ?model__name=<name>: a model's name is its key there.
        return lookup == "model__name" or super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        """Delete one tally row, its agents moved to the retired ledger in the same transaction
        (``/metrics``' counter of abandoned agents never goes down)."""
        using = obj._state.db
        with transaction.atomic(using=using):
            row = AbandonedAgentTally.objects.using(using).filter(pk=obj.pk)
            retire_abandoned_agents(retired_counts(row), using=using)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic(using=queryset.db):
            retire_abandoned_agents(retired_counts(queryset), using=queryset.db)
            super().delete_queryset(request, queryset)
