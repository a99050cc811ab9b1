"""Shared set-up for the benchmarks: a throwaway database, Django configured for it, timing helpers.

Benchmarks print medians and ratios against the raw database driver measured in the same run;
they exit non-zero only on a crash, never because of a timing.
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_django(default_sqlite_name: str) -> None:
    """Configure Django for a benchmark database: DATABASE_URL if given, else a fresh SQLite file."""
    sys.path.insert(0, str(ROOT))
    if not os.environ.get("DATABASE_URL"):
        path = Path(tempfile.gettempdir()) / default_sqlite_name
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + "x" * 40)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hermes_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    create_database_if_missing(connection)
    call_command("migrate", verbosity=0)


def create_database_if_missing(connection) -> None:
    """Create the PostgreSQL or MariaDB/MySQL database DATABASE_URL names, when it does not exist."""
    from django.db import OperationalError

    try:
        connection.ensure_connection()
    except OperationalError as exc:
        missing = "does not exist" in str(exc) or (exc.args and exc.args[0] == 1049)  # MySQL: unknown database
        if connection.vendor == "sqlite" or not missing:
            raise
        name = connection.settings_dict["NAME"]
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(name)}")
        print(f"created {connection.vendor} database {name}")


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def median(values) -> float:
    return statistics.median(values)
