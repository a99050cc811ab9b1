from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate


def _forget_language_models(**kwargs):
    from sessions_app.services import forget_language_models

    forget_language_models()


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    label = "sessions_app"
    verbose_name = "Agent sessions"

    def ready(self):
        # The save path caches model-name -> id; drop it whenever model rows may have gone.
        post_delete.connect(_forget_language_models, sender="agents_app.LanguageModel", dispatch_uid="hermes-lm-del")
        post_migrate.connect(_forget_language_models, dispatch_uid="hermes-lm-migrate")
