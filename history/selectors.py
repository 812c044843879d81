from __future__ import annotations

from datetime import datetime

from history.models import PredictionRecord


def last_prediction_at(*, model_id: int) -> datetime | None:
    return (
        PredictionRecord.objects.filter(model_id=model_id)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
