"""Bulk prediction jobs: submission, chunks processed exactly once, cancellation, the reaper
and retention.

How a job runs
--------------
1. ``bulk_job_submit`` (web process) stores the input, splits it into chunk files (header and
   column types checked first: a bad file is refused before any work), and creates the job
   and one ``BulkChunk`` per chunk. ``predictions.bulk_start`` is queued on commit.
2. ``bulk_job_start`` pins the model version active at that moment and queues one
   ``predictions.bulk_chunk`` task per chunk, so any number of workers share the job.
3. ``bulk_chunk_run`` claims its chunk by a conditional update (a lease, and an attempt
   number), predicts, and in ONE transaction records history, stores the result part and
   marks the chunk done with the job's counters. A chunk delivered twice finds itself done;
   an attempt that lost its claim (its lease expired and another took over) rolls back.
4. The chunk that finishes the last one completes the job; every terminal transition (done,
   failed, cancelled) is one conditional update and queues the callback on commit.

The reaper (``bulk_jobs_reap``, every minute) re-sends the work of jobs that stopped
progressing (a broker that lost messages when a worker was killed) and fails those that
made no progress within the job lease, with the reason.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django.utils.text import get_valid_filename

from accounts.models import APIKey, User
from history.models import Source
from predictions import bulk_files
from predictions.bulk_files import BulkInputError, InputSplit
from predictions.callbacks import callback_secret_create, callback_target
from predictions.catalog import CATALOG, get_catalog_model
from predictions.datasets import format_from_name
from predictions.models import (
    BULK_JOB_ACTIVE,
    BulkCallbackSecret,
    BulkChunk,
    BulkChunkStatus,
    BulkInputFormat,
    BulkInputKind,
    BulkJob,
    BulkJobStatus,
    BulkOutputFormat,
    Dataset,
    MLModel,
)
from predictions.selectors import active_pointer
from predictions.services import Caller, PredictionInputError, predictions_make
from predictions.serving import ModelUnavailable

logger = logging.getLogger(__name__)

# Where a job's files live in the default storage: bulk/<job id>/...
BULK_FOLDER = "bulk"
# Orphan folders (a submission killed half-way) are deleted once this old.
ORPHAN_FOLDER_AGE = timedelta(days=1)


class BulkSubmitError(Exception):
    """A submission refused for a reason the caller can fix (400)."""


class BulkModelUnavailable(Exception):
    """The model has no version to serve: a job could not start (503)."""


class BulkJobStateError(Exception):
    """An operation the job's status does not allow (409)."""


# --- Submission ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkSource:
    """Where the rows come from: exactly one of an upload, JSON rows, or a stored dataset."""

    kind: str
    upload: UploadedFile | None = None
    rows: list[dict[str, Any]] | None = None
    dataset: Dataset | None = None


@dataclass
class Submitted:
    job: BulkJob
    callback_secret: str | None  # set only when this submission created the key's secret


