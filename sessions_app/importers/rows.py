"""One source row -> the values we store, checked with the save path's own rules, or a ``RowError``.

The checks are ``sessions_app.validation``'s (identifiers, timestamps, counts, JSON, sizes); what
is the importer's own is the repairs (NUL -> U+FFFD, counted) and the per-column limits the
source schema does not enforce. A row that fails raises ``RowError``; the run counts it by its
``reason`` and skips it.
"""

import base64
import datetime as dt
import json
import math
from contextlib import suppress
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError

from sessions_app import validation
from sessions_app.importers.content import (
    CONTENT_PARTS_KEY,
    MULTIMODAL_PREFIX,
    STRICT_JSON,
    decode_multimodal,
    plain_json,
    repair_escaped_nul,
)
from sessions_app.importers.writer import extra_keys

_BIGINT = 2**63 - 1
_MIN_INT, _MAX_INT = validation.MIN_JSON_INT, validation.MAX_JSON_INT
_COST_QUANTUM = Decimal("1e-10")  # Session.*_cost_usd: decimal_places=10, max_digits=20
_SESSION_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
# Bytes a character of JSON text may take once stored, as sent: ``\ud83d\ude00`` for an astral
# character, its backslashes escaped once more by MySQL/MariaDB clients (``validation``'s bound).
_JSON_CHAR_BYTES = 14


