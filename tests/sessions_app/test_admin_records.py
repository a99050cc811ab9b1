"""Sessions, messages and the abandoned-agent tally are records in the admin: viewed, and deleted
with the permission, never added or edited; the session page and list read well."""

import datetime as dt
import re

import pytest
from django.urls import reverse

from agents_app.models import AbandonedAgentTally, LanguageModel
from agents_app.services import record_abandoned_agent
from sessions_app.models import Message, Session
from tests.sessions_app.test_admin import GPT, build_world, change_url, grant, speak

SESSION_ADD = reverse("admin:sessions_app_session_add")
MESSAGE_ADD = reverse("admin:sessions_app_message_add")
TALLY_LIST = reverse("admin:agents_app_abandonedagenttally_changelist")


@pytest.fixture
def world(legacy_session):
    return build_world(legacy_session)


@pytest.fixture
def staff_client(client, django_user_model):
    """A logged-in staff user without any permission; tests grant what they need."""
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    client.user = user
    return client


def message_change_url(message) -> str:
    return reverse("admin:sessions_app_message_change", args=[message.pk])


@pytest.mark.parametrize("url", [SESSION_ADD, MESSAGE_ADD])
def test_nobody_adds_a_session_or_a_message(admin_client, db, url):
    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"id": "by-hand", "source": "cli", "role": "user"}).status_code == 403
    assert Session.objects.count() == 0 and Message.objects.count() == 0


def test_superuser_sees_records_read_only_and_posts_are_refused(admin_client, world):
    session = Session.objects.get(pk=world["gpt_full"][0])
    page = admin_client.get(change_url(session.pk))
    content = page.content.decode()
    assert page.status_code == 200 and 'name="_save"' not in content and "Add session" not in content
    response = admin_client.post(change_url(session.pk), {"source": "edited", "title": "edited"})
    assert response.status_code == 403
    message = Message.objects.filter(session=session).first()
    assert admin_client.get(message_change_url(message)).status_code == 200
    assert admin_client.post(message_change_url(message), {"content": "edited"}).status_code == 403
    session.refresh_from_db()
    message.refresh_from_db()
    assert session.source == "cli" and message.content == "message 0"
    changelist = admin_client.get(reverse("admin:sessions_app_session_changelist")).content.decode()
    assert SESSION_ADD not in changelist


def test_view_permission_views_and_delete_permission_deletes(staff_client, world):
    session_id = world["gpt_full"][1]
    url = change_url(session_id)
    assert staff_client.get(url).status_code == 403
    grant(staff_client.user, "view_session", "view_message")
    assert staff_client.get(url).status_code == 200
    assert staff_client.post(url, {"source": "x"}).status_code == 403
    delete_url = reverse("admin:sessions_app_session_delete", args=[session_id])
    assert staff_client.post(delete_url, {"post": "yes"}).status_code == 403
    grant(staff_client.user, "delete_session", "delete_message")
    assert staff_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not Session.objects.filter(pk=session_id).exists()
    message = Message.objects.first()
    message_delete = reverse("admin:sessions_app_message_delete", args=[message.pk])
    assert staff_client.post(message_delete, {"post": "yes"}).status_code == 302
    assert not Message.objects.filter(pk=message.pk).exists()


