# Message.active / Message.compacted (hermes-agent v30's undone and summarized-away turns), the
# hermes row id of imported messages, and ModelUsage (v30's session_model_usage).
#
# The three message columns are added with SQLite's own ADD COLUMN (a constant default only changes
# the schema) instead of Django's copy of the whole table: that copy would take long on a big
# message table, and dropping the old table would drop the has_messages triggers of migration 0004.
# Elsewhere they are added as Django adds them (PostgreSQL and MariaDB add a column with a constant
# default without rewriting the table).

import agents_app.fields
import django.db.models.deletion
from django.db import migrations, models

ACTIVE = models.BooleanField(
    db_default=True,
    default=True,
    help_text="False once the turn was undone, rewound or replaced by compaction (kept, not counted).",
)
COMPACTED = models.BooleanField(
    db_default=False,
    default=False,
    help_text="True once context compaction summarized this message away (kept, still searchable).",
)
HERMES_ID = models.PositiveBigIntegerField(
    blank=True,
    editable=False,
    help_text="Id of the row in the hermes-agent state.db this message was imported from (empty for "
    "messages saved here); re-imports use it to follow what hermes changes in place.",
    null=True,
)
SQLITE_COLUMNS = [
    'ALTER TABLE "sessions_app_message" ADD COLUMN "active" bool DEFAULT 1 NOT NULL',
    'ALTER TABLE "sessions_app_message" ADD COLUMN "compacted" bool DEFAULT 0 NOT NULL',
    'ALTER TABLE "sessions_app_message" ADD COLUMN "hermes_id" bigint unsigned NULL CHECK ("hermes_id" >= 0)',
]
FIELDS = {"active": ACTIVE, "compacted": COMPACTED, "hermes_id": HERMES_ID}


def _fields(apps):
    """The fields on the historical Message model (the database operation runs before the state's)."""
    model = apps.get_model("sessions_app", "Message")
    fields = []
    for name, field in FIELDS.items():
        field = field.clone()
        field.set_attributes_from_name(name)
        field.model = model
        fields.append(field)
    return model, fields


def add_columns(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_COLUMNS:
            schema_editor.execute(sql)
        return
    model, fields = _fields(apps)
    for field in fields:
        schema_editor.add_field(model, field)


def remove_columns(apps, schema_editor):
    model, fields = _fields(apps)
    if schema_editor.connection.vendor == "sqlite":
        # SQLite 3.35+ drops a column in place (no copy of the table, so the triggers stay).
        for field in reversed(fields):
            schema_editor.execute(f'ALTER TABLE "sessions_app_message" DROP COLUMN "{field.column}"')
        return
    for field in reversed(fields):
        schema_editor.remove_field(model, field)


class Migration(migrations.Migration):
    dependencies = [
        ("agents_app", "0003_tally_key_collation"),
        ("sessions_app", "0008_session_day_rollup"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(model_name="message", name=name, field=field) for name, field in FIELDS.items()
            ],
            database_operations=[migrations.RunPython(add_columns, remove_columns)],
        ),
        migrations.CreateModel(
            name="ModelUsage",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("billing_provider", agents_app.fields.KeyField(blank=True, default="", max_length=100)),
                ("billing_base_url", agents_app.fields.KeyField(blank=True, default="", max_length=400)),
                ("billing_mode", agents_app.fields.KeyField(blank=True, default="", max_length=64)),
                (
                    "task",
                    agents_app.fields.KeyField(
                        blank=True,
                        default="",
                        help_text="What the calls were for; empty: the main loop.",
                        max_length=64,
                    ),
                ),
                ("api_calls", models.PositiveIntegerField(default=0, verbose_name="API calls")),
                ("input_tokens", models.BigIntegerField(default=0)),
                ("output_tokens", models.BigIntegerField(default=0)),
                ("cache_read_tokens", models.BigIntegerField(default=0)),
                ("cache_write_tokens", models.BigIntegerField(default=0)),
                ("reasoning_tokens", models.BigIntegerField(default=0)),
                (
                    "estimated_cost_usd",
                    models.DecimalField(decimal_places=10, default=0, max_digits=20, verbose_name="estimated cost (USD)"),
                ),
                (
                    "actual_cost_usd",
                    models.DecimalField(decimal_places=10, default=0, max_digits=20, verbose_name="actual cost (USD)"),
                ),
                ("cost_status", models.CharField(blank=True, max_length=64, null=True)),
                ("cost_source", models.CharField(blank=True, max_length=64, null=True)),
                ("first_seen", models.DateTimeField(blank=True, null=True)),
                ("last_seen", models.DateTimeField(blank=True, null=True)),
                (
                    "model",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="usage",
                        to="agents_app.languagemodel",
                    ),
                ),
                (
                    "session",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="model_usage",
                        to="sessions_app.session",
                    ),
                ),
            ],
            options={
                "verbose_name": "model usage",
                "verbose_name_plural": "model usage",
                "ordering": ["session", "first_seen", "id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("session", "model", "billing_provider", "billing_base_url", "billing_mode", "task"),
                        name="model_usage_key",
                    )
                ],
            },
        ),
    ]
