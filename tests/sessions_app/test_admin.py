"""The session/message admin and the empty-session analytics page, through Django's test client.

The fixture ``world`` is built from known truth: sessions with messages come from the ``Agent``
(the real save path), empty ones from ``legacy_session`` (imported history). The expected numbers
below are counted from that construction, never computed by the code under test.
"""

import csv
import datetime as dt
import io
import json
import re

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents_app.agent import Agent
from agents_app.models import LanguageModel
from sessions_app.admin import INLINE_MESSAGES
from sessions_app.admin import listing as paginators
from sessions_app.analytics import empty_session_rates
from sessions_app.models import Message, Session
from sessions_app.pruning import EmptyDeletion, delete_empty_sessions
from sessions_app.querysets import SessionQuerySet
from sessions_app.services import append_messages
from tests.sessions_app.test_analytics import checked

RATES_URL = "/admin/sessions_app/session/empty-rates/"
CHANGELIST_URL = "/admin/sessions_app/session/"
GPT, OPUS, XSS, FORMULA = "openai/gpt-5", "anthropic/claude-opus-4.6", "<script>alert(1)</script>", "=cmd|' /C calc'!A0"


def day(d: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, 1, d, hour, tzinfo=dt.UTC)


def command_part(document: dict) -> dict:
    """The keys of ``manage.py empty_sessions --format json`` in the page's JSON (which adds more,
    and gives each per-model row its ``before`` and ``since`` windows too)."""
    part = {key: document[key] for key in ("by", "filters", "total", "rows")}
    part["rows"] = [{k: v for k, v in row.items() if k not in ("before", "since")} for row in part["rows"]]
    return part


def speak(model, started_at, *, source="cli", messages=1, **kwargs) -> str:
    """A session created the way our agents create them: by saving its messages."""
    agent = Agent(model, source, **kwargs)
    agent.started_at = started_at
    for i in range(messages):
        agent.add_message("user" if i % 2 == 0 else "assistant", f"message {i}", timestamp=started_at)
    agent.flush()
    agent.end()
    return agent.session_id


def build_world(legacy_session) -> dict[str, list[str]]:
    """12 sessions, 8 of them empty.

    model        sessions  empty  by UTC day (sessions/empty)
    openai/gpt-5        5      2  Jan 5: 2/1, Jan 6: 2/1, Jan 12: 1/0
    claude-opus-4.6     4      3  Jan 5: 2/2 (cli + telegram), Jan 6: 1/0 (telegram), Jan 13: 1/1
    (none)              1      1  Jan 7
    <script>...         1      1  Jan 12 (title with HTML)
    =cmd|...            1      1  Jan 12 (a spreadsheet formula)
    Source: telegram for one full and one empty claude session (Jan 6, Jan 5), cli for the rest.
    By day: Jan 5: 4/3, Jan 6: 3/1, Jan 7: 1/1, Jan 12: 3/2, Jan 13: 1/1.
    By week (Monday): Jan 5: 8/5, Jan 12: 4/3.
    """
    ids = {
        "gpt_full": [speak(GPT, day(5), messages=3), speak(GPT, day(6)), speak(GPT, day(12))],
        "opus_full": [speak(OPUS, day(6), source="telegram", messages=2)],
    }
    ids["gpt_empty"] = [legacy_session(GPT, started_at=day(5)).pk, legacy_session(GPT, started_at=day(6)).pk]
    ids["opus_empty"] = [
        legacy_session(OPUS, started_at=day(5)).pk,
        legacy_session(OPUS, source="telegram", started_at=day(5), end_reason="timeout", ended_at=day(5, 11)).pk,
        legacy_session(OPUS, started_at=day(13)).pk,
    ]
    ids["none_empty"] = [legacy_session(None, started_at=day(7)).pk]
    ids["odd_empty"] = [
        legacy_session(XSS, started_at=day(12), title="<img src=x onerror=alert(2)>").pk,
        legacy_session(FORMULA, started_at=day(12)).pk,
    ]
    ids["empty"] = ids["gpt_empty"] + ids["opus_empty"] + ids["none_empty"] + ids["odd_empty"]
    ids["full"] = ids["gpt_full"] + ids["opus_full"]
    return ids


