from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from predictions.bulk import BulkJobStateError, bulk_job_cancel
from predictions.bulk_selectors import bulk_job_progress
from predictions.models import BulkJob, CallbackDelivery, Dataset, MLModel, ModelVersion, VersionStatus
from predictions.services import VersionStateError, model_rollback, version_promote


def format_metrics(metrics: dict, limit: int | None = None) -> str:
    items = list(metrics.items())[:limit]
    return ", ".join(f"{name} {value:.3g}" for name, value in items)


class VersionInline(admin.TabularInline):
    model = ModelVersion
    fields = ("number", "status", "created_at", "activated_at", "holdout_metrics", "training_rows", "created_by")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("-number",)

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Holdout metrics")
    def holdout_metrics(self, obj: ModelVersion) -> str:
        return format_metrics(obj.metrics)


@admin.register(MLModel)
class MLModelAdmin(admin.ModelAdmin):
    list_display = ("slug", "title", "task", "active_version", "serving_error")
    readonly_fields = ("slug", "title", "task", "serving_error", "serving_error_at", "created_at")
    inlines = [VersionInline]
    actions = ["rollback"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("versions")

    @admin.display(description="Active version")
    def active_version(self, obj: MLModel) -> str:
        active = [v.number for v in obj.versions.all() if v.status == VersionStatus.ACTIVE]
        return f"v{active[0]}" if active else "none"

    def has_add_permission(self, request):
        return False  # one row per catalog model, created by the service

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Roll back to the previously active version")
    def rollback(self, request, queryset):
        for model in queryset:
            try:
                version = model_rollback(model=model)
            except VersionStateError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{model.slug} now serves v{version.number}.")


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "status",
        "created_at",
        "activated_at",
        "headline_metrics",
        "training_rows",
        "created_by",
    )
    list_filter = ("model", "status")
    list_select_related = ("model",)
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    actions = ["promote"]

    @admin.display(description="Metrics")
    def headline_metrics(self, obj: ModelVersion) -> str:
        return format_metrics(obj.metrics, limit=3)

    def has_add_permission(self, request):
        return False  # versions come from training

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Promote to active (serve this version)")
    def promote(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        try:
            version = version_promote(version=queryset.get())
        except VersionStateError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"{version} is now active.")


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "model", "file_format", "rows", "invalid_rows", "uploaded_by", "created_at")
    list_filter = ("model", "file_format")
    readonly_fields = [f.name for f in Dataset._meta.fields]

    def has_add_permission(self, request):
        return False  # uploads go through /api/datasets, which validates them


# --- Bulk prediction jobs ---------------------------------------------------------------------------


class CallbackDeliveryInline(admin.TabularInline):
    """The delivery log: every attempt at calling the job's callback URL."""

    model = CallbackDelivery
    fields = ("created_at", "event", "attempt", "outcome", "status_code", "duration_ms", "error", "next_attempt_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("created_at", "id")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(BulkJob)
class BulkJobAdmin(admin.ModelAdmin):
    list_display = ("id", "model", "owner", "status", "progress", "rows_total", "rows_failed", "created_at")
    list_filter = ("status", "model", "output_format")
    list_select_related = ("model", "owner")
    search_fields = ("=id", "owner__username", "input_name", "correlation_id")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in BulkJob._meta.fields if f.name != "skipped_lines"] + ["progress"]
    exclude = ("skipped_lines",)
    inlines = [CallbackDeliveryInline]
    actions = ["cancel"]

    @admin.display(description="Progress")
    def progress(self, obj: BulkJob) -> str:
        percent = bulk_job_progress(obj)
        return format_html('<progress value="{}" max="100"></progress> {}%', percent, percent)

    def has_add_permission(self, request):
        return False  # jobs come from POST /api/bulk-predictions, which checks the input

    @admin.action(description="Cancel selected jobs (running chunks stop at their end)")
    def cancel(self, request, queryset):
        for job in queryset:
            try:
                bulk_job_cancel(job=job, cancelled_by=request.user.get_username())
            except BulkJobStateError as exc:
                self.message_user(request, f"Job {job.pk}: {exc}", messages.WARNING)
            else:
                self.message_user(request, f"Job {job.pk} cancelled.")