def bulk_job_submit(
    *,
    slug: str,
    source: BulkSource,
    owner: User | None,
    api_key: APIKey | None,
    correlation_id: str,
    output_format: str | None = None,
    callback_url: str = "",
    chunk_rows: int | None = None,
) -> Submitted:
    """Check and split the input, then create the job; it starts on a worker.

    The file work happens before any database write, so a long upload holds no lock, and a
    refused input leaves nothing behind.
    """
    if slug not in CATALOG:
        raise BulkSubmitError(f"Unknown model {slug!r}; choose one of {', '.join(CATALOG)}.")
    spec = get_catalog_model(slug)
    if active_pointer(slug) is None:
        raise BulkModelUnavailable(f"Model '{slug}' has no active version; see /api/models/{slug}/health.")
    if callback_url:
        if api_key is None:
            raise BulkSubmitError("Callbacks are signed with your API key's secret: submit with an API key.")
        callback_target(callback_url)  # refused now rather than at the end of the job
    chunk_rows = chunk_rows or settings.BULK_CHUNK_ROWS
    job_id = uuid.uuid4()
    input_format, input_name = _input_format(source)
    try:
        input_path, split = _split_input(job_id=job_id, spec=spec, source=source, chunk_rows=chunk_rows)
        if split.rows == 0:
            raise BulkInputError("The input has no data rows.")
        parse_errors_path = ""
        if split.malformed:
            parse_errors_path = _save(job_id, "parse-errors.jsonl", bulk_files.error_lines(split.malformed))
    except BaseException:
        _delete_folder(job_id)
        raise
    try:
        job = BulkJob(
            id=job_id,
            owner=owner,
            api_key=api_key,
            api_key_prefix=api_key.prefix if api_key else "",
            correlation_id=correlation_id,
            input_kind=source.kind,
            input_format=input_format,
            input_name=input_name,
            input_path=input_path,
            dataset=source.dataset,
            output_format=output_format or _default_output(input_format),
            chunk_rows=chunk_rows,
            chunks_total=len(split.chunks),
            rows_total=split.rows + len(split.malformed),
            rows_failed=len(split.malformed),
            skipped_lines=split.skipped_lines,
            parse_errors_path=parse_errors_path,
            callback_url=callback_url,
        )
        return _job_create(job=job, slug=slug, split=split)
    except BaseException:
        _delete_folder(job_id)
        raise


@transaction.atomic
def _job_create(*, job: BulkJob, slug: str, split: InputSplit) -> Submitted:
    job.model = MLModel.objects.get(slug=slug)
    job.save(force_insert=True)
    BulkChunk.objects.bulk_create(
        BulkChunk(job=job, index=c.index, row_start=c.row_start, row_count=c.row_count, input_path=c.path)
        for c in split.chunks
    )
    secret = None
    if job.callback_url and not BulkCallbackSecret.objects.filter(api_key=job.api_key).exists():
        secret = callback_secret_create(api_key=job.api_key)
    _on_commit_send("predictions.bulk_start", job.pk)
    return Submitted(job, secret)


def _input_format(source: BulkSource) -> tuple[str, str]:
    if source.kind == BulkInputKind.ROWS:
        return BulkInputFormat.JSON, ""
    if source.kind == BulkInputKind.DATASET:
        return source.dataset.file_format, source.dataset.name
    file_format = format_from_name(source.upload.name)
    if file_format is None:
        raise BulkSubmitError("The file must be .csv or .parquet.")
    return file_format, source.upload.name[:255]


def _default_output(input_format: str) -> str:
    """Results in the family of the input unless asked otherwise: CSV in, CSV out."""
    return {
        BulkInputFormat.CSV: BulkOutputFormat.CSV,
        BulkInputFormat.PARQUET: BulkOutputFormat.PARQUET,
    }.get(input_format, BulkOutputFormat.JSONL)


def _split_input(*, job_id: uuid.UUID, spec, source: BulkSource, chunk_rows: int) -> tuple[str, InputSplit]:
    def sink(index: int, row_start: int, row_count: int, data: bytes, suffix: str) -> str:
        return _save(job_id, f"chunks/{index:05d}.{suffix}", data)

    limits = {"spec": spec, "chunk_rows": chunk_rows, "max_rows": settings.BULK_MAX_ROWS, "sink": sink}
    if source.kind == BulkInputKind.ROWS:
        if len(source.rows) > settings.BULK_MAX_ROWS:
            raise BulkInputError(f"The input has more than {settings.BULK_MAX_ROWS:,} rows.")
        return "", bulk_files.split_json_rows(source.rows, chunk_rows=chunk_rows, sink=sink)
    if source.kind == BulkInputKind.DATASET:
        file_format, handle, with_target = source.dataset.file_format, source.dataset.file.open("rb"), True
        input_path = source.dataset.file.name
    else:
        file_format, with_target = format_from_name(source.upload.name), False
        # The upload is already on disk (Django spools files over 2 MB); it is moved, not read.
        input_path = default_storage.save(_name(job_id, f"input/{_safe_name(source.upload.name)}"), source.upload)
        handle = default_storage.open(input_path, "rb")
    with handle:
        split_file = bulk_files.split_parquet if file_format == "parquet" else bulk_files.split_csv
        return input_path, split_file(handle, with_target=with_target, **limits)


