from django.apps import AppConfig
from django.core import checks

from agents_app.conf import check_hermes_settings


class AgentsAppConfig(AppConfig):
    # The migrations' primary keys, whatever DEFAULT_AUTO_FIELD the project installing the app has.
    default_auto_field = "django.db.models.BigAutoField"
    name = "agents_app"
    verbose_name = "Agents"

    def ready(self):
        checks.register(check_hermes_settings, "hermes")
