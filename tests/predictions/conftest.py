from __future__ import annotations

import pytest

from accounts.roles import Role
from predictions.catalog import CATALOG
from predictions.services import mlmodels_sync_catalog, model_train, training_data_generated
from predictions.serving import registry

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
