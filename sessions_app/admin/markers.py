"""The trend markers' admin: operators record what happened when (a deployment, a model switch,
an outage); the analytics page draws each on its trend and compares the rates before and after."""

from django.contrib import admin
from django.utils.text import Truncator

from sessions_app.admin_site import HardenedAdminMixin
from sessions_app.models import TrendMarker

NOTE_CHARS = 80


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
