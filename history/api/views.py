from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import orjson
from django.conf import settings
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsViewer, ViewerReadsPredictorWrites
from config.api.errors import error_response
from config.api.renderers import FastJSONRenderer
from history import selectors
from history.api import serializers as api
from history.api.pagination import KeysetPagination
from history.filters import PredictionRecordFilter
from history.services import (
    OutcomeFileRejected,
    OutcomeInputError,
    outcome_import_create,
    outcomes_record,
    retention_policy_set,
    retention_setting,
)
from predictions.models import MLModel, ModelVersion

TAGS = ["history"]


def _mlmodel(slug: str) -> MLModel:
    return get_object_or_404(MLModel, slug=slug)


def _version(model: MLModel, number: int | None, field: str) -> ModelVersion | None:
    if number is None:
        return None
    version = ModelVersion.objects.filter(model=model, number=number).only("pk", "number").first()
    if version is None:
        raise ValidationError({field: f"{model.slug} has no version {number}."})
    return version


# --- Records ---------------------------------------------------------------------------------


class RecordListView(generics.ListAPIView):
    """Prediction records, newest first, filtered, keyset-paginated (fast at any depth)."""

    permission_classes = [IsViewer]
    serializer_class = api.RecordSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = PredictionRecordFilter
    pagination_class = KeysetPagination

    def get_queryset(self):
        return selectors.records_for_listing()

    @extend_schema(tags=TAGS, summary="List prediction records")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class RecordDetailView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS, summary="One prediction record, with its outcome if known", responses=api.RecordSerializer
    )
    def get(self, request, pk: int):
        record = selectors.record_detail(record_id=pk)
        if record is None:
            return error_response(404, f"No prediction record {pk}.")
        return Response(api.RecordSerializer(record).data)


class RecordExportView(generics.GenericAPIView):
    """The filtered records as one CSV or Parquet file, streamed while it is read."""

    permission_classes = [IsViewer]
    filter_backends = [DjangoFilterBackend]
    filterset_class = PredictionRecordFilter
    serializer_class = api.RecordSerializer

    def get_queryset(self):
        return selectors.records_for_listing()

    def perform_content_negotiation(self, request, force=False):
        # ?format=csv|parquet names the file; DRF would read it as a renderer and answer 404.
        renderer = FastJSONRenderer()
        return renderer, renderer.media_type

    @extend_schema(
        tags=TAGS,
        summary="Export filtered records as CSV or Parquet",
        parameters=[OpenApiParameter("format", str, enum=["csv", "parquet"], description="File format; default csv.")],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY),
            (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY),
        },
    )
    def get(self, request):
        params = api.ExportParamsSerializer(data={"format": request.query_params.get("format", "csv")})
        params.is_valid(raise_exception=True)
        records = self.filter_queryset(self.get_queryset())
        limit = settings.HISTORY_EXPORT_MAX_ROWS
        if records.order_by()[: limit + 1].count() > limit:
            raise ValidationError({"detail": f"Over {limit} records match: narrow the filters (time range, model)."})
        chunks = selectors.export_rows(records)
        if params.validated_data["format"] == "parquet":
            body, content_type, suffix = _parquet_stream(chunks), "application/vnd.apache.parquet", "parquet"
        else:
            body, content_type, suffix = _csv_stream(chunks), "text/csv", "csv"
        response = StreamingHttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="prediction-records.{suffix}"'
        return response


def _export_cells(row: tuple) -> list:
    cells = list(row)
    for index in (11, 12):  # features, output: JSON text in a cell
        cells[index] = orjson.dumps(cells[index]).decode()
    cells[3] = cells[3].isoformat()
    cells[9] = str(cells[9]) if cells[9] else None
    if cells[14] is not None:
        cells[14] = cells[14].isoformat()
    return cells


