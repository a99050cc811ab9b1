"""Import a hermes-agent ``state.db``: ``import_hermes_db()`` and what it reports.

One job per module, imports flowing down only: ``run`` (pages, transactions, retries, progress;
the import's decisions are documented there) -> ``links`` (the linking pass) -> ``sessions``,
``messages`` (what one page does) -> ``rows`` (one source row -> our values), ``content``
(multimodal content, strict JSON), ``writer`` (batched writes), ``source`` (the state.db's pages)
-> ``opening`` (file checks, a read-only open), ``report`` (the counts). docs/import.md says what is
skipped and reported.
"""

from sessions_app.importers.report import NO_MODEL, ImportProgress, ImportResult
from sessions_app.importers.run import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, import_hermes_db, profile_from_path
from sessions_app.importers.source import KNOWN_SCHEMA_VERSION, HermesImportError
from sessions_app.importers.writer import DROPPED_PARENT_KEY, LAST_MESSAGE_KEY, MESSAGE_FLAGS_KEY, MISSING_PARENT_KEY

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DROPPED_PARENT_KEY",
    "KNOWN_SCHEMA_VERSION",
    "LAST_MESSAGE_KEY",
    "MAX_BATCH_SIZE",
    "MESSAGE_FLAGS_KEY",
    "MISSING_PARENT_KEY",
    "NO_MODEL",
    "HermesImportError",
    "ImportProgress",
    "ImportResult",
    "import_hermes_db",
    "profile_from_path",
]
