from __future__ import annotations

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
