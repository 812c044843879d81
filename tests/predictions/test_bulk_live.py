"""Bulk jobs on real Celery workers: end to end, cancelled, delivered twice, workers killed.

Each test starts its worker(s) as separate processes on the test database and broker, the
way production runs them; the test process submits through the API and watches the database.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import timedelta
from itertools import pairwise

import orjson
import pytest
from django.utils import timezone

from history.models import PredictionRecord
from predictions.bulk import bulk_jobs_reap
from predictions.callbacks import callback_signature
from predictions.models import BulkChunk, BulkChunkStatus, BulkJob, BulkJobStatus, CallbackOutcome
from predictions.tasks import bulk_chunk
from tests.live import celery_worker, service_env
from tests.predictions.bulk_support import (
    BULK_URL,
    batch_predictions,
    bulk_media,  # noqa: F401 (fixture)
    callback_receiver,
    churn_rows,
    csv_upload,
    download,
    jsonl,
    submit,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 120  # two cores shared with other work: generous, the tests end as soon as they can


def wait_for(condition, what: str, timeout: float = WAIT_SECONDS, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def job_row(job_id) -> BulkJob:
    return BulkJob.objects.get(pk=job_id)


def finished(job_id) -> BulkJob | None:
    job = job_row(job_id)
    return job if job.status not in (BulkJobStatus.PENDING, BulkJobStatus.RUNNING) else None


@pytest.fixture
def worker_env(settings, bulk_media):  # noqa: F811
    """Workers see this test's artifacts and files, and may call back to 127.0.0.1."""
    settings.BULK_CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    return service_env(
        ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT),
        MEDIA_ROOT=str(bulk_media),
        BULK_CALLBACK_ALLOWED_HOSTS="127.0.0.1",
        BULK_CALLBACK_BACKOFF_SECONDS="1",
        BULK_CALLBACK_MAX_ATTEMPTS="3",
    )


def history_of(job_id):
    return PredictionRecord.objects.filter(bulk_job_id=job_id)


def test_a_job_runs_to_completion_with_results_equal_to_batch_and_a_signed_callback(
    client, train, predictor, worker_env
):
    version = train("churn")
    frame = churn_rows(3_000)
    progress = []

    def done():
        body = client.get(f"{BULK_URL}/{job_id}", **predictor.headers).json()
        progress.append(body["progress_percent"])
        return body if body["status"] == "completed" else None

    # Two workers share the chunks, as workers on several machines would.
    with (
        callback_receiver() as receiver,
        celery_worker(worker_env, queues="predictions"),
        celery_worker(worker_env, queues="predictions"),
    ):
        answer = submit(
            client,
            predictor,
            model="churn",
            file=csv_upload(frame),
            chunk_size=500,
            output_format="jsonl",
            callback_url=receiver.url,
        )
        assert answer.status_code == 202, answer.content
        job_id, secret = answer.json()["id"], answer.json()["callback_secret"]
        status = wait_for(done, "the job to complete", every=0.02)
        wait_for(lambda: receiver.received, "the callback")

    assert answer["Location"] == f"/api/bulk-predictions/{job_id}"
    assert status["rows_done"] == 3_000 and status["rows_failed"] == 0 and status["progress_percent"] == 100.0
    assert status["version"] == version.number and status["chunks_done"] == 6
    claimants = set(BulkChunk.objects.filter(job_id=job_id).values_list("claimed_by", flat=True))
    assert len(claimants) == 2  # both workers took chunks
    assert progress == sorted(progress)  # never goes backwards
    assert status["timings"]["running_seconds"] > 0 and status["timings"]["rows_per_second"] > 0
    # Results: the rows /batch answers for the same input, in input order.
    response, body = download(client, predictor, job_id)
    results = jsonl(body)
    reference = batch_predictions(client, predictor, frame)
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    assert [r["index"] for r in results] == list(range(3_000))
    assert [(r["entity_id"], r["prediction"]) for r in results] == [
        (r["entity_id"], r["prediction"]) for r in reference
    ]
    # History: every row once, from the bulk job, with the pinned version.
    records = history_of(job_id)
    assert records.count() == 3_000
    assert set(records.values_list("source", "version_id").distinct()) == {("bulk", version.pk)}
    assert sorted(r["prediction_id"] for r in results) == sorted(records.values_list("id", flat=True))
    # The callback: one POST, signed with the key's secret over its timestamp and body.
    [call] = receiver.received
    timestamp = int(call["headers"]["X-Signature"].split(",")[0].removeprefix("t="))
    expected = callback_signature(secret=secret, timestamp=timestamp, body=call["body"])
    payload = orjson.loads(call["body"])
    assert call["headers"]["X-Signature"] == expected
    assert abs(time.time() - timestamp) < 300
    assert payload["type"] == "bulk_job.completed" and payload["job"]["rows_done"] == 3_000
    [delivery] = client.get(f"{BULK_URL}/{job_id}", **predictor.headers).json()["deliveries"]
    assert delivery["outcome"] == "delivered" and delivery["status_code"] == 200 and delivery["attempt"] == 1


def test_a_chunk_delivered_twice_produces_its_rows_once(client, train, predictor, worker_env):
    train("churn")
    answer = submit(client, predictor, model="churn", file=csv_upload(churn_rows(2_000)), chunk_size=500)
    job_id = answer.json()["id"]

    with celery_worker(worker_env, queues="predictions"):
        wait_for(lambda: finished(job_id), "the job to finish")
        # Every chunk's message again, as a broker redelivering after a lost acknowledgement
        # would; a barrier task queued behind them tells when the worker has seen them all.
        for index in range(4):
            bulk_chunk.apply_async(args=[job_id, index])
        outcomes = [bulk_chunk.apply_async(args=[job_id, index]) for index in range(4)]
        statuses = [outcome.get(timeout=WAIT_SECONDS) for outcome in outcomes]

    _, body = download(client, predictor, job_id)
    assert statuses == ["duplicate"] * 4
    assert job_row(job_id).rows_done == 2_000
    assert history_of(job_id).count() == 2_000
    assert body.count(b"\n") == 2_001  # header + one line per row
    assert set(BulkChunk.objects.filter(job_id=job_id).values_list("attempt", flat=True)) == {1}


