import datetime as dt
import itertools
import os

import pytest
from django.db import connection

from agents_app.models import LanguageModel
from sessions_app.models import Session

_ids = itertools.count(1)


def skip_or_fail(reason: str):
    """Skip where a resource is truly unavailable; fail instead in CI (HERMES_STRICT=1), which owns it."""
    if os.environ.get("HERMES_STRICT") == "1":
        pytest.fail(f"{reason} (HERMES_STRICT=1: CI must not skip this)")
    pytest.skip(reason)


@pytest.fixture
def vendor():
    return connection.vendor


@pytest.fixture
def legacy_session(db):
    """Create a session row directly, the way imported (pre-fix) history looks: possibly empty."""

    def make(model="openai/gpt-5", source="cli", started_at=None, session_id=None, **fields):
        lm = LanguageModel.objects.get_or_create(name=model)[0] if model else None
        return Session.objects.create(
            id=session_id or f"legacy_{next(_ids):06d}",
            model=lm,
            source=source,
            started_at=started_at or dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            **fields,
        )

    return make
