"""Submitting bulk jobs: inputs checked up front, callback URLs guarded, who sees which job."""

from __future__ import annotations

import io
from datetime import timedelta
from datetime import timezone as dt_timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from accounts.roles import Role
from predictions.models import BulkChunk, BulkJob, ModelVersion, VersionStatus
from tests.accounts.test_access import assert_error
from tests.factories import UserFactory
from tests.predictions.bulk_support import (
    BULK_URL,
    bulk_media,  # noqa: F401 (fixture)
    churn_rows,
    csv_upload,
    parquet_upload,
    run_in_process,
    submit,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def churn(train, bulk_media):  # noqa: F811
    return train("churn")


@pytest.fixture
def teammate(make_caller):
    return make_caller(Role.PREDICTOR, username="terry-teammate")


def job_files(media) -> list[str]:
    return sorted(str(p.relative_to(media)) for p in (media / "bulk").rglob("*") if p.is_file())


# --- Submitting -------------------------------------------------------------------------------------


def test_a_csv_upload_answers_202_with_the_pending_job_and_its_location(client, churn, predictor, bulk_media):  # noqa: F811
    answer = submit(client, predictor, model="churn", file=csv_upload(churn_rows(250)), chunk_size=100)

    body = answer.json()
    assert answer.status_code == 202, answer.content
    assert answer["Location"] == body["url"] == f"/api/bulk-predictions/{body['id']}"
    assert body["status"] == "pending" and body["version"] is None  # pinned when it starts
    assert body["rows_total"] == 250 and body["chunks_total"] == 3 and body["progress_percent"] == 0.0
    assert body["input"] == {"kind": "file", "format": "csv", "name": "clients.csv", "dataset": None}
    assert body["output_format"] == "csv" and body["owner"] == "pat-predictor"
    assert list(BulkChunk.objects.filter(job_id=body["id"]).values_list("row_start", "row_count")) == [
        (0, 100),
        (100, 100),
        (200, 50),
    ]
    assert len(job_files(bulk_media)) == 4  # the input as received and three chunk files


@pytest.mark.parametrize(
    ("fields", "rows", "output"),
    [
        (lambda frame: {"file": parquet_upload(frame)}, 120, "parquet"),
        (
            lambda frame: {"rows": [{"features": {**r}, "entity_id": e} for e, r in _rows(frame)]},
            120,
            "jsonl",
        ),
    ],
    ids=["parquet", "json-rows"],
)
def test_parquet_files_and_json_rows_are_accepted_and_predicted(client, churn, predictor, fields, rows, output):
    answer = submit(client, predictor, model="churn", chunk_size=100, **fields(churn_rows(rows)))
    assert answer.status_code == 202, answer.content

    outcomes = run_in_process(answer.json()["id"])

    job = BulkJob.objects.get(pk=answer.json()["id"])
    assert outcomes == ["done", "done"]
    assert (job.status, job.rows_done, job.rows_failed, job.output_format) == ("completed", rows, 0, output)


def _rows(frame):
    features = frame.drop(columns=["entity_id"]).to_dict("records")
    return list(zip(frame["entity_id"], features, strict=True))


def test_a_stored_dataset_can_be_the_input(client, churn, predictor, make_caller):
    operator = make_caller(Role.OPERATOR)
    training = churn_rows(150).drop(columns=["entity_id"]).assign(churned=0)
    uploaded = client.post(
        "/api/datasets",
        {"model": "churn", "name": "clients", "file": csv_upload(training, "clients.csv")},
        format="multipart",
        **operator.headers,
    )
    assert uploaded.status_code == 201, uploaded.content

    answer = submit(client, predictor, model="churn", dataset=uploaded.json()["id"])
    run_in_process(answer.json()["id"])

    job = BulkJob.objects.get(pk=answer.json()["id"])
    assert answer.status_code == 202
    assert answer.json()["input"]["kind"] == "dataset" and answer.json()["input"]["dataset"] == uploaded.json()["id"]
    assert (job.status, job.rows_done) == ("completed", 150)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("clients.txt", b"a,b\n1,2\n", "must be .csv or .parquet"),
        ("clients.parquet", b"PAR1 this is not parquet", "cannot be read as Parquet"),
        ("clients.csv", b"\n\n", "a column has no name"),
        ("clients.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "cannot be read as CSV"),
    ],
    ids=["extension", "parquet", "blank", "binary"],
)
def test_a_bad_file_is_a_400_before_any_work(client, churn, predictor, bulk_media, name, content, message):  # noqa: F811
    answer = submit(client, predictor, model="churn", file=SimpleUploadedFile(name, content))

    body = assert_error(answer, 400, "invalid_input")
    assert message in body["message"]
    assert not BulkJob.objects.exists() and job_files(bulk_media) == []


