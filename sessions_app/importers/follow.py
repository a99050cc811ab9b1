"""Keeping a fleet in sync: import each ``state.db`` again whenever it changed, every few seconds.

A cycle looks at each file's signature first (size, modification time and inode of the database,
its ``-wal`` and its ``-journal``): a file whose signature is what it was after its last import is
not opened at all, so an idle fleet costs a few ``stat`` calls a cycle. A changed file is imported
incrementally (``import_hermes_db``); a file that is missing or unreadable is reported, kept on the
list and tried again next cycle, and never stops the others. ``stop`` (a ``threading.Event``, set by
the command's SIGTERM/SIGINT handler) ends the current import after its page and the loop with it.
"""

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sessions_app.importers.report import ImportResult
from sessions_app.importers.run import import_hermes_db
from sessions_app.importers.source import HermesImportError

_SUFFIXES = ("", "-wal", "-journal")


def file_signature(path: Path) -> tuple:
    """What changes whenever hermes commits to ``path``: (size, mtime, inode) of the file and its
    ``-wal``/``-journal`` (None for one that does not exist)."""
    signature = []
    for suffix in _SUFFIXES:
        try:
            stat = os.stat(f"{path}{suffix}")
        except OSError:
            signature.append(None)
        else:
            signature.append((stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return tuple(signature)


def changed(result: ImportResult) -> bool:
    """Whether an import wrote anything (or, in a dry run, would have)."""
    return any(
        getattr(result, name)
        for name in (
            "sessions_imported", "sessions_updated", "messages_imported", "messages_flags_changed",
            "messages_removed", "usage_imported", "usage_updated", "usage_removed", "parents_linked",
        )
    )  # fmt: skip


@dataclass
class Followed:
    """One file of the fleet: its path, its profile (None: from the path), and what the loop knows."""

    path: Path
    profile: str | None = None
    signature: tuple | None = None  # as of its last successful import
    error: str | None = None  # the last error reported, until the file reads again
    warned: set = field(default_factory=set)  # warnings already shown (a newer schema: once)


@dataclass
class Cycle:
    """What one cycle did: the imports that changed something, and the files that failed."""

    results: list[tuple[Followed, ImportResult]] = field(default_factory=list)
    failures: list[tuple[Followed, str]] = field(default_factory=list)
    recovered: list[Followed] = field(default_factory=list)


def follow_files(
    files: list[Followed],
    *,
    interval: float,
    stop: threading.Event,
    on_cycle: Callable[[Cycle], None],
    import_options: dict,
) -> None:
    """Import ``files`` every ``interval`` seconds until ``stop`` is set; ``on_cycle`` hears of every
    cycle (the caller prints what changed and what failed, and nothing when nothing did)."""
    while not stop.is_set():
        cycle = Cycle()
        for followed in files:
            if stop.is_set():
                break
            _visit(followed, cycle, stop, import_options)
        on_cycle(cycle)
        stop.wait(interval)


def _visit(followed: Followed, cycle: Cycle, stop: threading.Event, import_options: dict) -> None:
    signature = file_signature(followed.path)
    if signature == followed.signature and followed.error is None:
        return  # nothing committed since the last import: not even opened
    try:
        result = import_hermes_db(followed.path, profile=followed.profile, stop=stop.is_set, **import_options)
    except HermesImportError as exc:
        message = str(exc)
        if message != followed.error:  # reported once, and again only when it changes
            cycle.failures.append((followed, message))
        followed.error, followed.signature = message, None
        return
    if followed.error is not None:
        cycle.recovered.append(followed)
    followed.error = None
    # Taken before the import opened the file: a commit during the import is seen next cycle.
    followed.signature = None if result.stopped else signature
    result.warnings = [w for w in result.warnings if w not in followed.warned]
    followed.warned.update(w for w in result.warnings if "schema version" in w)
    if changed(result) or result.warnings:
        cycle.results.append((followed, result))
