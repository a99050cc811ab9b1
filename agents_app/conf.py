"""The apps' own settings: every ``HERMES_*`` name, its default, and what it accepts.

A project that installs the apps sets none of these unless it wants another value; the apps
read them through ``hermes_settings`` (``hermes_settings.HERMES_OPEN_GRACE``), which takes the
project's value from ``django.conf.settings`` when there is one, checks it, and falls back to the
default below. A bad value raises ``ImproperlyConfigured`` naming the setting; the system check
``hermes.E001`` reports it at start-up (``manage.py check``, ``runserver``, ``migrate``), before
any request or command reads it. Values are cached until ``setting_changed`` (``override_settings``,
pytest-django's ``settings`` fixture) says a setting changed.

Like django-debug-toolbar's and django-extensions' settings modules, this is the only place
that knows the defaults: a project's settings module only gives the values it wants otherwise
(this repository's own maps environment variables to these names with ``value_from_environment``).
"""

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

# A message may take at most 12 MiB as sent (sessions_app.validation.MAX_MESSAGE_BYTES), so a
# larger content limit could never be reached.
MAX_CONTENT_CHARS_LIMIT = 12 * 1024 * 1024
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:\d+[smhdw])+")
_PART = re.compile(r"(\d+)([smhdw])")
_LONGEST_DURATION = dt.timedelta(days=3650)


def duration_from_text(text: str) -> dt.timedelta:
    """``30m``, ``24h``, ``7d``, ``2w``, combinations such as ``1d12h``, or plain seconds; a
    ``ValueError`` saying what is accepted otherwise (also for durations no date can hold)."""
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value)
    elif _DURATION.fullmatch(value):
        seconds = sum(int(n) * DURATION_UNITS[unit] for n, unit in _PART.findall(value))
    else:
        raise ValueError(f"{text!r} is not a duration; use e.g. 30m, 24h, 7d, 2w or seconds")
    try:
        return dt.timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is longer than any date range there is") from None


def _whole(minimum: int, maximum: int) -> Callable[[Any], int]:
    def check(value):
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,18}\s*", value):
            value = int(value)  # from the environment
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise ValueError(f"a whole number from {minimum} to {maximum}")
        return value

    return check


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _flag(value) -> bool:
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        value = value.strip().lower() in _TRUE  # from the environment
    if not isinstance(value, bool):
        raise ValueError("a boolean (True/False; in the environment 1/0, true/false, yes/no, on/off)")
    return value


def _token(value) -> str:
    """Visible ASCII (or empty): what an HTTP ``Authorization`` header can carry, byte for byte.
    Other text could never match what a client sends (Django reads headers as Latin-1)."""
    if not isinstance(value, str) or not all("!" <= char <= "~" for char in value.strip()):
        raise ValueError("a string of visible ASCII characters (letters, digits, punctuation; no spaces)")
    return value.strip()


def _duration(value) -> dt.timedelta:
    """A positive ``timedelta`` of at most ten years; a string such as ``24h`` or a number of seconds."""
    try:
        if isinstance(value, str):
            value = duration_from_text(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            value = dt.timedelta(seconds=value)
    except (ValueError, OverflowError):
        value = None
    if not isinstance(value, dt.timedelta) or not dt.timedelta(0) < value <= _LONGEST_DURATION:
        raise ValueError("a duration of more than 0 and at most 3650 days (a timedelta, or 30m, 24h, 7d, 2w, seconds)")
    return value


@dataclass(frozen=True)
class Setting:
    default: Any
    check: Callable[[Any], Any]
    help: str


SETTINGS: dict[str, Setting] = {
    "HERMES_MAX_CONTENT_CHARS": Setting(
        4 * 1024 * 1024,
        _whole(1, MAX_CONTENT_CHARS_LIMIT),
        "Largest message content (characters) the save path accepts; larger content is refused, never cut.",
    ),
    "HERMES_TRACK_ABANDONED_AGENTS": Setting(
        True, _flag, "Count agents that end without saving a message (agents_app.models.AbandonedAgentTally)."
    ),
    "HERMES_ABANDONED_TALLY_RETENTION_DAYS": Setting(
        400, _whole(0, 100_000), "Days of the abandoned-agent tally prune_empty_sessions keeps (0: all of it)."
    ),
    "HERMES_OPEN_GRACE": Setting(
        dt.timedelta(hours=24),
        _duration,
        "How long an open empty session may still speak: 'open' within it, 'never_ended' after.",
    ),
    "HERMES_METRICS_TOKEN": Setting(
        "", _token, "Bearer token for GET /metrics; empty: only a staff login with view_session may scrape."
    ),
    "HERMES_METRICS_MAX_MODELS": Setting(
        50, _whole(1, 100_000), "Model names /metrics exposes as labels (the first seen); later ones are 'other'."
    ),
    "HERMES_METRICS_MAX_SOURCES": Setting(
        20, _whole(1, 100_000), "Source names /metrics exposes as labels (the first seen); later ones are 'other'."
    ),
    "HERMES_METRICS_MAX_PROFILES": Setting(
        20, _whole(1, 100_000), "Profile names /metrics exposes as labels (the first seen); later ones are 'other'."
    ),
    "HERMES_METRICS_MAX_END_REASONS": Setting(
        20, _whole(1, 100_000), "End reasons /metrics exposes as labels (the first seen); later ones are 'other'."
    ),
}


class HermesSettings:
    """Attribute access to the checked value of each ``HERMES_*`` setting (``SETTINGS``)."""

    def __init__(self):
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in SETTINGS:
            raise AttributeError(f"{name} is not a hermes setting; known: {', '.join(SETTINGS)}")
        try:
            return self._cache[name]
        except KeyError:
            pass
        spec = SETTINGS[name]
        value = getattr(settings, name, spec.default)
        try:
            value = spec.check(value)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name} must be {exc}, got {value!r}.") from None
        self._cache[name] = value
        return value

    def clear(self, *, setting: str | None = None, **kwargs) -> None:
        """Forget the cached values (a ``setting_changed`` receiver)."""
        if setting is None or setting in SETTINGS:
            self._cache.clear()


hermes_settings = HermesSettings()
setting_changed.connect(hermes_settings.clear, dispatch_uid="hermes-settings-changed")


def value_from_environment(name: str, text: str):
    """The value of setting ``name`` given as text (an environment variable), checked as the apps
    check it; ``ImproperlyConfigured`` with one line naming the setting otherwise. For a project's
    settings module: ``HERMES_OPEN_GRACE = value_from_environment("HERMES_OPEN_GRACE", "7d")``."""
    try:
        return SETTINGS[name].check(text)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be {exc}, got {text!r}.") from None


def check_hermes_settings(app_configs=None, **kwargs) -> list:
    """System check ``hermes.E001``: each ``HERMES_*`` setting the project gives is one the apps accept."""
    errors = []
    for name in SETTINGS:
        try:
            getattr(hermes_settings, name)
        except ImproperlyConfigured as exc:
            errors.append(Error(str(exc), hint=SETTINGS[name].help, id="hermes.E001"))
    return errors
