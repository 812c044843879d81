"""Outcome files (CSV, Parquet): checked on upload, recorded in the background by a worker."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from history.models import ImportStatus, Outcome, OutcomeImport
from history.services import outcome_import_run
from tests.live import celery_worker, service_env

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "/api/history/outcomes/upload"


@pytest.fixture
def churn_ids(make_version, record):
    return record(make_version("churn"), T0, [0.8, 0.3, 0.6], entity_ids=["client-1", "client-2", "client-3"])


def outcome_frame(ids: list[int]) -> pd.DataFrame:
    window = (T0.isoformat(), (T0 + timedelta(hours=1)).isoformat())
    return pd.DataFrame(
        [
            {"prediction_id": ids[0], "entity_id": None, "window_start": None, "window_end": None, "value": 1},
            {
                "prediction_id": None,
                "entity_id": "client-2",
                "window_start": window[0],
                "window_end": window[1],
                "value": 0,
            },
            {"prediction_id": ids[2], "entity_id": None, "window_start": None, "window_end": None, "value": 0.5},
            {"prediction_id": 10**12, "entity_id": None, "window_start": None, "window_end": None, "value": 1},
        ]
    )


def upload(client, caller, name: str, data: bytes, model: str = "churn"):
    return client.post(
        URL, {"model": model, "file": SimpleUploadedFile(name, data)}, format="multipart", **caller.headers
    )


def assert_imported(imported: dict, ids: list[int]) -> None:
    assert imported["status"] == ImportStatus.COMPLETED, imported
    assert (imported["rows"], imported["recorded"], imported["invalid"], imported["unmatched"]) == (4, 2, 1, 1)
    assert [(p["row"], p["problem"]) for p in imported["problems"]] == [(3, "invalid"), (4, "unmatched")]
    assert dict(Outcome.objects.values_list("prediction_id", "value")) == {ids[0]: 1.0, ids[1]: 0.0}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_worker_records_an_uploaded_csv_and_reports_its_problems(client, predictor, viewer, churn_ids):
    data = outcome_frame(churn_ids).to_csv(index=False).encode()

    with celery_worker(service_env()):
        accepted = upload(client, predictor, "outcomes.csv", data)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            imported = client.get(f"/api/history/outcomes/imports/{accepted.json()['id']}", **viewer.headers).json()
            if imported["status"] in (ImportStatus.COMPLETED, ImportStatus.FAILED):
                break
            time.sleep(0.2)

    assert accepted.status_code == 202 and accepted.json()["status"] == ImportStatus.PENDING
    assert_imported(imported, churn_ids)


@pytest.mark.django_db
def test_a_parquet_file_is_recorded_the_same_way(client, predictor, viewer, churn_ids):
    buffer = io.BytesIO()
    outcome_frame(churn_ids).to_parquet(buffer)
    accepted = upload(client, predictor, "outcomes.parquet", buffer.getvalue()).json()

    outcome_import_run(import_id=accepted["id"])
    outcome_import_run(import_id=accepted["id"])  # a second delivery of the task finds it claimed

    imported = client.get(f"/api/history/outcomes/imports/{accepted['id']}", **viewer.headers).json()
    assert_imported(imported, churn_ids)


@pytest.mark.django_db
def test_a_time_cell_before_year_one_in_utc_is_that_rows_problem_not_the_imports(client, predictor, churn_ids):
    # pandas holds year 0 (0001-01-01 at +20:00, in UTC); Python's datetime cannot.
    data = (
        "value,entity_id,window_start,window_end\n"
        f"1,client-1,0001-01-01T00:00:00+20:00,{T0.isoformat()}\n"
        f"0,client-2,{T0.isoformat()},{(T0 + timedelta(hours=1)).isoformat()}\n"
    ).encode()
    accepted = upload(client, predictor, "outcomes.csv", data).json()

    outcome_import_run(import_id=accepted["id"])

    imported = OutcomeImport.objects.get(pk=accepted["id"])
    assert imported.status == ImportStatus.COMPLETED and (imported.recorded, imported.invalid) == (1, 1)
    assert list(Outcome.objects.values_list("prediction_id", flat=True)) == [churn_ids[1]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("outcomes.xlsx", b"whatever", ".csv or .parquet"),
        ("outcomes.csv", b"prediction_id,result\n1,1\n", "'value'"),
        ("outcomes.csv", b"value,entity_id\n1,client-1\n", "window_start"),
        ("outcomes.parquet", b"not parquet at all", "cannot be read"),
    ],
)
def test_unusable_files_are_refused_at_upload(client, predictor, churn_ids, name, data, message):
    response = upload(client, predictor, name, data)

    assert response.status_code == 400 and message in response.json()["message"]
    assert not OutcomeImport.objects.exists()


@pytest.mark.django_db
def test_viewers_cannot_upload_outcomes(client, viewer, churn_ids):
    response = upload(client, viewer, "outcomes.csv", b"prediction_id,value\n1,1\n")

    assert response.status_code == 403
