"""Model fields shared by both apps."""

from django.db import models
from django.db.models import F
from django.db.models.functions import Collate


def binary_collation(connection) -> str:
    """The byte-for-byte, no-pad collation of MySQL/MariaDB (``"abc"``, ``"ABC"``, ``"abc "`` differ)."""
    return "utf8mb4_nopad_bin" if connection.mysql_is_mariadb else "utf8mb4_0900_bin"


def exact_text(field_name: str, connection):
    """An expression comparing or grouping ``field_name`` exactly on every backend: the column as
    it is on SQLite and PostgreSQL, under the binary collation on MySQL/MariaDB, whose default
    collations are case- and trailing-space-insensitive."""
    if connection.vendor == "mysql":
        return Collate(F(field_name), binary_collation(connection))
    return F(field_name)


def filter_exact(queryset, field_name: str, value: str, connection):
    """``queryset`` filtered on ``field_name == value``, exactly. The plain comparison stays, so an
    index on the column is still used; MySQL/MariaDB then keep only the exact matches."""
    queryset = queryset.filter(**{field_name: value})
    if connection.vendor == "mysql":
        queryset = queryset.alias(_exact=exact_text(field_name, connection)).filter(_exact=value)
    return queryset


class KeyField(models.CharField):
    """A CharField used as an identifier: compared byte for byte on every backend.

    MariaDB's default collations compare ``"abc"``, ``"ABC"`` and ``"abc "`` as equal, which
    would make ``get_or_create`` merge two distinct session ids. On MySQL/MariaDB the column
    gets a binary, no-pad collation; SQLite and PostgreSQL already compare exactly.
    """

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "mysql":
            params["collation"] = binary_collation(connection)
        return params
