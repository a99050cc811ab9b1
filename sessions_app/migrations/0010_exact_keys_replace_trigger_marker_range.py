# Three changes of issue 23, one migration:
#
# 1. Session.source and Session.end_reason become KeyFields: compared byte for byte on MySQL/MariaDB
#    too (a binary no-pad collation, as the session id, the profile and the tally's keys have), so
#    "CLI" and "cli" are two sources there as on SQLite and PostgreSQL, for a plain filter, DISTINCT
#    or GROUP BY. Only MySQL/MariaDB's columns change; on SQLite Django would rebuild the whole
#    session table for the new field class (and the rebuilt table cannot be renamed while the
#    message table's triggers name it), for nothing: the column stays what it is there.
#
# 2. SQLite: INSERT OR REPLACE (and UPDATE OR REPLACE) deletes the row it conflicts with without
#    firing delete triggers (unless a connection turned PRAGMA recursive_triggers on), so replacing a
#    message by one of another session left the old session's has_messages flag set with no row.
#    A BEFORE trigger notes the session of a row about to be replaced by another session's, in a
#    small table; AFTER INSERT and AFTER UPDATE triggers, run only when a note is there, set those
#    sessions' flags from their rows and clear the notes. This holds for every writer, whatever its
#    connection's pragmas: it needs nothing but the triggers. A note left by a statement that did
#    not go on to replace (INSERT OR IGNORE) is harmless: setting a flag from the rows is always right.
#    MariaDB fires delete triggers for REPLACE, PostgreSQL has no REPLACE (its ON CONFLICT DO UPDATE
#    is an update, which the move trigger of 0004 covers); both are tested.
#
# 3. TrendMarker.at: no moment before 1000-01-01 (UTC), where the reports start.

import datetime

import agents_app.fields
import django.core.validators
import django.utils.timezone
from django.db import migrations, models

NOTES = "sessions_app_message_replaced"

SQLITE_INSTALL = [
    f'CREATE TABLE "{NOTES}" ("session_id" varchar(128) NOT NULL)',
    f"""
    CREATE TRIGGER sessions_app_message_flag_replace BEFORE INSERT ON sessions_app_message
    WHEN EXISTS (SELECT 1 FROM sessions_app_message WHERE id = NEW.id AND session_id IS NOT NEW.session_id)
    BEGIN
        INSERT INTO {NOTES} (session_id) SELECT session_id FROM sessions_app_message WHERE id = NEW.id;
    END
    """,
    f"""
    CREATE TRIGGER sessions_app_message_flag_replace_id BEFORE UPDATE OF id ON sessions_app_message
    WHEN NEW.id IS NOT OLD.id AND EXISTS (SELECT 1 FROM sessions_app_message WHERE id = NEW.id)
    BEGIN
        INSERT INTO {NOTES} (session_id) SELECT session_id FROM sessions_app_message WHERE id = NEW.id;
    END
    """,
    *(
        f"""
        CREATE TRIGGER sessions_app_message_flag_replaced_{event} AFTER {event} ON sessions_app_message
        WHEN EXISTS (SELECT 1 FROM {NOTES})
        BEGIN
            UPDATE sessions_app_session SET has_messages =
                EXISTS (SELECT 1 FROM sessions_app_message m WHERE m.session_id = sessions_app_session.id)
            WHERE id IN (SELECT session_id FROM {NOTES});
            DELETE FROM {NOTES};
        END
        """
        for event in ("insert", "update")
    ),
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS sessions_app_message_flag_replace",
    "DROP TRIGGER IF EXISTS sessions_app_message_flag_replace_id",
    "DROP TRIGGER IF EXISTS sessions_app_message_flag_replaced_insert",
    "DROP TRIGGER IF EXISTS sessions_app_message_flag_replaced_update",
    f'DROP TABLE IF EXISTS "{NOTES}"',
]


def install_replace_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_INSTALL:
            schema_editor.execute(sql, params=None)


def drop_replace_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_DROP:
            schema_editor.execute(sql, params=None)


KEYS = {
    "source": (
        models.CharField(help_text="Where the agent ran: cli, telegram, discord, cron, api_server, ...", max_length=64),
        agents_app.fields.KeyField(
            help_text="Where the agent ran: cli, telegram, discord, cron, api_server, ...", max_length=64
        ),
    ),
    "end_reason": (
        models.CharField(blank=True, max_length=64, null=True),
        agents_app.fields.KeyField(blank=True, max_length=64, null=True),
    ),
}


def _fields(apps, name):
    model = apps.get_model("sessions_app", "Session")
    old, new = (field.clone() for field in KEYS[name])
    for field in (old, new):
        field.set_attributes_from_name(name)
        field.model = model
    return model, old, new


def binary_keys(apps, schema_editor, *, backwards=False):
    if schema_editor.connection.vendor != "mysql":
        return  # SQLite and PostgreSQL compare text exactly already: the column does not change
    for name in KEYS:
        model, old, new = _fields(apps, name)
        schema_editor.alter_field(model, *((new, old) if backwards else (old, new)))


def default_keys(apps, schema_editor):
    binary_keys(apps, schema_editor, backwards=True)


class Migration(migrations.Migration):
    atomic = False  # MariaDB commits each ALTER anyway; the SQLite triggers go in one by one

    dependencies = [
        ("sessions_app", "0009_message_flags_model_usage"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name="session", name=name, field=new) for name, (_, new) in KEYS.items()
            ],
            database_operations=[migrations.RunPython(binary_keys, default_keys)],
        ),
        migrations.RunPython(install_replace_triggers, drop_replace_triggers),
        migrations.AlterField(
            model_name="trendmarker",
            name="at",
            field=models.DateTimeField(
                default=django.utils.timezone.now,
                help_text="When it happened (UTC).",
                validators=[
                    django.core.validators.MinValueValidator(
                        datetime.datetime(1000, 1, 1, 0, 0, tzinfo=datetime.timezone.utc),
                        message="Give a moment from 1000-01-01 on (UTC): the reports start there.",
                    )
                ],
            ),
        ),
    ]