def _csv_stream(chunks: Iterator[list[tuple]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(selectors.EXPORT_COLUMNS)
    for rows in chunks:
        writer.writerows(_export_cells(row) for row in rows)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue().encode()


class _Drain(io.RawIOBase):
    """A write-only file whose content is taken away after each row group."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _parquet_stream(chunks: Iterator[list[tuple]]) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("id", pa.int64()), ("model", pa.string()), ("version", pa.int64()),
            ("created_at", pa.timestamp("us", tz="UTC")), ("source", pa.string()), ("correlation_id", pa.string()),
            ("entity_id", pa.string()), ("main_score", pa.float64()), ("latency_ms", pa.float64()),
            ("bulk_job_id", pa.string()), ("scheduled_execution_id", pa.int64()), ("features", pa.string()),
            ("output", pa.string()), ("outcome_value", pa.float64()),
            ("outcome_observed_at", pa.timestamp("us", tz="UTC")),
        ]
    )  # fmt: skip
    sink = _Drain()
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for rows in chunks:
            columns = list(zip(*rows, strict=True))
            columns[11] = [orjson.dumps(value).decode() for value in columns[11]]
            columns[12] = [orjson.dumps(value).decode() for value in columns[12]]
            columns[9] = [str(value) if value else None for value in columns[9]]
            arrays = [pa.array(column, type=f.type) for column, f in zip(columns, schema, strict=True)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            yield sink.take()
    yield sink.take()


# --- Outcomes --------------------------------------------------------------------------------


class OutcomesView(APIView):
    permission_classes = [ViewerReadsPredictorWrites]

    @extend_schema(
        tags=TAGS,
        summary="Record outcomes (ground truth) for predictions",
        description=(
            "Up to HISTORY_OUTCOMES_MAX_ITEMS (10,000) outcomes per call, for one model. Each names a "
            "`prediction_id`, or an `entity_id` with `window_start`/`window_end`: every prediction of that "
            "entity made in the window gets the outcome. Idempotent: a prediction keeps its first outcome; "
            "the same value again counts as unchanged, another value is reported as a conflict. A wrong "
            "value type (a number for a classifier, a label for a regressor) rejects the whole call."
        ),
        request=api.OutcomesInSerializer,
        responses={200: api.OutcomeReportSerializer},
    )
    def post(self, request):
        slug, items = api.outcome_items_from(request.data, max_items=settings.HISTORY_OUTCOMES_MAX_ITEMS)
        try:
            report = outcomes_record(slug=slug, items=items)
        except OutcomeInputError as exc:
            raise ValidationError({"outcomes": {str(index): error for index, error in exc.errors.items()}}) from None
        return Response(
            {
                "model": slug,
                "received": report.received,
                "recorded": report.recorded,
                "unchanged": report.unchanged,
                "conflicts": report.conflicts,
                "unmatched": report.unmatched,
            }
        )


class OutcomeUploadView(APIView):
    permission_classes = [ViewerReadsPredictorWrites]
    parser_classes = [MultiPartParser]

    @extend_schema(
        tags=TAGS,
        summary="Upload a CSV or Parquet file of outcomes (recorded in the background)",
        request={"multipart/form-data": api.OutcomeUploadSerializer},
        responses={202: api.OutcomeImportSerializer},
    )
    def post(self, request):
        params = api.OutcomeUploadSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        upload = params.validated_data["file"]
        try:
            imported = outcome_import_create(
                slug=params.validated_data["model"],
                filename=upload.name,
                upload=upload,
                uploaded_by=request.user.get_username(),
            )
        except OutcomeFileRejected as exc:
            return error_response(400, str(exc), code="invalid_file")
        return Response(api.OutcomeImportSerializer(imported).data, status=status.HTTP_202_ACCEPTED)


class OutcomeImportView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(tags=TAGS, summary="Progress and result of an outcome file", responses=api.OutcomeImportSerializer)
    def get(self, request, pk: int):
        imported = selectors.outcome_import(import_id=pk)
        if imported is None:
            return error_response(404, f"No outcome import {pk}.")
        return Response(api.OutcomeImportSerializer(imported).data)


# --- Trends and comparisons ------------------------------------------------------------------


class TrendView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="Trend of a model's predictions per hour, day, week or month",
        description=(
            "Per bucket: count, mean/std/min/max and percentiles (p05..p95, within 1 % from a fixed "
            "histogram) of the main score, class shares, outcome count and coverage, and the realised "
            "error (mean, mean absolute, RMSE) where outcomes exist. Empty buckets have count 0 and null "
            "statistics. Buckets are exact in zones with whole-hour offsets (`exact_buckets`)."
        ),
        parameters=[api.TrendParamsSerializer],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        params = api.TrendParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        model = _mlmodel(data["model"])
        query = selectors.TrendQuery(
            model=model,
            start=data["start"],
            end=data["end"],
            granularity=data["granularity"],
            zone=data["zone"],
            version=_version(model, data.get("version"), "version"),
            source=data.get("source"),
            group_by=data.get("group_by"),
            segment=data.get("segment"),
        )
        return Response(selectors.trend(query))


class CompareView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="Compare two periods, or two versions over one period",
        description=(
            "The trend statistics for each side, their difference (b - a), and a two-sample "
            "Kolmogorov-Smirnov test (scipy.stats.ks_2samp) of the main scores, on at most "
            "HISTORY_COMPARE_SAMPLE_SIZE (10,000) raw scores per side, drawn in a fixed pseudo-random "
            "order. Periods are widened to whole UTC hours."
        ),
        parameters=[api.CompareParamsSerializer],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        params = api.CompareParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        model = _mlmodel(data["model"])
        if data["mode"] == "versions":
            version_a = _version(model, data["version_a"], "version_a")
            version_b = _version(model, data["version_b"], "version_b")
        else:
            version_a = version_b = _version(model, data.get("version"), "version")
        a = selectors.Side("a", *selectors.hour_bounds(*data["a"]), version=version_a)
        b = selectors.Side("b", *selectors.hour_bounds(*data["b"]), version=version_b)
        return Response(selectors.comparison(model=model, a=a, b=b, source=data.get("source")))


# --- Retention -------------------------------------------------------------------------------


class RetentionView(APIView):
    """Anyone may read the retention age; only admins change it."""

    permission_classes = [IsViewer]

    @extend_schema(tags=TAGS, summary="How long raw records are kept", responses=api.RetentionSerializer)
    def get(self, request):
        return Response(self._state())

    @extend_schema(
        tags=TAGS,
        summary="Change how long raw records are kept (admin)",
        request=api.RetentionSerializer,
        responses=api.RetentionSerializer,
    )
    def put(self, request):
        params = api.RetentionSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        retention_policy_set(max_age_days=params.validated_data["max_age_days"], updated_by=request.user.get_username())
        return Response(self._state())

    def _state(self) -> dict:
        policy = retention_setting()
        state = selectors.maintenance_state()
        return api.RetentionSerializer(
            {
                "max_age_days": policy.max_age_days,
                "stored": policy.stored,
                "updated_at": policy.updated_at,
                "updated_by": policy.updated_by,
                "cutoff": selectors.retention_cutoff(policy.max_age_days),
                "rolled_until": state.rolled_until if state else None,
                "last_run_at": state.retention_last_run_at if state else None,
                "last_run_deleted": state.retention_last_deleted if state else 0,
            }
        ).data
