from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "hermes_site"
admin.site.site_title = "hermes_site admin"
admin.site.index_title = "Agent sessions"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("", include("sessions_app.urls")),  # GET /metrics
]
