from django.urls import re_path

from history.api import views

# Both /path and /path/ are accepted (DESIGN.md, API contract).
urlpatterns = [
    re_path(r"^history/predictions/?$", views.RecordListView.as_view(), name="history-records"),
    re_path(r"^history/predictions/export/?$", views.RecordExportView.as_view(), name="history-export"),
    re_path(r"^history/predictions/(?P<pk>\d{1,18})/?$", views.RecordDetailView.as_view(), name="history-record"),
    re_path(r"^history/outcomes/?$", views.OutcomesView.as_view(), name="history-outcomes"),
    re_path(r"^history/outcomes/upload/?$", views.OutcomeUploadView.as_view(), name="history-outcome-upload"),
    re_path(r"^history/outcomes/imports/(?P<pk>\d{1,18})/?$", views.OutcomeImportView.as_view(), name="history-import"),
    re_path(r"^history/trends/?$", views.TrendView.as_view(), name="history-trends"),
    re_path(r"^history/compare/?$", views.CompareView.as_view(), name="history-compare"),
    re_path(r"^history/retention/?$", views.RetentionView.as_view(), name="history-retention"),
]
