from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scheduling.models import MisfirePolicy, ScheduledRun, ScheduledRunExecution
from scheduling.selectors import upcoming_fire_times

PARAMETERS_HELP = (
    "The input scored at every execution, one of: "
    '`{"source": "dataset", "dataset_id": 12}` (a dataset uploaded with POST /api/datasets); '
    '`{"source": "rows", "rows": [{<features>}, ...], "entity_ids": ["...", ...]}` (up to 10,000 rows '
    "of the model's features, entity_ids optional); "
    '`{"source": "generator", "count": 1000, "seed": null, "drift": 0.0}` (the model\'s synthetic data, '
    "for demos: seed null draws new rows at every execution). Checked against the model's feature schema."
)
SCHEDULE_HELP = (
    "Five cron fields, `minute hour day-of-month month day-of-week` (e.g. `*/15 * * * *`, "
    "`30 2 * * mon-fri`), or @hourly, @daily, @weekly, @monthly, @yearly; read in `timezone`."
)


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only (DRF's own also takes "yes", "1", ...)."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)


class ScheduledRunWriteSerializer(serializers.Serializer):
    """PUT: every field. PATCH: any of them."""

    name = serializers.CharField(max_length=120, allow_blank=True, help_text="Defaults to '<model> <schedule>'.")
    model_name = serializers.CharField(help_text="The model's slug, e.g. `churn` (GET /api/models).")
    schedule = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text=SCHEDULE_HELP)
    timezone = serializers.CharField(help_text="IANA time zone name, e.g. `Europe/Paris`. Default `UTC`.")
    parameters = serializers.JSONField(help_text=PARAMETERS_HELP)
    misfire_policy = serializers.ChoiceField(
        choices=MisfirePolicy.choices,
        help_text="After downtime: `skip` the missed slots, or `run_once` for all of them (default).",
    )
    enabled = StrictBooleanField(help_text="Disabled runs keep their history and can still be triggered by hand.")

    # API field -> service keyword
    SERVICE_NAMES = {
        "name": "name",
        "model_name": "model_slug",
        "schedule": "cron",
        "timezone": "timezone_name",
        "parameters": "parameters",
        "misfire_policy": "misfire_policy",
        "enabled": "enabled",
    }

    def service_kwargs(self) -> dict:
        return {self.SERVICE_NAMES[key]: value for key, value in self.validated_data.items()}


class ScheduledRunCreateSerializer(ScheduledRunWriteSerializer):
    name = serializers.CharField(
        max_length=120, required=False, allow_blank=True, help_text="Defaults to '<model> <schedule>'."
    )
    timezone = serializers.CharField(required=False, default="UTC", help_text="IANA time zone name. Default `UTC`.")
    misfire_policy = serializers.ChoiceField(
        choices=MisfirePolicy.choices,
        required=False,
        default=MisfirePolicy.RUN_ONCE,
        help_text="After downtime: `skip` the missed slots, or `run_once` for all of them.",
    )
    enabled = StrictBooleanField(required=False, default=True)


class FireTimeSerializer(serializers.Serializer):
    local = serializers.CharField(help_text="ISO 8601 with the run's UTC offset at that moment.")
    utc = serializers.CharField(help_text="ISO 8601 in UTC.")


class ScheduledRunSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    model_name = serializers.CharField(source="model.slug")
    schedule = serializers.CharField(source="cron")
    parameters = serializers.SerializerMethodField()
    last_execution_id = serializers.IntegerField(allow_null=True)
    last_run_at = serializers.SerializerMethodField(help_text="When the latest execution started (or was queued).")
    last_status = serializers.SerializerMethodField()
    next_runs = serializers.SerializerMethodField(help_text="The next five fire times, in the run's zone and in UTC.")

    class Meta:
        model = ScheduledRun
        fields = [
            "id",
            "name",
            "owner",
            "model_name",
            "schedule",
            "timezone",
            "enabled",
            "parameters",
            "misfire_policy",
            "next_run_at",
            "next_runs",
            "last_execution_id",
            "last_run_at",
            "last_status",
            "consecutive_failures",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_parameters(self, run: ScheduledRun) -> dict:
        """In lists, inline rows are summarised as their count; GET the run for the rows themselves."""
        parameters = run.parameters
        if self.context.get("summary") and parameters.get("source") == "rows":
            return {"source": "rows", "row_count": len(parameters.get("rows", []))}
        return parameters

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_last_run_at(self, run: ScheduledRun):
        last = run.last_execution
        if last is None:
            return None
        return serializers.DateTimeField().to_representation(last.started_at or last.created_at)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_last_status(self, run: ScheduledRun) -> str | None:
        return run.last_execution.status if run.last_execution else None

    @extend_schema_field(FireTimeSerializer(many=True))
    def get_next_runs(self, run: ScheduledRun) -> list[dict[str, str]]:
        return upcoming_fire_times(run)


class ExecutionSerializer(serializers.ModelSerializer):
    run = serializers.IntegerField(source="run_id")
    model_version = serializers.IntegerField(source="model_version.number", allow_null=True, default=None)
    triggered_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    lag_seconds = serializers.SerializerMethodField(help_text="From the slot's time to the start (scheduled only).")
    duration_seconds = serializers.SerializerMethodField()

    class Meta:
        model = ScheduledRunExecution
        fields = [
            "id",
            "run",
            "trigger",
            "slot",
            "status",
            "created_at",
            "started_at",
            "finished_at",
            "lag_seconds",
            "duration_seconds",
            "rows_scored",
            "model_version",
            "missed_slots",
            "error",
            "note",
            "correlation_id",
            "triggered_by",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_lag_seconds(self, execution: ScheduledRunExecution) -> float | None:
        if execution.slot is None or execution.started_at is None:
            return None
        return round((execution.started_at - execution.slot).total_seconds(), 3)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_duration_seconds(self, execution: ScheduledRunExecution) -> float | None:
        if execution.started_at is None or execution.finished_at is None:
            return None
        return round((execution.finished_at - execution.started_at).total_seconds(), 3)
