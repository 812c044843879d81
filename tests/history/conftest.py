"""History fixtures: catalog models with versions (no training needed), and records written
through the service that predictions use, at chosen times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from history.services import RecordContext, prediction_records_create
from predictions.models import MLModel, ModelVersion, VersionStatus
from predictions.services import mlmodels_sync_catalog


@pytest.fixture
def catalog(db) -> dict[str, MLModel]:
    return {model.slug: model for model in mlmodels_sync_catalog()}


@pytest.fixture
def make_version(catalog) -> Callable[..., ModelVersion]:
    def make(slug: str = "churn", number: int = 1) -> ModelVersion:
        return ModelVersion.objects.create(
            model=catalog[slug],
            number=number,
            status=VersionStatus.ACTIVE if number == 1 else VersionStatus.CANDIDATE,
            artifact_path=f"{slug}/v{number}.npz",
            sha256="0" * 64,
            artifact_bytes=1,
            training_data_digest="0" * 64,
            training_rows=1,
            created_by="tests",
        )

    return make


@pytest.fixture
def record(make_version) -> Callable[..., list[int]]:
    """Write records of one version at one time: ``record(version, at, scores, ...)``."""

    def write(
        version: ModelVersion,
        at: datetime,
        scores: list[float | None],
        *,
        source: str = "api",
        entity_ids: list[str] | None = None,
        outputs: list[dict] | None = None,
        features: list[dict] | None = None,
        correlation_id: str = "corr",
        **context,
    ) -> list[int]:
        count = len(scores)
        return prediction_records_create(
            context=RecordContext(
                model_id=version.model_id,
                version_id=version.pk,
                source=source,
                correlation_id=correlation_id,
                api_key_prefix="abcd1234",
                created_at=at,
                **context,
            ),
            features=features or [{"contract_type": "annual"}] * count,
            outputs=outputs or [{"score": score} for score in scores],
            entity_ids=entity_ids or [f"e{i}" for i in range(count)],
            main_scores=scores,
            latency_ms=0.5,
        )

    return write