def _safe_name(filename: str) -> str:
    return get_valid_filename(Path(filename).name)[-100:] or "input"


def _name(job_id: uuid.UUID | str, relative: str) -> str:
    return f"{BULK_FOLDER}/{job_id}/{relative}"


def _save(job_id: uuid.UUID | str, relative: str, data: bytes) -> str:
    return default_storage.save(_name(job_id, relative), ContentFile(data))


def _on_commit_send(task_name: str, *args: Any) -> None:
    """Queue a task once the transaction commits (at once outside one), by its name."""
    values = [arg if isinstance(arg, int) else str(arg) for arg in args]
    transaction.on_commit(lambda: current_app.send_task(task_name, args=values))


# --- Start ---------------------------------------------------------------------------------------


def bulk_job_start(*, job_id: uuid.UUID | str) -> bool:
    """Pin the active version and hand the chunks to the workers (idempotent)."""
    job = BulkJob.objects.select_related("model").filter(pk=job_id).first()
    if job is None or job.status != BulkJobStatus.PENDING:
        return False
    pointer = active_pointer(job.model.slug)
    if pointer is None:
        bulk_job_fail(job_id=job.pk, reason=f"Model '{job.model.slug}' had no active version when the job started.")
        return False
    now = timezone.now()
    started = BulkJob.objects.filter(pk=job.pk, status=BulkJobStatus.PENDING).update(
        status=BulkJobStatus.RUNNING, version_id=pointer.version_id, started_at=now, last_progress_at=now
    )
    if started:
        _send_chunks(job.pk, BulkChunk.objects.filter(job_id=job.pk, status=BulkChunkStatus.PENDING))
    return bool(started)


def _send_chunks(job_id: uuid.UUID, chunks) -> int:
    indexes = list(chunks.order_by("index").values_list("index", flat=True))
    for index in indexes:
        _on_commit_send("predictions.bulk_chunk", job_id, index)
    return len(indexes)


# --- Chunks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkOutcome:
    """What a delivery of a chunk task did: ``done``, ``duplicate`` (already done), ``busy``
    (claimed by a live process: try again in ``retry_in`` s), ``stopped`` (job not running),
    ``lost`` (another attempt took the claim over), ``failed`` (the job failed), ``gone``."""

    status: str
    retry_in: float | None = None


class _Abandon(Exception):
    def __init__(self, outcome: str):
        super().__init__(outcome)
        self.outcome = outcome


def process_name() -> str:
    """host:pid, so that a redelivery on the same host can see that the claimant died."""
    return f"{socket.gethostname()}:{os.getpid()}"


def bulk_chunk_run(*, job_id: uuid.UUID | str, index: int, worker: str | None = None) -> ChunkOutcome:
    """Process one chunk exactly once, however many times it is delivered."""
    job = BulkJob.objects.select_related("model").filter(pk=job_id).first()
    if job is None:
        return ChunkOutcome("gone")
    if job.status != BulkJobStatus.RUNNING:
        done = BulkChunk.objects.filter(job_id=job.pk, index=index, status=BulkChunkStatus.DONE).exists()
        return ChunkOutcome("duplicate" if done else "stopped")
    claim = bulk_chunk_claim(job=job, index=index, worker=worker or process_name())
    if isinstance(claim, ChunkOutcome):
        return claim
    try:
        return bulk_chunk_process(job=job, chunk=claim)
    except ModelUnavailable as exc:
        bulk_job_fail(job_id=job.pk, reason=f"The pinned version cannot be served: {exc}")
        return ChunkOutcome("failed")


