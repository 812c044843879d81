"""Real processes: two celery beats and a worker execute a due run once per slot, into history."""

from __future__ import annotations

import re
import time

import pytest
from django.db.models import Count
from django.utils import timezone

from history.models import PredictionRecord
from scheduling.models import ScheduledRunExecution
from tests.live import celery_beat, celery_worker, service_env


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_beats_and_a_worker_execute_each_slot_once_and_record_its_predictions(
    owner, make_run, churn, settings, tmp_path
):
    run = make_run(owner, cron="* * * * *", now=timezone.now())
    first_slot = run.next_run_at  # the next minute
    # Its own VAR_DIR: a file-system broker folder no earlier test left messages in.
    env = service_env(VAR_DIR=str(tmp_path / "var"), ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT))
    sent_by = re.compile(rf"sent the due ticks of [^\"]*\bscheduled-run-{run.pk}\b")  # one beat's message

    with celery_worker(env, queues="predictions"), celery_beat(env) as one, celery_beat(env) as two:
        deadline = time.monotonic() + 120  # up to a minute to the slot, plus start-up on a busy machine
        while time.monotonic() < deadline:
            both_sent = all(sent_by.search(beat.log_path.read_text()) for beat in (one, two))
            done = ScheduledRunExecution.objects.filter(run=run, slot=first_slot, status="succeeded").exists()
            if both_sent and done:
                break
            time.sleep(0.5)
        time.sleep(3)  # the second beat's tick reaches the worker too, and finds the slot taken
        sends = [len(sent_by.findall(beat.log_path.read_text())) for beat in (one, two)]

    per_slot = dict(ScheduledRunExecution.objects.filter(run=run).values_list("slot").annotate(n=Count("id")))
    execution = ScheduledRunExecution.objects.get(run=run, slot=first_slot)
    assert min(sends) >= 1, f"each beat sent the tick: {sends}"
    assert per_slot[first_slot] == 1 and set(per_slot.values()) == {1}, per_slot
    assert execution.status == "succeeded" and execution.trigger == "schedule"
    assert (execution.started_at - first_slot).total_seconds() < 60
    records = PredictionRecord.objects.filter(scheduled_execution_id=execution.pk)
    assert records.count() == 3 and {r.source for r in records} == {"scheduled"}
