from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class MLModel(models.Model):
    """One row per catalog entry (predictions/catalog): the business model behind a URL slug."""

    slug = models.SlugField(max_length=40, unique=True)
    title = models.CharField(max_length=120)
    task = models.CharField(max_length=20)
    # Set when a process refuses the active version's artifact (missing or tampered); cleared
    # when a version loads cleanly. Shared through the database so every process reports it.
    serving_error = models.TextField(blank=True)
    serving_error_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        verbose_name = "model"

    def __str__(self) -> str:
        return self.slug


class VersionStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    ARCHIVED = "archived", "Archived"


class ModelVersion(models.Model):
    """A trained version of a model: its artifact, how it was made and how well it did."""

    model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=VersionStatus.choices, default=VersionStatus.CANDIDATE)
    artifact_path = models.CharField(max_length=300, help_text="Relative to ARTIFACT_ROOT.")
    sha256 = models.CharField(max_length=64)
    artifact_bytes = models.PositiveBigIntegerField()
    metrics = models.JSONField(default=dict, help_text="Holdout metrics.")
    params = models.JSONField(default=dict, help_text="Training parameters: rows, seed, drift, source.")
    training_data_digest = models.CharField(max_length=64)
    training_rows = models.PositiveIntegerField()
    dataset = models.ForeignKey("Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="versions")
    reference_profile = models.JSONField(default=dict, help_text="Training inputs and outputs, kept for drift.")
    training_seconds = models.FloatField(default=0)
    created_by = models.CharField(max_length=120, help_text="Who or what trained it: a user, a command, a job.")
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="version_number_unique_per_model"),
            models.UniqueConstraint(
                fields=["model"], condition=Q(status="active"), name="at_most_one_active_version_per_model"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.slug} v{self.number}"


class DatasetFormat(models.TextChoices):
    CSV = "csv", "CSV"
    PARQUET = "parquet", "Parquet"


class Dataset(models.Model):
    """A training file an operator uploaded for a model, validated against its schema."""

    model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="datasets")
    name = models.CharField(max_length=120)
    file = models.FileField(upload_to="datasets/%Y/%m/")
    file_format = models.CharField(max_length=10, choices=DatasetFormat.choices)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    rows = models.PositiveIntegerField(help_text="Valid rows.")
    invalid_rows = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, help_text="First problems found, by line number.")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.model.slug})"


# --- Bulk prediction jobs (services in predictions/bulk.py) ------------------------------------


class BulkJobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


BULK_JOB_ACTIVE = (BulkJobStatus.PENDING, BulkJobStatus.RUNNING)


class BulkInputKind(models.TextChoices):
    FILE = "file", "Uploaded file"
    ROWS = "rows", "JSON rows"
    DATASET = "dataset", "Stored dataset"


class BulkInputFormat(models.TextChoices):
    CSV = "csv", "CSV"
    PARQUET = "parquet", "Parquet"
    JSON = "json", "JSON"


class BulkOutputFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSON lines"
    PARQUET = "parquet", "Parquet"


