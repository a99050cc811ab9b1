"""The LanguageModel changelist: per-model session counts, empty counts and rates, the sessions
read once whatever the number of models."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents_app import admin as agents_admin
from agents_app.agent import Agent
from agents_app.models import LanguageModel
from sessions_app.models import TrendMarker

URL = "/admin/agents_app/languagemodel/"
XSS = "<script>alert(1)</script>"


@pytest.fixture(autouse=True, params=["counted-once", "correlated"])
def shape(request, monkeypatch):
    """Both ways of annotating the counts: constants from one grouped query (the default), and
    the correlated counts used past MAX_CASE_MODELS models."""
    if request.param == "correlated":
        monkeypatch.setattr(agents_admin, "MAX_CASE_MODELS", 0)
    return request.param


def speak(model: str) -> str:
    agent = Agent(model, "cli")
    agent.add_message("user", "hi")
    agent.flush()
    return agent.session_id


@pytest.fixture
def models(legacy_session):
    """gpt: 4 sessions, 1 empty (25%); opus: 2 sessions, 2 empty (100%); xss: 1, 0 (0%); idle: none."""
    for _ in range(3):
        speak("openai/gpt-5")
    legacy_session("openai/gpt-5")
    legacy_session("anthropic/claude-opus-4.6")
    legacy_session("anthropic/claude-opus-4.6")
    speak("local/" + XSS)
    LanguageModel.objects.create(name="idle/never-used")


def rows(response):
    return [(m.name, m.session_count, m.empty_count) for m in response.context["cl"].result_list]


def test_counts_rates_and_links(admin_client, models):
    response = admin_client.get(URL)
    assert response.status_code == 200
    assert rows(response) == [
        ("anthropic/claude-opus-4.6", 2, 2),
        ("idle/never-used", 0, 0),
        ("local/" + XSS, 1, 0),
        ("openai/gpt-5", 4, 1),
    ]
    content = response.content.decode()
    # Every model here has fewer than MIN_SAMPLE sessions: its rate is greyed out. Under each rate,
    # its Wilson interval: 2 of 2, 1 of 4, 0 of 1 (by hand: 34.2-100%, 4.6-69.9%, 0-79.3%).
    for rate, interval in (("100.0%", "34.2\u2013100.0%"), ("25.0%", "4.6\u201369.9%"), ("0.0%", "0.0\u201379.3%")):
        assert re.search(
            f'<td class="field-empty_rate_percent"><span class="small-sample"[^>]*>{rate}'
            f'<span class="rate-interval">{interval}</span></span></td>',
            content,
        ), rate
    assert '<td class="field-empty_rate_percent">-</td>' in content  # idle: no sessions
    # No trend marker yet: no before/since columns.
    assert "field-before_marker" not in content and "field-since_marker" not in content
    assert XSS not in content and "&lt;script&gt;" in content
    gpt = LanguageModel.objects.get(name="openai/gpt-5")
    sessions_link = f"/admin/sessions_app/session/?model__id__exact={gpt.pk}"
    assert f'href="{sessions_link}"' in content
    assert f'href="{sessions_link}&amp;empty=yes"' in content
    listed = admin_client.get(sessions_link + "&empty=yes")
    assert len(listed.context["cl"].result_list) == 1


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("2", ["idle/never-used", "local/" + XSS, "anthropic/claude-opus-4.6", "openai/gpt-5"]),  # sessions
        ("-3", ["anthropic/claude-opus-4.6", "openai/gpt-5"]),  # empty sessions, most first
        ("-4", ["anthropic/claude-opus-4.6", "openai/gpt-5"]),  # empty rate, highest first
    ],
)
def test_sortable_by_each_count(admin_client, models, order, expected):
    # "o" counts list_display columns from 1 after the action checkbox (0): name 1, sessions 2, ...
    names = [name for name, *_ in rows(admin_client.get(URL, {"o": order}))]
    assert len(names) == 4  # no join multiplying the rows
    assert names[: len(expected)] == expected


def test_one_query_whatever_the_number_of_models(admin_client, legacy_session):
    legacy_session("a/1")
    admin_client.get(URL)  # warm the content-type cache
    with CaptureQueriesContext(connection) as few:
        admin_client.get(URL)
    for i in range(20):
        legacy_session(f"many/{i}", started_at=dt.datetime(2026, 2, 1 + i % 20, tzinfo=dt.UTC))
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(URL)
    assert len(response.context["cl"].result_list) == 21
    assert len(many) == len(few)
    # The sessions are read once per page (the rollup and a live count of the recent days), though
    # the provider filter asks for the queryset too.
    reading = [
        q
        for q in many.captured_queries
        if '"sessions_app_sessionday"' in q["sql"] or 'FROM "sessions_app_session"' in q["sql"]
    ]
    assert len(reading) <= 2
    # The page count and the provider filter never join the session table.
    counting = [q["sql"] for q in many.captured_queries if "__count" in q["sql"]]  # Django's .count()
    assert counting and all("sessions_app_session" not in sql for sql in counting)


def test_staff_without_permission_cannot_list(client, django_user_model, models):
    client.force_login(django_user_model.objects.create_user("staff", password="pw", is_staff=True))
    assert client.get(URL).status_code == 403


def test_other_admin_pages_do_not_count_sessions(admin_client, models):
    gpt = LanguageModel.objects.get(name="openai/gpt-5")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(f"{URL}{gpt.pk}/change/")
    assert response.status_code == 200
    assert not [q for q in queries.captured_queries if "sessions_app_session" in q["sql"]]


def test_before_and_since_the_latest_marker(admin_client, models):
    """With a trend marker, each model's rate before and since it, beside the all-time one."""
    TrendMarker.objects.create(at=timezone.now() + dt.timedelta(seconds=-1), label="fix")
    speak("anthropic/claude-opus-4.6")  # after the marker: 1 session, none empty
    response = admin_client.get(URL)
    content = response.content.decode()
    assert "before/since \u201cfix\u201d" in content
    opus = next(m for m in response.context["cl"].result_list if m.name == "anthropic/claude-opus-4.6")
    assert (opus.before_sessions, opus.before_empty, opus.since_sessions, opus.since_empty) == (2, 2, 1, 0)
    assert re.search(r'<td class="field-before_marker"><span [^>]*>100\.0%<span class="help"> of 2</span>', content)
    assert re.search(r'<td class="field-since_marker"><span [^>]*>0\.0%<span class="help"> of 1</span>', content)
