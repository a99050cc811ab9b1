"""The sessions admin: the session and message lists, their filters, and the analytics page.

- ``sessions``: ``SessionAdmin`` (with the analytics page's URL), ``MessageAdmin``;
- ``inlines``: the messages shown on a session's page;
- ``filters``: the changelist's list filters;
- ``views``: the empty-session analytics page and its CSV/JSON downloads; ``forms``: its filters;
- ``charts``: the page's server-side SVG charts;
- ``links``: URLs of the session and message lists;
- ``paginators``: counts that stay cheap on tables with millions of rows.
"""

from django.contrib import admin

from sessions_app.admin.inlines import INLINE_MESSAGES
from sessions_app.admin.links import message_changelist_url, session_change_url, session_changelist_url
from sessions_app.admin.sessions import MessageAdmin, SessionAdmin

# The admin index shows a link to the analytics page above the app list.
admin.site.index_template = "admin/sessions_app/index.html"

__all__ = [
    "INLINE_MESSAGES",
    "MessageAdmin",
    "SessionAdmin",
    "message_changelist_url",
    "session_change_url",
    "session_changelist_url",
]