@pytest.fixture
def world(legacy_session):
    return build_world(legacy_session)


def change_url(session_id: str) -> str:
    """The admin's own form of a change-page URL: the pk quoted with ``admin.utils.quote``."""
    return reverse("admin:sessions_app_session_change", args=[quote(session_id)])


def grant(user, *codenames):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def staff_client(client, django_user_model):
    """A logged-in staff user without any permission; tests grant what they need."""
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    client.user = user
    return client


def result_ids(response) -> set[str]:
    return {session.pk for session in response.context["cl"].result_list}


# --- session changelist -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "all"),
        ({"empty": "yes"}, "empty"),
        ({"empty": "no"}, "full"),
        ({"source": "telegram"}, "telegram"),
        ({"end_reason": "timeout"}, "timeout"),
        ({"started_at__gte": "2026-01-12 00:00:00+00:00", "started_at__lt": "2026-01-13 00:00:00+00:00"}, "jan12"),
        ({"q": "onerror"}, "title"),
    ],
)
def test_changelist_filters(admin_client, world, params, expected):
    truth = {
        "all": set(world["empty"] + world["full"]),
        "empty": set(world["empty"]),
        "full": set(world["full"]),
        "telegram": {world["opus_full"][0], world["opus_empty"][1]},
        "timeout": {world["opus_empty"][1]},
        "jan12": {world["gpt_full"][2], *world["odd_empty"]},
        "title": {world["odd_empty"][0]},
    }
    response = admin_client.get(CHANGELIST_URL, params)
    assert response.status_code == 200
    assert result_ids(response) == truth[expected]


def test_changelist_model_filter_and_exact_id_search(admin_client, world):
    opus = LanguageModel.objects.get(name=OPUS)
    response = admin_client.get(CHANGELIST_URL, {"model__id__exact": opus.pk, "empty": "yes"})
    assert result_ids(response) == set(world["opus_empty"])
    target = world["gpt_full"][1]
    assert result_ids(admin_client.get(CHANGELIST_URL, {"q": target})) == {target}
    assert result_ids(admin_client.get(CHANGELIST_URL, {"q": target[:-1]})) == set()  # exact, not a substring


def test_changelist_newest_first_and_escaped(admin_client, world):
    response = admin_client.get(CHANGELIST_URL)
    starts = [session.started_at for session in response.context["cl"].result_list]
    assert starts == sorted(starts, reverse=True)
    assert starts[0] == day(13)
    content = response.content.decode()
    assert XSS not in content and "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "<img src=x" not in content
    assert reverse("admin:sessions_app_session_empty_rates") in content  # the object-tools link


def _sessions(n, start=0):
    model = LanguageModel.objects.create(name=f"bulk/model-{start}")
    Session.objects.bulk_create(
        Session(id=f"bulk_{start + i:05d}", model=model, source="cli", started_at=day(1) + dt.timedelta(minutes=i))
        for i in range(n)
    )


def test_changelist_queries_do_not_grow_with_rows(admin_client, db):
    _sessions(10)
    with CaptureQueriesContext(connection) as ten:
        assert admin_client.get(CHANGELIST_URL).status_code == 200
    _sessions(90, start=10)
    with CaptureQueriesContext(connection) as hundred:
        response = admin_client.get(CHANGELIST_URL)
    assert len(response.context["cl"].result_list) == 100
    # session, user, count, rows, model/source/profile/end_reason filter choices; not counted: the
    # savepoint that guards the test's transaction on PostgreSQL (none is sent outside one).
    ten, hundred = _without_savepoints(ten), _without_savepoints(hundred)
    assert len(hundred) == len(ten) <= 9
    # show_full_result_count = False: one COUNT (the filtered one), never a second full count.
    assert sum("COUNT(" in q["sql"].upper() for q in hundred) <= 1


def _without_savepoints(captured) -> list[dict]:
    return [q for q in captured.captured_queries if "SAVEPOINT" not in q["sql"].upper()]