def test_a_header_only_csv_has_no_rows_to_predict(client, churn, predictor):
    header_only = churn_rows(1).head(0)

    body = assert_error(submit(client, predictor, model="churn", file=csv_upload(header_only)), 400, "invalid_input")

    assert body["message"] == "The input has no data rows."


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["tenure_months", "nps_score"]), "missing column(s): nps_score, tenure_months"),
        (lambda f: f.assign(favourite_colour="blue"), "unknown column(s): favourite_colour"),
        (lambda f: f.rename(columns={"nps_score": "tenure_months"}), "duplicate column(s): tenure_months"),
    ],
    ids=["missing", "unknown", "duplicate"],
)
def test_a_bad_header_is_a_400_naming_the_columns(client, churn, predictor, bulk_media, change, message):  # noqa: F811
    body = assert_error(
        submit(client, predictor, model="churn", file=csv_upload(change(churn_rows(20)))), 400, "invalid_input"
    )

    assert "Bad header" in body["message"] and message in body["message"]
    assert job_files(bulk_media) == []


def test_a_column_of_the_wrong_type_is_a_400_but_one_bad_cell_is_not(client, churn, predictor):
    frame = churn_rows(20)
    all_text = frame.assign(tenure_months="long")
    one_bad = frame.astype({"tenure_months": object})
    one_bad.loc[3, "tenure_months"] = "long"
    parquet_text = frame.astype({"monthly_revenue": str})

    csv_answer = submit(client, predictor, model="churn", file=csv_upload(all_text))
    parquet_answer = submit(client, predictor, model="churn", file=parquet_upload(parquet_text))
    cell_answer = submit(client, predictor, model="churn", file=csv_upload(one_bad))

    assert (
        "Column 'tenure_months' holds no whole number (first value 'long')"
        in assert_error(csv_answer, 400, "invalid_input")["message"]
    )
    parquet_message = assert_error(parquet_answer, 400, "invalid_input")["message"]
    assert parquet_message.startswith("Column 'monthly_revenue' has type ") and "string" in parquet_message
    assert parquet_message.endswith("the feature is a number.")
    assert cell_answer.status_code == 202  # the bad cell is one bad row, reported later


def test_an_upload_over_the_limit_is_a_413(client, churn, predictor, settings):
    settings.MAX_UPLOAD_BYTES = 2048

    answer = submit(client, predictor, model="churn", file=csv_upload(churn_rows(100)))

    assert_error(answer, 413)
    assert not BulkJob.objects.exists()


def test_unknown_models_and_models_without_a_version_are_refused(client, churn, predictor):
    ModelVersion.objects.filter(status=VersionStatus.ACTIVE).update(status=VersionStatus.ARCHIVED)

    unknown = submit(client, predictor, model="horoscope", file=csv_upload(churn_rows(5)))
    unserved = submit(client, predictor, model="churn", file=csv_upload(churn_rows(5)))

    assert "Unknown model 'horoscope'" in assert_error(unknown, 400, "invalid_input")["message"]
    assert assert_error(unserved, 503, "model_unavailable")["message"].startswith("Model 'churn' has no active")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"rows": [{"tenure_months": 3}]}, "rows", "rows[0]: must be an object with 'features'"),
        ({"rows": [{"features": {}, "colour": 1}]}, "rows", "rows[0]: unknown field(s): colour."),
        ({"rows": [{"features": {}, "entity_id": "x" * 121}]}, "rows", "entity_id must be printable"),
        ({"rows": []}, "rows", "Send a non-empty list"),
        ({}, "rows", "Send either 'rows' or 'dataset'"),
        ({"dataset": 999}, "dataset", "Invalid pk"),
        ({"rows": [{"features": {}}], "output_format": "xlsx"}, "output_format", "not a valid choice"),
        ({"rows": [{"features": {}}], "chunk_size": 5}, "chunk_size", "greater than or equal to 100"),
    ],
)
def test_malformed_json_submissions_are_400s_naming_the_field(client, churn, predictor, body, field, message):
    answer = submit(client, predictor, model="churn", **body)

    details = assert_error(answer, 400, "validation_error")["details"]
    assert message in str(details[field])


