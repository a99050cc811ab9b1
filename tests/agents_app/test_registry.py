"""The model registry follows renames and deletes made by other processes at once (issue 23): a
long-lived agent process never files a session of one name under a row renamed to another."""

import pytest

from agents_app.agent import Agent
from agents_app.models import AbandonedAgentTally, LanguageModel
from agents_app.registry import language_model_id
from agents_app.services import record_abandoned_agent
from sessions_app.models import Message, Session
from sessions_app.services import append_messages, compress_session
from tests.other_process import run_elsewhere

RENAME = """
from agents_app.models import LanguageModel
model = LanguageModel.objects.get(name="openai/gpt-4")
model.name = "openai/gpt-4-legacy"  # as the admin's change form saves it
model.save()
"""

DELETE = """
from agents_app.models import LanguageModel
from sessions_app.models import Session
Session.objects.filter(model__name="openai/gpt-4").delete()
LanguageModel.objects.filter(name="openai/gpt-4").delete()
"""


def _said(agent: Agent, text: str) -> None:
    agent.add_message("user", text)
    agent.flush()


@pytest.mark.django_db(transaction=True)
def test_a_rename_in_another_process_is_followed_by_the_next_flush():
    talking = Agent("openai/gpt-4", "cli")  # an agent of a long-lived process, before and after
    _said(talking, "before the rename")
    renamed = LanguageModel.objects.get(name="openai/gpt-4")
    run_elsewhere(RENAME)
    newcomer = Agent("openai/gpt-4", "cli")
    _said(newcomer, "a new session after the rename")
    _said(talking, "after the rename")
    current = LanguageModel.objects.get(name="openai/gpt-4")
    assert current.pk != renamed.pk
    assert LanguageModel.objects.get(pk=renamed.pk).name == "openai/gpt-4-legacy"
    assert Session.objects.get(pk=newcomer.session_id).model_id == current.pk
    # The older session keeps its row (renamed with it); its new message records the name in use.
    assert Session.objects.get(pk=talking.session_id).model_id == renamed.pk
    models = dict(Message.objects.filter(session_id=talking.session_id).values_list("content", "model_id"))
    assert models == {"before the rename": renamed.pk, "after the rename": current.pk}


@pytest.mark.django_db(transaction=True)
def test_a_delete_in_another_process_is_followed_by_the_next_flush():
    _said(Agent("openai/gpt-4", "cli"), "filed under the first row")
    first = language_model_id("openai/gpt-4")
    run_elsewhere(DELETE)
    assert not LanguageModel.objects.filter(pk=first).exists()
    session, created = append_messages("after", [{"role": "user", "content": "hi"}], model="openai/gpt-4", source="cli")
    assert created and session.model.name == "openai/gpt-4" and session.model_id != first
    child = compress_session("after", child_session_id="child", summary="so far", model="openai/gpt-4", source="cli")
    assert child.model_id == session.model_id


@pytest.mark.django_db(transaction=True)
def test_the_abandoned_agent_tally_follows_a_rename():
    record_abandoned_agent("openai/gpt-4", "cli", "timeout")
    run_elsewhere(RENAME)
    record_abandoned_agent("openai/gpt-4", "cli", "timeout")
    counts = dict(AbandonedAgentTally.objects.values_list("model__name", "count"))
    assert counts == {"openai/gpt-4-legacy": 1, "openai/gpt-4": 1}