def bulk_chunk_claim(*, job: BulkJob, index: int, worker: str) -> BulkChunk | ChunkOutcome:
    """Take the chunk: pending, or running under an expired lease or a dead local process."""
    chunks = BulkChunk.objects.filter(job_id=job.pk, index=index)
    chunk = chunks.first()
    if chunk is None:
        return ChunkOutcome("gone")
    if chunk.status == BulkChunkStatus.DONE:
        return ChunkOutcome("duplicate")
    if chunk.status == BulkChunkStatus.CANCELLED:
        return ChunkOutcome("stopped")
    if chunk.attempt >= settings.BULK_CHUNK_MAX_ATTEMPTS:
        last = f" The last error: {chunk.last_error}" if chunk.last_error else " Its workers died each time."
        bulk_job_fail(job_id=job.pk, reason=f"Chunk {index} was attempted {chunk.attempt} times.{last}")
        return ChunkOutcome("failed")
    now = timezone.now()
    claimable = Q(status=BulkChunkStatus.PENDING) | Q(status=BulkChunkStatus.RUNNING, lease_expires_at__lt=now)
    if chunk.status == BulkChunkStatus.RUNNING and _claimant_is_dead(chunk.claimed_by):
        claimable |= Q(status=BulkChunkStatus.RUNNING, attempt=chunk.attempt)
    claimed = chunks.filter(claimable).update(
        status=BulkChunkStatus.RUNNING,
        attempt=F("attempt") + 1,
        claimed_by=worker,
        lease_expires_at=now + timedelta(seconds=settings.BULK_CHUNK_LEASE_SECONDS),
    )
    chunk.refresh_from_db()
    if claimed and chunk.claimed_by == worker and chunk.status == BulkChunkStatus.RUNNING:
        return chunk
    if chunk.status == BulkChunkStatus.RUNNING:
        return ChunkOutcome("busy", retry_in=max(1.0, (chunk.lease_expires_at - now).total_seconds() + 1))
    return ChunkOutcome("duplicate" if chunk.status == BulkChunkStatus.DONE else "stopped")


def bulk_chunk_release(*, chunk_id: int, attempt: int, error: str) -> None:
    """Give back a claim after a failure, so that the retry can take it at once."""
    BulkChunk.objects.filter(pk=chunk_id, status=BulkChunkStatus.RUNNING, attempt=attempt).update(
        status=BulkChunkStatus.PENDING, lease_expires_at=None, last_error=error[:2000]
    )


def _claimant_is_dead(claimed_by: str) -> bool:
    """True only when the claimant ran on this host and its process is gone.

    Correctness never depends on it (a late attempt loses at commit); it saves waiting for
    the lease when a worker process was killed and the broker redelivered its message.
    """
    host, _, pid_text = claimed_by.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed process not yet reaped by its parent is a zombie: dead all the same
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in {"Z", "X"}


