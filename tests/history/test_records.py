"""Prediction records are written the same way, and read back the same, on every write path."""

from __future__ import annotations

import pytest
from django.utils import timezone

from history.models import PredictionRecord
from history.services import BULK_WRITE_MIN_ROWS, RecordContext, prediction_records_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def context(train):
    version = train("churn")
    return RecordContext(
        model_id=version.model_id,
        version_id=version.pk,
        source="batch",
        correlation_id="corr-1",
        api_key_prefix="abcdefgh",
        created_at=timezone.now(),
    )


@pytest.mark.parametrize("count", [1, BULK_WRITE_MIN_ROWS - 1, BULK_WRITE_MIN_ROWS, 1200])
def test_records_round_trip_whatever_the_write_path(context, count):
    features = [{"tenure_months": i, "contract_type": "annual"} for i in range(count)]
    outputs = [{"churn_probability": i / count, "risk_band": "low"} for i in range(count)]

    ids = prediction_records_create(
        context=context,
        features=features,
        outputs=outputs,
        entity_ids=[f"c{i}" for i in range(count)],
        main_scores=[o["churn_probability"] for o in outputs],
        latency_ms=0.25,
    )

    records = list(PredictionRecord.objects.filter(pk__in=ids).order_by("pk"))
    assert [r.pk for r in records] == ids and len(set(ids)) == count
    last = records[-1]
    assert last.features == features[-1] and last.output == outputs[-1] and last.entity_id == f"c{count - 1}"
    assert last.created_at == context.created_at and last.correlation_id == "corr-1"
    assert PredictionRecord.objects.filter(created_at__gte=context.created_at).count() == count


def test_bulk_ids_never_collide_with_later_orm_inserts(context):
    first = prediction_records_create(
        context=context,
        features=[{}] * 100,
        outputs=[{}] * 100,
        entity_ids=[""] * 100,
        main_scores=[None] * 100,
        latency_ms=0.1,
    )
    second = prediction_records_create(
        context=context, features=[{}], outputs=[{}], entity_ids=[""], main_scores=[None], latency_ms=0.1
    )

    assert second[0] > max(first)
