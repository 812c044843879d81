"""Chunks run exactly once: duplicates, lost claims, cancels, dead workers, bad rows, the reaper."""

from __future__ import annotations

import io
import os
import socket
import subprocess
from datetime import timedelta

import orjson
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from history.models import PredictionRecord
from predictions.bulk import (
    bulk_chunk_claim,
    bulk_chunk_process,
    bulk_chunk_release,
    bulk_chunk_run,
    bulk_job_cancel,
    bulk_job_start,
    bulk_jobs_purge,
    bulk_jobs_reap,
)
from predictions.models import BulkChunk, BulkJob, ModelVersion, VersionStatus
from predictions.services import version_promote
from tests.accounts.test_access import assert_error
from tests.predictions.bulk_support import (
    BULK_URL,
    batch_predictions,
    bulk_media,  # noqa: F401 (fixture)
    churn_rows,
    csv_upload,
    download,
    jsonl,
    run_in_process,
    submit,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def churn(train, bulk_media):  # noqa: F811
    return train("churn")


def new_job(client, caller, rows: int = 250, chunk_size: int = 100, **fields) -> BulkJob:
    answer = submit(client, caller, model="churn", file=csv_upload(churn_rows(rows)), chunk_size=chunk_size, **fields)
    assert answer.status_code == 202, answer.content
    return BulkJob.objects.get(pk=answer.json()["id"])


def history(job) -> int:
    return PredictionRecord.objects.filter(bulk_job_id=job.pk).count()


def refreshed(job) -> BulkJob:
    return BulkJob.objects.get(pk=job.pk)


def test_a_chunk_delivered_twice_records_its_rows_once(client, churn, predictor):
    job = new_job(client, predictor)
    bulk_job_start(job_id=job.pk)

    first = bulk_chunk_run(job_id=job.pk, index=0)
    second = bulk_chunk_run(job_id=job.pk, index=0)

    chunk = BulkChunk.objects.get(job=job, index=0)
    assert (first.status, second.status) == ("done", "duplicate")
    assert history(job) == 100 and refreshed(job).rows_done == 100
    assert chunk.attempt == 1 and chunk.status == "done"


def test_an_attempt_that_lost_its_claim_writes_nothing(client, churn, predictor, bulk_media):  # noqa: F811
    """A slow attempt whose lease expired is taken over; when it finally ends, it rolls back."""
    job = refreshed(new_job(client, predictor))
    bulk_job_start(job_id=job.pk)
    job = refreshed(job)
    slow = bulk_chunk_claim(job=job, index=0, worker="elsewhere:1")
    BulkChunk.objects.filter(pk=slow.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    taken_over = bulk_chunk_run(job_id=job.pk, index=0, worker="here:2")
    late = bulk_chunk_process(job=job, chunk=slow)

    chunk = BulkChunk.objects.get(pk=slow.pk)
    result_files = sorted(p.name for p in (bulk_media / "bulk" / str(job.pk) / "results").iterdir())
    assert (taken_over.status, late.status) == ("done", "lost")
    assert history(job) == 100 and refreshed(job).rows_done == 100
    assert chunk.attempt == 2 and chunk.claimed_by == "here:2"
    assert result_files == ["00000-a2.parquet"]  # only the attempt that counted left a part


def test_a_chunk_held_by_a_live_process_is_retried_after_its_lease(client, churn, predictor):
    job = refreshed(new_job(client, predictor))
    bulk_job_start(job_id=job.pk)
    bulk_chunk_claim(job=refreshed(job), index=0, worker=f"{socket.gethostname()}:1")  # pid 1 is alive

    busy = bulk_chunk_run(job_id=job.pk, index=0, worker="here:2")

    assert busy.status == "busy" and 290 < busy.retry_in <= 301  # the 300 s lease, plus a second
    assert history(job) == 0


def test_a_chunk_held_by_a_dead_process_on_this_host_is_taken_over_at_once(client, churn, predictor):
    job = refreshed(new_job(client, predictor))
    bulk_job_start(job_id=job.pk)
    dead_pid = _a_dead_pid()
    bulk_chunk_claim(job=refreshed(job), index=0, worker=f"{socket.gethostname()}:{dead_pid}")

    outcome = bulk_chunk_run(job_id=job.pk, index=0, worker="here:2")

    assert outcome.status == "done" and history(job) == 100
    assert BulkChunk.objects.get(job=job, index=0).attempt == 2


def _a_dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    assert not os.path.exists(f"/proc/{process.pid}")
    return process.pid


def test_a_chunk_that_keeps_failing_fails_the_job_with_its_last_error(client, churn, predictor, settings):
    settings.BULK_CHUNK_MAX_ATTEMPTS = 2
    job = refreshed(new_job(client, predictor))
    bulk_job_start(job_id=job.pk)
    for _ in range(2):
        chunk = bulk_chunk_claim(job=refreshed(job), index=1, worker="here:2")
        bulk_chunk_release(chunk_id=chunk.pk, attempt=chunk.attempt, error="OperationalError: database is locked")

    outcome = bulk_chunk_run(job_id=job.pk, index=1)

    job = refreshed(job)
    assert outcome.status == "failed"
    assert job.status == "failed"
    assert job.error == "Chunk 1 was attempted 2 times. The last error: OperationalError: database is locked"
    assert set(job.chunks.values_list("status", flat=True)) == {"cancelled"}


def test_cancelling_stops_at_the_chunk_boundary(client, churn, predictor):
    job = new_job(client, predictor)
    bulk_job_start(job_id=job.pk)
    assert bulk_chunk_run(job_id=job.pk, index=0).status == "done"
    running = bulk_chunk_claim(job=refreshed(job), index=1, worker="here:2")

    bulk_job_cancel(job=refreshed(job), cancelled_by="pat-predictor")
    in_flight = bulk_chunk_process(job=refreshed(job), chunk=running)
    queued = bulk_chunk_run(job_id=job.pk, index=2)

    response, body = download(client, predictor, job.pk)
    job = refreshed(job)
    assert (in_flight.status, queued.status) == ("stopped", "stopped")
    assert job.status == "cancelled" and job.rows_done == 100 and history(job) == 100
    assert response.status_code == 200 and body.count(b"\n") == 101  # what was done before stays


def test_a_job_stays_on_the_version_it_started_with(client, train, churn, predictor):
    job = new_job(client, predictor)
    bulk_job_start(job_id=job.pk)
    bulk_chunk_run(job_id=job.pk, index=0)

    newer = train("churn", seed=1)
    version_promote(version=newer)
    for index in (1, 2):
        bulk_chunk_run(job_id=job.pk, index=index)

    job = refreshed(job)
    assert job.status == "completed" and job.version_id == churn.pk
    assert set(PredictionRecord.objects.filter(bulk_job_id=job.pk).values_list("version_id", flat=True)) == {churn.pk}


def test_a_job_whose_model_lost_its_version_before_starting_fails_with_the_reason(client, churn, predictor):
    job = new_job(client, predictor)
    ModelVersion.objects.filter(pk=churn.pk).update(status=VersionStatus.ARCHIVED)

    started = bulk_job_start(job_id=job.pk)

    job = refreshed(job)
    assert started is False
    assert job.status == "failed" and job.error == "Model 'churn' had no active version when the job started."


# --- Bad rows ---------------------------------------------------------------------------------------

BAD_CSV_LINES = {
    4: lambda row: row.replace(",annual,", ",weekly,", 1),  # unknown category
    6: lambda row: "",  # a blank line
    7: lambda row: row + ",surplus",  # one field too many: not a row at all
    9: lambda row: row.split(",", 1)[0] + ",,",  # too few fields
    11: lambda row: "abc," + row.split(",", 1)[1],  # text where a number goes
    13: lambda row: "999," + row.split(",", 1)[1],  # out of range
}


def _csv_with_bad_lines(frame) -> bytes:
    lines = frame.to_csv(index=False).splitlines()
    for line_number, spoil in BAD_CSV_LINES.items():
        lines[line_number - 1] = spoil(lines[line_number - 1])
    return ("\n".join(lines) + "\n").encode()


def test_bad_rows_are_reported_by_line_and_left_out_of_the_results(client, churn, predictor, settings):
    settings.BULK_CHUNK_ROWS = 5  # the bad lines fall in different chunks
    frame = churn_rows(20).drop(columns=["entity_id"])
    frame.loc[2, "contract_type"] = "annual"  # line 4 has a category to spoil
    content = _csv_with_bad_lines(frame)
    answer = submit(client, predictor, model="churn", file=SimpleUploadedFile("c.csv", content))
    job_id = answer.json()["id"]

    run_in_process(job_id)

    _, errors_body = download(client, predictor, job_id, "errors")
    _, results_body = download(client, predictor, job_id)
    report = {entry["line"]: entry for entry in jsonl(errors_body)}
    result_indexes = [int(line.split(",", 1)[0]) for line in results_body.decode().splitlines()[1:]]
    status = client.get(f"{BULK_URL}/{job_id}", **predictor.headers).json()
    assert set(report) == set(BAD_CSV_LINES)
    assert report[7]["errors"] == {"non_field_errors": "Expected 15 fields, found 16."} and "index" not in report[7]
    assert report[9]["errors"] == {"non_field_errors": "Expected 15 fields, found 3."}
    assert report[4]["index"] == 2 and "contract_type" in report[4]["errors"]
    assert report[6]["index"] == 4 and report[6]["errors"]["tenure_months"] == "This field is required."
    assert report[11] == {"index": 7, "line": 11, "errors": {"tenure_months": "Must be a number."}}
    assert report[13]["index"] == 9 and report[13]["errors"] == {"tenure_months": "Must be at most 240."}
    assert (status["rows_total"], status["rows_done"], status["rows_failed"]) == (20, 14, 6)
    assert status["progress_percent"] == 100.0 and status["status"] == "completed"
    assert result_indexes == [i for i in range(18) if i not in (2, 4, 7, 9)]


def test_a_job_with_no_valid_row_fails_and_says_where_to_look(client, churn, predictor, settings):
    settings.BULK_CHUNK_ROWS = 10
    frame = churn_rows(30).assign(nps_score=11)

    job_id = submit(client, predictor, model="churn", file=csv_upload(frame)).json()["id"]
    run_in_process(job_id)

    job = BulkJob.objects.get(pk=job_id)
    assert (job.status, job.rows_done, job.rows_failed) == ("failed", 0, 30)
    assert job.error == "No row could be predicted; the error report says why."
    assert history(job) == 0


def test_json_rows_with_bad_values_are_reported_by_index(client, churn, predictor):
    good = churn_rows(3).drop(columns=["entity_id"]).to_dict("records")
    rows = [
        {"features": good[0], "entity_id": "a"},
        {"features": {**good[1], "nps_score": "high"}, "entity_id": "b"},
        {"features": {**good[2], "colour": "red"}},
    ]

    job_id = submit(client, predictor, model="churn", rows=rows).json()["id"]
    run_in_process(job_id)

    _, body = download(client, predictor, job_id, "errors")
    assert jsonl(body) == [
        {"index": 1, "entity_id": "b", "errors": {"nps_score": "Must be a number."}},
        {"index": 2, "errors": {"colour": "Unknown field."}},
    ]


# --- Results in every format ------------------------------------------------------------------------


def test_csv_parquet_and_json_lines_results_hold_the_batch_answers_in_input_order(client, churn, predictor):
    frame = churn_rows(230)
    reference = batch_predictions(client, predictor, frame)
    bodies = {}
    for output in ("csv", "parquet", "jsonl"):
        job = new_job(client, predictor, rows=230, output_format=output)
        run_in_process(job.pk)
        response, bodies[output] = download(client, predictor, job.pk)
        assert response["Content-Disposition"] == f'attachment; filename="bulk-{job.pk}.{output}"'

    from_jsonl = [(r["entity_id"], r["prediction"]) for r in jsonl(bodies["jsonl"])]
    table = pq.read_table(io.BytesIO(bodies["parquet"])).to_pylist()
    csv_lines = bodies["csv"].decode().splitlines()

    expected = [(r["entity_id"], r["prediction"]) for r in reference]
    assert from_jsonl == expected
    assert [row["index"] for row in table] == list(range(230))
    assert [(row["entity_id"], _flat(row)) for row in table] == [(e, _flat(p)) for e, p in expected]
    assert csv_lines[0] == '"index","entity_id","prediction_id","churn_probability","risk_band","top_drivers"'
    assert len(csv_lines) == 231


def _flat(prediction: dict) -> tuple:
    drivers = prediction["top_drivers"]
    return (
        prediction["churn_probability"],
        prediction["risk_band"],
        orjson.loads(drivers) if isinstance(drivers, str) else drivers,
    )


# --- Reaper and retention ---------------------------------------------------------------------------


def test_the_reaper_fails_a_job_that_stopped_progressing_and_calls_back(
    client, churn, predictor, settings, django_capture_on_commit_callbacks
):
    settings.BULK_CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    job = new_job(client, predictor, callback_url="http://127.0.0.1:9/hook")
    bulk_job_start(job_id=job.pk)
    long_ago = timezone.now() - timedelta(seconds=settings.BULK_JOB_LEASE_SECONDS + 5)
    BulkJob.objects.filter(pk=job.pk).update(last_progress_at=long_ago)

    with django_capture_on_commit_callbacks() as queued:
        report = bulk_jobs_reap()

    job = refreshed(job)
    assert report.failed == 1
    assert job.status == "failed"
    assert job.error.startswith(f"No chunk finished for {settings.BULK_JOB_LEASE_SECONDS} s (last progress at ")
    assert job.error.endswith("its workers stopped or the broker lost its work.")
    assert len(queued) >= 1  # the failure callback
    assert set(job.chunks.values_list("status", flat=True)) == {"cancelled"}


def test_the_reaper_resends_the_work_of_an_idle_job_once_per_lease(client, churn, predictor, settings):
    job = new_job(client, predictor)
    bulk_job_start(job_id=job.pk)
    bulk_chunk_run(job_id=job.pk, index=0)
    bulk_chunk_claim(job=refreshed(job), index=1, worker="elsewhere:1")  # its worker died
    idle = timezone.now() - timedelta(seconds=settings.BULK_CHUNK_LEASE_SECONDS + 5)
    BulkJob.objects.filter(pk=job.pk).update(last_progress_at=idle)
    BulkChunk.objects.filter(job=job, index=1).update(lease_expires_at=idle)
    waiting = new_job(client, predictor)
    BulkJob.objects.filter(pk=waiting.pk).update(created_at=idle)

    first = bulk_jobs_reap()
    again = bulk_jobs_reap()

    assert (first.chunks_resent, first.starts_resent, first.failed) == (2, 1, 0)  # chunks 1 and 2; one start
    assert (again.chunks_resent, again.starts_resent) == (0, 0)
    assert refreshed(job).status == "running" and refreshed(job).kicked_at is not None


def test_files_are_deleted_after_the_retention_period_and_downloads_say_so(
    client,
    churn,
    predictor,
    settings,
    bulk_media,  # noqa: F811
):
    old, recent = new_job(client, predictor), new_job(client, predictor)
    for job in (old, recent):
        run_in_process(job.pk)
    BulkJob.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=8))
    orphan = bulk_media / "bulk" / "a-submission-that-died"
    orphan.mkdir()
    (orphan / "input.csv").write_text("x")
    os.utime(orphan, (0, 0))

    purged = bulk_jobs_purge()

    expired = client.get(f"{BULK_URL}/{old.pk}/results", **predictor.headers)
    kept, _ = download(client, predictor, recent.pk)
    assert purged == 1
    assert not (bulk_media / "bulk" / str(old.pk)).exists() and not orphan.exists()
    assert (bulk_media / "bulk" / str(recent.pk)).exists()
    assert refreshed(old).files_deleted_at is not None
    assert "were deleted on" in assert_error(expired, 410, "expired")["message"]
    assert kept.status_code == 200


def test_entity_ids_the_history_cannot_keep_are_bad_rows(client, churn, predictor):
    frame = churn_rows(4)
    frame.loc[1, "entity_id"] = "x" * 121
    frame.loc[2, "entity_id"] = "client-é"  # printable, not ASCII: looked at, and kept

    job_id = submit(client, predictor, model="churn", file=csv_upload(frame), output_format="jsonl").json()["id"]
    run_in_process(job_id)

    _, errors = download(client, predictor, job_id, "errors")
    _, results = download(client, predictor, job_id)
    assert jsonl(errors) == [
        {"index": 1, "line": 3, "errors": {"entity_id": "Must be printable text of at most 120 characters."}}
    ]
    assert [(r["index"], r["entity_id"]) for r in jsonl(results)] == [
        (0, "client-7-0"),
        (2, "client-é"),
        (3, "client-7-3"),
    ]
