from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np
import orjson
import pandas as pd
from django.conf import settings
from django.core.files import File
from django.db import connection, transaction
from django.db.models import Min, Q
from django.utils import timezone

from history.aggregates import HourRow, RecordScope, hour_rows
from history.buckets import floor_hour
from history.kinds import OutcomeKind, error_applies, outcome_kind
from history.models import (
    HourlyRollup,
    ImportStatus,
    MaintenanceState,
    Outcome,
    OutcomeImport,
    PredictionRecord,
    RetentionPolicy,
)
from history.scores import Summary
from history.selectors import RetentionSetting, retention_setting
from predictions.datasets import format_from_name
from predictions.models import MLModel

# Below this many rows one INSERT ... RETURNING is the cheapest (one round trip); above it,
# COPY (PostgreSQL) or executemany (SQLite) with reserved ids is 5-10x faster per row.
BULK_WRITE_MIN_ROWS = 50

_COLUMNS = (
    "id", "model_id", "version_id", "created_at", "source", "correlation_id", "api_key_prefix",
    "entity_id", "features", "output", "main_score", "latency_ms", "bulk_job_id", "scheduled_execution_id",
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
    bulk_job_id: UUID | None = None
    scheduled_execution_id: int | None = None


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
    with prediction_records_writer(context=context, count=len(features)) as writer:
        writer.write(
            features=features, outputs=outputs, entity_ids=entity_ids, main_scores=main_scores, latency_ms=latency_ms
        )
    return writer.ids


class PredictionRecordWriter:
    """Takes the records of one call in parts, as they are predicted; see the function below."""

    def __init__(self, context: RecordContext, count: int, *, ids: list[int] | None = None, copy: Any = None) -> None:
        bulk_job_id = PredictionRecord._meta.get_field("bulk_job_id").get_db_prep_value(context.bulk_job_id, connection)
        created_at = connection.ops.adapt_datetimefield_value(context.created_at)
        self._head = (context.model_id, context.version_id, created_at, context.source, context.correlation_id,
                      context.api_key_prefix)  # fmt: skip
        self._bulk_job_id = bulk_job_id
        self._execution_id = context.scheduled_execution_id
        self._count = count
        self._reserved = ids  # with ``copy``: the ids of the rows streamed as they come
        self._copy = copy
        self._pending: list[tuple] = []  # without: rows kept for one insert at the end
        self.ids: list[int] = []

    def write(
        self,
        *,
        features: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
        entity_ids: list[str],
        main_scores: list[float | None],
        latency_ms: float,
        scheduled_execution_ids: list[int] | None = None,
    ) -> None:
        """Add records; ``scheduled_execution_ids``, one per row, overrides the context's single id."""
        written = len(self.ids) + len(self._pending)
        if written + len(features) > self._count:
            raise ValueError("More records written than were announced.")
        execution_ids = scheduled_execution_ids or [self._execution_id] * len(features)
        columns = (entity_ids, features, outputs, main_scores, execution_ids)
        if self._copy is not None:
            ids = self._reserved[written : written + len(features)]
            self._copy.write(_copy_lines(self._head, latency_ms, self._bulk_job_id, ids, *columns))
            self.ids.extend(ids)
            return
        head, bulk_job_id = self._head, self._bulk_job_id
        rows = [
            (*head, entity_id, _json(row), _json(output), score, latency_ms, bulk_job_id, row_execution_id)
            for entity_id, row, output, score, row_execution_id in zip(*columns, strict=True)
        ]
        self._pending.extend(rows)

    def _finish(self) -> None:
        written = len(self.ids) + len(self._pending)
        if written != self._count:
            raise ValueError(f"{self._count} records were announced, {written} written.")
        if self._pending:
            self.ids = _insert_rows(self._pending)


@contextmanager
def prediction_records_writer(*, context: RecordContext, count: int) -> Iterator[PredictionRecordWriter]:
    """Record ``count`` predictions written in parts; ``writer.ids`` holds their ids, in order.

    All rows are written, or none (an exception inside rolls everything back). Many rows go
    through COPY on PostgreSQL, opened before the first part: the server parses and indexes
    each part while this process predicts the next one, so the two costs overlap on two
    cores instead of adding up. Otherwise the rows are inserted together at the end: on
    SQLite, whose one write lock is taken by the first write and held until the commit, that
    keeps other writers waiting only for the insert, not for the prediction of every part.
    """
    if count < BULK_WRITE_MIN_ROWS or connection.vendor != "postgresql":
        writer = PredictionRecordWriter(context, count)
        yield writer
        writer._finish()
        return
    with transaction.atomic():
        ids = _reserve_ids(count)
        with connection.cursor() as cursor, cursor.cursor.copy(_copy_statement()) as copy:
            writer = PredictionRecordWriter(context, count, ids=ids, copy=copy)
            yield writer
            writer._finish()


def _insert_rows(rows: list[tuple]) -> list[int]:
    """Insert rows in the order of ``_COLUMNS[1:]``; returns their ids, in order."""
    if len(rows) < BULK_WRITE_MIN_ROWS:
        return _insert_returning_ids(rows)
    with transaction.atomic():
        ids = _reserve_ids(len(rows))
        _executemany([(record_id, *row) for record_id, row in zip(ids, rows, strict=True)])
    return ids


def _insert_returning_ids(rows: list[tuple]) -> list[int]:
    """One INSERT ... RETURNING statement: a single round trip, in autocommit no BEGIN/COMMIT.

    Written by hand rather than with ``Model.save()``: the ORM spends ~0.35 ms per call
    compiling the statement and encoding JSON, more than PostgreSQL spends on the durable
    INSERT itself, on the path every single prediction takes. Both databases return the ids
    of a multi-row VALUES list in the order of its rows.
    """
    columns = _COLUMNS[1:]
    values = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(rows))
    sql = f"INSERT INTO {_table()} ({_column_list(columns)}) VALUES {values} RETURNING {_column_list(['id'])}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])
        return [record_id for (record_id,) in cursor.fetchall()]


