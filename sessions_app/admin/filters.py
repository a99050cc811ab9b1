"""List filters of the session changelist: emptiness and its cause, and exact source, profile and end reason."""

from django.contrib import admin

from sessions_app.analytics import CAUSES, exact_values

CAUSE_LABELS = {
    "lost_transcript": "Lost transcript (usage, no message)",
    "never_ended": "Never ended (open past the grace period)",
    "open": "Open (may still speak)",
    "ghost": "Ghost (ended without usage)",
}


class EmptyFilter(admin.SimpleListFilter):
    """Empty = no message row, as ``Session.objects.empty()`` decides it, not the counter."""

    title = "messages"
    parameter_name = "empty"

    def lookups(self, request, model_admin):
        return [("yes", "Empty (no messages)"), ("no", "With messages")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.empty()
        if self.value() == "no":
            return queryset.non_empty()
        return queryset


class CauseFilter(admin.SimpleListFilter):
    """Empty sessions of one cause (``analytics.causes``), as ``Session.objects.of_cause`` decides it."""

    title = "why empty"
    parameter_name = "cause"

    def lookups(self, request, model_admin):
        return [(cause, CAUSE_LABELS[cause]) for cause in CAUSES]

    def queryset(self, request, queryset):
        if self.value() in CAUSES:
            return queryset.of_cause(self.value())
        return queryset


class ExactValueFilter(admin.SimpleListFilter):
    """One choice per distinct value of a key column (a ``KeyField``), matched byte for byte on
    every backend: "CLI" and "cli" are two choices, as the reports count them apart."""

    field_name = ""

    def lookups(self, request, model_admin):
        values = exact_values(model_admin.model._default_manager.all(), self.field_name)
        return [(value, value) for value in values]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(**{self.field_name: self.value()})


class SourceFilter(ExactValueFilter):
    title = parameter_name = field_name = "source"


class ProfileFilter(ExactValueFilter):
    """The hermes profile; "work" and "Work" are two choices (and two profiles) on every backend."""

    title = parameter_name = field_name = "profile"


class EndReasonFilter(ExactValueFilter):
    title = "end reason"
    parameter_name = field_name = "end_reason"
