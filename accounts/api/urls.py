from django.urls import re_path

from accounts.api import views

# Both /path and /path/ are accepted (DESIGN.md, API contract).
urlpatterns = [
    re_path(r"^me/?$", views.MeView.as_view(), name="me"),
    re_path(r"^keys/?$", views.APIKeyListCreateView.as_view(), name="api-keys"),
    re_path(r"^keys/(?P<prefix>[A-Za-z0-9]{8})/?$", views.APIKeyDetailView.as_view(), name="api-key-detail"),
]
