"""Celery tasks of the predictions app: thin wrappers over predictions/bulk.py and callbacks.py.

Names are explicit (beat and the broker store them as strings) and start with
``predictions.``, which config/settings.py routes to the ``predictions`` queue.
"""

from __future__ import annotations

import logging

from celery import shared_task

from predictions import bulk
from predictions.callbacks import callback_deliver
from predictions.models import BulkChunk

logger = logging.getLogger(__name__)

# Retry delay after an unexpected error in a chunk, doubled per retry, capped: long enough
# for a locked database or a restarting storage to recover.
CHUNK_RETRY_SECONDS = 2
CHUNK_RETRY_MAX_SECONDS = 60


# acks_late + reject_on_worker_lost: a message is acknowledged only when its chunk finished,
# so the broker hands it to another worker if this one is killed. Safe because a chunk is
# claimed by a conditional update and committed once (predictions/bulk.py).
@shared_task(bind=True, name="predictions.bulk_start", acks_late=True, reject_on_worker_lost=True)
def bulk_start(self, job_id: str) -> bool:
    return bulk.bulk_job_start(job_id=job_id)


@shared_task(bind=True, name="predictions.bulk_chunk", acks_late=True, reject_on_worker_lost=True, max_retries=None)
def bulk_chunk(self, job_id: str, index: int) -> str:
    worker = bulk.process_name()
    try:
        outcome = bulk.bulk_chunk_run(job_id=job_id, index=index, worker=worker)
    except Exception as exc:
        logger.exception("bulk job %s chunk %s failed", job_id, index)
        claim = BulkChunk.objects.filter(job_id=job_id, index=index, claimed_by=worker).values("pk", "attempt").first()
        if claim:
            bulk.bulk_chunk_release(
                chunk_id=claim["pk"], attempt=claim["attempt"], error=f"{type(exc).__name__}: {exc}"
            )
        # The claim counts the attempts: once they reach BULK_CHUNK_MAX_ATTEMPTS, the next
        # delivery fails the job instead of retrying again.
        countdown = min(CHUNK_RETRY_MAX_SECONDS, CHUNK_RETRY_SECONDS * 2**self.request.retries)
        raise self.retry(countdown=countdown) from None
    if outcome.status == "busy":
        # Another process holds the claim: look again when its lease ends, in case it died.
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@shared_task(bind=True, name="predictions.bulk_callback", acks_late=True, reject_on_worker_lost=True, max_retries=None)
def bulk_callback(self, job_id: str, event: str) -> str:
    result = callback_deliver(job_id=job_id, event=event, attempt=self.request.retries + 1)
    if result.retry_in is not None:  # exponential backoff, decided (and logged) by the delivery
        raise self.retry(countdown=result.retry_in)
    return result.outcome


@shared_task(name="predictions.bulk_reap")
def bulk_reap() -> dict:
    report = bulk.bulk_jobs_reap()
    return {"failed": report.failed, "chunks_resent": report.chunks_resent, "starts_resent": report.starts_resent}


@shared_task(name="predictions.bulk_purge")
def bulk_purge() -> int:
    return bulk.bulk_jobs_purge()
