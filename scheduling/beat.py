"""django-celery-beat's ``DatabaseScheduler``, made to send a thousand ticks due at once in about a second.

Every scheduled run is one beat entry, and with ``* * * * *`` runs they all fall due at the same
second. The stock scheduler handles one due entry per ``tick()``, and each tick

1. asks the database whether the schedule changed (one query per due entry), and
2. compares every entry of the schedule with its copy to decide whether to rebuild the heap
   (O(entries) per due entry, so O(entries²) per burst),

and every three minutes, in the middle of a burst, it writes each sent entry's ``last_run_at``
back with two to three queries per entry. Measured with 1,000 entries due each minute on this
machine, the last tick of a minute left 29-41 s after the minute (bench/README.md).

This subclass changes only these things:

1. the database is asked for changes at most once a second (``CHANGE_CHECK_SECONDS``): a change
   made through the API or the admin still reaches beat within one or two seconds;
2. the heap is rebuilt when the schedule was reloaded from the database, which is the only way
   this scheduler's schedule changes (the stock class flags it: ``_heap_invalidated``);
3. ``last_run_at`` and ``total_run_count`` of the sent entries are written in bulk, a few
   statements per thousand entries, without signals: they are bookkeeping, not schedule changes;
4. building the heap clears the reload flag, so an entry sent just after a reload is not sent a
   second time (the stock class can rebuild the heap once more from stale entries);
5. the entry that replaces a sent one is a copy with the new run time, instead of a new entry
   built from the row again (which parses the arguments and builds two crontabs, ~0.4 ms);
6. every enabled entry is loaded, whatever the hour of day (see ``enabled_models_qs``);
7. the ticks of scheduled runs due at the same moment go out together, ``FIRE_BATCH`` run ids
   per ``scheduling.fire_runs`` message, instead of one ``scheduling.fire_run`` message each:
   publishing a message costs beat ~3 ms (most of a tick) and a worker a few more to receive,
   and the worker claims a batch's slots in one transaction (``scheduled_runs_fire``);
8. of several beats, only the one holding the beat lease sends anything (scheduling/leases.py);
   the others keep their schedule current and stand by.

Which runs get a tick, and when, is unchanged; the exactly-once guarantee does not depend on beat at
all (scheduling/services.py), only the firing lag does.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.db.utils import DatabaseError, InterfaceError
from django.utils import timezone
from django_celery_beat import schedulers
from django_celery_beat.models import PeriodicTask

from scheduling.leases import BEAT_LEASE, lease_acquire, lease_holder, lease_release
from scheduling.services import FIRE_TASK, SWEEP_AFTER

logger = logging.getLogger(__name__)

# Beat notices schedule changes this long after they are saved, at most (plus its own loop).
CHANGE_CHECK_SECONDS = 1.0
# Rows per UPDATE when writing last_run_at back.
SYNC_BATCH = 500
# Run ids per fire_runs message. Small enough that a burst spreads over every worker process (a
# thousand due runs make a hundred messages) and that a run with a large input delays few others
# in its batch; large enough that sending and receiving cost little per run.
FIRE_BATCH = 10
# On taking the lease over, the ticks of slots at least this old and still unhandled are re-sent.
TAKEOVER_RESEND_AFTER_SECONDS = 2.0


class ModelEntry(schedulers.ModelEntry):
    def __next__(self) -> ModelEntry:
        self.model.last_run_at = self._default_now()
        self.model.total_run_count += 1
        self.model.no_changes = True
        following = object.__new__(type(self))  # a copy: args, kwargs, options and schedule are never changed in place
        following.__dict__.update(self.__dict__)
        following.last_run_at, following.total_run_count = self.model.last_run_at, self.model.total_run_count
        return following


class BeatLeaseView:
    """This beat's view of the beat lease: renewed every quarter of its length, trusted for half.

    Trusting it for half its length after the renewal began means two beats never both believe
    they hold it unless their clocks differ by more than that half (5 s by default). A renewal
    that fails (the database is unreachable) is retried on the next loop; the lease then lapses
    here before it expires in the database. Once released (beat stopping) it is never taken
    again by this process: django-celery-beat writes last_run_at back once more at exit.
    """

    def __init__(
        self,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        on_takeover: Callable[[], None] = lambda: None,
    ):
        self.seconds = seconds  # 0: no lease, every beat sends
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._clock = clock
        self._on_takeover = on_takeover  # called when a standby takes the lease over
        self._renew_at = float("-inf")
        self._trusted_until = float("-inf")
        self._held_last_time: bool | None = None

    @property
    def renew_interval(self) -> float:
        return self.seconds / 4

    def held(self) -> bool:
        """Whether this beat holds the lease, renewing it (or trying to take it) when that is due."""
        if not self.seconds:
            return True
        started = self._clock()
        if started >= self._renew_at:
            self._renew(started)
        return self.trusted()

    def trusted(self) -> bool:
        """Whether this beat holds the lease, from its last renewal alone: no query."""
        return not self.seconds or self._clock() < self._trusted_until

    def release(self) -> None:
        if not self.seconds:
            return
        self._renew_at = float("inf")  # never again in this process
        if self.trusted():
            self._trusted_until = float("-inf")
            try:
                lease_release(name=BEAT_LEASE, holder=self.holder)
            except (DatabaseError, InterfaceError):
                logger.warning("beat: could not hand back the beat lease; it expires by itself", exc_info=True)

    def _renew(self, started: float) -> None:
        self._renew_at = started + self.renew_interval
        try:
            close_old_connections()
            held = lease_acquire(name=BEAT_LEASE, holder=self.holder, seconds=self.seconds)
        except (DatabaseError, InterfaceError):
            logger.warning("beat: could not renew the beat lease; will retry", exc_info=True)
            return
        self._trusted_until = started + self.seconds / 2 if held else float("-inf")
        if held != self._held_last_time:
            took_over = held and self._held_last_time is False
            self._held_last_time = held
            self._log_change(held)
            if took_over:
                self._on_takeover()

    def _log_change(self, held: bool) -> None:
        if held:
            logger.info("beat: holds the beat lease (%s); this beat sends the schedule", self.holder)
            return
        try:
            holder = lease_holder(name=BEAT_LEASE) or "another beat"
        except (DatabaseError, InterfaceError):
            holder = "another beat"
        logger.info("beat: standing by (%s); the beat lease is held by %s", self.holder, holder)


class DatabaseScheduler(schedulers.DatabaseScheduler):
    Entry = ModelEntry
    _last_change_check = float("-inf")

    def __init__(self, *args, **kwargs):
        self._ticks_to_send: list[int] = []  # run ids whose tick is due, not yet sent
        self.lease = BeatLeaseView(settings.SCHEDULING_BEAT_LEASE_SECONDS, on_takeover=self.resend_lost_ticks)
        super().__init__(*args, **kwargs)

    def apply_entry(self, entry, producer=None) -> None:
        if not self.lease.held():
            return  # standing by: the lease holder sends it
        if entry.task != FIRE_TASK:
            return super().apply_entry(entry, producer=producer)
        self._ticks_to_send.append(entry.kwargs["run_id"])
        if len(self._ticks_to_send) >= FIRE_BATCH:
            self.send_ticks()

    def tick(self, *args, **kwargs) -> float:
        self.lease.held()  # renews the lease, or tries to take it, once per renewal interval
        interval = super().tick(*args, **kwargs)
        if interval:  # nothing else is due now: send the ticks collected so far
            self.send_ticks()
            if self.lease.seconds:  # wake up in time to renew, or to take over from a stopped holder
                interval = min(interval, self.lease.renew_interval)
        return interval

    def send_ticks(self) -> None:
        run_ids, self._ticks_to_send = self._ticks_to_send, []
        if not run_ids:
            return
        from scheduling.tasks import fire_runs

        names = " ".join(f"scheduled-run-{run_id}" for run_id in run_ids)
        try:
            fire_runs.apply_async((run_ids,), producer=self.producer, headers={"celery_beat_task": True})
        except Exception:  # the broker is down: the sweeper re-sends ticks still unhandled (services.py)
            logger.exception("beat: could not send the due ticks of %s", names)
            return
        logger.info("beat: sent the due ticks of %s", names)

    def resend_lost_ticks(self) -> None:
        """Taking the lease over from a beat that stopped: what it did not send is due now.

        The sweeper would re-send those ticks 20-35 s after their slots; asked now, it re-sends
        them within a second of the takeover. Slots of the last two seconds are left out: their
        ticks were probably sent, by this beat in the same tick or by the one before, and are
        only waiting in the queue. It re-sends a slot's tick at most once, and a slot already
        taken is found taken.
        """
        from scheduling.tasks import resend_overdue

        try:
            resend_overdue.apply_async(
                kwargs={"after_seconds": TAKEOVER_RESEND_AFTER_SECONDS},
                producer=self.producer,
                expires=SWEEP_AFTER.total_seconds(),  # later, the periodic sweep does the same
            )
        except Exception:  # the broker is down: the periodic sweep catches up later
            logger.exception("beat: could not ask for the ticks lost before the takeover")
            return
        logger.info("beat: took over the beat lease; asked for the ticks lost before the takeover")

    def close(self) -> None:
        self.send_ticks()
        super().close()
        self.lease.release()

    def schedule_changed(self) -> bool:
        now = time.monotonic()
        if now - self._last_change_check < CHANGE_CHECK_SECONDS:
            return False
        self._last_change_check = now
        return super().schedule_changed()

    def enabled_models_qs(self):
        # django-celery-beat 2.8+ loads a crontab entry with a fixed hour only within two hours of
        # it. A run whose slot was missed while beat was down would then wait until the window
        # came round again the next day instead of running at restart (misfire policy
        # ``run_once``), and what beat loads would depend on the time of day. A thousand entries
        # load in well under a second, so all enabled ones are loaded; clocked entries keep the
        # stock rule.
        next_sync = timezone.now() + timedelta(seconds=schedulers.SCHEDULE_SYNC_MAX_INTERVAL)
        return self.Model.objects.enabled().exclude(clocked__isnull=False, clocked__clocked_time__gt=next_sync)

    def schedules_equal(self, old_schedules, new_schedules) -> bool:
        if old_schedules is None or new_schedules is None:
            return old_schedules is new_schedules
        if self._heap_invalidated:  # set whenever the schedule was reloaded from the database
            self._heap_invalidated = False
            return False
        return True

    def populate_heap(self, *args, **kwargs) -> None:
        super().populate_heap(*args, **kwargs)
        # The heap now reflects the schedule as loaded. The stock class can leave the reload flag
        # set when the reload happened while the heap was first built; the next tick then
        # rebuilt the heap from entries whose last_run_at predates what was just sent, and sent
        # those again.
        self._heap_invalidated = False

    def sync(self) -> None:
        if not self.lease.trusted():
            return  # the holder writes last_run_at back; a standby sent nothing
        names, self._dirty = self._dirty, set()
        if not names or self._schedule is None:
            self._dirty |= names
            return
        rows = [
            PeriodicTask(
                pk=entry.model.pk, last_run_at=entry.model.last_run_at, total_run_count=entry.model.total_run_count
            )
            for entry in (self._schedule.get(name) for name in names)
            if entry is not None
        ]
        try:
            close_old_connections()
            PeriodicTask.objects.bulk_update(rows, ["last_run_at", "total_run_count"], batch_size=SYNC_BATCH)
        except (DatabaseError, InterfaceError):
            logger.warning("beat: could not write last_run_at of %d entries; will retry", len(rows), exc_info=True)
            self._dirty |= names
