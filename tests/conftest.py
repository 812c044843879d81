from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import APIKey
from accounts.roles import Role, Tier
from accounts.services import api_key_create
from predictions.catalog import CATALOG
from predictions.services import mlmodels_sync_catalog, model_train, training_data_generated
from predictions.serving import registry
from tests.factories import UserFactory


@dataclass
class Caller:
    """A persona with a key: what a client application holds."""

    api_key: APIKey
    raw_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"HTTP_X_API_KEY": self.raw_key}


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the shared cache; each test starts with a full budget."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def client() -> APIClient:
    return APIClient()


@pytest.fixture
def make_caller(db):
    def make(role: str = Role.VIEWER, *, tier: str = Tier.STANDARD, username: str | None = None, **key_fields):
        user = UserFactory(username=username or f"{role}-person", role=role)
        api_key, raw_key = api_key_create(user=user, name=f"{role} key", role=role, tier=tier)
        if key_fields:
            APIKey.objects.filter(pk=api_key.pk).update(**key_fields)
            api_key.refresh_from_db()
        return Caller(api_key=api_key, raw_key=raw_key)

    return make


@pytest.fixture
def viewer(make_caller) -> Caller:
    return make_caller(Role.VIEWER)


@pytest.fixture
def admin_caller(make_caller) -> Caller:
    return make_caller(Role.ADMIN)


# Small training sets keep the API tests fast; the quality bars are tested in tests/predictions/catalog.
FAST_TRAINING_ROWS = 3_000


@pytest.fixture(autouse=True)
def _isolated_artifacts(settings, tmp_path):
    """Each test trains into its own ARTIFACT_ROOT and starts with nothing loaded."""
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    registry.forget()
    yield
    registry.forget()


@pytest.fixture
def train(db):
    mlmodels_sync_catalog()

    def train_version(slug: str = "churn", *, rows: int = FAST_TRAINING_ROWS, seed: int = 0, drift: float = 0.0):
        data = training_data_generated(spec=CATALOG[slug], rows=rows, seed=seed, drift=drift)
        return model_train(slug=slug, data=data, created_by="tests", seed=seed)

    return train_version


@pytest.fixture
def predictor(make_caller):
    return make_caller(Role.PREDICTOR, username="pat-predictor")


@pytest.fixture
def admin(make_caller):
    return make_caller(Role.ADMIN, username="ada-admin")
