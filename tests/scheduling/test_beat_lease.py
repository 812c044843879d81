"""Of two beats, the one holding the beat lease sends the schedule; the other stands by and takes over."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.celery import app
from scheduling import beat
from scheduling.leases import BEAT_LEASE, lease_acquire, lease_holder, lease_release
from scheduling.models import BeatLease
from scheduling.services import FIRE_TASK
from scheduling.tasks import resend_overdue
from tests.scheduling.conftest import burst, make_due

pytestmark = pytest.mark.django_db


def run_ticks(scheduler) -> list[str]:
    return [name for name in scheduler.sent if name.startswith("scheduled-run-")]


class Clock:
    """Stands in for beat's monotonic clock."""

    def __init__(self):
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    monkeypatch.setattr(beat, "close_old_connections", lambda: None)  # it would close the test's connection
    return Clock()


def test_one_holder_at_a_time_until_its_lease_expires_or_is_handed_back():
    now = timezone.now()
    assert lease_acquire(name=BEAT_LEASE, holder="a", seconds=10, now=now)
    assert not lease_acquire(name=BEAT_LEASE, holder="b", seconds=10, now=now + timedelta(seconds=9))
    assert lease_acquire(name=BEAT_LEASE, holder="a", seconds=10, now=now + timedelta(seconds=9))  # renewed
    assert not lease_acquire(name=BEAT_LEASE, holder="b", seconds=10, now=now + timedelta(seconds=18))
    assert BeatLease.objects.get().acquired_at == now  # a renewal is not a new holder

    assert lease_acquire(name=BEAT_LEASE, holder="b", seconds=10, now=now + timedelta(seconds=20))  # a's lapsed
    assert not lease_acquire(name=BEAT_LEASE, holder="a", seconds=10, now=now + timedelta(seconds=21))
    assert BeatLease.objects.get().acquired_at == now + timedelta(seconds=20)

    assert lease_release(name=BEAT_LEASE, holder="b")
    assert lease_holder(name=BEAT_LEASE) == ""
    assert lease_acquire(name=BEAT_LEASE, holder="a", seconds=10)  # at once, not after b's ten seconds
    assert lease_holder(name=BEAT_LEASE) == "a"


def test_a_standby_asks_without_failing_statements():
    lease_acquire(name=BEAT_LEASE, holder="a", seconds=10)

    with CaptureQueriesContext(connection) as queries:
        assert not lease_acquire(name=BEAT_LEASE, holder="b", seconds=10)

    # No INSERT that the primary key refuses: PostgreSQL would log an error every renewal.
    assert not [query for query in queries.captured_queries if "INSERT" in query["sql"].upper()]


def test_a_lease_written_by_a_clock_far_ahead_does_not_block_the_others():
    now = timezone.now()
    assert lease_acquire(name=BEAT_LEASE, holder="a", seconds=10, now=now + timedelta(hours=1))
    assert lease_acquire(name=BEAT_LEASE, holder="b", seconds=10, now=now)


def test_the_second_beat_stands_by_while_the_first_sends_every_due_run(make_scheduler, make_run, owner, catalog):
    ids = make_due(12, make_run, owner)
    first, second = make_scheduler(), make_scheduler()
    for scheduler in (first, second):
        scheduler._last_change_check = float("-inf")
        burst(scheduler)

    assert sorted(run_ticks(first)) == sorted(f"scheduled-run-{pk}" for pk in ids)
    assert second.sent == [] and second.messages == []
    assert lease_holder(name=BEAT_LEASE) == first.lease.holder


def test_a_standby_beat_writes_no_last_run_times(make_scheduler, make_run, owner, catalog):
    make_due(3, make_run, owner)
    first, second = make_scheduler(), make_scheduler()
    first.tick()  # takes the lease
    second._last_change_check = float("-inf")
    burst(second)

    second.sync()

    assert set(PeriodicTask.objects.filter(task=FIRE_TASK).values_list("total_run_count", flat=True)) == {0}


