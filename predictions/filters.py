"""Query-string filters of the predictions API (django-filter)."""

from __future__ import annotations

import django_filters

from config.api.datetimes import UTCIsoDateTimeFilter
from predictions.models import BulkJob, BulkJobStatus


class BulkJobFilter(django_filters.FilterSet):
    model = django_filters.CharFilter(field_name="model__slug", help_text="A model slug, e.g. `churn`.")
    status = django_filters.ChoiceFilter(choices=BulkJobStatus.choices)
    created_after = UTCIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601 date-time; jobs submitted at or after it."
    )
    created_before = UTCIsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="ISO 8601 date-time; jobs submitted before it."
    )
    date = django_filters.DateFilter(field_name="created_at", lookup_expr="date", help_text="Submitted on this day.")

    class Meta:
        model = BulkJob
        fields = ["model", "status", "created_after", "created_before", "date"]
