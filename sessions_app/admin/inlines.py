"""The session page's read-only message inline, capped so a 20,000-message session opens quickly."""

from django.contrib import admin
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from sessions_app.models import Message

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
    fields = ["message_link", "time", "role", "content_preview", "tool_name", "token_count", "finish_reason"]
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
