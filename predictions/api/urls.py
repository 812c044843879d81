from django.urls import re_path

from predictions.api import views
from predictions.catalog import CATALOG

# Both /path and /path/ are accepted (DESIGN.md, API contract).
urlpatterns = [
    re_path(r"^models/?$", views.ModelListView.as_view(), name="models"),
    re_path(r"^models/(?P<slug>[a-z-]+)/info/?$", views.ModelInfoView.as_view(), name="model-info"),
    re_path(r"^models/(?P<slug>[a-z-]+)/health/?$", views.ModelHealthView.as_view(), name="model-health"),
    re_path(r"^models/(?P<slug>[a-z-]+)/versions/?$", views.ModelVersionListView.as_view(), name="model-versions"),
    re_path(r"^models/(?P<slug>[a-z-]+)/promote/?$", views.ModelPromoteView.as_view(), name="model-promote"),
    re_path(r"^models/(?P<slug>[a-z-]+)/rollback/?$", views.ModelRollbackView.as_view(), name="model-rollback"),
    re_path(r"^datasets/?$", views.DatasetListCreateView.as_view(), name="datasets"),
    re_path(r"^datasets/(?P<pk>\d+)/?$", views.DatasetDetailView.as_view(), name="dataset-detail"),
]

for slug, spec in CATALOG.items():
    single, batch = views.prediction_views(spec)
    urlpatterns += [
        re_path(rf"^{slug}/?$", single.as_view(), name=f"predict-{slug}"),
        re_path(rf"^{slug}/batch/?$", batch.as_view(), name=f"predict-{slug}-batch"),
    ]