def _table() -> str:
    return connection.ops.quote_name(PredictionRecord._meta.db_table)


def _column_list(names) -> str:
    return ", ".join(connection.ops.quote_name(name) for name in names)


def _json(value: Any) -> str:
    return _json_bytes(value).decode()


def _json_bytes(value: Any) -> bytes:
    """JSON text with any NUL character replaced by U+FFFD.

    PostgreSQL's ``json`` operators refuse a whole document that holds ``\\u0000`` (``jsonb``
    refused to store one), so a single such record would stop every roll-up of its hour. API
    input cannot carry one (features are validated); a direct service call might.
    """
    data = orjson.dumps(value)
    if b"\\u0000" in data:  # rare; may also be an escaped backslash before "u0000", which is harmless
        data = orjson.dumps(_without_nul(value))
    return data


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(item) for item in value]
    return value


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


# COPY's text format: a backslash starts an escape, tabs and newlines end values and rows.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_NULL = b"\\N"


def _copy_value(value: Any) -> bytes:
    if value is None:
        return _COPY_NULL
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text.translate(_COPY_ESCAPES).encode()


def _copy_lines(
    head: tuple,
    latency_ms: float,
    bulk_job_id: Any,
    ids: list[int],
    entity_ids: list[str],
    features: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    main_scores: list[float | None],
    execution_ids: list[int | None],
) -> bytes:
    """Rows of history records in COPY's text format, in the order of ``_COLUMNS``.

    Formatted here rather than with psycopg's ``write_row``, which passes every value of
    every row through its type adapters (~3.5 µs a row); the columns shared by the whole
    call are formatted once. orjson's JSON never holds a raw tab or newline (JSON escapes
    them), so only its backslashes need doubling.
    """
    shared = b"\t".join(_copy_value(value) for value in head)
    tail = b"%r\t%b" % (float(latency_ms), _copy_value(bulk_job_id))
    lines = [
        b"%d\t%b\t%b\t%b\t%b\t%b\t%b\t%b\n"
        % (
            record_id,
            shared,
            _copy_value(entity_id),
            _json_bytes(row).replace(b"\\", b"\\\\"),
            _json_bytes(output).replace(b"\\", b"\\\\"),
            _COPY_NULL if score is None else b"%r" % float(score),
            tail,
            _COPY_NULL if execution_id is None else b"%d" % execution_id,
        )
        for record_id, entity_id, row, output, score, execution_id in zip(
            ids, entity_ids, features, outputs, main_scores, execution_ids, strict=True
        )
    ]
    return b"".join(lines)


def _copy_statement() -> str:
    return f"COPY {_table()} ({_column_list(_COLUMNS)}) FROM STDIN"


def _executemany(rows: list[tuple]) -> None:
    """SQLite: one prepared INSERT for all rows (~250,000 rows/s, against ~38,000 for bulk_create)."""
    placeholders = ", ".join(["%s"] * len(_COLUMNS))
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {_table()} ({_column_list(_COLUMNS)}) VALUES ({placeholders})", rows)  # noqa: S608


