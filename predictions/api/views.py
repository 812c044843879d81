from __future__ import annotations

from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import APIKey
from accounts.permissions import IsAdmin, IsPredictor, IsViewer, ViewerReadsOperatorWrites
from config.api.errors import error_response
from config.api.parsers import SafeJSONParser
from predictions.api import serializers as api
from predictions.catalog import CatalogModel, get_catalog_model
from predictions.models import MLModel, ModelVersion
from predictions.selectors import catalog_models, datasets_of, models_with_active_versions, versions_of
from predictions.services import (
    Caller,
    DatasetRejected,
    PredictionInputError,
    VersionStateError,
    dataset_upload,
    model_rollback,
    predictions_make,
    version_promote,
)
from predictions.serving import ModelUnavailable
from predictions.status import model_health, model_info, model_summary


def _caller(request, source: str) -> Caller:
    key = request.auth if isinstance(request.auth, APIKey) else None
    return Caller(source=source, correlation_id=request.correlation_id, api_key_prefix=key.prefix if key else "")


def _unavailable(exc: ModelUnavailable):
    return error_response(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), code="model_unavailable")


_ENVELOPE_FIELDS = frozenset({"features", "entity_id"})


def _envelope(item: Any, where: str) -> tuple[Any, str]:
    """(features, entity_id) from ``{"features": {...}, "entity_id": "..."}``; 400 if malformed."""
    if item.__class__ is dict and "features" in item and item.keys() <= _ENVELOPE_FIELDS:
        entity_id = item.get("entity_id")
        if entity_id is None:
            return item["features"], ""
        # The common case first: short plain text (isprintable is a scan of the string).
        if entity_id.__class__ is str and len(entity_id) <= 120 and entity_id.isprintable():
            return item["features"], entity_id
        raise ValidationError({where: "entity_id must be printable text of at most 120 characters."})
    if not isinstance(item, dict):
        raise ValidationError({where: "Must be an object with 'features' and optional 'entity_id'."})
    unknown = set(item) - _ENVELOPE_FIELDS
    if unknown:
        raise ValidationError({where: f"Unknown field(s): {', '.join(sorted(map(str, unknown)))}."})
    raise ValidationError({where: "'features' is required."})


class _PredictView(APIView):
    """One prediction (subclassed per model so that each has its own documented schema)."""

    permission_classes = [IsPredictor]
    parser_classes = [SafeJSONParser]  # never a multipart upload spooled to disk
    spec: CatalogModel

    def post(self, request):
        features, entity_id = _envelope(request.data, "body")
        try:
            batch = predictions_make(
                slug=self.spec.slug, rows=[features], entity_ids=[entity_id], caller=_caller(request, "api")
            )
        except PredictionInputError as exc:
            raise ValidationError({"features": exc.errors[0]}) from None
        except ModelUnavailable as exc:
            return _unavailable(exc)
        return Response(
            {
                "prediction_id": batch.prediction_ids[0],
                "model": self.spec.slug,
                "version": batch.version_number,
                "correlation_id": request.correlation_id,
                "entity_id": entity_id,
                "prediction": batch.outputs[0],
            }
        )


class _BatchView(APIView):
    permission_classes = [IsPredictor]
    parser_classes = [SafeJSONParser]
    spec: CatalogModel

    def post(self, request):
        rows, entity_ids, partial = self._parse(request.data)
        try:
            batch = predictions_make(
                slug=self.spec.slug, rows=rows, entity_ids=entity_ids, caller=_caller(request, "batch"), partial=partial
            )
        except PredictionInputError as exc:
            raise ValidationError({"rows": {str(index): errors for index, errors in exc.errors.items()}}) from None
        except ModelUnavailable as exc:
            return _unavailable(exc)
        results = [
            {"index": index, "prediction_id": pid, "entity_id": entity_ids[index], "prediction": output}
            for index, pid, output in zip(batch.indexes, batch.prediction_ids, batch.outputs, strict=True)
        ]
        return Response(
            {
                "model": self.spec.slug,
                "version": batch.version_number,
                "correlation_id": request.correlation_id,
                "count": len(results),
                "results": results,
                "errors": [{"index": index, "errors": errors} for index, errors in batch.errors.items()],
            }
        )

    def _parse(self, data: Any) -> tuple[list, list[str], bool]:
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise ValidationError({"rows": "Send {'rows': [{'features': {...}, 'entity_id': '...'}, ...]}."})
        unknown = set(data) - {"rows", "partial"}
        if unknown:
            raise ValidationError({"body": f"Unknown field(s): {', '.join(sorted(map(str, unknown)))}."})
        partial = data.get("partial", False)
        if not isinstance(partial, bool):
            raise ValidationError({"partial": "Must be true or false."})
        limit = settings.PREDICTION_BATCH_MAX_ROWS
        if not 1 <= len(data["rows"]) <= limit:
            raise ValidationError({"rows": f"Send between 1 and {limit} rows; use a bulk job for more."})
        pairs = [_envelope(item, f"rows[{index}]") for index, item in enumerate(data["rows"])]
        return [features for features, _ in pairs], [entity for _, entity in pairs], partial


