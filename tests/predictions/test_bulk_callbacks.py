"""Callbacks: signed so the example receiver accepts them, logged per attempt, retried, guarded."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import orjson
import pytest

from predictions.callbacks import callback_deliver, callback_secret_create
from predictions.models import BulkJob, CallbackDelivery
from tests.predictions.bulk_support import (
    BULK_URL,
    bulk_media,  # noqa: F401 (fixture)
    callback_receiver,
    churn_rows,
    csv_upload,
    run_in_process,
    submit,
)

pytestmark = pytest.mark.django_db

RECEIVER_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bulk_callback_receiver.py"


def example_receiver():
    spec = importlib.util.spec_from_file_location("bulk_callback_receiver", RECEIVER_EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def finished_job(client, train, predictor, settings, bulk_media):  # noqa: F811
    """A completed job whose callback goes to a receiver on 127.0.0.1 (allowed for the test)."""
    train("churn")
    settings.BULK_CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]

    def make(url: str) -> tuple[BulkJob, str]:
        answer = submit(client, predictor, model="churn", file=csv_upload(churn_rows(120)), callback_url=url)
        assert answer.status_code == 202, answer.content
        run_in_process(answer.json()["id"])
        return BulkJob.objects.get(pk=answer.json()["id"]), answer.json().get("callback_secret")

    return make


def test_a_callback_is_signed_so_that_the_example_receiver_accepts_it(finished_job):
    receiver_example = example_receiver()
    with callback_receiver() as receiver:
        job, secret = finished_job(receiver.url)
        result = callback_deliver(job_id=str(job.pk), event="completed", attempt=1)

    [call] = receiver.received
    payload = receiver_example.verify_signature(secret=secret, header=call["headers"]["X-Signature"], body=call["body"])
    assert result.outcome == "delivered" and result.retry_in is None
    assert payload["type"] == "bulk_job.completed" and payload["id"] == f"{job.pk}:completed"
    assert payload["job"]["rows_done"] == 120 and payload["job"]["results_url"].endswith(f"{job.pk}/results")
    assert call["headers"]["X-Bulk-Job-Id"] == str(job.pk) and call["headers"]["Content-Type"] == "application/json"
    with pytest.raises(receiver_example.BadSignature, match="does not match"):
        receiver_example.verify_signature(
            secret="cbsec_wrong", header=call["headers"]["X-Signature"], body=call["body"]
        )
    with pytest.raises(receiver_example.BadSignature, match="does not match"):
        receiver_example.verify_signature(
            secret=secret, header=call["headers"]["X-Signature"], body=call["body"] + b" "
        )


def test_the_example_receiver_refuses_a_replayed_old_signature(finished_job):
    receiver_example = example_receiver()
    with callback_receiver() as receiver:
        job, secret = finished_job(receiver.url)
        callback_deliver(job_id=str(job.pk), event="completed", attempt=1)
    [call] = receiver.received
    signed_at = int(call["headers"]["X-Signature"].split(",")[0][2:])

    with pytest.raises(receiver_example.BadSignature, match="too old"):
        receiver_example.verify_signature(
            secret=secret, header=call["headers"]["X-Signature"], body=call["body"], now=signed_at + 301
        )


def test_a_failing_receiver_is_retried_with_exponential_backoff_and_every_attempt_is_logged(
    client, finished_job, predictor, settings
):
    settings.BULK_CALLBACK_MAX_ATTEMPTS = 3
    with callback_receiver(status=500) as receiver:
        job, _ = finished_job(receiver.url)
        results = [callback_deliver(job_id=str(job.pk), event="completed", attempt=n) for n in (1, 2, 3)]

    log = client.get(f"{BULK_URL}/{job.pk}", **predictor.headers).json()["deliveries"]
    assert [r.retry_in for r in results] == [30, 60, None]  # BULK_CALLBACK_BACKOFF_SECONDS, doubled; then stop
    assert [(d["attempt"], d["outcome"], d["status_code"]) for d in log] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "failed", 500),
    ]
    assert log[0]["error"] == "The receiver answered 500." and log[0]["response_excerpt"] == "thanks"
    assert log[0]["next_attempt_at"] is not None and log[2]["next_attempt_at"] is None


def test_the_address_is_checked_again_at_delivery_time(finished_job, settings):
    with callback_receiver() as receiver:
        job, _ = finished_job(receiver.url)
        settings.BULK_CALLBACK_ALLOWED_HOSTS = []  # the policy changed (or the name now resolves elsewhere)
        result = callback_deliver(job_id=str(job.pk), event="completed", attempt=1)

    delivery = CallbackDelivery.objects.get(job=job)
    assert result.outcome == "refused" and result.retry_in is None  # a policy answer: no retry
    assert receiver.received == []
    assert "resolves to 127.0.0.1 (loopback address)" in delivery.error


def test_a_rotated_secret_signs_the_next_callbacks(finished_job, predictor):
    receiver_example = example_receiver()
    with callback_receiver() as receiver:
        job, old_secret = finished_job(receiver.url)
        new_secret = callback_secret_create(api_key=predictor.api_key)
        callback_deliver(job_id=str(job.pk), event="completed", attempt=1)

    [call] = receiver.received
    payload = receiver_example.verify_signature(
        secret=new_secret, header=call["headers"]["X-Signature"], body=call["body"]
    )
    assert payload["job"]["id"] == str(job.pk)
    with pytest.raises(receiver_example.BadSignature):
        receiver_example.verify_signature(secret=old_secret, header=call["headers"]["X-Signature"], body=call["body"])
    assert orjson.loads(call["body"])["attempt"] == 1


# --- Admin ------------------------------------------------------------------------------------------


def test_operators_see_progress_cancel_jobs_and_read_the_delivery_log_in_the_admin(admin_client, finished_job):
    with callback_receiver(status=503) as receiver:
        done, _ = finished_job(receiver.url)
        callback_deliver(job_id=str(done.pk), event="completed", attempt=1)
    pending_id = copy_as_pending(admin_client, done)

    listing = admin_client.get("/admin/predictions/bulkjob/").content.decode()
    cancelled = admin_client.post(
        "/admin/predictions/bulkjob/", {"action": "cancel", "_selected_action": [pending_id, done.pk]}, follow=True
    ).content.decode()
    page = admin_client.get(f"/admin/predictions/bulkjob/{done.pk}/change/").content.decode()

    assert '<progress value="100.0" max="100"></progress> 100.0%' in listing
    assert f"Job {pending_id} cancelled." in cancelled
    assert "already completed" in cancelled
    assert BulkJob.objects.get(pk=pending_id).status == "cancelled"
    assert "The receiver answered 503." in page and "Callback deliveries" in page


def copy_as_pending(admin_client, like: BulkJob) -> str:
    """A copy of the job, pending: nothing will run it (it has no chunks)."""
    job = BulkJob.objects.get(pk=like.pk)
    job.pk = None
    job.status, job.finished_at = "pending", None
    job.save()
    return str(job.pk)
