"""One rule for model names, wherever they come from (issue 23): the admin's form refuses what the
save path refuses (a newline, a control character, a NUL), with the same function deciding."""

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from agents_app.fields import validate_identifier
from agents_app.models import LanguageModel
from sessions_app.services import append_messages
from sessions_app.validation import check_identifier

ADD = "/admin/agents_app/languagemodel/add/"
REFUSED = ["openai/gpt-5\n", "a\nb", "a\rb", "tab\there", "\x1b[31mred", "a\x85b", "a\x7fb"]


@pytest.mark.parametrize("name", REFUSED)
def test_the_admin_refuses_a_name_the_save_path_refuses(admin_client, db, name):
    response = admin_client.post(ADD, {"name": name, "provider": ""})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"] == ["The name must not contain control characters."]
    assert not LanguageModel.objects.exists()
    with pytest.raises(ValidationError, match="control characters"):
        append_messages("s", [{"role": "user", "content": "hi"}], model=name, source="cli")
    assert not LanguageModel.objects.exists()


def test_the_admin_refuses_a_rename_to_such_a_name(admin_client, db):
    model = LanguageModel.objects.create(name="openai/gpt-5")
    response = admin_client.post(f"/admin/agents_app/languagemodel/{model.pk}/change/", {"name": "gpt\n5"})
    assert response.status_code == 200
    assert LanguageModel.objects.get().name == "openai/gpt-5"


def test_a_name_both_accept_is_saved_by_both(admin_client, db):
    assert admin_client.post(ADD, {"name": "vendor/model v2 🙂", "provider": ""}).status_code == 302
    session, _ = append_messages("s", [{"role": "user", "content": "hi"}], model="vendor/model v2 🙂", source="cli")
    assert session.model == LanguageModel.objects.get()


def test_the_field_uses_the_save_paths_rule():
    assert validate_identifier in LanguageModel._meta.get_field("name").validators


@given(st.text(min_size=1, max_size=12))
def test_the_validator_and_the_save_path_agree_on_every_name(name):
    try:
        validate_identifier(name)
        admitted = True
    except ValidationError:
        admitted = False
    try:
        check_identifier(name, "model", max_length=255)
        saved = True
    except ValidationError:
        saved = False
    assert admitted is saved


def test_the_admin_keeps_a_name_exactly_as_typed(admin_client, db):
    assert admin_client.post(ADD, {"name": " padded ", "provider": ""}).status_code == 302
    assert LanguageModel.objects.get().name == " padded "  # as the save path would store it
