from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import orjson
from django.conf import settings
from django.db.models import F, QuerySet
from django.utils import timezone

from history import scores
from history.aggregates import HourRow, RecordScope, hour_rows
from history.buckets import Granularity, buckets_between, floor_hour
from history.models import HourlyRollup, MaintenanceState, OutcomeImport, PredictionRecord, RetentionPolicy
from predictions.catalog import get_catalog_model
from predictions.models import MLModel, ModelVersion


def last_prediction_at(*, model_id: int) -> datetime | None:
    return (
        PredictionRecord.objects.filter(model_id=model_id)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )


# --- Records ---------------------------------------------------------------------------------


def records_for_listing() -> QuerySet[PredictionRecord]:
    """Records with what a listing shows, in one query (model, version and outcome joined)."""
    return PredictionRecord.objects.select_related("model", "version", "outcome").only(
        *(f.name for f in PredictionRecord._meta.concrete_fields),
        "model__slug",
        "version__number",
        "outcome__value",
        "outcome__error",
        "outcome__observed_at",
        "outcome__recorded_at",
    )


def records_after(queryset: QuerySet, *, created_at: datetime, record_id: int, ascending: bool) -> QuerySet:
    """Records strictly after (created_at, id) in the given direction: the keyset condition.

    Written as a range on created_at (which the indexes serve) minus the ties already seen,
    rather than a row-value comparison, which not every database plans as an index range.
    """
    if ascending:
        return queryset.filter(created_at__gte=created_at).exclude(created_at=created_at, id__lte=record_id)
    return queryset.filter(created_at__lte=created_at).exclude(created_at=created_at, id__gte=record_id)


def record_detail(*, record_id: int) -> PredictionRecord | None:
    return records_for_listing().filter(pk=record_id).first()


def outcome_import(*, import_id: int) -> OutcomeImport | None:
    return OutcomeImport.objects.select_related("model").filter(pk=import_id).first()


# --- Retention and maintenance -------------------------------------------------------------


@dataclass(frozen=True)
class RetentionSetting:
    max_age_days: int | None
    stored: bool  # False: the HISTORY_RETENTION_DAYS setting, nobody changed it yet
    updated_at: datetime | None = None
    updated_by: str = ""


def retention_setting() -> RetentionSetting:
    """The retention age in force: the admin's, stored in the database, else the setting's."""
    policy = RetentionPolicy.objects.filter(pk=1).first()
    if policy is None:
        return RetentionSetting(settings.HISTORY_RETENTION_DAYS, stored=False)
    return RetentionSetting(policy.max_age_days, True, policy.updated_at, policy.updated_by)


def maintenance_state() -> MaintenanceState | None:
    return MaintenanceState.objects.filter(pk=1).first()


def retention_cutoff(max_age_days: int | None) -> datetime | None:
    return None if max_age_days is None else timezone.now() - timedelta(days=max_age_days)


# --- Summaries over time: roll-ups for closed hours, raw records for the rest -----------------


@dataclass(frozen=True)
class SummaryScope:
    model: MLModel
    start: datetime  # whole UTC hours
    end: datetime
    version_id: int | None = None
    source: str | None = None
    segment: str | None = None


def rolled_until() -> datetime | None:
    return MaintenanceState.objects.filter(pk=1).values_list("rolled_until", flat=True).first()


def hour_summaries(scope: SummaryScope) -> Iterator[HourRow]:
    """Every hour of the scope: from roll-ups where they exist, else from raw records.

    Segment values are not rolled up: a segment trend reads raw records only, so it covers
    what retention has kept.
    """
    if scope.segment:
        yield from hour_rows(_record_scope(scope, scope.start, scope.end))
        return
    boundary = rolled_until()
    boundary = scope.start if boundary is None else min(max(boundary, scope.start), scope.end)
    if boundary > scope.start:
        yield from _rollup_rows(scope, boundary)
    if boundary < scope.end:
        yield from hour_rows(_record_scope(scope, boundary, scope.end))


def _record_scope(scope: SummaryScope, start: datetime, end: datetime) -> RecordScope:
    return RecordScope(
        start=start,
        end=end,
        model_id=scope.model.pk,
        version_id=scope.version_id,
        source=scope.source,
        segment=scope.segment,
    )


_ROLLUP_COLUMNS = (
    "version_id", "source", "hour", "count", "score_count", "score_sum", "score_sumsq", "score_min", "score_max",
    "histogram", "classes", "outcome_count", "error_count", "error_sum", "error_abs_sum", "error_sq_sum",
)  # fmt: skip


