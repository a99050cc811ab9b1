# Session.profile: the hermes profile a session belongs to (one state.db per profile). Existing
# sessions belong to "default". On SQLite the column is added with SQLite's own ADD COLUMN (a
# schema change only): Django would rebuild the whole session table for a NOT NULL column, and
# renaming the rebuilt table fails while the message table's has-messages triggers name it.

import agents_app.fields
from django.db import migrations, models

PROFILE = agents_app.fields.KeyField(
    db_default="default",
    default="default",
    help_text="The hermes profile the session belongs to (hermes-agent keeps one state.db per profile).",
    max_length=64,
)


def _profile_field(apps):
    field = PROFILE.clone()
    field.set_attributes_from_name("profile")
    field.model = apps.get_model("sessions_app", "Session")
    return field


def add_column(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(
            "ALTER TABLE \"sessions_app_session\" ADD COLUMN \"profile\" varchar(64) DEFAULT 'default' NOT NULL"
        )
    else:
        field = _profile_field(apps)
        schema_editor.add_field(field.model, field)


def remove_column(apps, schema_editor):
    field = _profile_field(apps)
    schema_editor.remove_field(field.model, field)


class Migration(migrations.Migration):
    dependencies = [
        ("agents_app", "0003_tally_key_collation"),
        ("sessions_app", "0005_readers_use_the_flag_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddField(model_name="session", name="profile", field=PROFILE)],
            database_operations=[migrations.RunPython(add_column, remove_column)],
        ),
        migrations.AddIndex(
            model_name="session",
            index=models.Index(fields=["profile", "started_at", "has_messages"], name="session_profile_started_flag"),
        ),
    ]
