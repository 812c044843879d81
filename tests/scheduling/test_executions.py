"""What an execution scores, where the predictions go, and what happens when it fails or stalls."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from history.models import PredictionRecord
from predictions.catalog import CATALOG
from predictions.models import Dataset
from predictions.services import dataset_upload
from predictions.serving import registry
from scheduling import services
from scheduling.models import ScheduledRunExecution
from scheduling.services import executions_reap, scheduled_run_fire, scheduled_run_trigger, scheduled_run_update
from scheduling.tasks import run_execution
from tests.scheduling.conftest import T0, churn_rows

pytestmark = pytest.mark.django_db

DUE = T0 + timedelta(minutes=5, seconds=1)


def records_of(execution) -> list[PredictionRecord]:
    return list(PredictionRecord.objects.filter(scheduled_execution_id=execution.pk).order_by("id"))


def test_inline_rows_are_scored_with_their_entity_ids(owner, make_run, churn):
    rows = churn_rows(4)
    run = make_run(owner, parameters={"source": "rows", "rows": rows, "entity_ids": ["a", "b", "c", "d"]})

    [execution] = scheduled_run_fire(run_id=run.pk, now=DUE, correlation_id="beat-tick-1")

    records = records_of(execution)
    assert [r.entity_id for r in records] == ["a", "b", "c", "d"]
    assert [r.features for r in records] == rows
    assert {(r.source, r.correlation_id, r.version_id) for r in records} == {("scheduled", "beat-tick-1", churn.pk)}


def test_a_stored_dataset_is_scored_in_chunks(owner, make_run, churn, monkeypatch):
    monkeypatch.setattr(services, "CHUNK_ROWS", 40)
    spec = CATALOG["churn"]
    frame = spec.generate(100, seed=3)[[*spec.feature_names(), spec.target.name]]
    dataset = dataset_upload(
        slug="churn", name="march", filename="march.csv", data=frame.to_csv(index=False).encode(), uploaded_by=None
    )
    run = make_run(owner, parameters={"source": "dataset", "dataset_id": dataset.pk})
    writes = []
    real_make = services.predictions_make
    monkeypatch.setattr(services, "predictions_make", lambda **kw: writes.append(len(kw["rows"])) or real_make(**kw))

    [execution] = scheduled_run_fire(run_id=run.pk, now=DUE)
    execution.refresh_from_db()

    assert writes == [40, 40, 20]
    assert execution.status == "succeeded" and execution.rows_scored == 100 and len(records_of(execution)) == 100


def test_a_generator_draws_new_rows_each_time_unless_seeded(owner, make_run, churn):
    fresh = make_run(owner, parameters={"source": "generator", "count": 5, "seed": None})
    seeded = make_run(owner, parameters={"source": "generator", "count": 5, "seed": 11, "drift": 0.5})

    first = [scheduled_run_fire(run_id=run.pk, now=DUE)[0] for run in (fresh, seeded)]
    second = [scheduled_run_fire(run_id=run.pk, now=DUE + timedelta(minutes=5))[0] for run in (fresh, seeded)]

    def features(execution):
        return [r.features for r in records_of(execution)]

    assert features(first[0]) != features(second[0])
    assert features(first[1]) == features(second[1]) and len(features(first[1])) == 5


def test_trigger_now_queues_an_execution_that_a_worker_runs(owner, make_run, churn, django_capture_on_commit_callbacks):
    run = make_run(owner, enabled=False)  # a disabled run can still be run by hand

    with django_capture_on_commit_callbacks() as queued:
        execution = scheduled_run_trigger(run=run, user=owner.api_key.user, correlation_id="by-hand")
    pending = ScheduledRunExecution.objects.get(pk=execution.pk)
    run_execution(execution.pk)  # what the worker does with the queued message
    run_execution(execution.pk)  # a redelivered message finds it taken
    execution.refresh_from_db()

    assert len(queued) == 1 and pending.status == "pending" and pending.slot is None
    assert execution.status == "succeeded" and execution.trigger == "manual" and execution.rows_scored == 3
    assert len(records_of(execution)) == 3 and records_of(execution)[0].correlation_id == "by-hand"


def test_no_active_model_version_fails_the_execution_with_the_reason(owner, make_run, train):
    train("anomaly")  # the catalog rows exist, but churn has no version
    run = make_run(owner)

    [execution] = scheduled_run_fire(run_id=run.pk, now=DUE)
    execution.refresh_from_db()

    assert execution.status == "failed" and "no servable version" in execution.error
    run.refresh_from_db()
    assert run.consecutive_failures == 1 and run.enabled


def test_a_deleted_dataset_fails_the_execution_and_says_what_to_do(owner, make_run, churn):
    spec = CATALOG["churn"]
    frame = spec.generate(10, seed=3)[[*spec.feature_names(), spec.target.name]]
    dataset = dataset_upload(
        slug="churn", name="old", filename="old.csv", data=frame.to_csv(index=False).encode(), uploaded_by=None
    )
    run = make_run(owner, parameters={"source": "dataset", "dataset_id": dataset.pk})
    Dataset.objects.filter(pk=dataset.pk).delete()

    [execution] = scheduled_run_fire(run_id=run.pk, now=DUE)
    execution.refresh_from_db()
    disabled = scheduled_run_update(run=run, enabled=False)  # still possible with a broken input

    assert execution.status == "failed" and "no longer exists" in execution.error
    assert disabled.enabled is False


def test_failures_in_a_row_disable_the_run_with_the_reason(owner, make_run, train, settings):
    settings.SCHEDULING_AUTO_DISABLE_AFTER_FAILURES = 3
    train("anomaly")
    run = make_run(owner, cron="* * * * *")

    for minute in range(1, 6):
        scheduled_run_fire(run_id=run.pk, now=T0 + timedelta(minutes=minute, seconds=1))
    run.refresh_from_db()

    assert run.executions.count() == 3 and not run.enabled and run.next_run_at is None
    assert "3 failures in a row" in run.disabled_reason and "no servable version" in run.disabled_reason
    assert PeriodicTask.objects.get(pk=run.periodic_task_id).enabled is False


def test_auto_disable_is_off_by_default_and_a_success_resets_the_count(owner, make_run, train):
    train("anomaly")
    run = make_run(owner, cron="* * * * *")
    for minute in range(1, 6):
        scheduled_run_fire(run_id=run.pk, now=T0 + timedelta(minutes=minute, seconds=1))
    run.refresh_from_db()
    failures_before = run.consecutive_failures

    train("churn")
    scheduled_run_fire(run_id=run.pk, now=T0 + timedelta(minutes=6, seconds=1))
    run.refresh_from_db()

    assert failures_before == 5 and run.enabled and run.consecutive_failures == 0


def test_the_reaper_fails_executions_whose_worker_died(owner, make_run, churn, settings):
    settings.SCHEDULING_EXECUTION_LEASE_SECONDS = 600
    run = make_run(owner)
    now = timezone.now()
    stuck = ScheduledRunExecution.objects.create(
        run=run, slot=T0, trigger="schedule", status="running", started_at=now, heartbeat_at=now - timedelta(hours=1)
    )
    alive = ScheduledRunExecution.objects.create(
        run=run, slot=T0 + timedelta(minutes=5), trigger="schedule", status="running", heartbeat_at=now
    )
    never_started = ScheduledRunExecution.objects.create(run=run, trigger="manual", status="pending")
    ScheduledRunExecution.objects.filter(pk=never_started.pk).update(created_at=now - timedelta(hours=1))

    reaped = executions_reap(now=now)
    reaped_again = executions_reap(now=now)

    statuses = dict(ScheduledRunExecution.objects.values_list("pk", "status"))
    assert reaped == 2 and reaped_again == 0
    assert statuses == {stuck.pk: "failed", alive.pk: "running", never_started.pk: "failed"}
    assert "no sign of life" in ScheduledRunExecution.objects.get(pk=stuck.pk).error
    run.refresh_from_db()
    assert run.consecutive_failures == 2


def test_a_reaped_execution_stops_scoring_and_stays_failed(owner, make_run, churn, monkeypatch):
    monkeypatch.setattr(services, "CHUNK_ROWS", 2)
    run = make_run(owner, parameters={"source": "rows", "rows": churn_rows(6)})
    real_make = services.predictions_make
    calls = []

    def make_then_get_reaped(**kwargs):
        calls.append(1)
        batch = real_make(**kwargs)
        ScheduledRunExecution.objects.filter(run=run).update(status="failed", error="reaped")
        return batch

    monkeypatch.setattr(services, "predictions_make", make_then_get_reaped)

    [execution] = scheduled_run_fire(run_id=run.pk, now=DUE)
    execution.refresh_from_db()

    assert len(calls) == 1 and execution.status == "failed" and execution.error == "reaped"


def test_the_last_chunk_is_kept_only_with_the_execution_s_success(owner, make_run, churn):
    run = make_run(owner, parameters={"source": "rows", "rows": churn_rows(4)})
    # The reaper failed it while its worker was still scoring (a long pause, not a dead worker).
    execution = ScheduledRunExecution.objects.create(run=run, slot=T0, trigger="schedule", status="failed")

    services.execution_perform(execution=execution)

    assert records_of(execution) == []  # rolled back with the success that could not be recorded
    assert ScheduledRunExecution.objects.get(pk=execution.pk).status == "failed"


def test_a_promotion_during_an_execution_applies_from_the_next_one(owner, make_run, churn, train, monkeypatch):
    from predictions.services import version_promote

    monkeypatch.setattr(services, "CHUNK_ROWS", 2)
    second = train("churn", seed=1)  # a candidate
    run = make_run(owner, parameters={"source": "rows", "rows": churn_rows(6)})
    real_make = services.predictions_make
    calls = []

    def make_then_promote(**kwargs):
        batch = real_make(**kwargs)
        if not calls:
            version_promote(version=second)
        calls.append(batch.version_number)
        return batch

    monkeypatch.setattr(services, "predictions_make", make_then_promote)

    [during] = scheduled_run_fire(run_id=run.pk, now=DUE)
    registry.forget()  # every process notices a promotion within a second; this one, now
    [after] = scheduled_run_fire(run_id=run.pk, now=DUE + timedelta(minutes=5))
    during.refresh_from_db()
    after.refresh_from_db()

    assert {r.version_id for r in records_of(during)} == {churn.pk} and during.model_version_id == churn.pk
    assert {r.version_id for r in records_of(after)} == {second.pk} and after.model_version_id == second.pk
