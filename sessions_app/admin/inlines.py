"""The session page's read-only inlines: its messages (capped so a 20,000-message session opens
quickly) and its per-model usage."""

from django.contrib import admin
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from sessions_app.models import Message, ModelUsage

# Messages shown inline on a session's page; the rest are one click away in the message list.
INLINE_MESSAGES = 50


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
