from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey

from accounts.roles import Role, Tier


class User(AbstractUser):
    """A person: logs in to the admin and the browsable API, owns API keys."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    @property
    def effective_role(self) -> str:
        return Role.ADMIN if self.is_superuser else self.role


class APIKey(AbstractAPIKey):
    """An API key: stored hashed (djangorestframework-api-key), looked up by its prefix.

    The key acts for its user with its own role, which never exceeds the user's.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.STANDARD)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        indexes = [models.Index(fields=["user", "revoked"])]
