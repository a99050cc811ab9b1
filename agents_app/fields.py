"""Model fields shared by both apps, and the rule every identifier column follows."""

import re

from django.core.exceptions import ValidationError
from django.db import models

from agents_app.db import binary_collation

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text on every backend, or None: NUL characters (PostgreSQL
    cannot store them, so they are refused everywhere) and lone UTF-16 surrogates (not UTF-8)."""
    if "\x00" in value:
        return "contains a NUL character (\\x00), which PostgreSQL cannot store; remove or escape it"
    if not value.isascii() and _SURROGATE.search(value):
        return "contains a lone UTF-16 surrogate, which is not valid UTF-8"
    return None


def identifier_problem(value: str) -> str | None:
    """Why ``value`` cannot be an identifier (a model name, a source, a session id), or None: no
    control character (C0, DEL, C1: a newline in a name splits every log line and report row it
    reaches), and text every backend stores."""
    if _CONTROL.search(value):
        return "must not contain control characters"
    return text_problem(value)


def validate_identifier(value) -> None:
    """Django validator of an identifier column: the rule of ``identifier_problem``, the same one
    the save path applies (``sessions_app.validation.check_identifier``), so what the admin
    accepts the save path accepts too."""
    if isinstance(value, str) and (problem := identifier_problem(value)):
        raise ValidationError(f"The name {problem}.", code="invalid")


class KeyField(models.CharField):
    """A CharField used as an identifier: compared byte for byte on every backend, and taken from
    a form exactly as typed (not stripped).

    MariaDB's default collations compare ``"abc"``, ``"ABC"`` and ``"abc "`` as equal, which
    would make ``get_or_create`` merge two distinct session ids. On MySQL/MariaDB the column
    gets a binary, no-pad collation; SQLite and PostgreSQL already compare exactly.
    """

    def formfield(self, **kwargs):
        # Exact in forms too: "gpt-5 " is another identifier, and "gpt-5\n" one the save path
        # refuses; a form that stripped them would store what the agent never reported.
        return super().formfield(**{"strip": False, **kwargs})

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "mysql":
            params["collation"] = binary_collation(connection)
        return params
