"""Request-level hardening: what a request may carry, and what a debug error page may show.

``RejectNulMiddleware`` answers 400 to a NUL character in the path or the query string, for every
view at once: PostgreSQL cannot take NUL in a text parameter (a 500 from any admin filter or
object URL given ``%00``), and no URL of ours has a use for one.

``SecretsHidingReporterFilter`` (``DEFAULT_EXCEPTION_REPORTER_FILTER``) also hides settings and
request META entries named like a database URL or DSN, and the password of any URL with
credentials, so ``DATABASE_URL`` (in ``request.META`` under runserver) never reaches the page.
"""

import re

from django.http import HttpResponseBadRequest
from django.views.debug import SafeExceptionReporterFilter

_URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):[^/@\s]*@")


class RejectNulMiddleware:
    """400 Bad Request for a NUL character in the path or in a query parameter's name or value."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()
        ):
            return HttpResponseBadRequest("NUL characters are not allowed in URLs.", content_type="text/plain")
        return self.get_response(request)


class SecretsHidingReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, hiding also DATABASE*/DSN/*_URL names and passwords inside any URL."""

    hidden_settings = re.compile(
        SafeExceptionReporterFilter.hidden_settings.pattern + "|DATABASE|DSN|_URL$", flags=re.IGNORECASE
    )

    def cleanse_setting(self, key, value):
        if isinstance(value, str) and "://" in value and "@" in value:
            value = _URL_PASSWORD.sub(rf"\1:{self.cleansed_substitute}@", value)
        return super().cleanse_setting(key, value)
