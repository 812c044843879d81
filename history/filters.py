"""Filters of the records listing and export (django-filter); every bad value is a 400."""

from __future__ import annotations

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet, Subquery

from config.api.datetimes import UTCIsoDateTimeFilter
from history.models import PredictionRecord, Source
from predictions.catalog import CATALOG
from predictions.models import MLModel, ModelVersion

_BIGINT_MAX = 2**63 - 1


class FloatFilter(django_filters.NumberFilter):
    field_class = forms.FloatField  # refuses NaN and infinities; DecimalField would let 1e400 through


class PositiveIntegerFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", _BIGINT_MAX)
        super().__init__(*args, **kwargs)


class RecordFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        if data.get("version") is not None and not data.get("model"):
            raise ValidationError({"version": "Give the model too: version numbers count per model."})
        after, before = data.get("created_after"), data.get("created_before")
        if after and before and before <= after:
            raise ValidationError({"created_before": "Must be after created_after."})
        low, high = data.get("score_min"), data.get("score_max")
        if low is not None and high is not None and high < low:
            raise ValidationError({"score_max": "Must not be below score_min."})
        return data


class PredictionRecordFilter(django_filters.FilterSet):
    model = django_filters.ChoiceFilter(
        choices=[(slug, slug) for slug in CATALOG], method="filter_model", help_text="Model slug."
    )
    version = PositiveIntegerFilter(method="filter_version", help_text="Version number (needs `model`).")
    source = django_filters.ChoiceFilter(choices=Source.choices)
    created_after = UTCIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Made at or after this ISO 8601 time."
    )
    created_before = UTCIsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Made before this ISO 8601 time."
    )
    entity_id = django_filters.CharFilter(max_length=120)
    correlation_id = django_filters.CharFilter(max_length=128)
    score_min = FloatFilter(field_name="main_score", lookup_expr="gte", help_text="Main score at least this.")
    score_max = FloatFilter(field_name="main_score", lookup_expr="lte", help_text="Main score at most this.")
    scheduled_execution_id = PositiveIntegerFilter()
    bulk_job_id = django_filters.UUIDFilter()
    has_outcome = django_filters.BooleanFilter(
        field_name="outcome", lookup_expr="isnull", exclude=True, help_text="Only records with (or without) outcome."
    )

    class Meta:
        model = PredictionRecord
        fields: list[str] = []
        form = RecordFilterForm

    def filter_model(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # A scalar subquery rather than a join: the planner then reads the (model, created_at)
        # index for the model, whatever it guesses about the slug.
        return queryset.filter(model_id=Subquery(MLModel.objects.filter(slug=value).values("pk")[:1]))

    def filter_version(self, queryset: QuerySet, name: str, value: int) -> QuerySet:
        versions = ModelVersion.objects.filter(model__slug=self.form.cleaned_data["model"], number=value)
        return queryset.filter(version_id=Subquery(versions.values("pk")[:1]))
