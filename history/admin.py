from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.core.paginator import Paginator
from django.utils import timezone
from django.utils.functional import cached_property

from accounts.roles import Role
from config.admin import ReadOnlyAdmin
from history.models import HourlyRollup, MaintenanceState, Outcome, OutcomeImport, PredictionRecord, RetentionPolicy
from history.services import retention_policy_set

# Rows the admin counts through for one filter: counting ten million rows on every page
# takes seconds; beyond this many, narrow the filters or use the API (keyset pages, export).
ADMIN_COUNT_LIMIT = 10_000


class BoundedCountPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[:ADMIN_COUNT_LIMIT].count()


class RecentFilter(admin.SimpleListFilter):
    """Time windows on created_at: a range the (model, created_at) and (created_at, id) indexes serve."""

    title = "made"
    parameter_name = "made"
    _windows = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}

    def lookups(self, request, model_admin):
        return [("1h", "In the last hour"), ("24h", "In the last 24 hours"), ("7d", "In the last 7 days"),
                ("30d", "In the last 30 days")]  # fmt: skip

    def queryset(self, request, queryset):
        window = self._windows.get(self.value())
        return queryset.filter(created_at__gte=timezone.now() - window) if window else queryset


@admin.register(PredictionRecord)
class PredictionRecordAdmin(ReadOnlyAdmin):
    list_display = ("id", "model", "version", "created_at", "source", "entity_id", "main_score", "correlation_id")
    list_filter = ("model", "source", RecentFilter)
    search_fields = ("=entity_id", "=correlation_id")  # exact: both are indexed, a LIKE scan is not
    list_select_related = ("model", "version__model")
    readonly_fields = [f.name for f in PredictionRecord._meta.fields]
    show_full_result_count = False  # counting millions of rows on every page is slow
    paginator = BoundedCountPaginator
    ordering = ("-id",)  # the primary key orders by time of writing without a sort


@admin.register(Outcome)
class OutcomeAdmin(ReadOnlyAdmin):
    list_display = ("prediction", "model", "value", "error", "observed_at", "recorded_at")
    list_filter = ("model",)
    list_select_related = ("model",)
    search_fields = ("=prediction__id",)
    readonly_fields = [f.name for f in Outcome._meta.fields]
    show_full_result_count = False
    paginator = BoundedCountPaginator
    ordering = ("-prediction",)  # the primary key: newest predictions first, without a sort


@admin.register(HourlyRollup)
class HourlyRollupAdmin(ReadOnlyAdmin):
    list_display = ("hour", "model", "version", "source", "count", "score_count", "outcome_count")
    list_filter = ("model", "source")
    list_select_related = ("model", "version__model")
    readonly_fields = [f.name for f in HourlyRollup._meta.fields]
    show_full_result_count = False
    paginator = BoundedCountPaginator
    ordering = ("-hour",)


@admin.register(MaintenanceState)
class MaintenanceStateAdmin(ReadOnlyAdmin):
    list_display = ("rolled_until", "retention_last_run_at", "retention_last_deleted", "retention_claimed_until")
    readonly_fields = [f.name for f in MaintenanceState._meta.fields]


@admin.register(OutcomeImport)
class OutcomeImportAdmin(ReadOnlyAdmin):
    list_display = ("id", "model", "status", "rows", "recorded", "unmatched", "invalid", "created_at")
    list_filter = ("status", "model")
    readonly_fields = [f.name for f in OutcomeImport._meta.fields]


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    """Only admins change how long raw records are kept; others may look."""

    list_display = ("__str__", "updated_at", "updated_by")
    fields = ("max_age_days", "updated_at", "updated_by")
    readonly_fields = ("updated_at", "updated_by")

    def _is_admin(self, request) -> bool:
        return request.user.is_active and request.user.effective_role == Role.ADMIN

    def has_add_permission(self, request):
        return self._is_admin(request) and not RetentionPolicy.objects.exists()

    def has_change_permission(self, request, obj=None):
        return self._is_admin(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        retention_policy_set(max_age_days=obj.max_age_days, updated_by=request.user.get_username())
