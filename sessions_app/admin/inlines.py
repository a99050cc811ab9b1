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


class MessageInline(admin.TabularInline):
    model = Message
    fk_name = "session"
    formset = CappedMessageFormSet
    fields = [
        "message_link", "time", "role", "live", "content_preview", "tool_name", "token_count", "finish_reason",
    ]  # fmt: skip
    readonly_fields = fields
    ordering = ["timestamp", "id"]
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = f"messages (the first {INLINE_MESSAGES}, in order)"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

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

    @admin.display(description="state")
    def live(self, message):
        return message_state(message)


def message_state(message) -> str:
    """How hermes-agent left the message: live, undone (not counted), or compacted (summarized away)."""
    if message.compacted:
        return "compacted"
    return "live" if message.active else "undone"


class ModelUsageInline(admin.TabularInline):
    """What each model (per billing route and task) cost the session: hermes v30's per-model usage."""

    model = ModelUsage
    fk_name = "session"
    fields = [
        "model", "task", "billing_provider", "billing_mode", "api_calls", "input_tokens", "output_tokens",
        "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "estimated_cost_usd", "actual_cost_usd",
        "cost_status", "first_seen", "last_seen",
    ]  # fmt: skip
    readonly_fields = fields
    ordering = ["first_seen", "id"]
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = "usage per model"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("model")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
