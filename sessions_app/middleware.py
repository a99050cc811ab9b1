"""``RejectNulMiddleware``: a 400 for a NUL character in the path or the query string.

PostgreSQL cannot take NUL in a text parameter, so without it any admin filter or object URL given
``%00`` (``/admin/sessions_app/session/?source=%00``) ends in a 500 there; no URL of the apps has a
use for one. Add it to ``MIDDLEWARE`` near the top (after ``SecurityMiddleware``); it guards every
view of the project at once, the apps' admin pages among them.
"""

from django.http import HttpResponseBadRequest


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
