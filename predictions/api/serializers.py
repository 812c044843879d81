from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from predictions.catalog import CATALOG
from predictions.catalog.base import CatalogModel, Feature
from predictions.models import Dataset, ModelVersion


def _feature_field(feature: Feature) -> serializers.Field:
    common = {"required": feature.required, "help_text": _describe(feature)}
    if feature.kind == "category":
        return serializers.ChoiceField(choices=list(feature.categories), **common)
    if feature.kind == "boolean":
        return serializers.BooleanField(**common)
    bounds = {"min_value": feature.minimum, "max_value": feature.maximum}
    if feature.kind == "integer":
        return serializers.IntegerField(**bounds, **common)
    return serializers.FloatField(**bounds, **common)


def _describe(feature: Feature) -> str:
    unit = f" ({feature.unit})" if feature.unit else ""
    default = "" if feature.required else f" Optional, default {feature.default!r}."
    return f"{feature.description.rstrip('.')}{unit}.{default} Example: {feature.example!r}."


def _component_prefix(spec: CatalogModel) -> str:
    """``revenue-leak`` -> ``RevenueLeak``: the model's part of its OpenAPI component names."""
    return "".join(part.title() for part in spec.slug.split("-"))


def features_serializer(spec: CatalogModel) -> type[serializers.Serializer]:
    """An OpenAPI description of the model's inputs, generated from its feature schema.

    It documents; validation itself runs through predictions.catalog.validation, which is
    fast enough for 10,000-row batches.
    """
    fields = {feature.name: _feature_field(feature) for feature in spec.features}
    return type(f"{_component_prefix(spec)}Features", (serializers.Serializer,), fields)


def prediction_request_serializers(spec: CatalogModel) -> tuple[type, type, type]:
    """Request and response serializers for one model's single and batch endpoints."""
    prefix = _component_prefix(spec)
    features = features_serializer(spec)
    single = type(
        f"{prefix}PredictionRequest",
        (serializers.Serializer,),
        {
            "features": features(),
            "entity_id": serializers.CharField(
                required=False,
                max_length=120,
                help_text=f"Your id for the {spec.entity_label}, kept in history; printable, no control characters.",
            ),
        },
    )
    row = type(f"{prefix}BatchRow", (single,), {})
    batch = type(
        f"{prefix}BatchRequest",
        (serializers.Serializer,),
        {
            "rows": row(many=True),
            "partial": serializers.BooleanField(
                default=False, help_text="Answer the valid rows even if some are invalid (they are reported by index)."
            ),
        },
    )
    single_answer = type(
        f"{prefix}Prediction",
        (serializers.Serializer,),
        {
            "prediction_id": serializers.IntegerField(),
            "model": serializers.CharField(),
            "version": serializers.IntegerField(),
            "correlation_id": serializers.CharField(),
            "entity_id": serializers.CharField(allow_blank=True),
            "prediction": serializers.DictField(help_text=spec.summary),
        },
    )
    return single, batch, single_answer


def document_prediction_request_limits(result: dict, generator, request, public) -> dict:
    """drf-spectacular post-processing hook: what the prediction endpoints refuse with a 400
    (``_envelope`` and ``_BatchView._parse`` in predictions/api/views.py, the feature checks in
    predictions.catalog.validation), said in the document, so that clients generated from it
    refuse it too: unknown fields, and batches of no rows or too many. tests/config/test_docs.py
    holds the components' names to these."""
    schemas = result.get("components", {}).get("schemas", {})
    for spec in CATALOG.values():
        prefix = _component_prefix(spec)
        for part in ("FeaturesRequest", "PredictionRequestRequest", "BatchRowRequest", "BatchRequestRequest"):
            if f"{prefix}{part}" in schemas:
                schemas[f"{prefix}{part}"]["additionalProperties"] = False
        if f"{prefix}BatchRequestRequest" in schemas:
            rows = schemas[f"{prefix}BatchRequestRequest"]["properties"]["rows"]
            rows.update(minItems=1, maxItems=settings.PREDICTION_BATCH_MAX_ROWS)
    return result


class BatchResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    prediction_id = serializers.IntegerField()
    entity_id = serializers.CharField(allow_blank=True)
    prediction = serializers.DictField()


class BatchErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    errors = serializers.DictField(child=serializers.CharField())


class BatchAnswerSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField()
    correlation_id = serializers.CharField()
    count = serializers.IntegerField()
    results = BatchResultSerializer(many=True)
    errors = BatchErrorSerializer(many=True)


class VersionSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    trained_at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = ModelVersion
        fields = [
            "model",
            "number",
            "status",
            "trained_at",
            "activated_at",
            "metrics",
            "params",
            "sha256",
            "artifact_bytes",
            "training_rows",
            "training_data_digest",
            "dataset",
            "training_seconds",
            "created_by",
        ]
        read_only_fields = fields


class PromoteSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="The version number to serve.")


class DatasetSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Dataset
        fields = [
            "id",
            "model",
            "name",
            "file_format",
            "sha256",
            "size_bytes",
            "rows",
            "invalid_rows",
            "errors",
            "uploaded_by",
            "created_at",
        ]
        read_only_fields = fields


class DatasetUploadSerializer(serializers.Serializer):
    model = serializers.SlugField(help_text="The model this dataset trains.")
    name = serializers.CharField(max_length=120)
    file = serializers.FileField(help_text="CSV (header row) or Parquet: the features and the target column.")


class VersionBriefSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    trained_at = serializers.DateTimeField()
    activated_at = serializers.DateTimeField(allow_null=True)
    metrics = serializers.DictField(child=serializers.FloatField())
    training_rows = serializers.IntegerField()


class ModelSummarySerializer(serializers.Serializer):
    slug = serializers.CharField()
    title = serializers.CharField()
    task = serializers.CharField()
    summary = serializers.CharField()
    active_version = VersionBriefSerializer(allow_null=True)
    serving_error = serializers.CharField(allow_null=True)
    endpoints = serializers.DictField(child=serializers.CharField())


class FeatureSchemaSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["number", "integer", "category", "boolean"])
    description = serializers.CharField()
    example = serializers.JSONField()
    unit = serializers.CharField(allow_null=True)
    minimum = serializers.FloatField(allow_null=True)
    maximum = serializers.FloatField(allow_null=True)
    categories = serializers.ListField(child=serializers.CharField())
    required = serializers.BooleanField()
    default = serializers.JSONField(allow_null=True)


class ModelSchemaSerializer(serializers.Serializer):
    features = FeatureSchemaSerializer(many=True)
    target = serializers.DictField(allow_null=True)
    main_score = serializers.CharField(help_text="The answer key recorded as history's main score.")
    entity = serializers.CharField()
    example_request = serializers.DictField()


class ModelInfoSerializer(ModelSummarySerializer):
    schema = ModelSchemaSerializer()


class ModelHealthSerializer(serializers.Serializer):
    slug = serializers.CharField()
    status = serializers.ChoiceField(choices=["green", "amber", "red"])
    active_version = serializers.IntegerField(allow_null=True)
    artifact_verified = serializers.BooleanField(help_text="The active artifact matches its sha256, checked now.")
    artifact_problem = serializers.CharField(allow_null=True)
    serving_error = serializers.CharField(allow_null=True, help_text="Why a process refused the active version.")
    serving_error_at = serializers.DateTimeField(allow_null=True)
    loaded_in_this_process = serializers.IntegerField(allow_null=True)
    last_prediction_at = serializers.DateTimeField(allow_null=True)
    recent_requests = serializers.IntegerField(help_text="Prediction requests over the last one to two hours.")
    recent_errors = serializers.IntegerField()
    recent_error_rate = serializers.FloatField()
