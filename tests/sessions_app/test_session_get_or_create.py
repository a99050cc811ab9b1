"""SessionQuerySet.get_or_create: the prepared path must be indistinguishable from Django's own."""

import datetime as dt
import decimal
from unittest import mock

import pytest
from django.db import IntegrityError, connection, models, transaction
from django.db.models.signals import post_save, pre_save
from django.test.utils import CaptureQueriesContext

from agents_app.models import LanguageModel
from sessions_app import fastwrite
from sessions_app.models import Session

EVERY_FIELD = {
    "model_config": {"temperature": 0.2, "tools": ["a", "b"], "nested": {"x": None}},
    "source": "telegram",
    "user_id": "user-ü-1",
    "system_prompt": "You are terse.\nÜnïcødé ✓",
    "started_at": dt.datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=dt.UTC),
    "ended_at": dt.datetime(2026, 2, 3, 5, 0, tzinfo=dt.UTC),
    "end_reason": "completed",
    "message_count": 3,
    "tool_call_count": 2,
    "api_call_count": 7,
    "input_tokens": 2**40,
    "output_tokens": 12,
    "cache_read_tokens": 0,
    "cache_write_tokens": 5,
    "reasoning_tokens": 9,
    "billing_provider": "openrouter",
    "billing_base_url": "https://example.invalid/v1",
    "billing_mode": "metered",
    "estimated_cost_usd": decimal.Decimal("0.0123456789"),
    "actual_cost_usd": None,
    "title": "A title",
    "cwd": "/home/op",
    "extra": {"legacy": [1, 2, 3]},
}


def _stored(pk):
    """Every column of the row as the database returns it (no model instance involved)."""
    table = connection.ops.quote_name(Session._meta.db_table)
    columns = [f.column for f in Session._meta.concrete_fields]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(connection.ops.quote_name(c) for c in columns)} FROM {table} WHERE id = %s",  # noqa: S608
            [pk],
        )
        (row,) = cursor.fetchall()
    return dict(zip(columns, row, strict=True)) | {"id": None}


def _django_get_or_create(queryset, **kwargs):
    return models.QuerySet.get_or_create(queryset, **kwargs)


