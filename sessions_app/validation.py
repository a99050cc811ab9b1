"""Validation of what the save path is asked to write, before anything is written.

Every check raises ``django.core.exceptions.ValidationError``. Text refused on every backend
alike: NUL characters (PostgreSQL cannot store them in text or jsonb, so we refuse them
everywhere rather than store different data per backend) and lone UTF-16 surrogates (not valid
UTF-8). Nothing is stripped or truncated silently.
"""

import datetime as dt
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from sessions_app.models import SESSION_ID_MAX_LENGTH, Role, Session

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
    }
)
USAGE_FIELDS = frozenset(
    {"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "api_call_count"}
)
_SHORT_TEXT_LIMITS = {"tool_call_id": 255, "tool_name": 255, "finish_reason": 64}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# How far ahead of this machine's clock a timestamp may be (clock skew between hosts).
MAX_CLOCK_SKEW = dt.timedelta(days=1)
MAX_TOKEN_COUNT = 2**31 - 1
# Largest single usage increment of a 64-bit token counter.
MAX_COUNTER_INCREMENT = 2**62
# The largest value each session counter may hold, the same on every backend: the smallest range
# any of them gives the column (PositiveIntegerField: 32-bit signed on PostgreSQL, unsigned on
# MariaDB, 64-bit on SQLite; BigIntegerField: 64-bit signed everywhere). An increment that would
# pass it is refused (``_flush_sql.add_to_counters``) rather than left to each backend's own error
# (a DataError, an IntegrityError, or SQLite silently turning the column into a float).
COUNTER_LIMITS = {
    name: MAX_TOKEN_COUNT if Session._meta.get_field(name).get_internal_type() == "PositiveIntegerField" else 2**63 - 1
    for name in ("message_count", "tool_call_count", *sorted(USAGE_FIELDS))
}
# Largest message as the database receives it: its text and serialised JSON, counted in UTF-8
# bytes plus one byte for every character a MySQL/MariaDB client escapes with a backslash when it
# interpolates the value into the statement (' " \ CR LF Ctrl-Z; NUL is refused anyway). MariaDB
# refuses any statement over max_allowed_packet (16 MiB by default) with an OperationalError that a
# retry cannot cure, while PostgreSQL and SQLite would store it; so a message that could be that
# big on MariaDB is refused on every backend alike. 12 MiB leaves 4 MiB for the rest of the row.
MAX_MESSAGE_BYTES = 12 * 1024 * 1024
_ESCAPED_WHEN_SENT = ("'", '"', "\\", "\n", "\r", "\x1a")
# Deepest nesting of JSON arrays and objects (``[[1]]`` is 2 deep). MariaDB's json_valid() (the
# CHECK on its JSON columns) refuses 32 levels; a fixed, lower limit is the same everywhere.
MAX_JSON_DEPTH = 20
# JSON integers must fit in 64 bits (signed or unsigned), which the JSON functions of SQLite and
# MariaDB handle exactly; larger ones would be compared as floats there (and past 4300 digits
# Python cannot even serialise them).
MIN_JSON_INT, MAX_JSON_INT = -(2**63), 2**64 - 1


@dataclass
class Batch:
    """A validated batch: message field dicts ready for ``Message(**fields)`` and counter increments."""

    messages: list[dict]
    tool_calls: int = 0
    usage: dict[str, int] = field(default_factory=dict)


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text on every backend, or None."""
    if "\x00" in value:
        return "contains a NUL character (\\x00), which PostgreSQL cannot store; remove or escape it"
    if not value.isascii() and _SURROGATE.search(value):
        return "contains a lone UTF-16 surrogate, which is not valid UTF-8"
    return None


def check_identifier(value, name: str, *, max_length: int, required: bool = True) -> str | None:
    """A short identifier (session id, model name, source): a non-empty string without control characters."""
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and name == "user_id":
        value = str(value)  # chat platforms use numeric user ids
    if not isinstance(value, str):
        raise ValidationError({name: f"must be a string, got {type(value).__name__}."}, code="invalid")
    if not value:
        raise ValidationError({name: "must not be empty."}, code="required")
    if len(value) > max_length:
        raise ValidationError({name: f"is {len(value)} characters long; the limit is {max_length}."}, code="max_length")
    if _CONTROL.search(value):
        raise ValidationError({name: "must not contain control characters."}, code="invalid")
    if problem := text_problem(value):
        raise ValidationError({name: problem}, code="invalid")
    return value


def check_session_id(value, name: str = "session_id") -> str:
    return check_identifier(value, name, max_length=SESSION_ID_MAX_LENGTH)


def shown(value, limit: int = 60) -> str:
    """``value`` for an error message: short, printable, and never an exception of its own (the
    repr of a 5000-digit integer raises ValueError; a 10 MB string would flood the log)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, str):
        return repr(value[:limit]) + ("…" if len(value) > limit else "")
    if value is None or isinstance(value, (int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


def sent_size(text: str) -> int:
    """Bytes ``text`` takes in a statement at worst: UTF-8, plus a backslash for each character
    a MySQL/MariaDB client escapes (see ``MAX_MESSAGE_BYTES``). ``text`` holds no lone surrogate."""
    size = len(text) if text.isascii() else len(text.encode())
    return size + sum(text.count(char) for char in _ESCAPED_WHEN_SENT)


def check_text(value, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError({name: f"must be a string or None, got {type(value).__name__}."}, code="invalid")
    limit = settings.HERMES_MAX_CONTENT_CHARS
    if len(value) > limit:
        raise ValidationError(
            {name: f"is {len(value):,} characters long; the limit is {limit:,} (setting HERMES_MAX_CONTENT_CHARS)."},
            code="max_length",
        )
    if problem := text_problem(value):
        raise ValidationError({name: problem}, code="invalid")
    # A character takes at most 4 bytes as sent, so only long text needs counting.
    if 4 * len(value) > MAX_MESSAGE_BYTES and (size := sent_size(value)) > MAX_MESSAGE_BYTES:
        raise _too_big_as_sent(name, size)
    return value


def _plain_text(value, max_chars: int) -> bool:
    """Whether ``value`` is text that ``check_text`` accepts unchanged, decided without its checks:
    an ASCII ``str`` (no surrogates) within the limit and without NUL."""
    return type(value) is str and len(value) <= max_chars and value.isascii() and "\x00" not in value


def _json_path(name: str, where) -> str:
    """The readable path of a JSON value from ``where``, a linked list ``(parent, key or index)``."""
    steps = []
    while where is not None:
        where, step = where
        steps.append(step)
    parts = [name]
    for step in reversed(steps):
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif step.isidentifier() and step.isascii() and len(step) <= 60:
            parts.append(f".{step}")
        else:
            parts.append(f"[{shown(step)}]")
    return "".join(parts)


def _check_json(value, name: str) -> int:
    """Check ``value`` as JSON every backend stores alike; returns an upper bound of its size as
    sent (see ``MAX_MESSAGE_BYTES``), cheap enough to compute on every message.

    Iterative, so no document is too deep for Python's stack; keys are checked like values. A
    character of a string takes at most 14 bytes as sent: ``\\ud83d\\ude00`` for an astral
    character, its two backslashes escaped once more by MySQL/MariaDB clients."""
    size = 0
    stack = [(value, 0, None)]  # (value, depth of the containers around it, where it is)
    pop, push = stack.pop, stack.append
    while stack:
        item, depth, where = pop()
        if item is None or item is True or item is False:
            size += 5
        elif isinstance(item, str):
            if problem := text_problem(item):
                raise ValidationError(f"{_json_path(name, where)} {problem}.")
            size += 14 * len(item) + 4
        elif isinstance(item, int):
            if not MIN_JSON_INT <= item <= MAX_JSON_INT:
                raise ValidationError(
                    f"{_json_path(name, where)} is an integer outside the 64-bit range JSON columns compare exactly "
                    f"({MIN_JSON_INT} to {MAX_JSON_INT})."
                )
            size += 21
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(f"{_json_path(name, where)} is {item}, which JSON cannot represent.")
            size += 24
        elif isinstance(item, (dict, list, tuple)):
            if depth >= MAX_JSON_DEPTH:
                raise ValidationError(
                    f"{_json_path(name, where)} nests arrays and objects more than {MAX_JSON_DEPTH} levels deep."
                )
            size += 2
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise ValidationError(f"{_json_path(name, where)} has a non-string key {shown(key)}.")
                    if problem := text_problem(key):
                        raise ValidationError(f"{_json_path(name, where)} has a key that {problem}.")
                    size += 14 * len(key) + 8
                    push((child, depth + 1, (where, key)))
            else:
                for index, child in enumerate(item):
                    size += 2
                    push((child, depth + 1, (where, index)))
        else:
            raise ValidationError(
                f"{_json_path(name, where)} holds a {type(item).__name__}, which is not JSON-serialisable."
            )
    return size


def check_json(value, name: str):
    """A JSON-serialisable value that every backend stores alike: no NaN, no NUL or lone surrogate
    in a string or a key, string keys, 64-bit integers, at most ``MAX_JSON_DEPTH`` levels deep."""
    _checked_json_size(value, name)
    return value


def _checked_json_size(value, name: str) -> int:
    try:
        return _check_json(value, name)
    except ValidationError as exc:
        raise ValidationError({name: exc.messages}, code="invalid") from None


def check_timestamp(value, name: str = "timestamp", *, now: dt.datetime | None = None) -> dt.datetime:
    """An aware datetime or Unix seconds, between 1970 and a day ahead of now."""
    if isinstance(value, dt.datetime):
        if timezone.is_naive(value):
            raise ValidationError(
                {name: "is a naive datetime; give an aware one (UTC) or Unix seconds."}, code="invalid"
            )
        try:
            when = value.astimezone(dt.UTC)  # stored as UTC anyway; hand back what will be read back
        except (OverflowError, ValueError):  # e.g. datetime.max at UTC-5 is past year 9999 in UTC
            raise ValidationError(
                {name: f"{value.isoformat()} is out of the range of dates."}, code="invalid"
            ) from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise ValidationError({name: f"{shown(value)} is not a Unix time at or after 1970."}, code="invalid")
        try:
            when = dt.datetime.fromtimestamp(value, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise ValidationError({name: f"{shown(value)} is too far in the future."}, code="invalid") from None
    else:
        raise ValidationError(
            {name: f"must be a datetime or Unix seconds, got {type(value).__name__}."}, code="invalid"
        )
    if when < _EPOCH:
        raise ValidationError({name: f"{when.isoformat()} is before 1970."}, code="invalid")
    now = now or timezone.now()
    if when > now + MAX_CLOCK_SKEW:
        raise ValidationError({name: f"{when.isoformat()} is more than a day in the future."}, code="invalid")
    return when


def check_count(value, name: str, *, maximum: int = MAX_TOKEN_COUNT) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise ValidationError(
            {name: f"must be a whole number from 0 to {maximum}, got {shown(value)}."}, code="invalid"
        )
    return value


def check_message(message, *, now: dt.datetime, max_chars: int | None = None) -> dict:
    """Validate one message dict and return the fields for ``Message(**fields)``.

    Runs for every message of every flush, so absent fields and plain ASCII text skip the
    helpers inline; the checks and their order (hence the error reported first) are theirs.
    ``max_chars`` is ``settings.HERMES_MAX_CONTENT_CHARS``, read once per batch by the caller."""
    if max_chars is None:
        max_chars = settings.HERMES_MAX_CONTENT_CHARS
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
    if content is not None and not _plain_text(content, max_chars):
        content = check_text(content, "content")
    reasoning = get("reasoning")
    if reasoning is not None and not _plain_text(reasoning, max_chars):
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
        json_size += _checked_json_size(tool_calls, "tool_calls") - 5
    if extra is not None:
        json_size += _checked_json_size(extra, "extra") - 5
    fields["tool_calls"], fields["extra"] = tool_calls, extra
    timestamp = get("timestamp")
    fields["timestamp"] = now if timestamp is None else check_timestamp(timestamp, now=now)
    token_count = get("token_count")
    fields["token_count"] = None if token_count is None else check_count(token_count, "token_count")
    text_chars = (len(content) if content else 0) + (len(reasoning) if reasoning else 0)
    if 4 * text_chars + json_size > MAX_MESSAGE_BYTES:
        check_sent_size(fields, json_size)
    return fields


def check_sent_size(fields: Mapping, json_size: int) -> None:
    """Refuse a message whose text and JSON take more than ``MAX_MESSAGE_BYTES`` as sent to the
    database (UTF-8 and the worst case of escaping: the same verdict on every backend); keyed by
    the field when one field alone is too big. ``json_size`` is an upper bound of the JSON
    fields' size; exact sizes are computed only when the bounds (4 bytes a character of text) do
    not already show that the message fits."""
    texts = {name: fields[name] for name in ("content", "reasoning") if fields[name]}
    if 4 * sum(map(len, texts.values())) + json_size <= MAX_MESSAGE_BYTES:
        return
    # json.dumps as Django's JSONField serialises (ASCII, escaped): the text the statement carries.
    documents = {name: json.dumps(fields[name]) for name in ("tool_calls", "extra") if fields[name] is not None}
    sizes = {name: sent_size(text) for name, text in (texts | documents).items()}
    for name, size in sizes.items():
        if size > MAX_MESSAGE_BYTES:
            raise _too_big_as_sent(name, size)
    if (size := sum(sizes.values())) > MAX_MESSAGE_BYTES:
        raise ValidationError(
            f"takes {size:,} bytes as sent to the database (content, reasoning, tool_calls and extra together, "
            f"counting UTF-8 and escaping); the limit is {MAX_MESSAGE_BYTES:,}.",
            code="max_length",
        )


def _too_big_as_sent(name: str, size: int) -> ValidationError:
    return ValidationError(
        {name: f"takes {size:,} bytes as sent to the database; the limit is {MAX_MESSAGE_BYTES:,}."},
        code="max_length",
    )


# The importer's name for it, from when the bound counted stored bytes only.
check_stored_size = check_sent_size


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
    max_chars = settings.HERMES_MAX_CONTENT_CHARS
    errors: dict[str, list] = {}
    cleaned = []
    tool_calls = 0
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
        if fields["tool_calls"]:
            tool_calls += tool_call_total(fields["tool_calls"])
        cleaned.append(fields)
    if errors:
        raise ValidationError(errors)
    return Batch(messages=cleaned, tool_calls=tool_calls, usage=check_usage(usage) if usage else {})


def check_usage(usage: Mapping | None) -> dict[str, int]:
    """Counter increments by name, each a whole number in its counter's increment range; zeros left out."""
    if not usage:
        return {}
    if not isinstance(usage, Mapping):
        raise ValidationError({"usage": "must be a dict of counter increments."}, code="invalid")
    unknown = usage.keys() - USAGE_FIELDS
    if unknown:
        names, allowed = ", ".join(sorted(map(shown, unknown))), ", ".join(sorted(USAGE_FIELDS))
        raise ValidationError({"usage": f"unknown counter(s) {names}; allowed: {allowed}."}, code="invalid")
    checked = {
        # api_call_count is a 32-bit column; the token counters are 64-bit.
        name: check_count(
            value, f"usage.{name}", maximum=MAX_TOKEN_COUNT if name == "api_call_count" else MAX_COUNTER_INCREMENT
        )
        for name, value in usage.items()
    }
    return {name: value for name, value in checked.items() if value}


def counter_key(name: str) -> str:
    """The error key of a session counter: ``usage.<name>`` for the caller's usage counters."""
    return f"usage.{name}" if name in USAGE_FIELDS else name


def counter_overflow(stored: Mapping[str, int], increments: Mapping[str, int]) -> ValidationError:
    """The error for increments that would take stored counters past ``COUNTER_LIMITS``."""
    errors = {
        counter_key(name): (
            f"adding {increment} to the stored {stored[name]} would pass the counter's limit {COUNTER_LIMITS[name]}."
        )
        for name, increment in increments.items()
        if increment and stored.get(name, 0) + increment > COUNTER_LIMITS[name]
    }
    return ValidationError(errors or {"usage": "would pass a counter's limit."}, code="overflow")