def prediction_views(spec: CatalogModel) -> tuple[type[APIView], type[APIView]]:
    """The single and batch views of one model, documented with its own schema and example."""
    single, batch, single_answer = api.prediction_request_serializers(spec)
    example = {"features": spec.example_row(), "entity_id": f"{spec.entity_label.replace(' ', '-')}-1042"}
    tag = f"predict: {spec.slug}"
    single_view = extend_schema_view(
        post=extend_schema(
            operation_id=f"predict_{spec.slug.replace('-', '_')}",
            summary=f"{spec.title}: one prediction",
            description=spec.summary,
            tags=[tag],
            request=single,
            responses={200: single_answer},
            examples=[OpenApiExample("example", value=example, request_only=True)],
        )
    )(type(f"{single.__name__}View", (_PredictView,), {"spec": spec}))
    batch_view = extend_schema_view(
        post=extend_schema(
            operation_id=f"predict_{spec.slug.replace('-', '_')}_batch",
            summary=f"{spec.title}: a batch of up to {settings.PREDICTION_BATCH_MAX_ROWS} rows",
            tags=[tag],
            request=batch,
            responses={200: api.BatchAnswerSerializer},
            examples=[OpenApiExample("example", value={"rows": [example], "partial": False}, request_only=True)],
        )
    )(type(f"{batch.__name__}View", (_BatchView,), {"spec": spec}))
    return single_view, batch_view


# --- Models, versions, promotion -----------------------------------------------------------------


def _mlmodel(slug: str) -> MLModel:
    return get_object_or_404(catalog_models(), slug=slug)


class ModelListView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(tags=["models"], responses=api.ModelSummarySerializer(many=True))
    def get(self, request):
        return Response([model_summary(model, version) for model, version in models_with_active_versions()])


class ModelInfoView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(tags=["models"], responses=api.ModelInfoSerializer)
    def get(self, request, slug: str):
        return Response(model_info(_mlmodel(slug), get_catalog_model(slug)))


class ModelHealthView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(tags=["models"], responses=api.ModelHealthSerializer)
    def get(self, request, slug: str):
        return Response(model_health(_mlmodel(slug)))


class ModelVersionListView(generics.ListAPIView):
    permission_classes = [IsViewer]
    serializer_class = api.VersionSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ModelVersion.objects.none()
        return versions_of(_mlmodel(self.kwargs["slug"])).select_related("model")


class ModelPromoteView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(tags=["models"], request=api.PromoteSerializer, responses=api.VersionSerializer)
    def post(self, request, slug: str):
        params = api.PromoteSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        model = _mlmodel(slug)
        version = get_object_or_404(model.versions, number=params.validated_data["version"])
        try:
            version = version_promote(version=version)
        except VersionStateError as exc:
            return error_response(409, str(exc), code="conflict")
        return Response(api.VersionSerializer(version).data)


class ModelRollbackView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(tags=["models"], request=None, responses=api.VersionSerializer)
    def post(self, request, slug: str):
        try:
            version = model_rollback(model=_mlmodel(slug))
        except VersionStateError as exc:
            return error_response(409, str(exc), code="conflict")
        return Response(api.VersionSerializer(version).data)


# --- Datasets ---------------------------------------------------------------------------------


class DatasetListCreateView(generics.ListAPIView):
    """Training datasets: operators upload CSV or Parquet; rows are checked against the schema."""

    permission_classes = [ViewerReadsOperatorWrites]
    parser_classes = [MultiPartParser]
    serializer_class = api.DatasetSerializer
    filterset_fields = ["model__slug"]

    def get_queryset(self):
        return datasets_of()

    @extend_schema(request={"multipart/form-data": api.DatasetUploadSerializer}, responses={201: api.DatasetSerializer})
    def post(self, request):
        params = api.DatasetUploadSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        slug, upload = params.validated_data["model"], params.validated_data["file"]
        try:
            dataset = dataset_upload(
                slug=slug,
                name=params.validated_data["name"],
                filename=upload.name,
                data=upload.read(),
                uploaded_by=request.user,
            )
        except DatasetRejected as exc:
            return error_response(400, str(exc), code="invalid_dataset", details=exc.errors or None)
        return Response(api.DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailView(generics.RetrieveAPIView):
    permission_classes = [IsViewer]
    serializer_class = api.DatasetSerializer

    def get_queryset(self):
        return datasets_of()
