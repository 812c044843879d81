"""Beat's ticks sent together (``scheduling.fire_runs``): the same slots executed as one tick per run."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from history.models import PredictionRecord
from scheduling.models import ScheduledRun, ScheduledRunExecution
from scheduling.services import scheduled_run_fire, scheduled_runs_fire
from tests.scheduling.conftest import T0, churn_rows

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)


def outcome(runs) -> list[tuple]:
    """What the ticks left behind, independent of ids: per run, its slots, statuses and next slot."""
    result = []
    for run in runs:
        run.refresh_from_db()
        slots = [
            (slot, status, missed, scored, PredictionRecord.objects.filter(scheduled_execution_id=pk).count())
            for pk, slot, status, missed, scored in run.executions.order_by("slot").values_list(
                "pk", "slot", "status", "missed_slots", "rows_scored"
            )
        ]
        result.append((run.name, run.next_run_at, run.consecutive_failures, slots))
    return result


def scenario(make_run, owner) -> list[ScheduledRun]:
    """Runs in every state a tick at T0 + 5 min + 1 s can find them in."""
    on_time = make_run(owner, cron="*/5 * * * *", name="on time")
    not_due = make_run(owner, cron="0 * * * *", name="not due")
    backlog = make_run(owner, cron="* * * * *", name="backlog")  # 08:01-08:05 all due; grace below
    missed = make_run(owner, cron="*/5 * * * *", name="missed", misfire_policy="skip")
    ScheduledRun.objects.filter(pk=missed.pk).update(next_run_at=T0 - timedelta(hours=2))
    disabled = make_run(owner, cron="*/5 * * * *", name="disabled", enabled=False)
    return [on_time, not_due, backlog, missed, disabled]


def test_a_batch_of_ticks_leaves_what_one_tick_per_run_leaves(owner, make_run, churn, settings):
    settings.SCHEDULING_MISFIRE_GRACE_SECONDS = 360  # the backlog's slots are late, not missed
    tick = T0 + 5 * MINUTE + timedelta(seconds=1)
    one_by_one = scenario(make_run, owner)
    for run in one_by_one:
        scheduled_run_fire(run_id=run.pk, now=tick)
    expected = outcome(one_by_one)
    ScheduledRun.objects.all().delete()

    batched = scenario(make_run, owner)
    scheduled_runs_fire(run_ids=[run.pk for run in batched], now=tick)

    assert outcome(batched) == expected
    assert [len(slots) for *_, slots in expected] == [1, 0, 5, 2, 0]  # the scenario covers every path


def test_a_second_beats_batch_executes_nothing_more(owner, make_run, churn):
    runs = [make_run(owner, cron="*/5 * * * *") for _ in range(4)]
    ids = [run.pk for run in runs]
    tick = T0 + 5 * MINUTE + timedelta(seconds=1)

    first = scheduled_runs_fire(run_ids=ids, now=tick)
    second = scheduled_runs_fire(run_ids=list(reversed(ids)), now=tick + timedelta(seconds=1))

    assert len(first) == 4 and second == []
    assert ScheduledRunExecution.objects.filter(status="succeeded").count() == 4
    assert PredictionRecord.objects.filter(source="scheduled").count() == 12


def test_a_slot_already_executed_sends_the_batch_through_the_one_run_path(owner, make_run, churn):
    runs = [make_run(owner, cron="*/5 * * * *") for _ in range(3)]
    tick = T0 + 5 * MINUTE + timedelta(seconds=1)
    scheduled_run_fire(run_id=runs[1].pk, now=tick)
    ScheduledRun.objects.filter(pk=runs[1].pk).update(next_run_at=T0 + 5 * MINUTE)  # moved back by hand

    scheduled_runs_fire(run_ids=[run.pk for run in runs], now=tick)

    assert ScheduledRunExecution.objects.filter(slot=T0 + 5 * MINUTE).count() == 3
    runs[1].refresh_from_db()
    assert runs[1].next_run_at == T0 + 10 * MINUTE


def test_runs_scored_together_record_each_row_under_its_own_execution(owner, make_run, churn):
    runs = [
        make_run(owner, cron="*/5 * * * *", parameters={"source": "rows", "rows": churn_rows(n, seed=n)})
        for n in (2, 3, 4)
    ]

    handled = scheduled_runs_fire(run_ids=[run.pk for run in runs], now=T0 + 5 * MINUTE + timedelta(seconds=1))

    assert len(handled) == 3
    for run, execution in zip(runs, sorted(handled, key=lambda e: e.run_id), strict=True):
        execution.refresh_from_db()
        records = PredictionRecord.objects.filter(scheduled_execution_id=execution.pk).order_by("id")
        assert execution.status == "succeeded" and execution.rows_scored == len(run.parameters["rows"])
        assert [r.features for r in records] == run.parameters["rows"]
        assert {r.source for r in records} == {"scheduled"} and execution.model_version_id == churn.pk


def test_an_invalid_input_fails_only_its_own_execution(owner, make_run, churn):
    runs = [make_run(owner, cron="*/5 * * * *") for _ in range(3)]
    broken = dict(runs[1].parameters)
    broken["rows"] = [{**broken["rows"][0], "tenure_months": "many"}]  # the schema changed since it was saved
    ScheduledRun.objects.filter(pk=runs[1].pk).update(parameters=broken)

    scheduled_runs_fire(run_ids=[run.pk for run in runs], now=T0 + 5 * MINUTE + timedelta(seconds=1))

    statuses = dict(ScheduledRunExecution.objects.values_list("run_id", "status"))
    assert statuses == {runs[0].pk: "succeeded", runs[1].pk: "failed", runs[2].pk: "succeeded"}
    assert "tenure_months" in ScheduledRunExecution.objects.get(run_id=runs[1].pk).error
    assert PredictionRecord.objects.filter(source="scheduled").count() == 6


def test_a_batch_claims_its_slots_in_one_transaction(owner, make_run, churn):
    batched = [make_run(owner, cron="*/5 * * * *") for _ in range(10)]
    singles = [make_run(owner, cron="*/5 * * * *") for _ in range(10)]
    tick = T0 + 5 * MINUTE + timedelta(seconds=1)

    with CaptureQueriesContext(connection) as one_by_one:
        for run in singles:
            scheduled_run_fire(run_id=run.pk, now=tick)
    with CaptureQueriesContext(connection) as together:
        scheduled_runs_fire(run_ids=[run.pk for run in batched], now=tick)

    # One tick per run: a claim (lock, insert, update), a history write, two updates and the
    # transactions around them, each; a batch: about as many statements in all.
    assert len(one_by_one) >= 60 and len(together) <= 15, [q["sql"][:80] for q in together.captured_queries]
    assert ScheduledRunExecution.objects.filter(status="succeeded").count() == 20


def test_the_recorded_start_is_when_scoring_began(owner, make_run, churn):
    runs = [make_run(owner, cron="*/5 * * * *") for _ in range(3)]

    handled = scheduled_runs_fire(run_ids=[run.pk for run in runs], now=T0 + 5 * MINUTE + timedelta(seconds=1))

    executions = ScheduledRunExecution.objects.filter(pk__in=[e.pk for e in handled])
    assert len({e.started_at for e in executions}) == 1  # scored together
    assert all(e.created_at <= e.started_at <= e.finished_at for e in executions)  # after the claim


@pytest.mark.django_db(transaction=True)
def test_overlapping_batches_from_two_beats_neither_deadlock_nor_duplicate(owner, make_run, churn):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL (SQLite serialises every write transaction anyway)")
    ids = [make_run(owner, cron="* * * * *").pk for _ in range(12)]
    tick = T0 + MINUTE + timedelta(seconds=1)
    batches = [ids[:6], ids[6:], list(reversed(ids))[:8], ids[3:11]]  # differently grouped and ordered
    barrier = threading.Barrier(len(batches))
    errors = []

    def worker(run_ids):
        try:
            barrier.wait()
            scheduled_runs_fire(run_ids=run_ids, now=tick)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(ScheduledRunExecution.objects.values_list("run_id", flat=True)) == sorted(ids)
    assert PredictionRecord.objects.filter(source="scheduled").count() == 36
