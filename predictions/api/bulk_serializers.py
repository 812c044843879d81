from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from predictions.bulk_files import ENTITY_COLUMN, ENTITY_MAX_LENGTH
from predictions.bulk_selectors import bulk_job_progress, bulk_job_timings
from predictions.models import BulkJob, BulkOutputFormat, CallbackDelivery, Dataset

# Smallest chunk a caller may ask for: below it the per-task overhead dominates.
MIN_CHUNK_ROWS = 100
MAX_CHUNK_ROWS = 200_000  # a chunk is held in a worker's memory whole


class _SubmitCommon(serializers.Serializer):
    model = serializers.SlugField(help_text="The model to predict with, e.g. `churn`.")
    callback_url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text=(
            "POSTed a signed JSON summary when the job completes, fails or is cancelled. Must resolve to a "
            "public address unless BULK_CALLBACK_ALLOWED_HOSTS allows it."
        ),
    )
    output_format = serializers.ChoiceField(
        choices=BulkOutputFormat.choices,
        required=False,
        help_text="Results file format; by default CSV for CSV input, Parquet for Parquet, JSON lines for rows.",
    )
    chunk_size = serializers.IntegerField(
        required=False,
        min_value=MIN_CHUNK_ROWS,
        max_value=MAX_CHUNK_ROWS,
        help_text="Rows per chunk (one task each); the server's BULK_CHUNK_ROWS by default.",
    )


class BulkUploadSerializer(_SubmitCommon):
    file = serializers.FileField(
        help_text="CSV with a header row, or Parquet: the model's feature columns and an optional `entity_id`."
    )


class BulkRowsSubmitSerializer(_SubmitCommon):
    """JSON body: rows inline, or a stored dataset (exactly one of them)."""

    rows = serializers.JSONField(
        required=False,
        help_text="Rows as for `/api/<slug>/batch`: `[{'features': {...}, 'entity_id': '...'}, ...]`.",
    )
    dataset = serializers.PrimaryKeyRelatedField(
        queryset=Dataset.objects.select_related("model"), required=False, help_text="A stored dataset's id."
    )

    def validate_rows(self, rows: Any) -> list[dict[str, Any]]:
        if not isinstance(rows, list) or not rows:
            raise serializers.ValidationError("Send a non-empty list of {'features': {...}, 'entity_id': '...'}.")
        for position, item in enumerate(rows):
            problem = _envelope_problem(item)
            if problem:
                raise serializers.ValidationError(f"rows[{position}]: {problem}")
        return rows

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("rows" in attrs) == ("dataset" in attrs):
            raise serializers.ValidationError(
                {"rows": "Send either 'rows' or 'dataset' (or upload a file as multipart/form-data)."}
            )
        dataset = attrs.get("dataset")
        if dataset is not None and dataset.model.slug != attrs["model"]:
            raise serializers.ValidationError({"dataset": f"Dataset {dataset.pk} is for model '{dataset.model.slug}'."})
        return attrs


def _envelope_problem(item: Any) -> str | None:
    if not isinstance(item, dict) or "features" not in item:
        return "must be an object with 'features' and an optional 'entity_id'."
    unknown = set(item) - {"features", ENTITY_COLUMN}
    if unknown:
        return f"unknown field(s): {', '.join(sorted(map(str, unknown)))}."
    entity_id = item.get(ENTITY_COLUMN)
    if entity_id is not None and (
        not isinstance(entity_id, str) or len(entity_id) > ENTITY_MAX_LENGTH or not entity_id.isprintable()
    ):
        return f"entity_id must be printable text of at most {ENTITY_MAX_LENGTH} characters."
    return None


class CallbackDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = CallbackDelivery
        fields = [
            "event",
            "attempt",
            "url",
            "outcome",
            "status_code",
            "error",
            "response_excerpt",
            "duration_ms",
            "next_attempt_at",
            "created_at",
        ]
        read_only_fields = fields


class BulkInputSerializer(serializers.Serializer):
    kind = serializers.CharField()
    format = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    dataset = serializers.IntegerField(allow_null=True)


class BulkTimingsSerializer(serializers.Serializer):
    queued_seconds = serializers.FloatField(allow_null=True, help_text="From submission to start.")
    running_seconds = serializers.FloatField(allow_null=True, help_text="From start to the end, once finished.")
    rows_per_second = serializers.FloatField(allow_null=True)


class BulkJobSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    version = serializers.SerializerMethodField(help_text="The pinned version's number, once started.")
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    input = serializers.SerializerMethodField()
    progress_percent = serializers.SerializerMethodField()
    timings = serializers.SerializerMethodField()
    results_url = serializers.SerializerMethodField()
    errors_url = serializers.SerializerMethodField()
    expires_at = serializers.SerializerMethodField(help_text="When its files will be deleted, once finished.")

    class Meta:
        model = BulkJob
        fields = [
            "id",
            "url",
            "model",
            "version",
            "status",
            "owner",
            "input",
            "output_format",
            "rows_total",
            "rows_done",
            "rows_failed",
            "progress_percent",
            "chunk_rows",
            "chunks_total",
            "chunks_done",
            "callback_url",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "timings",
            "results_url",
            "errors_url",
            "expires_at",
            "files_deleted_at",
        ]
        read_only_fields = fields

    def get_url(self, job: BulkJob) -> str:
        return f"/api/bulk-predictions/{job.pk}"

    def get_version(self, job: BulkJob) -> int | None:
        return job.version.number if job.version_id else None

    @extend_schema_field(BulkInputSerializer)
    def get_input(self, job: BulkJob) -> dict[str, Any]:
        return {"kind": job.input_kind, "format": job.input_format, "name": job.input_name, "dataset": job.dataset_id}

    def get_progress_percent(self, job: BulkJob) -> float:
        return bulk_job_progress(job)

    @extend_schema_field(BulkTimingsSerializer)
    def get_timings(self, job: BulkJob) -> dict[str, float | None]:
        return bulk_job_timings(job)

    def get_results_url(self, job: BulkJob) -> str:
        return f"/api/bulk-predictions/{job.pk}/results"

    def get_errors_url(self, job: BulkJob) -> str:
        return f"/api/bulk-predictions/{job.pk}/errors"

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_expires_at(self, job: BulkJob):
        if job.finished_at is None:
            return None
        return (job.finished_at + timedelta(days=settings.BULK_RETENTION_DAYS)).isoformat()


class BulkJobDetailSerializer(BulkJobSerializer):
    deliveries = CallbackDeliverySerializer(many=True, read_only=True, help_text="Every callback attempt.")

    class Meta(BulkJobSerializer.Meta):
        fields = [*BulkJobSerializer.Meta.fields, "deliveries"]
        read_only_fields = fields


class BulkSubmittedSerializer(BulkJobSerializer):
    callback_secret = serializers.CharField(
        required=False,
        help_text=(
            "Only in the answer to the first job with a callback_url of an API key: the secret that signs its "
            "callbacks. Store it; it is not shown again (POST /api/bulk-predictions/callback-secret rotates it)."
        ),
    )

    class Meta(BulkJobSerializer.Meta):
        fields = [*BulkJobSerializer.Meta.fields, "callback_secret"]
        read_only_fields = fields


class CallbackSecretStatusSerializer(serializers.Serializer):
    exists = serializers.BooleanField()
    created_at = serializers.DateTimeField(allow_null=True)


class CallbackSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="Shown this once; the previous secret stops signing now.")
    created_at = serializers.DateTimeField()