class RowError(Exception):
    """A source row we cannot store exactly: ``reason`` is what the run counts, ``detail`` what it names."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def checked(check, *args, column: str, **kwargs):
    """``check(*args, **kwargs)`` from ``validation``, its ``ValidationError`` turned into a ``RowError``."""
    try:
        return check(*args, **kwargs)
    except ValidationError as exc:
        raise RowError(f"invalid {column}", "; ".join(exc.messages)) from None


class RowConverter:
    """Converts the rows of one source, as of ``now``; ``repaired`` counts the values it repaired
    since the caller last reset it.

    ``db_json`` and ``db_time`` are the database adapters of the message's JSON and time columns:
    message values come out ready for the driver, as the writer takes them."""

    def __init__(self, source, *, now: dt.datetime, max_chars: int, db_json, db_time):
        self.decode = source.decode
        self.session_extras, self.message_extras = source.session_extras, source.message_extras
        self._keys = extra_keys((*source.session_extras, *source.message_extras))
        # Keys check_json would accept (no NUL, no lone surrogate, not too long): column names.
        self._plain_keys = all(validation.text_problem(key) is None and len(key) < 256 for key in self._keys.values())
        self.now = now
        self.latest = (now + validation.MAX_CLOCK_SKEW).timestamp()
        self.max_chars = max_chars
        self._db_json, self._db_time = db_json, db_time
        self.repaired = 0

    @staticmethod
    def check_session_id(value) -> str:
        """The session id, or a ``RowError`` when the save path would refuse it."""
        return checked(validation.check_session_id, value, column="id")

    def session_fields(self, v: dict, prompts: dict | None = None) -> tuple[dict, str | None, str | None, dict]:
        """A session row (by column name) as ``(fields, model name, parent id, extra)``: the model and
        parent are resolved by the caller; ``fields`` are Session field values, not yet adapted.

        ``fields["profile"]`` is the row's ``profile_name`` (schema 30), or None when it names none.
        A row without ``system_prompt`` text whose ``system_prompt_hash`` is in ``prompts`` (the
        file's ``system_prompts``, schema 30) gets that prompt."""
        text, count = self.text, self.count
        model = v["model"] or None
        if model is not None:
            model = checked(validation.check_identifier, model, "model", max_length=255, column="model")
        parent = v["parent_session_id"] or None
        if parent is not None:
            parent = checked(validation.check_session_id, parent, column="parent_session_id")
        fields = {
            "source": checked(validation.check_identifier, v["source"], "source", max_length=64, column="source"),
            "user_id": text(v["user_id"], "user_id", 255),
            "model_config": self._json(v["model_config"], "model_config"),
            "system_prompt": text(v["system_prompt"], "system_prompt", self.max_chars),
            "started_at": self.time(v["started_at"], "started_at", required=True),
            "ended_at": self.time(v["ended_at"], "ended_at"),
            "end_reason": text(v["end_reason"], "end_reason", 64),
            "api_call_count": count(v["api_call_count"], "api_call_count"),
            "billing_provider": text(v["billing_provider"], "billing_provider", 100),
            "billing_base_url": text(v["billing_base_url"], "billing_base_url", 500),
            "billing_mode": text(v["billing_mode"], "billing_mode", 64),
            "estimated_cost_usd": self.cost(v["estimated_cost_usd"], "estimated_cost_usd"),
            "actual_cost_usd": self.cost(v["actual_cost_usd"], "actual_cost_usd"),
            "title": text(v["title"], "title", 500),
            "cwd": text(v["cwd"], "cwd", self.max_chars),
            "profile": self._profile(v["profile_name"]),
        }
        if not fields["system_prompt"] and prompts and isinstance(v.get("system_prompt_hash"), str):
            prompt = prompts.get(v["system_prompt_hash"])
            if prompt is not None:
                fields["system_prompt"] = text(prompt, "system_prompt", self.max_chars)
        for name in _SESSION_TOKENS:
            fields[name] = self.token_total(v[name], name)
        extra = self._extra({name: v[name] for name in self.session_extras})
        self._check_session_size(v, fields, extra)
        return fields, model, parent, extra

    def _check_session_size(self, v: dict, fields: dict, extra: dict) -> None:
        """Skip a session row too big to send (``validation.MAX_MESSAGE_BYTES``, as for messages);
        exact sizes only past a cheap bound over the source values (64 bytes a non-text value)."""
        texts = [fields[name] for name in ("system_prompt", "cwd", "title") if fields[name]]
        documents = sum(len(v[n]) for n in ("model_config", *self.session_extras) if isinstance(v[n], str | bytes))
        if 4 * sum(map(len, texts)) + _JSON_CHAR_BYTES * (documents + 64 * len(v)) > validation.MAX_MESSAGE_BYTES:
            size = sum(map(validation.sent_size, texts))
            size += sum(validation.sent_size(json.dumps(d)) for d in (fields["model_config"], extra) if d)
            if size > validation.MAX_MESSAGE_BYTES:
                limit = validation.MAX_MESSAGE_BYTES
                raise RowError("session too large", f"{size:,} bytes as sent to the database; the limit is {limit:,}")

    def message_values(self, row) -> tuple[tuple, int, bool]:
        """The row's values for ``writer.MESSAGE_FIELDS``, adapted for the database, its tool-call
        count, and whether it is active (what the session's counters count).

        The hot loop of the import. Most columns of most rows are NULL, so a NULL skips its
        helper (each would return None at once); a float timestamp in range takes ``_time``'s
        fast path inline. The helpers still run in column order, so the first problem found
        (the skip reason reported) and the repairs counted are what they always were: keep
        that order when changing this."""
        mid, sid, role, content, tool_call_id, tool_calls, tool_name, timestamp, tokens, finish, reasoning, *rest = row
        if role not in validation.ROLES:
            raise RowError("unknown role", repr(role))
        active, compacted, *rest = rest
        active = True if active is None else self._flag(active, "active")
        compacted = False if compacted is None else self._flag(compacted, "compacted")
        calls = 0
        if tool_calls is not None:
            tool_calls = self._json(tool_calls, "tool_calls")
            if tool_calls is not None:
                if not isinstance(tool_calls, (list, dict)):
                    raise RowError("tool_calls is not a list", type(tool_calls).__name__)
                calls = validation.tool_call_total(tool_calls)
        extra = None
        if rest and rest.count(None) != len(rest):
            extra = self._extra(dict(zip(self.message_extras, rest, strict=True))) or None
        parts_chars = 0
        if content.__class__ is str and content[:1] == "\x00" and content.startswith(MULTIMODAL_PREFIX):
            decoded = decode_multimodal(content)
            if decoded is not None:
                parts_chars = len(content)
                content, parts = decoded
                parts = checked(validation.check_json, parts, "content", column="content")
                extra = {**(extra or {}), CONTENT_PARTS_KEY: parts}
        text, limit, db_json = self.text, self.max_chars, self._db_json
        values = (
            mid,
            sid,
            role,
            None if content is None else text(content, "content", limit),
            None if tool_call_id is None else text(tool_call_id, "tool_call_id", 255),
            None if tool_calls is None else db_json(tool_calls),
            None if tool_name is None else text(tool_name, "tool_name", 255),
            self._db_time(
                dt.datetime.fromtimestamp(timestamp, dt.UTC)
                if timestamp.__class__ is float and 0.0 <= timestamp <= self.latest
                else self.time(timestamp, "timestamp", required=True)
            ),
            tokens
            if tokens is None or (tokens.__class__ is int and 0 <= tokens <= validation.MAX_TOKEN_COUNT)
            else self.count(tokens, "token_count"),
            None if finish is None else text(finish, "finish_reason", 64),
            None if reasoning is None else text(reasoning, "reasoning", limit),
            None if extra is None else db_json(extra),
            active,
            compacted,
        )
        content, reasoning, calls_text = values[3], values[10], row[5]
        chars = (len(content) if content else 0) + (len(reasoning) if reasoning else 0)
        if (
            extra is not None
            or 4 * chars + (_JSON_CHAR_BYTES * len(calls_text) if calls_text else 0) > validation.MAX_MESSAGE_BYTES
        ):
            self._check_message_size(row, content, reasoning, tool_calls, extra, parts_chars)
        return values, calls, active

    def _check_message_size(self, row, content, reasoning, tool_calls, extra, parts_chars: int) -> None:
        """Skip a message the save path would refuse for its size (``validation.MAX_MESSAGE_BYTES``
        once encoded): MariaDB/MySQL drop the connection on a row over ``max_allowed_packet``,
        which would fail the whole page. The bound below is cheap and exact sizes are computed
        only past it: a character takes at most 4 bytes as UTF-8 text, and at most 14 as JSON
        (``_JSON_CHAR_BYTES``), against the length of the source text it was decoded from; in
        ``extra``, each other value takes at most 32 bytes and each key its name, quoted, 12 more;
        multimodal parts at most their source text (``parts_chars``)."""
        texts = sum(len(value) for value in (content, reasoning) if value)
        documents = (len(row[5]) if isinstance(row[5], str) else 0) + parts_chars + 16
        for name, value in zip(self.message_extras, row[13:], strict=True):
            if value is not None:
                documents += len(value) if isinstance(value, str | bytes) else 3
                documents += len(name) + 1
        bound = 4 * texts + _JSON_CHAR_BYTES * documents + 2
        if bound <= validation.MAX_MESSAGE_BYTES:
            return
        fields = {"content": content, "reasoning": reasoning, "tool_calls": tool_calls, "extra": extra}
        try:
            validation.check_sent_size(fields, bound)
        except ValidationError as exc:
            raise RowError("message too large", "; ".join(exc.messages)) from None

    # -- values (also for the usage rows: ``usage.usage_fields``) ---------------------------------

    def _profile(self, value) -> str | None:
        """A row's ``profile_name``: None when it names none, else a profile the save path accepts."""
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise RowError("invalid profile_name", repr(value))
        return checked(validation.check_identifier, value, "profile_name", max_length=64, column="profile_name")

    @staticmethod
    def _flag(value, column: str) -> bool:
        """A 0/1 flag of hermes' (``active``, ``compacted``); anything else is not one."""
        if value.__class__ is int and value in (0, 1):
            return bool(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value != 0
        raise RowError(f"invalid {column}", repr(value))

    def text(self, value, column: str, limit: int) -> str | None:
        if value is None:
            return None
        if value.__class__ is not str:
            if isinstance(value, bytes):
                value = self.decode(value)
            elif isinstance(value, (int, float)):
                value = str(value)  # e.g. numeric chat user ids
            else:
                raise RowError(f"invalid {column}", type(value).__name__)
        # A repair, not validation's refusal: history that is already written is kept, marked.
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
            self.repaired += 1
        if len(value) > limit:
            raise RowError(f"{column} too long", f"{len(value):,} characters; the limit is {limit:,}")
        return value

    def _json(self, value, column: str):
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise RowError(f"invalid JSON in {column}", f"a {type(value).__name__}, not JSON text")
        value = self._repair_escaped_nul(self.text(value, column, self.max_chars))
        try:
            parsed = STRICT_JSON.decode(value)
        except (ValueError, RecursionError) as exc:
            raise RowError(f"invalid JSON in {column}", str(exc) or type(exc).__name__) from None
        # Depth, keys, 64-bit integers, lone surrogates: validation decides, on every backend alike;
        # it cannot refuse text with few brackets, no long number and no escape (``content.plain_json``).
        return parsed if plain_json(value) else checked(validation.check_json, parsed, column, column=column)

    def _repair_escaped_nul(self, text: str) -> str:
        repaired = repair_escaped_nul(text)  # counted as a repair, as raw NULs in text are
        self.repaired += repaired is not text
        return repaired

    def _extra(self, values: dict) -> dict:
        """Unknown columns, kept as given: JSON text decoded, BLOBs base64-encoded, NULLs left out.

        ``validation.check_json`` decides what a decoded document may hold; a dict of plain values
        (text the converter already checked, base64, 64-bit integers: schema 30's many 0/1 columns)
        holds nothing it could refuse, so it is not walked again."""
        extra, plain = {}, self._plain_keys
        for name, value in values.items():
            if value is None:
                continue
            if isinstance(value, bytes):
                value = base64.b64encode(value).decode()
            elif isinstance(value, str):
                value = self.text(value, name, self.max_chars)
                if value[:1] in ("{", "["):
                    with suppress(ValueError, RecursionError):  # not JSON after all: keep the text
                        value = STRICT_JSON.decode(self._repair_escaped_nul(value))
                        plain = False
                if plain and not value.isascii() and validation.text_problem(value):
                    plain = False  # a lone surrogate: check_json names it
            elif value.__class__ is float:
                plain = plain and math.isfinite(value)
            elif value.__class__ is not int or not _MIN_INT <= value <= _MAX_INT:
                plain = False
            extra[self._keys.get(name, name)] = value
        if not extra or plain:
            return extra
        return checked(validation.check_json, extra, "extra", column="extra")

    def time(self, value, column: str, *, required: bool = False):
        if value is None:
            if required:
                raise RowError(f"missing {column}", "NULL")
            return None
        if value.__class__ is float and 0.0 <= value <= self.latest:
            return dt.datetime.fromtimestamp(value, dt.UTC)  # check_timestamp's rules, fast path (message_values too)
        return checked(validation.check_timestamp, value, column, now=self.now, column=column)

    @staticmethod
    def count(value, column: str) -> int:
        """A 32-bit counter by ``validation.check_count``; NULL is 0, a whole REAL an integer."""
        if value is None:
            return 0
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        try:
            return validation.check_count(value, column)
        except ValidationError:
            raise RowError(f"invalid {column}", repr(value)) from None

    @staticmethod
    def token_total(value, column: str) -> int:
        """A session's 64-bit token total, kept as hermes recorded it (a signed BIGINT, unlike
        validation's increments, which cannot be negative); NULL is 0, a whole REAL an integer."""
        if value is None:
            return 0
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or not -_BIGINT <= value <= _BIGINT:
            raise RowError(f"invalid {column}", repr(value))
        return value

    @staticmethod
    def cost(value, column: str) -> Decimal | None:
        if value is None:
            return None
        try:
            cost = Decimal(repr(value) if isinstance(value, float) else value).quantize(_COST_QUANTUM)
        except (InvalidOperation, TypeError, ValueError):
            raise RowError(f"invalid {column}", repr(value)) from None
        if not cost.is_finite() or abs(cost) >= 10**10:
            raise RowError(f"invalid {column}", repr(value))
        return cost
