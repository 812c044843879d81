from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.serializers import (
    APIKeyCreatedSerializer,
    APIKeyCreateSerializer,
    APIKeySerializer,
    MeSerializer,
)
from accounts.models import APIKey
from accounts.permissions import IsAdmin, IsViewer, request_role
from accounts.selectors import api_keys_visible_to
from accounts.services import api_key_create, api_key_revoke


class MeView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(responses=MeSerializer, summary="Who is calling, with which role")
    def get(self, request):
        api_key = request.auth if isinstance(request.auth, APIKey) else None
        data = {
            "username": request.user.username,
            "role": request_role(request),
            "authenticated_by": "api_key" if api_key else "session",
            "api_key": APIKeySerializer(api_key).data if api_key else None,
        }
        return Response(data)


class APIKeyListCreateView(generics.ListAPIView):
    """API keys: admins list every key and create keys for any user. The key is shown once."""

    permission_classes = [IsAdmin]
    serializer_class = APIKeySerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no caller
            return APIKey.objects.none()
        return api_keys_visible_to(self.request.user)

    @extend_schema(request=APIKeyCreateSerializer, responses={201: APIKeyCreatedSerializer})
    def post(self, request):
        params = APIKeyCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            api_key, raw_key = api_key_create(
                user=params.validated_data.get("user", request.user),
                name=params.validated_data["name"],
                role=params.validated_data["role"],
                tier=params.validated_data["tier"],
                expires_at=params.validated_data.get("expires_at"),
            )
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        api_key.key = raw_key
        return Response(APIKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)


class APIKeyDetailView(APIView):
    permission_classes = [IsAdmin]

    def get_object(self) -> APIKey:
        return get_object_or_404(api_keys_visible_to(self.request.user), prefix=self.kwargs["prefix"])

    @extend_schema(responses=APIKeySerializer)
    def get(self, request, prefix: str):
        return Response(APIKeySerializer(self.get_object()).data)

    @extend_schema(responses=APIKeySerializer, summary="Revoke the key (cannot be undone)")
    def delete(self, request, prefix: str):
        return Response(APIKeySerializer(api_key_revoke(api_key=self.get_object())).data)
