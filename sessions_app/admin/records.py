"""The records' admin: sessions, their messages, and the trend markers operators write.

Sessions and messages are records of what agents wrote: the admin views them and, with the
permission, deletes them; it never adds or edits one (``has_add_permission`` and
``has_change_permission`` are False, so the view permission shows a read-only page). A deletion
keeps the daily rollup's marks and the deleted-sessions ledger in its own transaction.

Every default ordering and filter is backed by an index (see the models' ``Meta.indexes``),
changelists never count the whole table (``show_full_result_count = False`` and, on PostgreSQL,
the planner's estimate for unfiltered lists), and no column runs a query per row.
"""

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from sessions_app.admin.listing import (
    CAUSE_LABELS,
    CauseFilter,
    EmptyFilter,
    EndReasonFilter,
    EstimatedCountPaginator,
    ProfileFilter,
    SourceFilter,
    message_changelist_url,
    session_change_url,
    session_changelist_url,
)
from sessions_app.admin.rates_page import EmptyRatesView
from sessions_app.admin_site import HardenedAdminMixin
from sessions_app.ledger import forget_sessions, mark_sessions_of
from sessions_app.models import DEFAULT_PROFILE, Message, ModelUsage, Session, TrendMarker
from sessions_app.pruning import delete_empty_sessions
from sessions_app.rollup import fold_marks

# Longer model names and titles are cut in the session list (the full text is in the tooltip).
MODEL_CHARS = 14
TITLE_CHARS = 30
# Child sessions linked on a session's page.
LINKED_CHILDREN = 20
# Messages shown inline on a session's page; the rest are one click away in the message list.
INLINE_MESSAGES = 50
NOTE_CHARS = 80


# --- deletes that keep the rollup's bookkeeping --------------------------------------------


class RollupDeletesMixin:
    """Deletes from the admin, one object or a selection, keep the rollup's bookkeeping: what
    ``record_deletion`` writes about the rows commits with the DELETE or not at all, and the marks
    are folded afterwards, as every other writer of ours does."""

    def record_deletion(self, queryset):
        raise NotImplementedError("the admin says what deleting these rows changes in the rollup")

    def delete_model(self, request, obj):
        using = obj._state.db
        with transaction.atomic(using=using):
            self.record_deletion(type(obj)._default_manager.using(using).filter(pk=obj.pk))
            super().delete_model(request, obj)
        fold_marks(using=using)

    def delete_queryset(self, request, queryset):
        using = queryset.db
        with transaction.atomic(using=using):
            self.record_deletion(queryset)
            super().delete_queryset(request, queryset)
        fold_marks(using=using)


# --- the session page's inlines: its messages and its usage per model ----------------------


class CappedMessageFormSet(BaseInlineFormSet):
    """Only the first ``INLINE_MESSAGES`` messages, so a 20,000-message session opens quickly."""

    def get_queryset(self):
        if not hasattr(self, "_capped_queryset"):
            self._capped_queryset = super().get_queryset()[:INLINE_MESSAGES]
        return self._capped_queryset


class ReadOnlyInline(admin.TabularInline):
    """An inline of records: shown, never added, changed or deleted from the session's page."""

    extra = 0
    max_num = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class MessageInline(ReadOnlyInline):
    model = Message
    fk_name = "session"
    formset = CappedMessageFormSet
    fields = ["message_link", "time", "role_state", "content_preview", "tool_name", "token_count", "finish_reason"]
    readonly_fields = fields
    ordering = ["timestamp", "id"]
    verbose_name_plural = f"messages (the first {INLINE_MESSAGES}, in order)"

    @admin.display(description="message")
    def message_link(self, message):
        url = reverse("admin:sessions_app_message_change", args=[message.pk])
        return format_html('<a href="{}">#{}</a>', url, message.pk)

    @admin.display(description="time (UTC)")
    def time(self, message):
        return f"{message.timestamp:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="content")
    def content_preview(self, message):
        return Truncator(message.content or "").chars(300)

    @admin.display(description="role")
    def role_state(self, message):
        """The role, and how hermes-agent left the message when it is not live (undone, compacted)."""
        state = message_state(message)
        role = message.get_role_display()
        return role if state == "live" else format_html('{} <span class="message-state">({})</span>', role, state)


def message_state(message) -> str:
    """How hermes-agent left the message: live, undone (not counted), or compacted (summarized away)."""
    if message.compacted:
        return "compacted"
    return "live" if message.active else "undone"


