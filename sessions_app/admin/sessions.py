"""Session and message admins, built to stay fast on tables with millions of rows.

Every default ordering and filter is backed by an index (see the models' ``Meta.indexes``),
changelists never count the whole table (``show_full_result_count = False`` and, on PostgreSQL,
the planner's estimate for unfiltered lists), and no column runs a query per row.
"""

from django.contrib import admin, messages
from django.urls import path
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from sessions_app.admin.filters import CauseFilter, EmptyFilter, EndReasonFilter, ProfileFilter, SourceFilter
from sessions_app.admin.inlines import INLINE_MESSAGES, MessageInline
from sessions_app.admin.links import message_changelist_url, session_change_url, session_changelist_url
from sessions_app.admin.paginators import EstimatedCountPaginator
from sessions_app.admin.views import EmptyRatesView
from sessions_app.models import Message, Session
from sessions_app.pruning import delete_empty_sessions

# Longer model names are cut in the session list (the full name is in the tooltip).
MODEL_CHARS = 32
# Child sessions linked on a session's page.
LINKED_CHILDREN = 20
# Longest admin search term: room for a session id (128) or a model name (255). A longer one
# is refused with a message: SQLite fails on a LIKE pattern past 50,000 bytes ("LIKE or GLOB
# pattern too complex") and each word of the term adds a condition to the query.
MAX_SEARCH_CHARS = 256


class BoundedSearchMixin:
    """Refuse a search term longer than ``MAX_SEARCH_CHARS`` (an empty list and a warning)
    rather than send the database a pattern it may fail on."""

    def get_search_results(self, request, queryset, search_term):
        if len(search_term) > MAX_SEARCH_CHARS:
            self.message_user(
                request,
                f"The search term is {len(search_term):,} characters long; the limit is {MAX_SEARCH_CHARS}.",
                messages.WARNING,
            )
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)


