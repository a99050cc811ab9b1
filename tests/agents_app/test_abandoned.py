"""The abandoned-agent tally: agents that end without a message are counted, not stored."""

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from agents_app.agent import Agent
from agents_app.models import AbandonedAgentTally
from agents_app.services import record_abandoned_agent
from sessions_app.models import Session

ROOT = Path(__file__).resolve().parents[2]


def tallies():
    return {
        (t.model.name, t.source, t.end_reason): t.count for t in AbandonedAgentTally.objects.select_related("model")
    }


def test_reasons_models_and_sources_are_recorded(db):
    Agent("a/one", "cli").end("timeout")
    Agent("a/one", "cli").end("timeout")
    Agent("a/one", "cli").end("api_error")
    Agent("b/two", "cron").end()
    with pytest.raises(ValueError), Agent("b/two", "telegram"):
        raise ValueError("boom before the first message")
    with Agent("b/two", "telegram"):
        pass
    assert tallies() == {
        ("a/one", "cli", "timeout"): 2,
        ("a/one", "cli", "api_error"): 1,
        ("b/two", "cron", "completed"): 1,
        ("b/two", "telegram", "error"): 1,
        ("b/two", "telegram", "completed"): 1,
    }
    assert AbandonedAgentTally.objects.filter(day=dt.datetime.now(dt.UTC).date()).count() == 5


def test_agents_that_spoke_never_touch_the_tally(db):
    agent = Agent("a/one")
    agent.add_message("user", "hi")
    agent.end("timeout")
    child_parent = Agent("a/one")
    child_parent.add_message("user", "x")
    child = child_parent.compress("summary")
    child.end()
    child_parent.end()  # already ended by compress: no second count
    assert AbandonedAgentTally.objects.count() == 0


def test_ending_twice_counts_once(db):
    agent = Agent("a/one")
    agent.end("timeout")
    agent.end("timeout")
    assert tallies() == {("a/one", "cli", "timeout"): 1}


def test_explicit_day_buckets(db):
    record_abandoned_agent("m", "cli", "timeout", day=dt.date(2026, 1, 1))
    record_abandoned_agent("m", "cli", "timeout", day=dt.date(2026, 1, 2))
    record_abandoned_agent("m", "cli", "timeout", day=dt.date(2026, 1, 2))
    assert dict(AbandonedAgentTally.objects.values_list("day", "count")) == {
        dt.date(2026, 1, 1): 1,
        dt.date(2026, 1, 2): 2,
    }


WORKER = """
import os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django
from django.conf import settings
settings.DATABASES["default"]["NAME"] = sys.argv[1]
django.setup()
from agents_app.agent import Agent
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
for i in range(int(sys.argv[3])):
    Agent("race/model", "cron").end("timeout" if i % 2 else "api_error")
"""


@pytest.mark.django_db(transaction=True)
def test_concurrent_processes_lose_no_increment():
    processes, per_process = 6, 40
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, connection.settings_dict["NAME"], str(start_at), str(per_process)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    assert tallies() == {
        ("race/model", "cron", "timeout"): processes * per_process // 2,
        ("race/model", "cron", "api_error"): processes * per_process // 2,
    }
    assert Session.objects.count() == 0
