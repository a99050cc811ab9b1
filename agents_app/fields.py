"""Model fields shared by both apps."""

from django.db import models

from agents_app.db import binary_collation


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
