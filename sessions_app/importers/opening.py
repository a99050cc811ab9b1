"""Opening a hermes-agent ``state.db`` without ever writing to it or beside it.

hermes keeps its file in WAL mode. An ordinary read-only open of a WAL database still needs the
``-shm`` index (it creates one if it can, and fails in a read-only directory if it cannot), and a
closing connection may leave ``-wal``/``-shm`` behind. So the file is opened one of two ways:

- A file in WAL mode (its header says so) with no ``-wal`` beside it (no connection is open, none
  crashed half-way): SQLite's ``immutable=1`` URI parameter. SQLite then takes no lock and creates
  no file; it reads the database file as it is, which is all of it, since without a ``-wal`` every
  commit is in the file. A writer may start meanwhile (hermes launched during an import) and, at
  a checkpoint, change the file under the reader: the reader checks ``changed()`` around every
  read and, when the file moved, opens it again (then from a snapshot, if a ``-wal`` is there).
- A file in rollback-journal mode (hermes uses it where SQLite is too old for WAL) with no journal:
  an ordinary read-only connection, which takes SQLite's shared lock for each read (a writer's
  commit waits for the read, a read for the commit) and creates no file in this mode.
- A ``-wal`` beside it (hermes is running, or crashed with commits not yet checkpointed): a
  private snapshot in a temporary directory, taken with SQLite's backup API through a read-only
  connection (one read transaction: the committed state, never a writer's uncommitted pages, and
  the writer is not held up). Where that connection cannot open (no ``-shm``, a read-only
  directory), the ``-wal`` was left by a process that is gone: the database and ``-wal`` files are
  copied and SQLite recovers the copy. The snapshot is deleted when the import closes it.
- A ``-journal`` beside it (a file in rollback-journal mode whose writer is mid-transaction, or was
  killed in one, leaving a "hot" journal): read as SQLite would read it. A read-only connection
  waits for a live writer and takes the same kind of snapshot; a hot journal, which a read-only
  connection may not roll back, is copied with the database into the private directory, where
  SQLite rolls the copy back to the last committed state. The user's files are never written.
"""

import os
import shutil
import sqlite3
import stat
import tempfile
import urllib.parse
from pathlib import Path

_SQLITE_MAGIC = b"SQLite format 3\x00"


class HermesImportError(ValueError):
    """The source cannot be imported: missing, not SQLite, corrupt, truncated, or not a hermes state.db."""


