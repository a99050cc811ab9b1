"""The message admin: messages are what agents wrote, so it views and deletes them only."""

from django.contrib import admin
from django.utils.html import format_html
from django.utils.text import Truncator

from sessions_app.admin.links import session_change_url
from sessions_app.admin.paginators import EstimatedCountPaginator
from sessions_app.admin_site import HardenedAdminMixin
from sessions_app.models import Message


@admin.register(Message)
class MessageAdmin(HardenedAdminMixin, admin.ModelAdmin):
    list_display = ["id", "session_link", "time", "role", "content_preview", "tool_name", "token_count"]
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
