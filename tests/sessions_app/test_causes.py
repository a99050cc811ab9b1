"""Why a session is empty: each cause's count per model, from a fixture whose spec gives them."""

import csv
import datetime as dt
import io
import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from agents_app.conf import value_from_environment
from agents_app.models import LanguageModel
from sessions_app.analytics import CAUSES, empty_cause_breakdown, empty_cause_counts, empty_session_rates
from sessions_app.models import Message, Session

GRACE = dt.timedelta(hours=24)
# Per model name (None: no model; "" the same): how many sessions of each kind to build.
SPEC = {
    "openai/gpt-5": {"lost_open": 2, "lost_ended": 1, "never_ended": 3, "open": 1, "ghost": 4, "spoke": 5},
    "google/gemini-3-pro": {"lost_open": 0, "lost_ended": 2, "never_ended": 0, "open": 2, "ghost": 1, "spoke": 2},
    None: {"lost_open": 1, "lost_ended": 0, "never_ended": 1, "open": 0, "ghost": 2, "spoke": 1},
    "": {"lost_open": 0, "lost_ended": 1, "never_ended": 2, "open": 1, "ghost": 1, "spoke": 1},
}
KIND_CAUSE = {"lost_open": "lost_transcript", "lost_ended": "lost_transcript"}


def expected_causes(spec) -> dict[str, dict[str, int]]:
    """Per report key, ``{cause: n}`` from the spec alone ("" and None both under "(none)")."""
    expected = {}
    for name, kinds in spec.items():
        causes = expected.setdefault(name or "(none)", dict.fromkeys(CAUSES, 0))
        for kind, n in kinds.items():
            if kind != "spoke":
                causes[KIND_CAUSE.get(kind, kind)] += n
    return expected


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def landscape(db, now):
    old, recent = now - 3 * GRACE, now - GRACE / 4
    number = 0
    for name, kinds in SPEC.items():
        model = None if name is None else LanguageModel.objects.get_or_create(name=name)[0]
        for kind, n in kinds.items():
            for _ in range(n):
                number += 1
                fields = {"started_at": old, "ended_at": old + dt.timedelta(minutes=5)}
                if kind == "lost_open":  # tokens, never ended, past the grace period: still lost
                    fields.update(ended_at=None, input_tokens=1200, output_tokens=30)
                elif kind == "lost_ended":
                    fields.update(api_call_count=2)
                elif kind == "never_ended":
                    fields.update(ended_at=None)
                elif kind == "open":
                    fields.update(started_at=recent, ended_at=None)
                session = Session.objects.create(id=f"s{number:04d}_{kind}", model=model, source="cli", **fields)
                if kind == "spoke":
                    Message.objects.create(session=session, role="user", content="hi")
    return expected_causes(SPEC)


def test_each_cause_counted_per_model(landscape, now):
    assert empty_cause_counts("model", now=now, grace=GRACE) == landscape


def test_by_cause_rows_and_total(landscape, now):
    report = empty_session_rates("cause", now=now, grace=GRACE)
    sessions = sum(sum(kinds.values()) for kinds in SPEC.values())
    per_cause = {cause: sum(causes[cause] for causes in landscape.values()) for cause in CAUSES}
    assert [row.key for row in report.rows] == sorted(CAUSES)
    assert {row.key: row.empty for row in report.rows} == per_cause
    assert all(row.sessions == sessions for row in report.rows)
    assert report.total.sessions == sessions and report.total.empty == sum(per_cause.values())


def test_breakdown_is_two_queries_and_matches_the_spec(landscape, now, django_assert_num_queries):
    with django_assert_num_queries(2):  # the rollup's state (none here), and one live read with the causes
        breakdown = empty_cause_breakdown("model", now=now, grace=GRACE)
    # Sessions and empty sessions per model from the spec alone ("" and None both under "(none)").
    counts = {}
    for name, kinds in SPEC.items():
        total, empty = counts.get(name or "(none)", (0, 0))
        counts[name or "(none)"] = (total + sum(kinds.values()), empty + sum(kinds.values()) - kinds["spoke"])
    assert {row.key: (row.sessions, row.empty) for row in breakdown.rows} == counts
    assert breakdown.causes == landscape
    for row in breakdown.rows:
        assert sum(breakdown.causes[row.key].values()) == row.empty
    with django_assert_num_queries(2):
        empty_session_rates("cause", now=now, grace=GRACE)