def _rollup_rows(scope: SummaryScope, end: datetime) -> Iterator[HourRow]:
    rows = HourlyRollup.objects.filter(model_id=scope.model.pk, hour__gte=scope.start, hour__lt=end)
    if scope.version_id is not None:
        rows = rows.filter(version_id=scope.version_id)
    if scope.source is not None:
        rows = rows.filter(source=scope.source)
    # The JSON columns as text, parsed by orjson: ~5x faster than the JSONField's json.loads
    # over the thousands of rows of a 90-day trend.
    values = rows.annotate(histogram_text=_json_text("histogram"), classes_text=_json_text("classes"))
    columns = [c if c not in ("histogram", "classes") else f"{c}_text" for c in _ROLLUP_COLUMNS]
    model_id = scope.model.pk
    for row in values.values_list(*columns):  # thousands of rows: one fetch, no server-side cursor
        (version_id, source, hour, count, scored, total, squares, low, high, histogram, classes, outcomes, errors,
         error_sum, error_abs, error_sq) = row  # fmt: skip
        summary = scores.Summary(
            count, scored, total, squares, low, high, _parse(histogram), _parse(classes), outcomes, errors,
            error_sum, error_abs, error_sq,
        )  # fmt: skip
        yield HourRow(model_id, version_id, source, hour, None, summary)


def _json_text(column: str):
    from django.db.models import TextField
    from django.db.models.functions import Cast

    return Cast(F(column), output_field=TextField())


def _parse(text: str | dict) -> dict:
    return text if isinstance(text, dict) else orjson.loads(text)


def summaries_by(scope: SummaryScope, key: Callable[[HourRow], Hashable | None]) -> dict[Hashable, scores.Summary]:
    """Merge the scope's hours into one summary per ``key(hour row)``; None drops the row."""
    merged: dict[Hashable, scores.Summary] = {}
    for row in hour_summaries(scope):
        group = key(row)
        if group is None:
            continue
        found = merged.get(group)
        if found is None:
            merged[group] = found = scores.Summary()
        found.add(row.summary)
    return merged


# --- Trends ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendQuery:
    model: MLModel
    start: datetime
    end: datetime
    granularity: Granularity
    zone: ZoneInfo
    version: ModelVersion | None = None
    source: str | None = None
    group_by: str | None = None  # "version", "source" or "segment"
    segment: str | None = None  # the feature, when group_by is "segment"


def trend(query: TrendQuery) -> dict:
    """Chart-ready series: one point per bucket, empty buckets included with a count of 0."""
    buckets = buckets_between(query.start, query.end, query.granularity, query.zone)
    first_hour, end_hour = buckets.hour_range()
    scope = SummaryScope(
        model=query.model,
        start=first_hour,
        end=end_hour,
        version_id=query.version.pk if query.version else None,
        source=query.source,
        segment=query.segment if query.group_by == "segment" else None,
    )
    group_of = _grouping(query)

    def key(row: HourRow) -> Hashable | None:
        index = buckets.index_of(row.hour)
        return None if index is None else (group_of(row), index)

    merged = summaries_by(scope, key)
    groups = sorted({group for group, _ in merged}, key=_sort_key) or ([] if query.group_by else [None])
    series = [
        {
            "group": _group_label(query, group),
            "points": [
                {"start": start.isoformat(), **merged.get((group, i), scores.Summary()).statistics()}
                for i, start in enumerate(buckets.starts)
            ],
        }
        for group in groups
    ]
    return {
        "model": query.model.slug,
        "granularity": query.granularity,
        "timezone": query.zone.key,
        "start": buckets.starts[0].isoformat(),
        "end": buckets.end.astimezone(query.zone).isoformat(),
        "exact_buckets": buckets.exact,
        "version": query.version.number if query.version else None,
        "source": query.source,
        "group_by": query.group_by,
        "segment": query.segment if query.group_by == "segment" else None,
        "data": "raw records" if scope.segment else "hourly roll-ups and raw records since the last roll-up",
        "series": series,
    }


def _grouping(query: TrendQuery) -> Callable[[HourRow], Hashable]:
    if query.group_by == "version":
        return lambda row: row.version_id
    if query.group_by == "source":
        return lambda row: row.source
    if query.group_by == "segment":
        boolean = _feature_kind(query.model.slug, query.segment) == "boolean"
        return lambda row: _segment_label(row.segment, boolean=boolean)
    return lambda row: None


def _feature_kind(slug: str, name: str | None) -> str | None:
    return next((f.kind for f in get_catalog_model(slug).features if f.name == name), None)


def _segment_label(value: str | None, *, boolean: bool) -> str:
    if value is None:
        return "(missing)"
    if boolean:  # PostgreSQL reads JSON true as 'true', SQLite as 1
        return "true" if value in ("true", "1", "True") else "false"
    return value


def _sort_key(group: Hashable) -> tuple:
    return (group is None, str(group) if not isinstance(group, int) else f"{group:012d}")