# --- Roll-ups --------------------------------------------------------------------------------
# (Everything below reads records; prediction_records_create above is the only writer of them.)

# Hours rolled up per transaction: a week of hours keeps each transaction (and the lock outcome
# writers wait on) short, while a first roll-up of a year takes ~53 of them.
ROLLUP_CHUNK = timedelta(days=7)


def rollups_refresh(*, now: datetime | None = None) -> int:
    """Roll up every hour that closed HISTORY_ROLLUP_DELAY_SECONDS ago or more; returns hour rows written.

    Safe to run concurrently: each chunk holds the maintenance row's lock while it reads the
    raw records and moves ``rolled_until``, so an hour is never rolled up twice, and outcome
    writers (which take the same lock, shared) either finish before the chunk reads their
    outcomes or see the new ``rolled_until`` and add to the rolled-up hours themselves.
    """
    moment = (now or timezone.now()) - timedelta(seconds=settings.HISTORY_ROLLUP_DELAY_SECONDS)
    limit = floor_hour(moment)
    written = 0
    while True:
        with transaction.atomic():
            state = _maintenance_state(lock=True)
            start = state.rolled_until or _first_record_hour()
            if start is None:  # nothing recorded yet: every hour before the limit is (empty and) done
                state.rolled_until = limit
                state.save(update_fields=["rolled_until", "updated_at"])
                return written
            if start >= limit:
                return written
            end = min(start + ROLLUP_CHUNK, limit)
            rows = hour_rows(RecordScope(start=start, end=end))
            _rollups_write(rows)
            state.rolled_until = end
            state.save(update_fields=["rolled_until", "updated_at"])
            written += len(rows)


def _maintenance_state(*, lock: bool) -> MaintenanceState:
    MaintenanceState.objects.get_or_create(pk=1)
    states = MaintenanceState.objects.select_for_update() if lock else MaintenanceState.objects
    return states.get(pk=1)


