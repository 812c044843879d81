"""Exactly once per slot: duplicate and late ticks, misfires after downtime, schedule changes, DST."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from history.models import PredictionRecord
from scheduling.models import ScheduledRun, ScheduledRunExecution
from scheduling.services import (
    overdue_runs_resend,
    scheduled_run_fire,
    scheduled_run_set_enabled,
    scheduled_run_update,
)
from tests.scheduling.conftest import T0

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)


def slots_of(run) -> list[tuple[datetime, str]]:
    return list(run.executions.order_by("slot").values_list("slot", "status"))


def test_a_tick_executes_the_due_slot_and_moves_the_run_on(owner, make_run, churn):
    run = make_run(owner, cron="*/5 * * * *")

    handled = scheduled_run_fire(run_id=run.pk, now=T0 + timedelta(minutes=5, seconds=1))

    run.refresh_from_db()
    execution = handled[0]
    assert len(handled) == 1 and execution.slot == T0 + timedelta(minutes=5)
    execution.refresh_from_db()
    assert execution.status == "succeeded" and execution.rows_scored == 3 and execution.model_version_id == churn.pk
    assert run.next_run_at == T0 + timedelta(minutes=10) and run.last_execution_id == execution.pk
    assert PredictionRecord.objects.filter(scheduled_execution_id=execution.pk, source="scheduled").count() == 3


def test_duplicate_ticks_for_a_slot_execute_it_once(owner, make_run, churn):
    run = make_run(owner, cron="*/5 * * * *")
    tick = T0 + timedelta(minutes=5, seconds=1)

    first = scheduled_run_fire(run_id=run.pk, now=tick)
    second = scheduled_run_fire(run_id=run.pk, now=tick + timedelta(seconds=1))  # another beat's tick
    redelivered = scheduled_run_fire(run_id=run.pk, now=tick + timedelta(seconds=30))

    assert len(first) == 1 and second == [] and redelivered == []
    assert slots_of(run) == [(T0 + timedelta(minutes=5), "succeeded")]
    assert PredictionRecord.objects.filter(source="scheduled").count() == 3


def test_an_early_tick_does_nothing(owner, make_run, churn):
    run = make_run(owner, cron="*/5 * * * *")

    assert scheduled_run_fire(run_id=run.pk, now=T0 + timedelta(minutes=4)) == []
    assert not run.executions.exists()


def test_late_ticks_in_a_backlog_still_execute_each_slot_once(owner, make_run, churn, settings):
    settings.SCHEDULING_MISFIRE_GRACE_SECONDS = 300  # late, not missed
    run = make_run(owner, cron="* * * * *")
    backlog_drained_at = T0 + timedelta(minutes=3, seconds=40)  # ticks of 08:01-08:03 queued until now

    handled = scheduled_run_fire(run_id=run.pk, now=backlog_drained_at)
    later_ticks = [scheduled_run_fire(run_id=run.pk, now=backlog_drained_at + timedelta(seconds=s)) for s in (1, 2)]

    assert [e.slot for e in handled] == [T0 + MINUTE, T0 + 2 * MINUTE, T0 + 3 * MINUTE]
    assert later_ticks == [[], []]
    assert all(status == "succeeded" for _, status in slots_of(run))


@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_from_two_beats_execute_a_slot_once(owner, make_run, churn):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL (SQLite serialises every write transaction anyway)")
    runs = [make_run(owner, cron="* * * * *") for _ in range(5)]
    tick = T0 + MINUTE + timedelta(seconds=1)
    barrier = threading.Barrier(4)
    errors = []

    def beat():
        try:
            barrier.wait()
            for run in runs:
                scheduled_run_fire(run_id=run.pk, now=tick)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert ScheduledRunExecution.objects.count() == 5
    assert sorted(ScheduledRunExecution.objects.values_list("run_id", flat=True)) == sorted(r.pk for r in runs)
    assert PredictionRecord.objects.filter(source="scheduled").count() == 15


@pytest.mark.parametrize(
    ("policy", "expected_status", "expected_slot"),
    [
        ("skip", "skipped", T0 + timedelta(hours=3)),
        ("run_once", "succeeded", T0 + timedelta(hours=3)),
    ],
)
def test_after_downtime_the_misfire_policy_decides(owner, make_run, churn, policy, expected_status, expected_slot):
    run = make_run(owner, cron="*/5 * * * *", misfire_policy=policy)
    back_up = T0 + timedelta(hours=3, minutes=2)  # down from 08:04 to 11:02: slots 08:05-11:00 missed

    handled = scheduled_run_fire(run_id=run.pk, now=back_up)

    run.refresh_from_db()
    [execution] = handled
    execution.refresh_from_db()
    assert (execution.slot, execution.status) == (expected_slot, expected_status)
    assert execution.missed_slots == 36 and "36 slot(s)" in execution.note
    assert run.next_run_at == T0 + timedelta(hours=3, minutes=5)
    scored = PredictionRecord.objects.filter(source="scheduled").count()
    assert scored == (0 if policy == "skip" else 3)


def test_run_once_after_downtime_does_not_run_twice_when_a_slot_is_due_anyway(owner, make_run, churn):
    run = make_run(owner, cron="* * * * *", misfire_policy="run_once")
    back_up = T0 + timedelta(minutes=30, seconds=20)  # 08:30 is on time, 08:01-08:29 were missed

    handled = scheduled_run_fire(run_id=run.pk, now=back_up)

    assert [(e.slot, e.missed_slots) for e in handled] == [(T0 + timedelta(minutes=30), 29)]


def test_skip_after_downtime_records_the_gap_and_runs_the_slot_due_now(owner, make_run, churn):
    run = make_run(owner, cron="* * * * *", misfire_policy="skip")

    handled = scheduled_run_fire(run_id=run.pk, now=T0 + timedelta(minutes=30, seconds=20))

    assert [(e.slot.minute, e.status, e.missed_slots) for e in handled] == [(29, "skipped", 29), (30, "running", 0)]
    assert slots_of(run)[-1] == (T0 + timedelta(minutes=30), "succeeded")


def test_a_changed_cron_takes_effect_from_the_next_slot(owner, make_run, churn):
    run = make_run(owner, cron="0 * * * *")  # next slot 09:00
    changed_at = T0 + timedelta(minutes=20)

    scheduled_run_update(run=run, cron="*/15 * * * *", now=changed_at)
    run.refresh_from_db()

    assert run.next_run_at == T0 + timedelta(minutes=30)
    assert scheduled_run_fire(run_id=run.pk, now=T0 + timedelta(minutes=30, seconds=1))[0].slot.minute == 30


def test_a_changed_time_zone_takes_effect_from_the_next_slot(owner, make_run, churn):
    run = make_run(owner, cron="0 12 * * *", timezone_name="UTC")  # 12:00 UTC

    scheduled_run_update(run=run, timezone_name="Asia/Tokyo", now=T0)  # 12:00 JST = 03:00 UTC
    run.refresh_from_db()

    assert run.next_run_at == datetime(2026, 6, 2, 3, 0, tzinfo=UTC)


def test_a_slot_already_due_when_the_cron_changes_still_runs_once(owner, make_run, churn):
    run = make_run(owner, cron="*/5 * * * *")
    due = T0 + timedelta(minutes=5)

    scheduled_run_update(run=run, cron="0 * * * *", now=due + timedelta(seconds=2))  # its tick is on its way
    handled = scheduled_run_fire(run_id=run.pk, now=due + timedelta(seconds=3))
    run.refresh_from_db()

    assert [e.slot for e in handled] == [due]
    assert run.next_run_at == T0 + timedelta(hours=1)


def test_disabled_runs_do_not_fire_and_resume_from_the_next_slot(owner, make_run, churn):
    run = make_run(owner, cron="*/5 * * * *")

    scheduled_run_set_enabled(run=run, enabled=False, now=T0)
    while_disabled = scheduled_run_fire(run_id=run.pk, now=T0 + timedelta(minutes=12))
    scheduled_run_set_enabled(run=run, enabled=True, now=T0 + timedelta(minutes=12))
    run.refresh_from_db()

    assert while_disabled == [] and run.next_run_at == T0 + timedelta(minutes=15)


@pytest.mark.parametrize(
    ("zone", "cron", "day_start", "expected_local"),
    [
        ("Europe/Paris", "30 2 * * *", datetime(2026, 3, 28, 23, tzinfo=UTC), "03:30 CEST"),
        ("America/New_York", "30 1 * * *", datetime(2026, 11, 1, 4, tzinfo=UTC), "01:30 EDT"),
    ],
)
def test_a_daily_run_on_a_dst_day_executes_exactly_once(owner, make_run, churn, zone, cron, day_start, expected_local):
    run = make_run(owner, cron=cron, timezone_name=zone, now=day_start)
    tz = run.schedule.tz

    # Ticks every five minutes through the whole day, as a beat (or two) would send.
    for minute in range(0, 24 * 60, 5):
        scheduled_run_fire(run_id=run.pk, now=day_start + timedelta(minutes=minute, seconds=1))

    [execution] = run.executions.all()
    assert execution.slot.astimezone(tz).strftime("%H:%M %Z") == expected_local


@pytest.fixture
def resent(monkeypatch) -> list[int]:
    """Run ids whose tick the sweeper re-sent (instead of queueing them)."""
    from scheduling import tasks

    sent: list[int] = []
    monkeypatch.setattr(tasks.fire_run, "delay", sent.append)
    return sent


def test_the_sweeper_resends_a_lost_tick_once_per_slot(owner, make_run, churn, resent):
    run = make_run(owner, cron="*/5 * * * *")

    before = overdue_runs_resend(now=T0 + timedelta(minutes=5, seconds=10))  # not yet overdue
    first = overdue_runs_resend(now=T0 + timedelta(minutes=5, seconds=30))
    again = overdue_runs_resend(now=T0 + timedelta(minutes=5, seconds=45))

    assert before == [] and first == [run.pk] and again == [] and resent == [run.pk]
    assert ScheduledRun.objects.get(pk=run.pk).recovery_sent_for == T0 + timedelta(minutes=5)


def test_a_beat_taking_over_has_lost_ticks_resent_without_waiting(owner, make_run, churn, resent):
    run = make_run(owner, cron="*/5 * * * *")

    at_once = overdue_runs_resend(now=T0 + timedelta(minutes=5, seconds=1), after=timedelta(0))
    later = overdue_runs_resend(now=T0 + timedelta(minutes=5, seconds=30))  # the periodic sweep

    assert at_once == [run.pk] and later == [] and resent == [run.pk]


def test_the_sweep_task_takes_the_delay_a_taking_over_beat_asks_for(owner, make_run, churn, resent):
    from scheduling.tasks import resend_overdue

    run = make_run(owner, cron="*/5 * * * *", now=timezone.now())
    ScheduledRun.objects.filter(pk=run.pk).update(next_run_at=timezone.now() - timedelta(seconds=5))

    periodic = resend_overdue()  # 5 s after the slot: not overdue for the periodic sweep yet
    on_takeover = resend_overdue(after_seconds=2)

    assert (periodic, on_takeover) == (0, 1) and resent == [run.pk]