# --- Callback URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8000/hook", "resolves to 127.0.0.1 (loopback address)"),
        ("http://localhost/hook", "resolves to 127.0.0.1 (loopback address)"),
        ("http://[::1]/hook", "resolves to ::1 (loopback address)"),
        ("http://10.1.2.3/hook", "resolves to 10.1.2.3 (private address)"),
        ("http://169.254.169.254/latest/meta-data", "(link-local address)"),
        ("http://0.0.0.0/hook", "(unspecified address)"),
        ("http://[::ffff:192.168.0.1]/hook", "resolves to 192.168.0.1 (private address)"),
        ("ftp://93.184.216.34/hook", "must start with http:// or https://"),
        ("http://user:secret@93.184.216.34/hook", "must not carry a user name or password"),
        ("http://no-such-host.invalid/hook", "cannot be resolved"),
    ],
)
def test_callback_urls_to_forbidden_or_unresolvable_addresses_are_refused(client, churn, predictor, url, message):
    answer = submit(client, predictor, model="churn", file=csv_upload(churn_rows(5)), callback_url=url)

    details = assert_error(answer, 400, "validation_error")["details"]
    assert message in details["callback_url"]
    assert not BulkJob.objects.exists()


@pytest.mark.parametrize(
    ("allowed", "url"),
    [
        (["127.0.0.1"], "http://127.0.0.1:8000/hook"),
        (["localhost"], "http://localhost:8000/hook"),
        (["10.0.0.0/8"], "http://10.1.2.3/hook"),
        ([], "https://93.184.216.34/hook"),  # public: allowed without listing
    ],
)
def test_callback_urls_are_accepted_when_public_or_allowed_by_the_setting(
    client, churn, predictor, settings, allowed, url
):
    settings.BULK_CALLBACK_ALLOWED_HOSTS = allowed

    answer = submit(client, predictor, model="churn", file=csv_upload(churn_rows(5)), callback_url=url)

    assert answer.status_code == 202, answer.content
    assert answer.json()["callback_url"] == url


def test_the_callback_secret_is_shown_once_and_can_be_rotated(client, churn, predictor):
    url = "https://93.184.216.34/hook"

    first = submit(client, predictor, model="churn", file=csv_upload(churn_rows(5)), callback_url=url)
    second = submit(client, predictor, model="churn", file=csv_upload(churn_rows(5)), callback_url=url)
    status = client.get(f"{BULK_URL}/callback-secret", **predictor.headers)
    rotated = client.post(f"{BULK_URL}/callback-secret", **predictor.headers)

    assert first.json()["callback_secret"].startswith("cbsec_")
    assert "callback_secret" not in second.json()
    assert status.json()["exists"] is True and "secret" not in status.json()
    assert rotated.status_code == 201 and rotated.json()["secret"] != first.json()["callback_secret"]


def test_callbacks_need_an_api_key_to_sign_with(client, churn):
    person = UserFactory(username="sam-session", role=Role.PREDICTOR)
    client.force_login(person)

    answer = client.post(
        BULK_URL,
        {"model": "churn", "file": csv_upload(churn_rows(5)), "callback_url": "https://93.184.216.34/hook"},
        format="multipart",
    )

    assert "submit with an API key" in assert_error(answer, 400, "invalid_input")["message"]


# --- Who sees what ----------------------------------------------------------------------------------


def test_viewers_cannot_submit(client, churn, viewer):
    answer = submit(client, viewer, model="churn", file=csv_upload(churn_rows(5)))

    assert_error(answer, 403, "permission_denied")


def test_a_teammate_neither_sees_nor_cancels_the_owners_job_but_an_admin_does(
    client, churn, predictor, teammate, admin
):
    job_id = submit(client, predictor, model="churn", file=csv_upload(churn_rows(5))).json()["id"]

    teammate_list = client.get(BULK_URL, **teammate.headers).json()
    teammate_views = [
        client.get(f"{BULK_URL}/{job_id}", **teammate.headers),
        client.get(f"{BULK_URL}/{job_id}/results", **teammate.headers),
        client.delete(f"{BULK_URL}/{job_id}", **teammate.headers),
    ]
    admin_list = client.get(BULK_URL, **admin.headers).json()
    admin_cancel = client.delete(f"{BULK_URL}/{job_id}", **admin.headers)

    assert teammate_list["count"] == 0
    for response in teammate_views:
        assert_error(response, 404, "not_found")
    assert [job["id"] for job in admin_list["results"]] == [job_id]
    assert admin_cancel.status_code == 200 and admin_cancel.json()["error"] == "Cancelled by ada-admin."


