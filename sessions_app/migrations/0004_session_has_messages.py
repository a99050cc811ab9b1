# Session.has_messages: a flag the database keeps equal to EXISTS(message rows of the session) at
# every commit, whoever writes, so that readers can decide emptiness from a covering index.
#
# Order matters. The column is added (instant on all three backends: a constant database default,
# and on SQLite a plain ADD COLUMN instead of Django's copy of the whole table); the triggers are
# installed next, so that every message written from then on keeps the flag; then the flag is filled
# from the rows in short batches (keyset over session ids, one transaction each, never one lock over
# the whole table), which is correct even while the application writes, because each batch locks its
# sessions first and then reads the rows in a fresh statement, as the triggers do; the flag indexes
# are built last, so that the fill does not have to maintain them.
#
# Not atomic: on PostgreSQL one transaction would hold every updated row's lock until the end.
#
# The triggers (per vendor, below):
# - insert: set the session's flag, only when it is not set yet (a batch never rewrites the row);
# - delete: clear the flag when no row of the session is left;
# - session_id updated (a message moved): set the new session's flag, re-check the old one's.
# A delete locks its sessions (FOR UPDATE) before it looks for remaining rows in a new statement,
# so two transactions deleting the last two rows of one session cannot both see the other's row;
# an insert holds at least a share lock on its session (PostgreSQL: FOR KEY SHARE in the trigger,
# since Django's foreign keys are deferred there; MariaDB: the foreign-key check's own S lock), so a
# delete cannot clear the flag under an insert that has not committed. SQLite serializes writers.
# On SQLite, any migration that rebuilds sessions_app_message (Django's "remake table") drops these
# triggers and must install them again; tests/sessions_app/test_has_messages_flag.py checks they exist.

from contextlib import nullcontext

from django.db import migrations, models, transaction

BACKFILL_BATCH = 5000

SQLITE = {
    "install": [
        """
        CREATE TRIGGER sessions_app_message_flag_insert AFTER INSERT ON sessions_app_message
        BEGIN
            UPDATE sessions_app_session SET has_messages = 1 WHERE id = NEW.session_id AND NOT has_messages;
        END
        """,
        """
        CREATE TRIGGER sessions_app_message_flag_delete AFTER DELETE ON sessions_app_message
        BEGIN
            UPDATE sessions_app_session SET has_messages = 0
            WHERE id = OLD.session_id AND has_messages
              AND NOT EXISTS (SELECT 1 FROM sessions_app_message WHERE session_id = OLD.session_id);
        END
        """,
        """
        CREATE TRIGGER sessions_app_message_flag_move AFTER UPDATE OF session_id ON sessions_app_message
        WHEN NEW.session_id IS NOT OLD.session_id
        BEGIN
            UPDATE sessions_app_session SET has_messages = 1 WHERE id = NEW.session_id AND NOT has_messages;
            UPDATE sessions_app_session SET has_messages = 0
            WHERE id = OLD.session_id AND has_messages
              AND NOT EXISTS (SELECT 1 FROM sessions_app_message WHERE session_id = OLD.session_id);
        END
        """,
    ],
    "drop": [
        "DROP TRIGGER IF EXISTS sessions_app_message_flag_insert",
        "DROP TRIGGER IF EXISTS sessions_app_message_flag_delete",
        "DROP TRIGGER IF EXISTS sessions_app_message_flag_move",
    ],
}

