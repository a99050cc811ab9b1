"""Messages and batches: every field of a message checked before anything is written."""

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.utils import timezone

from agents_app.conf import hermes_settings
from sessions_app.models import Role
from sessions_app.validation.documents import checked_json_size
from sessions_app.validation.numbers import check_count, check_timestamp, check_usage
from sessions_app.validation.text import check_identifier, check_sent_size, check_text, plain_text, shown

ROLES = frozenset(Role.values)

MESSAGE_FIELDS = frozenset(
    {
        "role",
        "content",
        "tool_call_id",
        "tool_calls",
        "tool_name",
        "timestamp",
        "token_count",
        "finish_reason",
        "reasoning",
        "extra",
        "active",
        "compacted",
    }
)

_SHORT_TEXT_LIMITS = {"tool_call_id": 255, "tool_name": 255, "finish_reason": 64}
# hermes-agent v30's flags: an undone/rewound turn is inactive, a summarized-away one compacted.
_FLAGS = {"active": True, "compacted": False}


@dataclass
class Batch:
    """A validated batch: message field dicts ready for ``Message(**fields)`` and counter increments."""

    messages: list[dict]
    tool_calls: int = 0  # of the active messages
    usage: dict[str, int] = field(default_factory=dict)
    active: int = 0  # how many of the messages are active (what message_count counts)


def check_message(message, *, now: dt.datetime, max_chars: int | None = None) -> dict:
    """Validate one message dict and return the fields for ``Message(**fields)``.

    Runs for every message of every flush, so absent fields and plain ASCII text skip the
    helpers inline; the checks and their order (hence the error reported first) are theirs.
    ``max_chars`` is ``hermes_settings.HERMES_MAX_CONTENT_CHARS``, read once per batch by the caller."""
    if max_chars is None:
        max_chars = hermes_settings.HERMES_MAX_CONTENT_CHARS
    if type(message) is not dict and not isinstance(message, Mapping):
        raise ValidationError(f"must be a dict of message fields, got {type(message).__name__}.", code="invalid")
    if not message.keys() <= MESSAGE_FIELDS:
        unknown = message.keys() - MESSAGE_FIELDS
        raise ValidationError(
            f"unknown field(s) {', '.join(sorted(map(shown, unknown)))}; allowed: {', '.join(sorted(MESSAGE_FIELDS))}.",
            code="invalid",
        )
    get = message.get
    role = get("role")
    # isinstance first: an unhashable role ({} or []) cannot even be looked up in the set.
    if not isinstance(role, str) or role not in ROLES:
        raise ValidationError({"role": f"{shown(role)} is not one of {', '.join(Role.values)}."}, code="invalid_choice")
    content = get("content")
    if content is not None and not plain_text(content, max_chars):
        content = check_text(content, "content")
    reasoning = get("reasoning")
    if reasoning is not None and not plain_text(reasoning, max_chars):
        reasoning = check_text(reasoning, "reasoning")
    fields = {"role": role, "content": content, "reasoning": reasoning}
    for name, limit in _SHORT_TEXT_LIMITS.items():
        value = get(name)
        if value is not None:
            value = check_identifier(value, name, max_length=limit)
        fields[name] = value
    tool_calls = get("tool_calls")
    extra = get("extra")
    json_size = 10  # the bound of two absent JSON fields, as _check_json counts them
    if tool_calls is not None:
        if not isinstance(tool_calls, (list, tuple, dict)):
            raise ValidationError({"tool_calls": "must be a list of tool calls (or a single dict)."}, code="invalid")
        json_size += checked_json_size(tool_calls, "tool_calls") - 5
    if extra is not None:
        json_size += checked_json_size(extra, "extra") - 5
    fields["tool_calls"], fields["extra"] = tool_calls, extra
    timestamp = get("timestamp")
    fields["timestamp"] = now if timestamp is None else check_timestamp(timestamp, now=now)
    token_count = get("token_count")
    fields["token_count"] = None if token_count is None else check_count(token_count, "token_count")
    for name, default in _FLAGS.items():
        value = get(name, default)
        if value is not True and value is not False:
            raise ValidationError({name: f"must be True or False, got {shown(value)}."}, code="invalid")
        fields[name] = value
    check_sent_size(fields, json_size)
    return fields


def tool_call_total(tool_calls) -> int:
    """How many tool calls a message's ``tool_calls`` holds (hermes-agent's counting)."""
    if not tool_calls:
        return 0
    return len(tool_calls) if isinstance(tool_calls, (list, tuple)) else 1


def check_batch(messages: Sequence, *, usage: Mapping | None = None) -> Batch:
    """Validate a whole batch up front; all problems are reported together, keyed by message index."""
    if type(messages) is not list and (
        isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence)
    ):
        raise ValidationError({"messages": "must be a list of message dicts."}, code="invalid")
    if not messages:
        # An empty batch must not create a session: that is the whole point of lazy creation.
        raise ValidationError({"messages": "at least one message is required."}, code="required")
    now = timezone.now()
    max_chars = hermes_settings.HERMES_MAX_CONTENT_CHARS
    errors: dict[str, list] = {}
    cleaned = []
    tool_calls = active = 0
    for index, message in enumerate(messages):
        try:
            fields = check_message(message, now=now, max_chars=max_chars)
        except ValidationError as exc:
            key = f"messages[{index}]"
            if hasattr(exc, "error_dict"):
                for name, errs in exc.message_dict.items():
                    errors.setdefault(f"{key}.{name}", []).extend(errs)
            else:
                errors.setdefault(key, []).extend(exc.messages)
            if len(errors) >= 20:
                break
            continue
        if fields["active"]:  # the counters count active messages only, as hermes-agent does
            active += 1
            if fields["tool_calls"]:
                tool_calls += tool_call_total(fields["tool_calls"])
        cleaned.append(fields)
    if errors:
        raise ValidationError(errors)
    return Batch(messages=cleaned, tool_calls=tool_calls, usage=check_usage(usage) if usage else {}, active=active)