def test_the_list_filters_by_model_status_and_date_in_a_constant_number_of_queries(
    client, churn, predictor, train, django_assert_num_queries
):
    train("anomaly")
    jobs = [submit(client, predictor, model="churn", file=csv_upload(churn_rows(5))).json()["id"] for _ in range(3)]
    BulkJob.objects.filter(pk=jobs[0]).update(status="completed", created_at=timezone.now() - timedelta(days=3))
    old_day = (timezone.now() - timedelta(days=3)).date().isoformat()

    with django_assert_num_queries(2):  # count and page: nothing per job (the key is cached)
        everything = client.get(BULK_URL, **predictor.headers).json()
    pending = client.get(BULK_URL, {"status": "pending"}, **predictor.headers).json()
    by_day = client.get(BULK_URL, {"date": old_day}, **predictor.headers).json()
    recent = client.get(BULK_URL, {"created_after": timezone.now() - timedelta(days=1)}, **predictor.headers).json()
    other_model = client.get(BULK_URL, {"model": "anomaly"}, **predictor.headers).json()
    bad_filter = client.get(BULK_URL, {"status": "exploded"}, **predictor.headers)
    # +20:00 is valid ISO 8601 that PostgreSQL refuses as such; year 1 at +20:00 is year 0 in UTC.
    far_east = (timezone.now() - timedelta(days=1)).astimezone(dt_timezone(timedelta(hours=20))).isoformat()
    recent_far_east = client.get(BULK_URL, {"created_after": far_east}, **predictor.headers).json()
    before_year_one = client.get(BULK_URL, {"created_before": "0001-01-01T00:00:00+20:00"}, **predictor.headers)

    assert everything["count"] == 3
    assert {job["id"] for job in pending["results"]} == set(jobs[1:])
    assert [job["id"] for job in by_day["results"]] == [jobs[0]]
    assert recent["count"] == 2 and other_model["count"] == 0
    assert "status" in assert_error(bad_filter, 400, "validation_error")["details"]
    assert recent_far_east["count"] == 2
    assert "created_before" in assert_error(before_year_one, 400, "validation_error")["details"]


# --- Cancel and download before the end -------------------------------------------------------------


def test_a_pending_job_is_cancelled_once_and_has_nothing_to_download(client, churn, predictor):
    job_id = submit(client, predictor, model="churn", file=csv_upload(churn_rows(5))).json()["id"]

    early = client.get(f"{BULK_URL}/{job_id}/results", **predictor.headers)
    cancelled = client.delete(f"{BULK_URL}/{job_id}", **predictor.headers)
    again = client.delete(f"{BULK_URL}/{job_id}", **predictor.headers)
    started = run_in_process(job_id)

    assert "download once it has finished" in assert_error(early, 409, "conflict")["message"]
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert "already cancelled" in assert_error(again, 409, "conflict")["message"]
    assert started == ["stopped"]  # a start that arrives after the cancel does nothing
    assert BulkJob.objects.get(pk=job_id).version is None


def test_a_parquet_upload_with_missing_values_and_integer_booleans_is_read_as_a_client_sends_it(
    client, churn, predictor
):
    frame = churn_rows(4)
    table = pa.Table.from_pandas(frame.assign(has_executive_sponsor=[1, 0, 1, 2]), preserve_index=False)
    table = table.set_column(
        table.schema.get_field_index("nps_score"), "nps_score", pa.array([7.0, None, 9.0, float("nan")])
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)

    job_id = submit(
        client, predictor, model="churn", file=SimpleUploadedFile("c.parquet", buffer.getvalue()), output_format="jsonl"
    ).json()["id"]
    run_in_process(job_id)

    errors = client.get(f"{BULK_URL}/{job_id}/errors", **predictor.headers)
    report = [line for line in b"".join(errors.streaming_content).splitlines() if line]
    job = BulkJob.objects.get(pk=job_id)
    assert (job.rows_done, job.rows_failed) == (2, 2)
    assert len(report) == 2
    assert b'"index":1' in report[0] and b'"nps_score":"This field is required."' in report[0]
    assert b'"index":3' in report[1] and b'"has_executive_sponsor":"Must be true or false."' in report[1]
