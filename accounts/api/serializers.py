from __future__ import annotations

from rest_framework import serializers

from accounts.models import APIKey, User
from accounts.roles import Role, Tier


class APIKeySerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    expires_at = serializers.DateTimeField(source="expiry_date", read_only=True)
    has_expired = serializers.BooleanField(read_only=True)

    class Meta:
        model = APIKey
        fields = [
            "prefix",
            "name",
            "user",
            "role",
            "tier",
            "created",
            "expires_at",
            "has_expired",
            "revoked",
            "revoked_at",
            "last_used_at",
        ]
        read_only_fields = fields


class APIKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=50)
    user = serializers.SlugRelatedField(
        slug_field="username",
        queryset=User.objects.filter(is_active=True),
        required=False,
        help_text="Owner of the key; defaults to the caller.",
    )
    role = serializers.ChoiceField(choices=Role.choices)
    tier = serializers.ChoiceField(choices=Tier.choices, default=Tier.STANDARD)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class APIKeyCreatedSerializer(APIKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The key itself. Shown once: store it now.")

    class Meta(APIKeySerializer.Meta):
        fields = ["key", *APIKeySerializer.Meta.fields]
        read_only_fields = fields


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices, help_text="The role this request acts with.")
    authenticated_by = serializers.ChoiceField(choices=["api_key", "session"])
    api_key = APIKeySerializer(allow_null=True)