def test_planner_estimate_replaces_count_on_unfiltered_postgres_list(admin_client, db, monkeypatch, vendor):
    _sessions(7)
    monkeypatch.setattr(paginators, "EXACT_COUNT_BELOW", 0)
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Session._meta.db_table}")
    with CaptureQueriesContext(connection) as unfiltered:
        response = admin_client.get(CHANGELIST_URL)
    assert response.context["cl"].result_count == 7
    counted = any("COUNT(" in q["sql"].upper() for q in unfiltered.captured_queries)
    assert counted is (vendor != "postgresql")
    with CaptureQueriesContext(connection) as filtered:
        response = admin_client.get(CHANGELIST_URL, {"empty": "yes"})
    assert response.context["cl"].result_count == 7
    assert any("COUNT(" in q["sql"].upper() for q in filtered.captured_queries)


# --- session change page ------------------------------------------------------------------------


def test_change_page_caps_inline_messages_and_links_the_rest(admin_client, db):
    n = INLINE_MESSAGES + 15
    start = day(3)
    msgs = [{"role": "user", "content": f"<b>m{i}</b>", "timestamp": start + dt.timedelta(seconds=i)} for i in range(n)]
    append_messages("big", msgs, model=GPT, source="cli")
    append_messages("small", msgs[:3], model=GPT, source="cli")
    admin_client.get(reverse("admin:sessions_app_session_change", args=["small"]))  # warms the content-type cache
    with CaptureQueriesContext(connection) as small:
        admin_client.get(reverse("admin:sessions_app_session_change", args=["small"]))
    with CaptureQueriesContext(connection) as big:
        response = admin_client.get(reverse("admin:sessions_app_session_change", args=["big"]))
    assert response.status_code == 200
    assert len(big) == len(small)  # no query per message
    formset = message_formset(response)
    shown = [form.instance.content for form in formset.forms]
    assert shown == [f"<b>m{i}</b>" for i in range(INLINE_MESSAGES)]  # the first ones, in order
    content = response.content.decode()
    assert "&lt;b&gt;m0&lt;/b&gt;" in content and "<b>m0</b>" not in content
    assert f"all {n} in the message list" in content
    message_list = reverse("admin:sessions_app_message_changelist") + "?session__exact=big"
    assert message_list in content
    listed = admin_client.get(message_list)
    assert [m.content for m in listed.context["cl"].result_list] == [f"<b>m{i}</b>" for i in range(n)]
    assert "Messages of session" in listed.content.decode()
    assert "message_count" in response.context["adminform"].readonly_fields


def test_change_page_links_parent_and_children(admin_client, db):
    agent = Agent(GPT, "cli")
    agent.add_message("user", "hello")
    child = agent.compress("summary so far")
    page = admin_client.get(change_url(agent.session_id)).content.decode()
    assert change_url(child.session_id) in page
    page = admin_client.get(change_url(child.session_id)).content.decode()
    assert change_url(agent.session_id) in page


def test_ids_holding_admin_escape_sequences_open_and_link(admin_client, db):
    # "_22", "_40", "_5F"... are escapes for the admin ('"', "@", "_"); an agent id made at 22:40
    # contains them. Every link we render must survive the admin's unquote().
    parent, child = "20261130_224059_22405fab", "20261130_232540_5f3a2f0a"
    stamp = dt.datetime(2026, 11, 30, 22, 40, 59, tzinfo=dt.UTC)
    append_messages(parent, [{"role": "user", "content": "hi", "timestamp": stamp}], model=GPT, source="cli")
    append_messages(
        child,
        [{"role": "user", "content": "more", "timestamp": stamp}],
        model=GPT,
        source="cli",
        parent_session_id=parent,
    )
    page = admin_client.get(change_url(parent))
    assert page.status_code == 200 and page.context["original"].pk == parent
    assert change_url(child) in page.content.decode()
    page = admin_client.get(change_url(child))
    assert page.status_code == 200 and page.context["original"].pk == child
    assert change_url(parent) in page.content.decode()
    listed = admin_client.get(reverse("admin:sessions_app_message_changelist"), {"session__exact": child})
    assert change_url(child) in listed.content.decode()


# --- the delete action --------------------------------------------------------------------------