def _rolled_until_shared_lock() -> datetime | None:
    """``rolled_until``, holding the row in share mode until the transaction ends.

    PostgreSQL: FOR SHARE, which the ORM cannot say; outcome writers do not block each other,
    only a roll-up. SQLite: a writing transaction already holds the database's write lock.
    """
    MaintenanceState.objects.get_or_create(pk=1)
    if connection.vendor != "postgresql":
        return MaintenanceState.objects.values_list("rolled_until", flat=True).get(pk=1)
    table = connection.ops.quote_name(MaintenanceState._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT rolled_until FROM {table} WHERE id = 1 FOR SHARE")  # noqa: S608
        return cursor.fetchone()[0]


def _first_record_hour() -> datetime | None:
    first = PredictionRecord.objects.order_by("created_at").values_list("created_at", flat=True).first()
    return floor_hour(first) if first else None


def _summary_values(s: Summary) -> tuple:
    return (
        s.count, s.score_count, s.score_sum, s.score_sumsq, s.score_min, s.score_max, _json(s.histogram),
        _json(s.classes), s.outcome_count, s.error_count, s.error_sum, s.error_abs_sum, s.error_sq_sum,
    )  # fmt: skip


_ROLLUP_COLUMNS = (
    "model_id", "version_id", "source", "hour", "count", "score_count", "score_sum", "score_sumsq", "score_min",
    "score_max", "histogram", "classes", "outcome_count", "error_count", "error_sum", "error_abs_sum", "error_sq_sum",
)  # fmt: skip


def _rollups_write(rows: list[HourRow]) -> None:
    """Insert roll-up rows: COPY (PostgreSQL) or executemany (SQLite).

    A first roll-up of a year writes hundreds of thousands of them; bulk_create's per-object
    work was most of its time.
    """
    adapt = connection.ops.adapt_datetimefield_value
    values = [
        (row.model_id, row.version_id, row.source, adapt(row.hour), *_summary_values(row.summary)) for row in rows
    ]
    table = connection.ops.quote_name(HourlyRollup._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(name) for name in _ROLLUP_COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
            return
        placeholders = ", ".join(["%s"] * len(_ROLLUP_COLUMNS))
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", values)  # noqa: S608


# --- Outcomes --------------------------------------------------------------------------------


class OutcomeInputError(Exception):
    """Outcomes failed validation; ``errors`` maps item index to a message. Nothing was recorded."""

    def __init__(self, errors: dict[int, str]):
        super().__init__(f"{len(errors)} outcome(s) are invalid")
        self.errors = errors


@dataclass(frozen=True)
class OutcomeItem:
    """One realised value, for a prediction id or for an entity's predictions in a time window."""

    value: Any
    prediction_id: int | None = None
    entity_id: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    observed_at: datetime | None = None


@dataclass
class OutcomeReport:
    received: int = 0
    recorded: int = 0  # predictions that got their outcome now
    unchanged: int = 0  # predictions that already had this very outcome
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # already had another value: kept
    unmatched: list[dict[str, Any]] = field(default_factory=list)  # items no prediction matched

    def add(self, other: OutcomeReport, *, index_offset: int = 0) -> None:
        self.received += other.received
        self.recorded += other.recorded
        self.unchanged += other.unchanged
        self.conflicts += [{**item, "index": item["index"] + index_offset} for item in other.conflicts]
        self.unmatched += [{**item, "index": item["index"] + index_offset} for item in other.unmatched]


def outcome_value_checked(kind: OutcomeKind, raw: Any) -> float:
    """The outcome as a float; ValueError with a message for the client if its type is wrong."""
    if kind == "label":
        if isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw in (0, 1):
            return float(raw)
        raise ValueError("This model's outcome is a class label: send 0 or 1 (or false/true).")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw):
        return float(raw)
    raise ValueError("This model's outcome is a number: send a finite number.")


def outcome_items_check(*, slug: str, items: list[OutcomeItem]) -> tuple[list[float], dict[int, str]]:
    """Each item's value as a float (0.0 where invalid) and the errors by index."""
    kind = outcome_kind(slug)
    errors: dict[int, str] = {}
    values: list[float] = []
    for index, item in enumerate(items):
        try:
            values.append(outcome_value_checked(kind, item.value))
        except ValueError as exc:
            values.append(0.0)
            errors[index] = str(exc)
            continue
        if (item.prediction_id is None) == (item.entity_id is None):
            errors[index] = "Give either prediction_id, or entity_id with window_start and window_end."
        elif item.entity_id is not None and not (item.window_start and item.window_end):
            errors[index] = "entity_id needs window_start and window_end."
        elif item.entity_id is not None and item.window_end <= item.window_start:
            errors[index] = "window_end must be after window_start."
    return values, errors


def outcomes_record(*, slug: str, items: list[OutcomeItem]) -> OutcomeReport:
    """Record outcomes for one model's predictions: idempotent, all valid or nothing written.

    An item names a prediction by id, or an entity and a window [start, end): then every
    prediction of that entity made in the window gets the outcome. A prediction keeps the
    first outcome it gets; the same value again is ``unchanged``, another one a conflict.
    """
    values, errors = outcome_items_check(slug=slug, items=items)
    if errors:
        raise OutcomeInputError(errors)
    if not items:
        return OutcomeReport()
    model_id = MLModel.objects.values_list("pk", flat=True).get(slug=slug)
    with transaction.atomic():
        rolled_until = _rolled_until_shared_lock()
        return _outcomes_write(model_id, error_applies(slug), items, values, rolled_until)


_OUTCOME_INPUT = "history_outcome_input"


def _outcomes_write(
    model_id: int, with_error: bool, items: list[OutcomeItem], values: list[float], rolled_until: datetime | None
) -> OutcomeReport:
    adapt = connection.ops.adapt_datetimefield_value
    recorded_at = adapt(timezone.now())
    inputs = [
        (index, item.prediction_id, item.entity_id, adapt(item.window_start), adapt(item.window_end), value)
        for index, (item, value) in enumerate(zip(items, values, strict=True))
    ]
    _temp_table(_OUTCOME_INPUT, _INPUT_COLUMNS, inputs)
    matched = _outcome_matches(model_id)

    report = OutcomeReport(received=len(items))
    found = {row[0] for row in matched}
    report.unmatched = [
        {"index": index, "reason": _unmatched_reason(item)} for index, item in enumerate(items) if index not in found
    ]
    new: dict[int, tuple] = {}  # prediction id -> (row to write, what its roll-up row needs)
    hours: dict[int, datetime] = {}
    for index, prediction_id, version_id, source, hour_number, main_score, earlier in matched:
        value = values[index]
        if earlier is None and prediction_id in new:
            earlier = new[prediction_id][0][2]
        if earlier is None:
            error = main_score - value if with_error and main_score is not None else None
            observed = items[index].observed_at
            row = (prediction_id, model_id, value, error, adapt(observed) if observed else recorded_at, recorded_at)
            hour = hours.get(hour_number)
            if hour is None:
                hour = hours[hour_number] = datetime.fromtimestamp(hour_number * 3600, tz=UTC)
            new[prediction_id] = (row, (version_id, source, hour, error))
        elif earlier == value:
            report.unchanged += 1
        else:
            report.conflicts.append(
                {"index": index, "prediction_id": prediction_id, "recorded_value": earlier, "value": value}
            )
    inserted = _outcomes_insert([row for row, _ in new.values()])
    report.recorded = len(inserted)
    report.unchanged += len(new) - len(inserted)  # written meanwhile by a concurrent request
    if rolled_until is not None:
        _rollups_add_outcomes(model_id, [new[pid][1] for pid in inserted if new[pid][1][2] < rolled_until])
    return report


_INPUT_COLUMNS = (
    ("idx", "integer"),
    ("prediction_id", "bigint"),
    ("entity_id", "varchar(120)"),
    ("window_start", "timestamp"),
    ("window_end", "timestamp"),
    ("value", "double precision"),
)
_PG_ARRAY_TYPES = {"bigint": "bigint", "double precision": "float8", "timestamp": "timestamptz"}
_NEW_COLUMNS = (
    ("prediction_id", "bigint"),
    ("model_id", "bigint"),
    ("value", "double precision"),
    ("error", "double precision"),
    ("observed_at", "timestamp"),
    ("recorded_at", "timestamp"),
)


def _temp_table(name: str, columns: tuple[tuple[str, str], ...], rows: list[tuple]) -> None:
    """A temporary table holding ``rows``, gone at the end of the transaction (PostgreSQL) or
    replaced by the next call (SQLite, which has no ON COMMIT DROP)."""
    postgres = connection.vendor == "postgresql"
    types = {"timestamp": "timestamptz"} if postgres else {}
    definition = ", ".join(f"{column} {types.get(kind, kind)}" for column, kind in columns)
    with connection.cursor() as cursor:
        if postgres:
            # Dropped first too: a caller's outer transaction may still hold the previous call's.
            cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")
            cursor.execute(f"CREATE TEMPORARY TABLE {name} ({definition}) ON COMMIT DROP")
            with cursor.cursor.copy(f"COPY {name} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(f"ANALYZE {name}")  # the planner's guess for a fresh table is 1,000s of rows off
            return
        cursor.execute(f"DROP TABLE IF EXISTS temp.{name}")
        cursor.execute(f"CREATE TEMPORARY TABLE {name} ({definition})")
        placeholders = ", ".join(["%s"] * len(columns))
        cursor.executemany(f"INSERT INTO temp.{name} VALUES ({placeholders})", rows)  # noqa: S608


def _outcome_matches(model_id: int) -> list[tuple]:
    """(index, prediction id, version id, source, hour number, main score, recorded value or None)
    per matched prediction, in input order."""
    records = connection.ops.quote_name(PredictionRecord._meta.db_table)
    outcomes = connection.ops.quote_name(Outcome._meta.db_table)
    # The hour as a number (hours since 1970): parsing 10,000 timestamps costs more than the query.
    if connection.vendor == "postgresql":
        hour = "FLOOR(EXTRACT(EPOCH FROM r.created_at) / 3600)::bigint"
    else:
        hour = "CAST(strftime('%%s', r.created_at) AS INTEGER) / 3600"
    columns = f"i.idx, r.id, r.version_id, r.source, {hour}, r.main_score, o.value"
    recorded = f"LEFT JOIN {outcomes} o ON o.prediction_id = r.id"
    sql = (
        f"SELECT {columns} FROM {_OUTCOME_INPUT} i JOIN {records} r ON r.id = i.prediction_id {recorded} "  # noqa: S608
        "WHERE i.prediction_id IS NOT NULL AND r.model_id = %s "
        f"UNION ALL SELECT {columns} FROM {_OUTCOME_INPUT} i JOIN {records} r "
        "ON r.model_id = %s AND r.entity_id = i.entity_id "
        f"AND r.created_at >= i.window_start AND r.created_at < i.window_end {recorded} "
        "WHERE i.prediction_id IS NULL "
        "ORDER BY 1, 2"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [model_id, model_id])
        return cursor.fetchall()


def _outcomes_insert(rows: list[tuple]) -> list[int]:
    """Write new outcomes; returns the prediction ids actually written.

    PostgreSQL: one INSERT ... SELECT FROM unnest(<one array per column>) ... ON CONFLICT DO
    NOTHING, so an outcome a concurrent request wrote first is skipped instead of failing the
    whole call (arrays travel in binary, no second temporary table). SQLite: writers are
    serialised by the database lock, so none can come in between.
    """
    if not rows:
        return []
    table = connection.ops.quote_name(Outcome._meta.db_table)
    columns = ", ".join(name for name, _ in _NEW_COLUMNS)
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"%s::{_PG_ARRAY_TYPES[kind]}[]" for _, kind in _NEW_COLUMNS)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) "  # noqa: S608
                "ON CONFLICT (prediction_id) DO NOTHING RETURNING prediction_id",
                [list(column) for column in zip(*rows, strict=True)],
            )
            return [row[0] for row in cursor.fetchall()]
    placeholders = ", ".join(["%s"] * len(_NEW_COLUMNS))
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows)  # noqa: S608
    return [row[0] for row in rows]


