from django.apps import AppConfig
from django.core import checks

from sessions_app.admin_site import check_admin_site


class SessionsAppConfig(AppConfig):
    # The migrations' primary keys, whatever DEFAULT_AUTO_FIELD the project installing the app has.
    default_auto_field = "django.db.models.BigAutoField"
    name = "sessions_app"
    label = "sessions_app"
    verbose_name = "Agent sessions"

    def ready(self):
        checks.register(check_admin_site, checks.Tags.admin)
