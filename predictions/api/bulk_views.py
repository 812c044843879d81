from __future__ import annotations

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Prefetch
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import APIKey
from accounts.permissions import IsPredictor, ViewerReadsPredictorWrites, request_role
from config.api.errors import error_response
from config.api.parsers import SafeJSONParser
from config.api.renderers import FastJSONRenderer
from predictions import bulk_files
from predictions.api import bulk_serializers as api
from predictions.bulk import (
    BulkJobStateError,
    BulkModelUnavailable,
    BulkSource,
    BulkSubmitError,
    bulk_job_cancel,
    bulk_job_submit,
)
from predictions.bulk_files import BulkInputError
from predictions.bulk_selectors import bulk_error_parts, bulk_jobs_visible, bulk_result_parts
from predictions.callbacks import CallbackRefused, callback_secret_create
from predictions.filters import BulkJobFilter
from predictions.models import BULK_JOB_ACTIVE, BulkCallbackSecret, BulkInputKind, CallbackDelivery

_MEDIA_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
_TAGS = ["bulk predictions"]


class _AnyMediaRenderer(BaseRenderer):
    """Lets downloads be asked for with any Accept header (text/csv...); errors stay JSON."""

    media_type = "*/*"
    format = "download"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


def _visible_jobs(request):
    return bulk_jobs_visible(user=request.user, role=request_role(request))


def _api_key(request) -> APIKey | None:
    return request.auth if isinstance(request.auth, APIKey) else None


class BulkJobListCreateView(generics.ListAPIView):
    """Bulk prediction jobs: submit a file, rows or a dataset; list your jobs (admins: all)."""

    permission_classes = [ViewerReadsPredictorWrites]
    parser_classes = [SafeJSONParser, MultiPartParser]
    serializer_class = api.BulkJobSerializer
    filterset_class = BulkJobFilter

    def get_queryset(self):
        return _visible_jobs(self.request)

    @extend_schema(tags=_TAGS, summary="List bulk jobs (your own; admins see all)")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=_TAGS,
        summary="Submit a bulk prediction job",
        description=(
            "Answers 202 at once with the job (its URL in `Location`); workers then predict chunk by chunk. "
            "A bad file, header or column type is a 400 before any work starts; bad rows are reported per line "
            "in the job's error report (`errors_url`)."
        ),
        request={
            "multipart/form-data": api.BulkUploadSerializer,
            "application/json": api.BulkRowsSubmitSerializer,
        },
        responses={
            202: api.BulkSubmittedSerializer,
            503: OpenApiResponse(description="The model has no active version."),
        },
        examples=[
            OpenApiExample(
                "rows",
                request_only=True,
                media_type="application/json",
                value={"model": "churn", "rows": [{"features": {"tenure_months": 18}, "entity_id": "client-1"}]},
            )
        ],
    )
    def post(self, request):
        if request.content_type.startswith("multipart/"):
            params = api.BulkUploadSerializer(data=request.data)
            params.is_valid(raise_exception=True)
            upload = params.validated_data["file"]
            if upload.size > settings.MAX_UPLOAD_BYTES:
                return error_response(413, f"The file is over the limit of {settings.MAX_UPLOAD_BYTES} bytes.")
            source = BulkSource(kind=BulkInputKind.FILE, upload=upload)
        else:
            params = api.BulkRowsSubmitSerializer(data=request.data)
            params.is_valid(raise_exception=True)
            data = params.validated_data
            if "dataset" in data:
                source = BulkSource(kind=BulkInputKind.DATASET, dataset=data["dataset"])
            else:
                source = BulkSource(kind=BulkInputKind.ROWS, rows=data["rows"])
        data = params.validated_data
        try:
            submitted = bulk_job_submit(
                slug=data["model"],
                source=source,
                owner=request.user,
                api_key=_api_key(request),
                correlation_id=request.correlation_id,
                output_format=data.get("output_format"),
                callback_url=data.get("callback_url", ""),
                chunk_rows=data.get("chunk_size"),
            )
        except BulkInputError as exc:
            return error_response(400, str(exc), code="invalid_input")
        except CallbackRefused as exc:
            raise ValidationError({"callback_url": str(exc)}) from None
        except BulkSubmitError as exc:
            return error_response(400, str(exc), code="invalid_input")
        except BulkModelUnavailable as exc:
            return error_response(503, str(exc), code="model_unavailable")
        job = _visible_jobs(request).get(pk=submitted.job.pk)
        body = api.BulkSubmittedSerializer(job).data
        if submitted.callback_secret:
            body["callback_secret"] = submitted.callback_secret
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class BulkJobDetailView(APIView):
    permission_classes = [ViewerReadsPredictorWrites]

    def _job(self, request, pk):
        deliveries = Prefetch("deliveries", queryset=CallbackDelivery.objects.order_by("created_at", "id"))
        return get_object_or_404(_visible_jobs(request).prefetch_related(deliveries), pk=pk)

    @extend_schema(tags=_TAGS, summary="A bulk job: status, progress, timings, callback deliveries",
                   responses=api.BulkJobDetailSerializer)  # fmt: skip
    def get(self, request, pk):
        return Response(api.BulkJobDetailSerializer(self._job(request, pk)).data)

    @extend_schema(
        tags=_TAGS,
        summary="Cancel a bulk job",
        description="Chunks running now stop at their end without writing anything; results written before stay.",
        responses={200: api.BulkJobDetailSerializer, 409: OpenApiResponse(description="The job already finished.")},
    )
    def delete(self, request, pk):
        job = self._job(request, pk)
        try:
            bulk_job_cancel(job=job, cancelled_by=request.user.get_username())
        except BulkJobStateError as exc:
            return error_response(409, str(exc), code="conflict")
        return Response(api.BulkJobDetailSerializer(self._job(request, pk)).data)