def _act(client, ids, action="delete_selected_empty_sessions"):
    return client.post(CHANGELIST_URL, {"action": action, "_selected_action": ids}, follow=True)


def test_action_deletes_only_the_empty_sessions_of_the_selection(admin_client, world):
    messages_before = Message.objects.count()
    selected = world["gpt_empty"] + world["gpt_full"]
    response = _act(admin_client, selected)
    assert "Deleted 2 empty session(s); kept 3 because they have messages." in response.content.decode()
    remaining = set(Session.objects.values_list("pk", flat=True))
    assert remaining == (set(world["empty"]) | set(world["full"])) - set(world["gpt_empty"])
    assert Message.objects.count() == messages_before


def test_action_checks_again_under_the_lock(world, monkeypatch):
    # As if messages were committed between the EXISTS that picked the candidates and the lock:
    # the candidate query sees every session as empty; the check under the lock must keep them.
    monkeypatch.setattr(SessionQuerySet, "empty", lambda self: self)
    chosen = world["gpt_full"] + world["gpt_empty"]
    result = delete_empty_sessions(Session.objects.filter(pk__in=chosen))
    assert result == EmptyDeletion(deleted=2, kept_with_messages=3, kept_with_children=0)
    assert set(Session.objects.filter(pk__in=chosen).values_list("pk", flat=True)) == set(world["gpt_full"])
    assert Message.objects.filter(session_id__in=world["gpt_full"]).count() == 5


def test_action_keeps_empty_sessions_that_children_continue(admin_client, legacy_session):
    parent = legacy_session(GPT, started_at=day(2))
    child = legacy_session(GPT, started_at=day(3), parent_session=parent)
    response = _act(admin_client, [parent.pk, child.pk])
    content = response.content.decode()
    assert "Deleted 1 empty session(s); kept 0 because they have messages." in content
    assert "Also kept 1 empty session(s) that child sessions continue." in content
    assert list(Session.objects.values_list("pk", flat=True)) == [parent.pk]


def test_action_needs_delete_permission(staff_client, world):
    grant(staff_client.user, "view_session")
    response = _act(staff_client, world["empty"])
    assert response.status_code == 200
    assert Session.objects.count() == 12
    grant(staff_client.user, "delete_session")
    _act(staff_client, world["empty"])
    assert set(Session.objects.values_list("pk", flat=True)) == set(world["full"])


# --- the analytics page: access -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["", "json", "csv"])
def test_anonymous_and_non_staff_go_to_the_login(client, django_user_model, db, fmt):
    url = RATES_URL + (f"?format={fmt}" if fmt else "")
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.force_login(django_user_model.objects.create_user("plain", password="pw"))
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("fmt", ["", "json", "csv"])
def test_staff_without_view_session_is_forbidden(staff_client, world, fmt):
    grant(staff_client.user, "view_message", "view_languagemodel", "change_message")
    assert staff_client.get(RATES_URL, {"format": fmt} if fmt else {}).status_code == 403


def test_staff_with_view_only_sees_the_page_but_no_delete_action(staff_client, world):
    grant(staff_client.user, "view_session")
    response = staff_client.get(RATES_URL)
    assert response.status_code == 200
    assert response.context["report"].total.sessions == 12
    changelist = staff_client.get(CHANGELIST_URL)
    assert "delete_selected_empty_sessions" not in changelist.content.decode()


def test_index_links_to_the_page_for_those_allowed(admin_client, staff_client, db):
    url = reverse("admin:sessions_app_session_empty_rates")
    assert url == RATES_URL
    assert url in admin_client.get("/admin/").content.decode()
    assert url in admin_client.get("/admin/sessions_app/").content.decode()
    grant(staff_client.user, "view_message")
    assert url not in staff_client.get("/admin/").content.decode()


# --- the analytics page: numbers ----------------------------------------------------------------


def _table(response):
    return {row["key"]: (row["sessions"], row["empty"], row["rate"]) for row in response.context["rows"]}


