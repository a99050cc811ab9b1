from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from agents_app.fields import KeyField
from agents_app.models import LanguageModel
from sessions_app.querysets import EARLIEST_MOMENT, SessionQuerySet, TrendMarkerQuerySet

SESSION_ID_MAX_LENGTH = 128
DEFAULT_PROFILE = "default"
PROFILE_MAX_LENGTH = 64


class Role(models.TextChoices):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class Session(models.Model):
    """One agent conversation, mirroring a row of hermes-agent's ``sessions`` table.

    ``model`` is the model of the first message (hermes-agent's rule); each message also records
    its own model, so a switch mid-session stays visible. The counters are kept exact by the
    save path in the same transaction as the messages; the truth is always the message rows.
    """

    id = KeyField(
        primary_key=True, max_length=SESSION_ID_MAX_LENGTH, help_text="Session id, e.g. 20260614_021504_2686b5."
    )
    model = models.ForeignKey(
        LanguageModel,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sessions",
        db_index=False,  # covered by the (model, started_at) index
        help_text="Language model at the first message.",
    )
    model_config = models.JSONField(null=True, blank=True, help_text="Model parameters as the agent reported them.")
    # A key of every report and filter: compared byte for byte on MySQL/MariaDB too ("CLI" is not "cli").
    source = KeyField(max_length=64, help_text="Where the agent ran: cli, telegram, discord, cron, api_server, ...")
    user_id = models.CharField(max_length=255, null=True, blank=True)
    profile = KeyField(
        max_length=PROFILE_MAX_LENGTH,
        default=DEFAULT_PROFILE,
        db_default=DEFAULT_PROFILE,  # writers that do not list the column (other apps, raw SQL) get it too
        help_text="The hermes profile the session belongs to (hermes-agent keeps one state.db per profile).",
    )
    system_prompt = models.TextField(null=True, blank=True)
    parent_session = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="children",
        help_text="The session this one continues after context compression.",
    )
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = KeyField(max_length=64, null=True, blank=True)  # exact, as source

    message_count = models.PositiveIntegerField(default=0)
    tool_call_count = models.PositiveIntegerField(default=0)
    api_call_count = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)

    billing_provider = models.CharField(max_length=100, null=True, blank=True)
    billing_base_url = models.CharField(max_length=500, null=True, blank=True)
    billing_mode = models.CharField(max_length=64, null=True, blank=True)
    estimated_cost_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    actual_cost_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)

    has_messages = models.BooleanField(
        default=False,
        # Also a database default, so raw writers that list only the columns they know still insert.
        db_default=False,
        editable=False,
        help_text=(
            "Whether the session has at least one message row. Kept exact at every commit by "
            "triggers on the message table (migration 0004), whoever writes; never set it yourself."
        ),
    )

    title = models.CharField(max_length=500, null=True, blank=True)
    cwd = models.TextField(null=True, blank=True, help_text="Working directory of the agent (newer hermes releases).")
    extra = models.JSONField(
        null=True, blank=True, help_text="Columns of an imported hermes row that have no field of their own."
    )

    objects = SessionQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # Per-model report (optionally limited in time) and the admin's model filter, read
            # from the flag: empty/non-empty per model is counted from this index alone, without
            # reading session rows or probing the message table.
            models.Index(fields=["model", "started_at", "has_messages"], name="session_model_started_flag"),
            # Per-source report and the admin's source filter; covering for the same reason.
            models.Index(fields=["source", "started_at", "has_messages"], name="session_source_started_flag"),
            # Per-day/week/month trend and the all-models total: covering for the same reason.
            models.Index(fields=["started_at", "has_messages"], name="session_started_flag"),
            # Per-profile report and filter; covering for the same reason.
            models.Index(fields=["profile", "started_at", "has_messages"], name="session_profile_started_flag"),
            # The admin's end_reason filter: its choices (SELECT DISTINCT end_reason) skip along
            # this index instead of reading the whole table on every changelist load.
            models.Index(fields=["end_reason", "started_at"], name="session_end_reason_started"),
            # (session_started_flag above also serves the admin's default ordering and prune by age.)
        ]

    def __str__(self):
        return self.id

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


