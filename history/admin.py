from __future__ import annotations

from django.contrib import admin

from history.models import PredictionRecord


@admin.register(PredictionRecord)
class PredictionRecordAdmin(admin.ModelAdmin):
    list_display = ("id", "model", "version", "created_at", "source", "entity_id", "main_score", "correlation_id")
    list_filter = ("model", "source")
    search_fields = ("=entity_id", "=correlation_id")  # exact: both are indexed, a LIKE scan is not
    list_select_related = ("model", "version__model")
    readonly_fields = [f.name for f in PredictionRecord._meta.fields]
    show_full_result_count = False  # counting millions of rows on every page is slow
    ordering = ("-id",)  # the primary key orders by time of writing without a sort

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
