"""Issue 17, items 15 and 16: hostile admin URLs end in 400 or an empty list, never a 500, on every
backend; CSV exports neutralise formula-like cells behind blanks and full-width operators."""

import csv
import io

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from sessions_app.admin.listing import MAX_SEARCH_CHARS
from sessions_app.analytics.rates import EmptySessionReport, RateRow
from sessions_app.reporting import csv_rows

SESSIONS = "/admin/sessions_app/session/"
NUL_URLS = [
    SESSIONS + "?source=%00",
    SESSIONS + "?end_reason=%00",
    SESSIONS + "?parent_session__exact=%00",
    SESSIONS + "?q=%00",
    SESSIONS + "?%00=1",
    "/admin/sessions_app/message/?session__exact=%00",
    "/admin/agents_app/languagemodel/?provider=%00",
    "/admin/agents_app/abandonedagenttally/?model__name=%00",
    "/admin/sessions_app/session/%00/change/",
    "/admin/sessions_app/message/%00/change/",
]
SEARCHABLE = [
    SESSIONS,
    "/admin/sessions_app/message/",
    "/admin/agents_app/languagemodel/",
    "/admin/agents_app/abandonedagenttally/",
]


@pytest.fixture
def world(legacy_session):
    legacy_session(session_id="s1", source="cli", title="hello")
    legacy_session(session_id="s2", source="telegram")


@pytest.mark.parametrize("url", NUL_URLS)
def test_nul_in_the_path_or_query_is_a_400(admin_client, world, url):
    response = admin_client.get(url)
    assert response.status_code == 400


def test_nul_is_refused_for_anonymous_requests_too(client, db):
    assert client.get("/admin/login/?next=%00").status_code == 400


def test_an_escaped_percent_is_not_a_nul(admin_client, world):
    assert admin_client.get(SESSIONS, {"q": "%00"}).status_code == 200


@pytest.mark.parametrize("url", SEARCHABLE)
def test_an_overlong_search_term_gives_an_empty_list_and_a_message(admin_client, world, url):
    response = admin_client.get(url, {"q": "a" * 100_000})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 0
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"The search term is 100,000 characters long; the limit is {MAX_SEARCH_CHARS}."
    ]


def test_many_words_within_the_limit_still_search(admin_client, world):
    term = " ".join(["hello"] * (MAX_SEARCH_CHARS // 6))  # 42 words: one condition each
    assert len(term) <= MAX_SEARCH_CHARS
    response = admin_client.get(SESSIONS, {"q": term})
    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == ["s1"]


# -- item 16: CSV formula neutralisation ---------------------------------------------------------

FORMULA_LIKE = [" =1+1", "\u00a0=2+2", "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20SUM(A1)", "\u3000=1", "\u200b=1", "=1"]
HARMLESS = ["openai/gpt-5", "a=1", "1-2", "(none)"]


def test_csv_neutralises_formulas_behind_blanks_and_full_width_operators():
    rows = [RateRow(key, 1, 0) for key in FORMULA_LIKE + HARMLESS]
    report = EmptySessionReport(by="model", filters={}, rows=rows, total=RateRow("TOTAL", len(rows), 0))
    keys = [row[0] for row in list(csv_rows(report))[1:-1]]
    assert keys == ["'" + key for key in FORMULA_LIKE] + HARMLESS


def test_admin_csv_export_neutralises_them(admin_client, legacy_session):
    for index, name in enumerate(FORMULA_LIKE[:3]):
        legacy_session(session_id=f"f{index}", model=name)
    url = reverse("admin:sessions_app_session_empty_rates")
    response = admin_client.get(url, {"format": "csv", "since": "2025-01-01", "until": "2027-01-01"})
    assert response.status_code == 200
    keys = {row[0] for row in csv.reader(io.StringIO(response.content.decode()))}
    assert {"'" + name for name in FORMULA_LIKE[:3]} <= keys
    assert not keys & set(FORMULA_LIKE)
