"""Real processes: celery beats and a worker execute a due run once per slot, into history."""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest
from django.db.models import Count
from django.utils import timezone

from config.celery import app
from history.models import PredictionRecord
from predictions.models import BulkChunk, BulkJob
from scheduling.models import ScheduledRun, ScheduledRunExecution
from scheduling.services import scheduled_run_trigger
from tests.live import celery_beat, celery_worker, service_env
from tests.predictions.bulk_support import bulk_media, csv_upload, submit  # noqa: F401 (fixture)
from tests.predictions.bulk_support import churn_rows as churn_rows_frame

HOLDING = "this beat sends the schedule"  # beat's log line when it takes the beat lease
STANDING_BY = "beat: standing by"


def sent_by(run: ScheduledRun) -> re.Pattern:
    """A beat's log line for a message carrying this run's tick."""
    return re.compile(rf"sent the due ticks of [^\"]*\bscheduled-run-{run.pk}\b")


def wait_for(condition, timeout: float = 120, every: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout  # up to a minute to the slot, plus start-up on a busy machine
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def executed(run: ScheduledRun, slot: datetime) -> bool:
    return ScheduledRunExecution.objects.filter(run=run, slot=slot, status="succeeded").exists()


def assert_executed_once_into_history(run: ScheduledRun, slot: datetime) -> None:
    per_slot = dict(ScheduledRunExecution.objects.filter(run=run).values_list("slot").annotate(n=Count("id")))
    execution = ScheduledRunExecution.objects.get(run=run, slot=slot)
    assert per_slot[slot] == 1 and set(per_slot.values()) == {1}, per_slot
    assert execution.status == "succeeded" and execution.trigger == "schedule"
    assert (execution.started_at - slot).total_seconds() < 60
    records = PredictionRecord.objects.filter(scheduled_execution_id=execution.pk)
    assert records.count() == 3 and {r.source for r in records} == {"scheduled"}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_beats_that_both_send_and_a_worker_execute_each_slot_once_and_record_its_predictions(
    owner, make_run, churn, settings, tmp_path
):
    run = make_run(owner, cron="* * * * *", now=timezone.now())
    first_slot = run.next_run_at  # the next minute
    # No beat lease: both beats send every tick, and the slot's guard alone keeps it to one execution.
    # Its own VAR_DIR: a file-system broker folder no earlier test left messages in.
    env = service_env(
        VAR_DIR=str(tmp_path / "var"), ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT), SCHEDULING_BEAT_LEASE_SECONDS="0"
    )

    with celery_worker(env, queues="scheduling"), celery_beat(env) as one, celery_beat(env) as two:
        wait_for(
            lambda: (
                all(sent_by(run).search(beat.log_path.read_text()) for beat in (one, two)) and executed(run, first_slot)
            )
        )
        time.sleep(3)  # the second beat's tick reaches the worker too, and finds the slot taken
        sends = [len(sent_by(run).findall(beat.log_path.read_text())) for beat in (one, two)]

    assert min(sends) >= 1, f"each beat sent the tick: {sends}"
    assert_executed_once_into_history(run, first_slot)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_standby_beat_takes_over_when_the_lease_holder_is_killed(owner, make_run, churn, settings, tmp_path):
    env = service_env(
        VAR_DIR=str(tmp_path / "var"), ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT), SCHEDULING_BEAT_LEASE_SECONDS="4"
    )

    with celery_worker(env, queues="scheduling"), celery_beat(env) as one, celery_beat(env) as two:
        beats = (one, two)

        def roles() -> list[str]:
            logs = [beat.log_path.read_text() for beat in beats]
            return ["holder" if HOLDING in log else "standby" if STANDING_BY in log else "" for log in logs]

        assert wait_for(lambda: sorted(roles()) == ["holder", "standby"], 30), roles()
        holder, standby = beats if roles()[0] == "holder" else reversed(beats)
        holder.kill()  # no clean stop: the lease is not handed back and has to run out
        assert wait_for(lambda: HOLDING in standby.log_path.read_text(), 15)

        # The run is made after the failover, for a slot at least a few seconds away, so
        # that its tick can only come from the beat that took over (not from the sweeper).
        if 60 - timezone.now().second < 5:
            time.sleep(6)
        run = make_run(owner, cron="* * * * *", now=timezone.now())
        first_slot = run.next_run_at
        assert wait_for(lambda: executed(run, first_slot))
        standby_log = standby.log_path.read_text()

    assert sent_by(run).search(standby_log)
    assert_executed_once_into_history(run, first_slot)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_scheduled_run_does_not_wait_behind_a_bulk_job(
    client,
    owner,
    make_run,
    churn,
    settings,
    bulk_media,  # noqa: F811
):
    # Messages that earlier tests queued without a worker would go first and blur the order.
    app.control.purge()
    run = make_run(owner, cron="@yearly", now=timezone.now())  # triggered by hand below
    answer = submit(client, owner, model="churn", file=csv_upload(churn_rows_frame(8_000)), chunk_size=100)
    assert answer.status_code == 202, answer.content
    job_id, chunks = answer.json()["id"], 80
    env = service_env(ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT), MEDIA_ROOT=str(bulk_media))

    # One worker process for both queues, as a small installation runs them.
    with celery_worker(env, queues="scheduling,predictions"):
        assert wait_for(lambda: BulkJob.objects.get(pk=job_id).chunks_done >= 1, 60, every=0.02)
        triggered_at = timezone.now()
        execution = scheduled_run_trigger(run=run, user=owner.api_key.user)
        assert wait_for(lambda: ScheduledRunExecution.objects.get(pk=execution.pk).status == "succeeded", 60)
        assert wait_for(lambda: BulkJob.objects.get(pk=job_id).status == "completed", 120)

    # Read from the rows' own times, not from polling: the chunks that finished between the
    # trigger and the run's end. On the job's own queue the run would wait for all of them.
    finished_at = ScheduledRunExecution.objects.get(pk=execution.pk).finished_at
    chunk_times = BulkChunk.objects.filter(job_id=job_id).values_list("finished_at", flat=True)
    in_between = sum(triggered_at < done <= finished_at for done in chunk_times)
    assert sum(done > finished_at for done in chunk_times) >= chunks // 2  # most of the job was still to do
    assert in_between <= 3, in_between