class ModelUsageInline(ReadOnlyInline):
    """What each model (per billing route and task) cost the session: hermes v30's per-model usage."""

    model = ModelUsage
    fk_name = "session"
    fields = ["model", "task_name", "route", "api_calls", "input_tokens", "output_tokens", "cache", "reasoning_tokens",
              "cost", "seen"]  # fmt: skip
    readonly_fields = fields
    ordering = ["first_seen", "id"]
    verbose_name_plural = "usage per model"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("model")

    @admin.display(description="task")
    def task_name(self, usage):
        return usage.task or "main"

    @admin.display(description="billing")
    def route(self, usage):
        return " · ".join(part for part in (usage.billing_provider, usage.billing_mode) if part) or "-"

    @admin.display(description="cache read / write")
    def cache(self, usage):
        return f"{usage.cache_read_tokens:,} / {usage.cache_write_tokens:,}"

    @admin.display(description="cost (USD), estimated / actual")
    def cost(self, usage):
        return f"{usd(usage.estimated_cost_usd)} / {usd(usage.actual_cost_usd)}"

    @admin.display(description="seen (UTC)")
    def seen(self, usage):
        first, last = usage.first_seen, usage.last_seen
        if first is None or last is None:
            return "-" if first is last else f"{first or last:%Y-%m-%d %H:%M}"
        if first.date() == last.date():
            return f"{first:%Y-%m-%d %H:%M} to {last:%H:%M}"
        return f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"


def usd(amount) -> str:
    """A cost in US dollars, as precise as it was recorded, or "-" when none was."""
    return "-" if amount is None else f"{amount.normalize():f}"


# --- sessions ------------------------------------------------------------------------------