class Message(models.Model):
    """One message of a session, mirroring a row of hermes-agent's ``messages`` table."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages", db_index=False)
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(null=True, blank=True)
    tool_call_id = models.CharField(max_length=255, null=True, blank=True)
    tool_calls = models.JSONField(null=True, blank=True)
    tool_name = models.CharField(max_length=255, null=True, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)
    token_count = models.PositiveIntegerField(null=True, blank=True)
    finish_reason = models.CharField(max_length=64, null=True, blank=True)
    reasoning = models.TextField(null=True, blank=True)
    model = models.ForeignKey(
        LanguageModel,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="messages",
        # No index: it would slow every message insert, and nothing hot filters messages by model.
        db_index=False,
        help_text="Model the caller was using when this message was saved.",
    )
    extra = models.JSONField(
        null=True, blank=True, help_text="Provider-specific fields (e.g. reasoning details) kept as given."
    )
    # hermes-agent v30 keeps undone and summarized-away turns as rows: ``active`` is False once the
    # user undoes or rewinds a turn (or compaction replaces it), ``compacted`` True once compaction
    # summarized it away. The session's message_count/tool_call_count count active rows only, as
    # hermes does; "empty" (has_messages) still means "has any message row at all".
    active = models.BooleanField(
        default=True,
        db_default=True,  # writers that do not list the column (other apps, raw SQL) write live messages
        help_text="False once the turn was undone, rewound or replaced by compaction (kept, not counted).",
    )
    compacted = models.BooleanField(
        default=False,
        db_default=False,
        help_text="True once context compaction summarized this message away (kept, still searchable).",
    )
    hermes_id = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="Id of the row in the hermes-agent state.db this message was imported from (empty for "
        "messages saved here); re-imports use it to follow what hermes changes in place.",
    )

    class Meta:
        ordering = ["timestamp", "id"]
        indexes = [
            # Messages of a session in order, and the EXISTS probe that decides "empty".
            models.Index(fields=["session", "timestamp", "id"], name="message_session_time"),
        ]

    def __str__(self):
        return f"{self.role} message {self.pk} of {self.session_id}"


class TrendMarker(models.Model):
    """Something that happened at a moment (a deployment, a model switch, an outage), drawn as a
    labelled vertical line on the analytics page's trend and used as its "before" boundary."""

    at = models.DateTimeField(
        default=timezone.now,
        # The latest moment needs no validator: no later one exists in Python (nor in the form).
        validators=[
            MinValueValidator(
                EARLIEST_MOMENT, message="Give a moment from 1000-01-01 on (UTC): the reports start there."
            )
        ],
        help_text="When it happened (UTC).",
    )
    label = models.CharField(max_length=80, help_text='A short name, drawn on the chart, e.g. "lazy sessions on".')
    note = models.TextField(blank=True, help_text="Optional detail: a link, a ticket, what changed.")

    objects = TrendMarkerQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "trend marker"
        indexes = [models.Index(fields=["at"], name="trend_marker_at")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.label}"


class SessionDay(models.Model):
    """What the sessions started on one UTC day add up to, per model, source and profile: the rollup
    every aggregate reads for the whole days before the watermark (``SessionRollupState``).

    Written only by ``sessions_app.rollup`` (never by a trigger: one hot row per day would
    serialize the writers), which replaces a day's rows in one transaction. A writer that changes
    a day marks it (``RollupMark``) in its own transaction; readers count marked days live.
    """

    day = models.DateField(help_text="UTC day the sessions started.")
    model = models.ForeignKey(
        LanguageModel,
        # Sessions protect a model; rows left here by sessions deleted since the last build don't.
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # the unique key below starts with the day; nothing looks rows up by model
        help_text="The sessions' model; empty for sessions without one.",
    )
    # Key columns, compared byte for byte on MySQL/MariaDB too ("CLI" and "cli" are two rows).
    source = KeyField(max_length=64)
    profile = KeyField(max_length=PROFILE_MAX_LENGTH)
    sessions = models.PositiveBigIntegerField()
    empty = models.PositiveBigIntegerField(help_text="Sessions without a message row (the has_messages flag).")
    # Why the empty ones are empty (analytics.causes); they add up to ``empty``. An open empty
    # session without usage is "open" or "never_ended" depending on the time of the read, so the
    # rollup keeps them together; readers split them (whole days before the grace period are all
    # never_ended). Database defaults, so a writer that lists only the older columns still inserts.
    lost_transcript = models.PositiveBigIntegerField(default=0, db_default=0, help_text="Empty, with usage.")
    ghost = models.PositiveBigIntegerField(default=0, db_default=0, help_text="Empty, no usage, ended.")
    unended = models.PositiveBigIntegerField(default=0, db_default=0, help_text="Empty, no usage, still open.")
    messages = models.PositiveBigIntegerField(
        default=0, db_default=0, help_text="Sum of the sessions' message_count counters: their active messages."
    )
    newest = models.DateTimeField(null=True, blank=True, help_text="The latest start among these sessions.")

    class Meta:
        verbose_name = "session day"
        ordering = ["day", "model", "source", "profile"]
        constraints = [
            # NULL models are distinct to the database; their rows stay unique because a day is
            # only ever written whole, from one GROUP BY, under the state row's lock.
            models.UniqueConstraint(fields=["day", "model", "source", "profile"], name="session_day_key"),
        ]

    def __str__(self):
        return f"{self.day} {self.model_id} {self.source} {self.profile}: {self.empty}/{self.sessions}"