def test_page_numbers(admin_client, world):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(RATES_URL)
    assert response.status_code == 200
    assert _table(response) == {
        GPT: (5, 2, "40.0%"),
        OPUS: (4, 3, "75.0%"),
        "(none)": (1, 1, "100.0%"),
        XSS: (1, 1, "100.0%"),
        FORMULA: (1, 1, "100.0%"),
    }
    assert response.context["total_rate"] == "66.7%"  # 8 of 12
    # Sorted by rate, highest first; the most empty sessions is claude (3).
    assert [row["key"] for row in response.context["rows"]][-2:] == [OPUS, GPT]
    assert response.context["worst"]["key"] == OPUS
    content = response.content.decode()
    assert "66.7%" in content and XSS not in content and "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    # session, user, source and profile choices, first session (the default bucket), the daily
    # rollup's state and its days, trend (the per-model table is summed from it), model ids,
    # abandoned-agent tally per model and per bucket, causes, markers, and now-versus-before
    # (sessions and tally for each of two windows): a fixed number, no query per model or per day
    # (test_page_queries_do_not_grow_with_models).
    assert len(queries) <= 18


@pytest.mark.parametrize(
    "params, filters",
    [
        ({}, {}),
        ({"bucket": "week"}, {}),
        (
            {"since": "2026-01-06", "until": "2026-01-12", "source": "cli"},
            {"since": dt.date(2026, 1, 6), "until": dt.date(2026, 1, 12), "source": "cli"},
        ),
        (
            {"since": "2026-01-12T00:00:00Z", "source": "telegram"},
            {"since": dt.datetime(2026, 1, 12, tzinfo=dt.UTC), "source": "telegram"},
        ),
    ],
)
def test_page_table_is_the_per_model_report(admin_client, world, params, filters):
    """The page sums its per-model table from the trend query: it must be the report the command
    and ?format=json give for the same filters, row for row and in total."""
    response = admin_client.get(RATES_URL, params)
    expected = empty_session_rates("model", **filters).as_dict()
    assert response.context["report"].as_dict() == expected
    assert command_part(json.loads(admin_client.get(RATES_URL, {**params, "format": "json"}).content)) == expected
    assert sum(row["sessions"] for row in response.context["trend_rows"]) == expected["total"]["sessions"]


def test_page_queries_do_not_grow_with_models(admin_client, legacy_session):
    legacy_session("a/1", started_at=day(1))
    with CaptureQueriesContext(connection) as one:
        admin_client.get(RATES_URL)
    for i in range(12):
        legacy_session(f"m/{i}", started_at=day(1 + i % 20))
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(RATES_URL)
    assert len(response.context["rows"]) == 13
    assert len(many) == len(one)


def test_page_filters(admin_client, world):
    response = admin_client.get(RATES_URL, {"since": "2026-01-06", "until": "2026-01-12", "source": "cli"})
    assert _table(response) == {GPT: (2, 1, "50.0%"), "(none)": (1, 1, "100.0%")}
    response = admin_client.get(RATES_URL, {"source": "telegram"})
    assert _table(response) == {OPUS: (2, 1, "50.0%")}
    response = admin_client.get(RATES_URL, {"since": "2026-01-12T00:00:00Z"})
    assert _table(response) == {
        GPT: (1, 0, "0.0%"),
        OPUS: (1, 1, "100.0%"),
        XSS: (1, 1, "100.0%"),
        FORMULA: (1, 1, "100.0%"),
    }


def test_drill_down_links_open_the_matching_sessions(admin_client, world):
    response = admin_client.get(RATES_URL, {"until": "2026-01-12", "source": "cli"})
    row = next(row for row in response.context["rows"] if row["key"] == OPUS)
    assert result_ids(admin_client.get(row["empty_url"])) == {world["opus_empty"][0]}
    none_row = next(row for row in response.context["rows"] if row["key"] == "(none)")
    assert result_ids(admin_client.get(none_row["url"])) == set(world["none_empty"])
    assert result_ids(admin_client.get(response.context["total_empty_url"])) == {
        world["gpt_empty"][0],
        world["gpt_empty"][1],
        world["opus_empty"][0],
        world["none_empty"][0],
    }


