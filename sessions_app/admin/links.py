"""Links into the session and message lists, with the admin's own quoting and filter parameters."""

from urllib.parse import quote, urlencode

from django.contrib.admin.utils import quote as admin_quote
from django.urls import reverse


def message_changelist_url(session_id: str) -> str:
    """The message list of one session, in order."""
    return reverse("admin:sessions_app_message_changelist") + "?session__exact=" + quote(session_id, safe="")


def session_change_url(session_id: str) -> str:
    """The change page of a session. The admin escapes "_XX" sequences in primary keys, which our
    ids (``20261130_2215...``) contain, so the id is quoted the way the admin's own links are."""
    return reverse("admin:sessions_app_session_change", args=[admin_quote(session_id)])


def session_changelist_url(**params) -> str:
    """The session list with the given changelist filters (e.g. ``model__id__exact=3, empty="yes"``)."""
    return reverse("admin:sessions_app_session_changelist") + ("?" + urlencode(params) if params else "")
