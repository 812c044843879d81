"""Prediction records are written the same way, and read back the same, on every write path."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from history.models import PredictionRecord
from history.services import BULK_WRITE_MIN_ROWS, RecordContext, prediction_records_create, prediction_records_writer

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


# Characters that end a value or a row in COPY's text format, its escape character, quotes
# that JSON escapes with a backslash, and text beyond ASCII.
AWKWARD_TEXT = 'tab\there, line\nbreak\r\n, back\\slash \\N, "quoted", café ✓'


@pytest.mark.parametrize("count", [1, BULK_WRITE_MIN_ROWS])
def test_records_keep_awkward_text_exactly(context, count):
    context = dataclasses.replace(context, correlation_id=AWKWARD_TEXT[:128], api_key_prefix="a\\b\tc")
    features = [{"note": AWKWARD_TEXT, AWKWARD_TEXT: [1.5, None, True]}] * count
    outputs = [{"label": AWKWARD_TEXT, "score": 1e-05, "big": 1.2345678901234567e300}] * count

    ids = prediction_records_create(
        context=context,
        features=features,
        outputs=outputs,
        entity_ids=[AWKWARD_TEXT] * count,
        main_scores=[float("inf")] * count,
        latency_ms=0.125,
    )

    record = PredictionRecord.objects.get(pk=ids[-1])
    assert record.features == features[-1] and record.output == outputs[-1]
    assert record.entity_id == AWKWARD_TEXT and record.correlation_id == AWKWARD_TEXT[:128]
    assert record.api_key_prefix == "a\\b\tc" and record.main_score == float("inf") and record.latency_ms == 0.125
    assert record.bulk_job_id is None and record.scheduled_execution_id is None


@pytest.mark.parametrize("count", [1, BULK_WRITE_MIN_ROWS])
def test_a_nul_character_is_stored_as_a_replacement_and_keys_stay_readable(context, count):
    ids = prediction_records_create(
        context=context,
        features=[{"note": "a\x00b", "escaped": "back\\u0000slash"}] * count,
        outputs=[{"risk_band": "low", "label\x00": ["\x00"]}] * count,
        entity_ids=[""] * count,
        main_scores=[0.5] * count,
        latency_ms=0.1,
    )

    record = PredictionRecord.objects.annotate(band=KeyTextTransform("risk_band", "output")).get(pk=ids[-1])
    assert record.features == {"note": "a\ufffdb", "escaped": "back\\u0000slash"}
    assert record.output == {"risk_band": "low", "label\ufffd": ["\ufffd"]} and record.band == "low"


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


@pytest.mark.parametrize("count", [1, BULK_WRITE_MIN_ROWS])
def test_records_keep_the_job_that_made_them(context, count):
    job_id = uuid.uuid4()
    bulk = dataclasses.replace(context, source="bulk", bulk_job_id=job_id)
    scheduled = dataclasses.replace(context, source="scheduled", scheduled_execution_id=42)

    for job_context in (bulk, scheduled):
        prediction_records_create(
            context=job_context,
            features=[{}] * count,
            outputs=[{}] * count,
            entity_ids=[""] * count,
            main_scores=[None] * count,
            latency_ms=0.1,
        )

    assert PredictionRecord.objects.filter(bulk_job_id=job_id, source="bulk").count() == count
    assert PredictionRecord.objects.filter(scheduled_execution_id=42, source="scheduled").count() == count


def _part(start: int, count: int) -> dict:
    return {
        "features": [{"n": start + i} for i in range(count)],
        "outputs": [{"score": start + i} for i in range(count)],
        "entity_ids": [f"e{start + i}" for i in range(count)],
        "main_scores": [float(start + i) for i in range(count)],
        "latency_ms": 0.1,
    }


def test_records_written_in_parts_keep_their_order(context):
    with prediction_records_writer(context=context, count=300) as writer:
        for start in (0, 100, 200):
            writer.write(**_part(start, 100))

    records = list(PredictionRecord.objects.filter(pk__in=writer.ids).order_by("pk"))
    assert [r.pk for r in records] == writer.ids
    assert [r.entity_id for r in records] == [f"e{i}" for i in range(300)]
    assert records[150].features == {"n": 150} and records[150].main_score == 150.0


@pytest.mark.parametrize("count", [10, 300])
def test_a_failure_between_parts_records_nothing(context, count):
    """A prediction that fails halfway through a batch must not leave half of it in history."""
    before = PredictionRecord.objects.count()

    with pytest.raises(RuntimeError), prediction_records_writer(context=context, count=count) as writer:
        writer.write(**_part(0, count // 2))
        raise RuntimeError("the model failed on the second part")

    assert PredictionRecord.objects.count() == before


def test_writing_fewer_records_than_announced_records_nothing(context):
    before = PredictionRecord.objects.count()

    with pytest.raises(ValueError, match="announced"), prediction_records_writer(context=context, count=300) as writer:
        writer.write(**_part(0, 200))

    assert PredictionRecord.objects.count() == before


def test_large_records_are_stored_lz4_compressed_on_postgresql(context):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("column compression is PostgreSQL's (SQLite stores the text as it is)")
    # Repetitive JSON well over the ~2 KB at which PostgreSQL compresses a value.
    output = {"alternatives": [{"price": 100 + i, "win_probability": 0.5} for i in range(200)]}

    [record_id] = prediction_records_create(
        context=context, features=[{"a": 1}], outputs=[output], entity_ids=[""], main_scores=[None], latency_ms=0.1
    )

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_column_compression(output) FROM history_predictionrecord WHERE id = %s", [record_id])
        assert cursor.fetchone()[0] == "lz4"
        # Set on the columns, not inherited from the server's default_toast_compression.
        cursor.execute(
            "SELECT attname, attcompression FROM pg_attribute"
            " WHERE attrelid = 'history_predictionrecord'::regclass AND attname IN ('features', 'output')"
        )
        assert dict(cursor.fetchall()) == {"features": "l", "output": "l"}
    assert PredictionRecord.objects.get(pk=record_id).output == output