# Each function locks first and reads in its next statement, which (READ COMMITTED, a volatile
# function) takes a fresh snapshot: it sees what the transactions it waited for committed.
# Deletes: a statement-level trigger with a transition table, one run per statement whatever its
# row count (a cascade, a bulk delete). Inserts: a row trigger. The save path inserts a batch with
# executemany, which psycopg runs as one statement per row, so a statement trigger ran per row as
# well, and cost more there (bench_flag_triggers, 100-message flushes: 1.47x against 1.12x). A
# COPY or multi-row INSERT (the importer) pays two primary-key lookups per row instead.
POSTGRESQL = {
    "install": [
        """
        CREATE FUNCTION sessions_app_message_flag_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- KEY SHARE conflicts only with a deleter's FOR UPDATE: appenders never wait for each other.
            PERFORM 1 FROM sessions_app_session WHERE id = NEW.session_id FOR KEY SHARE;
            UPDATE sessions_app_session SET has_messages = true WHERE id = NEW.session_id AND NOT has_messages;
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE TRIGGER sessions_app_message_flag_insert AFTER INSERT ON sessions_app_message
        FOR EACH ROW EXECUTE FUNCTION sessions_app_message_flag_insert()
        """,
        """
        CREATE FUNCTION sessions_app_message_flag_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM 1 FROM sessions_app_session s WHERE s.id IN (SELECT session_id FROM old_rows)
                ORDER BY s.id FOR UPDATE;
            UPDATE sessions_app_session s SET has_messages = false
                WHERE s.id IN (SELECT session_id FROM old_rows) AND s.has_messages
                  AND NOT EXISTS (SELECT 1 FROM sessions_app_message m WHERE m.session_id = s.id);
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE TRIGGER sessions_app_message_flag_delete AFTER DELETE ON sessions_app_message
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
        EXECUTE FUNCTION sessions_app_message_flag_delete()
        """,
        # Moves are rare, and a statement trigger with transition tables cannot be limited to
        # "UPDATE OF session_id": a row trigger that fires only for a move costs edits nothing.
        """
        CREATE FUNCTION sessions_app_message_flag_move() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM 1 FROM sessions_app_session s WHERE s.id IN (OLD.session_id, NEW.session_id)
                ORDER BY s.id FOR UPDATE;
            UPDATE sessions_app_session SET has_messages = true WHERE id = NEW.session_id AND NOT has_messages;
            UPDATE sessions_app_session s SET has_messages = false
                WHERE s.id = OLD.session_id AND s.has_messages
                  AND NOT EXISTS (SELECT 1 FROM sessions_app_message m WHERE m.session_id = s.id);
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE TRIGGER sessions_app_message_flag_move AFTER UPDATE OF session_id ON sessions_app_message
        FOR EACH ROW WHEN (OLD.session_id IS DISTINCT FROM NEW.session_id)
        EXECUTE FUNCTION sessions_app_message_flag_move()
        """,
        """
        CREATE FUNCTION sessions_app_message_flag_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE sessions_app_session SET has_messages = false WHERE has_messages;
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE TRIGGER sessions_app_message_flag_truncate AFTER TRUNCATE ON sessions_app_message
        FOR EACH STATEMENT EXECUTE FUNCTION sessions_app_message_flag_truncate()
        """,
    ],
    "drop": [
        f"DROP TRIGGER IF EXISTS sessions_app_message_flag_{name} ON sessions_app_message;"
        f" DROP FUNCTION IF EXISTS sessions_app_message_flag_{name}()"
        for name in ("insert", "delete", "move", "truncate")
    ],
}

# Row triggers. The insert needs no lock of its own: InnoDB's foreign-key check already holds a
# shared lock on the session row until commit, which a deleter's FOR UPDATE waits for. A delete
# looks for a remaining row with a *locking* read, which sees the latest committed rows: a plain
# read inside a trigger uses the read view of the whole statement, which in a multi-row DELETE can
# be older than the lock just waited for (tested: it left a flag set on an empty session). The
# price: two transactions deleting the last rows of one session at the same moment can deadlock;
# InnoDB rolls one back (error 1213, retried by agents_app.db.run_with_retry), never a wrong flag.
# The remaining rows are read newest first: a cascade deletes in id order, so the rows it has
# already deleted (still in the index until purge) are not walked over again for every row.
MYSQL = {
    "install": [
        """
        CREATE TRIGGER sessions_app_message_flag_insert AFTER INSERT ON sessions_app_message FOR EACH ROW
        UPDATE sessions_app_session SET has_messages = 1 WHERE id = NEW.session_id AND NOT has_messages
        """,
        """
        CREATE TRIGGER sessions_app_message_flag_delete AFTER DELETE ON sessions_app_message FOR EACH ROW
        BEGIN
            DECLARE flagged BOOL DEFAULT FALSE;
            DECLARE remaining BIGINT DEFAULT NULL;
            DECLARE CONTINUE HANDLER FOR NOT FOUND SET remaining = NULL;
            SELECT has_messages INTO flagged FROM sessions_app_session WHERE id = OLD.session_id FOR UPDATE;
            IF flagged THEN
                SELECT id INTO remaining FROM sessions_app_message WHERE session_id = OLD.session_id
                    ORDER BY timestamp DESC, id DESC LIMIT 1 LOCK IN SHARE MODE;
                IF remaining IS NULL THEN
                    UPDATE sessions_app_session SET has_messages = 0 WHERE id = OLD.session_id;
                END IF;
            END IF;
        END
        """,
        """
        CREATE TRIGGER sessions_app_message_flag_move AFTER UPDATE ON sessions_app_message FOR EACH ROW
        BEGIN
            DECLARE locked INT;
            DECLARE remaining BIGINT DEFAULT NULL;
            DECLARE CONTINUE HANDLER FOR NOT FOUND SET remaining = NULL;
            IF NOT (NEW.session_id <=> OLD.session_id) THEN
                -- Both sessions, locked in key order.
                SELECT COUNT(*) INTO locked FROM sessions_app_session
                    WHERE id IN (OLD.session_id, NEW.session_id) FOR UPDATE;
                UPDATE sessions_app_session SET has_messages = 1 WHERE id = NEW.session_id AND NOT has_messages;
                SELECT id INTO remaining FROM sessions_app_message WHERE session_id = OLD.session_id
                    LIMIT 1 LOCK IN SHARE MODE;
                IF remaining IS NULL THEN
                    UPDATE sessions_app_session SET has_messages = 0 WHERE id = OLD.session_id AND has_messages;
                END IF;
            END IF;
        END
        """,
    ],
    "drop": [
        "DROP TRIGGER IF EXISTS sessions_app_message_flag_insert",
        "DROP TRIGGER IF EXISTS sessions_app_message_flag_delete",
        "DROP TRIGGER IF EXISTS sessions_app_message_flag_move",
    ],
}

