"""Text the save path may store: identifiers, free text, and the size a value takes as sent.

Refused on every backend alike: NUL characters (PostgreSQL cannot store them in text or jsonb, so
we refuse them everywhere rather than store different data per backend) and lone UTF-16
surrogates (not valid UTF-8). Nothing is stripped or truncated silently.
"""

import json
from collections.abc import Mapping

from django.core.exceptions import ValidationError

from agents_app.conf import hermes_settings
from agents_app.fields import identifier_problem, text_problem
from sessions_app.models import SESSION_ID_MAX_LENGTH

# Largest message as the database receives it: its text and serialised JSON, counted in UTF-8
# bytes plus one byte for every character a MySQL/MariaDB client escapes with a backslash when it
# interpolates the value into the statement (' " \ CR LF Ctrl-Z; NUL is refused anyway). MariaDB
# refuses any statement over max_allowed_packet (16 MiB by default) with an OperationalError that a
# retry cannot cure, while PostgreSQL and SQLite would store it; so a message that could be that
# big on MariaDB is refused on every backend alike. 12 MiB leaves 4 MiB for the rest of the row.
MAX_MESSAGE_BYTES = 12 * 1024 * 1024

_ESCAPED_WHEN_SENT = ("'", '"', "\\", "\n", "\r", "\x1a")


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
    if problem := identifier_problem(value):  # the rule LanguageModel.name's validator applies too
        raise ValidationError({name: f"{problem}."}, code="invalid")
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
    limit = hermes_settings.HERMES_MAX_CONTENT_CHARS
    if len(value) > limit:
        raise ValidationError(
            {name: f"is {len(value):,} characters long; the limit is {limit:,} (setting HERMES_MAX_CONTENT_CHARS)."},
            code="max_length",
        )
    if problem := text_problem(value):
        raise ValidationError({name: problem}, code="invalid")
    # A character takes at most 4 bytes as sent, so only long text needs counting.
    if 4 * len(value) > MAX_MESSAGE_BYTES and (size := sent_size(value)) > MAX_MESSAGE_BYTES:
        raise too_big_as_sent(name, size)
    return value


def plain_text(value, max_chars: int) -> bool:
    """Whether ``value`` is text that ``check_text`` accepts unchanged, decided without its checks:
    an ASCII ``str`` (no surrogates) within the limit and without NUL."""
    return type(value) is str and len(value) <= max_chars and value.isascii() and "\x00" not in value


def too_big_as_sent(name: str, size: int) -> ValidationError:
    return ValidationError(
        {name: f"takes {size:,} bytes as sent to the database; the limit is {MAX_MESSAGE_BYTES:,}."},
        code="max_length",
    )


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
    sizes = {name: sent_size(value) for name, value in (texts | documents).items()}
    for name, size in sizes.items():
        if size > MAX_MESSAGE_BYTES:
            raise too_big_as_sent(name, size)
    if (size := sum(sizes.values())) > MAX_MESSAGE_BYTES:
        raise ValidationError(
            f"takes {size:,} bytes as sent to the database (content, reasoning, tool_calls and extra together, "
            f"counting UTF-8 and escaping); the limit is {MAX_MESSAGE_BYTES:,}.",
            code="max_length",
        )