def _rollups_add_outcomes(model_id: int, matches: list[tuple]) -> None:
    """Add outcomes of already rolled-up hours to their roll-up rows, one statement per 500 rows."""
    groups: dict[tuple, list[float]] = {}
    for version_id, source, hour, error in matches:
        key = (version_id, source, hour)
        group = groups.setdefault(key, [0, 0, 0.0, 0.0, 0.0])
        group[0] += 1
        if error is not None:
            group[1] += 1
            group[2] += error
            group[3] += abs(error)
            group[4] += error * error
    if not groups:
        return
    table = connection.ops.quote_name(HourlyRollup._meta.db_table)
    adapt = connection.ops.adapt_datetimefield_value
    rows = [(model_id, v, s, adapt(h), *numbers) for (v, s, h), numbers in groups.items()]
    cast = "::timestamptz" if connection.vendor == "postgresql" else ""
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        placeholders = ", ".join([f"(%s, %s, %s, %s{cast}, %s, %s, %s, %s, %s)"] * len(chunk))
        sql = (
            f"UPDATE {table} SET outcome_count = outcome_count + v.column5, "  # noqa: S608
            "error_count = error_count + v.column6, error_sum = error_sum + v.column7, "
            "error_abs_sum = error_abs_sum + v.column8, error_sq_sum = error_sq_sum + v.column9 "
            f"FROM (VALUES {placeholders}) AS v "
            f"WHERE {table}.model_id = v.column1 AND {table}.version_id = v.column2 "
            f"AND {table}.source = v.column3 AND {table}.hour = v.column4"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [value for row in chunk for value in row])