class SessionRollupState(models.Model):
    """The one row that says how far ``SessionDay`` goes: every UTC day before ``watermark`` is in it
    (a day without sessions has no row; a marked day is read live), the days from ``watermark`` on
    are read live."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    watermark = models.DateField(null=True, help_text="The first UTC day not in the rollup; empty: not built.")
    built_at = models.DateTimeField(null=True, help_text="When a build last brought the rollup up to the watermark.")

    class Meta:
        verbose_name = "session rollup state"

    def __str__(self):
        return f"rollup up to {self.watermark} (built {self.built_at})"


class ModelUsage(models.Model):
    """What one model cost a session, per billing route and task (hermes-agent v30's
    ``session_model_usage``): a session that switched model keeps each model's share.

    One row per (session, model, billing provider, base URL, mode, task), hermes' own key. Rows come
    from the importer (one per source row) and from the save path when a caller reports usage with
    its model (``append_messages(..., usage=...)``).
    """

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="model_usage", db_index=False)
    model = models.ForeignKey(LanguageModel, on_delete=models.PROTECT, related_name="usage", null=True, blank=True)
    # Key columns: compared byte for byte on MySQL/MariaDB too. Their lengths keep the unique index
    # within MariaDB's 3,072-byte key limit in utf8mb4.
    billing_provider = KeyField(max_length=100, blank=True, default="")
    billing_base_url = KeyField(max_length=400, blank=True, default="")
    billing_mode = KeyField(max_length=64, blank=True, default="")
    task = KeyField(max_length=64, blank=True, default="", help_text="What the calls were for; empty: the main loop.")
    api_calls = models.PositiveIntegerField("API calls", default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    estimated_cost_usd = models.DecimalField("estimated cost (USD)", max_digits=20, decimal_places=10, default=0)
    actual_cost_usd = models.DecimalField("actual cost (USD)", max_digits=20, decimal_places=10, default=0)
    cost_status = models.CharField(max_length=64, null=True, blank=True)
    cost_source = models.CharField(max_length=64, null=True, blank=True)
    first_seen = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "model usage"
        verbose_name_plural = "model usage"
        ordering = ["session", "first_seen", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "model", "billing_provider", "billing_base_url", "billing_mode", "task"],
                name="model_usage_key",
            ),
        ]

    def __str__(self):
        return f"{self.session_id} {self.model or '(none)'}{f' [{self.task}]' if self.task else ''}"


class RollupMark(models.Model):
    """A UTC day whose rollup rows may no longer match its sessions: written by the writer that
    changed the day, in the transaction of its change, so a crash never leaves the change unmarked.

    Readers count a marked day live; ``rollup.fold_marks`` (the end of a writer's run, every build)
    recomputes it and deletes the marks it saw. Rows are only ever inserted and deleted by id (no
    key to fight over: concurrent writers never wait for each other here).
    """

    day = models.DateField(db_index=True)

    class Meta:
        verbose_name = "rollup mark"

    def __str__(self):
        return f"{self.day} marked"


class DeletedSessions(models.Model):
    """Sessions our writers deleted (prune, the admin), per model, source and profile: the ledger
    that keeps ``/metrics``' ``hermes_sessions_stored_total`` from going down when sessions go.
    Written in the same transaction as the deletion."""

    model = KeyField(max_length=255, help_text='The model name; "" for sessions without one.')
    source = KeyField(max_length=64)
    profile = KeyField(max_length=PROFILE_MAX_LENGTH)
    sessions = models.PositiveBigIntegerField(default=0)
    messages = models.PositiveBigIntegerField(default=0, help_text="Their message_count counters, summed.")

    class Meta:
        verbose_name = "deleted sessions"
        verbose_name_plural = "deleted sessions"
        constraints = [models.UniqueConstraint(fields=["model", "source", "profile"], name="deleted_sessions_key")]

    def __str__(self):
        return f"{self.model or '(none)'} {self.source} {self.profile}: {self.sessions} deleted"


class MetricLabel(models.Model):
    """A label value ``/metrics`` has exposed (a model, source, profile or end reason), and whether
    under its own name or as ``other``: decided once, when the value is first scraped, and never
    changed, so a counter's series never moves between labels (no re-ranking)."""

    dimension = KeyField(max_length=16)
    value = KeyField(max_length=255)
    named = models.BooleanField(help_text="Exposed under its own name; otherwise summed as 'other'.")

    class Meta:
        verbose_name = "metric label"
        ordering = ["dimension", "id"]
        constraints = [models.UniqueConstraint(fields=["dimension", "value"], name="metric_label_key")]

    def __str__(self):
        return f"{self.dimension}={self.value!r} ({'named' if self.named else 'other'})"
