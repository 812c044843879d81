"""Roles, from least to most privileged. Each role can do everything the ones before it can."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer: reads models, history and reports"
    PREDICTOR = "predictor", "Predictor: + predictions and bulk jobs"
    OPERATOR = "operator", "Operator: + schedules, triggers, retraining, alerts"
    ADMIN = "admin", "Admin: + API keys, promote and roll back models"


_RANK = {role: rank for rank, role in enumerate(Role)}


def role_allows(granted: str | None, required: str) -> bool:
    """True if ``granted`` is ``required`` or a more privileged role."""
    if granted not in _RANK:
        return False
    return _RANK[Role(granted)] >= _RANK[Role(required)]


class Tier(models.TextChoices):
    """Rate-limit tiers; their rates come from the RATE_LIMIT_TIERS setting."""

    BASIC = "basic", "Basic"
    STANDARD = "standard", "Standard"
    PREMIUM = "premium", "Premium"
    UNLIMITED = "unlimited", "Unlimited"