def _unmatched_reason(item: OutcomeItem) -> str:
    if item.prediction_id is not None:
        return "No prediction of this model has this id."
    return "No prediction of this model for this entity in the window."


# --- Outcome files ---------------------------------------------------------------------------


class OutcomeFileRejected(Exception):
    """The file cannot be imported at all: unknown format, unreadable, or missing columns."""


# Rows per call of outcomes_record: the size of one API call, and of one transaction.
IMPORT_CHUNK_ROWS = 10_000
# Problems kept on the import for the client to read; the counters have the totals.
IMPORT_PROBLEMS_KEPT = 1_000
OUTCOME_FILE_COLUMNS = ("prediction_id", "entity_id", "window_start", "window_end", "value", "observed_at")


def outcome_import_create(*, slug: str, filename: str, upload: Any, uploaded_by: str) -> OutcomeImport:
    """Store an outcome file after checking its columns; a task records it (outcome_import_run)."""
    file_format = format_from_name(filename)
    if file_format is None:
        raise OutcomeFileRejected("The file must be .csv or .parquet.")
    columns = _outcome_file_columns(upload, file_format)
    if "value" not in columns:
        raise OutcomeFileRejected("The file needs a 'value' column.")
    if "prediction_id" not in columns and not {"entity_id", "window_start", "window_end"} <= columns:
        raise OutcomeFileRejected("The file needs 'prediction_id', or 'entity_id', 'window_start' and 'window_end'.")
    upload.seek(0)
    with transaction.atomic():
        imported = OutcomeImport(model=MLModel.objects.get(slug=slug), file_format=file_format, uploaded_by=uploaded_by)
        imported.file.save(f"{slug}-outcomes.{file_format}", File(upload), save=False)
        imported.save()
        from history.tasks import import_outcomes

        transaction.on_commit(lambda: import_outcomes.delay(imported.pk))
    return imported


def _outcome_file_columns(upload: Any, file_format: str) -> set[str]:
    try:
        if file_format == "csv":
            return set(pd.read_csv(upload, nrows=0).columns)
        import pyarrow.parquet as pq  # only here: web processes need not carry pyarrow otherwise

        return set(pq.ParquetFile(upload).schema_arrow.names)
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise OutcomeFileRejected(f"The file cannot be read as {file_format}: {exc}") from None


