from __future__ import annotations

import time

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsOperator
from config.api.errors import error_response
from config.api.exceptions import ServiceUnavailable
from config.health import tasks
from config.health.checks import READINESS_CHECKS, check_broker, run_readiness_checks

QUEUES = [queue.name for queue in settings.CELERY_TASK_QUEUES]  # config/settings.py declares them


class LiveView(APIView):
    """Liveness: the process is up and serving. Cheap; touches no dependency."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(responses=inline_serializer("Live", {"status": serializers.CharField()}))
    def get(self, request):
        return Response({"status": "ok"})


class ReadyView(APIView):
    """Readiness: database, broker and cache answer, active model artifacts verify. 503 names each part that fails."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        responses={
            200: inline_serializer(
                "Ready",
                {"status": serializers.CharField(), "checks": serializers.DictField(child=serializers.CharField())},
            )
        }
    )
    def get(self, request):
        failures = {name: reason for name, reason in run_readiness_checks().items() if reason}
        if failures:
            return error_response(
                503, f"Not ready: {', '.join(failures.values())}.", code="not_ready", details=failures
            )
        return Response({"status": "ready", "checks": {name: "ok" for name in READINESS_CHECKS}})


class WorkerCheckRequestSerializer(serializers.Serializer):
    queue = serializers.ChoiceField(choices=QUEUES, default="default")
    timeout = serializers.FloatField(min_value=0.5, max_value=30, default=5, help_text="Seconds to wait.")


class WorkerCheckView(APIView):
    """Send a task to a queue and wait for a worker to answer it (operator diagnostics)."""

    permission_classes = [IsOperator]

    @extend_schema(
        request=WorkerCheckRequestSerializer,
        responses=inline_serializer(
            "WorkerCheck",
            {
                "queue": serializers.CharField(),
                "worker": serializers.CharField(),
                "correlation_id_seen": serializers.CharField(),
                "round_trip_ms": serializers.FloatField(),
            },
        ),
    )
    def post(self, request):
        params = WorkerCheckRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        queue, timeout = params.validated_data["queue"], params.validated_data["timeout"]
        if reason := check_broker():
            raise ServiceUnavailable(f"Cannot send the check: {reason}.")
        started = time.perf_counter()
        # Expires with the wait: a check nobody answered must not run later on a new worker.
        pending = tasks.echo.apply_async(args=[queue], queue=queue, expires=timeout)
        try:
            answer = pending.get(timeout=timeout)
        except CeleryTimeout:
            return error_response(
                status.HTTP_504_GATEWAY_TIMEOUT,
                f"No worker answered on queue '{queue}' within {timeout:g} s.",
                code="no_worker",
            )
        return Response(
            {
                "queue": queue,
                "worker": answer["worker"],
                "correlation_id_seen": answer["correlation_id"],
                "round_trip_ms": round((time.perf_counter() - started) * 1000, 1),
            }
        )
