"""Hourly summaries of raw records, computed in the database.

The same code builds roll-up rows when an hour closes, answers for the hours not rolled up
yet (the live tail), and serves segment trends, which roll-ups do not keep. Four grouped
queries per call (stats, score histogram, classes per model with a class, outcomes), each
reading the (model, created_at) or (created_at, id) index for the time range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection
from django.db.models import (
    Case,
    CharField,
    Count,
    F,
    FloatField,
    IntegerField,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Abs, Cast, Floor, Least, Ln, TruncHour

from history import scores
from history.kinds import CLASS_RULES, ClassRule, class_label
from history.models import Outcome, PredictionRecord
from predictions.models import MLModel


@dataclass
class HourRow:
    """One hour of one model version from one source (and one segment value, if asked)."""

    model_id: int
    version_id: int
    source: str
    hour: datetime
    segment: str | None
    summary: scores.Summary

    @property
    def key(self) -> tuple:
        return (self.model_id, self.version_id, self.source, self.hour, self.segment)


@dataclass(frozen=True)
class RecordScope:
    """Which raw records: a half-open time range and optional filters."""

    start: datetime
    end: datetime
    model_id: int | None = None
    version_id: int | None = None
    source: str | None = None
    segment: str | None = None  # a feature name; its value becomes a grouping dimension


def hour_rows(scope: RecordScope) -> list[HourRow]:
    """Summaries of the scope's records, per hour, model, version, source (and segment).

    Two grouped queries: records by hour, score bin and class (one pass over the records
    gives counts, sums, extremes, the histogram and the classes, since a class barely splits
    a bin), then outcomes by hour. Their rows are read raw: a first roll-up of ten million
    records returns millions of (hour, bin) rows, and Django's per-value converters would
    spend more time on them than the database does.
    """
    segment = scope.segment is not None
    rows: dict[tuple, HourRow] = {}
    hour_of = _HourReader()

    def row_for(key: tuple) -> HourRow:
        found = rows.get(key)
        if found is None:
            found = rows[key] = HourRow(*key[:3], hour_of(key[3]), _segment_text(key[4]), scores.Summary())
        return found

    rules = _class_rules(scope)
    records = _records(scope, PredictionRecord.objects.all(), "")
    grouped = records.values(**_dimensions(scope, ""), g_bin=_bin_expression(), g_class=_class_expression(rules))
    grouped = grouped.annotate(
        n=Count("id"),
        scored=Count("main_score"),
        total=Sum("main_score"),
        squares=Sum(F("main_score") * F("main_score"), output_field=FloatField()),
        low=Min("main_score"),
        high=Max("main_score"),
    )
    dimensions = list(_DIMENSION_NAMES[: 5 if segment else 4])
    names = [
        *dimensions,
        "g_bin",
        "g_class",
        "n",
        "scored",
        "total",
        "squares",
        "low",
        "high",
    ]
    for values in _raw(grouped.values_list(*names)):
        *key, k, label, n, scored, total, squares, low, high = values
        row = row_for((*key, None) if not segment else tuple(key))
        summary = row.summary
        summary.count += n
        if label is not None:
            label = class_label(rules[row.model_id], label)
            summary.classes[label] = summary.classes.get(label, 0) + n
        if not scored:
            continue
        summary.score_count += scored
        summary.score_sum += total
        summary.score_sumsq += squares
        summary.score_min = low if summary.score_min is None else min(summary.score_min, low)
        summary.score_max = high if summary.score_max is None else max(summary.score_max, high)
        k = str(k)
        summary.histogram[k] = summary.histogram.get(k, 0) + scored
    if not rows:
        return []

    outcomes = _records(scope, Outcome.objects.all(), "prediction__")
    outcome_stats = outcomes.values(**_dimensions(scope, "prediction__")).annotate(
        n=Count("pk"),
        errors=Count("error"),
        total=Sum("error"),
        absolute=Sum(Abs("error")),
        squares=Sum(F("error") * F("error"), output_field=FloatField()),
    )
    names = [*dimensions, "n", "errors", "total", "absolute", "squares"]
    for values in _raw(outcome_stats.values_list(*names)):
        *key, n, errors, total, absolute, squares = values
        summary = row_for((*key, None) if not segment else tuple(key)).summary
        summary.outcome_count = n
        summary.error_count = errors
        summary.error_sum = total or 0.0
        summary.error_abs_sum = absolute or 0.0
        summary.error_sq_sum = squares or 0.0
    return list(rows.values())


_DIMENSION_NAMES = ("g_model", "g_version", "g_source", "g_hour", "g_segment")


def _raw(queryset: QuerySet) -> list[tuple]:
    """The queryset's rows as the database driver returns them, without Django's converters."""
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class _HourReader:
    """An hour as the driver returns TruncHour: naive UTC (PostgreSQL) or text (SQLite), memoised."""

    def __init__(self):
        self.seen: dict = {}

    def __call__(self, raw) -> datetime:
        hour = self.seen.get(raw)
        if hour is None:
            value = datetime.fromisoformat(raw) if isinstance(raw, str) else raw
            hour = self.seen[raw] = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return hour


def _records(scope: RecordScope, queryset: QuerySet, prefix: str) -> QuerySet:
    conditions = Q(**{f"{prefix}created_at__gte": scope.start, f"{prefix}created_at__lt": scope.end})
    if scope.model_id is not None:
        conditions &= Q(**{f"{prefix}model_id": scope.model_id})
    if scope.version_id is not None:
        conditions &= Q(**{f"{prefix}version_id": scope.version_id})
    if scope.source is not None:
        conditions &= Q(**{f"{prefix}source": scope.source})
    return queryset.filter(conditions)


def _dimensions(scope: RecordScope, prefix: str) -> dict:
    dims = {
        "g_model": F(f"{prefix}model_id"),
        "g_version": F(f"{prefix}version_id"),
        "g_source": F(f"{prefix}source"),
        "g_hour": TruncHour(f"{prefix}created_at", tzinfo=UTC),
    }
    if scope.segment:
        dims["g_segment"] = KeyTextTransform(scope.segment, f"{prefix}features")
    return dims


def _bin_expression() -> Case:
    """scores.score_bin in SQL: floor(ln|x| / ln(gamma)) + offset, capped, signed; null stays null."""

    def magnitude_bin(magnitude) -> Least:
        k = Floor(Ln(magnitude) / Value(scores.LN_GAMMA)) + Value(scores.OFFSET)
        return Least(Cast(k, IntegerField()), Value(scores.MAX_BIN))

    return Case(
        When(main_score__isnull=True, then=Value(None)),
        When(main_score__gte=scores.MIN_MAGNITUDE, then=magnitude_bin(F("main_score"))),
        When(main_score__lte=-scores.MIN_MAGNITUDE, then=Value(0) - magnitude_bin(Value(0.0) - F("main_score"))),
        default=Value(0),
        output_field=IntegerField(),
    )


def _class_expression(rules: dict[int, ClassRule]) -> Case:
    """The class of a record by its model's rule: an answer field, or the score at a threshold."""
    whens = []
    for model_id, rule in rules.items():
        if rule.field is not None:
            label = KeyTextTransform(rule.field, "output")
        else:
            label = Case(When(main_score__gte=rule.threshold, then=Value("1")), default=Value("0"))
        whens.append(When(model_id=model_id, then=label))
    return Case(*whens, default=Value(None), output_field=CharField())


def _class_rules(scope: RecordScope) -> dict[int, ClassRule]:
    models = MLModel.objects.filter(slug__in=list(CLASS_RULES))
    if scope.model_id is not None:
        models = models.filter(pk=scope.model_id)
    return {model_id: CLASS_RULES[slug] for model_id, slug in models.values_list("pk", "slug")}


def _segment_text(value: object) -> str | None:
    """Segment values as text: JSON booleans and numbers read back differently per database."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
