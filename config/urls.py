from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config.health import views as health

api_patterns = [
    path("", include("predictions.api.urls")),  # first: predictions are most of the traffic
    re_path(r"^health/?$", health.LiveView.as_view(), name="health-live"),
    re_path(r"^health/ready/?$", health.ReadyView.as_view(), name="health-ready"),
    re_path(r"^health/worker/?$", health.WorkerCheckView.as_view(), name="health-worker"),
    re_path(r"^schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    re_path(r"^redoc/?$", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("auth/", include("rest_framework.urls")),
    path("", include("accounts.api.urls")),
    path("", include("history.api.urls")),
    path("", include("scheduling.api.urls")),
]

urlpatterns = [
    path("api/", include(api_patterns)),
    path("admin/", admin.site.urls),
    path("", include("django_prometheus.urls")),
]

handler400 = "config.api.errors.handler400"
handler403 = "config.api.errors.handler403"
handler404 = "config.api.errors.handler404"
handler500 = "config.api.errors.handler500"
