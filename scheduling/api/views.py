from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import ViewerReadsOperatorWrites, request_role
from scheduling.api.serializers import (
    ExecutionSerializer,
    ScheduledRunCreateSerializer,
    ScheduledRunSerializer,
    ScheduledRunWriteSerializer,
)
from scheduling.filters import ExecutionFilter, ScheduledRunFilter
from scheduling.models import ScheduledRun, ScheduledRunExecution
from scheduling.selectors import executions_of, scheduled_runs_visible_to
from scheduling.services import (
    ScheduledRunInvalid,
    scheduled_run_create,
    scheduled_run_delete,
    scheduled_run_trigger,
    scheduled_run_update,
)

TAG = "scheduled runs"
# Service field names as the API calls them.
_API_FIELD = {"model": "model_name", "cron": "schedule", "timezone": "timezone"}

CREATE_EXAMPLE = {
    "name": "Nightly churn scores",
    "model_name": "churn",
    "schedule": "30 2 * * *",
    "timezone": "Europe/Paris",
    "parameters": {"source": "generator", "count": 1000, "seed": None, "drift": 0.0},
    "misfire_policy": "run_once",
    "enabled": True,
}


def _invalid(exc: ScheduledRunInvalid) -> ValidationError:
    """Field errors as DRF gives them (a list of messages), nested ones (rows, parameters) as they are."""
    return ValidationError(
        {
            _API_FIELD.get(field, field): [error] if isinstance(error, str) else error
            for field, error in exc.errors.items()
        }
    )


def _visible_runs(request):
    return scheduled_runs_visible_to(user=request.user, role=request_role(request))


def _run_or_404(request, run_id: int) -> ScheduledRun:
    run = _visible_runs(request).filter(pk=run_id).first()
    if run is None:  # someone else's run answers like a missing one
        raise NotFound(f"No scheduled run {run_id}.")
    return run


@extend_schema_view(
    get=extend_schema(
        tags=[TAG],
        summary="List scheduled runs",
        description="Your runs (admins: every run), newest first. Inline rows are shown as their count.",
    )
)
class ScheduledRunListCreateView(generics.ListAPIView):
    permission_classes = [ViewerReadsOperatorWrites]
    serializer_class = ScheduledRunSerializer
    filterset_class = ScheduledRunFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ScheduledRun.objects.none()
        return _visible_runs(self.request)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "summary": True}

    @extend_schema(
        tags=[TAG],
        summary="Create a scheduled run",
        description="Operators and admins. The run belongs to you; beat starts firing it at its next slot.",
        request=ScheduledRunCreateSerializer,
        responses={201: ScheduledRunSerializer},
        examples=[OpenApiExample("nightly", value=CREATE_EXAMPLE, request_only=True)],
    )
    def post(self, request):
        params = ScheduledRunCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            run = scheduled_run_create(owner=request.user, **params.service_kwargs())
        except ScheduledRunInvalid as exc:
            raise _invalid(exc) from None
        run = _visible_runs(request).get(pk=run.pk)
        return Response(ScheduledRunSerializer(run).data, status=status.HTTP_201_CREATED)


class ScheduledRunDetailView(APIView):
    permission_classes = [ViewerReadsOperatorWrites]

    @extend_schema(tags=[TAG], summary="A scheduled run", responses=ScheduledRunSerializer)
    def get(self, request, run_id: int):
        return Response(ScheduledRunSerializer(_run_or_404(request, run_id)).data)

    @extend_schema(
        tags=[TAG],
        summary="Replace a scheduled run (every field)",
        description="A new schedule or time zone takes effect from the next slot.",
        request=ScheduledRunWriteSerializer,
        responses=ScheduledRunSerializer,
    )
    def put(self, request, run_id: int):
        return self._update(request, run_id, partial=False)

    @extend_schema(
        tags=[TAG],
        summary="Change some fields of a scheduled run",
        description='Send only what changes, e.g. `{"enabled": false}`. A new schedule applies from the next slot.',
        request=ScheduledRunWriteSerializer,
        responses=ScheduledRunSerializer,
    )
    def patch(self, request, run_id: int):
        return self._update(request, run_id, partial=True)

    @extend_schema(tags=[TAG], summary="Delete a scheduled run", responses={204: None})
    def delete(self, request, run_id: int):
        scheduled_run_delete(run=_run_or_404(request, run_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request, run_id: int, *, partial: bool) -> Response:
        run = _run_or_404(request, run_id)
        params = ScheduledRunWriteSerializer(data=request.data, partial=partial)
        params.is_valid(raise_exception=True)
        try:
            scheduled_run_update(run=run, **params.service_kwargs())
        except ScheduledRunInvalid as exc:
            raise _invalid(exc) from None
        return Response(ScheduledRunSerializer(_run_or_404(request, run_id)).data)


class ScheduledRunTriggerView(APIView):
    permission_classes = [ViewerReadsOperatorWrites]

    @extend_schema(
        tags=[TAG],
        summary="Run now",
        description=(
            "Queues an execution of the run now, outside its schedule (a disabled run too). Answers at "
            "once with the execution, `pending`; follow it at /api/scheduled/{run_id}/executions/{id}."
        ),
        request=None,
        responses={202: ExecutionSerializer},
    )
    def post(self, request, run_id: int):
        run = _run_or_404(request, run_id)
        execution = scheduled_run_trigger(run=run, user=request.user, correlation_id=request.correlation_id)
        return Response(ExecutionSerializer(execution).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(get=extend_schema(tags=[TAG], summary="Executions of a scheduled run, newest first"))
class ExecutionListView(generics.ListAPIView):
    permission_classes = [ViewerReadsOperatorWrites]
    serializer_class = ExecutionSerializer
    filterset_class = ExecutionFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ScheduledRunExecution.objects.none()
        return executions_of(_run_or_404(self.request, self.kwargs["run_id"]))


class ExecutionDetailView(APIView):
    permission_classes = [ViewerReadsOperatorWrites]

    @extend_schema(
        tags=[TAG],
        summary="One execution of a scheduled run",
        responses={200: ExecutionSerializer, 404: OpenApiResponse(description="No such execution of this run.")},
    )
    def get(self, request, run_id: int, execution_id: int):
        execution = executions_of(_run_or_404(request, run_id)).filter(pk=execution_id).first()
        if execution is None:
            raise NotFound(f"No execution {execution_id} of scheduled run {run_id}.")
        return Response(ExecutionSerializer(execution).data)
