from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone
from rest_framework import serializers

from config.api.datetimes import as_utc
from history.buckets import GRANULARITIES, bucket_count
from history.models import OutcomeImport, PredictionRecord, Source
from history.services import RETENTION_MAX_DAYS, OutcomeItem
from predictions.catalog import CATALOG, get_catalog_model

# A trend answers at most this many points per series: a year of hours, with room to spare.
MAX_TREND_BUCKETS = 10_000
# The span a trend covers when no start is given, per granularity.
DEFAULT_TREND_SPAN = {
    "hour": timedelta(days=2),
    "day": timedelta(days=30),
    "week": timedelta(weeks=26),
    "month": timedelta(days=365),
}
DEFAULT_COMPARE_SPAN = timedelta(days=30)


def iso(value: datetime | None) -> str | None:
    """As DRF's DateTimeField writes it: ISO 8601, UTC as Z."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# --- Records ---------------------------------------------------------------------------------


class OutcomeSerializer(serializers.Serializer):
    value = serializers.FloatField()
    error = serializers.FloatField(allow_null=True, help_text="Main score minus value, where comparable.")
    observed_at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()


class RecordSerializer(serializers.Serializer):
    """One record. Written by hand (to_representation): a 1,000-record page renders ~5x faster."""

    id = serializers.IntegerField()
    model = serializers.CharField(help_text="Model slug.")
    version = serializers.IntegerField(help_text="Version number.")
    created_at = serializers.DateTimeField()
    source = serializers.ChoiceField(choices=Source.choices)
    correlation_id = serializers.CharField()
    api_key_prefix = serializers.CharField()
    entity_id = serializers.CharField()
    main_score = serializers.FloatField(allow_null=True)
    latency_ms = serializers.FloatField()
    bulk_job_id = serializers.UUIDField(allow_null=True)
    scheduled_execution_id = serializers.IntegerField(allow_null=True)
    features = serializers.JSONField()
    output = serializers.JSONField()
    outcome = OutcomeSerializer(allow_null=True, help_text="The realised value, once known.")

    def to_representation(self, record: PredictionRecord) -> dict[str, Any]:
        try:
            outcome = record.outcome
        except ObjectDoesNotExist:
            outcome = None
        return {
            "id": record.pk,
            "model": record.model.slug,
            "version": record.version.number,
            "created_at": iso(record.created_at),
            "source": record.source,
            "correlation_id": record.correlation_id,
            "api_key_prefix": record.api_key_prefix,
            "entity_id": record.entity_id,
            "main_score": record.main_score,
            "latency_ms": record.latency_ms,
            "bulk_job_id": str(record.bulk_job_id) if record.bulk_job_id else None,
            "scheduled_execution_id": record.scheduled_execution_id,
            "features": record.features,
            "output": record.output,
            "outcome": None
            if outcome is None
            else {
                "value": outcome.value,
                "error": outcome.error,
                "observed_at": iso(outcome.observed_at),
                "recorded_at": iso(outcome.recorded_at),
            },
        }


class ExportParamsSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["csv", "parquet"], default="csv")


# --- Outcomes --------------------------------------------------------------------------------


class OutcomeInSerializer(serializers.Serializer):
    """One outcome: by ``prediction_id``, or by ``entity_id`` and a window of prediction times."""

    prediction_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
    entity_id = serializers.CharField(max_length=120, required=False)
    window_start = serializers.DateTimeField(required=False, help_text="Predictions made at or after this time...")
    window_end = serializers.DateTimeField(required=False, help_text="...and before this time.")
    value = serializers.JSONField(help_text="0/1 (or false/true) for classifiers, a number for regressors.")
    observed_at = serializers.DateTimeField(required=False, help_text="When it became known; default now.")


class OutcomesInSerializer(serializers.Serializer):
    """The request body, for the schema. Parsed by ``outcome_items_from``: DRF's nested
    serializers cost ~60 µs per item, most of a 10,000-outcome call."""

    model = serializers.ChoiceField(choices=list(CATALOG))
    outcomes = OutcomeInSerializer(many=True, allow_empty=False)


_OUTCOME_FIELDS = frozenset(OutcomeInSerializer().fields)


def outcome_items_from(data: Any, *, max_items: int) -> tuple[str, list[OutcomeItem]]:
    """(model slug, items) from the body; a ValidationError lists every malformed item by index."""
    if not isinstance(data, dict) or set(data) - {"model", "outcomes"}:
        raise serializers.ValidationError({"body": "Send {'model': '<slug>', 'outcomes': [{...}, ...]}."})
    slug = data.get("model")
    if not isinstance(slug, str) or slug not in CATALOG:
        raise serializers.ValidationError({"model": f"Choose one of {', '.join(CATALOG)}."})
    raw = data.get("outcomes")
    if not isinstance(raw, list) or not 1 <= len(raw) <= max_items:
        raise serializers.ValidationError(
            {"outcomes": f"Send a list of 1 to {max_items} outcomes; upload a file for more."}
        )
    items, errors = [], {}
    for index, item in enumerate(raw):
        try:
            items.append(_outcome_item(item))
        except ValueError as exc:
            errors[str(index)] = str(exc)
    if errors:
        raise serializers.ValidationError({"outcomes": errors})
    return slug, items


def _outcome_item(item: Any) -> OutcomeItem:
    if not isinstance(item, dict):
        raise ValueError("Must be an object.")
    unknown = set(item) - _OUTCOME_FIELDS
    if unknown:
        raise ValueError(f"Unknown field(s): {', '.join(sorted(map(str, unknown)))}.")
    if "value" not in item:
        raise ValueError("'value' is required.")
    prediction_id = item.get("prediction_id")
    if prediction_id is not None and (
        not isinstance(prediction_id, int) or isinstance(prediction_id, bool) or not 1 <= prediction_id < 2**63
    ):
        raise ValueError("prediction_id must be a positive whole number.")
    entity_id = item.get("entity_id")
    if entity_id is not None and (
        not isinstance(entity_id, str) or len(entity_id) > 120 or not entity_id.isprintable()
    ):
        raise ValueError("entity_id must be printable text of at most 120 characters.")
    return OutcomeItem(
        value=item["value"],
        prediction_id=prediction_id,
        entity_id=entity_id,
        window_start=_aware("window_start", item.get("window_start")),
        window_end=_aware("window_end", item.get("window_end")),
        observed_at=_aware("observed_at", item.get("observed_at")),
    )


# Times a client may send: anything outside cannot be a prediction's or an outcome's, and
# stays clear of the calendar's ends in every time zone the admin or a report may show it in.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


def _aware(name: str, raw: Any) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        value = None
    if value is None:
        raise ValueError(f"{name} must be an ISO 8601 date-time.")
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else as_utc(value)
    except ValueError:
        value = None  # year 0 or 10000 in UTC
    if value is None or not EARLIEST <= value <= LATEST:
        raise ValueError(f"{name} must lie between {EARLIEST.year} and {LATEST.year}.")
    return value


class OutcomeReportSerializer(serializers.Serializer):
    model = serializers.CharField()
    received = serializers.IntegerField()
    recorded = serializers.IntegerField(help_text="Predictions that got their outcome with this call.")
    unchanged = serializers.IntegerField(help_text="Predictions that already had this same outcome.")
    conflicts = serializers.ListField(
        child=serializers.DictField(), help_text="Predictions that already had another outcome, which was kept."
    )
    unmatched = serializers.ListField(child=serializers.DictField(), help_text="Items that matched no prediction.")


class OutcomeUploadSerializer(serializers.Serializer):
    model = serializers.ChoiceField(choices=list(CATALOG))
    file = serializers.FileField(
        help_text="CSV or Parquet: value, and prediction_id or entity_id + window_start + window_end; observed_at."
    )


class OutcomeImportSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = OutcomeImport
        fields = [
            "id", "model", "file_format", "status", "rows", "recorded", "unchanged", "conflicts", "unmatched",
            "invalid", "problems", "error", "uploaded_by", "created_at", "finished_at",
        ]  # fmt: skip


# --- Trends and comparisons ------------------------------------------------------------------


def zone_from(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise serializers.ValidationError({"tz": f"Unknown time zone {name!r}; use an IANA name."}) from None


def moment_from(field: str, raw: str | None, zone: ZoneInfo) -> datetime | None:
    """ISO 8601 date or date-time; without an offset it is read in ``zone``."""
    if raw in (None, ""):
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise serializers.ValidationError({field: "Use an ISO 8601 date or date-time."}) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    if not EARLIEST <= value <= LATEST:
        raise serializers.ValidationError({field: "Out of range."})
    # Kept in its own offset: the default span before ``end`` counts calendar days in the
    # caller's zone, and the bucket code converts to UTC before any query.
    return value


class TrendParamsSerializer(serializers.Serializer):
    model = serializers.ChoiceField(choices=list(CATALOG))
    granularity = serializers.ChoiceField(choices=list(GRANULARITIES), default="day")
    start = serializers.CharField(required=False, help_text="ISO 8601; default: end minus a span per granularity.")
    end = serializers.CharField(required=False, help_text="ISO 8601 (exclusive); default now.")
    tz = serializers.CharField(default="UTC", help_text="IANA time zone of the buckets and of times without offset.")
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False)
    source = serializers.ChoiceField(choices=Source.choices, required=False)
    group_by = serializers.ChoiceField(choices=["version", "source", "segment"], required=False)
    segment = serializers.CharField(required=False, help_text="Feature to split by (with group_by=segment).")

    def validate(self, data: dict) -> dict:
        zone = zone_from(data["tz"])
        end = moment_from("end", data.get("end"), zone) or timezone.now()
        start = moment_from("start", data.get("start"), zone) or end - DEFAULT_TREND_SPAN[data["granularity"]]
        if end <= start:
            raise serializers.ValidationError({"end": "Must be after start."})
        if bucket_count(start, end, data["granularity"]) > MAX_TREND_BUCKETS:
            raise serializers.ValidationError(
                {"granularity": f"Over {MAX_TREND_BUCKETS} buckets: choose a coarser granularity or a shorter range."}
            )
        if (data.get("group_by") == "segment") != bool(data.get("segment")):
            raise serializers.ValidationError({"segment": "Give segment exactly when group_by is segment."})
        if data.get("segment"):
            features = {f.name: f for f in get_catalog_model(data["model"]).features}
            feature = features.get(data["segment"])
            if feature is None or feature.kind not in ("category", "boolean"):
                choices = sorted(name for name, f in features.items() if f.kind in ("category", "boolean"))
                raise serializers.ValidationError({"segment": f"Choose a categorical feature: {', '.join(choices)}."})
        return {**data, "zone": zone, "start": start, "end": end}


class CompareParamsSerializer(serializers.Serializer):
    model = serializers.ChoiceField(choices=list(CATALOG))
    source = serializers.ChoiceField(choices=Source.choices, required=False)
    tz = serializers.CharField(default="UTC", help_text="Time zone of times given without offset.")
    a_start = serializers.CharField(required=False, help_text="Two periods: a_start, a_end, b_start, b_end.")
    a_end = serializers.CharField(required=False)
    b_start = serializers.CharField(required=False)
    b_end = serializers.CharField(required=False)
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False, help_text="With periods.")
    version_a = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False, help_text="Two versions.")
    version_b = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False)
    start = serializers.CharField(required=False, help_text="With two versions; default 30 days before end.")
    end = serializers.CharField(required=False, help_text="With two versions; default now.")

    def validate(self, data: dict) -> dict:
        zone = zone_from(data["tz"])
        periods = [name for name in ("a_start", "a_end", "b_start", "b_end") if data.get(name)]
        versions = [name for name in ("version_a", "version_b") if data.get(name)]
        if versions and periods:
            raise serializers.ValidationError({"version_a": "Compare two periods or two versions, not both."})
        if versions:
            if len(versions) != 2:
                raise serializers.ValidationError({"version_b": "Give both version_a and version_b."})
            end = moment_from("end", data.get("end"), zone) or timezone.now()
            start = moment_from("start", data.get("start"), zone) or end - DEFAULT_COMPARE_SPAN
            if end <= start:
                raise serializers.ValidationError({"end": "Must be after start."})
            return {**data, "mode": "versions", "a": (start, end), "b": (start, end)}
        if len(periods) != 4:
            raise serializers.ValidationError(
                {"a_start": "Give a_start, a_end, b_start and b_end, or version_a and version_b."}
            )
        sides = {}
        for side in ("a", "b"):
            start = moment_from(f"{side}_start", data[f"{side}_start"], zone)
            end = moment_from(f"{side}_end", data[f"{side}_end"], zone)
            if end <= start:
                raise serializers.ValidationError({f"{side}_end": f"Must be after {side}_start."})
            sides[side] = (start, end)
        return {**data, "mode": "periods", **sides}


class RetentionSerializer(serializers.Serializer):
    max_age_days = serializers.IntegerField(
        min_value=1, max_value=RETENTION_MAX_DAYS, allow_null=True, help_text="Null: keep raw records forever."
    )
    stored = serializers.BooleanField(
        read_only=True, help_text="False while the HISTORY_RETENTION_DAYS setting applies (never changed here)."
    )
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)
    updated_by = serializers.CharField(read_only=True)
    cutoff = serializers.DateTimeField(read_only=True, allow_null=True, help_text="Records before this go next run.")
    rolled_until = serializers.DateTimeField(read_only=True, allow_null=True)
    last_run_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_run_deleted = serializers.IntegerField(read_only=True)
