"""The apps' settings (agents_app.conf): defaults inside the apps, checked values, one clear error."""

import datetime as dt

import pytest
from django.core.exceptions import ImproperlyConfigured

from agents_app.conf import SETTINGS, check_hermes_settings, hermes_settings, value_from_environment


@pytest.fixture
def no_project_settings(settings):
    """A project that sets none of the HERMES_* names (the pytest-django fixture restores them)."""
    for name in SETTINGS:
        if hasattr(settings, name):
            delattr(settings, name)
    return settings


def test_every_setting_has_its_default_inside_the_apps(no_project_settings):
    assert hermes_settings.HERMES_MAX_CONTENT_CHARS == 4 * 1024 * 1024
    assert dt.timedelta(hours=24) == hermes_settings.HERMES_OPEN_GRACE
    assert hermes_settings.HERMES_TRACK_ABANDONED_AGENTS is True
    assert hermes_settings.HERMES_ABANDONED_TALLY_RETENTION_DAYS == 400
    assert hermes_settings.HERMES_METRICS_TOKEN == ""
    assert hermes_settings.HERMES_METRICS_MAX_MODELS == 50
    assert check_hermes_settings() == []


def test_a_project_value_is_read_and_follows_changes(settings):
    settings.HERMES_OPEN_GRACE = "90m"
    assert dt.timedelta(minutes=90) == hermes_settings.HERMES_OPEN_GRACE
    settings.HERMES_OPEN_GRACE = dt.timedelta(days=2)
    assert dt.timedelta(days=2) == hermes_settings.HERMES_OPEN_GRACE


@pytest.mark.parametrize(
    ("name", "value", "accepts"),
    [
        ("HERMES_MAX_CONTENT_CHARS", -5, "a whole number from 1 to 12582912"),
        ("HERMES_MAX_CONTENT_CHARS", True, "a whole number from 1 to 12582912"),
        ("HERMES_OPEN_GRACE", dt.timedelta(0), "a duration of more than 0"),
        ("HERMES_TRACK_ABANDONED_AGENTS", "maybe", "a boolean"),
        ("HERMES_METRICS_TOKEN", 42, "a string"),
    ],
)
def test_a_bad_project_value_is_one_clear_error(settings, name, value, accepts):
    setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=f"^{name} must be {accepts}"):
        getattr(hermes_settings, name)
    [error] = check_hermes_settings()
    assert error.id == "hermes.E001" and error.msg.startswith(f"{name} must be {accepts}")


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="not a hermes setting"):
        hermes_settings.HERMES_NO_SUCH_THING  # noqa: B018


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("HERMES_MAX_CONTENT_CHARS", " 1000 ", 1000),
        ("HERMES_TRACK_ABANDONED_AGENTS", "off", False),
        ("HERMES_TRACK_ABANDONED_AGENTS", "YES", True),
        ("HERMES_OPEN_GRACE", "1d12h", dt.timedelta(hours=36)),
        ("HERMES_METRICS_TOKEN", " secret ", "secret"),
    ],
)
def test_environment_text_is_checked_like_a_setting(name, text, value):
    assert value_from_environment(name, text) == value
