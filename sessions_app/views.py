"""``GET /metrics``: who may scrape, then the Prometheus text of ``sessions_app.metrics``."""

import hmac

from django.http import HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from agents_app.conf import hermes_settings
from sessions_app.metrics import render_metrics

PERMISSION = "sessions_app.view_session"


# CSRF-exempt so that other methods get the 405 they deserve rather than the CSRF middleware's
# 403: nothing here changes state, and require_safe refuses all but GET and HEAD.
@csrf_exempt
@cache_control(no_store=True)
@require_safe
def metrics(request):
    """The session metrics for a bearer of ``HERMES_METRICS_TOKEN`` or a staff user with the
    ``sessions_app.view_session`` permission; 401 without credentials, 403 with wrong ones."""
    status = scrape_refusal(request)
    if status == 401:
        response = HttpResponse("Authentication required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="hermes metrics"'
        return response
    if status == 403:
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
    body = render_metrics()
    # generate_latest() writes the classic text format, version 0.0.4, and so says this header,
    # as prometheus_client's own handler does when no newer format was asked for.
    # (CONTENT_TYPE_LATEST now names "version=1.0.0", which goes with the escaping choose_encoder() negotiates.)
    return HttpResponse(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)


def scrape_refusal(request) -> int | None:
    """None when the request may scrape, else the status refusing it (401 or 403).

    A bearer token is judged alone: the configured one (compared in constant time) is let in,
    any other is refused, even beside a staff login. Without one, the logged-in user decides.
    The token is never logged nor echoed."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        token = hermes_settings.HERMES_METRICS_TOKEN
        if token and hmac.compare_digest(credentials.strip().encode(), token.encode()):
            return None
        return 403
    user = request.user
    if not user.is_authenticated:
        return 401
    if user.is_active and user.is_staff and user.has_perm(PERMISSION):
        return None
    return 403