TRIGGERS = {"sqlite": SQLITE, "postgresql": POSTGRESQL, "mysql": MYSQL}


HAS_MESSAGES = models.BooleanField(
    db_default=False,
    default=False,
    editable=False,
    help_text=(
        "Whether the session has at least one message row. Kept exact at every commit by "
        "triggers on the message table (migration 0004), whoever writes; never set it yourself."
    ),
)


def _flag_field(apps):
    """The field on the historical Session model (the database operation runs before the state's)."""
    field = HAS_MESSAGES.clone()
    field.set_attributes_from_name("has_messages")
    field.model = apps.get_model("sessions_app", "Session")
    return field


def add_column(apps, schema_editor):
    # Django rebuilds a whole SQLite table to add a NOT NULL column; SQLite's own ADD COLUMN with a
    # constant default only changes the schema. The column is what Django would declare.
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute('ALTER TABLE "sessions_app_session" ADD COLUMN "has_messages" bool DEFAULT 0 NOT NULL')
    else:
        field = _flag_field(apps)
        schema_editor.add_field(field.model, field)


def remove_column(apps, schema_editor):
    field = _flag_field(apps)
    schema_editor.remove_field(field.model, field)


def _run_all(schema_editor, statements):
    # All or none where DDL is transactional (SQLite, PostgreSQL); MariaDB commits each one.
    connection = schema_editor.connection
    with transaction.atomic(using=connection.alias) if connection.features.can_rollback_ddl else nullcontext():
        for sql in statements:
            schema_editor.execute(sql, params=None)


def install_triggers(apps, schema_editor):
    _run_all(schema_editor, TRIGGERS[schema_editor.connection.vendor]["install"])


def drop_triggers(apps, schema_editor):
    _run_all(schema_editor, TRIGGERS[schema_editor.connection.vendor]["drop"])


def fill_flag(connection, *, batch_size: int = BACKFILL_BATCH) -> int:
    """Set every session's flag from its rows, ``batch_size`` sessions per transaction; returns
    how many flags changed. Safe while others write: a batch locks its sessions, then re-reads."""
    lock = "" if connection.vendor == "sqlite" else " FOR UPDATE"  # SQLite: BEGIN IMMEDIATE locks
    select = f"SELECT id FROM sessions_app_session WHERE id > %s ORDER BY id LIMIT {int(batch_size)}{lock}"
    exists = "EXISTS (SELECT 1 FROM sessions_app_message m WHERE m.session_id = sessions_app_session.id)"
    update = (
        f"UPDATE sessions_app_session SET has_messages = {exists} "
        f"WHERE id >= %s AND id <= %s AND has_messages <> {exists}"
    )
    changed, last = 0, ""
    while True:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(select, [last])
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                return changed
            cursor.execute(update, [ids[0], ids[-1]])
            changed += cursor.rowcount
        last = ids[-1]


def fill(apps, schema_editor):
    fill_flag(schema_editor.connection)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("agents_app", "0003_tally_key_collation"),
        ("sessions_app", "0003_session_source_end_reason_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(model_name="session", name="has_messages", field=HAS_MESSAGES),
            ],
            database_operations=[migrations.RunPython(add_column, remove_column)],
        ),
        migrations.RunPython(install_triggers, drop_triggers),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="session",
            index=models.Index(fields=["model", "started_at", "has_messages"], name="session_model_started_flag"),
        ),
        migrations.AddIndex(
            model_name="session",
            index=models.Index(fields=["source", "started_at", "has_messages"], name="session_source_started_flag"),
        ),
        migrations.AddIndex(
            model_name="session",
            index=models.Index(fields=["started_at", "has_messages"], name="session_started_flag"),
        ),
    ]