def bulk_chunk_process(*, job: BulkJob, chunk: BulkChunk) -> ChunkOutcome:
    """Predict a claimed chunk and commit it, unless the claim or the job was lost meanwhile."""
    started = time.perf_counter()
    spec = get_catalog_model(job.model.slug)
    with default_storage.open(chunk.input_path, "rb") as handle:
        data = handle.read()
    parsed = bulk_files.read_chunk(data, spec=spec, suffix=chunk.input_path.rsplit(".", 1)[-1])
    written: list[str] = []
    try:
        with _chunk_transaction(chunk.pk):
            batch_indexes, prediction_ids, outputs, errors = _predict(job, chunk, parsed)
            entity_ids = [parsed.entity_ids[i] for i in batch_indexes]
            positions = [chunk.row_start + parsed.positions[i] for i in batch_indexes]
            result_path = errors_path = ""
            if outputs:
                part, suffix = bulk_files.result_part(
                    output_format=job.output_format,
                    indexes=positions,
                    entity_ids=entity_ids,
                    prediction_ids=prediction_ids,
                    outputs=outputs,
                )
                result_path = _save(job.pk, f"results/{chunk.index:05d}-a{chunk.attempt}.{suffix}", part)
                written.append(result_path)
            if errors:
                errors_path = _save(job.pk, f"errors/{chunk.index:05d}-a{chunk.attempt}.jsonl", errors)
                written.append(errors_path)
            failed = parsed.size - len(outputs)
            now = timezone.now()
            # The job row first, then the chunk row: the order cancel and fail take them in,
            # so that PostgreSQL never sees two transactions wait on each other.
            counted = BulkJob.objects.filter(pk=job.pk, status=BulkJobStatus.RUNNING).update(
                rows_done=F("rows_done") + len(outputs),
                rows_failed=F("rows_failed") + failed,
                chunks_done=F("chunks_done") + 1,
                last_progress_at=now,
            )
            if not counted:
                raise _Abandon("stopped")
            marked = BulkChunk.objects.filter(
                pk=chunk.pk, status=BulkChunkStatus.RUNNING, attempt=chunk.attempt
            ).update(
                status=BulkChunkStatus.DONE,
                rows_done=len(outputs),
                rows_failed=failed,
                result_path=result_path,
                errors_path=errors_path,
                seconds=round(time.perf_counter() - started, 4),
                finished_at=now,
                lease_expires_at=None,
            )
            if not marked:
                raise _Abandon("lost")
            _job_complete_if_done(job.pk, now)
    except _Abandon as abandon:
        _delete_files(written)
        return ChunkOutcome(abandon.outcome)
    except BaseException:
        _delete_files(written)
        raise
    return ChunkOutcome("done")


@contextmanager
def _chunk_transaction(chunk_id: int) -> Iterator[None]:
    """The chunk's one transaction; on SQLite its write lock is taken only when first needed.

    SQLite has one writer at a time, and the project's connections begin IMMEDIATE: the lock
    would be held while the chunk is validated and predicted, and two workers would predict
    one after the other. Here the transaction begins DEFERRED, and before its first statement
    of any kind the chunk's own row is written, which takes the write lock (waiting for it as
    BEGIN IMMEDIATE would). Nothing is read before the lock is held, so no read snapshot can
    go stale (the reason for IMMEDIATE), and the prediction itself runs in parallel.
    """
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    locked = False
    lock_sql = f"UPDATE {connection.ops.quote_name(BulkChunk._meta.db_table)} SET attempt = attempt WHERE id = %s"  # noqa: S608

    def write_first(execute, sql, params, many, context):
        nonlocal locked
        if not locked and not sql.lstrip().upper().startswith("BEGIN"):
            locked = True
            execute(lock_sql, [chunk_id], False, context)
        return execute(sql, params, many, context)

    connection.ensure_connection()
    mode, connection.transaction_mode = connection.transaction_mode, None
    try:
        with connection.execute_wrapper(write_first), transaction.atomic():
            yield
    finally:
        connection.transaction_mode = mode