def test_cancelling_mid_job_stops_at_a_chunk_boundary_and_calls_back_with_retries(
    client, train, predictor, worker_env, unreachable_url
):
    train("churn")
    answer = submit(
        client,
        predictor,
        model="churn",
        file=csv_upload(churn_rows(12_000)),
        chunk_size=200,
        callback_url=unreachable_url,
    )
    job_id = answer.json()["id"]

    with celery_worker(worker_env, queues="predictions"):
        wait_for(lambda: job_row(job_id).chunks_done >= 2, "two chunks to finish", every=0.01)
        cancelled = client.delete(f"{BULK_URL}/{job_id}", **predictor.headers)
        settled = job_row(job_id)
        # Three attempts at the unreachable receiver, 1 s then 2 s apart.
        wait_for(lambda: job_row(job_id).deliveries.count() == 3, "three callback attempts", every=0.2)
        time.sleep(1.5)  # anything still running would have written by now
        after = job_row(job_id)

    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["error"] == f"Cancelled by {predictor.api_key.user.username}."
    assert 0 < after.rows_done < 12_000
    assert after.rows_done == settled.rows_done  # nothing written after the cancel answered
    assert history_of(job_id).count() == after.rows_done
    done_chunks = BulkChunk.objects.filter(job_id=job_id, status=BulkChunkStatus.DONE)
    assert sum(done_chunks.values_list("rows_done", flat=True)) == after.rows_done
    assert not BulkChunk.objects.filter(job_id=job_id, status__in=["pending", "running"]).exists()
    deliveries = list(after.deliveries.order_by("attempt"))
    assert [d.outcome for d in deliveries] == [CallbackOutcome.FAILED] * 3
    assert [d.event for d in deliveries] == ["cancelled"] * 3
    assert "ConnectionRefusedError" in deliveries[0].error
    gaps = [(b.created_at - a.created_at).total_seconds() for a, b in pairwise(deliveries)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9  # exponential backoff: 1 s, then 2 s
    assert deliveries[-1].next_attempt_at is None  # the last one: no retry planned


@pytest.fixture
def unreachable_url(settings):
    from tests.live import free_port

    return f"http://127.0.0.1:{free_port()}/hooks/bulk"


def results_indexes(client, caller, job_id) -> Counter:
    _, body = download(client, caller, job_id)
    lines = body.decode().splitlines()[1:]
    return Counter(int(line.split(",", 1)[0]) for line in lines)


def running_chunk(job_id) -> BulkChunk | None:
    return BulkChunk.objects.filter(job_id=job_id, status=BulkChunkStatus.RUNNING).exclude(claimed_by="").first()


def test_a_worker_process_killed_mid_chunk_is_redelivered_and_the_job_completes_exactly_once(
    client, train, predictor, worker_env
):
    train("churn")
    answer = submit(client, predictor, model="churn", file=csv_upload(churn_rows(30_000)), chunk_size=10_000)
    job_id = answer.json()["id"]

    with celery_worker(worker_env, queues="predictions"):
        victim = wait_for(lambda: running_chunk(job_id), "a chunk to be claimed", every=0.005)
        os.kill(int(victim.claimed_by.rsplit(":", 1)[1]), signal.SIGKILL)  # the pool process running it
        job = wait_for(lambda: finished(job_id), "the job to finish")

    victim.refresh_from_db()
    assert job.status == "completed", job.error
    assert job.rows_done == 30_000 and history_of(job_id).count() == 30_000
    assert victim.attempt >= 2  # it was running when killed, and ran again
    assert results_indexes(client, predictor, job_id) == Counter(range(30_000))  # none missing, none twice


def test_a_whole_worker_killed_loses_its_message_and_the_reaper_recovers_the_job(
    client, train, predictor, worker_env, settings
):
    """SIGKILL of the worker itself: the broker gets no word (file system: the message is gone;
    Redis: it comes back only after the visibility timeout). The reaper re-sends the work."""
    train("churn")
    settings.BULK_CHUNK_LEASE_SECONDS = 2
    env = {**worker_env, "BULK_CHUNK_LEASE_SECONDS": "2"}
    answer = submit(client, predictor, model="churn", file=csv_upload(churn_rows(30_000)), chunk_size=10_000)
    job_id = answer.json()["id"]

    with celery_worker(env, queues="predictions") as first:
        victim = wait_for(lambda: running_chunk(job_id), "a chunk to be claimed", every=0.005)
        os.kill(int(victim.claimed_by.rsplit(":", 1)[1]), signal.SIGKILL)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    stalled_at = timezone.now()
    wait_for(lambda: timezone.now() - job_row(job_id).last_progress_at > timedelta(seconds=2.5), "lease")
    report = bulk_jobs_reap()
    with celery_worker(env, queues="predictions"):
        job = wait_for(lambda: finished(job_id), "the job to finish")

    assert report.chunks_resent >= 1 and report.failed == 0
    assert job.status == "completed", job.error
    assert job.rows_done == 30_000 and history_of(job_id).count() == 30_000
    assert job.finished_at > stalled_at
    assert results_indexes(client, predictor, job_id) == Counter(range(30_000))
