from django.urls import re_path

from scheduling.api import views

# Both /path and /path/ are accepted (DESIGN.md, API contract).
urlpatterns = [
    re_path(r"^scheduled/?$", views.ScheduledRunListCreateView.as_view(), name="scheduled-runs"),
    re_path(r"^scheduled/(?P<run_id>\d+)/?$", views.ScheduledRunDetailView.as_view(), name="scheduled-run"),
    re_path(
        r"^scheduled/(?P<run_id>\d+)/trigger/?$", views.ScheduledRunTriggerView.as_view(), name="scheduled-run-trigger"
    ),
    re_path(
        r"^scheduled/(?P<run_id>\d+)/executions/?$", views.ExecutionListView.as_view(), name="scheduled-run-executions"
    ),
    re_path(
        r"^scheduled/(?P<run_id>\d+)/executions/(?P<execution_id>\d+)/?$",
        views.ExecutionDetailView.as_view(),
        name="scheduled-run-execution",
    ),
]