def _predict(job: BulkJob, chunk: BulkChunk, parsed: bulk_files.ChunkRows):
    """(positions in ``parsed.rows``, prediction ids, outputs, error lines) for the chunk."""
    problems: dict[int, dict[str, str]] = dict(parsed.refused)  # by position in the chunk
    indexes: list[int] = []
    prediction_ids: list[int] = []
    outputs: list[dict[str, Any]] = []
    if parsed.rows:
        caller = Caller(
            source=Source.BULK,
            correlation_id=job.correlation_id,
            api_key_prefix=job.api_key_prefix,
            bulk_job_id=job.pk,
        )
        try:
            batch = predictions_make(
                slug=job.model.slug,
                rows=parsed.rows,
                entity_ids=parsed.entity_ids,
                caller=caller,
                partial=True,
                version_id=job.version_id,
            )
        except PredictionInputError as exc:  # every row invalid: nothing recorded
            row_errors = exc.errors
        else:
            indexes, prediction_ids, outputs, row_errors = (
                batch.indexes,
                batch.prediction_ids,
                batch.outputs,
                batch.errors,
            )
        problems.update({parsed.positions[i]: errors for i, errors in row_errors.items()})
    entries = []
    entity_by_position = dict(zip(parsed.positions, parsed.entity_ids, strict=True))
    for position in sorted(problems):
        index = chunk.row_start + position
        entry: dict[str, Any] = {"index": index}
        if job.input_format == BulkInputFormat.CSV:
            entry["line"] = bulk_files.csv_line(index, job.skipped_lines)
        if entity_by_position.get(position):
            entry["entity_id"] = entity_by_position[position]
        entry["errors"] = problems[position]
        entries.append(entry)
    return indexes, prediction_ids, outputs, bulk_files.error_lines(entries) if entries else b""


def _job_complete_if_done(job_id: uuid.UUID, now: datetime) -> None:
    """Called in the transaction of every chunk: the one that finished the last completes it."""
    finished = BulkJob.objects.filter(pk=job_id, status=BulkJobStatus.RUNNING, chunks_done=F("chunks_total")).update(
        status=Case(When(rows_done=0, then=Value(BulkJobStatus.FAILED)), default=Value(BulkJobStatus.COMPLETED)),
        error=Case(
            When(rows_done=0, then=Value("No row could be predicted; the error report says why.")),
            default=Value(""),
        ),
        finished_at=now,
    )
    if finished:
        status = BulkJob.objects.filter(pk=job_id).values_list("status", flat=True).get()
        _queue_callback(job_id, status)


def _queue_callback(job_id: uuid.UUID, event: str) -> None:
    if BulkJob.objects.filter(pk=job_id).exclude(callback_url="").exists():
        _on_commit_send("predictions.bulk_callback", job_id, event)


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.warning("could not delete %s", name)


# --- Stopping: cancel and fail -------------------------------------------------------------------


@transaction.atomic
def _job_stop(*, job_id: uuid.UUID | str, status: str, reason: str) -> bool:
    """Pending or running -> ``status``: chunks not done are cancelled, nothing more is written."""
    stopped = BulkJob.objects.filter(pk=job_id, status__in=BULK_JOB_ACTIVE).update(
        status=status, error=reason, finished_at=timezone.now()
    )
    if not stopped:
        return False
    BulkChunk.objects.filter(job_id=job_id, status__in=[BulkChunkStatus.PENDING, BulkChunkStatus.RUNNING]).update(
        status=BulkChunkStatus.CANCELLED, lease_expires_at=None
    )
    _queue_callback(job_id, status)
    return True


def bulk_job_cancel(*, job: BulkJob, cancelled_by: str) -> BulkJob:
    """Stop a job: chunks running now stop at their end, without writing anything."""
    if not _job_stop(job_id=job.pk, status=BulkJobStatus.CANCELLED, reason=f"Cancelled by {cancelled_by}."):
        job.refresh_from_db(fields=["status"])
        raise BulkJobStateError(f"The job is already {job.status}; only pending or running jobs can be cancelled.")
    job.refresh_from_db()
    return job


def bulk_job_fail(*, job_id: uuid.UUID | str, reason: str) -> bool:
    logger.warning("bulk job %s failed: %s", job_id, reason)
    return _job_stop(job_id=job_id, status=BulkJobStatus.FAILED, reason=reason)


# --- Reaper and retention -----------------------------------------------------------------------


@dataclass
class ReapReport:
    failed: int = 0
    chunks_resent: int = 0
    starts_resent: int = 0


