from django.db import models

from agents_app.fields import KeyField, validate_identifier


def provider_for(name: str) -> str:
    """The provider part of a model name: ``anthropic`` for ``anthropic/claude-opus-4.6``."""
    provider, sep, _ = name.partition("/")
    return provider.strip() if sep else ""


class LanguageModel(models.Model):
    """A language model as agents report it, created on first sight by the save path."""

    name = KeyField(
        max_length=255,
        unique=True,
        validators=[validate_identifier],  # the save path's rule: what one accepts, the other does
        help_text="Model name exactly as the agent reports it, e.g. anthropic/claude-opus-4.6.",
    )
    provider = models.CharField(
        max_length=100,
        blank=True,
        help_text="Derived from the name's 'provider/' prefix; empty when the name has none.",
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the model was first seen.")

    class Meta:
        ordering = ["name"]
        verbose_name = "language model"

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if not self.provider:
            self.provider = provider_for(self.name)
        super().save(*args, **kwargs)


class AbandonedAgentTally(models.Model):
    """How many agents ended without ever saving a message, per UTC day, model, source and reason.

    Lazy session creation stops writing a row for such agents; this small tally keeps the
    signal ("which model's agents fail before speaking") without a row per agent.
    """

    day = models.DateField(help_text="UTC day the agents ended.")
    model = models.ForeignKey(LanguageModel, on_delete=models.PROTECT, related_name="abandoned_tallies")
    # Key columns of the upsert: compared byte for byte on MySQL/MariaDB too, so "CLI" and "cli"
    # (or "error" and "Error") are counted apart there as on SQLite and PostgreSQL.
    source = KeyField(max_length=64)
    end_reason = KeyField(max_length=64)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "abandoned agent tally"
        verbose_name_plural = "abandoned agent tallies"
        ordering = ["-day", "model", "source", "end_reason"]
        constraints = [
            models.UniqueConstraint(fields=["day", "model", "source", "end_reason"], name="abandoned_tally_key"),
        ]
        indexes = [models.Index(fields=["model", "day"], name="abandoned_model_day")]

    def __str__(self):
        return f"{self.day} {self.model} {self.source} {self.end_reason}: {self.count}"


class RetiredAbandonedAgents(models.Model):
    """Abandoned agents whose tally rows were deleted (retention, the admin), per model, source and
    end reason: the ledger that keeps ``/metrics``' ``hermes_abandoned_agents_total`` from going
    down when old tally days go. Written in the same transaction as the deletion."""

    model = KeyField(max_length=255, help_text="The model name.")
    source = KeyField(max_length=64)
    end_reason = KeyField(max_length=64)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "retired abandoned agents"
        verbose_name_plural = "retired abandoned agents"
        constraints = [
            models.UniqueConstraint(fields=["model", "source", "end_reason"], name="retired_abandoned_key"),
        ]

    def __str__(self):
        return f"{self.model} {self.source} {self.end_reason}: {self.count} retired"