class _DownloadView(APIView):
    permission_classes = [ViewerReadsPredictorWrites]
    renderer_classes = [FastJSONRenderer, _AnyMediaRenderer]

    def _finished_job(self, request, pk):
        job = get_object_or_404(_visible_jobs(request), pk=pk)
        if job.status in BULK_JOB_ACTIVE:
            return job, error_response(409, f"The job is {job.status}; download once it has finished.", code="conflict")
        if job.files_deleted_at is not None:
            return job, error_response(
                410, f"The job's files were deleted on {job.files_deleted_at:%Y-%m-%d} (kept for "
                f"{settings.BULK_RETENTION_DAYS} days).", code="expired"
            )  # fmt: skip
        return job, None


def _openers(paths: list[str]):
    return [lambda path=path: default_storage.open(path, "rb") for path in paths]


class BulkJobResultsView(_DownloadView):
    @extend_schema(
        tags=_TAGS,
        summary="Download a finished job's results (streamed)",
        description=(
            "One row per predicted input row, in input order: `index` (the row's position in the input, from 0), "
            "`entity_id`, `prediction_id` (its history record) and the prediction. CSV and Parquet flatten the "
            "prediction into columns (nested values as JSON text); JSON lines keep it as an object. Cancelled and "
            "failed jobs give the rows finished before they stopped."
        ),
        responses={
            (200, "*/*"): OpenApiTypes.BINARY,
            409: OpenApiResponse(description="Not finished yet."),
            410: OpenApiResponse(description="Deleted after the retention period."),
        },
    )
    def get(self, request, pk):
        job, refusal = self._finished_job(request, pk)
        if refusal:
            return refusal
        parts = _openers(bulk_result_parts(job))
        if job.output_format == "jsonl":
            content = bulk_files.stream_bytes(parts)
        else:
            content = bulk_files.stream_table(parts, output_format=job.output_format)
        response = StreamingHttpResponse(content, content_type=_MEDIA_TYPES[job.output_format])
        response["Content-Disposition"] = f'attachment; filename="bulk-{job.pk}.{job.output_format}"'
        return response


class BulkJobErrorsView(_DownloadView):
    @extend_schema(
        tags=_TAGS,
        summary="Download a finished job's error report (JSON lines, streamed)",
        description=(
            "One line per refused input row: `index` (position from 0), `line` (CSV: the file's line), "
            "`entity_id` if any, and `errors` by field. Lines a CSV reader could not split come first, with "
            "`line` only."
        ),
        responses={
            (200, "application/x-ndjson"): OpenApiTypes.BINARY,
            409: OpenApiResponse(description="Not finished yet."),
            410: OpenApiResponse(description="Deleted after the retention period."),
        },
    )
    def get(self, request, pk):
        job, refusal = self._finished_job(request, pk)
        if refusal:
            return refusal
        response = StreamingHttpResponse(
            bulk_files.stream_bytes(_openers(bulk_error_parts(job))), content_type=_MEDIA_TYPES["jsonl"]
        )
        response["Content-Disposition"] = f'attachment; filename="bulk-{job.pk}-errors.jsonl"'
        return response


class BulkCallbackSecretView(APIView):
    """The secret that signs your API key's bulk callbacks."""

    permission_classes = [IsPredictor]

    def _key(self, request) -> APIKey:
        key = _api_key(request)
        if key is None:
            raise ValidationError({"api_key": "Callback secrets belong to API keys: authenticate with one."})
        return key

    @extend_schema(tags=_TAGS, summary="Whether your key has a callback secret",
                   responses=api.CallbackSecretStatusSerializer)  # fmt: skip
    def get(self, request):
        found = BulkCallbackSecret.objects.filter(api_key=self._key(request)).values("created_at").first()
        return Response({"exists": found is not None, "created_at": found["created_at"] if found else None})

    @extend_schema(
        tags=_TAGS,
        summary="Create or rotate your key's callback secret (shown once)",
        request=None,
        responses={201: api.CallbackSecretSerializer},
    )
    def post(self, request):
        key = self._key(request)
        secret = callback_secret_create(api_key=key)
        created_at = BulkCallbackSecret.objects.values_list("created_at", flat=True).get(api_key=key)
        return Response({"secret": secret, "created_at": created_at}, status=status.HTTP_201_CREATED)
