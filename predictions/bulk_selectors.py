"""Reads of bulk jobs: who sees which, their summary, the parts a download is made of."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.roles import Role, role_allows
from predictions.models import BulkChunk, BulkChunkStatus, BulkJob


def bulk_jobs_visible(*, user, role: str | None) -> QuerySet[BulkJob]:
    """Admins see every job; everyone else the jobs they submitted."""
    jobs = BulkJob.objects.select_related("model", "version", "owner")
    if role_allows(role, Role.ADMIN):
        return jobs
    return jobs.filter(owner=user) if user is not None and user.is_authenticated else jobs.none()


def bulk_job_progress(job: BulkJob) -> float:
    if not job.rows_total:
        return 0.0
    return round(100 * (job.rows_done + job.rows_failed) / job.rows_total, 1)


def bulk_job_timings(job: BulkJob) -> dict[str, float | None]:
    if job.started_at is None:
        return {"queued_seconds": None, "running_seconds": None, "rows_per_second": None}
    end = job.finished_at
    running = (end - job.started_at).total_seconds() if end else None
    return {
        "queued_seconds": round((job.started_at - job.created_at).total_seconds(), 3),
        "running_seconds": round(running, 3) if running is not None else None,
        "rows_per_second": round((job.rows_done + job.rows_failed) / running, 1) if running else None,
    }


def bulk_job_summary(job: BulkJob) -> dict[str, Any]:
    """What a callback says about the job: plain JSON values."""
    return {
        "id": str(job.pk),
        "model": job.model.slug,
        "version": job.version.number if job.version_id else None,
        "status": job.status,
        "rows_total": job.rows_total,
        "rows_done": job.rows_done,
        "rows_failed": job.rows_failed,
        "error": job.error,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "results_url": f"/api/bulk-predictions/{job.pk}/results",
        "errors_url": f"/api/bulk-predictions/{job.pk}/errors",
    }


def bulk_result_parts(job: BulkJob) -> list[str]:
    """The result part of every finished chunk, in input order."""
    return list(
        BulkChunk.objects.filter(job=job, status=BulkChunkStatus.DONE)
        .exclude(result_path="")
        .order_by("index")
        .values_list("result_path", flat=True)
    )


def bulk_error_parts(job: BulkJob) -> list[str]:
    """Lines the reader could not use, then each finished chunk's refused rows, in input order."""
    chunk_parts = (
        BulkChunk.objects.filter(job=job, status=BulkChunkStatus.DONE)
        .exclude(errors_path="")
        .order_by("index")
        .values_list("errors_path", flat=True)
    )
    return ([job.parse_errors_path] if job.parse_errors_path else []) + list(chunk_parts)
