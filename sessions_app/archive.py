"""The prune archive: deleted sessions as JSON Lines, made durable before their deletion commits.

One object per line, one line per deleted session: every column of ``Session`` under its
attribute name (``id``, ``model_id``, ``parent_session_id``, ``started_at``, ..., ``extra``) plus
``model_name`` (the model's name: ids mean nothing in another database). Datetimes are ISO 8601
with offset and microseconds, decimals are strings (no float rounding), JSON columns are JSON,
NULL is ``null``. Keys are sorted. See ``pruning`` for when lines are written.
"""

import datetime as dt
import decimal
import json
import os
import stat

from sessions_app.models import Session

# Every column of a session (by attribute name, e.g. ``model_id``), and the model's name.
ARCHIVE_FIELDS = (*(f.attname for f in Session._meta.concrete_fields), "model__name")


def archive_record(row: dict) -> str:
    """One archived session as a JSON Lines line: every column under its attribute name
    (``model_id``, ``parent_session_id``), plus ``model_name``; datetimes in ISO 8601 (UTC, with
    their offset and microseconds), decimals as strings, JSON columns as JSON."""
    row = dict(row)
    row["model_name"] = row.pop("model__name")

    def default(value):
        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat()
        if isinstance(value, decimal.Decimal):
            return str(value)
        raise TypeError(f"cannot archive a {type(value).__name__}")

    return json.dumps(row, default=default, ensure_ascii=False, sort_keys=True) + "\n"


def write_archive(archive, rows: list[dict]) -> None:
    """Write ``rows`` to ``archive`` and make them durable: flush, then fsync a regular file
    (a pipe or a terminal, e.g. ``--archive -``, has nothing to sync)."""
    archive.write("".join(archive_record(row) for row in rows))
    archive.flush()
    try:
        descriptor = archive.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation: an in-memory file
        return
    if stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.fsync(descriptor)