class BulkJob(models.Model):
    """Predictions over a whole file, split into chunks that any number of workers process.

    The id is a UUID because history records carry it (``PredictionRecord.bulk_job_id``) and
    because job URLs should not be guessable or enumerable.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model = models.ForeignKey(MLModel, on_delete=models.PROTECT, related_name="bulk_jobs")
    version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bulk_jobs",
        help_text="The version active when the job started; every chunk uses it.",
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="bulk_jobs")
    api_key = models.ForeignKey(
        "accounts.APIKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The key that submitted it; its callback secret signs the callback.",
    )
    api_key_prefix = models.CharField(max_length=8, blank=True)
    correlation_id = models.CharField(max_length=128, blank=True, help_text="Of the request that submitted it.")
    status = models.CharField(max_length=12, choices=BulkJobStatus.choices, default=BulkJobStatus.PENDING)
    input_kind = models.CharField(max_length=10, choices=BulkInputKind.choices)
    input_format = models.CharField(max_length=10, choices=BulkInputFormat.choices)
    input_name = models.CharField(max_length=255, blank=True, help_text="The uploaded file's name.")
    input_path = models.CharField(max_length=300, blank=True, help_text="The input as received, in MEDIA storage.")
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="bulk_jobs")
    output_format = models.CharField(max_length=10, choices=BulkOutputFormat.choices)
    chunk_rows = models.PositiveIntegerField()
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    rows_total = models.PositiveBigIntegerField(default=0, help_text="Data rows in the input, malformed ones included.")
    rows_done = models.PositiveBigIntegerField(default=0, help_text="Rows predicted and recorded.")
    rows_failed = models.PositiveBigIntegerField(default=0, help_text="Rows refused; see the error report.")
    # CSV lines the reader could not split into the header's columns: they are reported, and
    # line numbers of the rows after them count them.
    skipped_lines = models.JSONField(default=list, blank=True)
    parse_errors_path = models.CharField(max_length=300, blank=True)
    callback_url = models.URLField(max_length=2000, blank=True)
    error = models.TextField(blank=True, help_text="Why it failed or who cancelled it.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_progress_at = models.DateTimeField(null=True, blank=True, help_text="Start, then each finished chunk.")
    kicked_at = models.DateTimeField(
        null=True, blank=True, help_text="When the reaper last re-sent its work, if ever (lost messages)."
    )
    files_deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "created_at"], name="bulk_job_owner_time"),
            models.Index(fields=["status", "last_progress_at"], name="bulk_job_status_progress"),
            models.Index(fields=["finished_at"], name="bulk_job_finished"),
        ]

    def __str__(self) -> str:
        return f"bulk job {self.pk}"


class BulkChunkStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class BulkChunk(models.Model):
    """A slice of a job's input: claimed by one worker at a time, done exactly once."""

    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    row_start = models.PositiveBigIntegerField(help_text="Position of its first row in the input (from 0).")
    row_count = models.PositiveIntegerField()
    input_path = models.CharField(max_length=300)
    status = models.CharField(max_length=10, choices=BulkChunkStatus.choices, default=BulkChunkStatus.PENDING)
    attempt = models.PositiveIntegerField(default=0, help_text="Claims so far; a result counts only for its claim.")
    claimed_by = models.CharField(max_length=200, blank=True, help_text="host:pid of the process holding the claim.")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    rows_done = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    result_path = models.CharField(max_length=300, blank=True)
    errors_path = models.CharField(max_length=300, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Processing time of the attempt that counted.")
    last_error = models.TextField(blank=True, help_text="Why the last failed attempt failed.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="bulk_chunk_unique_index")]

    def __str__(self) -> str:
        return f"chunk {self.index} of {self.job_id}"


class CallbackOutcome(models.TextChoices):
    DELIVERED = "delivered", "Delivered (2xx)"
    FAILED = "failed", "Failed"
    REFUSED = "refused", "Refused (address not allowed)"


class CallbackEvent(models.TextChoices):
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class CallbackDelivery(models.Model):
    """One attempt at POSTing a job's outcome to its callback URL: the delivery log."""

    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=12, choices=CallbackEvent.choices)
    attempt = models.PositiveSmallIntegerField()
    url = models.CharField(max_length=2000)
    outcome = models.CharField(max_length=10, choices=CallbackOutcome.choices)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True, help_text="The start of the receiver's answer.")
    duration_ms = models.FloatField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="When the next retry is due, if any.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "callback deliveries"

    def __str__(self) -> str:
        return f"{self.event} callback attempt {self.attempt} for {self.job_id}"


class BulkCallbackSecret(models.Model):
    """The secret that signs an API key's bulk callbacks (HMAC-SHA256), shown once.

    Kept in the clear because signing needs the secret itself (a hash could only verify).
    """

    api_key = models.OneToOneField("accounts.APIKey", on_delete=models.CASCADE, related_name="bulk_callback_secret")
    secret = models.CharField(max_length=80)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"callback secret of {self.api_key_id}"
