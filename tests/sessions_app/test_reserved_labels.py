"""A model literally named like a bucket of the reports ("(none)", "other", "other models", "TOTAL")
is its own row, never merged with the bucket (issue 23): in the reports, the trend, the page and
its links, the abandoned-agent report, /metrics and the commands' tables."""

import csv
import datetime as dt
import io
import json
from collections import Counter
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.management import call_command
from django.urls import reverse

from agents_app.models import AbandonedAgentTally, LanguageModel
from sessions_app.analytics import (
    NO_MODEL_KEY,
    RESERVED_KEYS,
    abandoned_agent_rates,
    daily_counts,
    empty_session_rates,
    model_key,
    model_of_key,
)
from sessions_app.models import Message, Session
from tests.sessions_app.test_metrics import scrape

DAY = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
# (model name or None, sessions, of which empty); each name unlike any other's key.
MODELS = [
    (None, 3, 2),
    ("", 1, 1),  # '' is no model: one row with None
    ("(none)", 2, 1),
    ("other", 4, 1),
    ("other models", 1, 0),
    ("TOTAL", 2, 2),
    ('"quoted"', 1, 1),
    ("openai/gpt-5", 5, 0),
]
EXPECTED_KEYS = {
    NO_MODEL_KEY: (4, 3),
    '"(none)"': (2, 1),
    '"other"': (4, 1),
    '"other models"': (1, 0),
    '"TOTAL"': (2, 2),
    '""quoted""': (1, 1),
    "openai/gpt-5": (5, 0),
}


@pytest.fixture
def world(db):
    number = 0
    for name, sessions, empty in MODELS:
        model = LanguageModel.objects.get_or_create(name=name)[0] if name is not None else None
        for index in range(sessions):
            session = Session.objects.create(id=f"s{number:03d}", model=model, source="cli", started_at=DAY)
            number += 1
            if index >= empty:
                Message.objects.create(session=session, role="user", content="hi")
    for name in ("(none)", "other"):
        AbandonedAgentTally.objects.create(
            day=DAY.date(), model=LanguageModel.objects.get(name=name), source="cli", end_reason="timeout", count=3
        )


@pytest.mark.parametrize("name", ["(none)", "other", "other models", "TOTAL", '"x', '"', 'a"b', "x", "", None])
def test_model_keys_are_one_per_model_and_invert(name):
    key = model_key(name)
    assert model_of_key(key) == (name or None)
    assert (key in RESERVED_KEYS) is (not name)  # only no model gets a bucket's label


def test_the_per_model_report_keeps_each_model_apart(world):
    report = empty_session_rates("model")
    assert {row.key: (row.sessions, row.empty) for row in report.rows} == EXPECTED_KEYS
    assert (report.total.sessions, report.total.empty) == (19, 8)


def test_the_csv_has_one_total_row(world):
    buffer = io.StringIO()
    call_command("empty_sessions", "--format", "csv", stdout=buffer)
    keys = [row[0] for row in csv.reader(io.StringIO(buffer.getvalue()))][1:]
    assert Counter(keys)["TOTAL"] == 1 and keys[-1] == "TOTAL"
    assert set(keys[:-1]) == set(EXPECTED_KEYS)


def test_the_trend_keeps_each_model_apart(world):
    counts = Counter()
    for row in daily_counts(since=DAY, until=DAY + dt.timedelta(days=1)):
        counts[row.model] += row.sessions
    assert counts == {key: sessions for key, (sessions, _) in EXPECTED_KEYS.items()}


def test_the_abandoned_report_lines_up_with_the_sessions(world):
    rows = {row.key: (row.sessions, row.abandoned) for row in abandoned_agent_rates("model").rows}
    assert rows['"(none)"'] == (2, 3) and rows['"other"'] == (4, 3)
    assert rows[NO_MODEL_KEY] == (4, 0)


def test_the_page_links_each_row_to_its_own_sessions(admin_client, world):
    response = admin_client.get(reverse("admin:sessions_app_session_empty_rates"), {"since": "2026-03-01"})
    rows = {row["key"]: row for row in response.context["rows"]}
    assert set(rows) == set(EXPECTED_KEYS)
    for key, row in rows.items():
        query = parse_qs(urlparse(row["url"]).query)
        name = model_of_key(key)
        if name is None:
            assert query["model__isnull"] == ["True"]
        else:
            assert query["model__id__exact"] == [str(LanguageModel.objects.get(name=name).pk)]
        listed = admin_client.get(row["url"]).context["cl"].result_count
        # The no-model link lists the sessions without a model row; the one recorded as '' has one.
        assert listed == EXPECTED_KEYS[key][0] - (key == NO_MODEL_KEY)
    document = json.loads(
        admin_client.get(reverse("admin:sessions_app_session_empty_rates"), {"format": "json"}).content
    )
    assert {row["key"] for row in document["rows"]} == set(EXPECTED_KEYS)


def test_metrics_keep_a_model_named_other_apart_from_the_capped_rest(world, client, settings):
    settings.HERMES_METRICS_TOKEN = "t"
    # Agents per model (sessions + abandoned): "other" 7, "(none)" 5, gpt-5 5, the rest fewer.
    settings.HERMES_METRICS_MAX_MODELS = 3
    _, series = scrape(client, HTTP_AUTHORIZATION="Bearer t")
    sessions = {model: value for (model, _source, _profile), value in series["hermes_sessions"].items()}
    assert sessions == {'"other"': 4, '"(none)"': 2, "openai/gpt-5": 5, NO_MODEL_KEY: 4, "other": 1 + 2 + 1}
    abandoned = {model: value for (model, _s, _r), value in series["hermes_abandoned_agents_total"].items()}
    assert abandoned == {'"other"': 3, '"(none)"': 3}


def test_the_commands_tables_name_each_model_apart(world):
    old = DAY - dt.timedelta(days=10)
    Session.objects.update(started_at=old, ended_at=old)
    out = io.StringIO()
    call_command("prune_empty_sessions", "--dry-run", stdout=out)
    lines = out.getvalue()
    assert '"(none)"' in lines and f"  {NO_MODEL_KEY} " in lines


def test_the_page_model_filter_offers_each_model_by_its_name(admin_client, world):
    url = reverse("admin:sessions_app_session_empty_rates")
    html = admin_client.get(url).content.decode()
    select = html.split('<select name="model"')[1].split("</select>")[0]
    assert '<option value="other">other</option>' in select and "&quot;other&quot;" not in select
    assert '<option value="&quot;quoted&quot;">' in select  # a name that starts with a quote, as it is
    assert '<option value="(none)">(none)</option>' in select  # the model named "(none)", not "no model"
    document = json.loads(admin_client.get(url, {"model": "other", "format": "json"}).content)
    assert document["total"]["sessions"] == 4 and [row["key"] for row in document["rows"]] == ['"other"']
