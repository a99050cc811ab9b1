"""The reports' groupings and filters, checked and normalised once (``scope.Scope``).

Every session report (rates, trend, per-LanguageModel counts) then narrows its sessions with
``Session.objects.matching(**filters)``, so ``since``/``until``/``model``/``source``/``profile`` mean
the same thing in every report, in prune and in the admin. Without ``profile``, a report counts
every profile together (the default: one place for all of them).
"""

from django.core.exceptions import ValidationError

from sessions_app.aggregates import empty_condition, exact_values, model_name, session_counts
from sessions_app.scope import Scope, exact_name, utc_bound

# Groupings of sessions by a column or a period: every report has them.
KEY_GROUPINGS = ("model", "source", "profile", "day", "week", "month")
# ... and, for the empty-session rates, by why the empty ones are empty (analytics.causes).
GROUPINGS = (*KEY_GROUPINGS, "cause")


def check_grouping(by, groupings: tuple[str, ...] = GROUPINGS, name: str = "by") -> None:
    """``ValidationError`` (keyed by ``name``) unless ``by`` is one of ``groupings``."""
    if by not in groupings:
        raise ValidationError(
            {name: f"unknown grouping {by!r}; choose one of {', '.join(groupings)}."}, code="invalid_choice"
        )


def report_filters(*, since=None, until=None, model=None, source=None, profile=None) -> dict:
    """The filters of ``empty_session_rates``, checked and normalised as it does (bounds in UTC);
    ``ValidationError`` for a bad bound, ``since >= until`` or an empty or non-text name."""
    return Scope(since=since, until=until, model=model, source=source, profile=profile).as_dict()


__all__ = [
    "GROUPINGS",
    "KEY_GROUPINGS",
    "check_grouping",
    "empty_condition",
    "exact_name",
    "exact_values",
    "model_name",
    "report_filters",
    "session_counts",
    "utc_bound",
]
