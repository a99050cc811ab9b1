"""Validation of what the save path is asked to write, before anything is written.

Every check raises ``django.core.exceptions.ValidationError``, keyed by field, and decides alike on
every backend: a value is stored everywhere or refused everywhere, never left to one database's
own error. ``text``: identifiers and free text (no NUL, no lone surrogate; sizes as sent);
``documents``: JSON; ``numbers``: timestamps, counts and counter increments; ``messages``: a
message and a batch, using the others.
"""

from sessions_app.validation.documents import MAX_JSON_DEPTH, MAX_JSON_INT, MIN_JSON_INT, check_json
from sessions_app.validation.messages import (
    MESSAGE_FIELDS,
    ROLES,
    Batch,
    check_batch,
    check_message,
    tool_call_total,
)
from sessions_app.validation.numbers import (
    COUNTER_LIMITS,
    MAX_CLOCK_SKEW,
    MAX_COUNTER_INCREMENT,
    MAX_TOKEN_COUNT,
    USAGE_FIELDS,
    check_count,
    check_timestamp,
    check_usage,
    counter_key,
    counter_overflow,
)
from sessions_app.validation.text import (
    MAX_MESSAGE_BYTES,
    check_identifier,
    check_sent_size,
    check_session_id,
    check_text,
    sent_size,
    shown,
    text_problem,
)

__all__ = [
    "COUNTER_LIMITS",
    "MAX_CLOCK_SKEW",
    "MAX_COUNTER_INCREMENT",
    "MAX_JSON_DEPTH",
    "MAX_JSON_INT",
    "MAX_MESSAGE_BYTES",
    "MAX_TOKEN_COUNT",
    "MESSAGE_FIELDS",
    "MIN_JSON_INT",
    "ROLES",
    "USAGE_FIELDS",
    "Batch",
    "check_batch",
    "check_count",
    "check_identifier",
    "check_json",
    "check_message",
    "check_sent_size",
    "check_session_id",
    "check_text",
    "check_timestamp",
    "check_usage",
    "counter_key",
    "counter_overflow",
    "sent_size",
    "shown",
    "text_problem",
    "tool_call_total",
]