@pytest.mark.parametrize("defaults", [EVERY_FIELD, {"source": "cli"}], ids=["every-field", "defaults-only"])
def test_prepared_insert_writes_exactly_what_django_writes(db, defaults):
    model = LanguageModel.objects.create(name="openai/gpt-5")
    defaults = {**defaults, "model": model}
    assert fastwrite.can_get_or_create(Session.objects.all(), {"pk": "fast"})
    fast, fast_created = Session.objects.get_or_create(pk="fast", defaults=dict(defaults))
    slow, slow_created = _django_get_or_create(Session.objects.all(), pk="slow", defaults=dict(defaults))
    assert fast_created is slow_created is True
    if "started_at" not in defaults:  # the default is "now": the two calls differ by that alone
        Session.objects.filter(pk__in=["fast", "slow"]).update(started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert _stored("fast") == _stored("slow")
    # The returned instances are saved instances like Django's.
    assert fast._state.adding is slow._state.adding is False
    assert fast._state.db == slow._state.db == "default"
    assert Session.objects.get(pk="fast").model_config == defaults.get("model_config")


def test_existing_row_is_returned_not_created(db):
    Session.objects.create(pk="s1", source="cli", title="kept")
    session, created = Session.objects.get_or_create(pk="s1", defaults={"source": "api", "title": "lost"})
    assert created is False
    assert (session.source, session.title) == ("cli", "kept")
    assert Session.objects.count() == 1


def test_losing_a_race_reads_the_winner_and_keeps_the_transaction_usable(db):
    """Another writer inserts the id between our read and our insert: the INSERT fails inside a
    savepoint, we read the winner's row, and the caller's transaction goes on."""
    Session.objects.create(pk="s1", source="winner")
    with transaction.atomic():
        with mock.patch.object(fastwrite, "session_exists", return_value=False) as exists:
            session, created = Session.objects.select_for_update().get_or_create(pk="s1", defaults={"source": "me"})
        assert exists.called
        assert created is False and session.source == "winner"
        Session.objects.create(pk="s2", source="cli")  # the transaction is still usable
    assert sorted(Session.objects.values_list("pk", flat=True)) == ["s1", "s2"]


def test_integrity_error_from_another_cause_propagates_and_writes_nothing(db):
    with pytest.raises(IntegrityError):
        Session.objects.get_or_create(pk="s1", defaults={"source": None})  # NOT NULL
    assert not Session.objects.exists()


def test_unsaved_related_object_is_refused_as_django_refuses_it(db):
    with pytest.raises(ValueError, match="unsaved related object"):
        Session.objects.get_or_create(pk="s1", defaults={"source": "cli", "model": LanguageModel(name="x")})
    assert not Session.objects.exists()


def test_queries_stay_visible_to_query_logging(db):
    with CaptureQueriesContext(connection) as ctx:
        Session.objects.get_or_create(pk="s1", defaults={"source": "cli"})
    sql = " ".join(q["sql"] for q in ctx.captured_queries)
    assert "SELECT 1 FROM" in sql and "INSERT INTO" in sql


@pytest.mark.parametrize(
    "queryset, lookup",
    [
        (lambda: Session.objects.filter(source="cli"), {"pk": "s1"}),
        (lambda: Session.objects.all(), {"pk": "s1", "source": "cli"}),
        (lambda: Session.objects.all(), {"source": "cli"}),
        (lambda: Session.objects.all()[:5], {"pk": "s1"}),
        (lambda: Session.objects.select_for_update(nowait=True), {"pk": "s1"}),
        (lambda: Session.objects.select_for_update(skip_locked=True), {"pk": "s1"}),
    ],
    ids=["filtered", "more-lookups", "not-by-key", "sliced", "nowait", "skip-locked"],
)
def test_anything_else_is_djangos_own(db, queryset, lookup):
    with transaction.atomic():
        assert not fastwrite.can_get_or_create(queryset(), lookup)


def test_select_for_update_outside_a_transaction_is_djangos_error(transactional_db):
    if not connection.features.has_select_for_update:
        pytest.skip("not applicable: SQLite has no SELECT ... FOR UPDATE (Django ignores it there)")
    with pytest.raises(transaction.TransactionManagementError):
        Session.objects.select_for_update().get_or_create(pk="s1", defaults={"source": "cli"})


def test_save_signal_receivers_see_the_creation(db):
    seen = []

    def receiver(sender, instance, created, **kwargs):
        seen.append((instance.pk, created))

    post_save.connect(receiver, sender=Session)
    try:
        assert not fastwrite.can_get_or_create(Session.objects.all(), {"pk": "s1"})
        Session.objects.get_or_create(pk="s1", defaults={"source": "cli"})
    finally:
        post_save.disconnect(receiver, sender=Session)
    assert seen == [("s1", True)]
    assert not pre_save.has_listeners(Session) and fastwrite.can_get_or_create(Session.objects.all(), {"pk": "s2"})


@pytest.mark.django_db(transaction=True)
def test_works_as_the_first_query_of_a_fresh_connection():
    connection.close()
    session, created = Session.objects.get_or_create(pk="s1", defaults={"source": "cli"})
    assert created and session.pk == "s1" and Session.objects.filter(pk="s1").exists()


def test_expressions_in_defaults_are_compiled_as_django_compiles_them(db):
    from django.db.models import Value
    from django.db.models.functions import Lower, Now

    session, created = Session.objects.get_or_create(
        pk="s1", defaults={"source": Lower(Value("CLI")), "started_at": Now()}
    )
    assert created and not session._state.adding
    stored = Session.objects.get(pk="s1")
    assert stored.source == "cli"
    assert abs((stored.started_at - dt.datetime.now(dt.UTC)).total_seconds()) < 60


def test_row_deleted_between_the_check_and_the_read_is_created_again(db):
    """Django reads once: it finds the row or creates it. The check-then-read of the prepared
    path must not let DoesNotExist out when a concurrent delete lands in between."""
    Session.objects.create(pk="s1", source="old")
    real_exists = fastwrite.session_exists

    def exists_then_deleted(alias, pk, **kwargs):
        found = real_exists(alias, pk, **kwargs)
        Session.objects.filter(pk=pk).delete()  # what a concurrent prune would commit here
        return found

    with mock.patch.object(fastwrite, "session_exists", side_effect=exists_then_deleted):
        session, created = Session.objects.get_or_create(pk="s1", defaults={"source": "new"})
    assert created and session.source == "new" == Session.objects.get(pk="s1").source
