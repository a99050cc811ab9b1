"""A short run of bench/stress.py on the backend under test: real processes, exact invariants."""

import pytest
from django.db.models import Sum

from agents_app.models import AbandonedAgentTally
from bench.stress import StressResult, check, run_stress
from sessions_app.models import Message, Session

PROCESSES, AGENTS, BATCHES, PER_BATCH = 3, 12, 2, 3


@pytest.fixture
def stress_run(transactional_db):
    return run_stress(
        processes=PROCESSES,
        agents=AGENTS,
        batches=BATCHES,
        per_batch=PER_BATCH,
        shared=2,
        seed=7,
        timeout=240,
        settings_module="tests.settings",
    )


def test_short_stress_run_keeps_every_invariant(stress_run):
    result = stress_run
    assert result.errors == []
    assert result.violations == []
    # Independent of the checker: the database as a whole against the workers' own records.
    written = sum(len(e["contents"]) for r in result.records for e in r["sessions"].values())
    assert Message.objects.count() == written == result.messages
    assert not Session.objects.empty().exists()
    assert Session.objects.aggregate(n=Sum("message_count"))["n"] == written
    silent = sum(r["silent"] for r in result.records)
    assert (AbandonedAgentTally.objects.aggregate(n=Sum("count"))["n"] or 0) == silent
    # Every kind of agent ran, so each invariant was exercised.
    assert silent and result.compressions and result.shared_appends
    assert result.sessions == Session.objects.count()


def test_the_checker_reports_a_lost_message_and_a_wrong_counter(stress_run):
    assert stress_run.ok
    victim = Message.objects.filter(session__parent_session__isnull=True).order_by("id").first()
    victim.delete()
    Session.objects.filter(pk=victim.session_id).update(message_count=0)
    result = check(stress_run.records, StressResult(processes=PROCESSES, agents=AGENTS))
    assert any("1 messages lost" in v and victim.session_id in v for v in result.violations)
    assert any("message_count 0" in v and victim.session_id in v for v in result.violations)
    assert not result.ok
