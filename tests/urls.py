"""The service's URLs plus views that fail on purpose, for the error-format tests."""

from django.http import HttpResponse
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView


class CrashingAPIView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("secret internal detail at /srv/app/secret.py")


def crashing_django_view(request):
    raise RuntimeError("secret internal detail at /srv/app/secret.py")


def plain_view(request):
    return HttpResponse("ok")


urlpatterns = [
    path("api/test/crash", CrashingAPIView.as_view()),
    path("api/test/crash-django", crashing_django_view),
    path("", include("config.urls")),
]

handler400 = "config.api.errors.handler400"
handler403 = "config.api.errors.handler403"
handler404 = "config.api.errors.handler404"
handler500 = "config.api.errors.handler500"
