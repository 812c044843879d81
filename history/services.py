from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from history.models import PredictionRecord


@dataclass(frozen=True)
class RecordContext:
    """What every record of one request or job shares."""

    model_id: int
    version_id: int
    source: str
    correlation_id: str
    api_key_prefix: str
    created_at: datetime


def prediction_records_create(
    *,
    context: RecordContext,
    features: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    entity_ids: list[str],
    main_scores: list[float | None],
    latency_ms: float,
) -> list[int]:
    """Record predictions in one INSERT; returns their ids in order."""
    records = [
        PredictionRecord(
            model_id=context.model_id,
            version_id=context.version_id,
            created_at=context.created_at,
            source=context.source,
            correlation_id=context.correlation_id,
            api_key_prefix=context.api_key_prefix,
            entity_id=entity_id,
            features=row,
            output=output,
            main_score=score,
            latency_ms=latency_ms,
        )
        for row, output, entity_id, score in zip(features, outputs, entity_ids, main_scores, strict=True)
    ]
    created = PredictionRecord.objects.bulk_create(records, batch_size=2000)
    return [record.pk for record in created]