_IMPORT_PROGRESS = ["rows", "recorded", "unchanged", "conflicts", "unmatched", "invalid", "problems"]


def outcome_import_run(*, import_id: int) -> OutcomeImport | None:
    """Record a stored outcome file in chunks; safe to call twice (only a pending import is claimed)."""
    claimed = OutcomeImport.objects.filter(pk=import_id, status=ImportStatus.PENDING).update(
        status=ImportStatus.RUNNING
    )
    if not claimed:
        return None
    imported = OutcomeImport.objects.select_related("model").get(pk=import_id)
    try:
        for first_row, frame in _outcome_file_chunks(imported):
            _outcome_import_chunk(imported, first_row, frame)
            imported.save(
                update_fields=["rows", "recorded", "unchanged", "conflicts", "unmatched", "invalid", "problems"]
            )
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        imported.status, imported.error = ImportStatus.FAILED, f"The file could not be read: {exc}"
    else:
        imported.status = ImportStatus.COMPLETED
    imported.finished_at = timezone.now()
    imported.save()
    return imported


def _outcome_file_chunks(imported: OutcomeImport) -> Iterator[tuple[int, pd.DataFrame]]:
    """(first row number, frame) per chunk; rows count from 1, the header not included."""
    with imported.file.open("rb") as handle:
        if imported.file_format == "csv":
            chunks = pd.read_csv(handle, chunksize=IMPORT_CHUNK_ROWS, dtype={"entity_id": str})
        else:
            import pyarrow.parquet as pq

            chunks = (batch.to_pandas() for batch in pq.ParquetFile(handle).iter_batches(IMPORT_CHUNK_ROWS))
        first = 1
        for frame in chunks:
            yield first, frame
            first += len(frame)


def _outcome_import_chunk(imported: OutcomeImport, first_row: int, frame: pd.DataFrame) -> None:
    items = [_outcome_item_from_row(row) for row in frame.to_dict("records")]
    imported.rows += len(items)
    _, errors = outcome_items_check(slug=imported.model.slug, items=items)
    valid = [index for index in range(len(items)) if index not in errors]
    report = outcomes_record(slug=imported.model.slug, items=[items[i] for i in valid])
    imported.recorded += report.recorded
    imported.unchanged += report.unchanged
    imported.invalid += len(errors)
    imported.conflicts += len(report.conflicts)
    imported.unmatched += len(report.unmatched)
    problems = [{"row": first_row + i, "problem": "invalid", "message": message} for i, message in errors.items()]
    problems += [
        {"row": first_row + valid[item["index"]], "problem": "unmatched", "message": item["reason"]}
        for item in report.unmatched
    ]
    problems += [
        {
            "row": first_row + valid[item["index"]],
            "problem": "conflict",
            "message": f"Prediction {item['prediction_id']} already has outcome {item['recorded_value']}.",
        }
        for item in report.conflicts
    ]
    room = IMPORT_PROBLEMS_KEPT - len(imported.problems)
    imported.problems += sorted(problems, key=lambda problem: problem["row"])[: max(room, 0)]


def _outcome_item_from_row(row: dict[str, Any]) -> OutcomeItem:
    """One file row as an item; unusable cells become None or the raw value, for the checks to report."""

    def cell(name: str) -> Any:
        value = row.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
            return None
        return value.item() if isinstance(value, np.generic) else value

    prediction_id = cell("prediction_id")
    if isinstance(prediction_id, float) and prediction_id.is_integer():
        prediction_id = int(prediction_id)  # a column with gaps reads as floats
    entity_id = cell("entity_id")
    return OutcomeItem(
        value=cell("value"),
        prediction_id=prediction_id if isinstance(prediction_id, int) else None,
        entity_id=str(entity_id) if entity_id is not None else None,
        window_start=_file_time(cell("window_start")),
        window_end=_file_time(cell("window_end")),
        observed_at=_file_time(cell("observed_at")),
    )


def _file_time(value: Any) -> datetime | None:
    """A time cell, ISO text or a timestamp; naive times are UTC. None if absent or unreadable."""
    if value is None:
        return None
    stamp = pd.to_datetime(value, utc=True, errors="coerce")
    if pd.isna(stamp):
        return None
    try:
        return stamp.to_pydatetime()
    except (ValueError, OverflowError):  # year 0 once in UTC: pandas holds it, Python does not
        return None


# --- Retention -------------------------------------------------------------------------------


