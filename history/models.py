from __future__ import annotations

from django.db import models


class Source(models.TextChoices):
    API = "api", "Single prediction"
    BATCH = "batch", "Synchronous batch"
    BULK = "bulk", "Bulk job"
    SCHEDULED = "scheduled", "Scheduled run"


class PredictionRecord(models.Model):
    """One prediction as it was answered: inputs, output, which version, for whom, how fast."""

    model = models.ForeignKey("predictions.MLModel", on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey("predictions.ModelVersion", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(db_index=False)
    source = models.CharField(max_length=10, choices=Source.choices)
    correlation_id = models.CharField(max_length=128, blank=True)
    api_key_prefix = models.CharField(max_length=8, blank=True, help_text="Prefix of the API key used, if any.")
    entity_id = models.CharField(max_length=120, blank=True)
    features = models.JSONField()
    output = models.JSONField()
    main_score = models.FloatField(null=True)
    latency_ms = models.FloatField(help_text="Model time per row, in milliseconds.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Time-window queries per model (trends, drift, listings) read this index.
            models.Index(fields=["model", "created_at"], name="history_model_time"),
            models.Index(fields=["correlation_id"], name="history_correlation"),
            models.Index(fields=["model", "entity_id", "created_at"], name="history_model_entity_time"),
        ]

    def __str__(self) -> str:
        return f"prediction {self.pk}"
