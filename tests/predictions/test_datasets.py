"""Operators upload training data as CSV or Parquet; bad rows are reported by line number."""

from __future__ import annotations

import io
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from accounts.roles import Role
from predictions.catalog import CATALOG
from predictions.models import Dataset, ModelVersion
from tests.accounts.test_access import assert_error

pytestmark = pytest.mark.django_db

CHURN = CATALOG["churn"]


@pytest.fixture
def operator(make_caller):
    return make_caller(Role.OPERATOR, username="olga-operator")


def churn_table(rows: int = 600, seed: int = 5):
    return CHURN.generate(rows, seed=seed)[[*CHURN.feature_names(), CHURN.target.name]]


def upload(client, caller, name: str, content: bytes, model: str = "churn"):
    return client.post(
        "/api/datasets",
        {"model": model, "name": "q3 export", "file": SimpleUploadedFile(name, content)},
        format="multipart",
        **caller.headers,
    )


def test_a_csv_upload_is_checked_stored_and_trains_a_version(client, train, operator):
    train("churn")
    csv = churn_table().to_csv(index=False).encode()

    response = upload(client, operator, "export.csv", csv)
    out = StringIO()
    call_command("train_models", "--dataset", str(response.json()["id"]), stdout=out)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["rows"] == 600 and body["invalid_rows"] == 0 and body["file_format"] == "csv"
    version = ModelVersion.objects.get(model__slug="churn", number=2)
    assert version.dataset_id == body["id"] and version.training_data_digest == body["sha256"]
    assert "churn v2 (candidate)" in out.getvalue()


def test_a_parquet_upload_works_too(client, train, operator):
    train("churn")
    buffer = io.BytesIO()
    churn_table(300).to_parquet(buffer)

    response = upload(client, operator, "export.parquet", buffer.getvalue())

    assert response.status_code == 201 and response.json()["rows"] == 300


def test_bad_rows_are_reported_by_line_and_left_out(client, train, operator):
    train("churn")
    table = churn_table(50)
    table.loc[3, "tenure_months"] = -4  # CSV line 5: the header is line 1
    table.loc[10, CHURN.target.name] = 7

    body = upload(client, operator, "export.csv", table.to_csv(index=False).encode()).json()

    assert body["rows"] == 48 and body["invalid_rows"] == 2
    assert body["errors"][0] == {"line": 5, "errors": {"tenure_months": "Must be at least 1."}}
    assert body["errors"][1]["line"] == 12 and CHURN.target.name in body["errors"][1]["errors"]


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("export.csv", b"tenure_months,colour\n1,red\n", "missing column(s)"),
        ("export.parquet", b"not parquet at all", "cannot be read as PARQUET"),
        ("export.xlsx", b"whatever", ".csv or .parquet"),
    ],
)
def test_unusable_files_are_a_400(client, train, operator, name, content, fragment):
    train("churn")

    body = assert_error(upload(client, operator, name, content), 400, "invalid_dataset")

    assert fragment in body["message"]
    assert not Dataset.objects.exists()


def test_a_parquet_file_with_list_cells_reports_the_rows(client, train, operator):
    train("churn")
    table = churn_table(20)
    table["tenure_months"] = [[value] for value in table["tenure_months"]]
    buffer = io.BytesIO()
    table.to_parquet(buffer)

    body = assert_error(upload(client, operator, "export.parquet", buffer.getvalue()), 400, "invalid_dataset")

    assert "No valid row" in body["message"]
    assert body["details"][0] == {"line": 1, "errors": {"tenure_months": "Must be a number."}}


def test_unknown_model_and_roles(client, train, operator, viewer):
    train("churn")
    csv = churn_table(20).to_csv(index=False).encode()

    assert_error(upload(client, operator, "a.csv", csv, model="weather"), 400, "invalid_dataset")
    assert_error(upload(client, viewer, "a.csv", csv), 403, "permission_denied")
    assert client.get("/api/datasets", **viewer.headers).status_code == 200
