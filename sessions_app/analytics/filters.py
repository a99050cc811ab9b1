"""The reports' groupings and filters, checked and normalised once.

Every session report (rates, trend, per-LanguageModel counts) then narrows its sessions with
``Session.objects.matching(**filters)``, so ``since``/``until``/``model``/``source``/``profile`` mean
the same thing in every report, in prune and in the admin. Without ``profile``, a report counts
every profile together (the default: one place for all of them).
"""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db.models import Count, OuterRef, Q, Subquery

from agents_app.models import LanguageModel
from sessions_app.querysets import EARLIEST_MOMENT

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
    since = utc_bound(since, "since")
    until = utc_bound(until, "until")
    if since is not None and until is not None and since >= until:
        raise ValidationError(
            {"until": f"until ({until.isoformat()}) must be after since ({since.isoformat()})."}, code="invalid"
        )
    return {
        "since": since,
        "until": until,
        "model": exact_name(model, "model"),
        "source": exact_name(source, "source"),
        "profile": exact_name(profile, "profile"),
    }


def exact_values(queryset, field_name: str) -> list[str]:
    """Every distinct value of a key column (a ``KeyField``: source, profile, end reason), sorted,
    byte for byte on every backend ("CLI" and "cli" are two); NULL is left out."""
    choices = queryset.order_by().values_list(field_name, flat=True).distinct()
    return sorted(choice for choice in choices if choice is not None)


def utc_bound(value, name: str = "bound") -> dt.datetime | None:
    """An aware UTC datetime from a date (midnight UTC) or an aware datetime; None stays None.

    ``ValidationError`` (keyed by ``name``) for a naive datetime, another type, or a moment that
    falls outside the datetimes Python has once converted to UTC or before ``EARLIEST_MOMENT``."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(
                {name: f"{value.isoformat()} is a naive datetime; give an aware one (e.g. UTC) or a date."},
                code="invalid",
            )
        try:
            moment = value.astimezone(dt.UTC)
        except OverflowError:  # 9999-12-31T23:00-05:00 is past the last datetime there is
            raise ValidationError({name: f"{value.isoformat()} is out of range in UTC."}, code="invalid") from None
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    else:
        raise ValidationError({name: f"must be a date or a datetime, got {type(value).__name__}."}, code="invalid")
    if moment < EARLIEST_MOMENT:  # the week before 0001-01-01 does not exist
        raise ValidationError(
            {name: f"{value.isoformat()} is before {EARLIEST_MOMENT:%Y-%m-%d} (UTC), where the reports start."},
            code="invalid",
        )
    return moment


def exact_name(value, name: str) -> str | None:
    """A model, source or profile name to match exactly, checked: None (no filter) or non-empty text;
    ``ValidationError`` keyed by ``name`` otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError({name: f"must be a string, got {type(value).__name__}."}, code="invalid")
    if not value:
        raise ValidationError({name: "must not be empty; leave it out to include every value."}, code="required")
    return value


def session_counts() -> dict[str, Count]:
    """The aggregates ``sessions`` and ``empty`` of a report, in a form a covering index answers:
    ``COUNT(*)`` rather than ``COUNT(id)`` (SQLite's indexes hold the rowid, not the text key)."""
    return {"sessions": Count("*"), "empty": Count("has_messages", filter=empty_condition())}


def model_name() -> Subquery:
    """The model's name in a query grouped by ``model`` (the id), annotated after the counts so it
    is looked up once per group: joining the names before grouping made the per-model report half
    again as slow as the same counts grouped first."""
    return Subquery(LanguageModel.objects.filter(pk=OuterRef("model")).order_by().values("name")[:1])


def empty_condition() -> Q:
    """The condition "this session has no message row" for aggregates (``Count(filter=...)``): the
    ``has_messages`` flag, kept exact by the database's triggers, as ``Session.objects.empty()``."""
    return Q(has_messages=False)