@admin.register(Session)
class SessionAdmin(RollupDeletesMixin, HardenedAdminMixin, admin.ModelAdmin):
    # The narrow columns that answer "did it speak?" first, the wide ones (model, title) last:
    # the list fits 1366 px with the admin's sidebar open.
    # The title rides under the id (cut, the full text on hover) rather than in a column of its own.
    list_display = [
        "session",
        "has_messages",
        "message_count",
        "started",
        "origin",
        "model_name",
    ]
    list_display_links = ["session"]
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
    inlines = [ModelUsageInline, MessageInline]
    # Every field is read-only (no change permission); these are the computed ones.
    readonly_fields = [
        "parent_link",
        "children_links",
        "message_rows",
        "api_calls",
        "estimated_cost",
        "actual_cost",
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
                    ("message_count", "tool_call_count", "api_calls"),
                    ("input_tokens", "output_tokens", "reasoning_tokens"),
                    ("cache_read_tokens", "cache_write_tokens"),
                    ("estimated_cost", "actual_cost"),
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

    def has_add_permission(self, request):
        return False  # a session is created by the save path with its first message, never by hand

    def has_change_permission(self, request, obj=None):
        return False  # a record: viewing needs the view permission, deleting the delete one

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

    @admin.display(description="started → ended (UTC)", ordering="started_at")
    def started(self, session):
        """The start, and under it the end and its reason (one column: the list fits 1366 px)."""
        if session.ended_at is None:
            end = "open"
        else:
            # The date only when it is not the start's: the column stays narrow.
            same_day = session.ended_at.date() == session.started_at.date()
            end = f"{session.ended_at:%H:%M}" if same_day else f"{session.ended_at:%Y-%m-%d %H:%M}"
            end = f"{end} {session.end_reason}" if session.end_reason else end
        return format_html('{}<span class="end-reason">→ {}</span>', f"{session.started_at:%Y-%m-%d %H:%M}", end)

    @admin.display(description="has messages", boolean=True)
    def has_messages(self, session):
        return session.has_messages

    @admin.display(description="session (title)", ordering="id")
    def session(self, session):
        if not session.title:
            return session.id
        return format_html(
            '{}<span class="session-title" title="{}">{}</span>',
            session.id,
            session.title,
            Truncator(session.title).chars(TITLE_CHARS),
        )

    @admin.display(description="source / profile", ordering="source")
    def origin(self, session):
        """Where the agent ran, and under it the hermes profile unless it is the default one."""
        if session.profile == DEFAULT_PROFILE:
            return session.source
        return format_html('{}<span class="session-title">{}</span>', session.source, session.profile)

    @admin.display(description="API calls")
    def api_calls(self, session):
        return session.api_call_count

    @admin.display(description="estimated cost (USD)")
    def estimated_cost(self, session):
        return usd(session.estimated_cost_usd)

    @admin.display(description="actual cost (USD)")
    def actual_cost(self, session):
        return usd(session.actual_cost_usd)

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
        counts = session.messages.aggregate(
            rows=Count("pk"), live=Count("pk", filter=Q(active=True)), compacted=Count("pk", filter=Q(compacted=True))
        )
        rows, live = counts["rows"], counts["live"]
        if not rows:
            text = self._no_messages(session)
        elif rows <= INLINE_MESSAGES:
            text = format_html(
                '{} (<a href="{}">open in the message list</a>)', rows, message_changelist_url(session.pk)
            )
        else:
            text = format_html(
                '{} — the first {} are shown below; <a href="{}">all {} in the message list</a>',
                rows,
                INLINE_MESSAGES,
                message_changelist_url(session.pk),
                rows,
            )
        if live != rows:
            # hermes-agent (schema 30) keeps undone and compacted turns as rows; the counters count live ones.
            undone = rows - live - counts["compacted"]
            text = format_html(
                "{}<div class=\"help\">{} live, {} undone or rewound, {} compacted (summarized away): the "
                "counters count the live ones, as hermes-agent does.</div>",
                text, live, undone, counts["compacted"],
            )  # fmt: skip
        if live != session.message_count:
            # Imported history may carry hermes-agent's own counter, which can disagree with the rows
            # (its issue #12563 doubled it on every flush). Our save path and importer keep it exact.
            text = format_html(
                '{}<div class="help counter-note">The stored message count says {}: it is the counter '
                "hermes-agent kept when this session was imported, and it can disagree with the rows "
                "(hermes-agent once counted each flush again). The rows are the truth: emptiness and every "
                "report use them.</div>",
                text,
                session.message_count,
            )
        return text

    def _no_messages(self, session):
        """An empty session says so, and why (its cause, as the reports decide it), with a link to
        every session of that cause."""
        sessions = Session.objects.using(session._state.db).filter(pk=session.pk)
        cause = sessions.with_cause().values_list("cause", flat=True).first()
        text = mark_safe('<strong class="no-messages">No messages</strong>: this session is empty.')
        if cause is None:  # a message arrived since the page was asked for
            return text
        url = session_changelist_url(cause=cause)
        return format_html(
            '{} Why: <a href="{}" class="empty-cause">{}</a> '
            '<span class="help">({}; all sessions of this cause)</span>',
            text,
            url,
            cause,
            CAUSE_LABELS[cause],
        )

    def get_inline_instances(self, request, obj=None):
        # An empty session has no message to list: its page says so instead of an empty table. The
        # per-model usage table only where there is usage to show (imported from hermes v30, or
        # reported with a model through the save path), an empty session's included.
        inlines = super().get_inline_instances(request, obj)
        if obj is not None and not obj.has_messages:
            inlines = [inline for inline in inlines if not isinstance(inline, MessageInline)]
        if obj is None or not obj.model_usage.exists():
            inlines = [inline for inline in inlines if not isinstance(inline, ModelUsageInline)]
        return inlines

    def record_deletion(self, queryset):
        forget_sessions(queryset)  # the ledger and the rollup's marks of the sessions (with their messages)

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


# --- messages ------------------------------------------------------------------------------


@admin.register(Message)
class MessageAdmin(RollupDeletesMixin, HardenedAdminMixin, admin.ModelAdmin):
    # Compact enough for a 1366 px screen with the sidebar and the filter open: the time rides
    # under the id, the tool's name under the role, and the content wraps.
    list_display = ["message", "session_link", "role_and_tool", "content_preview", "tokens"]
    list_display_links = ["message"]
    list_filter = ["role", "active", "compacted"]
    search_fields = ["=session__id"]
    search_help_text = "Exact session id."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    list_per_page = 100

    def has_add_permission(self, request):
        return False  # messages are what agents wrote: the admin views and deletes them only

    def has_change_permission(self, request, obj=None):
        return False

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

    def record_deletion(self, queryset):
        mark_sessions_of(queryset)  # a session the deletion leaves empty changes its day

    @admin.display(description="message · time (UTC)", ordering="id")
    def message(self, message):
        return format_html(
            '{}<span class="message-time">{}</span>', message.pk, f"{message.timestamp:%Y-%m-%d %H:%M:%S}"
        )

    @admin.display(description="tokens", ordering="token_count")
    def tokens(self, message):
        return "-" if message.token_count is None else f"{message.token_count:,}"

    @admin.display(description="role · tool", ordering="role")
    def role_and_tool(self, message):
        if not message.tool_name:
            return message.get_role_display()
        return format_html('{}<span class="message-time">{}</span>', message.get_role_display(), message.tool_name)

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


# --- trend markers -------------------------------------------------------------------------


@admin.register(TrendMarker)
class TrendMarkerAdmin(HardenedAdminMixin, admin.ModelAdmin):
    list_display = ["at", "label", "short_note"]
    list_display_links = ["at", "label"]
    search_fields = ["label", "note"]
    search_help_text = "Part of a label or note."
    date_hierarchy = "at"
    ordering = ["-at", "-id"]
    fields = ["at", "label", "note"]

    @admin.display(description="note")
    def short_note(self, marker):
        return Truncator(marker.note).chars(NOTE_CHARS)
