from django.urls import re_path

from predictions.api import bulk_views, views
from predictions.catalog import CATALOG

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

# Both /path and /path/ are accepted (DESIGN.md, API contract).
# The prediction routes come first: Django tries patterns in order on every request, and
# these are the ones the applications call (config/urls.py includes this module first too).
urlpatterns = []
for slug, spec in CATALOG.items():
    single, batch = views.prediction_views(spec)
    urlpatterns += [
        re_path(rf"^{slug}/?$", single.as_view(), name=f"predict-{slug}"),
        re_path(rf"^{slug}/batch/?$", batch.as_view(), name=f"predict-{slug}-batch"),
    ]

urlpatterns += [
    re_path(r"^models/?$", views.ModelListView.as_view(), name="models"),
    re_path(r"^models/(?P<slug>[a-z-]+)/info/?$", views.ModelInfoView.as_view(), name="model-info"),
    re_path(r"^models/(?P<slug>[a-z-]+)/health/?$", views.ModelHealthView.as_view(), name="model-health"),
    re_path(r"^models/(?P<slug>[a-z-]+)/versions/?$", views.ModelVersionListView.as_view(), name="model-versions"),
    re_path(r"^models/(?P<slug>[a-z-]+)/promote/?$", views.ModelPromoteView.as_view(), name="model-promote"),
    re_path(r"^models/(?P<slug>[a-z-]+)/rollback/?$", views.ModelRollbackView.as_view(), name="model-rollback"),
    re_path(r"^datasets/?$", views.DatasetListCreateView.as_view(), name="datasets"),
    re_path(r"^datasets/(?P<pk>\d+)/?$", views.DatasetDetailView.as_view(), name="dataset-detail"),
    re_path(r"^bulk-predictions/?$", bulk_views.BulkJobListCreateView.as_view(), name="bulk-predictions"),
    re_path(
        r"^bulk-predictions/callback-secret/?$",
        bulk_views.BulkCallbackSecretView.as_view(),
        name="bulk-callback-secret",
    ),
    re_path(rf"^bulk-predictions/(?P<pk>{_UUID})/?$", bulk_views.BulkJobDetailView.as_view(), name="bulk-prediction"),
    re_path(
        rf"^bulk-predictions/(?P<pk>{_UUID})/results/?$", bulk_views.BulkJobResultsView.as_view(), name="bulk-results"
    ),
    re_path(
        rf"^bulk-predictions/(?P<pk>{_UUID})/errors/?$", bulk_views.BulkJobErrorsView.as_view(), name="bulk-errors"
    ),
]
