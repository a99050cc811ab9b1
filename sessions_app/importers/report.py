"""What an import run reports: its counts (``ImportResult``) and its progress (``ImportProgress``)."""

from collections import Counter
from dataclasses import asdict, dataclass, field

from sessions_app.counts import NO_MODEL_KEY, RateRow
from sessions_app.models import DEFAULT_PROFILE

MAX_WARNINGS = 100
MAX_NAMED = 20  # rows named per skip reason (the counts stay complete)
NO_MODEL = NO_MODEL_KEY  # sessions without a model, as the analytics name them


@dataclass
class ImportProgress:
    """Passed to the ``progress`` callback after every page."""

    phase: str  # "sessions" or "messages"
    sessions_done: int
    sessions_total: int
    messages_done: int
    messages_total: int
    elapsed: float


@dataclass
class ImportResult:
    """What a run imported (or, in a dry run, would import)."""

    path: str
    dry_run: bool = False
    profile: str = DEFAULT_PROFILE
    schema_version: int | None = None  # what the file's schema_version table declares
    sessions_in_file: int = 0
    sessions_imported: int = 0
    sessions_updated: int = 0
    sessions_unchanged: int = 0
    sessions_skipped: int = 0
    messages_imported: int = 0
    messages_skipped: int = 0
    # Messages imported earlier that hermes changed in place: undone/compacted (or back), or deleted.
    messages_flags_changed: int = 0
    messages_removed: int = 0
    usage_imported: int = 0
    usage_updated: int = 0
    usage_removed: int = 0
    usage_skipped: int = 0
    # Sessions per profile (the row's profile_name, else the run's), and the rows whose profile_name
    # differs from an explicit --profile (the column decides; they are named, up to MAX_NAMED).
    sessions_by_profile: Counter = field(default_factory=Counter)
    profile_disagreements: int = 0
    disagreeing_sessions: list[dict] = field(default_factory=list)
    empty_sessions: int = 0
    parents_linked: int = 0
    parents_missing: int = 0
    parent_cycles_broken: int = 0
    models_created: int = 0
    values_repaired: int = 0
    skip_reasons: Counter = field(default_factory=Counter)
    # The first rows skipped for each reason, by name: "rowid 12" (a message), "'20260101_...'" (a session).
    skipped_rows: dict[str, list[str]] = field(default_factory=dict)
    # Session ids already stored from another profile: {"session", "stored_profile", "profile"}.
    conflicts: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    by_model: dict[str, RateRow] = field(default_factory=dict)  # sessions and empty ones per model
    elapsed: float = 0.0
    stopped: bool = False  # the caller's stop() asked the run to end after a page

    def warn(self, message: str) -> None:
        """Keep ``message``, up to ``MAX_WARNINGS`` of them (the counts stay complete)."""
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)

    def skip(self, reason: str, name: str, count: int = 1) -> None:
        """Count ``count`` rows skipped for ``reason``, naming the first ``MAX_NAMED`` of each reason."""
        self.skip_reasons[reason] += count
        named = self.skipped_rows.setdefault(reason, [])
        if len(named) < MAX_NAMED:
            named.append(name)

    def add(self, other: "ImportResult") -> None:
        """Add the counts, skip reasons, warnings and tallies of ``other`` (a committed page) to these."""
        for name, value in vars(other).items():
            if isinstance(value, int) and not isinstance(value, bool) and name != "schema_version":
                setattr(self, name, getattr(self, name) + value)
        if other.schema_version is not None:
            self.schema_version = max(self.schema_version or 0, other.schema_version)
        self.skip_reasons.update(other.skip_reasons)
        self.sessions_by_profile.update(other.sessions_by_profile)
        self.disagreeing_sessions.extend(other.disagreeing_sessions[: MAX_NAMED - len(self.disagreeing_sessions)])
        for reason, names in other.skipped_rows.items():
            named = self.skipped_rows.setdefault(reason, [])
            named.extend(names[: MAX_NAMED - len(named)])
        self.conflicts.extend(other.conflicts[: MAX_WARNINGS - len(self.conflicts)])
        for message in other.warnings:
            self.warn(message)
        for name, row in other.by_model.items():
            self.by_model[name] = self.by_model.get(name, RateRow(name)) + row

    def as_dict(self) -> dict:
        """Plain data for JSON: the counts, skip reasons, and each model's tally with its empty rate."""
        data = asdict(self)
        data["skip_reasons"] = dict(self.skip_reasons)
        data["sessions_by_profile"] = dict(sorted(self.sessions_by_profile.items()))
        data["by_model"] = {
            name: {"sessions": t.sessions, "empty": t.empty, "rate": t.rate}
            for name, t in sorted(self.by_model.items())
        }
        return data