@pytest.mark.parametrize(
    ("bucket", "expected"),
    [
        (
            "day",
            [
                ("2026-01-05", 4, 3),
                ("2026-01-06", 3, 1),
                ("2026-01-07", 1, 1),
                ("2026-01-12", 3, 2),
                ("2026-01-13", 1, 1),
            ],
        ),
        ("week", [("2026-01-05", 8, 5), ("2026-01-12", 4, 3)]),
    ],
)
def test_trend_table_and_chart(admin_client, world, bucket, expected):
    response = admin_client.get(RATES_URL, {"bucket": bucket})
    rows = [(row["bucket"], row["sessions"], row["empty"]) for row in response.context["trend_rows"]]
    assert rows == expected
    # The total trend is the command's --by day/week report.
    out = io.StringIO()
    call_command("empty_sessions", "--by", bucket, "--format", "json", stdout=out)
    assert rows == [(r["key"], r["sessions"], r["empty"]) for r in json.loads(out.getvalue())["rows"]]
    svg = re.search(r"<svg class=\"trend-chart\".*?</svg>", response.content.decode(), re.S).group(0)
    assert 'role="img"' in svg and "aria-label=" in svg and "<title>" in svg and "<desc>" in svg
    # One path for all models, one per model with sessions (top 5 by sessions): 5 models here.
    assert len(re.findall(r"<path class=\"series ", svg)) == 1 + 5
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_trend_has_gaps_for_days_without_sessions(admin_client, world):
    response = admin_client.get(RATES_URL, {"bucket": "day"})
    svg = re.search(r"<svg class=\"trend-chart\".*?</svg>", response.content.decode(), re.S).group(0)
    total = re.search(r'<path class="series total" d="([^"]+)"', svg).group(1)
    # Jan 5, 6, 7 drawn as one stroke; Jan 8-11 without sessions; Jan 12, 13 a second stroke.
    assert [cmd[0] for cmd in total.split()] == ["M", "L", "L", "M", "L"]
    # openai/gpt-5 has sessions on Jan 5, 6 and 12: one stroke, then a lone dot.
    gpt = re.findall(r'<path class="series model model-c\d" d="([^"]+)"', svg)[0]
    assert [cmd[0] for cmd in gpt.split()] == ["M", "L", "M", "h"]


def test_empty_database(admin_client, db):
    response = admin_client.get(RATES_URL)
    assert response.status_code == 200
    assert "No sessions recorded yet." in response.content.decode()
    data = checked(command_part(json.loads(admin_client.get(RATES_URL, {"format": "json"}).content)))
    assert data["total"] == {"sessions": 0, "empty": 0, "rate": 0}


# --- the analytics page: downloads and bad input ------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{}, {"since": "2026-01-06", "source": "cli"}, {"until": "2026-01-12T12:00:00+01:00", "sort": "sessions"}],
)
def test_json_is_the_commands_json(admin_client, world, params):
    response = admin_client.get(RATES_URL, {**params, "format": "json"})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    out = io.StringIO()
    args = [f"--{name}={value}" for name, value in params.items()]
    call_command("empty_sessions", "--format", "json", *args, stdout=out)
    assert command_part(json.loads(response.content)) == json.loads(out.getvalue())


def test_json_numbers(admin_client, world):
    data = checked(
        command_part(json.loads(admin_client.get(RATES_URL, {"format": "json", "since": "2026-01-06"}).content))
    )
    assert data["total"] == {"sessions": 8, "empty": 5, "rate": 5 / 8}
    assert data["filters"]["since"] == "2026-01-06T00:00:00+00:00"
    assert {row["key"]: (row["sessions"], row["empty"]) for row in data["rows"]} == {
        GPT: (3, 1),
        OPUS: (2, 1),
        "(none)": (1, 1),
        XSS: (1, 1),
        FORMULA: (1, 1),
    }


