from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from django.db import connection, transaction

from history.models import PredictionRecord

# Below this many rows the ORM's INSERT ... RETURNING is the cheapest (one round trip); above
# it, the ORM's per-object work dominates and the bulk writers below are 5-10x faster.
BULK_WRITE_MIN_ROWS = 50

_COLUMNS = (
    "id", "model_id", "version_id", "created_at", "source", "correlation_id", "api_key_prefix",
    "entity_id", "features", "output", "main_score", "latency_ms",
)  # fmt: skip


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
    """Record predictions; returns their ids in order. All rows are written, or none."""
    if len(features) < BULK_WRITE_MIN_ROWS:
        return _create_with_orm(context, features, outputs, entity_ids, main_scores, latency_ms)
    created_at = connection.ops.adapt_datetimefield_value(context.created_at)
    shared = (context.model_id, context.version_id, created_at, context.source, context.correlation_id,
              context.api_key_prefix)  # fmt: skip
    with transaction.atomic():
        ids = _reserve_ids(len(features))
        rows = [
            (record_id, *shared, entity_id, _json(row), _json(output), score, latency_ms)
            for record_id, row, output, entity_id, score in zip(
                ids, features, outputs, entity_ids, main_scores, strict=True
            )
        ]
        _write_rows(rows)
    return ids


def _create_with_orm(context, features, outputs, entity_ids, main_scores, latency_ms) -> list[int]:
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
    if len(records) == 1:  # a plain INSERT in autocommit: one round trip, no BEGIN/COMMIT
        records[0].save(force_insert=True)
        return [records[0].pk]
    return [record.pk for record in PredictionRecord.objects.bulk_create(records)]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _reserve_ids(count: int) -> list[int]:
    """Take ``count`` ids the table's own id generator will never hand out again.

    Called inside the writing transaction. PostgreSQL: from the identity sequence (shared
    safely by concurrent writers). SQLite: after the table's AUTOINCREMENT high-water mark,
    which is safe because SQLite transactions here take the write lock at BEGIN (IMMEDIATE).
    """
    table = PredictionRecord._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count]
            )
            return [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        found = cursor.fetchone()
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM " + connection.ops.quote_name(table))  # noqa: S608
        start = max(found[0] if found else 0, cursor.fetchone()[0]) + 1
        return list(range(start, start + count))


def _write_rows(rows: list[tuple]) -> None:
    """PostgreSQL: COPY (about 4x a multi-row INSERT). SQLite: executemany of one INSERT."""
    table = connection.ops.quote_name(PredictionRecord._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(name) for name in _COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        placeholders = ", ".join(["%s"] * len(_COLUMNS))
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows)  # noqa: S608