@admin.register(Session)
class SessionAdmin(BoundedSearchMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "model_name",
        "source",
        "profile",
        "started",
        "ended",
        "message_count",
        "has_messages",
        "short_title",
    ]
    # Django's DateFieldListFilter, not date_hierarchy: date_hierarchy runs a DISTINCT over the
    # truncated start dates of the whole (filtered) table on every load; this filter needs no
    # query for its choices, is a range on the started_at index, and also takes any
    # ?started_at__gte=...&started_at__lt=... range (the analytics page links with those).
    list_filter = [
        EmptyFilter,
        CauseFilter,
        "model",
        SourceFilter,
        ProfileFilter,
        EndReasonFilter,
        ("started_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["model"]
    # "=" = exact match (no substring scan) for ids; titles are searched by substring.
    search_fields = ["=id", "title", "=user_id"]
    search_help_text = "Exact session id or user id, or part of a title."
    ordering = ["-started_at"]
    show_full_result_count = False
    # Facet counts ("Show counts") would run a COUNT per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    list_per_page = 100
    actions = ["delete_selected_empty_sessions"]
    inlines = [MessageInline]
    raw_id_fields = ["model"]
    readonly_fields = [
        "parent_link",
        "children_links",
        "message_rows",
        "message_count",
        "tool_call_count",
        "api_call_count",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "estimated_cost_usd",
        "actual_cost_usd",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "model",
                    "source",
                    "profile",
                    "user_id",
                    "title",
                    "started_at",
                    "ended_at",
                    "end_reason",
                ]
            },
        ),
        ("Conversation", {"fields": ["parent_link", "children_links", "message_rows"]}),
        (
            "Counters",
            {
                "fields": [
                    ("message_count", "tool_call_count", "api_call_count"),
                    ("input_tokens", "output_tokens", "reasoning_tokens"),
                    ("cache_read_tokens", "cache_write_tokens"),
                    ("estimated_cost_usd", "actual_cost_usd"),
                ]
            },
        ),
        (
            "Details",
            {
                "classes": ["collapse"],
                "fields": [
                    "model_config",
                    "system_prompt",
                    "cwd",
                    "billing_provider",
                    "billing_base_url",
                    "billing_mode",
                    "extra",
                ],
            },
        ),
    ]

    def get_readonly_fields(self, request, obj=None):
        # The id is the key the agents write to: set once, never edited.
        return [*self.readonly_fields, "id"] if obj else self.readonly_fields

    def get_urls(self):
        view = self.admin_site.admin_view(EmptyRatesView.as_view(model_admin=self))
        return [
            path("empty-rates/", view, name="sessions_app_session_empty_rates"),
            *super().get_urls(),
        ]

    @admin.display(description="model", ordering="model")
    def model_name(self, session):
        if session.model is None:
            return "-"
        name = session.model.name
        return format_html('<span title="{}">{}</span>', name, Truncator(name).chars(MODEL_CHARS))

    @admin.display(description="started (UTC)", ordering="started_at")
    def started(self, session):
        return f"{session.started_at:%Y-%m-%d %H:%M}"

    @admin.display(description="ended", ordering="ended_at")
    def ended(self, session):
        if session.ended_at is None:
            return "open"
        # The date only when it is not the start's: the column stays narrow.
        same_day = session.ended_at.date() == session.started_at.date()
        when = f"{session.ended_at:%H:%M}" if same_day else f"{session.ended_at:%Y-%m-%d %H:%M}"
        return f"{when} ({session.end_reason})" if session.end_reason else when

    @admin.display(description="has messages", boolean=True)
    def has_messages(self, session):
        return session.has_messages

    @admin.display(description="title")
    def short_title(self, session):
        return Truncator(session.title or "").chars(60)

    @admin.display(description="parent session")
    def parent_link(self, session):
        if not session.parent_session_id:
            return "-"
        url = session_change_url(session.parent_session_id)
        return format_html('<a href="{}">{}</a>', url, session.parent_session_id)

    @admin.display(description="child sessions")
    def children_links(self, session):
        if not session.pk:
            return "-"
        children = list(session.children.order_by("started_at").values_list("pk", flat=True)[: LINKED_CHILDREN + 1])
        if not children:
            return "-"
        links = format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((session_change_url(pk), pk) for pk in children[:LINKED_CHILDREN]),
        )
        if len(children) > LINKED_CHILDREN:
            url = session_changelist_url(parent_session__exact=session.pk)
            links = format_html('{}, <a href="{}">all child sessions…</a>', links, url)
        return links

    @admin.display(description="message rows")
    def message_rows(self, session):
        if not session.pk:
            return "-"
        rows = session.messages.count()
        if rows <= INLINE_MESSAGES:
            return format_html(
                '{} (<a href="{}">open in the message list</a>)', rows, message_changelist_url(session.pk)
            )
        return format_html(
            '{} — the first {} are shown below; <a href="{}">all {} in the message list</a>',
            rows,
            INLINE_MESSAGES,
            message_changelist_url(session.pk),
            rows,
        )

    @admin.action(description="Delete selected empty sessions", permissions=["delete"])
    def delete_selected_empty_sessions(self, request, queryset):
        result = delete_empty_sessions(queryset)
        self.message_user(
            request,
            f"Deleted {result.deleted} empty session(s); kept {result.kept_with_messages} because they have messages.",
            messages.SUCCESS if result.deleted else messages.WARNING,
        )
        if result.kept_with_children:
            self.message_user(
                request,
                f"Also kept {result.kept_with_children} empty session(s) that child sessions continue.",
                messages.WARNING,
            )


@admin.register(Message)
class MessageAdmin(BoundedSearchMixin, admin.ModelAdmin):
    list_display = ["id", "session_link", "time", "role", "content_preview", "tool_name", "token_count"]
    list_filter = ["role"]
    raw_id_fields = ["session", "model"]
    search_fields = ["=session__id"]
    search_help_text = "Exact session id."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    list_per_page = 100

    def get_list_display(self, request):
        if self._one_session(request):  # the page title names the session
            return [name for name in self.list_display if name != "session_link"]
        return self.list_display

    def get_ordering(self, request):
        # Within one session: chronological, on the (session, timestamp, id) index. Across the
        # whole table: newest first on the primary key (there is no index on timestamp alone).
        return ["timestamp", "id"] if self._one_session(request) else ["-id"]

    @staticmethod
    def _one_session(request) -> bool:
        return "session__exact" in request.GET

    @admin.display(description="session", ordering="session_id")
    def session_link(self, message):
        url = session_change_url(message.session_id)
        return format_html('<a href="{}">{}</a>', url, message.session_id)

    @admin.display(description="time (UTC)", ordering="timestamp")
    def time(self, message):
        return f"{message.timestamp:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="content")
    def content_preview(self, message):
        return Truncator(message.content or "").chars(160)