def test_csv_download(admin_client, world):
    response = admin_client.get(RATES_URL, {"format": "csv", "source": "cli"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    # The command's columns, then the windows before and since the latest marker (empty: none).
    assert rows[0][:6] == ["model", "sessions", "empty", "rate", "rate_low", "rate_high"]
    assert rows[0][6:] == [f"{side}_{c}" for side in ("before", "since") for c in rows[0][1:6]]
    assert all(cell == "" for row in rows[1:] for cell in row[6:])
    assert {row[0]: (row[1], row[2]) for row in rows[1:]} == {
        "(none)": ("1", "1"),
        "<script>alert(1)</script>": ("1", "1"),
        "'" + FORMULA: ("1", "1"),  # neutralised: a spreadsheet shows it as text
        OPUS: ("2", "2"),
        GPT: ("5", "2"),
        "TOTAL": ("10", "7"),
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-01-10", "until": "2026-01-10"}, "until"),
        ({"since": "2026-01-10", "until": "2026-01-09"}, "until"),
        ({"source": "<script>alert(1)</script>"}, "source"),
        ({"source": "' OR 1=1 --"}, "source"),
        ({"bucket": "year"}, "bucket"),
        ({"sort": "rate; DROP TABLE x"}, "sort"),
    ],
)
def test_bad_input_shows_form_errors(admin_client, world, params, field):
    response = admin_client.get(RATES_URL, params)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert response.context["report"] is None
    content = response.content.decode()
    assert 'class="errorlist rates-errors"' in content
    assert "<script>alert(1)</script>" not in content
    assert Session.objects.count() == 12


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_bad_input_for_downloads_is_a_400(admin_client, world, fmt):
    response = admin_client.get(RATES_URL, {"format": fmt, "since": "soon", "source": "<b>"})
    assert response.status_code == 400
    if fmt == "json":
        errors = json.loads(response.content)["errors"]
        assert set(errors) == {"since", "source"}
    else:
        assert response["Content-Type"].startswith("text/plain")
        assert response.content.decode().startswith("since: invalid date 'soon'")


def test_trend_rows_link_to_their_sessions(admin_client, world):
    response = admin_client.get(RATES_URL, {"since": "2026-01-06", "source": "cli", "bucket": "day"})
    rows = {row["bucket"]: row for row in response.context["trend_rows"]}
    assert result_ids(admin_client.get(rows["2026-01-12"]["empty_url"])) == set(world["odd_empty"])
    week = admin_client.get(RATES_URL, {"since": "2026-01-06", "bucket": "week"})
    first_week = week.context["trend_rows"][0]
    assert (first_week["bucket"], first_week["sessions"], first_week["empty"]) == ("2026-01-05", 4, 2)
    # The week's link keeps the page's since: Jan 6 and 7 only, not Jan 5.
    assert result_ids(admin_client.get(first_week["empty_url"])) == {world["gpt_empty"][1], *world["none_empty"]}


def test_dates_past_the_calendar_are_form_errors(admin_client, world):
    response = admin_client.get(RATES_URL, {"until": "9999-12-31T23:00:00-05:00"})
    assert response.status_code == 200
    assert "out of range" in response.context["form"].errors["until"][0]
    assert admin_client.get(RATES_URL, {"until": "9999-12-31T23:00:00-05:00", "format": "json"}).status_code == 400


def test_a_stray_old_session_does_not_draw_decades_of_days(admin_client, legacy_session):
    legacy_session(GPT, started_at=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    legacy_session(GPT, started_at=day(5))
    response = admin_client.get(RATES_URL, {"bucket": "day"})
    assert response.status_code == 200
    assert [row["bucket"] for row in response.context["trend_rows"]] == ["1970-01-01", "2026-01-05"]
    assert response.context["chart"] == ""
    assert "too many to draw" in response.context["chart_note"]
    narrowed = admin_client.get(RATES_URL, {"since": "2026-01-01", "bucket": "day"})
    assert narrowed.context["chart"] and not narrowed.context["chart_note"]


def test_sources_are_escaped_in_the_form(admin_client, legacy_session):
    legacy_session(GPT, source="<script>alert(3)</script>", started_at=day(5))
    response = admin_client.get(RATES_URL, {"source": "<script>alert(3)</script>"})
    content = response.content.decode()
    assert "<script>alert(3)" not in content and "&lt;script&gt;alert(3)&lt;/script&gt;" in content
    assert response.context["report"].total.sessions == 1


def test_view_only_staff_sees_a_session_read_only(staff_client, world):
    url = change_url(world["gpt_full"][0])
    grant(staff_client.user, "view_session")
    response = staff_client.get(url)
    assert response.status_code == 200
    assert response.context["inline_admin_formsets"] == []  # messages need their own view permission
    grant(staff_client.user, "view_message")
    response = staff_client.get(url)
    assert [form.instance.content for form in message_formset(response).forms] == [
        "message 0",
        "message 1",
        "message 2",
    ]
    assert 'name="_save"' not in response.content.decode()


def test_message_changelist_queries_do_not_grow_with_rows(admin_client, db):
    msgs = [{"role": "user", "content": f"m{i}", "timestamp": day(2) + dt.timedelta(seconds=i)} for i in range(100)]
    append_messages("s", msgs[:10], model=GPT, source="cli")
    url = reverse("admin:sessions_app_message_changelist")
    admin_client.get(url)  # warms the content-type cache
    with CaptureQueriesContext(connection) as ten:
        admin_client.get(url)
    append_messages("s", msgs[10:], model=GPT, source="cli")
    with CaptureQueriesContext(connection) as hundred:
        response = admin_client.get(url)
    assert len(response.context["cl"].result_list) == 100
    assert [m.content for m in response.context["cl"].result_list][:2] == ["m99", "m98"]  # newest first
    assert len(hundred) == len(ten)


def test_filtered_changelist_counts_at_most_the_cap(admin_client, db, monkeypatch):
    """Counting every empty session of a large table is slow; past the cap the list stops counting."""
    _sessions(7)  # all empty
    monkeypatch.setattr(paginators, "FILTERED_COUNT_CAP", 5)
    response = admin_client.get(CHANGELIST_URL, {"empty": "yes"})
    assert response.context["cl"].result_count == 6  # the cap, plus one: "more than 5"
    monkeypatch.setattr(paginators, "FILTERED_COUNT_CAP", 7)
    response = admin_client.get(CHANGELIST_URL, {"empty": "yes"})
    assert response.context["cl"].result_count == 7  # within the cap: exact
    monkeypatch.setattr(paginators, "FILTERED_COUNT_CAP", 5)
    response = admin_client.get(CHANGELIST_URL)
    assert response.context["cl"].result_count == 7  # unfiltered lists are not capped


def test_end_reason_filter_choices_read_an_index(admin_client, db, vendor):
    """The end_reason filter's choices are a DISTINCT over every session, on each changelist load."""
    if vendor != "sqlite":
        pytest.skip("SQLite's plan is checked; it skips along the index from one value to the next")
    _sessions(3)
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(CHANGELIST_URL)
    distinct = 'DISTINCT "sessions_app_session"."end_reason"'
    [choices] = [q["sql"] for q in queries.captured_queries if distinct in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + choices)
        plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
    assert "COVERING INDEX session_end_reason_started" in plan, plan


def test_source_and_end_reason_filters_are_exact_on_every_backend(admin_client, legacy_session):
    # MariaDB's default collation would list "CLI" and "cli" as one choice and match both.
    ids = {
        (source, reason): legacy_session(source=source, end_reason=reason).pk
        for source, reason in [("cli", "timeout"), ("CLI", "Timeout"), ("cli ", "timeout")]
    }
    url = reverse("admin:sessions_app_session_changelist")
    response = admin_client.get(url)
    filters = {
        spec.title: [choice["display"] for choice in spec.choices(response.context["cl"])]
        for spec in response.context["cl"].filter_specs
    }
    assert filters["source"] == ["All", "CLI", "cli", "cli "]
    assert filters["end reason"] == ["All", "Timeout", "timeout"]
    assert result_ids(admin_client.get(url, {"source": "cli"})) == {ids["cli", "timeout"]}
    assert result_ids(admin_client.get(url, {"end_reason": "timeout"})) == {
        ids["cli", "timeout"],
        ids["cli ", "timeout"],
    }


def message_formset(response):
    """The session page's message inline (beside its per-model usage inline)."""
    [formset] = [f.formset for f in response.context["inline_admin_formsets"] if f.formset.model is Message]
    return formset
