"""URLs of sessions_app outside the admin: ``include("sessions_app.urls")`` where ``/metrics`` should be.

The admin pages need no URLconf of their own: they come with ``admin.site.urls``.
"""

from django.urls import path

from sessions_app.views import metrics

app_name = "sessions_app"

urlpatterns = [
    path("metrics", metrics, name="metrics"),
]