def bulk_jobs_reap(*, now: datetime | None = None) -> ReapReport:
    """Recover work the broker lost, and fail jobs that made no progress within the lease."""
    now = now or timezone.now()
    report = ReapReport()
    job_lease = timedelta(seconds=settings.BULK_JOB_LEASE_SECONDS)
    chunk_lease = timedelta(seconds=settings.BULK_CHUNK_LEASE_SECONDS)
    stalled = BulkJob.objects.filter(status=BulkJobStatus.RUNNING, last_progress_at__lt=now - job_lease)
    for job_id, last in stalled.values_list("id", "last_progress_at"):
        reason = (
            f"No chunk finished for {settings.BULK_JOB_LEASE_SECONDS} s (last progress at "
            f"{last:%Y-%m-%d %H:%M:%S} UTC): its workers stopped or the broker lost its work."
        )
        report.failed += bulk_job_fail(job_id=job_id, reason=reason)
    not_kicked = Q(kicked_at__isnull=True) | Q(kicked_at__lt=now - chunk_lease)
    # Running jobs idle for a chunk lease: re-send every chunk nobody holds a live claim on.
    # Duplicates are harmless (a chunk runs once); lost messages are not.
    slow = BulkJob.objects.filter(not_kicked, status=BulkJobStatus.RUNNING, last_progress_at__lt=now - chunk_lease)
    for job_id in slow.values_list("id", flat=True):
        open_chunks = BulkChunk.objects.filter(job_id=job_id).filter(
            Q(status=BulkChunkStatus.PENDING) | Q(status=BulkChunkStatus.RUNNING, lease_expires_at__lt=now)
        )
        report.chunks_resent += _send_chunks(job_id, open_chunks)
        BulkJob.objects.filter(pk=job_id).update(kicked_at=now)
    waiting = BulkJob.objects.filter(not_kicked, status=BulkJobStatus.PENDING, created_at__lt=now - chunk_lease)
    for job_id in waiting.values_list("id", flat=True):
        _on_commit_send("predictions.bulk_start", job_id)
        BulkJob.objects.filter(pk=job_id).update(kicked_at=now)
        report.starts_resent += 1
    return report


def bulk_jobs_purge(*, now: datetime | None = None) -> int:
    """Delete the files of jobs finished more than BULK_RETENTION_DAYS ago (the rows stay)."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.BULK_RETENTION_DAYS)
    expired = BulkJob.objects.filter(finished_at__lt=cutoff, files_deleted_at__isnull=True).exclude(
        status__in=BULK_JOB_ACTIVE
    )
    purged = 0
    for job_id in expired.values_list("id", flat=True):
        _delete_folder(job_id)
        purged += BulkJob.objects.filter(pk=job_id).update(files_deleted_at=now)
    _delete_orphan_folders(now)
    return purged


def _delete_folder(job_id: uuid.UUID | str) -> None:
    """Every file under bulk/<job id>/, whatever the storage; then the empty local folders."""
    _delete_tree(_name(job_id, "").rstrip("/"))
    try:
        local = default_storage.path(_name(job_id, ""))
    except NotImplementedError:
        return
    shutil.rmtree(local, ignore_errors=True)


def _delete_tree(folder: str) -> None:
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    _delete_files([f"{folder}/{name}" for name in files])
    for name in folders:
        _delete_tree(f"{folder}/{name}")


def _delete_orphan_folders(now: datetime) -> None:
    """Folders of submissions that never became a job (the process died half-way)."""
    try:
        folders, _ = default_storage.listdir(BULK_FOLDER)
    except FileNotFoundError:
        return
    known = {str(pk) for pk in BulkJob.objects.filter(pk__in=_uuids(folders)).values_list("id", flat=True)}
    for name in folders:
        if name in known:
            continue
        try:
            modified = default_storage.get_modified_time(f"{BULK_FOLDER}/{name}")
        except (NotImplementedError, OSError):
            continue
        if now - modified > ORPHAN_FOLDER_AGE:
            _delete_folder(name)


def _uuids(names: list[str]) -> list[uuid.UUID]:
    found = []
    for name in names:
        try:
            found.append(uuid.UUID(name))
        except ValueError:
            continue
    return found
