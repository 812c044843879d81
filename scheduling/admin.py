"""Scheduled runs in the Django admin: the same services, validation and ownership as the API.

Access follows the service's roles, not Django's model permissions: every staff user sees
their own runs (admins see all), operators and admins create and change them. Saving, deleting
and the actions go through scheduling.services, so the beat entry stays in sync. The beat
entries themselves are read-only in django-celery-beat's "Periodic tasks" pages.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_celery_beat.admin import CrontabScheduleAdmin, PeriodicTaskAdmin
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.roles import Role, role_allows
from config.admin import ReadOnlyAdmin
from predictions.selectors import catalog_models
from scheduling.cron import timezone_names
from scheduling.models import BeatLease, ScheduledRun, ScheduledRunExecution
from scheduling.selectors import upcoming_fire_times
from scheduling.services import (
    FIRE_TASK,
    ScheduledRunInvalid,
    scheduled_run_create,
    scheduled_run_delete,
    scheduled_run_set_enabled,
    scheduled_run_trigger,
    scheduled_run_update,
    scheduled_run_validate,
)

RECENT_EXECUTIONS = 20


def _role(request) -> str:
    return request.user.effective_role


def _sees_all(request) -> bool:
    return _role(request) == Role.ADMIN


def _may_change(request, obj) -> bool:
    if not role_allows(_role(request), Role.OPERATOR):
        return False
    return obj is None or _sees_all(request) or obj.owner_id == request.user.pk


class ScheduledRunForm(forms.ModelForm):
    model = forms.ModelChoiceField(queryset=catalog_models())
    timezone = forms.ChoiceField(choices=[], initial="UTC")
    name = forms.CharField(max_length=120, required=False, help_text="Defaults to '<model> <schedule>'.")

    class Meta:
        model = ScheduledRun
        fields = ["name", "model", "cron", "timezone", "parameters", "misfire_policy", "enabled"]
        help_texts = {
            "parameters": (
                'One of {"source": "dataset", "dataset_id": 12}, {"source": "rows", "rows": [{...}, ...]} '
                'or {"source": "generator", "count": 1000, "seed": null, "drift": 0.0}.'
            )
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = [(name, name) for name in sorted(timezone_names())]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            scheduled_run_validate(
                model_slug=data["model"].slug,
                cron=data.get("cron", ""),
                timezone_name=data["timezone"],
                parameters=data.get("parameters"),
                misfire_policy=data["misfire_policy"],
            )
        except ScheduledRunInvalid as exc:
            for field, error in exc.errors.items():
                text = error if isinstance(error, str) else json.dumps(error)
                self.add_error(field if field in self.fields else None, text)
        return data

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data.get("name") or "",
            "model_slug": data["model"].slug,
            "cron": data["cron"],
            "timezone_name": data["timezone"],
            "parameters": data["parameters"],
            "misfire_policy": data["misfire_policy"],
            "enabled": data["enabled"],
        }


class ExecutionInline(admin.TabularInline):
    model = ScheduledRunExecution
    fields = ("id", "trigger", "slot", "status", "started_at", "finished_at", "rows_scored", "model_version", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = f"Latest {RECENT_EXECUTIONS} executions"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ScheduledRun)
class ScheduledRunAdmin(admin.ModelAdmin):
    form = ScheduledRunForm
    list_display = (
        "name",
        "owner",
        "model",
        "cron",
        "timezone",
        "enabled",
        "next_run_at",
        "last_status",
        "consecutive_failures",
    )
    list_filter = ("enabled", "model", "misfire_policy")
    search_fields = ("name", "owner__username")
    list_select_related = ("owner", "model", "last_execution")
    readonly_fields = (
        "owner",
        "next_fire_times",
        "next_run_at",
        "last_execution",
        "consecutive_failures",
        "disabled_reason",
        "periodic_task",
        "created_at",
        "updated_at",
    )
    inlines = [ExecutionInline]
    actions = ["run_now", "enable", "disable"]

    def get_queryset(self, request):
        runs = super().get_queryset(request).select_related("owner", "model", "last_execution")
        return runs if _sees_all(request) else runs.filter(owner=request.user)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request, obj=None):
        editable = list(ScheduledRunForm.Meta.fields)
        return editable + list(self.readonly_fields) if obj is not None else editable

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, ExecutionInline) and obj is not None and obj.pk:
            latest = obj.executions.order_by("-id").values_list("pk", flat=True)[:RECENT_EXECUTIONS]
            kwargs["queryset"] = kwargs["queryset"].filter(pk__in=list(latest))
        return kwargs

    # Roles, as in the API.
    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (
            obj is None or _sees_all(request) or obj.owner_id == request.user.pk
        )

    def has_add_permission(self, request):
        return _may_change(request, None)

    def has_change_permission(self, request, obj=None):
        return _may_change(request, obj)

    def has_delete_permission(self, request, obj=None):
        return _may_change(request, obj)

    # Writes go through the services: same validation, beat entry in sync.
    def save_model(self, request, obj, form, change):
        if change:
            scheduled_run_update(run=obj, **form.service_kwargs())
            obj.refresh_from_db()
            return
        run = scheduled_run_create(owner=request.user, **form.service_kwargs())
        # The admin goes on to log and redirect using `obj`; point it at the created run.
        obj.pk, obj.owner, obj.name = run.pk, run.owner, run.name
        obj._state.adding = False

    def delete_model(self, request, obj):
        scheduled_run_delete(run=obj)

    def delete_queryset(self, request, queryset):
        for run in queryset:
            scheduled_run_delete(run=run)

    @admin.display(description="Last status")
    def last_status(self, run: ScheduledRun) -> str:
        return run.last_execution.status if run.last_execution else "-"

    @admin.display(description="Next five fire times")
    def next_fire_times(self, run: ScheduledRun) -> str:
        return format_html(
            "<ul>{}</ul>",
            format_html_join("", "<li>{} &nbsp; ({})</li>", ((t["local"], t["utc"]) for t in upcoming_fire_times(run))),
        )

    @admin.action(description="Run now (queue an execution)", permissions=["change"])
    def run_now(self, request, queryset):
        for run in queryset:
            execution = scheduled_run_trigger(
                run=run, user=request.user, correlation_id=getattr(request, "correlation_id", "")
            )
            self.message_user(request, f"{run.name}: execution {execution.pk} queued.")

    @admin.action(description="Enable (from the next slot)", permissions=["change"])
    def enable(self, request, queryset):
        for run in queryset:
            scheduled_run_set_enabled(run=run, enabled=True)
        self.message_user(request, f"Enabled {queryset.count()} run(s).")

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request, queryset):
        for run in queryset:
            scheduled_run_set_enabled(run=run, enabled=False)
        self.message_user(request, f"Disabled {queryset.count()} run(s).")


@admin.register(ScheduledRunExecution)
class ScheduledRunExecutionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "run",
        "trigger",
        "slot",
        "status",
        "started_at",
        "finished_at",
        "rows_scored",
        "model_version",
    )
    list_filter = ("status", "trigger", "run__model")
    search_fields = ("=run__name", "=correlation_id")
    list_select_related = ("run", "model_version__model")
    readonly_fields = [f.name for f in ScheduledRunExecution._meta.fields]
    show_full_result_count = False  # one execution per slot: millions over time

    def get_queryset(self, request):
        executions = super().get_queryset(request)
        return executions if _sees_all(request) else executions.filter(run__owner=request.user)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)


@admin.register(BeatLease)
class BeatLeaseAdmin(ReadOnlyAdmin):
    """Which beat sends the schedule now, for admins; beats write it, nobody edits it."""

    list_display = ("name", "holder", "acquired_at", "expires_at", "current")
    readonly_fields = ("name", "holder", "acquired_at", "expires_at")

    @admin.display(boolean=True, description="current")
    def current(self, obj: BeatLease) -> bool:
        return obj.expires_at > timezone.now()

    def has_module_permission(self, request):
        return request.user.is_active and _sees_all(request)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)


# --- django-celery-beat's pages: a scheduled run's beat entry is edited through the run -------------


def _managed(obj) -> bool:
    if isinstance(obj, PeriodicTask):
        return obj.task == FIRE_TASK
    if isinstance(obj, CrontabSchedule):
        return obj.periodictask_set.filter(task=FIRE_TASK).exists()
    return False


class GuardedPeriodicTaskAdmin(PeriodicTaskAdmin):
    """Beat entries of scheduled runs are read-only here; the bulk actions leave them alone."""

    def has_change_permission(self, request, obj=None):
        return not _managed(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not _managed(obj) and super().has_delete_permission(request, obj)

    def _unmanaged(self, request, queryset):
        skipped = queryset.filter(task=FIRE_TASK).count()
        if skipped:
            self.message_user(
                request,
                f"Left {skipped} scheduled-run entr(ies) alone: enable or disable the run itself.",
                messages.WARNING,
            )
        return queryset.filter(~Q(task=FIRE_TASK))

    def enable_tasks(self, request, queryset):
        return super().enable_tasks(request, self._unmanaged(request, queryset))

    def disable_tasks(self, request, queryset):
        return super().disable_tasks(request, self._unmanaged(request, queryset))

    def toggle_tasks(self, request, queryset):
        return super().toggle_tasks(request, self._unmanaged(request, queryset))

    for _action in (enable_tasks, disable_tasks, toggle_tasks):
        _action.short_description = getattr(PeriodicTaskAdmin, _action.__name__).short_description
    del _action


class GuardedCrontabScheduleAdmin(CrontabScheduleAdmin):
    def has_change_permission(self, request, obj=None):
        return not _managed(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not _managed(obj) and super().has_delete_permission(request, obj)


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, GuardedPeriodicTaskAdmin)
admin.site.unregister(CrontabSchedule)
admin.site.register(CrontabSchedule, GuardedCrontabScheduleAdmin)
