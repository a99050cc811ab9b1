import pytest
from django.db.models import Count

from agents_app.models import LanguageModel, provider_for
from sessions_app.models import Message, Session


def test_provider_is_derived_from_the_name(db):
    assert provider_for("anthropic/claude-opus-4.6") == "anthropic"
    assert provider_for("meta-llama/llama-3/70b") == "meta-llama"
    assert provider_for("gpt-4o") == ""
    assert LanguageModel.objects.create(name="google/gemini-3").provider == "google"
    assert LanguageModel.objects.create(name="local-model").provider == ""


def test_empty_and_non_empty_querysets_follow_the_rows(legacy_session):
    empty = legacy_session()
    spoken = legacy_session()
    # Written by "another writer": rows without the counter being maintained.
    Message.objects.create(session=spoken, role="user", content="hi")
    stale = legacy_session(message_count=5)  # a stale counter, no rows: still empty
    assert set(Session.objects.empty().values_list("id", flat=True)) == {empty.id, stale.id}
    assert list(Session.objects.non_empty().values_list("id", flat=True)) == [spoken.id]
    assert Session.objects.empty().filter(model__name="openai/gpt-5").count() == 2


def test_with_children_and_open(legacy_session):
    parent = legacy_session()
    legacy_session(parent_session=parent, ended_at=parent.started_at)
    assert list(Session.objects.with_children()) == [parent]
    assert list(Session.objects.open()) == [parent]


@pytest.mark.parametrize("column", ["source", "end_reason"])
def test_source_and_end_reason_are_exact_by_design(db, legacy_session, column):
    # Issue 23: KeyFields (binary no-pad collation on MySQL/MariaDB), so a plain filter, DISTINCT
    # and GROUP BY tell "cli", "CLI" and "cli " apart on every backend, with no workaround.
    for index, value in enumerate(["cli", "CLI", "cli "]):
        legacy_session(session_id=f"s{index}", **{column: value})
    assert list(Session.objects.filter(**{column: "cli"}).values_list("pk", flat=True)) == ["s0"]
    assert sorted(Session.objects.order_by().values_list(column, flat=True).distinct()) == ["CLI", "cli", "cli "]
    grouped = Session.objects.order_by().values(column).annotate(n=Count("pk"))
    assert sorted((row[column], row["n"]) for row in grouped) == [("CLI", 1), ("cli", 1), ("cli ", 1)]