def _group_label(query: TrendQuery, group: Hashable) -> dict:
    if query.group_by == "version":
        number = ModelVersion.objects.filter(pk=group).values_list("number", flat=True).first()
        return {"version": number}
    if query.group_by == "source":
        return {"source": group}
    if query.group_by == "segment":
        return {query.segment: group}
    return {}


# --- Comparisons -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    label: str
    start: datetime  # whole UTC hours
    end: datetime
    version: ModelVersion | None = None


def comparison(*, model: MLModel, a: Side, b: Side, source: str | None = None) -> dict:
    """The same statistics for two sides, their difference, and a KS test of the main scores."""
    summaries = {}
    samples = {}
    for side in (a, b):
        version_id = side.version.pk if side.version else None
        scope = SummaryScope(model=model, start=side.start, end=side.end, version_id=version_id, source=source)
        summaries[side.label] = summaries_by(scope, lambda row: 0).get(0, scores.Summary()).statistics()
        samples[side.label] = score_sample(
            model_id=model.pk, start=side.start, end=side.end, version_id=version_id, source=source
        )
    first, second = summaries[a.label], summaries[b.label]
    difference = {
        name: (second[name] - first[name])
        for name in first
        if isinstance(first[name], (int, float)) and isinstance(second[name], (int, float))
    }
    return {
        "model": model.slug,
        "source": source,
        "a": {**_side_info(a), **first},
        "b": {**_side_info(b), **second},
        "difference": difference,
        "ks_test": ks_test(samples[a.label], samples[b.label]),
    }


def _side_info(side: Side) -> dict:
    return {
        "start": side.start.isoformat(),
        "end": side.end.isoformat(),
        "version": side.version.number if side.version else None,
    }


# Knuth's multiplicative hash of the id, modulo a prime: a fixed pseudo-random order, so the
# sample (and the p-value) of a comparison is the same each time it is asked.
_SAMPLE_MULTIPLIER = 2_654_435_761
_SAMPLE_MODULUS = 1_000_003


def score_sample(
    *, model_id: int, start: datetime, end: datetime, version_id: int | None, source: str | None
) -> np.ndarray:
    """At most HISTORY_COMPARE_SAMPLE_SIZE main scores of raw records, drawn without replacement."""
    records = PredictionRecord.objects.filter(
        model_id=model_id, created_at__gte=start, created_at__lt=end, main_score__isnull=False
    )
    if version_id is not None:
        records = records.filter(version_id=version_id)
    if source is not None:
        records = records.filter(source=source)
    drawn = (
        records.annotate(draw=(F("id") * _SAMPLE_MULTIPLIER) % _SAMPLE_MODULUS)
        .order_by("draw", "id")
        .values_list("main_score", flat=True)[: settings.HISTORY_COMPARE_SAMPLE_SIZE]
    )
    return np.fromiter(drawn, dtype=float)


def ks_test(a: np.ndarray, b: np.ndarray) -> dict:
    result: dict = {
        "sample_sizes": {"a": int(a.size), "b": int(b.size)},
        "max_sample_size": settings.HISTORY_COMPARE_SAMPLE_SIZE,
        "statistic": None,
        "p_value": None,
    }
    if a.size == 0 or b.size == 0:
        result["note"] = "No raw scores on one side (none recorded, or removed by retention): no test."
        return result
    from scipy import stats as scipy_stats  # here: web workers that never compare need not carry it

    test = scipy_stats.ks_2samp(a, b)
    result["statistic"] = float(test.statistic)
    result["p_value"] = float(test.pvalue)
    return result


def hour_bounds(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """A period widened to whole UTC hours, the resolution of roll-ups."""
    from history.buckets import ceil_hour

    return floor_hour(start), ceil_hour(end.astimezone(UTC))


# --- Export ----------------------------------------------------------------------------------


EXPORT_COLUMNS = (
    "id", "model", "version", "created_at", "source", "correlation_id", "entity_id", "main_score", "latency_ms",
    "bulk_job_id", "scheduled_execution_id", "features", "output", "outcome_value", "outcome_observed_at",
)  # fmt: skip


def export_rows(records: QuerySet[PredictionRecord], *, chunk_size: int = 5_000) -> Iterator[list[tuple]]:
    """The records newest first, in chunks read by keyset (never an OFFSET, never one long cursor)."""
    base = records.order_by("-created_at", "-id").values_list(
        "id", "model__slug", "version__number", "created_at", "source", "correlation_id", "entity_id",
        "main_score", "latency_ms", "bulk_job_id", "scheduled_execution_id", "features", "output",
        "outcome__value", "outcome__observed_at",
    )  # fmt: skip
    position = None
    while True:
        page = base
        if position is not None:
            page = records_after(page, created_at=position[0], record_id=position[1], ascending=False)
        rows = list(page[:chunk_size])
        if not rows:
            return
        yield rows
        position = (rows[-1][3], rows[-1][0])
