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
    """Write ``rows`` to ``archive`` and make them durable before returning.

    The lines go as bytes straight to the file's descriptor (nothing is left in a buffer that a
    later close could try, and fail, to write again); a regular file is then ``fsync``ed, and when
    a write or the sync fails (a full disk: ``ENOSPC``; a file-size limit: ``EFBIG``) it is cut
    back to where it ended before, so it never keeps a torn line. The ``OSError`` goes on, to roll
    the batch's deletion back. An in-memory file is written and flushed."""
    text = "".join(archive_record(row) for row in rows)
    try:
        descriptor = archive.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation: an in-memory file
        archive.write(text)
        archive.flush()
        return
    archive.flush()  # nothing of ours waits there; anything else goes first
    regular = stat.S_ISREG(os.fstat(descriptor).st_mode)  # not a pipe or a terminal (--archive -)
    end = os.lseek(descriptor, 0, os.SEEK_END) if regular else None
    try:
        data = memoryview(text.encode(getattr(archive, "encoding", None) or "utf-8"))
        while data:
            data = data[os.write(descriptor, data) :]
        if regular:
            os.fsync(descriptor)
    except OSError:
        if regular:
            os.ftruncate(descriptor, end)
            os.lseek(descriptor, end, os.SEEK_SET)
        raise


def repair_archive_tail(archive) -> int:
    """Before appending to an archive: cut a torn last line (bytes after the last newline, left by
    a write that a crash or a full disk interrupted; the batch it belonged to was never deleted,
    since a deletion commits only after its lines are synced). Returns the bytes cut. A file whose
    last whole line is not an archived session raises ``ValueError``: it is not an archive."""
    descriptor = archive.fileno()
    size = os.lseek(descriptor, 0, os.SEEK_END)
    if size == 0:
        return 0
    last_newline = _last_newline(descriptor, size)
    if last_newline is not None:
        start = _last_newline(descriptor, last_newline)
        start = -1 if start is None else start
        line = os.pread(descriptor, last_newline - start - 1, start + 1)
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or "id" not in record:
            raise ValueError("its last line is not an archived session (JSON Lines, one session a line)")
    keep = 0 if last_newline is None else last_newline + 1
    if keep < size:
        os.ftruncate(descriptor, keep)
        os.fsync(descriptor)
        os.lseek(descriptor, keep, os.SEEK_SET)
    return size - keep


def _last_newline(descriptor: int, end: int, chunk: int = 65536) -> int | None:
    """The offset of the last newline before ``end``, read backwards a chunk at a time; None if none."""
    while end > 0:
        start = max(0, end - chunk)
        block = os.pread(descriptor, end - start, start)
        if (found := block.rfind(b"\n")) != -1:
            return start + found
        end = start
    return None
