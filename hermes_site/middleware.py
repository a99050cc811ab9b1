"""What a debug error page may show.

``SecretsHidingReporterFilter`` (``DEFAULT_EXCEPTION_REPORTER_FILTER``) also hides settings and
request META entries named like a database URL or DSN, and the password of any URL with
credentials, so ``DATABASE_URL`` (in ``request.META`` under runserver) never reaches the page.

(The request-level guard against NUL characters is the apps' own:
``sessions_app.middleware.RejectNulMiddleware``, so that a project installing them can use it too.)
"""

import re

from django.views.debug import SafeExceptionReporterFilter

_URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):[^/@\s]*@")


class SecretsHidingReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, hiding also DATABASE*/DSN/*_URL names and passwords inside any URL."""

    hidden_settings = re.compile(
        SafeExceptionReporterFilter.hidden_settings.pattern + "|DATABASE|DSN|_URL$", flags=re.IGNORECASE
    )

    def cleanse_setting(self, key, value):
        if isinstance(value, str) and "://" in value and "@" in value:
            value = _URL_PASSWORD.sub(rf"\1:{self.cleansed_substitute}@", value)
        return super().cleanse_setting(key, value)
