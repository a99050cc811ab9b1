"""Regressions found in review; expectations are computed here, never from the code under test."""

import datetime as dt

from agents_app.services import record_abandoned_agent
from sessions_app.analytics import abandoned_agent_rates
from sessions_app.models import Session
from sessions_app.pruning import prune_empty_sessions


def test_tally_keeps_sources_and_reasons_apart_that_differ_only_in_case_or_trailing_space(db):
    # MariaDB's default collation made the tally's upsert key treat "CLI", "cli" and "cli " (and
    # "timeout"/"Timeout") as one row, so agents were counted under another source and reason.
    day = dt.date(2026, 3, 9)
    recorded = [("CLI", "timeout"), ("cli", "timeout"), ("cli ", "Timeout"), ("cli", "Timeout"), ("cli", "timeout")]
    for source, reason in recorded:
        record_abandoned_agent("openai/gpt-5", source, reason, day=day)
    report = abandoned_agent_rates("source")
    assert {row.key: row.reasons for row in report.rows} == {
        "CLI": {"timeout": 1},
        "cli": {"timeout": 2, "Timeout": 1},
        "cli ": {"Timeout": 1},
    }
    assert abandoned_agent_rates("source", source="cli").total.abandoned == 3


def test_prune_by_source_deletes_only_that_exact_source(legacy_session):
    # On MariaDB, source="cli" also matched (and deleted) the empty sessions of "CLI" and "cli ".
    old = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for number, source in enumerate(["cli", "CLI", "cli "]):
        legacy_session(source=source, started_at=old, ended_at=old, session_id=f"empty_{number}")
    assert prune_empty_sessions(source="cli", dry_run=True).total_deleted == 1
    assert prune_empty_sessions(source="cli").total_deleted == 1
    assert sorted(Session.objects.values_list("source", flat=True)) == ["CLI", "cli "]