def test_the_standby_takes_over_at_once_when_the_holder_stops(make_scheduler, make_run, owner, catalog):
    first, second = make_scheduler(), make_scheduler()
    first.tick()
    second.tick()
    first.close()  # hands the lease back
    ids = make_due(4, make_run, owner)

    second.lease._renew_at = float("-inf")  # its next renewal, at most a quarter lease away
    second._last_change_check = float("-inf")
    burst(second)

    assert sorted(run_ticks(second)) == sorted(f"scheduled-run-{pk}" for pk in ids)
    assert lease_holder(name=BEAT_LEASE) == second.lease.holder


def test_a_beat_that_stopped_does_not_take_the_lease_again_on_its_way_out(make_scheduler, catalog):
    stopping = make_scheduler()
    stopping.tick()
    stopping.close()

    stopping._finalize()  # django-celery-beat's last write-back at interpreter exit
    # `celery beat` prints its banner from a second, lazy scheduler, also written back at exit.
    banner = beat.DatabaseScheduler(app=app, lazy=True)
    banner._finalize()

    assert lease_holder(name=BEAT_LEASE) == ""


def test_the_standby_takes_over_once_a_stopped_holder_lease_expires(make_scheduler, make_run, owner, catalog):
    first, second = make_scheduler(), make_scheduler()
    first.tick()
    second.tick()
    assert not second.lease.held()
    # The first beat was killed: its lease is not renewed and runs out.
    BeatLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    ids = make_due(3, make_run, owner)

    second.lease._renew_at = float("-inf")
    second._last_change_check = float("-inf")
    burst(second)

    assert sorted(run_ticks(second)) == sorted(f"scheduled-run-{pk}" for pk in ids)


def test_a_holder_that_cannot_renew_stops_sending_before_its_lease_expires(clock, monkeypatch):
    view = beat.BeatLeaseView(seconds=10, clock=clock)
    assert view.held()

    def unreachable(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(beat, "lease_acquire", unreachable)
    clock.now += 4.9  # renewals failed, but within half the lease: still trusted
    assert view.held()
    clock.now += 0.2
    assert not view.held()  # the database lease still runs for ~5 s: no overlap with a taker


def test_the_holder_renews_the_lease_every_quarter_of_it(clock, django_assert_max_num_queries):
    view = beat.BeatLeaseView(seconds=8, clock=clock)
    assert view.held()
    first_expiry = BeatLease.objects.get().expires_at

    with django_assert_max_num_queries(0):
        clock.now += 1.9
        assert view.held()
    clock.now += 0.2
    assert view.held()

    assert BeatLease.objects.get().expires_at > first_expiry


def test_with_no_lease_every_beat_sends(make_scheduler, make_run, owner, catalog, settings):
    settings.SCHEDULING_BEAT_LEASE_SECONDS = 0
    ids = make_due(3, make_run, owner)
    first, second = make_scheduler(), make_scheduler()
    for scheduler in (first, second):
        scheduler._last_change_check = float("-inf")
        burst(scheduler)

    expected = sorted(f"scheduled-run-{pk}" for pk in ids)
    assert sorted(run_ticks(first)) == expected and sorted(run_ticks(second)) == expected
    assert not BeatLease.objects.exists()


def test_a_standby_taking_over_asks_at_once_for_the_ticks_lost_before(make_scheduler, catalog, monkeypatch):
    asked = []
    monkeypatch.setattr(resend_overdue, "apply_async", lambda kwargs=None, **options: asked.append(kwargs))
    first, second = make_scheduler(), make_scheduler()
    first.tick()
    second.tick()
    assert asked == []  # the first beat to start took the lease from no one

    BeatLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))  # the holder died
    second.lease._renew_at = float("-inf")
    second.tick()

    assert asked == [{"after_seconds": beat.TAKEOVER_RESEND_AFTER_SECONDS}]
