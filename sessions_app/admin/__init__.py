"""The sessions admin, split by concept:

- ``records``: the records agents wrote (``SessionAdmin``, ``MessageAdmin``, the session page's
  messages and per-model usage) and the ``TrendMarkerAdmin`` operators write;
- ``listing``: what every changelist of ours shares (cheap counts, exact-value filters, links into
  the session and message lists);
- ``rates_page``: the empty-session analytics page (its filters, HTML, JSON and CSV; its numbers
  come from ``analytics.page``);
- ``charts``: server-side SVG charts, a colour per model, the trend's layout.

Every admin is hardened (bounded search, dates and numbers in range, impossible action selections
refused) by ``sessions_app.admin_site.HardenedAdminMixin``, as every admin on the site is.
"""

from django.contrib import admin

from sessions_app.admin.listing import message_changelist_url, session_change_url, session_changelist_url
from sessions_app.admin.records import INLINE_MESSAGES, MessageAdmin, SessionAdmin, TrendMarkerAdmin

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
