from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    # The migrations' primary keys, whatever DEFAULT_AUTO_FIELD the project installing the app has.
    default_auto_field = "django.db.models.BigAutoField"
    name = "sessions_app"
    label = "sessions_app"
    verbose_name = "Agent sessions"