def check_file(path: Path) -> None:
    """Cheap checks before SQLite sees the file, for clear messages (and truncation, which SQLite
    would only notice when it reaches a missing page). Anything but a regular file is refused
    before it is opened: a FIFO would block the open forever."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise HermesImportError(f"{path} does not exist.") from None
    except OSError as exc:
        raise HermesImportError(f"{path} cannot be read: {exc.strerror}.") from exc
    if stat.S_ISDIR(mode):
        raise HermesImportError(f"{path} is a directory; give the state.db file (e.g. ~/.hermes/state.db).")
    if not stat.S_ISREG(mode):
        raise HermesImportError(f"{path} is not a regular file (a FIFO, socket or device); give the state.db file.")
    try:
        with path.open("rb") as file:
            header = file.read(100)
            size = os.fstat(file.fileno()).st_size
    except OSError as exc:
        raise HermesImportError(f"{path} cannot be read: {exc.strerror}.") from exc
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise HermesImportError(f"{path} is not a SQLite database (no SQLite header).")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    header_size_valid = header[24:28] == header[92:96]  # SQLite's own validity rule for the page count
    if header_size_valid and pages and size < pages * page_size:
        raise HermesImportError(
            f"{path} is truncated: its header says {pages * page_size:,} bytes, the file has {size:,}."
        )


def _wal_mode(path: Path) -> bool:
    """Whether the database file is in WAL mode (header bytes 18-19 are 2; 1 is a rollback journal)."""
    with path.open("rb") as file:
        header = file.read(20)
    return len(header) == 20 and header[18] == 2


def needs_rollback(exc: sqlite3.OperationalError) -> bool:
    """Whether a read-only connection was refused because a hot journal needs rolling back."""
    name = getattr(exc, "sqlite_errorname", "")
    return name == "SQLITE_READONLY_ROLLBACK" or "readonly" in str(exc).lower() or "read-only" in str(exc).lower()


def _uri(path: Path, **params) -> str:
    return "file:" + urllib.parse.quote(str(path)) + "?" + urllib.parse.urlencode(params)


class Opened:
    """A connection to the source (or to a private snapshot of it); ``close()`` removes the snapshot."""

    def __init__(self, path: Path):
        self.path = path.resolve()
        self.snapshot_dir: str | None = None
        self.watched: tuple | None = None  # the file's (size, mtime, inode) read immutably, else None
        for attempt in range(5):
            try:
                self.conn = self._open()
                return
            except FileNotFoundError as exc:
                # A -wal or -journal the writer removed between our look and our copy (its last
                # connection closed): look again; only the database file itself missing is final.
                self.close()
                if attempt == 4 or not self.path.exists():
                    raise HermesImportError(f"{path} cannot be opened read-only: {exc}.") from exc
            except (sqlite3.Error, OSError) as exc:
                self.close()
                raise HermesImportError(f"{path} cannot be opened read-only: {exc}.") from exc

    def _open(self) -> sqlite3.Connection:
        """The connection for the file as it is now (see the module's docstring)."""
        wal, journal = Path(f"{self.path}-wal"), Path(f"{self.path}-journal")
        self.watched = None
        if wal.exists():
            return self._snapshot(wal)
        if journal.exists() and journal.stat().st_size > 0:
            return self._journal_snapshot(journal)
        if not _wal_mode(self.path):
            return sqlite3.connect(_uri(self.path, mode="ro"), uri=True, isolation_level=None, timeout=30)
        self.watched = self._stat()
        return sqlite3.connect(_uri(self.path, mode="ro", immutable=1), uri=True, isolation_level=None)

    def _stat(self) -> tuple:
        stat = os.stat(self.path)
        return (stat.st_size, stat.st_mtime_ns, stat.st_ino, os.path.exists(f"{self.path}-wal"))

    def changed(self) -> bool:
        """Whether the file read immutably changed (or got a ``-wal``) since it was opened: what was
        read since may mix two states, and the caller opens it again. Always False for a snapshot."""
        if self.watched is None:
            return False
        try:
            return self._stat() != self.watched
        except OSError:
            return True

    def _snapshot(self, wal: Path) -> sqlite3.Connection:
        self.snapshot_dir = tempfile.mkdtemp(prefix="hermes_import_")
        copy = Path(self.snapshot_dir) / "state.db"
        if Path(f"{self.path}-shm").exists():
            try:
                live = sqlite3.connect(_uri(self.path, mode="ro"), uri=True, isolation_level=None, timeout=10)
                try:
                    target = sqlite3.connect(copy)
                    try:
                        live.backup(target)  # one step: one read transaction, a consistent snapshot
                        target.isolation_level = None
                        return target
                    except BaseException:
                        target.close()
                        raise
                finally:
                    live.close()
            except sqlite3.OperationalError:
                copy.unlink(missing_ok=True)  # cannot share the writer's index: nobody is writing
        shutil.copyfile(self.path, copy)
        shutil.copyfile(wal, f"{copy}-wal")
        return sqlite3.connect(copy, isolation_level=None)  # recovers the copied -wal, in our directory

    def _journal_snapshot(self, journal: Path) -> sqlite3.Connection:
        """A private, rolled-back copy of a rollback-journal database with a ``-journal`` beside it."""
        self.snapshot_dir = tempfile.mkdtemp(prefix="hermes_import_")
        copy = Path(self.snapshot_dir) / "state.db"
        live = sqlite3.connect(_uri(self.path, mode="ro"), uri=True, isolation_level=None, timeout=10)
        try:
            target = sqlite3.connect(copy)
            try:
                live.backup(target)  # waits for a live writer; refused for a hot journal
                target.isolation_level = None
                return target
            except sqlite3.OperationalError as exc:
                target.close()
                copy.unlink(missing_ok=True)
                if not needs_rollback(exc):
                    raise
        finally:
            live.close()
        # A hot journal: its writer is gone. The journal first, so that a rollback another process
        # makes meanwhile only rolls back pages the copied journal restores anyway.
        shutil.copyfile(journal, f"{copy}-journal")
        shutil.copyfile(self.path, copy)
        recovered = sqlite3.connect(copy, isolation_level=None)
        try:
            recovered.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # rolls the copy back
        except BaseException:
            recovered.close()
            raise
        return recovered

    def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.conn.close()
        if self.snapshot_dir:
            shutil.rmtree(self.snapshot_dir, ignore_errors=True)
            self.snapshot_dir = None
