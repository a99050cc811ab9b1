from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_delete, post_migrate


class AgentsAppConfig(AppConfig):
    # The migrations' primary keys, whatever DEFAULT_AUTO_FIELD the project installing the app has.
    default_auto_field = "django.db.models.BigAutoField"
    name = "agents_app"
    verbose_name = "Agents"

    def ready(self):
        from agents_app import registry
        from agents_app.conf import check_hermes_settings

        checks.register(check_hermes_settings, "hermes")
        # The registry caches model name -> id; drop it whenever model rows may have gone.
        post_delete.connect(
            registry.forget_language_models, sender="agents_app.LanguageModel", dispatch_uid="hermes-lm-del"
        )
        post_migrate.connect(registry.forget_language_models, dispatch_uid="hermes-lm-migrate")
