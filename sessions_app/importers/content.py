"""What hermes stores inside its text columns: strict JSON, and multimodal content.

hermes-agent stores a multimodal message's content as ``"\\x00json:" + JSON``, a list of parts in
the chat-completions shape (``{"type": "text", "text": ...}``, ``{"type": "image_url",
"image_url": {"url": "data:image/png;base64,..."}}``, ...). The import keeps:

- as ``content``, the text parts joined by a blank line (None when there is none), so search, the
  admin and the size checks see the words;
- as ``extra["content_parts"]``, every part in order with its metadata, each text part reduced
  to ``{"type": "text", "chars": N}`` (its text is the content already) and every string longer
  than ``KEPT_CHARS`` replaced by a note of its length: a ``data:`` URL keeps its media type
  (``"data:image/png;base64,…[1,234,567 characters omitted]"``). The images themselves are not
  stored: a conversation database is no blob store, and a base64 image would pass the size limits.
"""

import json
import math
import re

from sessions_app import validation

MULTIMODAL_PREFIX = "\x00json:"
CONTENT_PARTS_KEY = "content_parts"
KEPT_CHARS = 1024
TEXT_SEPARATOR = "\n\n"
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# Strict JSON: no NaN/Infinity (no backend stores them in a JSON column).
STRICT_JSON = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)


def _shortened(value):
    """``value`` with every long string replaced by a note of its length (iterative: any depth)."""
    if isinstance(value, str):
        if len(value) <= KEPT_CHARS:
            return value
        head = value[: value.index(",") + 1] if value.startswith("data:") and "," in value[:200] else ""
        return f"{head}…[{len(value) - len(head):,} characters omitted]"
    if not isinstance(value, (dict, list)):
        return value
    root = type(value)()
    stack = [(value, root)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, child in items:
            if isinstance(child, (dict, list)):
                copy = type(child)()
                stack.append((child, copy))
            else:
                copy = _shortened(child)
            if isinstance(target, dict):
                target[key] = copy
            else:
                target.append(copy)
    return root


def decode_multimodal(text: str):
    """``(content, parts)`` of a ``MULTIMODAL_PREFIX`` value, or None when what follows the prefix
    is not a JSON list (the value is then kept as text, its NUL repaired like any other)."""
    try:
        parts = STRICT_JSON.decode(text[len(MULTIMODAL_PREFIX) :])
    except (ValueError, RecursionError):
        return None
    if not isinstance(parts, list):
        return None
    texts, kept = [], []
    for part in parts:
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
            kept.append({"type": "text", "chars": len(part["text"])})
        else:
            kept.append(_shortened(part))
    return (TEXT_SEPARATOR.join(texts) if texts else None), kept


def repair_escaped_nul(text: str) -> str:
    """JSON text with its ``\\u0000`` escapes (a NUL once decoded, which PostgreSQL cannot store)
    turned into ``\\ufffd``; ``text`` itself when it has none."""
    if "\\u0000" not in text:
        return text
    repaired = _ESCAPED_NUL.sub(r"\1\\ufffd", text)
    return text if repaired == text else repaired


_LONG_NUMBER = re.compile(r"\d{19}")


def plain_json(text: str) -> bool:
    """Whether JSON ``text`` decodes to what ``validation.check_json`` accepts, decided on the text:
    no deeper than its brackets, no integer past 64 bits without 19 digits in a row, no lone
    surrogate or NUL without an escape (raw NULs were repaired already)."""
    return (
        "\\u" not in text
        and text.count("[") + text.count("{") <= validation.MAX_JSON_DEPTH
        and not _LONG_NUMBER.search(text)
    )
