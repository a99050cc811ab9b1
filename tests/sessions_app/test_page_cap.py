"""The analytics page renders at most ``PAGE_ROWS`` models per table, the rest summed in one row,
and lists sources only while they are few; the downloads keep every model (issue 23: 10,000 models
and 5,000 sources made a 17 MB page)."""

import csv
import datetime as dt
import io
import json

import pytest
from django.urls import reverse

from agents_app.models import AbandonedAgentTally, LanguageModel
from sessions_app.admin import rates_page as page
from sessions_app.models import Message, Session, TrendMarker

URL = reverse("admin:sessions_app_session_empty_rates")
DAY = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
# Model i has i + 1 sessions, i of them empty (rate i / (i + 1): the higher i, the higher the rate).
MODELS = 7
SHOWN = 3


@pytest.fixture
def world(db, monkeypatch):
    monkeypatch.setattr(page, "PAGE_ROWS", SHOWN)
    number = 0
    for i in range(MODELS):
        model = LanguageModel.objects.create(name=f"m{i}")
        for j in range(i + 1):
            session = Session.objects.create(id=f"s{number:03d}", model=model, source=f"src{i}", started_at=DAY)
            number += 1
            if j >= i:
                Message.objects.create(session=session, role="user", content="hi")
        AbandonedAgentTally.objects.create(day=DAY.date(), model=model, source="cli", end_reason="timeout", count=i + 1)


def test_each_table_shows_the_first_models_and_sums_the_rest(admin_client, world):
    response = admin_client.get(URL, {"since": "2026-03-01", "until": "2026-03-03"})
    context = response.context
    # By rate, highest first: m6, m5, m4 shown; m3..m0 summed (sessions 4+3+2+1, empty 3+2+1+0).
    assert [row["key"] for row in context["rows"]] == ["m6", "m5", "m4"]
    assert context["rows_rest"] == {"models": 4, "sessions": 10, "empty": 6, "rate": "60.0%"}
    assert [row["key"] for row in context["cause_rows"]] == ["m6", "m5", "m4"]  # m0 has no empty session
    assert context["cause_rest"]["models"] == 3 and context["cause_rest"]["empty"] == 6
    assert sum(context["cause_rest"]["causes"]) == 6
    assert len(context["abandoned_rows"]) == SHOWN
    assert context["abandoned_rest"]["models"] == MODELS - SHOWN
    html = response.content.decode()
    assert "4 other models" in html and "3 other models" in html
    assert html.count('class="rest-row"') == 3


def test_the_downloads_keep_every_model(admin_client, world):
    rows = list(csv.reader(io.StringIO(admin_client.get(URL, {"format": "csv"}).content.decode())))
    assert sorted(row[0] for row in rows[1:-1]) == [f"m{i}" for i in range(MODELS)]
    document = json.loads(admin_client.get(URL, {"format": "json"}).content)
    assert len(document["rows"]) == MODELS


def test_few_models_have_no_rest_row(admin_client, world, monkeypatch):
    monkeypatch.setattr(page, "PAGE_ROWS", MODELS)
    context = admin_client.get(URL).context
    assert len(context["rows"]) == MODELS and context["rows_rest"] is None
    assert 'class="rest-row"' not in admin_client.get(URL).content.decode()


def test_many_sources_become_a_text_box_for_the_exact_name(admin_client, world, monkeypatch):
    monkeypatch.setattr(page, "MAX_LISTED_CHOICES", MODELS - 1)  # 7 sources: too many to list
    response = admin_client.get(URL, {"source": "src3", "format": "json"})
    assert json.loads(response.content)["total"]["sessions"] == 4
    html = admin_client.get(URL).content.decode()
    assert '<input type="text" name="source"' in html and '<option value="src3"' not in html
    assert "7 sources, too many to list" in html
    unknown = admin_client.get(URL, {"source": "no such source"})
    assert unknown.status_code == 200 and "No sessions match these filters" in unknown.content.decode()


def test_few_sources_are_a_list(admin_client, world):
    html = admin_client.get(URL).content.decode()
    assert '<select name="source"' in html and '<option value="src3">' in html


def test_with_a_marker_the_rest_row_has_its_before_and_since(admin_client, world):
    TrendMarker.objects.create(at=DAY + dt.timedelta(hours=12), label="cut")  # every session before it
    response = admin_client.get(URL, {"since": "2026-03-01", "until": "2026-03-03"})
    rest = response.context["rows_rest"]
    assert (rest["before"]["sessions"], rest["before"]["empty"], rest["before"]["rate"]) == (10, 6, "60.0%")
    assert rest["since"]["sessions"] == 0
    row = response.content.decode().split('class="rest-row"')[1].split("</tr>")[0]
    assert row.count("window-col") == 2 and "60.0%" in row


def test_many_models_become_a_text_box_too(admin_client, world, monkeypatch):
    monkeypatch.setattr(page, "MAX_LISTED_CHOICES", MODELS - 1)
    html = admin_client.get(URL).content.decode()
    assert '<input type="text" name="model"' in html and "7 models, too many to list" in html
    response = admin_client.get(URL, {"model": "m3", "format": "json"})
    assert json.loads(response.content)["total"]["sessions"] == 4
