from __future__ import annotations

import django_filters

from scheduling.models import ExecutionStatus, ScheduledRun, ScheduledRunExecution, Trigger


class ScheduledRunFilter(django_filters.FilterSet):
    model_name = django_filters.CharFilter(field_name="model__slug", help_text="Only runs of this model (its slug).")
    enabled = django_filters.BooleanFilter(help_text="true or false.")
    owner = django_filters.CharFilter(
        field_name="owner__username", help_text="Only runs of this user (useful to admins, who see every run)."
    )

    class Meta:
        model = ScheduledRun
        fields = ["model_name", "enabled", "owner"]


class ExecutionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ExecutionStatus.choices)
    trigger = django_filters.ChoiceFilter(choices=Trigger.choices)

    class Meta:
        model = ScheduledRunExecution
        fields = ["status", "trigger"]