def test_empty_and_null_model_are_one_row(landscape):
    keys = [row.key for row in empty_session_rates("model").rows]
    assert keys.count("(none)") == 1 and "" not in keys
    none = next(row for row in empty_session_rates("model").rows if row.key == "(none)")
    assert none.sessions == sum(SPEC[None].values()) + sum(SPEC[""].values())


def test_of_cause_matches_the_counts(landscape, now):
    for cause in CAUSES:
        expected = sum(causes[cause] for causes in landscape.values())
        assert Session.objects.of_cause(cause, now=now, grace=GRACE).count() == expected
    with pytest.raises(ValueError, match="unknown cause"):
        Session.objects.of_cause("haunted")


@pytest.mark.parametrize(
    ("fields", "cause"),
    [
        ({"ended_at": None, "reasoning_tokens": 5}, "lost_transcript"),  # tokens beat "never ended"
        ({"ended_at": None, "message_count": 3}, "lost_transcript"),  # counted messages, no rows
        ({"ended_at": None}, "never_ended"),
        ({"ended_at": None, "started_at": "at_cutoff"}, "open"),  # the grace period is inclusive
        ({}, "ghost"),
        ({"cache_write_tokens": 1}, "lost_transcript"),
    ],
)
def test_precedence(db, now, fields, cause):
    started = now - 2 * GRACE
    if fields.get("started_at") == "at_cutoff":
        fields["started_at"] = now - GRACE
    Session.objects.create(id="one", source="cli", **{"started_at": started, "ended_at": started, **fields})
    counts = empty_cause_counts("source", now=now, grace=GRACE)["cli"]
    assert counts == {c: int(c == cause) for c in CAUSES}


def test_command_by_cause_and_breakdown(landscape, settings):
    settings.HERMES_OPEN_GRACE = GRACE
    out = io.StringIO()
    call_command("empty_sessions", "--by", "cause", "--format", "json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["by"] == "cause"
    assert {row["key"]: row["empty"] for row in data["rows"]} == {
        cause: sum(c[cause] for c in landscape.values()) for cause in CAUSES
    }
    out = io.StringIO()
    call_command("empty_sessions", "--by", "model", "--breakdown", "cause", "--format", "json", stdout=out)
    data = json.loads(out.getvalue())
    assert {row["key"]: row["causes"] for row in data["rows"]} == landscape
    assert set(data["total"]) == {"sessions", "empty", "rate", "rate_low", "rate_high", "causes"}
    out = io.StringIO()
    call_command("empty_sessions", "--breakdown", "cause", "--format", "csv", stdout=out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["model", "sessions", "empty", "rate", "rate_low", "rate_high", *CAUSES]
    assert {r[0]: dict(zip(CAUSES, map(int, r[6:]), strict=True)) for r in rows[1:-1]} == landscape
    out = io.StringIO()
    call_command("empty_sessions", "--breakdown", "cause", stdout=out)
    assert "never_ended" in out.getvalue() and "(none)" in out.getvalue()
    with pytest.raises(CommandError, match="--breakdown"):
        call_command("empty_sessions", "--by", "cause", "--breakdown", "cause")
    with pytest.raises(CommandError, match="unknown grouping"):
        call_command("empty_sessions", "--by", "cause", "--include-abandoned")


def test_admin_page_and_changelist_filter(landscape, admin_client, settings):
    settings.HERMES_OPEN_GRACE = GRACE
    page = admin_client.get(reverse("admin:sessions_app_session_empty_rates"))
    assert page.status_code == 200
    assert b"Why empty" in page.content
    rows = {row["key"]: row for row in page.context["cause_rows"]}
    assert {
        key: {c: cell["count"] for c, cell in zip(CAUSES, row["causes"], strict=True)} for key, row in rows.items()
    } == landscape
    for cause in CAUSES:
        listing = admin_client.get(reverse("admin:sessions_app_session_changelist"), {"cause": cause})
        assert listing.status_code == 200
        assert listing.context["cl"].result_count == sum(c[cause] for c in landscape.values())


@pytest.mark.parametrize(("value", "seconds"), [("90", 90), ("30m", 1800), ("1d12h", 129600)])
def test_open_grace_setting(value, seconds):
    assert value_from_environment("HERMES_OPEN_GRACE", value) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["", "soon", "0", "-5m", "24x"])
def test_bad_open_grace_is_a_clear_error(value):
    with pytest.raises(ImproperlyConfigured, match=r"^HERMES_OPEN_GRACE must be a duration"):
        value_from_environment("HERMES_OPEN_GRACE", value)
