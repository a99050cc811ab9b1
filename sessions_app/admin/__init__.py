"""The sessions admin: the session and message lists, their filters, and the analytics page.

- ``sessions``: ``SessionAdmin`` (with the analytics page's URL); ``messages``: ``MessageAdmin``;
  ``inlines``: the session page's messages; ``markers``: ``TrendMarkerAdmin`` (each
  hardened by ``sessions_app.admin_site.HardenedAdminMixin``, as every admin on the site is);
- ``filters``: the changelist's list filters;
- ``views``: the empty-session analytics page; ``page_data``: its numbers; ``page``: its HTML
  context; ``exports``: its CSV/JSON downloads; ``forms``: its filters;
- ``charts``: server-side SVG charts; ``trend``: the page's trend chart; ``colours``: a colour per model;
- ``links``: URLs of the session and message lists;
- ``paginators``: counts that stay cheap on tables with millions of rows.
"""

from django.contrib import admin

from sessions_app.admin.inlines import INLINE_MESSAGES
from sessions_app.admin.links import message_changelist_url, session_change_url, session_changelist_url
from sessions_app.admin.markers import TrendMarkerAdmin
from sessions_app.admin.messages import MessageAdmin
from sessions_app.admin.sessions import SessionAdmin

# The admin index shows a link to the analytics page above the app list, unless the project gave
# the admin site an index template of its own.
if admin.site.index_template is None:
    admin.site.index_template = "admin/sessions_app/index.html"

__all__ = [
    "INLINE_MESSAGES",
    "MessageAdmin",
    "SessionAdmin",
    "TrendMarkerAdmin",
    "message_changelist_url",
    "session_change_url",
    "session_changelist_url",
]
