"""Beat's scheduler sends a burst of due runs without a query per tick, and still sees changes."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scheduling import beat
from tests.scheduling.conftest import burst, make_due

pytestmark = pytest.mark.django_db


def test_a_burst_of_due_runs_is_sent_with_a_handful_of_queries(
    scheduler, make_run, owner, catalog, django_assert_max_num_queries
):
    ids = make_due(60, make_run, owner)
    scheduler._last_change_check = float("-inf")
    scheduler.tick()  # loads the schedule (the 60 runs and the maintenance entries)

    with django_assert_max_num_queries(3):  # the stock scheduler: one query per due entry
        burst(scheduler, 200)

    assert {f"scheduled-run-{pk}" for pk in ids} <= set(scheduler.sent)
    assert len([name for name in scheduler.sent if name.startswith("scheduled-run-")]) == 60


def test_due_ticks_go_out_in_messages_of_a_few_runs_each(scheduler, make_run, owner, catalog):
    ids = make_due(25, make_run, owner)
    scheduler._last_change_check = float("-inf")

    burst(scheduler, 200)

    assert sorted(run_id for message in scheduler.messages for run_id in message) == sorted(ids)
    assert [len(message) for message in scheduler.messages] == [beat.FIRE_BATCH, beat.FIRE_BATCH, 5]


def test_ticks_still_collected_when_beat_stops_are_sent(scheduler, make_run, owner, catalog):
    ids = make_due(3, make_run, owner)
    scheduler._last_change_check = float("-inf")
    while len(scheduler._ticks_to_send) < 2:  # two of the three collected, not sent yet
        scheduler.tick()
    assert scheduler.messages == []

    scheduler.close()

    assert len(scheduler.messages) == 1 and len(scheduler.messages[0]) == 2 and set(scheduler.messages[0]) <= set(ids)


def test_last_run_times_are_written_back_in_bulk(scheduler, make_run, owner, catalog, django_assert_max_num_queries):
    ids = make_due(40, make_run, owner)
    scheduler._last_change_check = float("-inf")
    burst(scheduler, 200)
    sent_at = timezone.now()

    with django_assert_max_num_queries(2):
        scheduler.sync()

    written = PeriodicTask.objects.filter(scheduled_run__pk__in=ids).values_list("last_run_at", "total_run_count")
    assert all(sent_at - timedelta(seconds=30) < last <= sent_at and count == 1 for last, count in written)


def test_a_new_run_reaches_beat_within_the_change_check_interval(scheduler, make_run, owner, catalog):
    scheduler.tick()
    run = make_run(owner, cron="* * * * *", now=timezone.now())
    # As if the database had just been asked: creating the run may itself take over a second
    # on a busy machine, and the test is about the interval, not about this machine's speed.
    scheduler._last_change_check = time.monotonic()

    scheduler.tick()  # within a second of the last check: not looked at yet
    before = f"scheduled-run-{run.pk}" in scheduler.schedule
    scheduler._last_change_check -= beat.CHANGE_CHECK_SECONDS
    scheduler.tick()

    assert not before and f"scheduled-run-{run.pk}" in scheduler.schedule


def test_a_slot_missed_while_beat_was_down_is_sent_at_start_whatever_the_hour(scheduler, make_run, owner, catalog):
    # A daily run at the hour opposite to now: the stock scheduler would not even load it.
    far_hour = (timezone.now().hour + 12) % 24
    run = make_run(owner, cron=f"0 {far_hour} * * *", timezone_name="UTC", now=timezone.now())
    PeriodicTask.objects.filter(scheduled_run=run).update(last_run_at=timezone.now() - timedelta(days=2))

    scheduler._last_change_check = float("-inf")
    burst(scheduler, 200)

    assert f"scheduled-run-{run.pk}" in scheduler.sent