@transaction.atomic
def retention_policy_set(*, max_age_days: int | None, updated_by: str) -> RetentionSetting:
    """Change how long raw records are kept (None: forever). Roll-ups are never deleted."""
    if max_age_days is not None and not 1 <= max_age_days <= RETENTION_MAX_DAYS:
        raise ValueError(f"max_age_days must be between 1 and {RETENTION_MAX_DAYS}, or null to keep forever.")
    RetentionPolicy.objects.update_or_create(pk=1, defaults={"max_age_days": max_age_days, "updated_by": updated_by})
    return retention_setting()


# A hundred years: beyond that "forever" (null) says it better.
RETENTION_MAX_DAYS = 36_500
# How long a retention run may hold its claim: the task's time limit, so a killed run's claim lapses.
RETENTION_CLAIM = timedelta(minutes=30)


@dataclass
class RetentionReport:
    cutoff: datetime | None = None
    deleted_records: int = 0
    deleted_outcomes: int = 0
    batches: int = 0
    skipped: str = ""  # why nothing was done, if so


def retention_apply(*, now: datetime | None = None) -> RetentionReport:
    """Delete raw records older than the retention age, after rolling their hours up.

    Deletes by primary-key range, HISTORY_RETENTION_BATCH_ROWS ids per transaction, outcomes
    first; records only go once their hour is rolled up, so trends keep every hour. Ids grow
    with time, so the run stops at the first batch whose records are all younger than the
    cutoff; a straggler written late with an older timestamp goes in a later run.
    """
    now = now or timezone.now()
    policy = retention_setting()
    if policy.max_age_days is None:
        return RetentionReport(skipped="Retention is off: raw records are kept forever.")
    MaintenanceState.objects.get_or_create(pk=1)
    claimed = (
        MaintenanceState.objects.filter(pk=1)
        .filter(Q(retention_claimed_until__isnull=True) | Q(retention_claimed_until__lt=now))
        .update(retention_claimed_until=now + RETENTION_CLAIM)
    )
    if not claimed:
        return RetentionReport(skipped="Another retention run is in progress.")
    report = RetentionReport()
    try:
        rollups_refresh(now=now)
        rolled_until = _maintenance_state(lock=False).rolled_until
        if rolled_until is None:
            report.skipped = "Nothing is rolled up yet."
            return report
        report.cutoff = min(now - timedelta(days=policy.max_age_days), rolled_until)
        _retention_delete(report, deadline=time.monotonic() + RETENTION_WORK_SECONDS)
    finally:
        MaintenanceState.objects.filter(pk=1).update(
            retention_claimed_until=None,
            retention_last_run_at=timezone.now(),
            retention_last_deleted=report.deleted_records,
        )
    return report


# Work per run, well inside the claim: what is left is deleted by the next run.
RETENTION_WORK_SECONDS = 20 * 60


def _retention_delete(report: RetentionReport, *, deadline: float) -> None:
    records = connection.ops.quote_name(PredictionRecord._meta.db_table)
    outcomes = connection.ops.quote_name(Outcome._meta.db_table)
    batch = settings.HISTORY_RETENTION_BATCH_ROWS
    cutoff = connection.ops.adapt_datetimefield_value(report.cutoff)
    # Tracked here rather than asked for each batch: after a large delete, MIN(id) would walk
    # every dead index entry left behind until vacuum, again and again.
    low = PredictionRecord.objects.aggregate(low=Min("id"))["low"]
    while low is not None and time.monotonic() < deadline:
        high = low + batch
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {outcomes} WHERE prediction_id >= %s AND prediction_id < %s AND prediction_id IN "  # noqa: S608
                f"(SELECT id FROM {records} WHERE id >= %s AND id < %s AND created_at < %s)",
                [low, high, low, high, cutoff],
            )
            report.deleted_outcomes += cursor.rowcount
            cursor.execute(
                f"DELETE FROM {records} WHERE id >= %s AND id < %s AND created_at < %s",  # noqa: S608
                [low, high, cutoff],
            )
            deleted = cursor.rowcount
        report.batches += 1
        report.deleted_records += deleted
        if deleted == 0:
            if PredictionRecord.objects.filter(id__gte=low, id__lt=high).exists():
                return  # every record from here on is younger than the cutoff
            low = PredictionRecord.objects.filter(id__gte=high).aggregate(low=Min("id"))["low"]  # skip a gap
            continue
        low = high
        if settings.HISTORY_RETENTION_PAUSE_MS:
            time.sleep(settings.HISTORY_RETENTION_PAUSE_MS / 1000)
