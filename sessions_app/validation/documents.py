"""JSON documents the save path may store (``tool_calls``, ``extra``, imported ``model_config``):
the same verdict on every backend, whatever each one's JSON type would accept."""

import math

from django.core.exceptions import ValidationError

from sessions_app.validation.text import shown, text_problem

# Deepest nesting of JSON arrays and objects (``[[1]]`` is 2 deep). MariaDB's json_valid() (the
# CHECK on its JSON columns) refuses 32 levels; a fixed, lower limit is the same everywhere.
MAX_JSON_DEPTH = 20

# JSON integers must fit in 64 bits (signed or unsigned), which the JSON functions of SQLite and
# MariaDB handle exactly; larger ones would be compared as floats there (and past 4300 digits
# Python cannot even serialise them).
MIN_JSON_INT, MAX_JSON_INT = -(2**63), 2**64 - 1


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
    checked_json_size(value, name)
    return value


def checked_json_size(value, name: str) -> int:
    try:
        return _check_json(value, name)
    except ValidationError as exc:
        raise ValidationError({name: exc.messages}, code="invalid") from None