def test_tally_is_viewed_and_deleted_one_row_at_a_time(staff_client, db):
    record_abandoned_agent(GPT, "cli", "timeout", day=dt.date(2026, 1, 5))
    tally = AbandonedAgentTally.objects.get()
    grant(staff_client.user, "view_abandonedagenttally")
    response = staff_client.get(TALLY_LIST)
    assert response.status_code == 200
    assert 'name="action"' not in response.content.decode()  # no bulk delete action
    change = reverse("admin:agents_app_abandonedagenttally_change", args=[tally.pk])
    assert staff_client.post(change, {"count": "99"}).status_code == 403
    assert staff_client.get(reverse("admin:agents_app_abandonedagenttally_add")).status_code == 403
    grant(staff_client.user, "delete_abandonedagenttally")
    assert staff_client.get(TALLY_LIST).context["cl"].model_admin.get_actions(staff_client.request) == {}
    delete = reverse("admin:agents_app_abandonedagenttally_delete", args=[tally.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 302
    assert not AbandonedAgentTally.objects.exists()
    # Dates in ISO form, as everywhere in the admin.
    record_abandoned_agent(GPT, "cli", "timeout", day=dt.date(2026, 1, 5))
    assert "2026-01-05" in staff_client.get(TALLY_LIST).content.decode()


def test_session_page_names_the_model_labels_units_and_explains_the_counter(admin_client, legacy_session):
    session = legacy_session(
        GPT,
        started_at=dt.datetime(2026, 1, 5, 10, 4, 5, tzinfo=dt.UTC),
        ended_at=dt.datetime(2026, 1, 5, 10, 9, tzinfo=dt.UTC),
        message_count=4,  # hermes-agent's own counter; no message row was imported
        api_call_count=3,
        estimated_cost_usd="0.0125000000",
    )
    content = admin_client.get(change_url(session.pk)).content.decode()
    model = LanguageModel.objects.get(name=GPT)
    assert f'href="{reverse("admin:agents_app_languagemodel_change", args=[model.pk])}">{GPT}</a>' in content
    assert "Estimated cost (USD):" in content and "Actual cost (USD):" in content and "API calls:" in content
    assert "usd" not in content.lower().replace("(usd)", "") and "Api call" not in content
    assert "0.0125" in content
    assert "The stored message count says 4" in content
    assert "2026-01-05 10:04:05" in content and "2026-01-05 10:09:00" in content
    assert "a.m." not in content and "Jan." not in content
    exact = speak(GPT, dt.datetime(2026, 1, 6, tzinfo=dt.UTC), messages=2)
    assert "The stored message count" not in admin_client.get(change_url(exact)).content.decode()


def test_changelist_puts_the_narrow_columns_first_and_cuts_long_text(admin_client, legacy_session):
    long_model = "openrouter/qwen/qwen3-coder-480b-a35b-instruct:free"
    long_title = "Refactor the importer so it streams rows instead of loading the whole file " * 2
    legacy_session(long_model, title=long_title, started_at=dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC))
    response = admin_client.get(reverse("admin:sessions_app_session_changelist"))
    content = response.content.decode()
    headers = re.findall(r'<th scope="col" class="([^"]*column-[^"]*)"', content)
    columns = [re.search(r"column-(\w+)", h).group(1) for h in headers]
    assert columns.index("has_messages") < columns.index("model_name")
    assert columns.index("message_count") < columns.index("model_name")
    assert f'title="{long_model}"' in content and "openrouter/qw…" in content
    assert f'title="{long_title.strip()}"' in content or f'title="{long_title}"' in content
    assert long_title not in re.sub(r'title="[^"]*"', "", content)  # shown cut, full only on hover
    assert "2026-01-05 09:00" in content


def test_an_empty_sessions_page_says_no_messages_and_names_its_cause(admin_client, legacy_session):
    ended = legacy_session(session_id="ghostly", ended_at=dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC))
    response = admin_client.get(reverse("admin:sessions_app_session_change", args=[ended.pk]))
    page = response.content.decode()
    assert "No messages" in page and "this session is empty" in page
    assert 'class="empty-cause">ghost</a>' in page
    assert reverse("admin:sessions_app_session_changelist") + "?cause=ghost" in page
    assert "messages (the first" not in page  # no empty message table
    with_usage = legacy_session(session_id="lost", input_tokens=10)
    page = admin_client.get(reverse("admin:sessions_app_session_change", args=[with_usage.pk])).content.decode()
    assert 'class="empty-cause">lost_transcript</a>' in page and "?cause=lost_transcript" in page
