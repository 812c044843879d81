from __future__ import annotations

from django.db import models

from history.fields import TextJSONField


class Source(models.TextChoices):
    API = "api", "Single prediction"
    BATCH = "batch", "Synchronous batch"
    BULK = "bulk", "Bulk job"
    SCHEDULED = "scheduled", "Scheduled run"


class PredictionRecord(models.Model):
    """One prediction as it was answered: inputs, output, which version, for whom, how fast."""

    # No database-level constraint and no single-column indexes on these two: checking both
    # keys and maintaining two more indexes cost ~30 % of a 10,000-row COPY. PROTECT still
    # guards deletes made through Django, versions are archived rather than deleted, and
    # history_model_time serves every query by model.
    model = models.ForeignKey(
        "predictions.MLModel", on_delete=models.PROTECT, related_name="+", db_constraint=False, db_index=False
    )
    version = models.ForeignKey(
        "predictions.ModelVersion", on_delete=models.PROTECT, related_name="+", db_constraint=False, db_index=False
    )
    created_at = models.DateTimeField(db_index=False)
    source = models.CharField(max_length=10, choices=Source.choices)
    correlation_id = models.CharField(max_length=128, blank=True)
    api_key_prefix = models.CharField(max_length=8, blank=True, help_text="Prefix of the API key used, if any.")
    entity_id = models.CharField(max_length=120, blank=True)
    features = TextJSONField()
    output = TextJSONField()
    main_score = models.FloatField(null=True)
    latency_ms = models.FloatField(help_text="Model time per row, in milliseconds.")
    # Plain ids, not foreign keys: history outlives jobs and runs (retention deletes those on
    # their own schedule), and a prediction must never block or cascade with them.
    bulk_job_id = models.UUIDField(null=True, blank=True, help_text="The bulk job that made it, if any.")
    scheduled_execution_id = models.BigIntegerField(
        null=True, blank=True, help_text="The scheduled run execution that made it, if any."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Time-window queries per model (trends, drift, listings) read this index.
            models.Index(fields=["model", "created_at"], name="history_model_time"),
            models.Index(fields=["version", "created_at"], name="history_version_time"),
            models.Index(fields=["correlation_id"], name="history_correlation"),
            models.Index(fields=["model", "entity_id", "created_at"], name="history_model_entity_time"),
            # Partial: most records come from neither, and the index then costs them nothing.
            models.Index(
                fields=["bulk_job_id"], name="history_bulk_job", condition=models.Q(bulk_job_id__isnull=False)
            ),
            models.Index(
                fields=["scheduled_execution_id"],
                name="history_scheduled_execution",
                condition=models.Q(scheduled_execution_id__isnull=False),
            ),
            # Listings without a model filter (newest first, keyset on created_at then id) and the
            # roll-up's hour ranges across all models read this one.
            models.Index(fields=["created_at", "id"], name="history_time_id"),
        ]

    def __str__(self) -> str:
        return f"prediction {self.pk}"


class Outcome(models.Model):
    """What really happened for one prediction (ground truth), once it became known.

    At most one per prediction (the primary key is the prediction's): sending the same outcome
    again changes nothing. ``error`` is ``main_score - value`` where the main score estimates
    the target (see history.outcomes), else null.
    """

    prediction = models.OneToOneField(
        PredictionRecord, primary_key=True, on_delete=models.CASCADE, related_name="outcome"
    )
    # Copied from the prediction so that outcomes can be listed per model without a join.
    model = models.ForeignKey("predictions.MLModel", on_delete=models.PROTECT, related_name="+")
    value = models.FloatField(help_text="The realised value; 0 or 1 for a class label.")
    error = models.FloatField(null=True, blank=True, help_text="Main score minus value, where comparable.")
    observed_at = models.DateTimeField(help_text="When the outcome became known.")
    recorded_at = models.DateTimeField()

    # No index besides the primary key: outcomes are read through their prediction, and every
    # index would slow the 10,000-outcome writes.

    def __str__(self) -> str:
        return f"outcome of prediction {self.prediction_id}"


class HourlyRollup(models.Model):
    """Aggregates of one hour of predictions of one model version from one source.

    Trends and comparisons read these instead of raw records, and they outlive retention.
    Written once when the hour closes (history.rollups); outcome columns grow as outcomes
    arrive for predictions of that hour.
    """

    model = models.ForeignKey("predictions.MLModel", on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey("predictions.ModelVersion", on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=10, choices=Source.choices)
    hour = models.DateTimeField(help_text="Start of the hour, UTC.")
    count = models.PositiveIntegerField()
    score_count = models.PositiveIntegerField(help_text="Predictions with a main score.")
    score_sum = models.FloatField(default=0)
    score_sumsq = models.FloatField(default=0)
    score_min = models.FloatField(null=True)
    score_max = models.FloatField(null=True)
    histogram = models.JSONField(default=dict, help_text="Main score histogram: {bin: count} (history.scores).")
    classes = models.JSONField(default=dict, help_text="Predicted class counts, for models that answer a class.")
    outcome_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    error_sum = models.FloatField(default=0)
    error_abs_sum = models.FloatField(default=0)
    error_sq_sum = models.FloatField(default=0)

    class Meta:
        constraints = [
            # Model and hour first: every read is one model over a time range.
            models.UniqueConstraint(fields=["model", "hour", "version", "source"], name="history_rollup_unique_hour")
        ]

    def __str__(self) -> str:
        return f"{self.model_id}/{self.version_id}/{self.source} {self.hour:%Y-%m-%d %H}:00"


class MaintenanceState(models.Model):
    """One row: how far roll-ups have come, and who is running retention.

    Hours before ``rolled_until`` are in HourlyRollup; later ones are read from raw records.
    Its row lock orders roll-ups against outcome writes (see services.rollups_refresh).
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    rolled_until = models.DateTimeField(null=True, blank=True)
    retention_claimed_until = models.DateTimeField(
        null=True, blank=True, help_text="A retention run holds this claim until it ends or this time passes."
    )
    retention_last_run_at = models.DateTimeField(null=True, blank=True)
    retention_last_deleted = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"rolled up until {self.rolled_until}"


class RetentionPolicy(models.Model):
    """One row: how long raw records are kept. Absent, the HISTORY_RETENTION_DAYS setting applies."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    max_age_days = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: keep raw records forever.")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)

    class Meta:
        verbose_name_plural = "retention policy"

    def __str__(self) -> str:
        return "keep forever" if self.max_age_days is None else f"keep {self.max_age_days} days"


class ImportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class OutcomeImport(models.Model):
    """An uploaded CSV/Parquet file of outcomes, recorded by a task in chunks."""

    model = models.ForeignKey("predictions.MLModel", on_delete=models.PROTECT, related_name="+")
    file = models.FileField(upload_to="history/outcomes/%Y/%m/")
    file_format = models.CharField(max_length=10)
    status = models.CharField(max_length=10, choices=ImportStatus.choices, default=ImportStatus.PENDING)
    rows = models.PositiveIntegerField(default=0, help_text="Rows read so far.")
    recorded = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    conflicts = models.PositiveIntegerField(default=0)
    unmatched = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, help_text="The first rows that were invalid, unmatched or in conflict.")
    error = models.TextField(blank=True)
    uploaded_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"outcome import {self.pk} ({self.status})"
